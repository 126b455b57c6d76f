//! Paging: where a queue keeps messages past its memory budget, and reading them back. A persistent message of a
//! durable queue is in the message store already, so the queue keeps only its id; any other message (transient, or
//! in a non-durable queue) goes to the node's spill store, of which the queue then holds one share until it reads
//! the message back or drops it. Reads are blocking file I/O (a stored read may wait for the store's writer to
//! fsync), so they run on tokio's blocking pool, never on an async worker; the queue's actor awaits the result,
//! which holds back only that queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use warren_store::{SpillStore, Store, StoreError};

use super::actor::QueueActor;
use super::state::{PagedOut, Payload, Place, ReadyEntry};
use crate::message::{Message, QueuedMessage};

/// Body bytes read back per trip to the blocking pool (at least one message). A trip costs a thread hand-off, so
/// a run of paged-out messages is read together; the cap bounds the memory a read-ahead takes.
const READ_AHEAD_BYTES: u64 = 256 * 1024;

/// Messages read back per trip at most.
const READ_AHEAD_MESSAGES: usize = 64;

/// Bytes of spilled messages the spill store's writer may have waiting (node-wide) before a queue that spills
/// waits for it: the spilled messages are in memory until written, so this bounds that memory. A queue waiting
/// stops taking in its inbox, so its publishers wait in turn (TCP pushes back). A body is often a slice of a
/// larger read buffer, which it keeps alive: measured with 64 KiB bodies (`tests/spill_memory.rs`, 200 MiB
/// published to a queue with a 4 MiB budget), the resident set grew 85 MiB with a 32 MiB limit and 33 MiB with
/// this one, and the writer (page-cache writes, no fsync) still kept up.
const SPILL_BACKLOG_LIMIT: u64 = 8 << 20;

/// Spill shares released under one lock of the spill store: a purge of millions of messages must not hold it long.
const RELEASE_CHUNK: usize = 4096;
/// Body bytes one queue pages out per round under memory pressure: the rest in later rounds, so a queue holding
/// its whole budget does not stall its publishers and consumers while it writes.
const PAGE_OUT_PER_ROUND: u64 = 4 << 20;

/// The memory budget every queue of the node shares (`[storage] total_queue_memory_budget`): the ready bodies all
/// queues keep in memory, as each last reported it.
pub(crate) struct NodeMemory {
    /// The budget, in bytes.
    limit: u64,
    /// The sum of what every queue reported.
    used: AtomicU64,
    /// The broker's memory is past the paging threshold (half the memory high watermark, RabbitMQ's
    /// `vm_memory_high_watermark_paging_ratio`): every queue pages out the message bodies it holds and keeps new
    /// ones on disk until it clears, so the memory alarm clears once paging has made room, as in RabbitMQ.
    pressure: AtomicBool,
}

impl NodeMemory {
    /// A node budget of `limit` bytes, nothing used yet.
    pub(crate) fn new(limit: u64) -> NodeMemory {
        NodeMemory {
            limit,
            used: AtomicU64::new(0),
            pressure: AtomicBool::new(false),
        }
    }

    /// Sets or clears the memory pressure (the resource monitor, each sample); true if it changed.
    pub(crate) fn set_pressure(&self, on: bool) -> bool {
        self.pressure.swap(on, Ordering::Relaxed) != on
    }

    /// Whether queues page out under memory pressure now.
    pub(crate) fn under_pressure(&self) -> bool {
        self.pressure.load(Ordering::Relaxed)
    }
}

/// A queue's memory budget and where the messages past it go.
pub(crate) struct QueueMemory {
    /// Body bytes of ready messages the queue may keep in memory now; messages past it are kept only on disk. The
    /// queue's own budget, or while the node is over its budget what the queue holds already.
    pub(crate) budget: u64,
    /// The queue's own budget (`[storage] queue_memory_budget`).
    queue_budget: u64,
    /// The node's budget, shared with every queue; None: the queue's own budget alone applies.
    node: Option<Arc<NodeMemory>>,
    /// What this queue last added to the node's count.
    reported: u64,
    /// The node's spill store, for messages past the budget that the message store does not hold. None (a broker
    /// without a data directory): they stay in memory.
    pub(crate) spill: Option<SpillStore>,
}

impl QueueMemory {
    /// A queue's budget of `queue_budget` bytes within the node's, paging to `spill`.
    pub(crate) fn new(
        queue_budget: u64,
        node: Option<Arc<NodeMemory>>,
        spill: Option<SpillStore>,
    ) -> QueueMemory {
        QueueMemory {
            budget: queue_budget,
            queue_budget,
            node,
            reported: 0,
            spill,
        }
    }

    /// No budget: every message stays in memory.
    pub(crate) fn unbounded() -> QueueMemory {
        QueueMemory::new(u64::MAX, None, None)
    }

    /// After each round: reports the ready bytes the queue now holds in memory (`loaded`) to the node's count and
    /// sets the budget for the next round: while the node is over its budget, the queue keeps no more than it
    /// holds, so new messages go to disk. One atomic add when the figure changed and one load per round, never
    /// per message: the publish path still compares against a plain field.
    pub(super) fn account(&mut self, loaded: u64) {
        let Some(node) = &self.node else {
            return;
        };
        if loaded > self.reported {
            node.used
                .fetch_add(loaded - self.reported, Ordering::Relaxed);
        } else if loaded < self.reported {
            node.used
                .fetch_sub(self.reported - loaded, Ordering::Relaxed);
        }
        self.reported = loaded;
        self.budget = if node.under_pressure() {
            0
        } else if node.used.load(Ordering::Relaxed) > node.limit {
            self.queue_budget.min(loaded)
        } else {
            self.queue_budget
        };
    }

    /// Whether the node is under memory pressure: the queue should page out what it holds.
    pub(super) fn under_pressure(&self) -> bool {
        self.node.as_ref().is_some_and(|node| node.under_pressure())
    }
}

/// A queue that goes takes what it held off the node's count.
impl Drop for QueueMemory {
    fn drop(&mut self) {
        if let Some(node) = &self.node {
            node.used.fetch_sub(self.reported, Ordering::Relaxed);
        }
    }
}

/// Where a message leaves memory for: the message store, which has it already, for a persistent message of a durable
/// queue; the spill store for any other; memory if the spill store does not take it (failing, or a message too large
/// for a record: it logs why), so a message is never lost for want of a place.
fn place_on_disk(message: &Message, durable_queue: bool, spill: Option<&SpillStore>) -> Place {
    if message.persistent() && durable_queue {
        return Place::Store;
    }
    let Some(spill) = spill else {
        return Place::Memory;
    };
    match spill.put(message.id, || message.to_spilled()) {
        Ok(()) => Place::Spill,
        Err(_) => Place::Memory,
    }
}

/// Where a queue's paged-out messages are read from; cheap to clone onto the blocking pool.
pub(super) struct PageSources {
    /// The message store and the queue's id in it (durable queues).
    store: Option<(Store, u64)>,
    /// The spill store.
    spill: Option<SpillStore>,
}

impl QueueActor {
    /// Where a message that would take the queue past its memory budget is kept: a persistent message of a durable
    /// queue only in the message store (which has it already); any other in the spill store. In memory if the
    /// spill store does not take it (it is failing, or the message is too large for a record; the spill store
    /// logs its failures): a message is never lost for want of a place.
    pub(super) fn place_past_budget(&self, message: &Message) -> Place {
        place_on_disk(message, self.storage.is_some(), self.memory.spill.as_ref())
    }

    /// Under memory pressure: pages out up to [`PAGE_OUT_PER_ROUND`] bytes of the bodies the queue holds, newest
    /// (last to be delivered) first, and asks for another round while more remain; waits for the spill store's
    /// writer as a publish run that spilled does.
    pub(super) async fn page_out_under_pressure(&mut self, wake: &tokio::sync::Notify) {
        if self.state.loaded_bytes == 0 || !self.memory.under_pressure() {
            return;
        }
        let durable = self.storage.is_some();
        let spill = self.memory.spill.clone();
        let mut spilled = false;
        self.state.page_out_newest(PAGE_OUT_PER_ROUND, |message| {
            let place = place_on_disk(message, durable, spill.as_ref());
            spilled |= place == Place::Spill;
            place
        });
        if spilled {
            self.wait_for_spill_room().await;
        }
        if self.state.loaded_bytes > 0 {
            wake.notify_one();
        }
    }

    /// After a run that spilled: if the spill store's writer is behind, waits (on the blocking pool) until it has
    /// caught up, so spilled messages waiting in memory stay bounded.
    pub(super) async fn wait_for_spill_room(&self) {
        let Some(spill) = &self.memory.spill else {
            return;
        };
        if spill.pending_bytes() <= SPILL_BACKLOG_LIMIT {
            return;
        }
        let spill = spill.clone();
        let waited =
            tokio::task::spawn_blocking(move || spill.wait_for_room(SPILL_BACKLOG_LIMIT)).await;
        if let Err(error) = waited {
            tracing::error!(%error, "waiting for the spill store's writer failed");
        }
    }

    /// Releases this queue's shares of spilled messages (read back, or gone from the queue).
    pub(super) fn release_spilled(&self, msg_ids: Vec<u64>) {
        if let Some(spill) = &self.memory.spill {
            for chunk in msg_ids.chunks(RELEASE_CHUNK) {
                spill.release_all(chunk.iter().copied());
            }
        }
    }

    /// Where this queue's paged-out messages are read from.
    pub(super) fn page_sources(&self) -> PageSources {
        PageSources {
            store: self.storage.as_ref().map(|d| (d.store.clone(), d.queue_id)),
            spill: self.memory.spill.clone(),
        }
    }

    /// Takes the next ready message for delivery, reading it back first if it was paged out. None if nothing is
    /// ready, or if the read could not run (the message stays queued for the next dispatch).
    pub(super) async fn take_next(&mut self) -> Option<QueuedMessage> {
        loop {
            let entry = self.state.pop_ready()?;
            match entry.payload {
                Payload::Loaded(message) => {
                    return Some(QueuedMessage {
                        seq: entry.seq,
                        message,
                        redelivered: entry.redelivered,
                        expires_at: entry.expires_at,
                        returns: entry.returns,
                    })
                }
                Payload::OnDisk { .. } | Payload::Spilled { .. } => {
                    self.state.unpop_entry(entry);
                    if !self.load_front().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads the paged-out messages at the front of the ready list back into memory, in place, on the blocking
    /// pool. Meanwhile this actor waits, so nothing else touches the ready list and queue order is kept; other
    /// queues run on. A spilled message read back is in memory from then on, so the queue's share of it is
    /// released. A message that cannot be read is dropped from the queue and logged: one damaged record must not
    /// wedge it. False if the read could not run at all.
    async fn load_front(&mut self) -> bool {
        let front = self
            .state
            .paged_out_front(READ_AHEAD_BYTES, READ_AHEAD_MESSAGES);
        let results = match read_paged_out(self.page_sources(), front.clone()).await {
            Ok(results) => results,
            Err(error) => {
                let (queue, vhost) = self.name();
                tracing::error!(%error, "queue '{queue}' in vhost '{vhost}': reading paged-out messages failed");
                return false;
            }
        };
        let mut loaded = Vec::with_capacity(results.len());
        let mut spilled = Vec::new();
        for (paged_out, result) in front.into_iter().zip(results) {
            let Some(entry) = self.state.pop_ready() else {
                break;
            };
            if let PagedOut::Spilled(msg_id) = paged_out {
                spilled.push(msg_id);
            }
            match result {
                Ok(message) => loaded.push(ReadyEntry {
                    payload: Payload::Loaded(Arc::new(message)),
                    ..entry
                }),
                Err(error) => self.drop_unreadable(paged_out, &error.to_string()),
            }
        }
        self.release_spilled(spilled);
        for entry in loaded.into_iter().rev() {
            self.state.unpop_entry(entry);
        }
        true
    }

    /// Logs and forgets a paged-out message that cannot be read back; the caller took it off the ready list (and
    /// releases a spilled one's share).
    fn drop_unreadable(&self, paged_out: PagedOut, error: &str) {
        let (queue, vhost) = self.name();
        let (msg_id, from) = match paged_out {
            PagedOut::Stored(msg_id) => {
                self.forget_stored(vec![msg_id]);
                (msg_id, "the message store")
            }
            PagedOut::Spilled(msg_id) => (msg_id, "the spill store"),
        };
        tracing::error!(%error, "queue '{queue}' in vhost '{vhost}': cannot read message {msg_id} from {from}; dropping it");
    }
}

/// A queue that goes (deleted, expired, dropped) releases its shares of the spilled messages still in it: ready,
/// or kept for at-least-once dead-lettering.
impl Drop for QueueActor {
    fn drop(&mut self) {
        let mut spilled: Vec<u64> = self
            .state
            .ready
            .iter()
            .filter_map(|e| match e.payload {
                Payload::Spilled { msg_id, .. } => Some(msg_id),
                _ => None,
            })
            .collect();
        spilled.extend(
            self.state
                .dead_letters
                .drain()
                .iter()
                .filter_map(|l| l.spilled_id()),
        );
        self.release_spilled(spilled);
    }
}

/// Reads paged-out messages, in order, on the blocking pool. Each result stands alone: one unreadable record does
/// not fail the others. Err only if the blocking task itself failed (a panic, or the runtime shutting down): then
/// nothing was read.
pub(super) async fn read_paged_out(
    sources: PageSources,
    messages: Vec<PagedOut>,
) -> Result<Vec<Result<Message, StoreError>>, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        messages
            .into_iter()
            .map(|paged_out| match (paged_out, &sources) {
                (
                    PagedOut::Stored(msg_id),
                    PageSources {
                        store: Some((store, queue)),
                        ..
                    },
                ) => read_stored(store, *queue, msg_id),
                (PagedOut::Stored(msg_id), _) => Err(StoreError::NotFound { queue: 0, msg_id }),
                (
                    PagedOut::Spilled(msg_id),
                    PageSources {
                        spill: Some(spill), ..
                    },
                ) => spill.read(msg_id).map(|m| {
                    Message::restored(
                        m.msg_id,
                        &m.exchange,
                        &m.routing_key,
                        m.properties_raw,
                        m.body,
                    )
                }),
                (PagedOut::Spilled(msg_id), _) => Err(StoreError::NotSpilled { msg_id }),
            })
            .collect()
    })
    .await
}

/// Reads one message from the message store; blocking.
fn read_stored(store: &Store, queue_id: u64, msg_id: u64) -> Result<Message, StoreError> {
    let stored = match store.read(queue_id, msg_id) {
        // A message is readable once written; one paged out right after its publish may still be queued for the
        // writer, so wait for the writer once and retry.
        Err(StoreError::NotFound { .. }) => {
            store.flush()?;
            store.read(queue_id, msg_id)?
        }
        other => other?,
    };
    Ok(Message::restored(
        stored.msg_id,
        &stored.exchange,
        &stored.routing_key,
        stored.properties_raw,
        stored.body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_over_its_budget_sends_every_queue_s_new_messages_to_disk_until_it_is_back_under() {
        let node = Arc::new(NodeMemory::new(100));
        let mut a = QueueMemory::new(80, Some(node.clone()), None);
        let mut b = QueueMemory::new(80, Some(node.clone()), None);
        a.account(60);
        b.account(30);
        assert_eq!((a.budget, b.budget), (80, 80), "90 of 100 used");
        b.account(50);
        a.account(60);
        assert_eq!(a.budget, 60, "110 of 100: no more than it holds");
        b.account(50);
        assert_eq!(b.budget, 50);
        a.account(20);
        assert_eq!(a.budget, 80, "70 of 100: its own budget again");
        drop(b);
        assert_eq!(
            node.used.load(Ordering::Relaxed),
            20,
            "a queue that goes is taken off the count"
        );
        let mut alone = QueueMemory::new(80, None, None);
        alone.account(1_000);
        assert_eq!(alone.budget, 80);
    }
}
