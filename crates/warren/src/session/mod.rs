//! The state of one connection that its channels, its writer task and the queues delivering to it share: the
//! outbound byte queue, the negotiated limits the encoders need, and the publisher confirms waiting to be emitted.
//!
//! This module sits low in the broker: it imports neither `connection`, `channel` nor `queue`, so that a queue can
//! deliver to a channel (through `queue::sink::DeliverySink`) without reaching the connection layer.

pub(crate) mod confirm;
pub(crate) mod outbound;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::message::Message;

pub(crate) use confirm::{ConfirmRef, ConfirmTracker};
pub(crate) use outbound::OutboundQueue;

/// Bytes a connection may have queued for writing before queue actors hold deliveries back.
const OUTBOUND_BUDGET: usize = 1 << 20;

/// Where a connection's deliveries are traced when its vhost has firehose tracing on (implemented by the vhost, so
/// that this module names no vhost).
pub(crate) trait DeliveryTracer: Send + Sync {
    /// Publishes the trace of `message` delivered from `queue` on `channel` of `connection`.
    fn trace_delivery(
        &self,
        message: &Message,
        queue: &str,
        redelivered: bool,
        connection: &ConnectionShared,
        channel: u16,
    );
}

/// A connection's vhost's tracing switch and tracer.
pub(crate) struct DeliveryTracing {
    /// The vhost's switch (`rabbitmqctl trace_on`), read once per delivery.
    pub(crate) on: Arc<AtomicBool>,
    /// The vhost.
    pub(crate) tracer: Arc<dyn DeliveryTracer>,
}

/// What channels, queue deliveries and confirm trackers share of one connection; fixed once the handshake is done.
pub(crate) struct ConnectionShared {
    /// Node-unique connection id: the owner recorded on exclusive queues.
    pub(crate) id: u64,
    /// Encoded frames waiting for the writer task; every producer of frames for this connection appends here, so
    /// the bytes reach the socket in the order they were appended.
    pub(crate) outbound: OutboundQueue,
    /// Negotiated frame_max: message bodies are split into body frames no larger.
    pub(crate) frame_max: u32,
    /// The client announced the `consumer_cancel_notify` capability, so it handles a server-sent basic.cancel
    /// (sent when a queue it consumes from is deleted).
    pub(crate) consumer_cancel_notify: bool,
    /// The client's address, for logs.
    pub(crate) peer: SocketAddr,
    /// The authenticated user: publishes with another user-id property are refused.
    pub(crate) user: String,
    /// RabbitMQ's name of the connection, `<peer> -> <local>`.
    pub(crate) name: String,
    /// Its vhost's firehose tracing; None where nothing traces (unit tests).
    pub(crate) tracing: Option<DeliveryTracing>,
    /// Confirm trackers with settled publishes, emitted by the writer just before its next write so that
    /// everything settled meanwhile goes out coalesced. A std Mutex: it is held only to push or take the list.
    confirm_flushes: Mutex<Vec<Arc<ConfirmTracker>>>,
}

impl ConnectionShared {
    /// The shared state of a connection that has finished its handshake.
    pub(crate) fn new(
        id: u64,
        frame_max: u32,
        consumer_cancel_notify: bool,
        peer: SocketAddr,
        user: String,
        name: String,
        tracing: Option<DeliveryTracing>,
    ) -> Arc<Self> {
        Arc::new(ConnectionShared {
            id,
            outbound: OutboundQueue::new(OUTBOUND_BUDGET),
            frame_max,
            consumer_cancel_notify,
            peer,
            user,
            name,
            tracing,
            confirm_flushes: Mutex::new(Vec::new()),
        })
    }

    /// A connection with no socket, for unit tests of the parts that write to one.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<Self> {
        Self::new(
            0,
            131072,
            true,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "guest".into(),
            "127.0.0.1:0 -> 127.0.0.1:5672".into(),
            None,
        )
    }

    /// Traces a delivery of `message` from `queue` on `channel` if the vhost has tracing on.
    pub(crate) fn trace_delivery(
        &self,
        message: &Message,
        queue: &str,
        redelivered: bool,
        channel: u16,
    ) {
        if let Some(tracing) = &self.tracing {
            if tracing.on.load(Ordering::Relaxed) {
                tracing
                    .tracer
                    .trace_delivery(message, queue, redelivered, self, channel);
            }
        }
    }

    /// Asks the writer to emit the settled confirms of `tracker` before its next write.
    pub(crate) fn schedule_confirm_flush(&self, tracker: Arc<ConfirmTracker>) {
        self.confirm_flushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tracker);
        self.outbound.ready.notify_one();
    }

    /// Takes the trackers scheduled since the last call; the writer flushes each before it writes.
    pub(crate) fn take_confirm_flushes(&self) -> Vec<Arc<ConfirmTracker>> {
        std::mem::take(
            &mut *self
                .confirm_flushes
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}
