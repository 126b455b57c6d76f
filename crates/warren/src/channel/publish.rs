//! basic.publish: assembling method, content header and body frames into a message, then routing it to its queues
//! with a confirm share for each.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::effect::{ChannelEffects, Effect};
use super::{Channel, ChannelContext};
use crate::auth::access::INTERNAL_USER;
use crate::auth::users::Access;
use crate::broker::Broker;
use crate::message::trace::{TraceEvent, TraceOrigin};
use crate::message::{now_ms, parse_expiration, Message};
use crate::metrics::counters::Counter;
use crate::queue::{Enqueue, QueueCommand, QueueHandle};
use crate::registry::CloseSignal;
use crate::reply_to::{self, ReplySink};
use crate::session::ConfirmRef;
use tokio::sync::Notify;
use warren_protocol::content::{
    decode_properties, expiration as content_expiration, parse_content_header_ref, put_body_frames,
    put_content_header, put_return, CLASS_BASIC,
};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::ids;
use warren_protocol::{FrameKind, FramePayload, PublishArgs};

/// Body frames smaller than this are copied out of the read buffer, so that a small message waiting in a deep queue
/// does not pin a whole read buffer; larger ones stay zero-copy slices of it. The connection reader hands the
/// larger ones over as owned slices and the rest borrowed.
pub(crate) const COPY_BODY_BELOW: usize = 4096;

/// A basic.publish whose content header and body frames are still arriving.
pub(crate) struct PendingPublish {
    exchange: Arc<str>,
    routing_key: Arc<str>,
    mandatory: bool,
    header: Option<(u64, Bytes)>,
    body: BodyParts,
    received: u64,
}

/// The body frames of a message being assembled; most messages have one, which needs no vector.
enum BodyParts {
    None,
    One(Bytes),
    Many(Vec<Bytes>),
}

impl BodyParts {
    fn push(&mut self, part: FramePayload<'_>) {
        let part = match part {
            FramePayload::Owned(bytes) if bytes.len() >= COPY_BODY_BELOW => bytes,
            small => Bytes::copy_from_slice(small.as_slice()),
        };
        *self = match std::mem::replace(self, BodyParts::None) {
            BodyParts::None => BodyParts::One(part),
            BodyParts::One(first) => BodyParts::Many(vec![first, part]),
            BodyParts::Many(mut parts) => {
                parts.push(part);
                BodyParts::Many(parts)
            }
        };
    }

    /// The whole body.
    fn join(self, size: usize) -> Bytes {
        match self {
            BodyParts::None => Bytes::new(),
            BodyParts::One(part) => part,
            BodyParts::Many(parts) => {
                let mut body = BytesMut::with_capacity(size);
                for part in parts {
                    body.extend_from_slice(&part);
                }
                body.freeze()
            }
        }
    }
}

impl PendingPublish {
    /// The 505 RabbitMQ sends when a frame other than the next content frame of a publish arrives; it names
    /// basic.publish, not the frame that came.
    pub(super) fn unexpected_frame(&self) -> AmqpError {
        let text = match self.header {
            None => "expected content header for class 60, got non content header frame instead",
            Some(_) => "expected content body, got non content body frame instead",
        };
        AmqpError::new(ReplyCode::UnexpectedFrame, text).on(ids::BASIC_PUBLISH)
    }
}

impl Channel {
    /// basic.publish as the reader's fast path hands it over (see [`warren_protocol::parse_publish`]); the checks
    /// are those `handle_method` makes for any method.
    pub(crate) fn handle_publish(
        &mut self,
        ctx: &ChannelContext<'_>,
        publish: PublishArgs<'_>,
    ) -> Result<(), AmqpError> {
        if let Some(pending) = &self.pending {
            return Err(pending.unexpected_frame());
        }
        self.start_publish(ctx, publish)
            .map_err(|e| e.on(ids::BASIC_PUBLISH))
    }

    pub(super) fn start_publish(
        &mut self,
        ctx: &ChannelContext<'_>,
        publish: PublishArgs<'_>,
    ) -> Result<(), AmqpError> {
        if publish.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        // Read before checking: a change made meanwhile moves the generation past this value.
        let generation = ctx.broker.access.generation();
        let names = self.route_cache.names(ctx.vhost, &publish);
        // The names just matched are usually the very ones the last decision was made for: compared by pointer.
        let permitted = match &names {
            Some((exchange, routing_key)) => {
                self.route_cache
                    .permitted_names(generation, exchange, routing_key)
            }
            None => self
                .route_cache
                .permitted(generation, publish.exchange, publish.routing_key),
        };
        let (exchange, routing_key) = match names {
            Some(names) if permitted => names,
            _ => {
                // Write permission first, then existence, as RabbitMQ checks them.
                let exchange = publish.exchange;
                if !permitted {
                    ctx.check("exchange", exchange, Access::Write)?;
                }
                // Refuse a missing exchange now: RabbitMQ checks it before the content arrives.
                if !exchange.is_empty() && ctx.vhost.exchange(exchange).is_none() {
                    return Err(AmqpError::not_found("exchange", exchange, &ctx.vhost.name));
                }
                if !permitted {
                    ctx.check_topic(exchange, publish.routing_key, Access::Write)?;
                }
                let names: (Arc<str>, Arc<str>) =
                    (Arc::from(exchange), Arc::from(publish.routing_key));
                self.route_cache
                    .permit(generation, names.0.clone(), names.1.clone());
                names
            }
        };
        self.pending = Some(PendingPublish {
            exchange,
            routing_key,
            mandatory: publish.mandatory,
            header: None,
            body: BodyParts::None,
            received: 0,
        });
        Ok(())
    }

    /// Handles a content header or body frame without waiting: a message completed by it is routed, and what
    /// still has to wait (a full queue inbox, a store behind its disk) is emitted as an [`Effect::Drain`]. Call it
    /// for every content frame on this channel, in order; when it emits nothing, which is the rule while queues
    /// keep up, the next frame may follow at once (the publish runs are flushed later, see `channel::publish_runs`).
    pub(crate) fn handle_content(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        kind: FrameKind,
        payload: FramePayload<'_>,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            ));
        };
        match (kind, &pending.header) {
            (FrameKind::Header, None) => {
                // Class and weight first, as RabbitMQ's frame assembler checks them before anything else in
                // the header: a mismatch is its 505 on basic.publish.
                if let Some(&[c0, c1, w0, w1]) = payload.as_slice().get(..4) {
                    let class_id = u16::from_be_bytes([c0, c1]);
                    if class_id != CLASS_BASIC {
                        return Err(AmqpError::new(
                            ReplyCode::UnexpectedFrame,
                            format!(
                                "expected content header for class {CLASS_BASIC}, got one for class {class_id} instead"
                            ),
                        )
                        .on(ids::BASIC_PUBLISH));
                    }
                    if [w0, w1] != [0, 0] {
                        return Err(pending.unexpected_frame());
                    }
                }
                let (_, body_size, properties_raw) = parse_content_header_ref(payload.as_slice())?;
                let max = u64::from(ctx.broker.config.limits.max_message_size);
                if body_size > max {
                    self.pending = None;
                    return Err(AmqpError::precondition(format!(
                        "message size {body_size} is larger than configured max size {max}"
                    ))
                    .on(ids::BASIC_PUBLISH));
                }
                let properties = self.route_cache.properties(properties_raw);
                pending.header = Some((body_size, properties));
            }
            (FrameKind::Body, Some((size, _))) => {
                pending.received += payload.as_slice().len() as u64;
                if pending.received > *size {
                    return Err(AmqpError::new(
                        ReplyCode::FrameError,
                        format!("content body is larger than the declared size {size}"),
                    ));
                }
                pending.body.push(payload);
            }
            _ => return Err(pending.unexpected_frame()),
        }
        match &pending.header {
            Some((size, _)) if pending.received == *size => {}
            _ => return Ok(()),
        }
        let Some(done) = self.pending.take() else {
            return Ok(());
        };
        let (_, properties) = done.header.unwrap_or_default();
        check_user_id(&properties, &ctx.conn.user)?;
        let properties = self
            .set_reply_to(properties)
            .map_err(|e| e.on(ids::BASIC_PUBLISH))?;
        let expiration = match content_expiration(&properties) {
            Some(raw) => Some(parse_expiration(raw).map_err(|e| e.on(ids::BASIC_PUBLISH))?),
            None => None,
        };
        ctx.counts.add(Counter::Received, 1);
        self.deliveries.publish_counts.published();
        if self.confirms.is_some() {
            ctx.counts.add(Counter::ReceivedConfirm, 1);
        }
        let body = done.body.join(done.received as usize);
        let mut message = Message::new(done.exchange, done.routing_key, properties, body);
        message.set_expiration(expiration);
        let message = Arc::new(message);
        if let Some(tx) = self.tx.as_mut() {
            tx.publishes.push((message, done.mandatory));
            return Ok(());
        }
        let backlog = self
            .route(ctx, message, done.mandatory, effects)
            .map_err(|e| e.on(ids::BASIC_PUBLISH))?;
        if !backlog.is_empty() {
            effects.push(Effect::Drain(backlog));
        }
        Ok(())
    }

    /// Routes a complete message to its queues; unroutable mandatory messages are returned, then confirmed. The
    /// caller has the returned backlog drained before it routes anything more.
    pub(super) fn route(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        message: Arc<Message>,
        mandatory: bool,
        effects: &mut ChannelEffects,
    ) -> Result<Backlog, AmqpError> {
        let publish_runs = &mut *ctx.publish_runs;
        let mut backlog = Backlog::default();
        let direct_reply =
            message.exchange.is_empty() && message.routing_key.starts_with(reply_to::PREFIX);
        if direct_reply {
            // Not routed to any queue: with mandatory it is returned as well, as RabbitMQ does.
            Self::deliver_reply(ctx.broker, &message, &mut backlog);
        }
        let (queues, extras) = self.route_cache.route(ctx.vhost, &message)?;
        // Routed by its BCC keys, the message goes on without the header, as in RabbitMQ.
        let message = match message.without_bcc()? {
            Some(stripped) => Arc::new(stripped),
            None => message,
        };
        if ctx.vhost.is_tracing() {
            let routed: Vec<String> = queues.iter().map(|q| q.spec.name.to_string()).collect();
            ctx.vhost.trace(
                &message,
                &TraceEvent::Publish {
                    routed_queues: &routed,
                },
                &TraceOrigin {
                    vhost: &ctx.vhost.name,
                    connection: &ctx.conn.name,
                    channel: self.id,
                    user: &ctx.conn.user,
                    node: ctx.vhost.node(),
                },
            );
        }
        let confirm = self.confirms.as_ref().map(|t| t.begin());
        // Held by a delayed exchange: confirmed once it holds it (stored, for a persistent message of a durable
        // one). As with the plugin, whose exchange routes it nowhere now, a mandatory one is also returned.
        // Keys a durable deduplicating exchange took: stored ahead of the message, the confirm waiting for them.
        ctx.vhost.remember_keys(extras.keys, confirm.as_ref());
        let extras_delays_empty = extras.delays.is_empty();
        for request in extras.delays {
            let share = confirm.as_ref().map(ConfirmRef::share);
            request
                .exchange
                .delay(message.clone(), request.delay_ms, share);
        }
        // Held by a delayed exchange or handed to a direct reply-to consumer counts as routed.
        let routed = !queues.is_empty() || !extras_delays_empty || direct_reply;
        ctx.counts.add(
            match (routed, mandatory) {
                (true, _) => Counter::Routed,
                (false, true) => Counter::UnroutableReturned,
                (false, false) => Counter::UnroutableDropped,
            },
            1,
        );
        if !routed {
            self.deliveries.publish_counts.unroutable(mandatory);
        }
        ctx.exchange_counts.count(&message.exchange, queues.len());
        if queues.is_empty() {
            if mandatory {
                self.return_message(&message, ReplyCode::NoRoute, "NO_ROUTE", effects);
                if let Some(confirm) = confirm {
                    effects.push(Effect::ReleaseConfirm(confirm));
                }
            }
            return Ok(backlog);
        }
        if message.persistent() {
            Self::store_persistent(ctx.broker, &message, queues, confirm.as_ref())?;
            backlog.store_full = ctx.broker.store().queued_bytes() > STORE_BACKLOG_LIMIT;
        }
        for queue in queues {
            let item = Enqueue {
                message: message.clone(),
                confirm: confirm.as_ref().map(|c| c.share()),
            };
            if let Some(waiting) = publish_runs.push(queue, item) {
                backlog.extend(waiting);
            }
        }
        Ok(backlog)
    }

    /// Hands a persistent message routed to durable queues to the store, once for all of them. The confirm waits
    /// for the fsync that covers it through the share the store's callback holds; a store failure nacks it.
    fn store_persistent(
        broker: &Broker,
        message: &Message,
        queues: &[Arc<QueueHandle>],
        confirm: Option<&ConfirmRef>,
    ) -> Result<(), AmqpError> {
        let ids: Vec<u64> = queues.iter().filter_map(|q| q.spec.store_id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let store = broker.store();
        if store.failed() && confirm.is_none() {
            // Without confirms the publisher cannot be told with a nack; refusing the connection is the only
            // honest answer. Rare: the disk alarm blocks publishers within a monitor round (200 ms) of the failure.
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the message store cannot write; persistent messages are refused until it recovers",
            ));
        }
        let share = confirm.map(ConfirmRef::share);
        // The publish time costs a clock read per persistent publish: 28 ns measured on the development VM (a
        // vDSO call), where the store's best measured rate (107,000 publishes/s) leaves 9 us per publish.
        store.publish(
            message.to_stored(now_ms()),
            ids,
            Box::new(move |result| {
                if let (Some(share), Err(_)) = (share, result) {
                    share.fail();
                }
            }),
        );
        Ok(())
    }

    /// Emits basic.return with the message's content, its body split as the outbound queue splits bodies.
    fn return_message(
        &self,
        message: &Message,
        code: ReplyCode,
        text: &str,
        effects: &mut ChannelEffects,
    ) {
        let channel = self.id;
        let out = effects.frames();
        put_return(
            out,
            channel,
            code as u16,
            text,
            &message.exchange,
            &message.routing_key,
        );
        put_content_header(out, channel, message.body_size(), &message.properties_raw);
        put_body_frames(out, channel, &message.body, self.deliveries.conn.frame_max);
    }
}

/// Bytes of persistent messages the store may have waiting for its writer before publishers are held back.
const STORE_BACKLOG_LIMIT: u64 = 64 << 20;

/// What a routed message still waits for. The connection's reader waits on it before reading on, which holds the
/// publisher back through TCP: a publisher faster than a queue, its consumers or the disk cannot grow memory
/// without bound.
#[derive(Default)]
pub(crate) struct Backlog {
    /// Commands whose queue's inbox was full.
    blocked: Vec<(Arc<QueueHandle>, QueueCommand)>,
    /// Queues that took a publish while holding their publishers (see `queue::flow`).
    held: Vec<Arc<QueueHandle>>,
    /// The store's write queue is over its limit.
    store_full: bool,
    /// Direct reply-to consumers whose connection took a reply while over its outbound budget.
    replies: Vec<Arc<dyn ReplySink>>,
}

/// The publishing connection a backlog waits for: which one (a queue does not hold its own consumers'
/// connections), and its close requests, which end any wait.
#[derive(Clone, Copy)]
pub(crate) struct Publisher<'a> {
    /// The connection's id.
    pub(crate) connection: u64,
    /// Its close requests (management API, shutdown); None when nobody can ask.
    pub(crate) close: Option<&'a CloseSignal>,
}

impl Backlog {
    /// True when nothing waits: the reader may go on at once.
    pub(crate) fn is_empty(&self) -> bool {
        self.blocked.is_empty()
            && self.held.is_empty()
            && !self.store_full
            && self.replies.is_empty()
    }

    /// Waits for the connection of `consumer`, a requester that took a reply while over its outbound budget, to
    /// drain (as a queue's consumer stalls the queue), so a responder cannot grow a slow requester's buffers.
    pub(super) fn wait_for_reply_consumer(&mut self, consumer: Arc<dyn ReplySink>) {
        self.replies.push(consumer);
    }

    /// Sends `command` now if the queue's inbox has room, else keeps it to wait for room; either way, remembers
    /// the queue if it holds its publishers.
    pub(super) fn send_or_hold(&mut self, queue: Arc<QueueHandle>, command: QueueCommand) {
        match queue.try_send(command) {
            Ok(()) if queue.flow.is_held() => self.held.push(queue),
            Ok(()) => {}
            Err(command) => self.blocked.push((queue, command)),
        }
    }

    /// Adds what `other` left waiting, so one wait covers both.
    pub(crate) fn extend(&mut self, other: Backlog) {
        self.blocked.extend(other.blocked);
        self.held.extend(other.held);
        self.store_full |= other.store_full;
        self.replies.extend(other.replies);
    }

    /// Waits until every held command is in its queue's inbox, every queue that holds `publisher` has released
    /// it, and, if the store was over its limit, until the store's writer has taken it back under (or the store
    /// failed). A close request for the publisher's connection ends the wait.
    pub(crate) async fn wait(self, broker: &Broker, publisher: Publisher<'_>) {
        if self.is_empty() {
            return;
        }
        let mut close = publisher.close.cloned();
        let closing = async {
            match close.as_mut() {
                Some(signal) => {
                    signal.requested().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.wait_uninterrupted(broker, publisher.connection) => {}
            _ = closing => {}
        }
    }

    async fn wait_uninterrupted(self, broker: &Broker, connection: u64) {
        for (queue, command) in self.blocked {
            queue.send(command).await;
            if queue.flow.is_held() {
                queue.flow.wait_released(connection).await;
            }
        }
        for queue in self.held {
            queue.flow.wait_released(connection).await;
        }
        for consumer in self.replies {
            let drained = Arc::new(Notify::new());
            consumer.wake_when_drained(drained.clone());
            drained.notified().await;
        }
        if !self.store_full {
            return;
        }
        let store = broker.store();
        loop {
            // Registered before the check, so a take between the check and the wait is not missed.
            let room = broker.store_room().notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            if store.queued_bytes() <= STORE_BACKLOG_LIMIT || store.failed() {
                return;
            }
            room.await;
        }
    }
}

/// RabbitMQ refuses a publish whose user-id property names another user than the one logged in (validated
/// user-id). The properties are decoded only when the flag for user-id is set.
fn check_user_id(properties_raw: &[u8], user: &str) -> Result<(), AmqpError> {
    const USER_ID_FLAG: u16 = 1 << 4;
    let flags = match properties_raw {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => return Ok(()),
    };
    if flags & USER_ID_FLAG == 0 {
        return Ok(());
    }
    let properties = decode_properties(properties_raw).map_err(|e| e.on(ids::BASIC_PUBLISH))?;
    match properties.user_id() {
        Some(claimed) if claimed.as_str() != user && user != INTERNAL_USER => {
            Err(AmqpError::precondition(format!(
                "user_id property set to '{}' but authenticated user was '{user}'",
                claimed.as_str()
            ))
            .on(ids::BASIC_PUBLISH))
        }
        _ => Ok(()),
    }
}
