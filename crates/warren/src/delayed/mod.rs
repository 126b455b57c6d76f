//! The `x-delayed-message` exchange's delay store (RabbitMQ's rabbitmq_delayed_message_exchange plugin, built
//! in): a message published to such an exchange with a positive `x-delay` header waits here instead of being
//! routed, and is routed through the exchange's bindings as its `x-delayed-type` would route it once due.
//!
//! One [`DelayedExchange`] per delayed exchange, held by its vhost. It keeps an index, not the messages: per
//! message its id, due time, size and routing key in a [`schedule::DelaySchedule`] ordered by due time, and the
//! body only while the exchange's bodies in memory stay under its budget. Past the budget a body waits on disk:
//! - a **persistent message of a durable exchange** is in the message store anyway, under the store id the
//!   definitions give the exchange (like a hidden queue's); the publisher's confirm waits for its fsync, and the
//!   store's record is acked only once the due message is routed and its durable targets have their own copy
//!   (a crash in between routes it again after the restart: at least once). Recovery gives back each message's
//!   id, size and due time (stored as its deadline), so a restart rebuilds the index without reading a body;
//! - **any other message** goes to the node's spill store, as a queue's transient messages past its budget do;
//!   transient messages do not survive a restart.
//!
//! One task per exchange ([`timer`]) sleeps until the first due time and routes what is due through the vhost
//! ([`DelayedOwner`]), reading paged-out bodies back on the blocking pool. The publish path of other exchanges
//! pays one kind comparison (`vhost::routing`).

mod header;
mod schedule;
mod timer;

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;

use crate::message::{now_ms, Message};
use crate::session::ConfirmRef;
use schedule::{DelaySchedule, Due, Slot};
use warren_store::{IndexEntry, SpillStore, Store};

pub(crate) use header::delay_of;

/// What the delay store asks of its owner (the vhost) when a message is due.
pub(crate) trait DelayedOwner: Send + Sync {
    /// Routes `message` through exchange `exchange`'s bindings (its `x-delay` is negative by now, so the exchange
    /// routes it at once) and hands it to the queues it reaches. `settled` is called once with true when every
    /// target holds it (durable targets: stored, fsynced), with false if storing it for them failed.
    fn route_due(
        &self,
        exchange: &Arc<str>,
        message: Message,
        settled: Box<dyn FnOnce(bool) + Send>,
    );
}

/// A publish routed into a delayed exchange: the exchange's store and the delay the message asks for.
pub(crate) struct DelayRequest {
    /// Where it waits.
    pub(crate) exchange: Arc<DelayedExchange>,
    /// Its `x-delay`, in ms (1 up to 2^32 - 1).
    pub(crate) delay_ms: u64,
}

/// One delayed message as the management API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayedMessage {
    /// Its id: what [`crate::broker::Broker::cancel_delayed_message`] takes.
    pub id: u64,
    /// When it is due, in ms since the Unix epoch.
    pub due_at_ms: u64,
    /// Its routing key; None if it could not be read back from the store.
    pub routing_key: Option<String>,
    /// Its body size in bytes.
    pub size: u32,
}

/// The message store's side of a durable delayed exchange.
pub(crate) struct DelayStorage {
    /// The node's message store.
    pub(crate) store: Store,
    /// The id the exchange's persistent delayed messages are stored under.
    pub(crate) queue_id: u64,
}

/// Where a delayed message's body is.
#[derive(Debug)]
struct Payload {
    /// The message, while in memory.
    message: Option<Arc<Message>>,
    /// It is in the message store under the exchange's id (acked once routed); otherwise a body not in memory is
    /// in the spill store (released once read back).
    stored: bool,
}

/// The schedule and the bytes of bodies it holds in memory, under one short lock (never held across I/O).
struct State {
    schedule: DelaySchedule<Payload>,
    loaded_bytes: u64,
    /// The exchange was deleted: nothing more is taken, the task ends.
    closed: bool,
}

/// The delayed messages of one `x-delayed-message` exchange and what it needs to keep them.
pub(crate) struct DelayedExchange {
    /// The exchange's name (routing a due message looks the exchange up by it).
    name: Arc<str>,
    state: Mutex<State>,
    /// Wakes the timer task: an earlier due time arrived, or the exchange closed.
    wake: Notify,
    /// Set for a durable exchange of a broker with a data directory.
    storage: Option<DelayStorage>,
    /// Where bodies of other messages go past the budget; None without a data directory (kept in memory).
    spill: Option<SpillStore>,
    /// Bytes of messages kept in memory before bodies are paged out.
    budget: u64,
}

/// What a message in memory is counted as: its body and properties plus the shared `Message` (128 bytes) and
/// its allocation headers. Small messages are mostly this overhead.
fn memory_cost(message: &Message) -> u64 {
    (message.body.len() + message.properties_raw.len() + 160) as u64
}

impl DelayedExchange {
    /// The delay store of exchange `name`, with the messages recovered for it from the store (`recovered`, none
    /// for a new exchange). It holds what routing hands it but routes nothing until [`Self::start_timer`].
    pub(crate) fn open(
        name: Arc<str>,
        storage: Option<DelayStorage>,
        spill: Option<SpillStore>,
        budget: u64,
        recovered: Vec<IndexEntry>,
    ) -> Arc<DelayedExchange> {
        let mut schedule = DelaySchedule::default();
        let now = now_ms();
        for entry in recovered {
            // Stored with its due time as its deadline; a record without one is due now.
            let due = entry.meta.and_then(|m| m.expires_at_ms).unwrap_or(now);
            let slot = Slot {
                size: entry.body_size,
                routing_key: None,
                payload: Payload {
                    message: None,
                    stored: true,
                },
            };
            schedule.insert(entry.msg_id, due, slot);
        }
        Arc::new(DelayedExchange {
            name,
            state: Mutex::new(State {
                schedule,
                loaded_bytes: 0,
                closed: false,
            }),
            wake: Notify::new(),
            storage,
            spill,
            budget,
        })
    }

    /// Starts its timer task, which routes each message through `owner` when due (at once for those overdue);
    /// call once, from within the tokio runtime.
    pub(crate) fn start_timer(self: &Arc<Self>, owner: Weak<dyn DelayedOwner>) {
        timer::spawn(self.clone(), owner);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `message` for `delay_ms`. Never waits: a persistent message of a durable exchange is handed to the
    /// store, and `confirm` is released by the fsync that covers it (failed if the store fails); otherwise
    /// `confirm` is released here.
    pub(crate) fn delay(
        self: &Arc<Self>,
        message: Arc<Message>,
        delay_ms: u64,
        confirm: Option<ConfirmRef>,
    ) {
        let now = now_ms();
        let due = now.saturating_add(delay_ms);
        let id = message.id;
        let cost = memory_cost(&message);
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let over_budget = state.loaded_bytes + cost > self.budget;
        let mut payload = Payload {
            message: Some(message.clone()),
            stored: false,
        };
        match &self.storage {
            Some(storage) if message.persistent() => {
                let mut stored = message.to_stored(now);
                if let Some(meta) = stored.meta.as_mut() {
                    // The due time is the record's deadline: recovery hands it back without the body.
                    meta.expires_at_ms = Some(due);
                }
                let me = Arc::downgrade(self);
                // The body stays in memory until it is durable (readable from the store), then goes if over the
                // budget. The callback never runs on this thread while the lock is held but with Err (closed).
                storage.store.publish(
                    stored,
                    vec![storage.queue_id],
                    Box::new(move |result| match result {
                        Ok(()) => {
                            if over_budget {
                                if let Some(me) = me.upgrade() {
                                    me.page_out(due, id);
                                }
                            }
                            drop(confirm);
                        }
                        Err(_) => {
                            if let Some(confirm) = confirm {
                                confirm.fail();
                            }
                        }
                    }),
                );
                payload.stored = true;
            }
            _ => {
                drop(confirm);
                if over_budget {
                    if let Some(spill) = &self.spill {
                        // Refused (the spill store failed recently): it stays in memory.
                        if spill.put(id, || message.to_spilled()).is_ok() {
                            payload.message = None;
                        }
                    }
                }
            }
        }
        if payload.message.is_some() {
            state.loaded_bytes += cost;
        }
        let slot = Slot {
            size: u32::try_from(message.body.len()).unwrap_or(u32::MAX),
            routing_key: Some(message.routing_key.clone()),
            payload,
        };
        let first = state.schedule.insert(id, due, slot);
        drop(state);
        if first {
            self.wake.notify_one();
        }
    }

    /// Drops the in-memory body of a stored message (it is durable now).
    fn page_out(&self, due: u64, id: u64) {
        let mut state = self.lock();
        let freed = match state.schedule.get_mut(due, id) {
            Some(slot) => slot.payload.message.take().map(|m| memory_cost(&m)),
            None => None,
        };
        if let Some(freed) = freed {
            state.loaded_bytes = state.loaded_bytes.saturating_sub(freed);
        }
    }

    /// How many messages wait (the plugin's `messages_delayed`).
    pub(crate) fn count(&self) -> usize {
        self.lock().schedule.len()
    }

    /// Up to `limit` delayed messages from the `offset`-th in due order. Blocking: routing keys of messages
    /// recovered from the store are read back from it (outside the lock), once.
    pub(crate) fn list(&self, offset: usize, limit: usize) -> Vec<DelayedMessage> {
        let page: Vec<(u64, u64, Option<Arc<str>>, u32)> = self
            .lock()
            .schedule
            .page(offset, limit)
            .map(|(id, due, slot)| (id, due, slot.routing_key.clone(), slot.size))
            .collect();
        page.into_iter()
            .map(|(id, due, key, size)| {
                let key = key.or_else(|| self.read_routing_key(due, id));
                DelayedMessage {
                    id,
                    due_at_ms: due,
                    routing_key: key.map(|k| k.to_string()),
                    size,
                }
            })
            .collect()
    }

    fn read_routing_key(&self, due: u64, id: u64) -> Option<Arc<str>> {
        let storage = self.storage.as_ref()?;
        let stored = storage.store.read(storage.queue_id, id).ok()?;
        let key: Arc<str> = Arc::from(stored.routing_key.as_str());
        if let Some(slot) = self.lock().schedule.get_mut(due, id) {
            slot.routing_key = Some(key.clone());
        }
        Some(key)
    }

    /// Cancels delayed message `id`: it is dropped, never routed. False if no such message waits.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let removed = {
            let mut state = self.lock();
            let removed = state.schedule.remove(id);
            if let Some(m) = removed
                .as_ref()
                .and_then(|d| d.slot.payload.message.as_ref())
            {
                state.loaded_bytes = state.loaded_bytes.saturating_sub(memory_cost(m));
            }
            removed
        };
        match removed {
            Some(due) => {
                self.forget(&due);
                true
            }
            None => false,
        }
    }

    /// The exchange is deleted: its messages are dropped (its store records with it) and its task ends.
    pub(crate) fn close(&self) {
        let drained = {
            let mut state = self.lock();
            state.closed = true;
            state.loaded_bytes = 0;
            state.schedule.drain()
        };
        for due in drained.iter().filter(|d| !d.slot.payload.stored) {
            self.forget(due);
        }
        if let Some(storage) = &self.storage {
            storage.store.drop_queue(storage.queue_id);
        }
        self.wake.notify_one();
    }

    /// Releases what a message that leaves unrouted holds on disk.
    fn forget(&self, due: &Due<Payload>) {
        let payload = &due.slot.payload;
        match (&self.storage, payload.stored, &self.spill) {
            (Some(storage), true, _) => storage.store.ack(storage.queue_id, vec![due.id]),
            (_, false, Some(spill)) if payload.message.is_none() => spill.release(due.id),
            _ => {}
        }
    }
}

impl Drop for DelayedExchange {
    fn drop(&mut self) {
        // A spilled body nobody will read: release it (stored ones stay for the next start).
        if let Some(spill) = &self.spill {
            let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
            for due in state.schedule.drain() {
                if !due.slot.payload.stored && due.slot.payload.message.is_none() {
                    spill.release(due.id);
                }
            }
        }
    }
}
