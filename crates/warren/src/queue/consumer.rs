//! A consumer as its queue sees it.

use std::sync::Arc;

use super::sink::DeliverySink;

pub(crate) struct QueueConsumer {
    /// Node-unique, so unacked deliveries name their consumer without comparing tags.
    pub(crate) id: u64,
    pub(crate) tag: Arc<str>,
    /// The channel the consumer subscribed on.
    pub(crate) sink: Arc<dyn DeliverySink>,
    pub(crate) no_ack: bool,
    pub(crate) exclusive: bool,
    /// basic.qos global=false: the most unacked deliveries this consumer may hold; 0 = no limit.
    pub(crate) prefetch: u16,
    pub(crate) in_flight: u32,
}

impl QueueConsumer {
    pub(crate) fn has_credit(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.in_flight < u32::from(self.prefetch)
    }

    pub(crate) fn cancel_notify(&self) -> bool {
        self.sink.wants_cancel_notify()
    }
}
