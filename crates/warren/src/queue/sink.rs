//! What a queue needs of the channel its consumers and basic.get callers sit on: the [`DeliverySink`] trait, owned
//! here so that the queue layer never names a channel or a connection. The channel side implements it
//! (`channel::delivery_state::DeliveryState`) and encodes everything into AMQP frames; the queue hands over values.

use std::sync::Arc;

use tokio::sync::Notify;

use super::QueueHandle;
use crate::message::QueuedMessage;

/// What happened to an attempted delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DeliverOutcome {
    /// The message is on its way to the client; unless no_ack, the sink records it as unacknowledged.
    Delivered,
    /// The channel's global prefetch is used up: the queue keeps the message and waits for an ack.
    NoChannelCredit,
    /// The channel is closed: the consumer is gone and the queue keeps the message.
    Closed,
}

/// A reply the queue owes a client for a consume, cancel or get it handled, or a cancel it starts itself. The sink
/// encodes it (basic.consume-ok, basic.cancel-ok, basic.get-empty, basic.cancel with nowait) on its channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QueueReply {
    /// The consumer `tag` is registered; no delivery to it precedes this reply.
    ConsumeOk {
        /// The consumer tag, as the client gave it or the channel generated it.
        tag: Arc<str>,
    },
    /// The consumer `tag` is gone; no delivery to it follows this reply.
    CancelOk {
        /// The cancelled consumer's tag.
        tag: Arc<str>,
    },
    /// basic.get found the queue empty.
    GetEmpty,
    /// The queue cancelled the consumer `tag` itself (it is being deleted).
    Cancel {
        /// The cancelled consumer's tag.
        tag: Arc<str>,
    },
}

/// The channel end of a queue's deliveries.
///
/// The queue actor calls these methods from its own task, one at a time per queue; several queues may call one
/// sink concurrently, so an implementation serialises what must be serialised (delivery tags, the order of bytes
/// on the connection) itself. No method may wait: a sink that cannot take a delivery says so and the queue parks
/// the consumer until woken.
///
/// Ordering the implementation must keep: everything a queue hands one sink (deliveries, get answers, replies)
/// reaches the client in the order of the calls. The queue relies on it for two guarantees:
/// - it calls `reply(ConsumeOk)` before the first `deliver` to that consumer, so consume-ok precedes every
///   delivery;
/// - it calls `reply(CancelOk)` after the last `deliver` to that consumer, so cancel-ok follows every delivery.
pub(crate) trait DeliverySink: Send + Sync {
    /// Delivers `msg` to consumer `consumer_tag` (node-unique id `consumer_id`) with basic.deliver, assigning the
    /// delivery tag. Called by the dispatch loop for a consumer with credit whose sink is not over budget. Unless
    /// `no_ack`, the sink records the delivery (naming `queue` and `msg.seq`) to route the client's ack back.
    /// Returns [`DeliverOutcome::NoChannelCredit`] when the channel's global prefetch is spent, after arranging
    /// for `credit_waiter` to be notified when an ack frees credit.
    fn deliver(
        &self,
        queue: &Arc<QueueHandle>,
        consumer_id: u64,
        consumer_tag: &str,
        no_ack: bool,
        msg: &QueuedMessage,
        credit_waiter: &Arc<Notify>,
    ) -> DeliverOutcome;

    /// Answers basic.get with get-ok carrying `msg`, `message_count` being the ready messages left. Called once per
    /// basic.get that found a message. Returns false if the channel is closed: the queue keeps the message.
    fn deliver_get(
        &self,
        queue: &Arc<QueueHandle>,
        no_ack: bool,
        msg: &QueuedMessage,
        message_count: u32,
    ) -> bool;

    /// Sends `reply` to the client, ordered with this queue's deliveries as the trait documentation says.
    fn reply(&self, reply: QueueReply);

    /// True once the channel is closed: the queue drops its consumers on this sink.
    fn is_closed(&self) -> bool;

    /// True while the connection has more bytes waiting for its socket than its budget: the queue delivers
    /// nothing more to this sink until woken through [`DeliverySink::wake_when_drained`].
    fn over_budget(&self) -> bool;

    /// Notifies `waiter` once the connection's queued bytes are back under budget (at once if they already are),
    /// or when the connection closes.
    fn wake_when_drained(&self, waiter: Arc<Notify>);

    /// Forgets consumer `tag` on the channel side: the queue cancelled it (the queue is going away).
    fn forget_consumer(&self, tag: &str);

    /// Whether the client handles a server-sent basic.cancel (the `consumer_cancel_notify` capability).
    fn wants_cancel_notify(&self) -> bool;

    /// The id of the connection the channel is on: a queue never holds its own consumers' connections (see
    /// `queue::flow`).
    fn connection_id(&self) -> u64;
}

/// Whether two sinks are the same channel. Compares the data pointers only: the vtable pointer of one type may
/// differ between codegen units, so comparing fat pointers could call one sink two.
pub(crate) fn same_sink(a: &Arc<dyn DeliverySink>, b: &Arc<dyn DeliverySink>) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}
