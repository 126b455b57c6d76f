//! The queue's way back to whoever holds it (the vhost), passed in at spawn so that the queue layer names no vhost.

use std::sync::Arc;

use super::QueueHandle;

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
}
