//! The second half of the methods that wait: what a channel does with a queue's answer, or after a wait it asked
//! for, according to the [`Continuation`] it left in the effect.

use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{basic, queue, AMQPClass};

use std::sync::Arc;

use super::effect::{
    ChannelEffects, Continuation, Effect, QueueAnswer, QueueRequest, TopologyChange,
};
use super::{Channel, ChannelContext};
use crate::queue::{QueueDeleted, QueueHandle};
use crate::vhost::Vhost;
use warren_protocol::ids;

impl Channel {
    /// Takes a queue's answer to the [`Effect::Ask`](super::effect::Effect::Ask) that carried `then`. Call it as
    /// soon as the answer arrives, before any other event for this channel, and execute what it emits.
    pub(crate) fn handle_answer(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        then: Continuation,
        answer: QueueAnswer,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let id = self.id;
        match (then, answer) {
            (Continuation::DeclareOk { queue }, QueueAnswer::Stats(stats)) => {
                let stats = stats.unwrap_or_default();
                effects.reply(
                    id,
                    AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                        queue: queue.as_ref().into(),
                        message_count: stats.messages,
                        consumer_count: stats.consumers,
                    })),
                );
            }
            (Continuation::Consume { tag, queue, event }, QueueAnswer::Consume(result)) => {
                let result = result
                    .unwrap_or_else(|| Err(AmqpError::not_found("queue", &queue, &ctx.vhost.name)));
                if let Err(error) = result {
                    self.deliveries.remove_consumer(&tag);
                    return Err(error.on(ids::BASIC_CONSUME));
                }
                if let Some(event) = event {
                    ctx.vhost.events().emit(|| *event);
                }
            }
            (
                Continuation::CancelOk {
                    consumer_tag,
                    nowait,
                },
                QueueAnswer::Cancel(answered),
            ) => {
                // The queue writes cancel-ok itself; if it is gone, RabbitMQ answers cancel-ok all the same.
                if !answered && !nowait {
                    effects.reply(
                        id,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag,
                        })),
                    );
                }
            }
            (Continuation::PurgeOk { nowait }, QueueAnswer::Purge(count)) => {
                if !nowait {
                    effects.reply(
                        id,
                        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                            message_count: count.unwrap_or(0),
                        })),
                    );
                }
            }
            (Continuation::DeleteOk { queue, nowait }, QueueAnswer::Delete(result)) => {
                // A queue gone before it answered was deleted with nothing in it.
                let deleted = result
                    .unwrap_or_else(|| Ok(QueueDeleted::default()))
                    .map_err(|e| e.on(ids::QUEUE_DELETE))?;
                let then = Continuation::QueueDeleted {
                    queue: queue.spec.name.clone(),
                    count: deleted.messages,
                    nowait,
                    cancel: deleted.cancel_after_reply,
                };
                if ctx.vhost.may_persist_removal(queue.spec.store_id.is_some()) {
                    // Forgetting a stored queue commits the definitions store: off the reader's worker.
                    let user = ctx.conn.user.clone();
                    let change: TopologyChange = Box::new(move |vhost: &Vhost| {
                        vhost.forget_queue(&queue, &user);
                        Ok(None)
                    });
                    effects.push(Effect::Topology {
                        change,
                        method: ids::QUEUE_DELETE,
                        then,
                    });
                } else {
                    ctx.vhost.forget_queue(&queue, &ctx.conn.user);
                    self.resume(ctx, then, effects)?;
                }
            }
            _ => return Err(mismatched()),
        }
        Ok(())
    }

    /// Continues after an [`Effect::Resume`](super::effect::Effect::Resume): call it once every effect before
    /// that one has been executed, and execute what it emits.
    pub(crate) fn resume(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        then: Continuation,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        match then {
            Continuation::Commit(rest) => self
                .commit_publishes(ctx, rest, effects)
                .map_err(|e| e.on(ids::TX_COMMIT)),
            Continuation::QueueDeleted {
                queue,
                count,
                nowait,
                cancel,
            } => {
                self.deleted_queue(ctx, &queue, count, nowait, cancel, effects);
                Ok(())
            }
            Continuation::Reply(reply) => {
                if let Some(reply) = reply {
                    effects.reply(self.id, reply);
                }
                Ok(())
            }
            _ => Err(mismatched()),
        }
    }

    /// Called by the driver when the change of an [`Effect::Topology`](super::effect::Effect::Topology) is made,
    /// with the queue it declared (queue.declare) or None.
    pub(crate) fn topology_changed(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        then: Continuation,
        declared: Option<Arc<QueueHandle>>,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        match (then, declared) {
            (then @ Continuation::QueueDeclared { .. }, Some(queue)) => {
                self.queue_declared(ctx, then, queue, effects)
            }
            (then, _) => self.resume(ctx, then, effects),
        }
    }

    /// queue.declare's queue exists: the connection deletes it when it closes if exclusive, an empty queue name
    /// on this channel now means it, and declare-ok carries its counts, which only the queue knows.
    pub(super) fn queue_declared(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        then: Continuation,
        queue: Arc<QueueHandle>,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let Continuation::QueueDeclared { exclusive, nowait } = then else {
            return Err(mismatched());
        };
        if exclusive && !ctx.exclusive_queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
            ctx.exclusive_queues.push(queue.clone());
        }
        self.last_queue = Some(queue.spec.name.clone());
        if !nowait {
            let then = Continuation::DeclareOk {
                queue: queue.spec.name.clone(),
            };
            effects.push(Effect::Ask {
                queue,
                request: QueueRequest::Stats,
                then,
            });
        }
        Ok(())
    }

    /// queue.delete is done: the queue is no longer this connection's to delete when it closes. Replies
    /// delete-ok, then basic.cancel for each of this channel's consumers of the queue (`cancel`, already forgotten
    /// on the channel), in RabbitMQ's order.
    pub(super) fn deleted_queue(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        name: &str,
        count: u32,
        nowait: bool,
        cancel: Vec<Arc<str>>,
        effects: &mut ChannelEffects,
    ) {
        ctx.exclusive_queues.retain(|q| *q.spec.name != *name);
        if !nowait {
            effects.reply(
                self.id,
                AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count: count,
                })),
            );
        }
        for tag in cancel {
            effects.reply(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: tag.as_ref().into(),
                    nowait: true,
                })),
            );
        }
    }
}

/// An answer that does not belong to its continuation: a bug in the driver, reported rather than panicked on.
fn mismatched() -> AmqpError {
    AmqpError::new(
        ReplyCode::InternalError,
        "a queue's answer did not match the channel's continuation",
    )
}
