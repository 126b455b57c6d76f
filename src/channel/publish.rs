//! basic.publish: assembling method, content header and body frames into a message, then routing it to its queues
//! with a confirm share for each.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{Channel, ChannelContext};
use crate::channel::confirm::ConfirmRef;
use crate::error::{AmqpError, ReplyCode};
use crate::message::Message;
use crate::protocol::content::{
    decode_properties, parse_content_header, put_content_header, put_return, CLASS_BASIC,
};
use crate::protocol::{basic, FrameKind, RawFrame};
use crate::queue::{QueueCommand, QueueHandle};
use crate::store::StoredMessage;

/// Bodies smaller than this are copied out of the read buffer, so that a small message waiting in a deep queue
/// does not pin a whole read buffer; larger ones stay zero-copy slices of it.
const COPY_BODY_BELOW: usize = 4096;

pub struct PendingPublish {
    exchange: Arc<str>,
    routing_key: Arc<str>,
    mandatory: bool,
    header: Option<(u64, Bytes)>,
    parts: Vec<Bytes>,
    received: u64,
}

impl PendingPublish {
    /// The 505 RabbitMQ sends when a frame other than the next content frame of a publish arrives; it names
    /// basic.publish, not the frame that came.
    pub(super) fn unexpected_frame(&self) -> AmqpError {
        let text = match self.header {
            None => "expected content header for class 60, got non content header frame instead",
            Some(_) => "expected content body, got non content body frame instead",
        };
        AmqpError::new(ReplyCode::UnexpectedFrame, text).on_method(60, 40)
    }
}

impl Channel {
    pub(super) fn start_publish(
        &mut self,
        ctx: &ChannelContext<'_>,
        publish: basic::Publish,
    ) -> Result<(), AmqpError> {
        if publish.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        let exchange = publish.exchange.as_str();
        // Refuse a missing exchange now: RabbitMQ checks it before the content arrives.
        if !exchange.is_empty() && ctx.vhost.exchange(exchange).is_none() {
            return Err(AmqpError::not_found("exchange", exchange, &ctx.vhost.name));
        }
        self.pending = Some(PendingPublish {
            exchange: Arc::from(exchange),
            routing_key: Arc::from(publish.routing_key.as_str()),
            mandatory: publish.mandatory,
            header: None,
            parts: Vec::new(),
            received: 0,
        });
        Ok(())
    }

    /// Handles a content header or body frame.
    pub async fn handle_content(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        frame: RawFrame,
    ) -> Result<(), AmqpError> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            ));
        };
        match (frame.kind, &pending.header) {
            (FrameKind::Header, None) => {
                let header = parse_content_header(&frame.payload)?;
                if header.class_id != CLASS_BASIC {
                    return Err(AmqpError::new(
                        ReplyCode::FrameError,
                        format!(
                            "content header for class {} on basic.publish",
                            header.class_id
                        ),
                    ));
                }
                let max = u64::from(ctx.broker.config.limits.max_message_size);
                if header.body_size > max {
                    self.pending = None;
                    return Err(AmqpError::precondition(format!(
                        "message size {} is larger than configured max size {max}",
                        header.body_size
                    ))
                    .on_method(60, 40));
                }
                pending.header = Some((
                    header.body_size,
                    Bytes::copy_from_slice(&header.properties_raw),
                ));
            }
            (FrameKind::Body, Some((size, _))) => {
                pending.received += frame.payload.len() as u64;
                if pending.received > *size {
                    return Err(AmqpError::new(
                        ReplyCode::FrameError,
                        format!("content body is larger than the declared size {size}"),
                    ));
                }
                pending.parts.push(frame.payload);
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
        let body = join_body(done.parts, done.received as usize);
        let message = Arc::new(Message::new(
            done.exchange,
            done.routing_key,
            properties,
            body,
        ));
        if let Some(tx) = self.tx.as_mut() {
            tx.publishes.push((message, done.mandatory));
            return Ok(());
        }
        self.route(ctx, message, done.mandatory)
            .await
            .map_err(|e| e.on_method(60, 40))
    }

    /// Routes a complete message to its queues; unroutable mandatory messages are returned, then confirmed.
    pub(super) async fn route(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        message: Arc<Message>,
        mandatory: bool,
    ) -> Result<(), AmqpError> {
        let mut queues = Vec::new();
        ctx.vhost.route(&message.exchange, &message, &mut queues)?;
        let confirm = self.confirms.as_ref().map(|t| t.begin());
        if queues.is_empty() {
            if mandatory {
                self.return_message(&message, ReplyCode::NoRoute, "NO_ROUTE");
            }
            return Ok(());
        }
        if message.persistent {
            self.store_persistent(ctx, &message, &queues, confirm.as_ref())?;
            wait_for_store_room(ctx).await;
        }
        for queue in queues {
            let command = QueueCommand::Publish {
                message: message.clone(),
                confirm: confirm.as_ref().map(|c| c.share()),
            };
            queue.send(command).await;
        }
        Ok(())
    }

    /// Hands a persistent message routed to durable queues to the store, once for all of them. The confirm waits
    /// for the fsync that covers it through the share the store's callback holds; a store failure nacks it.
    fn store_persistent(
        &self,
        ctx: &ChannelContext<'_>,
        message: &Message,
        queues: &[Arc<QueueHandle>],
        confirm: Option<&ConfirmRef>,
    ) -> Result<(), AmqpError> {
        let ids: Vec<u64> = queues.iter().filter_map(|q| q.spec.store_id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let store = ctx.broker.store();
        if store.failed() && confirm.is_none() {
            // Without confirms the publisher cannot be told with a nack; refusing the connection is the only
            // honest answer.
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the message store has failed; persistent messages are refused until the broker restarts",
            ));
        }
        let share = confirm.map(ConfirmRef::share);
        let stored = StoredMessage {
            msg_id: message.id,
            exchange: message.exchange.to_string(),
            routing_key: message.routing_key.to_string(),
            properties_raw: message.properties_raw.clone(),
            body: message.body.clone(),
        };
        store.publish(
            stored,
            ids,
            Box::new(move |result| {
                if let (Some(share), Err(_)) = (share, result) {
                    share.fail();
                }
            }),
        );
        Ok(())
    }

    fn return_message(&self, message: &Message, code: ReplyCode, text: &str) {
        let channel = self.id;
        let conn = &self.outlet.conn;
        conn.outbound
            .write_message(channel, conn.frame_max, &message.body, |out| {
                put_return(
                    out,
                    channel,
                    code as u16,
                    text,
                    &message.exchange,
                    &message.routing_key,
                );
                put_content_header(out, channel, message.body_size(), &message.properties_raw);
            });
    }
}

/// Bytes of persistent messages the store may have waiting for its writer before publishers are held back.
const STORE_BACKLOG_LIMIT: u64 = 64 << 20;

/// Holds this connection's reader (and so, through TCP, its publisher) while the store's writer is behind, so a
/// publisher faster than the disk cannot grow the write queue without bound.
async fn wait_for_store_room(ctx: &ChannelContext<'_>) {
    let store = ctx.broker.store();
    while store.queued_bytes() > STORE_BACKLOG_LIMIT && !store.failed() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
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
    let properties = decode_properties(properties_raw).map_err(|e| e.on_method(60, 40))?;
    match properties.user_id() {
        Some(claimed) if claimed.as_str() != user => Err(AmqpError::precondition(format!(
            "user_id property set to '{}' but authenticated user was '{user}'",
            claimed.as_str()
        ))
        .on_method(60, 40)),
        _ => Ok(()),
    }
}

fn join_body(parts: Vec<Bytes>, size: usize) -> Bytes {
    if parts.len() == 1 {
        let part = parts.into_iter().next().unwrap_or_default();
        if part.len() < COPY_BODY_BELOW {
            return Bytes::copy_from_slice(&part);
        }
        return part;
    }
    let mut body = BytesMut::with_capacity(size);
    for part in parts {
        body.extend_from_slice(&part);
    }
    body.freeze()
}
