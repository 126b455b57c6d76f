//! What a queue actually applies: its declared `x-` arguments combined with the policy and operator policy that
//! match it, by RabbitMQ 3.13's rules for each setting and queue type. Pure; the vhost resolves it when a queue
//! is declared and again whenever a policy changes, and the queue's actor and its consumers' channels read it.

use std::sync::Arc;

use super::arguments::{DeadLetterStrategy, Overflow, QueueArguments, QueueType};

/// What a consumer timeout does (Warren's policy key `warren-consumer-timeout-action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ConsumerTimeoutAction {
    /// RabbitMQ's behaviour: the channel is closed with 406 and all its unacknowledged messages are requeued.
    #[default]
    CloseChannel,
    /// The late delivery is requeued and only its consumer is cancelled (basic.cancel); the channel lives on.
    CancelConsumer,
}

/// The queue settings a policy (already merged with the operator policy) sets; None where it sets nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueOverrides {
    /// `message-ttl`.
    pub(crate) message_ttl: Option<u64>,
    /// `expires`.
    pub(crate) expires: Option<u64>,
    /// `max-length`.
    pub(crate) max_length: Option<u64>,
    /// `max-length-bytes`.
    pub(crate) max_length_bytes: Option<u64>,
    /// `overflow`.
    pub(crate) overflow: Option<Overflow>,
    /// `dead-letter-exchange`.
    pub(crate) dead_letter_exchange: Option<String>,
    /// `dead-letter-routing-key`.
    pub(crate) dead_letter_routing_key: Option<String>,
    /// `dead-letter-strategy`.
    pub(crate) dead_letter_strategy: Option<DeadLetterStrategy>,
    /// `delivery-limit`.
    pub(crate) delivery_limit: Option<u64>,
    /// `consumer-timeout`, in milliseconds.
    pub(crate) consumer_timeout: Option<u64>,
    /// `warren-consumer-timeout-action`.
    pub(crate) consumer_timeout_action: Option<ConsumerTimeoutAction>,
    /// `x-message-deduplication` (rabbitmq-message-deduplication's policy key).
    pub(crate) deduplication: Option<bool>,
}

/// The settings a queue applies now. Replaced whole when a policy changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueSettings {
    /// Message TTL in milliseconds.
    pub(crate) message_ttl: Option<u64>,
    /// Unused time after which the queue is deleted, in milliseconds.
    pub(crate) expires: Option<u64>,
    /// Most ready messages.
    pub(crate) max_length: Option<u64>,
    /// Most body bytes of ready messages.
    pub(crate) max_length_bytes: Option<u64>,
    /// What a full queue does.
    pub(crate) overflow: Overflow,
    /// Where messages that die here go.
    pub(crate) dead_letter_exchange: Option<String>,
    /// The routing key they go with instead of their own.
    pub(crate) dead_letter_routing_key: Option<String>,
    /// How they are dead-lettered.
    pub(crate) dead_letter_strategy: DeadLetterStrategy,
    /// Returns before a message is dead-lettered instead of redelivered.
    pub(crate) delivery_limit: Option<u64>,
    /// How long a delivery may stay unacknowledged, in milliseconds; None: the node's `consumer_timeout`.
    pub(crate) consumer_timeout: Option<u64>,
    /// What happens when it does.
    pub(crate) consumer_timeout_action: ConsumerTimeoutAction,
    /// Drops a message whose `x-deduplication-header` a message in the queue already has (`queue::dedup`).
    pub(crate) deduplication: bool,
    /// The policy applied, by name (listed by the management API).
    pub(crate) policy: Option<Arc<str>>,
    /// The operator policy applied, by name.
    pub(crate) operator_policy: Option<Arc<str>>,
}

/// What the node's compatibility profile (`config::Compatibility`) sets for the queues of every vhost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeQueueDefaults {
    /// The delivery limit of a quorum queue whose arguments and policies set none; None: unlimited.
    pub(crate) quorum_delivery_limit: Option<u64>,
    /// Whether a queue neither durable nor exclusive may be declared (RabbitMQ's deprecated feature
    /// `transient_nonexcl_queues`).
    pub(crate) transient_nonexclusive: bool,
}

impl NodeQueueDefaults {
    /// Applies the node's defaults to what a queue's arguments and policies resolved to.
    pub(crate) fn complete(&self, args: &QueueArguments, settings: &mut QueueSettings) {
        if args.queue_type == QueueType::Quorum
            && settings.delivery_limit.is_none()
            && !args.delivery_limit_disabled
        {
            settings.delivery_limit = self.quorum_delivery_limit;
        }
    }
}

/// Which of an argument and a policy value wins when both are set.
#[derive(Clone, Copy)]
enum Rule {
    /// The smaller (limits and TTLs).
    Min,
    /// The queue's argument (`res_arg` in `rabbit_amqqueue_process`, `queueArgHasPrecedence` in quorum queues).
    Argument,
    /// The policy's value (`policyHasPrecedence` in quorum queues).
    Policy,
}

fn pick<T: Ord>(rule: Rule, argument: Option<T>, policy: Option<T>) -> Option<T> {
    match (argument, policy) {
        (Some(a), Some(p)) => Some(match rule {
            Rule::Min => a.min(p),
            Rule::Argument => a,
            Rule::Policy => p,
        }),
        (a, p) => a.or(p),
    }
}

impl QueueSettings {
    /// Combines the declared `args` with what the matching policies set (`policy`, already merged with the
    /// operator policy), as RabbitMQ 3.13 does for the queue's type: a classic queue takes the smaller of two
    /// limits or TTLs and its own dead-letter and overflow arguments (`rabbit_amqqueue_process:process_args_policy`);
    /// a quorum queue takes the policy's `overflow` and `expires` over its arguments (`rabbit_quorum_queue`).
    pub(crate) fn resolve(
        args: &QueueArguments,
        policy: &QueueOverrides,
        policy_name: Option<Arc<str>>,
        operator_policy_name: Option<Arc<str>>,
    ) -> QueueSettings {
        let quorum = args.queue_type == QueueType::Quorum;
        let (expires_rule, overflow_rule) = match quorum {
            true => (Rule::Policy, Rule::Policy),
            false => (Rule::Min, Rule::Argument),
        };
        let mut overflow =
            pick_overflow(overflow_rule, args.overflow, policy.overflow).unwrap_or_default();
        if quorum && overflow == Overflow::RejectPublishDlx {
            // RabbitMQ's quorum queues log a warning and drop the head instead.
            overflow = Overflow::DropHead;
        }
        let dead_letter_exchange = match &args.dead_letter_exchange {
            Some(x) => Some(x.clone()),
            None => policy.dead_letter_exchange.clone(),
        };
        let dead_letter_routing_key = match &args.dead_letter_routing_key {
            Some(k) => Some(k.clone()),
            None => policy.dead_letter_routing_key.clone(),
        };
        QueueSettings {
            message_ttl: pick(Rule::Min, args.message_ttl, policy.message_ttl),
            expires: pick(expires_rule, args.expires, policy.expires),
            max_length: pick(Rule::Min, args.max_length, policy.max_length),
            max_length_bytes: pick(Rule::Min, args.max_length_bytes, policy.max_length_bytes),
            overflow,
            dead_letter_exchange,
            dead_letter_routing_key,
            dead_letter_strategy: args
                .dead_letter_strategy
                .or(policy.dead_letter_strategy)
                .unwrap_or_default(),
            delivery_limit: pick(Rule::Min, args.delivery_limit, policy.delivery_limit),
            consumer_timeout: pick(Rule::Min, args.consumer_timeout, policy.consumer_timeout),
            consumer_timeout_action: policy.consumer_timeout_action.unwrap_or_default(),
            // The plugin looks the key up in the policy's definition before the arguments, and only classic
            // queues (its backing queue) deduplicate.
            deduplication: !quorum && policy.deduplication.unwrap_or(args.deduplication),
            policy: policy_name,
            operator_policy: operator_policy_name,
        }
    }
}

impl QueueSettings {
    /// Whether messages that die in a queue of `queue_type` are dead-lettered at least once: kept until every
    /// target holds them. RabbitMQ 3.13 does so only for a quorum queue with a dead-letter exchange, the
    /// `at-least-once` strategy and `reject-publish` overflow (`rabbit_quorum_queue:dlh/5`); classic queues always
    /// dead-letter at most once.
    pub(crate) fn at_least_once(&self, queue_type: QueueType) -> bool {
        self.asks_at_least_once(queue_type) && self.overflow == Overflow::RejectPublish
    }

    /// Whether the queue asks for at-least-once dead-lettering but, its overflow being `drop-head`, falls back to
    /// at most once: RabbitMQ logs a warning and does the same (a queue that drops its head cannot keep what it
    /// drops).
    pub(crate) fn at_least_once_falls_back(&self, queue_type: QueueType) -> bool {
        self.asks_at_least_once(queue_type) && self.overflow != Overflow::RejectPublish
    }

    fn asks_at_least_once(&self, queue_type: QueueType) -> bool {
        queue_type == QueueType::Quorum
            && self.dead_letter_exchange.is_some()
            && self.dead_letter_strategy == DeadLetterStrategy::AtLeastOnce
    }
}

fn pick_overflow(
    rule: Rule,
    argument: Option<Overflow>,
    policy: Option<Overflow>,
) -> Option<Overflow> {
    match (argument, policy) {
        (Some(a), Some(p)) => Some(match rule {
            Rule::Policy => p,
            Rule::Argument | Rule::Min => a,
        }),
        (a, p) => a.or(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic() -> QueueArguments {
        QueueArguments::default()
    }

    fn quorum() -> QueueArguments {
        QueueArguments {
            queue_type: QueueType::Quorum,
            ..QueueArguments::default()
        }
    }

    #[test]
    fn limits_and_ttls_take_the_smaller_of_argument_and_policy() {
        let args = QueueArguments {
            message_ttl: Some(5000),
            max_length: Some(10),
            expires: Some(60_000),
            ..classic()
        };
        let policy = QueueOverrides {
            message_ttl: Some(1000),
            max_length: Some(100),
            max_length_bytes: Some(4096),
            expires: Some(120_000),
            ..QueueOverrides::default()
        };
        let s = QueueSettings::resolve(&args, &policy, Some("p".into()), None);
        assert_eq!(s.message_ttl, Some(1000));
        assert_eq!(s.max_length, Some(10));
        assert_eq!(s.max_length_bytes, Some(4096));
        assert_eq!(s.expires, Some(60_000));
        assert_eq!(s.policy.as_deref(), Some("p"));
    }

    #[test]
    fn a_classic_queue_keeps_its_own_dead_letter_and_overflow_arguments() {
        let args = QueueArguments {
            dead_letter_exchange: Some("mine".into()),
            overflow: Some(Overflow::RejectPublish),
            ..classic()
        };
        let policy = QueueOverrides {
            dead_letter_exchange: Some("policy".into()),
            dead_letter_routing_key: Some("rk".into()),
            overflow: Some(Overflow::DropHead),
            ..QueueOverrides::default()
        };
        let s = QueueSettings::resolve(&args, &policy, None, None);
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("mine"));
        assert_eq!(s.dead_letter_routing_key.as_deref(), Some("rk"));
        assert_eq!(s.overflow, Overflow::RejectPublish);
        // Without the argument, the policy's overflow applies.
        let s = QueueSettings::resolve(&classic(), &policy, None, None);
        assert_eq!(s.overflow, Overflow::DropHead);
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("policy"));
    }

    #[test]
    fn a_quorum_queue_takes_the_policys_overflow_and_expires() {
        let args = QueueArguments {
            expires: Some(1000),
            overflow: Some(Overflow::RejectPublish),
            delivery_limit: Some(5),
            ..quorum()
        };
        let policy = QueueOverrides {
            expires: Some(9000),
            overflow: Some(Overflow::RejectPublishDlx),
            delivery_limit: Some(3),
            ..QueueOverrides::default()
        };
        let s = QueueSettings::resolve(&args, &policy, None, None);
        assert_eq!(s.expires, Some(9000));
        // reject-publish-dlx is drop-head on a quorum queue.
        assert_eq!(s.overflow, Overflow::DropHead);
        assert_eq!(s.delivery_limit, Some(3));
    }

    #[test]
    fn at_least_once_needs_a_quorum_queue_a_dead_letter_exchange_and_reject_publish() {
        let args = QueueArguments {
            dead_letter_exchange: Some("dlx".into()),
            dead_letter_strategy: Some(DeadLetterStrategy::AtLeastOnce),
            overflow: Some(Overflow::RejectPublish),
            ..quorum()
        };
        let none = QueueOverrides::default();
        let s = QueueSettings::resolve(&args, &none, None, None);
        assert!(s.at_least_once(QueueType::Quorum));
        assert!(!s.at_least_once_falls_back(QueueType::Quorum));
        assert!(
            !s.at_least_once(QueueType::Classic),
            "classic queues: at most once"
        );
        // drop-head (the default): at most once, with a warning.
        let drop_head = QueueArguments {
            overflow: None,
            ..args.clone()
        };
        let s = QueueSettings::resolve(&drop_head, &none, None, None);
        assert!(!s.at_least_once(QueueType::Quorum));
        assert!(s.at_least_once_falls_back(QueueType::Quorum));
        // Without a dead-letter exchange there is nothing to dead-letter.
        let no_dlx = QueueArguments {
            dead_letter_exchange: None,
            ..args.clone()
        };
        let s = QueueSettings::resolve(&no_dlx, &none, None, None);
        assert!(!s.at_least_once(QueueType::Quorum));
        assert!(!s.at_least_once_falls_back(QueueType::Quorum));
        // A policy sets all three on a quorum queue; the queue's own strategy argument wins over the policy's.
        let policy = QueueOverrides {
            dead_letter_exchange: Some("dlx".into()),
            dead_letter_strategy: Some(DeadLetterStrategy::AtLeastOnce),
            overflow: Some(Overflow::RejectPublish),
            ..QueueOverrides::default()
        };
        let s = QueueSettings::resolve(&quorum(), &policy, None, None);
        assert!(s.at_least_once(QueueType::Quorum));
        let at_most = QueueArguments {
            dead_letter_strategy: Some(DeadLetterStrategy::AtMostOnce),
            ..quorum()
        };
        let s = QueueSettings::resolve(&at_most, &policy, None, None);
        assert!(!s.at_least_once(QueueType::Quorum));
    }

    #[test]
    fn without_a_policy_the_arguments_apply_as_declared() {
        let args = QueueArguments {
            message_ttl: Some(7),
            consumer_timeout: Some(100),
            ..classic()
        };
        let s = QueueSettings::resolve(&args, &QueueOverrides::default(), None, None);
        assert_eq!(s.message_ttl, Some(7));
        assert_eq!(s.consumer_timeout, Some(100));
        assert_eq!(
            s.consumer_timeout_action,
            ConsumerTimeoutAction::CloseChannel
        );
        assert!(s.policy.is_none());
    }
}
