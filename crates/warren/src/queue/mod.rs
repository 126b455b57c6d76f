//! Queues: one tokio task (actor) per queue with a bounded inbox. The handle here is what channels and the vhost
//! hold; the actor owns the messages, consumers and unacked deliveries.

mod actor;
pub(crate) mod arguments;
mod at_least_once;
mod consumer;
pub(crate) mod dead_letter_batch;
pub(crate) mod dedup;
pub(crate) mod flow;
pub(crate) mod gauges;
mod owner;
mod paging;
mod ready;
pub(crate) mod settings;
pub(crate) mod sink;
mod state;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::message::Message;
use crate::session::ConfirmRef;
use settings::QueueSettings;
use sink::DeliverySink;
use warren_protocol::error::AmqpError;
use warren_protocol::FieldTable;

pub(crate) use actor::{spawn_queue, QueueStorage};
pub(crate) use consumer::QueueConsumer;
pub(crate) use owner::{DeadLetter, DeadLetters, QueueOwner};
pub(crate) use paging::{NodeMemory, QueueMemory};

/// Messages per publish command at most: with the inbox's capacity in commands (`queue::actor`), this bounds the
/// messages waiting in one queue's inbox.
pub(crate) const MAX_RUN: usize = 128;

/// One message for a queue, with that queue's share of the publisher's confirm.
pub(crate) struct Enqueue {
    /// The message; shared by every queue it was routed to.
    pub(crate) message: Arc<Message>,
    /// This queue's share of the publisher confirm, released once the message is enqueued.
    pub(crate) confirm: Option<ConfirmRef>,
}

/// One dead-lettered copy for a target queue of at-least-once dead-lettering, with that queue's share of its
/// receipt.
pub(crate) struct DeadLetterEnqueue {
    /// The dead-lettered copy; shared by every target queue.
    pub(crate) message: Arc<Message>,
    /// Released once the copy is enqueued; refused when the queue is full under `reject-publish`.
    pub(crate) share: dead_letter_batch::LetterShare,
}

/// Commands a queue accepts through its inbox.
pub(crate) enum QueueCommand {
    /// Messages in publish order, each holding its confirm share until it is enqueued (the store holds its own
    /// share until the fsync).
    Publish(Vec<Enqueue>),
    /// Copies dead-lettered at least once by another queue: enqueued as published messages are, each share
    /// released once its copy is enqueued (or refused, which makes the source retry it).
    PublishDeadLetters(Vec<DeadLetterEnqueue>),
    /// The receipt of a batch this queue dead-lettered at least once (see [`dead_letter_batch`]): which letters
    /// every target holds. Sent on the settlement path.
    DeadLettersSettled {
        /// The batch's number.
        batch: u64,
        /// What became of each of its letters.
        outcomes: Vec<dead_letter_batch::LetterOutcome>,
    },
    /// Adds a consumer.
    Consume {
        /// The consumer, with its sink and prefetch.
        consumer: QueueConsumer,
        /// Send basic.consume-ok before any delivery.
        send_ok: bool,
        /// Ok once registered; 403 when the queue is in exclusive use.
        reply: oneshot::Sender<Result<(), AmqpError>>,
    },
    /// Client cancel: cancel-ok (unless nowait) is written by the queue after its last delivery to the consumer.
    Cancel {
        /// The channel the consumer is on (tags are unique per channel only).
        sink: Arc<dyn DeliverySink>,
        /// The tag to cancel.
        consumer_tag: Arc<str>,
        /// Write basic.cancel-ok after the last delivery to it.
        send_ok: bool,
        /// Answered once the consumer is gone.
        reply: oneshot::Sender<()>,
    },
    /// basic.get: answered through the sink with get-ok or get-empty.
    Get {
        /// The channel that asked, which gets get-ok or get-empty.
        sink: Arc<dyn DeliverySink>,
        /// The message counts as acknowledged on delivery.
        no_ack: bool,
    },
    /// Acknowledge, requeue or drop unacked deliveries.
    Settle {
        /// (queue sequence number, consumer id) of each delivery; consumer None for basic.get.
        deliveries: Vec<(u64, Option<u64>)>,
        /// Ack, requeue or discard them.
        action: SettleAction,
    },
    /// The queue's settings changed (a policy was set, changed or cleared): apply
    /// [`QueueHandle::settings`] now, to the messages already in the queue too.
    Reconfigure,
    /// A channel closed: forget its consumers.
    ChannelClosed {
        /// The channel that closed.
        sink: Arc<dyn DeliverySink>,
    },
    /// Asks for the message and consumer counts (queue.declare-ok).
    Stats {
        /// The answer.
        reply: oneshot::Sender<QueueStats>,
    },
    /// Asks for what the management API shows of the queue; unlike [`QueueCommand::Stats`] not a use (an
    /// `x-expires` queue listed by a monitoring tool still expires).
    Inspect {
        /// The answer.
        reply: oneshot::Sender<QueueInspection>,
    },
    /// Drops every ready message (queue.purge); replies with how many.
    Purge {
        /// The number dropped.
        reply: oneshot::Sender<u32>,
    },
    /// Delete the queue (after checking the conditions); replies with the number of ready messages dropped.
    Delete {
        /// Refuse (406) while the queue has consumers.
        if_unused: bool,
        /// Refuse (406) while the queue has ready messages.
        if_empty: bool,
        /// The channel that asked, if a channel did: its own consumers are not sent basic.cancel by the queue but
        /// named in the reply, for the channel to cancel after its delete-ok (see [`QueueDeleted`]).
        requester: Option<Arc<dyn DeliverySink>>,
        /// What was deleted, or the refusal.
        reply: oneshot::Sender<Result<QueueDeleted, AmqpError>>,
    },
}

/// What a settlement does with the deliveries it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SettleAction {
    /// basic.ack: the messages are done with.
    Ack,
    /// nack/reject with requeue, or the channel closed: back to their place in the queue, marked redelivered.
    Requeue,
    /// nack/reject without requeue: dropped.
    Discard,
}

/// A queue's answer to a delete it carried out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueDeleted {
    /// The ready messages dropped, as queue.delete-ok reports them.
    pub(crate) messages: u32,
    /// The tags of the requesting channel's consumers that want basic.cancel: RabbitMQ's channel sends it after
    /// queue.delete-ok (the queue's notice waits in the channel process's mailbox while it answers the delete),
    /// and clients such as py-amqp rely on that order, so the channel writes these after its reply.
    pub(crate) cancel_after_reply: Vec<Arc<str>>,
}

/// A queue's counts, as queue.declare-ok reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueStats {
    /// Ready messages.
    pub(crate) messages: u32,
    /// Consumers.
    pub(crate) consumers: u32,
}

/// What the management API shows of a queue's state (RabbitMQ's `messages_ready`, `messages_unacknowledged`,
/// `consumer_details`, `message_bytes_ready`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueInspection {
    /// Ready messages.
    pub(crate) ready: u64,
    /// Delivered, not yet acknowledged.
    pub(crate) unacked: u64,
    /// Body bytes of the ready messages.
    pub(crate) ready_bytes: u64,
    /// Its consumers, in dispatch order.
    pub(crate) consumers: Vec<ConsumerInspection>,
    /// `x-message-deduplication`: the deduplication keys its messages hold; None when it does not deduplicate.
    pub(crate) dedup_keys: Option<u64>,
    /// A replicated queue's group: its members and leader; None for a queue of this node alone.
    pub(crate) replicas: Option<Replicas>,
    /// The node a classic queue of the cluster lives on, when it is another node (RabbitMQ's `node`).
    pub(crate) home: Option<String>,
}

/// A replicated queue's members as the management API shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Replicas {
    /// The node leading its group, if one is known.
    pub(crate) leader: Option<String>,
    /// Its voting members, by node name.
    pub(crate) members: Vec<String>,
}

/// One consumer of a queue as the management API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConsumerInspection {
    /// The consumer tag.
    pub(crate) tag: Arc<str>,
    /// The id of the connection it consumes on.
    pub(crate) connection_id: u64,
    /// Deliveries must be acknowledged.
    pub(crate) ack_required: bool,
    /// basic.consume exclusive.
    pub(crate) exclusive: bool,
    /// Its prefetch (basic.qos global=false); 0 = no limit.
    pub(crate) prefetch: u16,
    /// Its `x-priority`.
    pub(crate) priority: i64,
}

/// The declared properties of a queue.
#[derive(Clone, Debug)]
pub(crate) struct QueueSpec {
    /// The queue's name in its vhost.
    pub(crate) name: Arc<str>,
    /// The vhost's name, for reply texts.
    pub(crate) vhost: Arc<str>,
    /// Survives a restart (its definition and persistent messages are stored).
    pub(crate) durable: bool,
    /// The connection that owns an exclusive queue.
    pub(crate) exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes, once it has had one.
    pub(crate) auto_delete: bool,
    /// The declared `x-` arguments, compared on redeclare and stored.
    pub(crate) arguments: FieldTable,
    /// The same arguments checked and typed: what the queue's actor reads.
    pub(crate) args: arguments::QueueArguments,
    /// The message store's id for a durable queue; None for transient and exclusive queues.
    pub(crate) store_id: Option<u64>,
}

/// What channels and the vhost hold of a queue.
pub(crate) struct QueueHandle {
    /// The declared properties; fixed for the queue's life.
    pub(crate) spec: QueueSpec,
    /// The actor's bounded inbox: publishes, consumes, gets and questions. Bounded, so a publisher whose
    /// queue is behind waits (and stops reading its socket).
    inbox: mpsc::Sender<QueueCommand>,
    /// Settle and ChannelClosed commands, taken before the inbox. Unbounded, but bounded in practice by the
    /// deliveries outstanding.
    settlements: mpsc::UnboundedSender<QueueCommand>,
    /// Wakes the actor when a held-back delivery may proceed (outbound drained, channel credit freed).
    pub(crate) wake: Arc<Notify>,
    /// Whether the queue holds its publishers (its consumers are not keeping up); see [`flow`].
    pub(crate) flow: flow::QueueFlow,
    /// What the queue applies: its arguments combined with the policies that match it. Replaced whole by
    /// [`QueueHandle::reconfigure`].
    settings: ArcSwap<QueueSettings>,
    /// Its message and consumer counts as of its actor's last round, for metrics and listings.
    pub(crate) gauges: gauges::QueueGauges,
}

/// The receiving ends of a queue handle's channels, for the task that serves it.
pub(crate) struct QueueInbox {
    /// Publishes, consumes, gets and questions.
    pub(crate) commands: mpsc::Receiver<QueueCommand>,
    /// Settlements and channel-closed notices, taken first.
    pub(crate) settlements: mpsc::UnboundedReceiver<QueueCommand>,
}

impl QueueHandle {
    /// A handle for `spec` whose commands some task other than [`spawn_queue`]'s actor serves (a replicated
    /// queue's): that task reads the returned inbox.
    pub(crate) fn with_inbox(
        spec: QueueSpec,
        settings: QueueSettings,
    ) -> (Arc<QueueHandle>, QueueInbox) {
        let (inbox, commands) = mpsc::channel(actor::INBOX_CAPACITY);
        let (settlements, settle_receiver) = mpsc::unbounded_channel();
        let handle = Arc::new(QueueHandle {
            spec,
            inbox,
            settlements,
            wake: Arc::new(Notify::new()),
            flow: Default::default(),
            settings: ArcSwap::from_pointee(settings),
            gauges: Default::default(),
        });
        let receivers = QueueInbox {
            commands,
            settlements: settle_receiver,
        };
        (handle, receivers)
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// Sends an ack, nack, reject or channel-closed notice on the priority path; never waits.
    pub(crate) fn settle(&self, command: QueueCommand) {
        // A gone queue has nothing left to settle.
        let _ = self.settlements.send(command);
    }

    /// The settings the queue applies now.
    pub(crate) fn settings(&self) -> Arc<QueueSettings> {
        self.settings.load_full()
    }

    /// Replaces the queue's settings and has its actor apply them at once (ahead of queued publishes, on the
    /// priority path). Unchanged settings cost nothing.
    pub(crate) fn reconfigure(&self, settings: QueueSettings) {
        if *self.settings.load_full() == settings {
            return;
        }
        self.settings.store(Arc::new(settings));
        self.settle(QueueCommand::Reconfigure);
    }

    /// Sends without waiting; gives the command back when the inbox is full.
    pub(crate) fn try_send(&self, command: QueueCommand) -> Result<(), QueueCommand> {
        match self.inbox.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(c)) => Err(c),
            // The queue is gone: dropping the command settles any confirm it held.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Sends, waiting for room: the caller (a connection reader) stops reading its socket meanwhile, which is how
    /// TCP pushes back on a fast publisher. Returns false if the queue is gone.
    pub(crate) async fn send(&self, command: QueueCommand) -> bool {
        match self.try_send(command) {
            Ok(()) => true,
            Err(command) => self.inbox.send(command).await.is_ok(),
        }
    }

    /// Asks for the message and consumer counts; None if the queue is gone.
    pub(crate) async fn stats(&self) -> Option<QueueStats> {
        let (reply, answer) = oneshot::channel();
        if !self.send(QueueCommand::Stats { reply }).await {
            return None;
        }
        answer.await.ok()
    }

    /// Deletes the queue outside a channel (after checking `if_unused` and `if_empty`); the ready messages it held.
    /// A queue gone before it answers was deleted with nothing in it (0).
    pub(crate) async fn delete(&self, if_unused: bool, if_empty: bool) -> Result<u32, AmqpError> {
        let (reply, answer) = oneshot::channel();
        let command = QueueCommand::Delete {
            if_unused,
            if_empty,
            requester: None,
            reply,
        };
        if !self.send(command).await {
            return Ok(0);
        }
        answer
            .await
            .map_or(Ok(0), |deleted| deleted.map(|d| d.messages))
    }

    /// What the management API shows of the queue; None if the queue is gone.
    pub(crate) async fn inspect(&self) -> Option<QueueInspection> {
        let (reply, answer) = oneshot::channel();
        if !self.send(QueueCommand::Inspect { reply }).await {
            return None;
        }
        answer.await.ok()
    }

    /// Whether the queue is exclusive to a connection other than `connection_id` (405 for it).
    pub(crate) fn is_exclusive_to_other(&self, connection_id: u64) -> bool {
        matches!(self.spec.exclusive_owner, Some(owner) if owner != connection_id)
    }
}
