//! What a channel asks of the task that drives it: the effects of one event, in the order they must happen, and
//! the continuations that carry a method across a queue's answer. The channel itself does no I/O; its driver
//! (`channel::runtime` in the broker, the test harness in unit tests) executes these.

use crate::event::Event;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_protocol::error::AmqpError;
use warren_protocol::ids::MethodId;
use warren_protocol::{put_method, AMQPClass, ShortString};

use super::delivery_state::DeliveryState;
use super::publish::Backlog;
use crate::message::Message;
use crate::queue::{QueueCommand, QueueConsumer, QueueDeleted, QueueHandle, QueueStats};
use crate::session::ConfirmRef;
use crate::vhost::Vhost;

/// One thing the channel needs done. Effects are executed in the order the channel emitted them.
pub(crate) enum Effect {
    /// Encoded frames for the connection's outbound queue.
    Write(Bytes),
    /// A command on the queue's priority path (acks, nacks, rejects, channel closed); sending it never waits.
    Settle {
        /// The queue the deliveries came from.
        queue: Arc<QueueHandle>,
        /// A `Settle` or `ChannelClosed` command.
        command: QueueCommand,
    },
    /// A command the queue answers the client to itself (basic.get), sent waiting for room in its inbox.
    Send {
        /// The queue asked.
        queue: Arc<QueueHandle>,
        /// A `Get` command.
        command: QueueCommand,
    },
    /// A question for a queue: send it (waiting for room), await the answer and hand it to
    /// [`Channel::handle_answer`](super::Channel::handle_answer) with `then`. Always the last effect of an event:
    /// what follows the answer is emitted by the continuation.
    Ask {
        /// The queue asked.
        queue: Arc<QueueHandle>,
        /// The question, without its reply channel.
        request: QueueRequest,
        /// The rest of the method, run with the answer.
        then: Continuation,
    },
    /// Wait until what a publish left waiting is taken: a full queue inbox, a store over its write limit. The
    /// reader reads nothing from its socket meanwhile, which is how TCP holds a fast publisher back.
    Drain(Backlog),
    /// A publisher confirm share released only here, after the frames before it are written: a mandatory
    /// message's basic.return must reach the client before its confirm (which the connection's writer may emit at
    /// any moment once the last share is gone).
    ReleaseConfirm(ConfirmRef),
    /// Call [`Channel::resume`](super::Channel::resume) with this continuation once every effect before it is
    /// done. Always the last effect of an event.
    Resume(Continuation),
    /// A topology change that may commit to the definitions store (an fsync): run it off the async workers, then
    /// hand its outcome to [`Channel::topology_changed`](super::Channel::topology_changed) with `then`. Always the
    /// last effect of an event.
    Topology {
        /// The change; it returns the declared queue, for queue.declare.
        change: TopologyChange,
        /// The method it carries out, named in the channel.close a failure causes.
        method: MethodId,
        /// The rest of the method, run once the change is made.
        then: Continuation,
    },
}

/// A change to a vhost's exchanges, queues or bindings, run by the driver on the blocking pool.
pub(crate) type TopologyChange =
    Box<dyn FnOnce(&Vhost) -> Result<Option<Arc<QueueHandle>>, AmqpError> + Send>;

/// A question a channel asks a queue, without the reply channel the driver adds.
pub(crate) enum QueueRequest {
    /// Message and consumer counts (queue.declare-ok).
    Stats,
    /// Register a consumer; the queue writes consume-ok itself, before any delivery.
    Consume {
        consumer: QueueConsumer,
        send_ok: bool,
    },
    /// Cancel a consumer; the queue writes cancel-ok itself, after its last delivery to it.
    Cancel {
        sink: Arc<DeliveryState>,
        consumer_tag: Arc<str>,
        send_ok: bool,
    },
    /// Drop every ready message.
    Purge,
    /// Delete the queue if the conditions hold; `sink`'s own consumers are cancelled by the channel, after its
    /// reply.
    Delete {
        if_unused: bool,
        if_empty: bool,
        sink: Arc<DeliveryState>,
    },
}

/// A queue's answer to a [`QueueRequest`], of the same name. `None` (or `false`) means the queue was gone before it
/// answered.
pub(crate) enum QueueAnswer {
    /// The queue's message and consumer counts.
    Stats(Option<QueueStats>),
    /// Whether the queue took the consumer (403 when another consumer holds it exclusively).
    Consume(Option<Result<(), AmqpError>>),
    /// The queue forgot the consumer and wrote cancel-ok if asked to.
    Cancel(bool),
    /// The number of ready messages dropped.
    Purge(Option<u32>),
    /// What the queue deleted, or why it refused.
    Delete(Option<Result<QueueDeleted, AmqpError>>),
}

/// What the channel does once its question is answered or its wait is over: the rest of a method, with the
/// context it needs.
pub(crate) enum Continuation {
    /// queue.declare: reply declare-ok with the queue's counts.
    DeclareOk { queue: Arc<str> },
    /// basic.consume: on refusal, forget the consumer tag and fail the channel; once accepted, publish its
    /// `consumer.created` event (built only when the event exchange is on).
    Consume {
        tag: Arc<str>,
        queue: Arc<str>,
        event: Option<Box<Event>>,
    },
    /// basic.cancel: if the queue could not answer, reply cancel-ok here, as RabbitMQ does for an unknown tag.
    CancelOk {
        consumer_tag: ShortString,
        nowait: bool,
    },
    /// queue.purge: reply purge-ok with the count.
    PurgeOk { nowait: bool },
    /// queue.delete: forget the queue in the vhost, reply delete-ok with the count.
    DeleteOk {
        queue: Arc<QueueHandle>,
        nowait: bool,
    },
    /// tx.commit after a wait: route the publishes still held, then reply commit-ok.
    Commit(HeldPublishes),
    /// queue.delete is done, the queue forgotten: reply delete-ok with the count unless `nowait`, then send
    /// basic.cancel for this channel's consumers of the queue (`cancel`).
    QueueDeleted {
        queue: Arc<str>,
        count: u32,
        nowait: bool,
        cancel: Vec<Arc<str>>,
    },
    /// A topology change is made: send this reply, if any.
    Reply(Option<AMQPClass>),
    /// queue.declare's queue exists: remember it (as the connection's exclusive queue, as the channel's last
    /// declared queue), then ask it for declare-ok's counts unless `nowait`.
    QueueDeclared { exclusive: bool, nowait: bool },
}

/// A transaction's publishes not yet routed, in publish order, each with its mandatory flag.
pub(crate) type HeldPublishes = std::vec::IntoIter<(Arc<Message>, bool)>;

/// The effects of one event, in order. Frames are gathered into one buffer until a command follows them, so a run
/// of replies costs one write; an event that emits nothing (a publish whose queues keep up) allocates nothing.
#[derive(Default)]
pub(crate) struct ChannelEffects {
    /// Effects before the frames in `frames`.
    queued: VecDeque<Effect>,
    /// Frames encoded after every effect in `queued`.
    frames: BytesMut,
}

impl ChannelEffects {
    /// True when there is nothing to execute.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.frames.is_empty()
    }

    /// The next effect to execute; the driver calls this until it returns `None`, handing answers back to the
    /// channel in between (their effects join the end, which is where they belong: an `Ask` or `Resume` is last).
    pub(crate) fn next_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.queued.pop_front() {
            return Some(effect);
        }
        (!self.frames.is_empty()).then(|| Effect::Write(self.frames.split().freeze()))
    }

    /// Emits a method frame on `channel`.
    pub(super) fn reply(&mut self, channel: u16, method: AMQPClass) {
        put_method(&mut self.frames, channel, method);
    }

    /// The frame buffer, for frames other than a lone method (basic.return with its content).
    pub(super) fn frames(&mut self) -> &mut BytesMut {
        &mut self.frames
    }

    /// Emits a command, after every frame emitted so far.
    pub(super) fn push(&mut self, effect: Effect) {
        if !self.frames.is_empty() {
            let frames = self.frames.split().freeze();
            self.queued.push_back(Effect::Write(frames));
        }
        self.queued.push_back(effect);
    }
}
