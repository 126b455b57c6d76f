//! What nodes say to each other about a classic queue: the calls another node makes to the queue's home node
//! (`POST /classic`, postcard-encoded and signed as every inter-node request) and their answers.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::message::{Expiry, Message, QueuedMessage};
use crate::queue::sink::QueueReply;
use crate::queue::SettleAction;
use warren_protocol::error::{AmqpError, ReplyCode};

/// One call for queue `queue` of vhost `vhost` on its home node.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RemoteRequest {
    /// The vhost.
    pub(crate) vhost: String,
    /// The queue.
    pub(crate) queue: String,
    /// What is asked.
    pub(crate) call: RemoteCall,
}

/// What another node asks of a classic queue. A *session* stands for one channel of the asking node: its
/// consumers, gets and unacknowledged deliveries, requeued when the session closes (or is not polled for
/// [`SESSION_IDLE`](super::home::SESSION_IDLE)).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteCall {
    /// Enqueue these messages; answered once each is enqueued (and on disk, where persistent and the queue
    /// durable) or refused.
    Publish(Vec<WireMessage>),
    /// basic.consume on the session.
    Consume {
        /// The session.
        session: u64,
        /// The consumer tag.
        tag: String,
        /// Deliveries need no ack.
        no_ack: bool,
        /// basic.consume exclusive.
        exclusive: bool,
        /// Its prefetch (basic.qos global=false).
        prefetch: u16,
        /// Its `x-priority`.
        priority: i64,
    },
    /// basic.cancel of the session's consumer `tag`.
    Cancel {
        /// The session.
        session: u64,
        /// The consumer tag.
        tag: String,
    },
    /// basic.get on the session: answered through its events (get-ok or get-empty).
    Get {
        /// The session.
        session: u64,
        /// The message counts as acknowledged on delivery.
        no_ack: bool,
    },
    /// Acks, nacks and rejects: (queue sequence number, home consumer id; None for a get).
    Settle {
        /// The deliveries.
        deliveries: Vec<(u64, Option<u64>)>,
        /// What to do with them.
        action: WireSettle,
    },
    /// What happened on the session since the last poll; waits up to [`POLL_WAIT`](super::home::POLL_WAIT) for
    /// something to happen.
    Poll {
        /// The session.
        session: u64,
        /// False: only keep the session open (its channel cannot take more now), answered at once with nothing.
        take: bool,
    },
    /// The session's channel closed: its consumers go, its unacknowledged deliveries are requeued.
    CloseSession {
        /// The session.
        session: u64,
    },
    /// Message and consumer counts.
    Stats,
    /// What the management API shows.
    Inspect,
    /// queue.purge.
    Purge,
    /// queue.delete with its conditions.
    Delete {
        /// Refuse while it has consumers.
        if_unused: bool,
        /// Refuse while it has ready messages.
        if_empty: bool,
    },
}

/// The answer to a [`RemoteCall`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteAnswer {
    /// Done.
    Done,
    /// The home node has no such queue (deleted meanwhile).
    NoQueue,
    /// Refused with an AMQP error.
    Refused(WireError),
    /// Per published message, in order: whether it was refused (to be nacked).
    Published(Vec<bool>),
    /// A consumer was added; its id on the home node.
    Consumed(u64),
    /// A session's events, in order.
    Events(Vec<SessionEvent>),
    /// Ready messages and consumers.
    Stats {
        /// Ready messages.
        messages: u32,
        /// Consumers.
        consumers: u32,
    },
    /// What the management API shows.
    Inspection(WireInspection),
    /// Ready messages dropped or deleted with the queue.
    Count(u32),
}

/// An AMQP error carried between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireError {
    /// Its reply code.
    pub(crate) code: u16,
    /// Its text.
    pub(crate) text: String,
}

impl From<&AmqpError> for WireError {
    fn from(e: &AmqpError) -> WireError {
        WireError {
            code: e.code as u16,
            text: e.text.clone(),
        }
    }
}

impl WireError {
    /// The AMQP error it carries, its text as the home node wrote it (an unknown code becomes 541).
    pub(crate) fn to_error(&self) -> AmqpError {
        let code = ReplyCode::from_u16(self.code).unwrap_or(ReplyCode::InternalError);
        AmqpError {
            code,
            text: self.text.clone(),
            class_id: 0,
            method_id: 0,
            scope: code.scope(),
        }
    }
}

/// What a settlement does.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum WireSettle {
    /// basic.ack.
    Ack,
    /// Requeued.
    Requeue,
    /// Dropped.
    Discard,
}

impl From<SettleAction> for WireSettle {
    fn from(a: SettleAction) -> WireSettle {
        match a {
            SettleAction::Ack => WireSettle::Ack,
            SettleAction::Requeue => WireSettle::Requeue,
            SettleAction::Discard => WireSettle::Discard,
        }
    }
}

impl From<WireSettle> for SettleAction {
    fn from(a: WireSettle) -> SettleAction {
        match a {
            WireSettle::Ack => SettleAction::Ack,
            WireSettle::Requeue => SettleAction::Requeue,
            WireSettle::Discard => SettleAction::Discard,
        }
    }
}

/// A message between nodes: as published, with the expiration the publishing node read from it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireMessage {
    /// The exchange it was published to.
    pub(crate) exchange: String,
    /// Its routing key.
    pub(crate) routing_key: String,
    /// Its properties as published.
    #[serde(with = "crate::cluster::codec::serde_bytes")]
    pub(crate) properties: Bytes,
    /// Its body.
    #[serde(with = "crate::cluster::codec::serde_bytes")]
    pub(crate) body: Bytes,
    /// Its `expiration` in milliseconds, when it has a valid one.
    pub(crate) expiration: Option<u64>,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> WireMessage {
        WireMessage {
            exchange: m.exchange.to_string(),
            routing_key: m.routing_key.to_string(),
            properties: m.properties_raw.clone(),
            body: m.body.clone(),
            expiration: m.expiration(),
        }
    }
}

impl WireMessage {
    /// The message, with a new id on this node.
    pub(crate) fn into_message(self) -> Message {
        let mut message = Message::new(
            Arc::from(self.exchange.as_str()),
            Arc::from(self.routing_key.as_str()),
            self.properties,
            self.body,
        );
        message.set_expiration(self.expiration);
        message
    }
}

/// A message as delivered from the queue.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireQueued {
    /// Its place in the queue: what acks name.
    pub(crate) seq: u64,
    /// Delivered before.
    pub(crate) redelivered: bool,
    /// The message.
    pub(crate) message: WireMessage,
}

impl From<&QueuedMessage> for WireQueued {
    fn from(m: &QueuedMessage) -> WireQueued {
        WireQueued {
            seq: m.seq,
            redelivered: m.redelivered,
            message: WireMessage::from(&*m.message),
        }
    }
}

impl WireQueued {
    /// The message as this node's channels deliver it.
    pub(crate) fn into_queued(self) -> QueuedMessage {
        QueuedMessage {
            seq: self.seq,
            message: Arc::new(self.message.into_message()),
            redelivered: self.redelivered,
            expires_at: Expiry::NEVER,
            returns: 0,
        }
    }
}

/// Something that happened on a session, in the order the queue did it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SessionEvent {
    /// basic.deliver to the session's consumer `tag`.
    Deliver {
        /// The consumer tag.
        tag: String,
        /// The consumer's id on the home node, which acks name.
        consumer: u64,
        /// Needs no ack.
        no_ack: bool,
        /// The message.
        message: WireQueued,
    },
    /// basic.get-ok.
    GetOk {
        /// Needs no ack.
        no_ack: bool,
        /// The message.
        message: WireQueued,
        /// Ready messages left.
        message_count: u32,
    },
    /// A reply the queue owes the session's channel.
    Reply(WireReply),
}

/// [`QueueReply`] between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireReply {
    /// basic.consume-ok.
    ConsumeOk(String),
    /// basic.cancel-ok.
    CancelOk(String),
    /// basic.get-empty.
    GetEmpty,
    /// basic.cancel from the queue.
    Cancel(String),
}

impl From<&QueueReply> for WireReply {
    fn from(r: &QueueReply) -> WireReply {
        match r {
            QueueReply::ConsumeOk { tag } => WireReply::ConsumeOk(tag.to_string()),
            QueueReply::CancelOk { tag } => WireReply::CancelOk(tag.to_string()),
            QueueReply::GetEmpty => WireReply::GetEmpty,
            QueueReply::Cancel { tag } => WireReply::Cancel(tag.to_string()),
        }
    }
}

/// What the management API shows of a queue, between nodes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct WireInspection {
    /// Ready messages.
    pub(crate) ready: u64,
    /// Unacknowledged.
    pub(crate) unacked: u64,
    /// Body bytes of the ready messages.
    pub(crate) ready_bytes: u64,
    /// Consumers: tag, ack required, exclusive, prefetch, priority.
    pub(crate) consumers: Vec<(String, bool, bool, u16, i64)>,
}
