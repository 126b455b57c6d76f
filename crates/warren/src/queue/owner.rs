//! The queue's way back to whoever holds it (the vhost), passed in at spawn so that the queue layer names no vhost.

use std::sync::Arc;
use std::time::SystemTime;

use super::dead_letter_batch::DeadLetterBatch;
use super::QueueHandle;
use crate::message::dead_letter::DeathReason;
use crate::message::Message;
use crate::metrics::counters::NodeCounters;
use crate::metrics::NodeMetrics;

/// One message that died in a queue.
pub(crate) struct DeadLetter {
    /// The message as the queue held it.
    pub(crate) message: Arc<Message>,
    /// Why it died.
    pub(crate) reason: DeathReason,
    /// When: the time of its `x-death` entry.
    pub(crate) died_at: SystemTime,
}

/// Messages that died in a queue, for its owner to publish to the queue's dead-letter exchange.
pub(crate) struct DeadLetters {
    /// `x-dead-letter-exchange`.
    pub(crate) exchange: String,
    /// `x-dead-letter-routing-key`, which replaces the messages' own keys.
    pub(crate) routing_key: Option<String>,
    /// The messages, in the order they died.
    pub(crate) letters: Vec<DeadLetter>,
    /// At-least-once dead-lettering: the batch's receipt, letter `i` of it being `letters[i]`. The owner gives each
    /// target queue's copy, and the store's copy for durable targets, a share of it ([`DeadLetterBatch::share`]),
    /// records which letters route somewhere ([`DeadLetterBatch::routed`]) and skips the queues that already hold
    /// a letter ([`DeadLetterBatch::held_by`]). None: at most once, without receipts.
    pub(crate) batch: Option<Arc<DeadLetterBatch>>,
}

/// What a queue asks of its owner. Kept small; a queue holds it weakly (`Weak<dyn QueueOwner>`), so a queue
/// outliving its owner simply finds nobody to ask.
pub(crate) trait QueueOwner: Send + Sync {
    /// Removes `queue` from the owner's tables, with every binding to it and its stored definition.
    ///
    /// Called once, by the queue's actor, when an auto-delete queue has lost its last consumer, and before the
    /// actor sends basic.cancel to the consumers left, so a client told of the cancel no longer finds the queue.
    /// It may block on disk (removing a durable queue commits the definitions store): the actor calls it on the
    /// blocking pool and waits for it to return.
    fn forget_queue(&self, queue: &Arc<QueueHandle>);

    /// Publishes `dead`'s messages, which died in `from`, to its dead-letter exchange. Called by the queue's actor:
    /// it must not block or wait on other queues.
    ///
    /// With a batch (at least once), a letter counts as delivered only once every queue the exchange routes it to
    /// has enqueued its copy and the store has made the copy durable where it is persistent and the queue durable:
    /// the owner hands each of them a share and releases its own hold on the batch when it returns, and the
    /// batch reports to `from` when the last share goes. A letter that routes nowhere, or that a target refuses,
    /// is reported undelivered and `from` keeps it.
    fn dead_letter(&self, from: &Arc<QueueHandle>, dead: DeadLetters);

    /// The node's metrics, which the queue's actor feeds once per round (taken once, at spawn).
    fn metrics(&self) -> Arc<NodeMetrics>;

    /// The counters of the queue's vhost, which the actor feeds with the node's (taken once, at spawn).
    fn vhost_counters(&self) -> Arc<NodeCounters>;
}
