//! The vhost's side of `x-delayed-message` exchanges: starting and stopping each exchange's delay store
//! (`crate::delayed`), handing it the messages routing sends there, and routing its messages when due.

use std::sync::Arc;

use super::dead_letter::send_or_spawn;
use super::Vhost;
use crate::delayed::{DelayRequest, DelayStorage, DelayedExchange, DelayedOwner};
use crate::exchange::Exchange;
use crate::message::{now_ms, Message};
use crate::queue::{Enqueue, QueueCommand, QueueHandle};
use warren_store::IndexEntry;

impl Vhost {
    /// Starts the delay store of delayed exchange `x`: stored under `store_id` when it has one (a durable
    /// exchange), with the messages recovered for it.
    pub(super) fn start_delayed(
        &self,
        x: &Exchange,
        store_id: Option<u64>,
        recovered: Vec<IndexEntry>,
    ) {
        self.open_delayed(x, store_id, recovered)
            .start_timer(self.delayed_owner());
    }

    /// Opens the delay store of delayed exchange `x` without starting its timer: a restart opens every one first
    /// and starts their timers once queues and bindings are back, since an overdue message is routed at once.
    pub(super) fn open_delayed(
        &self,
        x: &Exchange,
        store_id: Option<u64>,
        recovered: Vec<IndexEntry>,
    ) -> Arc<DelayedExchange> {
        let storage = match (&self.stores, store_id) {
            (Some(p), Some(queue_id)) => Some(DelayStorage {
                store: p.store.clone(),
                queue_id,
            }),
            _ => None,
        };
        let (spill, budget) = match &self.stores {
            Some(p) => (Some(p.spill.clone()), p.queue_memory_budget),
            None => (None, u64::MAX),
        };
        let delayed = DelayedExchange::open(x.name.clone(), storage, spill, budget, recovered);
        if let Some(old) = self.delayed.insert(x.name.clone(), delayed.clone()) {
            old.close();
        }
        delayed
    }

    /// What a delay store routes its due messages through: this vhost, held weakly.
    pub(super) fn delayed_owner(&self) -> std::sync::Weak<dyn DelayedOwner> {
        self.me.clone()
    }

    /// The exchange `name` is gone: its delayed messages are dropped.
    pub(super) fn stop_delayed(&self, name: &str) {
        if let Some((_, delayed)) = self.delayed.remove(name) {
            delayed.close();
        }
    }

    /// The vhost is deleted: every delay store closes (their stored messages are dropped).
    pub(crate) fn stop_all_delayed(&self) {
        let names: Vec<Arc<str>> = self.delayed.iter().map(|d| d.key().clone()).collect();
        for name in names {
            self.stop_delayed(&name);
        }
    }

    /// The delay store of exchange `name`, if it is a delayed exchange.
    pub(crate) fn delayed_exchange(&self, name: &str) -> Option<Arc<DelayedExchange>> {
        self.delayed.get(name).map(|d| d.value().clone())
    }

    /// Hands `message` to the delay stores routing sent it to, outside a publish (a dead-lettered copy): no
    /// confirm waits on them.
    pub(super) fn delay_without_confirm(&self, message: &Message, delays: Vec<DelayRequest>) {
        if delays.is_empty() {
            return;
        }
        let shared = Arc::new(Message::restored(
            message.id,
            &message.exchange,
            &message.routing_key,
            message.properties_raw.clone(),
            message.body.clone(),
        ));
        for request in delays {
            request
                .exchange
                .delay(shared.clone(), request.delay_ms, None);
        }
    }
}

impl DelayedOwner for Vhost {
    fn route_due(
        &self,
        exchange: &Arc<str>,
        message: Message,
        settled: Box<dyn FnOnce(bool) + Send>,
    ) {
        let Some(x) = self.exchange(exchange) else {
            settled(true);
            return;
        };
        let mut queues: Vec<Arc<QueueHandle>> = Vec::new();
        self.route_from(&x, &message, &mut queues);
        if queues.is_empty() {
            settled(true);
            return;
        }
        let message = Arc::new(message);
        let stored_for: Vec<u64> = match (&self.stores, message.persistent()) {
            (Some(_), true) => queues.iter().filter_map(|q| q.spec.store_id).collect(),
            _ => Vec::new(),
        };
        match &self.stores {
            // Stored for the durable targets before any of them has it, as a publish is; the exchange's own
            // record goes once this copy is durable.
            Some(p) if !stored_for.is_empty() => p.store.publish(
                message.to_stored(now_ms()),
                stored_for,
                Box::new(move |result| settled(result.is_ok())),
            ),
            _ => settled(true),
        }
        for queue in &queues {
            let command = QueueCommand::Publish(vec![Enqueue {
                message: message.clone(),
                confirm: None,
            }]);
            send_or_spawn(queue, command);
        }
    }
}
