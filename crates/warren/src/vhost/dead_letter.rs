//! Dead-lettering, the vhost's side: the copies of messages that died in a queue (rejected, expired, pushed out
//! by a length limit, returned past the delivery limit) are published to the queue's dead-letter exchange, never
//! waiting on the target queues (the dying queue's actor calls this). At most once, as RabbitMQ's classic queues
//! do, without receipts; or at least once, when the queue sends a batch receipt (`queue::dead_letter_batch`):
//! each target queue's copy and the store's copy then hold a share of it, and a letter the exchange routes nowhere
//! is reported undelivered, for its queue to keep and retry.

use std::sync::Arc;

use super::Vhost;
use crate::message::dead_letter::{dead_letter, Death};
use crate::message::{now_ms, Message};
use crate::queue::dead_letter_batch::LetterShare;
use crate::queue::{DeadLetterEnqueue, DeadLetters, Enqueue, QueueCommand, QueueHandle};

impl Vhost {
    /// Publishes the copies of `dead`'s messages, which died in `from`, through its dead-letter exchange. A missing
    /// exchange drops them (logged), as RabbitMQ does, unless they go at least once: then they are reported
    /// undelivered. A copy that would close a dead-letter cycle is not delivered to that queue.
    pub(crate) fn publish_dead_letters(&self, from: &QueueHandle, dead: DeadLetters) {
        let DeadLetters {
            exchange: dlx,
            routing_key,
            letters,
            batch,
        } = dead;
        // The default exchange ("") routes by queue name and is in no table.
        let exchange = match dlx.as_str() {
            "" => None,
            name => self.exchange(name),
        };
        if exchange.is_none() && !dlx.is_empty() {
            match batch {
                None => tracing::warn!(
                    "dead-letter exchange '{dlx}' of queue '{}' in vhost '{}' does not exist: {} message(s) dropped",
                    from.name(),
                    self.name,
                    letters.len()
                ),
                // Dropped here, the batch reports every letter undelivered: its queue keeps them.
                Some(_) => tracing::debug!(
                    "dead-letter exchange '{dlx}' of queue '{}' in vhost '{}' does not exist: {} message(s) kept in the queue",
                    from.name(),
                    self.name,
                    letters.len()
                ),
            }
            return;
        }
        let dlx_name: Arc<str> = Arc::from(dlx.as_str());
        let mut queues: Vec<Arc<QueueHandle>> = Vec::new();
        // At least once: the copies for each target queue, sent as one command per queue.
        let mut runs: Vec<(Arc<QueueHandle>, Vec<DeadLetterEnqueue>)> = Vec::new();
        for (i, letter) in letters.into_iter().enumerate() {
            let message = &letter.message;
            let death = Death {
                reason: letter.reason,
                queue: from.name(),
                exchange: &message.exchange,
                routing_key: &message.routing_key,
                earlier_keys: None,
                time: letter.died_at,
            };
            let copy = match dead_letter(&message.properties_raw, &death, routing_key.as_deref()) {
                Ok(copy) => copy,
                Err(error) => {
                    tracing::warn!(%error.text, "queue '{}': cannot dead-letter a message whose properties do not decode; dropped", from.name());
                    // At least once too: every retry would fail the same way, so it counts as done with.
                    if let Some(batch) = &batch {
                        batch.routed(i);
                    }
                    continue;
                }
            };
            let routed = Message::new(
                dlx_name.clone(),
                Arc::from(copy.routing_key()),
                copy.properties_raw.clone(),
                message.body.clone(),
            );
            queues.clear();
            for key in &copy.routing_keys.keys {
                let probe;
                let keyed = if **key == *routed.routing_key {
                    &routed
                } else {
                    probe = Message::new(
                        dlx_name.clone(),
                        Arc::from(key.as_str()),
                        routed.properties_raw.clone(),
                        routed.body.clone(),
                    );
                    &probe
                };
                let mut found = Vec::new();
                match &exchange {
                    Some(exchange) => {
                        self.route_from(exchange, keyed, &mut found);
                    }
                    None => found.extend(self.queue(&keyed.routing_key)),
                }
                for queue in found {
                    if !queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
                        queues.push(queue);
                    }
                }
            }
            queues.retain(|queue| {
                let cycle = copy.is_cycle(queue.name());
                if cycle {
                    tracing::warn!(
                        "Message dropped because the following list of queues (ordered by death recency) contains a dead letter cycle without reason 'rejected': {:?}",
                        std::iter::once(queue.name().to_owned())
                            .chain(copy.death_queues())
                            .collect::<Vec<_>>()
                    );
                }
                !cycle
            });
            let Some(batch) = &batch else {
                self.send_at_most_once(routed, &queues);
                continue;
            };
            // At least once: as RabbitMQ's dead-letter worker, a letter that routes nowhere is kept and retried;
            // one whose every route already holds it (an earlier attempt that a target refused) is delivered.
            let held = batch.held_by(i);
            if queues.is_empty() && held.is_empty() {
                tracing::debug!(
                    "dead-letter exchange '{dlx}' of queue '{}' in vhost '{}' routes a message nowhere: kept in the queue",
                    from.name(),
                    self.name
                );
                continue;
            }
            batch.routed(i);
            queues.retain(|queue| !held.iter().any(|h| **h == *queue.name()));
            if queues.is_empty() {
                continue;
            }
            let routed = Arc::new(routed);
            if routed.persistent() {
                self.store_dead_letter(&routed, &queues, Some(batch.share(i, None)));
            }
            for queue in &queues {
                let item = DeadLetterEnqueue {
                    message: routed.clone(),
                    share: batch.share(i, Some(queue.spec.name.clone())),
                };
                match runs.iter_mut().find(|(q, _)| Arc::ptr_eq(q, queue)) {
                    Some((_, run)) => run.push(item),
                    None => runs.push((queue.clone(), vec![item])),
                }
            }
        }
        for (queue, run) in runs {
            send_or_spawn(&queue, QueueCommand::PublishDeadLetters(run));
        }
        // Our hold on the batch goes here: it reports to its queue once the last share is released.
        drop(batch);
    }

    /// Sends one copy to `queues` at most once: stored first for the durable ones among them.
    pub(super) fn send_at_most_once(&self, routed: Message, queues: &[Arc<QueueHandle>]) {
        if queues.is_empty() {
            return;
        }
        let routed = Arc::new(routed);
        if routed.persistent() {
            self.store_dead_letter(&routed, queues, None);
        }
        for queue in queues {
            let command = QueueCommand::Publish(vec![Enqueue {
                message: routed.clone(),
                confirm: None,
            }]);
            send_or_spawn(queue, command);
        }
    }

    /// Stores a persistent copy for the durable queues among `queues`, before any of them has it: the dying queue
    /// forgets its own copy only after this (the store applies its writes in order). At least once, `share` is
    /// released by the fsync that makes the copy durable, or refused if the store fails.
    fn store_dead_letter(
        &self,
        message: &Message,
        queues: &[Arc<QueueHandle>],
        share: Option<LetterShare>,
    ) {
        let Some(stores) = &self.stores else {
            return;
        };
        let ids: Vec<u64> = queues.iter().filter_map(|q| q.spec.store_id).collect();
        if ids.is_empty() {
            return;
        }
        // The copy enters its new queues now: their TTLs count from here, as RabbitMQ counts them.
        stores.store.publish(
            message.to_stored(now_ms()),
            ids,
            Box::new(move |result| {
                if let (Some(share), Err(_)) = (share, result) {
                    share.refuse();
                }
            }),
        );
    }
}

/// Sends `command` to `queue` without waiting: a full inbox is waited for on a task of its own, off the dying
/// queue's actor.
pub(super) fn send_or_spawn(queue: &Arc<QueueHandle>, command: QueueCommand) {
    if let Err(command) = queue.try_send(command) {
        // Outside a runtime (a policy set from the config file at start, before the listener runs) there is no
        // task to wait on; the message is dropped, as at most once allows.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "queue '{}' is full: a message for it is dropped",
                queue.name()
            );
            return;
        };
        let queue = queue.clone();
        runtime.spawn(async move {
            queue.send(command).await;
        });
    }
}
