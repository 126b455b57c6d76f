//! The task of one delayed exchange: it sleeps until the first due time (or until an earlier one arrives), takes
//! what is due in batches, reads paged-out bodies back on the blocking pool, and hands each message to the vhost
//! to route with `x-delay` set to minus its delay, as the plugin routes it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::header::{delay_of, due_properties};
use super::schedule::Due;
use super::{memory_cost, DelayedExchange, DelayedOwner, Payload};
use crate::message::{now_ms, Message};

/// Due messages taken per round: bounds the blocking read trip and the time the lock is held.
const BATCH: usize = 256;

/// Starts the exchange's task. It holds the exchange until [`DelayedExchange::close`], and its owner weakly.
pub(super) fn spawn(exchange: Arc<DelayedExchange>, owner: Weak<dyn DelayedOwner>) {
    tokio::spawn(run(exchange, owner));
}

async fn run(exchange: Arc<DelayedExchange>, owner: Weak<dyn DelayedOwner>) {
    loop {
        let next = {
            let state = exchange.lock();
            if state.closed {
                return;
            }
            state.schedule.next_due()
        };
        match next.map(|due| due.saturating_sub(now_ms())) {
            None => {
                exchange.wake.notified().await;
                continue;
            }
            Some(0) => {}
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = exchange.wake.notified() => continue,
                }
            }
        }
        let batch = exchange.take_due(now_ms());
        if batch.is_empty() {
            continue;
        }
        let Some(owner) = owner.upgrade() else {
            return;
        };
        let loaded = match exchange.clone().load(batch).await {
            Some(loaded) => loaded,
            None => continue,
        };
        for (due, message) in loaded {
            exchange.route(&*owner, due, message);
        }
    }
}

impl DelayedExchange {
    /// Takes out the messages due at `now`, at most a batch.
    fn take_due(&self, now: u64) -> Vec<Due<Payload>> {
        let mut state = self.lock();
        let batch = state.schedule.pop_due(now, BATCH);
        let freed: u64 = batch
            .iter()
            .filter_map(|d| d.slot.payload.message.as_ref())
            .map(|m| memory_cost(m))
            .sum();
        state.loaded_bytes = state.loaded_bytes.saturating_sub(freed);
        batch
    }

    /// The batch with every body in memory: those paged out are read back in one trip to the blocking pool. A
    /// body that cannot be read is logged and its message dropped (its record acked), as a queue drops a damaged
    /// stored message. None if the blocking pool is gone (shutdown).
    async fn load(
        self: Arc<Self>,
        batch: Vec<Due<Payload>>,
    ) -> Option<Vec<(Due<Payload>, Arc<Message>)>> {
        if batch.iter().all(|d| d.slot.payload.message.is_some()) {
            return Some(
                batch
                    .into_iter()
                    .filter_map(|mut d| d.slot.payload.message.take().map(|m| (d, m)))
                    .collect(),
            );
        }
        tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .filter_map(|mut d| {
                    let message = match d.slot.payload.message.take() {
                        Some(m) => Some(m),
                        None => self.read_back(&d),
                    };
                    match message {
                        Some(m) => Some((d, m)),
                        None => {
                            self.forget(&d);
                            None
                        }
                    }
                })
                .collect()
        })
        .await
        .ok()
    }

    /// Reads a paged-out body back: from the store (its record stays until routed) or the spill store (released
    /// at once: the body is in memory from now on).
    fn read_back(&self, due: &Due<Payload>) -> Option<Arc<Message>> {
        let read = match (&self.storage, due.slot.payload.stored, &self.spill) {
            (Some(storage), true, _) => storage.store.read(storage.queue_id, due.id),
            (_, false, Some(spill)) => {
                let read = spill.read(due.id);
                spill.release(due.id);
                read
            }
            _ => return None,
        };
        match read {
            Ok(stored) => Some(Arc::new(Message::restored(
                stored.msg_id,
                &stored.exchange,
                &stored.routing_key,
                stored.properties_raw,
                stored.body,
            ))),
            Err(error) => {
                tracing::error!(%error, "delayed exchange '{}': a delayed message cannot be read back; dropped", self.name);
                None
            }
        }
    }

    /// Routes one due message through the owner; its store record is acked once every target holds it.
    fn route(&self, owner: &dyn DelayedOwner, due: Due<Payload>, message: Arc<Message>) {
        let properties = match message.properties() {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error.text, "delayed exchange '{}': a due message's properties do not decode; dropped", self.name);
                self.forget(&due);
                return;
            }
        };
        tracing::trace!(exchange = %self.name, late_ms = now_ms().saturating_sub(due.due_ms), "delayed message due");
        let delay = delay_of(properties.headers().as_ref()).unwrap_or(0);
        let properties_raw = match due_properties(&properties, delay) {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(%error.text, "delayed exchange '{}': cannot re-encode a due message's properties; dropped", self.name);
                self.forget(&due);
                return;
            }
        };
        // A new id: the store and the spill store key bodies by id, and this copy's properties differ.
        let mut routed = Message::new(
            message.exchange.clone(),
            message.routing_key.clone(),
            properties_raw,
            message.body.clone(),
        );
        routed.set_expiration(message.expiration());
        let settled: Box<dyn FnOnce(bool) + Send> = match (&self.storage, due.slot.payload.stored) {
            (Some(storage), true) => {
                let store = storage.store.clone();
                let queue_id = storage.queue_id;
                let id = due.id;
                let name = self.name.clone();
                Box::new(move |held| {
                    if held {
                        store.ack(queue_id, vec![id]);
                    } else {
                        // Kept in the store: the next start routes it again.
                        tracing::warn!("delayed exchange '{name}': a due message could not be stored for its queues; kept for the next start");
                    }
                })
            }
            _ => Box::new(|_| {}),
        };
        owner.route_due(&self.name, routed, settled);
    }
}
