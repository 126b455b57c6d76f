//! The basic class apart from publishing: qos, consume, cancel, get, ack/nack/reject, recover.

use crate::event::Event;
use std::sync::Arc;

use rand::Rng;

use super::effect::{ChannelEffects, Continuation, Effect, QueueRequest};
use super::{send_settlements, Channel, ChannelContext, HeldAck};
use crate::auth::users::Access;
use crate::queue::arguments::QueueArguments;
use crate::queue::{QueueCommand, QueueConsumer, SettleAction};
use crate::reply_to;
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{basic, AMQPClass, PublishArgs};

/// A server-generated consumer tag, shaped like RabbitMQ's.
pub(super) fn generated_consumer_tag() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("amq.ctag-{tail}")
}

impl Channel {
    pub(super) fn handle_basic(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: basic::AMQPMethod,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let id = self.id;
        match method {
            basic::AMQPMethod::Publish(publish) => {
                self.start_publish(ctx, PublishArgs::of(&publish))
            }
            basic::AMQPMethod::Qos(qos) => {
                // RabbitMQ 4 with `global_qos` denied takes a global qos as a per-consumer one.
                if qos.global && ctx.broker.config.deprecated_features.global_qos {
                    self.deliveries.set_global_prefetch(qos.prefetch_count);
                } else {
                    // RabbitMQ 3.13 drops the channel-wide limit on a per-consumer qos.
                    self.deliveries.set_global_prefetch(0);
                    self.deliveries.set_consumer_prefetch(qos.prefetch_count);
                    self.consumer_prefetch = qos.prefetch_count;
                }
                effects.reply(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
                Ok(())
            }
            basic::AMQPMethod::Consume(consume) => self.consume(ctx, consume, effects),
            basic::AMQPMethod::Cancel(cancel) => {
                if self.cancel_replies(&cancel, effects) {
                    return Ok(());
                }
                let tag = cancel.consumer_tag.as_str();
                if let Some(queue) = self.deliveries.remove_consumer(tag) {
                    if let Some(pid) = &self.event_pid {
                        ctx.vhost.events().emit(|| {
                            let (vhost, user) = (&ctx.vhost.name, &ctx.conn.user);
                            Event::consumer_deleted(vhost, queue.name(), tag, pid, user)
                        });
                    }
                    let request = QueueRequest::Cancel {
                        sink: self.deliveries.clone(),
                        consumer_tag: Arc::from(tag),
                        send_ok: !cancel.nowait,
                    };
                    let then = Continuation::CancelOk {
                        consumer_tag: cancel.consumer_tag,
                        nowait: cancel.nowait,
                    };
                    effects.push(Effect::Ask {
                        queue,
                        request,
                        then,
                    });
                    return Ok(());
                }
                // Unknown tag: RabbitMQ answers cancel-ok all the same.
                if !cancel.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: cancel.consumer_tag,
                        })),
                    );
                }
                Ok(())
            }
            basic::AMQPMethod::Get(get) => {
                let name = self.queue_name(get.queue.as_str())?;
                ctx.check("queue", &name, Access::Read)?;
                let queue = ctx.vhost.queue_for(&name, ctx.conn.id)?;
                let command = QueueCommand::Get {
                    sink: self.deliveries.clone(),
                    no_ack: get.no_ack,
                };
                effects.push(Effect::Send { queue, command });
                Ok(())
            }
            basic::AMQPMethod::Ack(ack) => {
                self.acknowledge(ack.delivery_tag, ack.multiple, SettleAction::Ack, effects)
            }
            basic::AMQPMethod::Nack(nack) => {
                let action = if nack.requeue {
                    SettleAction::Requeue
                } else {
                    SettleAction::Discard
                };
                self.acknowledge(nack.delivery_tag, nack.multiple, action, effects)
            }
            basic::AMQPMethod::Reject(reject) => {
                let action = if reject.requeue {
                    SettleAction::Requeue
                } else {
                    SettleAction::Discard
                };
                self.acknowledge(reject.delivery_tag, false, action, effects)
            }
            basic::AMQPMethod::Recover(recover) => {
                self.recover(recover.requeue, effects)?;
                effects.reply(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
                Ok(())
            }
            basic::AMQPMethod::RecoverAsync(recover) => self.recover(recover.requeue, effects),
            other => {
                let id = AMQPClass::Basic(other).get_amqp_method_id();
                Err(AmqpError::new(
                    ReplyCode::CommandInvalid,
                    format!("unexpected method 60.{id} from a client"),
                ))
            }
        }
    }

    /// basic.consume: the consumer tag is taken here; the queue's answer decides whether it stays
    /// ([`Continuation::Consume`]).
    fn consume(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        consume: basic::Consume,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        if consume.queue.as_str() == reply_to::PSEUDO_QUEUE {
            return self.consume_replies(ctx, consume, effects);
        }
        let name = self.queue_name(consume.queue.as_str())?;
        ctx.check("queue", &name, Access::Read)?;
        let queue = ctx.vhost.queue_for(&name, ctx.conn.id)?;
        let priority =
            QueueArguments::consumer_priority(&consume.arguments, &name, &ctx.vhost.name)?;
        let tag: Arc<str> = if consume.consumer_tag.as_str().is_empty() {
            Arc::from(generated_consumer_tag())
        } else {
            Arc::from(consume.consumer_tag.as_str())
        };
        let id = ctx.broker.next_consumer_id();
        if !self.deliveries.add_consumer(tag.clone(), queue.clone(), id) {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let consumer = QueueConsumer {
            id,
            tag: tag.clone(),
            sink: self.deliveries.clone(),
            no_ack: consume.no_ack,
            exclusive: consume.exclusive,
            prefetch: self.consumer_prefetch,
            in_flight: 0,
            priority,
        };
        let request = QueueRequest::Consume {
            consumer,
            send_ok: !consume.nowait,
        };
        // Built now, while the consume's fields are at hand; published once the queue accepts the consumer.
        let event = self.event_pid.as_ref().map(|pid| {
            Box::new(Event::consumer_created(
                &ctx.vhost.name,
                &name,
                &tag,
                pid,
                consume.exclusive,
                !consume.no_ack,
                self.consumer_prefetch,
                &consume.arguments,
                &ctx.conn.user,
            ))
        });
        let then = Continuation::Consume {
            tag,
            queue: name,
            event,
        };
        effects.push(Effect::Ask {
            queue,
            request,
            then,
        });
        Ok(())
    }

    fn acknowledge(
        &mut self,
        tag: u64,
        multiple: bool,
        action: SettleAction,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        if let Some(tx) = self.tx.as_mut() {
            let deliveries = self.deliveries.hold_unacked(tag, multiple)?;
            tx.acks.push(HeldAck { deliveries, action });
            return Ok(());
        }
        self.settle(tag, multiple, action, effects)
    }

    fn recover(&mut self, requeue: bool, effects: &mut ChannelEffects) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let unacked = self.deliveries.take_all_unacked();
        send_settlements(effects, unacked, SettleAction::Requeue);
        Ok(())
    }

    /// Resolves the empty queue name to the channel's most recently declared queue, as RabbitMQ does.
    pub(super) fn queue_name(&self, name: &str) -> Result<Arc<str>, AmqpError> {
        if !name.is_empty() {
            return Ok(Arc::from(name));
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::new(ReplyCode::NotFound, "no previously declared queue"))
    }
}
