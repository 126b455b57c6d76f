//! The queue's way back to whoever holds it (the vhost), passed in at spawn so that the queue layer names no vhost.

use std::sync::Arc;

use super::QueueHandle;
use crate::message::dead_letter::DeathReason;
use crate::message::Message;

/// Messages that died in a queue, for its owner to publish to the queue's dead-letter exchange.
pub(crate) struct DeadLetters {
    /// `x-dead-letter-exchange`.
    pub(crate) exchange: String,
    /// `x-dead-letter-routing-key`, which replaces the messages' own keys.
    pub(crate) routing_key: Option<String>,
    /// The messages, in the order they died, and why.
    pub(crate) letters: Vec<(Arc<Message>, DeathReason)>,
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
    fn dead_letter(&self, from: &Arc<QueueHandle>, dead: DeadLetters);
}
