//! The channel's side of direct reply-to (see `crate::reply_to`): consuming and cancelling the pseudo-queue, the
//! `reply_to` rewrite of requests, replies delivered to their requester, and declares of reply names. RabbitMQ's
//! source for each: `rabbit_channel`'s basic.consume and basic.cancel clauses for `amq.rabbitmq.reply-to`,
//! `maybe_set_fast_reply_to/2`, `deliver_reply/2`, and the queue.declare clause for reply names.

use std::sync::Arc;

use bytes::Bytes;

use super::effect::ChannelEffects;
use super::publish::Backlog;
use super::{Channel, ChannelContext};
use crate::broker::Broker;
use crate::message::Message;
use crate::reply_to::{self, ReplySink};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{basic, queue, AMQPClass};

impl Channel {
    /// basic.consume of `amq.rabbitmq.reply-to`: no-ack only (406 "reply consumer cannot acknowledge"), one per
    /// channel (406 "reply consumer already set"), a tag in use by a queue consumer 530.
    pub(super) fn consume_replies(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        consume: basic::Consume,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let requested = consume.consumer_tag.as_str();
        if self.deliveries.has_consumer(requested) {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{requested}'"),
            ));
        }
        if !consume.no_ack {
            return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
        }
        if self.reply_consumer.is_some() {
            return Err(AmqpError::precondition("reply consumer already set"));
        }
        let tag: Arc<str> = if requested.is_empty() {
            Arc::from(super::consume::generated_consumer_tag())
        } else {
            Arc::from(requested)
        };
        let sink: Arc<dyn ReplySink> = self.deliveries.clone();
        self.reply_consumer = Some(ctx.broker.reply_consumers.register(tag.clone(), sink));
        if !consume.nowait {
            effects.reply(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.as_ref().into(),
                })),
            );
        }
        Ok(())
    }

    /// basic.cancel of the reply consumer's tag; false if `tag` is not it.
    pub(super) fn cancel_replies(
        &mut self,
        cancel: &basic::Cancel,
        effects: &mut ChannelEffects,
    ) -> bool {
        if self
            .reply_consumer
            .as_ref()
            .is_none_or(|r| *r.tag != *cancel.consumer_tag.as_str())
        {
            return false;
        }
        self.reply_consumer = None;
        if !cancel.nowait {
            effects.reply(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag: cancel.consumer_tag.clone(),
                })),
            );
        }
        true
    }

    /// A request's properties with `reply_to = amq.rabbitmq.reply-to` replaced by this channel's reply name; 406
    /// "fast reply consumer does not exist" without a reply consumer. Other properties pass unchanged (a cheap
    /// byte test first: most messages never decode here).
    pub(super) fn set_reply_to(&self, properties: Bytes) -> Result<Bytes, AmqpError> {
        if !reply_to::may_name_pseudo_queue(&properties) {
            return Ok(properties);
        }
        let name = self.reply_consumer.as_ref().map(|r| r.reply_name());
        Ok(reply_to::rewrite_reply_to(&properties, name.as_deref())?.unwrap_or(properties))
    }

    /// Delivers a reply published to the default exchange with a reply name as routing key, if its requester is
    /// still there (else it is dropped, as in RabbitMQ). A requester whose connection is over its outbound budget
    /// holds the responder back through `backlog`.
    pub(super) fn deliver_reply(broker: &Broker, message: &Message, backlog: &mut Backlog) {
        let Some(consumer) = broker.reply_consumers.lookup(&message.routing_key) else {
            return;
        };
        if consumer.sink.deliver_reply(&consumer.tag, message) && consumer.sink.over_budget() {
            backlog.wait_for_reply_consumer(consumer.sink);
        }
    }

    /// queue.declare of `amq.rabbitmq.reply-to` or of a reply name: declare-ok with no messages and one consumer
    /// while the name's consumer exists (the pseudo-queue always does), 404 otherwise. Every such declare is
    /// passive, as in RabbitMQ. None if `name` is not one of these.
    pub(super) fn declare_reply_queue(
        &self,
        ctx: &ChannelContext<'_>,
        name: &str,
    ) -> Option<Result<AMQPClass, AmqpError>> {
        if !name.starts_with(reply_to::PSEUDO_QUEUE) {
            return None;
        }
        let exists =
            name == reply_to::PSEUDO_QUEUE || ctx.broker.reply_consumers.lookup(name).is_some();
        Some(if exists {
            Ok(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(
                queue::DeclareOk {
                    queue: name.into(),
                    message_count: 0,
                    consumer_count: 1,
                },
            )))
        } else {
            Err(AmqpError::not_found("queue", name, &ctx.vhost.name))
        })
    }
}
