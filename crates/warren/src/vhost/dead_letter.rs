//! Dead-lettering, the vhost's side: the copies of messages that died in a queue (rejected, expired, pushed out
//! by a length limit) are published to the queue's dead-letter exchange, as RabbitMQ's classic queues do: at most
//! once, without confirms, never waiting on the target queues (the dying queue's actor calls this).

use std::sync::Arc;
use std::time::SystemTime;

use super::Vhost;
use crate::message::dead_letter::{dead_letter, Death};
use crate::message::{now_ms, Message};
use crate::queue::{DeadLetters, Enqueue, QueueCommand, QueueHandle};

impl Vhost {
    /// Publishes the copies of `dead`'s messages, which died in `from`, through its dead-letter exchange. A missing
    /// exchange drops them (logged), as RabbitMQ does; a copy that would close a dead-letter cycle is not delivered
    /// to that queue.
    pub(crate) fn publish_dead_letters(&self, from: &QueueHandle, dead: DeadLetters) {
        // The default exchange ("") routes by queue name and is in no table.
        let exchange = match dead.exchange.as_str() {
            "" => None,
            name => self.exchange(name),
        };
        if exchange.is_none() && !dead.exchange.is_empty() {
            tracing::warn!(
                "dead-letter exchange '{}' of queue '{}' in vhost '{}' does not exist: {} message(s) dropped",
                dead.exchange,
                from.name(),
                self.name,
                dead.letters.len()
            );
            return;
        }
        let now = SystemTime::now();
        let dlx_name: Arc<str> = Arc::from(dead.exchange.as_str());
        let mut queues: Vec<Arc<QueueHandle>> = Vec::new();
        for (message, reason) in dead.letters {
            let death = Death {
                reason,
                queue: from.name(),
                exchange: &message.exchange,
                routing_key: &message.routing_key,
                earlier_keys: None,
                time: now,
            };
            let copy = match dead_letter(
                &message.properties_raw,
                &death,
                dead.routing_key.as_deref(),
            ) {
                Ok(copy) => copy,
                Err(error) => {
                    tracing::warn!(%error.text, "queue '{}': cannot dead-letter a message whose properties do not decode; dropped", from.name());
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
            if queues.is_empty() {
                continue;
            }
            let routed = Arc::new(routed);
            if routed.persistent {
                self.store_dead_letter(&routed, &queues);
            }
            for queue in &queues {
                let command = QueueCommand::Publish(vec![Enqueue {
                    message: routed.clone(),
                    confirm: None,
                }]);
                if let Err(command) = queue.try_send(command) {
                    // A full inbox: wait for room off the dying queue's actor.
                    let queue = queue.clone();
                    tokio::spawn(async move {
                        queue.send(command).await;
                    });
                }
            }
        }
    }

    /// Stores a persistent copy for the durable queues among `queues`, before any of them has it: the dying queue
    /// forgets its own copy only after this (the store applies its writes in order).
    fn store_dead_letter(&self, message: &Message, queues: &[Arc<QueueHandle>]) {
        let Some(stores) = &self.stores else {
            return;
        };
        let ids: Vec<u64> = queues.iter().filter_map(|q| q.spec.store_id).collect();
        if ids.is_empty() {
            return;
        }
        // The copy enters its new queues now: their TTLs count from here, as RabbitMQ counts them.
        stores
            .store
            .publish(message.to_stored(now_ms()), ids, Box::new(|_| {}));
    }
}
