//! The second half of the methods that wait: what a channel does with a queue's answer, or after a wait it asked
//! for, according to the [`Continuation`] it left in the effect.

use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{basic, queue, AMQPClass};

use super::effect::{ChannelEffects, Continuation, QueueAnswer};
use super::{Channel, ChannelContext};

impl Channel {
    /// Takes a queue's answer to the [`Effect::Ask`](super::effect::Effect::Ask) that carried `then`. Call it as
    /// soon as the answer arrives, before any other event for this channel, and execute what it emits.
    pub fn handle_answer(
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
            (Continuation::Consume { tag, queue }, QueueAnswer::Consume(result)) => {
                let result = result
                    .unwrap_or_else(|| Err(AmqpError::not_found("queue", &queue, &ctx.vhost.name)));
                if let Err(error) = result {
                    self.outlet.remove_consumer(&tag);
                    return Err(error.on_method(60, 20));
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
                let count = result.unwrap_or(Ok(0)).map_err(|e| e.on_method(50, 40))?;
                ctx.vhost.forget_queue(&queue);
                self.deleted_queue(ctx, &queue.spec.name, count, nowait, effects);
            }
            _ => return Err(mismatched()),
        }
        Ok(())
    }

    /// Continues after an [`Effect::Resume`](super::effect::Effect::Resume): call it once every effect before
    /// that one has been executed, and execute what it emits.
    pub fn resume(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        then: Continuation,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        match then {
            Continuation::Commit(rest) => self
                .commit_publishes(ctx, rest, effects)
                .map_err(|e| e.on_method(90, 20)),
            _ => Err(mismatched()),
        }
    }

    /// queue.delete is done: the queue is no longer this connection's to delete when it closes.
    pub(super) fn deleted_queue(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        name: &str,
        count: u32,
        nowait: bool,
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
    }
}

/// An answer that does not belong to its continuation: a bug in the driver, reported rather than panicked on.
fn mismatched() -> AmqpError {
    AmqpError::new(
        ReplyCode::InternalError,
        "a queue's answer did not match the channel's continuation",
    )
}
