//! The I/O half of a channel: executes the effects its state machine emits, in order, and feeds queue answers
//! back to it. The connection reader calls this after every event it hands a channel; the unit tests drive
//! channels through the same function, so what they check is what the broker does.

use std::sync::Arc;

use tokio::sync::oneshot;
use warren_protocol::error::AmqpError;

use super::effect::{ChannelEffects, Effect, QueueAnswer, QueueRequest};
use super::{Channel, ChannelContext};
use crate::queue::{QueueCommand, QueueHandle};

/// Executes `effects` and whatever the channel emits in answer to them, until none are left. An error is the
/// channel's answer to a queue's refusal (a consume on a queue in exclusive use) or a failed continuation: the
/// caller closes the channel with it, as for an error from the event itself.
pub(crate) async fn execute(
    channel: &mut Channel,
    ctx: &mut ChannelContext<'_>,
    effects: &mut ChannelEffects,
) -> Result<(), AmqpError> {
    while let Some(effect) = effects.next_effect() {
        match effect {
            Effect::Write(frames) => {
                ctx.conn
                    .outbound
                    .write(|out| out.extend_from_slice(&frames));
            }
            Effect::Settle { queue, command } => queue.settle(command),
            Effect::Send { queue, command } => {
                // A gone queue has nobody to answer the client: basic.get then goes unanswered, as before.
                queue.send(command).await;
            }
            Effect::Ask {
                queue,
                request,
                then,
            } => {
                let answer = ask(&queue, request).await;
                channel.handle_answer(ctx, then, answer, effects)?;
            }
            Effect::Drain(backlog) => backlog.wait(ctx.broker, ctx.publisher()).await,
            Effect::ReleaseConfirm(confirm) => drop(confirm),
            Effect::Resume(then) => channel.resume(ctx, then, effects)?,
            Effect::Topology {
                change,
                method,
                then,
            } => {
                let declared = ctx
                    .vhost
                    .change_topology(change)
                    .await
                    .map_err(|e| e.on(method))?;
                channel.topology_changed(ctx, then, declared, effects)?;
            }
        }
    }
    Ok(())
}

/// Sends `request` to `queue` (waiting for room in its inbox) and waits for the answer.
async fn ask(queue: &Arc<QueueHandle>, request: QueueRequest) -> QueueAnswer {
    match request {
        QueueRequest::Stats => QueueAnswer::Stats(queue.stats().await),
        QueueRequest::Consume { consumer, send_ok } => {
            let (reply, answer) = oneshot::channel();
            let command = QueueCommand::Consume {
                consumer,
                send_ok,
                reply,
            };
            QueueAnswer::Consume(send_then_receive(queue, command, answer).await)
        }
        QueueRequest::Cancel {
            sink,
            consumer_tag,
            send_ok,
        } => {
            let (reply, answer) = oneshot::channel();
            let command = QueueCommand::Cancel {
                sink,
                consumer_tag,
                send_ok,
                reply,
            };
            QueueAnswer::Cancel(send_then_receive(queue, command, answer).await.is_some())
        }
        QueueRequest::Purge => {
            let (reply, answer) = oneshot::channel();
            let command = QueueCommand::Purge { reply };
            QueueAnswer::Purge(send_then_receive(queue, command, answer).await)
        }
        QueueRequest::Delete {
            if_unused,
            if_empty,
            sink,
        } => {
            let (reply, answer) = oneshot::channel();
            let command = QueueCommand::Delete {
                if_unused,
                if_empty,
                requester: Some(sink),
                reply,
            };
            QueueAnswer::Delete(send_then_receive(queue, command, answer).await)
        }
    }
}

/// The answer to `command`, or `None` if the queue is gone before it takes the command or answers it.
async fn send_then_receive<T>(
    queue: &QueueHandle,
    command: QueueCommand,
    answer: oneshot::Receiver<T>,
) -> Option<T> {
    if !queue.send(command).await {
        return None;
    }
    answer.await.ok()
}
