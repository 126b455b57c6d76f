//! A queue's `x-` arguments as typed values, checked on queue.declare as RabbitMQ 3.13 checks them, refusals
//! word for word (`rabbit_amqqueue:check_declare_arguments/3`, the queue types' declare checks). Pure: no I/O.
//!
//! The declared table itself stays in [`QueueSpec::arguments`](super::QueueSpec): it is what redeclares are
//! compared against and what is stored. This is the view the queue's policies read.

mod checks;
#[cfg(test)]
mod tests;

use warren_protocol::error::AmqpError;
use warren_protocol::{AMQPValue, FieldTable};

use checks::{int, known_to_a_type, text, type_name, Refusal, DECLARE_ARGS};

/// What a queue does when a publish would take it over x-max-length or x-max-length-bytes (`x-overflow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// `drop-head`: the oldest ready messages are dropped (dead-lettered when a DLX is set).
    #[default]
    DropHead,
    /// `reject-publish`: the new message is refused (nacked on a confirm channel).
    RejectPublish,
    /// `reject-publish-dlx`: the new message is refused and dead-lettered.
    RejectPublishDlx,
}

/// The queue's implementation (`x-queue-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum QueueType {
    /// `classic` (or no type, or `undefined`).
    #[default]
    Classic,
    /// `quorum`: must be durable, neither exclusive nor auto-delete. Warren serves it as one node's queue.
    Quorum,
    /// `stream`: never in a parsed [`QueueArguments`] yet, since Warren refuses stream queues.
    Stream,
}

impl QueueType {
    /// The RabbitMQ module name its refusals print ("of queue type rabbit_quorum_queue").
    fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
            QueueType::Stream => "rabbit_stream_queue",
        }
    }

    /// The arguments this type takes.
    fn arguments(self) -> &'static [&'static str] {
        match self {
            QueueType::Classic => checks::CLASSIC_ARGS,
            QueueType::Quorum => checks::QUORUM_ARGS,
            QueueType::Stream => checks::STREAM_ARGS,
        }
    }

    /// The type an already checked `x-queue-type` names; Classic when absent.
    fn of(arguments: &FieldTable) -> QueueType {
        match arguments
            .inner()
            .get("x-queue-type")
            .and_then(text)
            .as_deref()
        {
            Some("quorum") => QueueType::Quorum,
            Some("stream") => QueueType::Stream,
            _ => QueueType::Classic,
        }
    }
}

/// How a quorum queue dead-letters (`x-dead-letter-strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum DeadLetterStrategy {
    /// `at-most-once`: dead-lettered messages may be lost.
    #[default]
    AtMostOnce,
    /// `at-least-once`: kept until the dead-letter target confirms them.
    AtLeastOnce,
}

/// A classic queue's `x-queue-mode`; RabbitMQ 3.13 accepts it and, since queue version 2, ignores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum QueueMode {
    /// `default`.
    #[default]
    Default,
    /// `lazy`: keep messages on disk rather than in memory.
    Lazy,
}

/// A queue's `x-` arguments, checked. Arguments RabbitMQ does not know are ignored, as RabbitMQ ignores them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "the arguments not enforced yet are read by the work that enforces them"
)]
pub(crate) struct QueueArguments {
    /// `x-message-ttl`: how long a message may wait in the queue, in milliseconds (0 to ten years).
    pub(crate) message_ttl: Option<u64>,
    /// `x-expires`: how long the queue may go unused before it is deleted, in milliseconds (1 to ten years).
    pub(crate) expires: Option<u64>,
    /// `x-max-length`: most ready messages.
    pub(crate) max_length: Option<u64>,
    /// `x-max-length-bytes`: most bytes of ready message bodies.
    pub(crate) max_length_bytes: Option<u64>,
    /// `x-overflow`, if declared, as the queue applies it: a quorum queue treats `reject-publish-dlx` as
    /// `drop-head` (RabbitMQ logs a warning and does the same).
    pub(crate) overflow: Option<Overflow>,
    /// `x-dead-letter-exchange`: where dropped, expired and rejected messages go ("" is the default exchange).
    pub(crate) dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`: the key they are republished with (only allowed with an exchange).
    pub(crate) dead_letter_routing_key: Option<String>,
    /// `x-dead-letter-strategy` (quorum queues), if declared.
    pub(crate) dead_letter_strategy: Option<DeadLetterStrategy>,
    /// `x-max-priority`, as the queue applies it: RabbitMQ gives a queue declared with 0 priorities 0 and 1
    /// (`rabbit_priority_queue`: at least 1), so 0 reads as 1 here. Classic queues only.
    pub(crate) max_priority: Option<u8>,
    /// `x-single-active-consumer`: only one consumer receives at a time.
    pub(crate) single_active_consumer: bool,
    /// `x-queue-type`.
    pub(crate) queue_type: QueueType,
    /// `x-delivery-limit` (quorum queues): redeliveries before a message is dead-lettered. RabbitMQ 3.13 does not
    /// check it on declare; a value that is not a non-negative integer is ignored here.
    pub(crate) delivery_limit: Option<u64>,
    /// `x-delivery-limit` is a negative integer: RabbitMQ 4 reads that as no limit, where it would otherwise apply
    /// its default of 20 (the `4.x` compatibility profile).
    pub(crate) delivery_limit_disabled: bool,
    /// `x-consumer-timeout`, in milliseconds: RabbitMQ 3.13 reads it (the smaller of it and a policy's) but never
    /// checks it; a value that is not a non-negative integer is ignored, as RabbitMQ ends up ignoring it.
    pub(crate) consumer_timeout: Option<u64>,
    /// `x-max-in-memory-length` (quorum queues, deprecated): most ready messages kept in memory.
    pub(crate) max_in_memory_length: Option<u64>,
    /// `x-max-in-memory-bytes` (quorum queues, deprecated): most bytes of ready messages kept in memory.
    pub(crate) max_in_memory_bytes: Option<u64>,
    /// `x-queue-mode` (classic queues).
    pub(crate) queue_mode: QueueMode,
    /// `x-queue-version` (classic queues): 1 or 2, the on-disk index format; Warren has one.
    pub(crate) queue_version: Option<u8>,
    /// `x-queue-master-locator` (classic queues): not checked by RabbitMQ, kept as given when it is a string.
    pub(crate) queue_master_locator: Option<String>,
    /// `x-queue-leader-locator` (quorum queues): client-local, balanced, random or least-leaders.
    pub(crate) queue_leader_locator: Option<String>,
    /// `x-quorum-initial-group-size` (quorum queues): how many nodes hold the queue at first.
    pub(crate) quorum_initial_group_size: Option<u64>,
    /// `x-message-deduplication` (rabbitmq-message-deduplication): neither RabbitMQ nor the plugin checks it, and
    /// the plugin enables deduplication for any value but `false` (Elixir truthiness); classic queues only.
    pub(crate) deduplication: bool,
}

impl QueueArguments {
    /// Checks `arguments` as RabbitMQ 3.13 does on a queue.declare that creates queue `queue` in `vhost`; Err
    /// is the refusal RabbitMQ sends (406, text for text). Checked in RabbitMQ's order: the dead-letter
    /// exchange's type (`rabbit_channel`), `x-queue-type`, the arguments that type takes in `declare_args/0`
    /// order, arguments another type takes, then the type's own declare checks (durable, exclusive,
    /// auto-delete). Stream queues pass all of these and are then refused: Warren has none yet.
    pub(crate) fn parse(
        arguments: &FieldTable,
        queue: &str,
        vhost: &str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> Result<QueueArguments, AmqpError> {
        let table = arguments.inner();
        let resource = format!("queue '{queue}' in vhost '{vhost}'");
        let invalid = |key: &str, refusal: Refusal| {
            AmqpError::precondition(format!("invalid arg '{key}' for {resource}: {refusal}"))
        };
        // rabbit_channel's queue.declare, before rabbit_amqqueue:declare.
        if let Some(dlx) = table.get("x-dead-letter-exchange") {
            if text(dlx).is_none() {
                return Err(AmqpError::precondition(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in {resource}",
                    type_name(dlx)
                )));
            }
        }
        if let Some(kind) = table.get("x-queue-type") {
            checks::Check::QueueType
                .run(kind, arguments)
                .map_err(|r| invalid("x-queue-type", r))?;
        }
        let queue_type = QueueType::of(arguments);
        let takes = queue_type.arguments();
        for (key, check) in DECLARE_ARGS.iter().filter(|(key, _)| takes.contains(key)) {
            if let Some(value) = table.get(*key) {
                check.run(value, arguments).map_err(|r| invalid(key, r))?;
            }
        }
        if let Some(key) = table
            .keys()
            .map(|k| k.as_str())
            .find(|k| known_to_a_type(k) && !takes.contains(k))
        {
            return Err(AmqpError::precondition(format!(
                "invalid arg '{key}' for {resource} of queue type {}",
                queue_type.module()
            )));
        }
        if queue_type != QueueType::Classic {
            // rabbit_queue_type_util's check_auto_delete, check_exclusive, check_non_durable, in that order. An
            // exclusive queue counts as non-durable (rabbit_channel), but the exclusive check comes first.
            let property = if auto_delete {
                Some("auto-delete")
            } else if exclusive {
                Some("exclusive-owner")
            } else if !durable {
                Some("non-durable")
            } else {
                None
            };
            if let Some(property) = property {
                return Err(AmqpError::precondition(format!(
                    "invalid property '{property}' for {resource}"
                )));
            }
        }
        if queue_type == QueueType::Stream {
            return Err(AmqpError::precondition(format!(
                "invalid arg 'x-queue-type' for {resource}: Warren does not support stream queues yet"
            )));
        }
        Ok(QueueArguments::read(arguments, queue_type))
    }

    /// The `x-priority` argument of basic.consume (RabbitMQ's `consume_args`: any AMQP integer, negative
    /// included; 0 without it). A non-integer is refused with RabbitMQ's 406.
    pub(crate) fn consumer_priority(
        arguments: &FieldTable,
        queue: &str,
        vhost: &str,
    ) -> Result<i64, AmqpError> {
        match arguments.inner().get("x-priority") {
            None => Ok(0),
            Some(value) => checks::integer(value).map_err(|refusal| {
                AmqpError::precondition(format!(
                    "invalid arg 'x-priority' for queue '{queue}' in vhost '{vhost}': {refusal}"
                ))
            }),
        }
    }

    /// rabbit_channel's refusal of a server-named queue (an empty name) whose type needs a name: quorum and
    /// stream queues. Checked before anything else on the declare, as RabbitMQ does. An `x-queue-type` that is
    /// not a known type name is left to [`QueueArguments::parse`] (RabbitMQ fails with an internal error there).
    pub(crate) fn check_server_named(arguments: &FieldTable) -> Result<(), AmqpError> {
        match QueueType::of(arguments) {
            QueueType::Classic => Ok(()),
            kind => Err(AmqpError::precondition(format!(
                "Cannot declare a server-named queue for type {}",
                kind.module()
            ))),
        }
    }

    /// The typed values of arguments already checked for `queue_type`.
    fn read(arguments: &FieldTable, queue_type: QueueType) -> QueueArguments {
        let table = arguments.inner();
        let get = |key: &str| table.get(key);
        let count = |key: &str| get(key).and_then(int).and_then(|n| u64::try_from(n).ok());
        let string = |key: &str| get(key).and_then(text);
        let overflow = match string("x-overflow").as_deref() {
            None => None,
            Some("reject-publish") => Some(Overflow::RejectPublish),
            Some("reject-publish-dlx") if queue_type == QueueType::Classic => {
                Some(Overflow::RejectPublishDlx)
            }
            Some(_) => Some(Overflow::DropHead),
        };
        QueueArguments {
            message_ttl: count("x-message-ttl"),
            expires: count("x-expires"),
            max_length: count("x-max-length"),
            max_length_bytes: count("x-max-length-bytes"),
            overflow,
            dead_letter_exchange: string("x-dead-letter-exchange"),
            dead_letter_routing_key: string("x-dead-letter-routing-key"),
            dead_letter_strategy: match string("x-dead-letter-strategy").as_deref() {
                None => None,
                Some("at-least-once") => Some(DeadLetterStrategy::AtLeastOnce),
                Some(_) => Some(DeadLetterStrategy::AtMostOnce),
            },
            max_priority: count("x-max-priority").and_then(|n| u8::try_from(n.max(1)).ok()),
            single_active_consumer: matches!(
                get("x-single-active-consumer"),
                Some(AMQPValue::Boolean(true))
            ),
            queue_type,
            delivery_limit: count("x-delivery-limit"),
            delivery_limit_disabled: get("x-delivery-limit").and_then(int).is_some_and(|n| n < 0),
            consumer_timeout: count("x-consumer-timeout"),
            max_in_memory_length: count("x-max-in-memory-length"),
            max_in_memory_bytes: count("x-max-in-memory-bytes"),
            queue_mode: match string("x-queue-mode").as_deref() {
                Some("lazy") => QueueMode::Lazy,
                _ => QueueMode::Default,
            },
            queue_version: count("x-queue-version").and_then(|n| u8::try_from(n).ok()),
            queue_master_locator: string("x-queue-master-locator"),
            queue_leader_locator: string("x-queue-leader-locator"),
            quorum_initial_group_size: count("x-quorum-initial-group-size"),
            deduplication: !matches!(
                get("x-message-deduplication"),
                None | Some(AMQPValue::Boolean(false))
            ),
        }
    }
}
