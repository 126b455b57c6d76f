//! The basic class apart from publishing: qos, consume, cancel, get, ack/nack/reject, recover.

use std::sync::Arc;

use rand::Rng;
use tokio::sync::oneshot;

use super::{send_settlements, Channel, ChannelContext, HeldAck};
use crate::queue::{Consumer, QueueCommand, SettleAction};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{basic, AMQPClass, PublishArgs};

/// A server-generated consumer tag, shaped like RabbitMQ's.
fn generated_consumer_tag() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("amq.ctag-{tail}")
}

impl Channel {
    pub(super) async fn handle_basic(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: basic::AMQPMethod,
    ) -> Result<(), AmqpError> {
        match method {
            basic::AMQPMethod::Publish(publish) => {
                self.start_publish(ctx, PublishArgs::of(&publish))
            }
            basic::AMQPMethod::Qos(qos) => {
                if qos.global {
                    self.outlet.set_global_prefetch(qos.prefetch_count);
                } else {
                    self.consumer_prefetch = qos.prefetch_count;
                }
                self.reply(AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})));
                Ok(())
            }
            basic::AMQPMethod::Consume(consume) => self.consume(ctx, consume).await,
            basic::AMQPMethod::Cancel(cancel) => {
                let tag = cancel.consumer_tag.as_str();
                if let Some(queue) = self.outlet.remove_consumer(tag) {
                    let (reply, answer) = oneshot::channel();
                    let sent = queue
                        .send(QueueCommand::Cancel {
                            sink: self.outlet.clone(),
                            consumer_tag: Arc::from(tag),
                            send_ok: !cancel.nowait,
                            reply,
                        })
                        .await;
                    if sent && answer.await.is_ok() {
                        return Ok(());
                    }
                }
                // Unknown tag, or the queue is gone: RabbitMQ answers cancel-ok all the same.
                if !cancel.nowait {
                    self.reply(AMQPClass::Basic(basic::AMQPMethod::CancelOk(
                        basic::CancelOk {
                            consumer_tag: cancel.consumer_tag,
                        },
                    )));
                }
                Ok(())
            }
            basic::AMQPMethod::Get(get) => {
                let name = self.queue_name(get.queue.as_str())?;
                let queue = ctx.vhost.queue_for(&name, ctx.conn.id)?;
                queue
                    .send(QueueCommand::Get {
                        sink: self.outlet.clone(),
                        no_ack: get.no_ack,
                    })
                    .await;
                Ok(())
            }
            basic::AMQPMethod::Ack(ack) => {
                self.acknowledge(ack.delivery_tag, ack.multiple, SettleAction::Ack)
                    .await
            }
            basic::AMQPMethod::Nack(nack) => {
                let action = if nack.requeue {
                    SettleAction::Requeue
                } else {
                    SettleAction::Discard
                };
                self.acknowledge(nack.delivery_tag, nack.multiple, action)
                    .await
            }
            basic::AMQPMethod::Reject(reject) => {
                let action = if reject.requeue {
                    SettleAction::Requeue
                } else {
                    SettleAction::Discard
                };
                self.acknowledge(reject.delivery_tag, false, action).await
            }
            basic::AMQPMethod::Recover(recover) => {
                self.recover(recover.requeue).await?;
                self.reply(AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
                    basic::RecoverOk {},
                )));
                Ok(())
            }
            basic::AMQPMethod::RecoverAsync(recover) => self.recover(recover.requeue).await,
            other => {
                let id = AMQPClass::Basic(other).get_amqp_method_id();
                Err(AmqpError::new(
                    ReplyCode::CommandInvalid,
                    format!("unexpected method 60.{id} from a client"),
                ))
            }
        }
    }

    async fn consume(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        consume: basic::Consume,
    ) -> Result<(), AmqpError> {
        let name = self.queue_name(consume.queue.as_str())?;
        let queue = ctx.vhost.queue_for(&name, ctx.conn.id)?;
        let tag: Arc<str> = if consume.consumer_tag.as_str().is_empty() {
            Arc::from(generated_consumer_tag())
        } else {
            Arc::from(consume.consumer_tag.as_str())
        };
        if !self.outlet.add_consumer(tag.clone(), queue.clone()) {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let consumer = Consumer {
            id: ctx.broker.next_consumer_id(),
            tag: tag.clone(),
            sink: self.outlet.clone(),
            no_ack: consume.no_ack,
            exclusive: consume.exclusive,
            prefetch: self.consumer_prefetch,
            in_flight: 0,
        };
        let (reply, answer) = oneshot::channel();
        let sent = queue
            .send(QueueCommand::Consume {
                consumer,
                send_ok: !consume.nowait,
                reply,
            })
            .await;
        let result = if sent {
            answer
                .await
                .unwrap_or_else(|_| Err(AmqpError::not_found("queue", &name, &ctx.vhost.name)))
        } else {
            Err(AmqpError::not_found("queue", &name, &ctx.vhost.name))
        };
        if result.is_err() {
            self.outlet.remove_consumer(&tag);
        }
        result
    }

    async fn acknowledge(
        &mut self,
        tag: u64,
        multiple: bool,
        action: SettleAction,
    ) -> Result<(), AmqpError> {
        if let Some(tx) = self.tx.as_mut() {
            let deliveries = self.outlet.hold_unacked(tag, multiple)?;
            tx.acks.push(HeldAck { deliveries, action });
            return Ok(());
        }
        self.settle(tag, multiple, action).await
    }

    async fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let unacked = self.outlet.take_all_unacked();
        send_settlements(unacked, SettleAction::Requeue);
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
