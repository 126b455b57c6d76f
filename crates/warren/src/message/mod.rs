//! A published message as the broker holds it: the raw content header and the body, shared by every queue it was
//! routed to (one copy for a fan-out to ten queues); and the copy dead-lettering makes of one ([`dead_letter`]).

// The queue actor's dead-lettering, being written beside this, is the caller; until it lands only the unit tests
// use this module.
#[allow(dead_code)]
pub(crate) mod dead_letter;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use warren_protocol::content::{decode_properties, delivery_mode};
use warren_protocol::error::AmqpError;
use warren_protocol::{basic::AMQPProperties, FieldTable};

/// Node-unique message ids; the message store keys bodies by them.
static NEXT_MESSAGE_ID: AtomicU64 = AtomicU64::new(1);

/// A published message, immutable once assembled and shared by every queue it was routed to.
#[derive(Debug)]
pub(crate) struct Message {
    /// Node-unique id: the message store's key for it.
    pub(crate) id: u64,
    /// The exchange it was published to (basic.deliver carries it).
    pub(crate) exchange: Arc<str>,
    /// The routing key it was published with.
    pub(crate) routing_key: Arc<str>,
    /// Property flags and list exactly as published: consumers receive them byte for byte.
    pub(crate) properties_raw: Bytes,
    /// The body, often a zero-copy slice of the publisher's read buffer.
    pub(crate) body: Bytes,
    /// delivery_mode = 2.
    pub(crate) persistent: bool,
}

impl Message {
    /// A freshly published message with a new id.
    pub(crate) fn new(
        exchange: Arc<str>,
        routing_key: Arc<str>,
        properties_raw: Bytes,
        body: Bytes,
    ) -> Message {
        let persistent = delivery_mode(&properties_raw) == Some(2);
        Message {
            id: NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed),
            exchange,
            routing_key,
            properties_raw,
            body,
            persistent,
        }
    }

    /// A message read back from the store: it keeps the id it was stored under.
    pub(crate) fn restored(
        id: u64,
        exchange: &str,
        routing_key: &str,
        properties_raw: Bytes,
        body: Bytes,
    ) -> Message {
        Message {
            id,
            exchange: Arc::from(exchange),
            routing_key: Arc::from(routing_key),
            persistent: delivery_mode(&properties_raw) == Some(2),
            properties_raw,
            body,
        }
    }

    /// Decodes the properties; called only where routing or policy needs one.
    pub(crate) fn properties(&self) -> Result<AMQPProperties, AmqpError> {
        decode_properties(&self.properties_raw)
    }

    /// The headers table, if the message has one and it decodes.
    pub(crate) fn headers(&self) -> Option<FieldTable> {
        self.properties().ok()?.headers().clone()
    }

    /// The body's length in bytes.
    pub(crate) fn body_size(&self) -> u64 {
        self.body.len() as u64
    }
}

/// Makes new message ids start above every id the store recovered, so ids stay unique across restarts.
pub(crate) fn continue_ids_above(max_recovered: u64) {
    NEXT_MESSAGE_ID.fetch_max(max_recovered + 1, Ordering::Relaxed);
}

/// A message in a queue: the shared message plus the queue's own position and delivery state.
#[derive(Clone, Debug)]
pub(crate) struct QueuedMessage {
    /// Position in the queue; requeued messages go back to the place this number gives them.
    pub(crate) seq: u64,
    /// The message.
    pub(crate) message: Arc<Message>,
    /// Delivered before (requeued, or recovered after a restart).
    pub(crate) redelivered: bool,
}
