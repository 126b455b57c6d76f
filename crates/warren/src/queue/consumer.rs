//! A consumer as its queue sees it.

use std::sync::Arc;

use super::sink::DeliverySink;

/// A consumer as its queue sees it: where to deliver, and its credit.
pub(crate) struct QueueConsumer {
    /// Node-unique, so unacked deliveries name their consumer without comparing tags.
    pub(crate) id: u64,
    /// The consumer tag, unique on its channel.
    pub(crate) tag: Arc<str>,
    /// The channel the consumer subscribed on.
    pub(crate) sink: Arc<dyn DeliverySink>,
    /// Deliveries count as acknowledged at once (no unacked record, no credit used).
    pub(crate) no_ack: bool,
    /// basic.consume exclusive: no other consumer may join the queue.
    pub(crate) exclusive: bool,
    /// basic.qos global=false: the most unacked deliveries this consumer may hold; 0 = no limit.
    pub(crate) prefetch: u16,
    /// Unacked deliveries it holds, against `prefetch`.
    pub(crate) in_flight: u32,
    /// The `x-priority` consume argument: consumers of a higher priority receive while any of them can.
    pub(crate) priority: i64,
}

impl QueueConsumer {
    /// Whether it may take another delivery now.
    pub(crate) fn has_credit(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.in_flight < u32::from(self.prefetch)
    }

    /// Whether its client wants basic.cancel when the queue goes.
    pub(crate) fn cancel_notify(&self) -> bool {
        self.sink.wants_cancel_notify()
    }
}
