//! A consumer as its queue sees it.

use std::sync::Arc;

use super::sink::DeliverySink;

pub struct QueueConsumer {
    /// Node-unique, so unacked deliveries name their consumer without comparing tags.
    pub id: u64,
    pub tag: Arc<str>,
    /// The channel the consumer subscribed on.
    pub sink: Arc<dyn DeliverySink>,
    pub no_ack: bool,
    pub exclusive: bool,
    /// basic.qos global=false: the most unacked deliveries this consumer may hold; 0 = no limit.
    pub prefetch: u16,
    pub in_flight: u32,
}

impl QueueConsumer {
    pub fn has_credit(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.in_flight < u32::from(self.prefetch)
    }

    pub fn cancel_notify(&self) -> bool {
        self.sink.wants_cancel_notify()
    }
}
