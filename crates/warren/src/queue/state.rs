//! A queue's messages and consumers, as plain data: the ready list in queue order, the unacked deliveries, and the
//! consumers with their credit. A ready message past the queue's memory budget is kept only on disk: in the message
//! store if it is a persistent message of a durable queue, else in the node's spill store (the actor reads it back
//! when it delivers it). The actor drives it; the tests here drive it directly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use super::consumer::QueueConsumer;
use super::dedup::DedupSet;
use super::ready::ReadyList;
use super::sink::{same_sink, DeliverySink};
use super::SettleAction;
use crate::message::dedup::key_of;
use crate::message::{Expiry, Message, QueuedMessage};

/// A ready message's body: in memory, or only on disk.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    /// The message, shared with the other queues it was routed to.
    Loaded(Arc<Message>),
    /// Only the id and size are kept; the actor reads the body back from the message store when it delivers it.
    OnDisk { msg_id: u64, body_size: u32 },
    /// Only the id and size are kept; the body and properties are in the spill store, which this queue holds one
    /// share of until it reads the message back or drops it (`paging`).
    Spilled { msg_id: u64, body_size: u32 },
}

impl Payload {
    /// Where to read the message back from, if it is not in memory.
    pub(crate) fn paged_out(&self) -> Option<PagedOut> {
        match *self {
            Payload::Loaded(_) => None,
            Payload::OnDisk { msg_id, .. } => Some(PagedOut::Stored(msg_id)),
            Payload::Spilled { msg_id, .. } => Some(PagedOut::Spilled(msg_id)),
        }
    }
}

/// A paged-out message by where it is: its id in the message store or in the spill store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PagedOut {
    /// A persistent message of a durable queue, in the message store.
    Stored(u64),
    /// A message in the spill store.
    Spilled(u64),
}

/// Where an enqueued message is kept; the actor decides, by the queue's memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In memory.
    Memory,
    /// Only in the message store, which holds it already (a persistent message of a durable queue).
    Store,
    /// Only in the spill store, which the actor has just given it to.
    Spill,
}

/// One ready message in queue order.
#[derive(Clone, Debug)]
pub(crate) struct ReadyEntry {
    /// The queue's sequence number: orders the ready list and names the delivery in settlements.
    pub(crate) seq: u64,
    /// The body, in memory or on disk.
    pub(crate) payload: Payload,
    /// Delivered before and requeued: the next delivery carries redelivered=true.
    pub(crate) redelivered: bool,
    /// When it expires (milliseconds since the epoch), from the queue's message TTL or its expiration property.
    pub(crate) expires_at: Expiry,
    /// Its expiry is its own (the expiration property), so it may come before that of messages ahead of it: it is
    /// in the expiry index. Expiries from the queue's TTL grow with the queue order and are found at the head.
    pub(crate) expiry_indexed: bool,
    /// Its priority level (`x-max-priority`; 0 in a queue without priorities).
    pub(crate) level: u8,
    /// How often it came back (quorum queues count; see [`QueuedMessage::returns`]).
    pub(crate) returns: u32,
}

impl ReadyEntry {
    /// Body bytes this entry holds in memory.
    fn loaded_bytes(&self) -> u64 {
        match &self.payload {
            Payload::Loaded(m) => m.body_size(),
            Payload::OnDisk { .. } | Payload::Spilled { .. } => 0,
        }
    }

    /// Body bytes of the message, in memory or on disk (what `x-max-length-bytes` counts).
    pub(crate) fn body_bytes(&self) -> u64 {
        match &self.payload {
            Payload::Loaded(m) => m.body_size(),
            Payload::OnDisk { body_size, .. } | Payload::Spilled { body_size, .. } => {
                u64::from(*body_size)
            }
        }
    }
}

/// What a queue's arguments ask of its ready messages; the default asks nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReadyRules {
    /// `x-message-ttl`, in milliseconds.
    pub(crate) message_ttl: Option<u64>,
    /// `x-max-length`: ready messages at most.
    pub(crate) max_length: Option<u64>,
    /// `x-max-length-bytes`: body bytes of ready messages at most.
    pub(crate) max_length_bytes: Option<u64>,
    /// `x-overflow` `reject-publish` or `reject-publish-dlx`: a full queue refuses new messages instead of dropping
    /// its oldest.
    pub(crate) reject_when_full: bool,
    /// A quorum queue: a message that comes back is redelivered with its `x-delivery-count` header counted up.
    pub(crate) count_returns: bool,
    /// `x-delivery-limit`: a message that came back more often than this is not redelivered but dropped or
    /// dead-lettered.
    pub(crate) delivery_limit: Option<u64>,
}

/// What a settlement left for the actor to do.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Acked or discarded: they left the queue.
    pub(crate) gone: Vec<Arc<Message>>,
    /// Came back once more than `x-delivery-limit` allows: they left the queue, to be dead-lettered.
    pub(crate) over_limit: Vec<Arc<Message>>,
}

/// What became of a message offered to the queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It is in the ready list.
    Enqueued,
    /// The queue is full and refuses new messages (`x-overflow` reject-publish): it was not enqueued.
    Refused,
    /// A deduplicating queue holds a message with the same `x-deduplication-header`: it was not enqueued.
    Duplicate,
}

/// Why ready messages left the queue without being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Their TTL passed.
    Expired,
    /// The queue was over its length limit and dropped its oldest (`x-overflow` drop-head).
    Maxlen,
}

/// The body size a paged-out entry keeps: bodies are below `max_message_size`, a `u32` (as in the store's index).
fn paged_size(message: &Message) -> u32 {
    u32::try_from(message.body_size()).unwrap_or(u32::MAX)
}

/// The expiry of a ready entry under the queue TTL `new`, which was `old` (see [`QueueState::change_rules`]).
fn retimed(entry: &ReadyEntry, old: Option<u64>, new: Option<u64>, now: u64) -> Option<u64> {
    let deadline = entry.expires_at.get();
    if !entry.expiry_indexed {
        // Its expiry is the old TTL's, counted from its enqueue time.
        let enqueued = match (deadline, old) {
            (Some(deadline), Some(old)) => deadline.saturating_sub(old),
            _ => now,
        };
        return new.map(|ttl| enqueued.saturating_add(ttl));
    }
    let own = match &entry.payload {
        Payload::Loaded(message) => message.expiration(),
        // Not known without reading the message: never later than before, and no later than the new TTL from now.
        Payload::OnDisk { .. } | Payload::Spilled { .. } => {
            return match (deadline, new) {
                (Some(d), Some(ttl)) => Some(d.min(now.saturating_add(ttl))),
                (d, _) => d,
            }
        }
    };
    let (Some(deadline), Some(own)) = (deadline, own) else {
        return deadline;
    };
    let enqueued = deadline.saturating_sub(old.map_or(own, |old| old.min(own)));
    Some(enqueued.saturating_add(new.map_or(own, |new| new.min(own))))
}

/// One queue's messages and consumers as plain data, without I/O; owned by its actor, tested directly.
#[derive(Default)]
pub(crate) struct QueueState {
    /// By priority level, each ordered by `seq`; requeued messages are put back at their original place.
    pub(crate) ready: ReadyList,
    /// Body bytes of the ready messages held in memory.
    pub(crate) loaded_bytes: u64,
    /// Delivered and not yet settled, by queue sequence number, with the consumer id (None for basic.get): a
    /// requeue puts the message back at its place, an ack releases that consumer's credit.
    /// Keyed by the queue's own sequence numbers, never by client input: the fast Fx hash is safe here, and SipHash
    /// cost about 5 ns a message in the profile of scenario 2.
    pub(crate) unacked: FxHashMap<u64, (QueuedMessage, Option<u64>)>,
    /// Consumers in subscription order, served round robin.
    pub(crate) consumers: Vec<QueueConsumer>,
    /// Index of the consumer to try first on the next delivery (round robin).
    pub(crate) next_consumer: usize,
    /// The sequence number the next enqueued message gets.
    next_seq: u64,
    /// Moves on whenever a consumer joins or leaves, so the flow control knows when to recompute the connections
    /// it exempts.
    pub(crate) consumer_generation: u64,
    /// Body bytes of every ready message, in memory or on disk.
    pub(crate) ready_bytes: u64,
    /// The rules the queue's arguments set.
    pub(crate) rules: ReadyRules,
    /// (expiry, seq) of ready messages with an expiration property of their own, soonest first. A record whose
    /// message was delivered or dropped is stale and skipped when it comes up, and the index is rebuilt once
    /// mostly stale: expiry never scans the ready list per message.
    expiries: BinaryHeap<Reverse<(u64, u64, u8)>>,
    /// Set once a consumer has subscribed: an auto-delete queue is deleted when its last consumer goes, not before
    /// the first arrives.
    pub(crate) had_consumers: bool,
    /// Messages that died here, kept until their dead-letter targets hold them (at-least-once dead-lettering).
    /// Not ready, but counted against the length limits, as RabbitMQ's quorum queues count their `dlx` messages.
    pub(crate) dead_letters: PendingDeadLetters,
    /// `x-message-deduplication`: the deduplication keys of the messages in the queue; None when the queue does not
    /// deduplicate, which then costs a publish one branch.
    pub(crate) dedup: Option<DedupSet>,
}

impl QueueState {
    /// Offers a message published at `now` (milliseconds since the epoch), kept at `place`: in memory, or only its
    /// id (the message store or the spill store holds the rest). A queue full under `reject_when_full` refuses it;
    /// otherwise it is appended (see [`QueueState::enforce_limits`] for the drop-head side of the limits).
    pub(crate) fn enqueue(&mut self, message: Arc<Message>, place: Place, now: u64) -> Admission {
        if self.refuses(message.body_size()) {
            return Admission::Refused;
        }
        let ttl = match (self.rules.message_ttl, message.expiration()) {
            (Some(queue), Some(own)) => Some(queue.min(own)),
            (queue, own) => queue.or(own),
        };
        let expiry_indexed = message.expiration().is_some();
        let level = self.ready.level_for(message.priority());
        self.next_seq += 1;
        let payload = match place {
            Place::Memory => Payload::Loaded(message),
            Place::Store => Payload::OnDisk {
                msg_id: message.id,
                body_size: paged_size(&message),
            },
            Place::Spill => Payload::Spilled {
                msg_id: message.id,
                body_size: paged_size(&message),
            },
        };
        self.push_back(ReadyEntry {
            seq: self.next_seq,
            payload,
            redelivered: false,
            expires_at: ttl.map(|ttl| now.saturating_add(ttl)).into(),
            expiry_indexed,
            level,
            returns: 0,
        });
        Admission::Enqueued
    }

    /// Whether a deduplicating queue already holds a message with the deduplication key of these properties; if
    /// not, the key is recorded for the message the next enqueue appends. False at once for a queue that does not
    /// deduplicate and for a message without the header.
    pub(crate) fn is_duplicate(&mut self, properties_raw: &bytes::Bytes) -> bool {
        let Some(set) = self.dedup.as_mut() else {
            return false;
        };
        let Some(key) = key_of(properties_raw) else {
            return false;
        };
        let (ready, unacked) = (&self.ready, &self.unacked);
        let in_queue = |seq: u64| unacked.contains_key(&seq) || ready.contains_seq(seq);
        if !set.admit(key, self.next_seq + 1, in_queue) {
            return true;
        }
        set.sweep(ready.len() + unacked.len(), in_queue);
        false
    }

    /// Whether the queue refuses a new message of `body_size` bytes: full under `x-overflow` reject-publish.
    pub(crate) fn refuses(&self, body_size: u64) -> bool {
        self.rules.reject_when_full && self.would_overflow(body_size)
    }

    /// Whether one more message of `body_size` bytes would take the queue past a length limit (RabbitMQ's
    /// `is_over_limit`: ready messages and those kept for at-least-once dead-lettering).
    fn would_overflow(&self, body_size: u64) -> bool {
        let rules = &self.rules;
        let kept = &self.dead_letters;
        rules
            .max_length
            .is_some_and(|max| (self.ready.len() + kept.len()) as u64 + 1 > max)
            || rules
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes + kept.bytes() + body_size > max)
    }

    /// Drops the oldest ready messages while the queue is over a length limit (`x-overflow` drop-head, the
    /// default); returns them, oldest first, for dead-lettering.
    pub(crate) fn enforce_limits(&mut self) -> Vec<ReadyEntry> {
        let rules = self.rules;
        if rules.reject_when_full
            || (rules.max_length.is_none() && rules.max_length_bytes.is_none())
        {
            return Vec::new();
        }
        let mut dropped = Vec::new();
        while rules
            .max_length
            .is_some_and(|max| self.ready.len() as u64 > max)
            || rules
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes > max)
        {
            match self.pop_ready() {
                Some(entry) => dropped.push(entry),
                None => break,
            }
        }
        dropped
    }

    /// Removes every ready message whose expiry is before `now`, wherever it is in the queue; returns them in
    /// expiry order. Costs a heap pop and a binary search per message expired, never a scan.
    pub(crate) fn expire(&mut self, now: u64) -> Vec<ReadyEntry> {
        let mut expired = self
            .ready
            .pop_dead_heads(|e| e.expires_at.get().is_some_and(|deadline| deadline < now));
        for entry in &expired {
            self.count_out(entry);
        }
        while let Some(&Reverse((deadline, seq, level))) = self.expiries.peek() {
            if deadline >= now {
                break;
            }
            self.expiries.pop();
            // Delivered, dropped, or requeued with a record of its own: stale, and skipped.
            if let Some(entry) = self
                .ready
                .remove_if(level, seq, |e| e.expires_at.get() == Some(deadline))
            {
                self.count_out(&entry);
                expired.push(entry);
            }
        }
        expired
    }

    /// Applies new rules (a policy changed). The new limits apply from the next [`QueueState::enforce_limits`]. A
    /// changed message TTL re-times the ready messages: a message whose expiry came from the old TTL keeps its
    /// enqueue time and takes the new TTL from it; one that had none (the queue had no TTL) counts the new TTL from
    /// `now`; one with an expiration property of its own keeps the shorter of that and the new TTL. Costs one pass
    /// over the ready list, once per change.
    pub(crate) fn change_rules(&mut self, rules: ReadyRules, now: u64) {
        let old = std::mem::replace(&mut self.rules, rules).message_ttl;
        let new = rules.message_ttl;
        if old == new {
            return;
        }
        for entry in self.ready.iter_mut() {
            entry.expires_at = retimed(entry, old, new, now).into();
        }
        self.rebuild_expiry_index();
    }

    /// Rebuilds the expiry index from the ready list: the indexed entries' expiries only.
    fn rebuild_expiry_index(&mut self) {
        self.expiries = self
            .ready
            .iter()
            .filter(|e| e.expiry_indexed)
            .filter_map(|e| Some(Reverse((e.expires_at.get()?, e.seq, e.level))))
            .collect();
    }

    /// When the next message expires (its expiry has to be passed for it to go), if any does.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        let head = self.ready.heads().filter_map(|e| e.expires_at.get()).min();
        let indexed = self
            .expiries
            .peek()
            .map(|Reverse((deadline, _, _))| *deadline);
        match (head, indexed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records an indexed entry's expiry, rebuilding the index from the ready list once it is mostly stale
    /// records of messages that left (amortised: the index has grown by at least the ready list's length since).
    fn index_expiry(&mut self, deadline: u64, seq: u64, level: u8) {
        self.expiries.push(Reverse((deadline, seq, level)));
        if self.expiries.len() > 2 * self.ready.len() + 1024 {
            self.rebuild_expiry_index();
        }
    }

    /// Appends an entry at the end of the ready list, counting its bytes and recording its expiry.
    fn push_back(&mut self, entry: ReadyEntry) {
        self.count_in(&entry);
        self.ready.push_back(entry);
    }

    /// Pages out ready messages held in memory, the last to be delivered first, until `max_bytes` of bodies left
    /// memory or none is left there; `place` stores each and says where it went (Memory: it could not leave).
    pub(crate) fn page_out_newest(
        &mut self,
        max_bytes: u64,
        mut place: impl FnMut(&Message) -> Place,
    ) -> u64 {
        let mut paged = 0;
        for entry in self.ready.iter_newest_first_mut() {
            if paged >= max_bytes || self.loaded_bytes == 0 {
                break;
            }
            let Payload::Loaded(message) = &entry.payload else {
                continue;
            };
            let (msg_id, body_size) = (message.id, paged_size(message));
            entry.payload = match place(message) {
                Place::Memory => continue,
                Place::Store => Payload::OnDisk { msg_id, body_size },
                Place::Spill => Payload::Spilled { msg_id, body_size },
            };
            self.loaded_bytes -= u64::from(body_size);
            paged += u64::from(body_size);
        }
        paged
    }

    /// Counts an entry entering the ready list; records its expiry unless `unpopped` (its record is still
    /// there: it left the list only for a moment).
    fn count_in(&mut self, entry: &ReadyEntry) {
        self.loaded_bytes += entry.loaded_bytes();
        self.ready_bytes += entry.body_bytes();
        if let (true, Some(deadline)) = (entry.expiry_indexed, entry.expires_at.get()) {
            self.index_expiry(deadline, entry.seq, entry.level);
        }
    }

    /// Counts an entry leaving the ready list.
    fn count_out(&mut self, entry: &ReadyEntry) {
        self.loaded_bytes -= entry.loaded_bytes();
        self.ready_bytes -= entry.body_bytes();
    }

    /// Counts an entry put back at the front right after it was taken; its expiry record was never removed.
    fn count_back(&mut self, entry: &ReadyEntry) {
        self.loaded_bytes += entry.loaded_bytes();
        self.ready_bytes += entry.body_bytes();
    }

    /// Takes the first ready message.
    pub(crate) fn pop_ready(&mut self) -> Option<ReadyEntry> {
        let entry = self.ready.pop_front()?;
        self.count_out(&entry);
        Some(entry)
    }

    /// Puts a message back at the place its `seq` gives it, marked redelivered. One whose expiry has passed is
    /// expired by the next [`QueueState::expire`].
    pub(crate) fn requeue(&mut self, msg: QueuedMessage) {
        let entry = ReadyEntry {
            seq: msg.seq,
            expiry_indexed: msg.message.expiration().is_some(),
            level: self.ready.level_for(msg.message.priority()),
            payload: Payload::Loaded(msg.message),
            redelivered: true,
            expires_at: msg.expires_at,
            returns: msg.returns,
        };
        self.count_in(&entry);
        self.ready.insert_by_seq(entry);
    }

    /// Puts back a message taken for a delivery that did not happen, keeping its redelivered flag.
    pub(crate) fn unpop(&mut self, msg: QueuedMessage) {
        let entry = ReadyEntry {
            seq: msg.seq,
            expiry_indexed: msg.message.expiration().is_some(),
            level: self.ready.level_for(msg.message.priority()),
            payload: Payload::Loaded(msg.message),
            redelivered: msg.redelivered,
            expires_at: msg.expires_at,
            returns: msg.returns,
        };
        self.count_back(&entry);
        self.ready.push_front(entry);
    }

    /// The paged-out messages at the front of the ready list, in queue order: as many as fit in `max_bytes` of
    /// body (at least one, if the first is paged out) and `max_count`.
    pub(crate) fn paged_out_front(&self, max_bytes: u64, max_count: usize) -> Vec<PagedOut> {
        let mut front = Vec::new();
        let mut bytes = 0;
        for entry in self.ready.iter().take(max_count) {
            let Some(paged_out) = entry.payload.paged_out() else {
                break;
            };
            let body_size = entry.body_bytes();
            if !front.is_empty() && bytes + body_size > max_bytes {
                break;
            }
            bytes += body_size;
            front.push(paged_out);
        }
        front
    }

    /// Puts back an entry taken but not delivered.
    pub(crate) fn unpop_entry(&mut self, entry: ReadyEntry) {
        self.count_back(&entry);
        self.ready.push_front(entry);
    }

    /// Records a delivery that awaits its ack; `consumer` is None for basic.get.
    pub(crate) fn record_unacked(&mut self, msg: QueuedMessage, consumer: Option<u64>) {
        self.unacked.insert(msg.seq, (msg, consumer));
    }

    /// Applies an ack, nack or reject to deliveries of this queue; returns the messages that left the queue.
    pub(crate) fn settle(
        &mut self,
        deliveries: &[(u64, Option<u64>)],
        action: SettleAction,
    ) -> Settled {
        let mut settled = Settled::default();
        for &(seq, _) in deliveries {
            let Some((msg, consumer)) = self.unacked.remove(&seq) else {
                continue;
            };
            if let Some(id) = consumer {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.id == id) {
                    c.in_flight = c.in_flight.saturating_sub(1);
                }
            }
            match action {
                SettleAction::Ack | SettleAction::Discard => settled.gone.push(msg.message),
                SettleAction::Requeue if self.rules.count_returns => {
                    let returns = msg.returns.saturating_add(1);
                    if self
                        .rules
                        .delivery_limit
                        .is_some_and(|limit| u64::from(returns) > limit)
                    {
                        // Dead-lettered as it was published: the count is the queue's, not the message's.
                        settled.over_limit.push(msg.message);
                    } else {
                        self.requeue(QueuedMessage { returns, ..msg });
                    }
                }
                SettleAction::Requeue => self.requeue(msg),
            }
        }
        settled
    }

    /// Adds a consumer: `by_priority`, after the consumers of its priority or higher (the list stays in priority
    /// order, registration order within one); otherwise at the end. The queue counts as having had consumers from
    /// here on.
    pub(crate) fn add_consumer(&mut self, consumer: QueueConsumer, by_priority: bool) {
        self.had_consumers = true;
        self.consumer_generation += 1;
        let at = match by_priority {
            true => self
                .consumers
                .partition_point(|c| c.priority >= consumer.priority),
            false => self.consumers.len(),
        };
        self.consumers.insert(at, consumer);
    }

    /// Removes the consumer `tag` of `sink`; returns it, or None if it is not here.
    pub(crate) fn remove_consumer(
        &mut self,
        sink: &Arc<dyn DeliverySink>,
        tag: &str,
    ) -> Option<QueueConsumer> {
        let at = self
            .consumers
            .iter()
            .position(|c| same_sink(&c.sink, sink) && &*c.tag == tag)?;
        self.consumer_generation += 1;
        Some(self.consumers.remove(at))
    }

    /// Removes every consumer of a channel; returns how many went.
    pub(crate) fn remove_channel(&mut self, sink: &Arc<dyn DeliverySink>) -> usize {
        let before = self.consumers.len();
        self.consumers.retain(|c| !same_sink(&c.sink, sink));
        let removed = before - self.consumers.len();
        if removed > 0 {
            self.consumer_generation += 1;
        }
        removed
    }

    /// Whether an exclusive consumer holds the queue (another consume is refused with 403).
    pub(crate) fn has_exclusive_consumer(&self) -> bool {
        self.consumers.iter().any(|c| c.exclusive)
    }

    /// Drops every ready message (unacked ones stay, as in RabbitMQ's purge); returns them.
    pub(crate) fn purge(&mut self) -> Vec<ReadyEntry> {
        self.loaded_bytes = 0;
        self.ready_bytes = 0;
        self.expiries.clear();
        self.ready.drain()
    }

    /// What the management API shows of this queue.
    pub(crate) fn inspection(&self) -> super::QueueInspection {
        let (ready, unacked) = (&self.ready, &self.unacked);
        let dedup_keys = self.dedup.as_ref().map(|set| {
            set.live(|seq| unacked.contains_key(&seq) || ready.contains_seq(seq)) as u64
        });
        super::QueueInspection {
            dedup_keys,
            ready: self.ready.len() as u64,
            unacked: self.unacked.len() as u64,
            ready_bytes: self.ready_bytes,
            consumers: self
                .consumers
                .iter()
                .map(|c| super::ConsumerInspection {
                    tag: c.tag.clone(),
                    connection_id: c.sink.connection_id(),
                    ack_required: !c.no_ack,
                    exclusive: c.exclusive,
                    prefetch: c.prefetch,
                    priority: c.priority,
                })
                .collect(),
            replicas: None,
            home: None,
        }
    }

    /// Ready messages (unacked ones are not counted, as in queue.declare-ok).
    pub(crate) fn message_count(&self) -> u32 {
        self.ready.len() as u32
    }
}

mod pending_dead_letters;
mod recovery;

pub(crate) use pending_dead_letters::{PendingDeadLetters, PendingLetter, RETRY_MAX_MS};

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn per_message_entries_stay_small() {
        // Every ready message has a ReadyEntry and every unacknowledged one a QueuedMessage: the queue's TTL,
        // priority and delivery-count features fit in them without growing them past what plain queues used.
        assert!(std::mem::size_of::<ReadyEntry>() <= 40);
        assert!(std::mem::size_of::<QueuedMessage>() <= 32);
    }

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            "".into(),
            "q".into(),
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(body.as_bytes()),
        ))
    }

    fn bodies(state: &QueueState) -> Vec<&[u8]> {
        state
            .ready
            .iter()
            .map(|m| match &m.payload {
                Payload::Loaded(m) => &m.body[..],
                Payload::OnDisk { .. } | Payload::Spilled { .. } => &b"<disk>"[..],
            })
            .collect()
    }

    fn take(state: &mut QueueState) -> QueuedMessage {
        let entry = state.pop_ready().unwrap();
        let Payload::Loaded(message) = entry.payload else {
            panic!("expected a loaded message");
        };
        QueuedMessage {
            seq: entry.seq,
            message,
            redelivered: entry.redelivered,
            expires_at: entry.expires_at,
            returns: entry.returns,
        }
    }

    #[test]
    fn requeued_messages_return_to_their_original_position_marked_redelivered() {
        let mut state = QueueState::default();
        for b in ["a", "b", "c", "d"] {
            state.enqueue(msg(b), Place::Memory, 0);
        }
        let a = take(&mut state);
        let b = take(&mut state);
        let c = take(&mut state);
        state.record_unacked(a.clone(), None);
        state.record_unacked(b.clone(), None);
        state.record_unacked(c.clone(), None);
        state.settle(&[(b.seq, None)], SettleAction::Requeue);
        assert_eq!(bodies(&state), vec![b"b", b"d"]);
        state.settle(&[(c.seq, None), (a.seq, None)], SettleAction::Requeue);
        assert_eq!(bodies(&state), vec![b"a", b"b", b"c", b"d"]);
        assert!(state.ready.iter().take(3).all(|m| m.redelivered));
        assert!(!state.ready.iter().nth(3).unwrap().redelivered);
    }

    #[test]
    fn ack_and_discard_drop_and_unknown_seqs_are_ignored() {
        let mut state = QueueState::default();
        state.enqueue(msg("a"), Place::Memory, 0);
        let a = take(&mut state);
        state.record_unacked(a.clone(), None);
        let settled = state.settle(&[(a.seq, None), (999, None)], SettleAction::Ack);
        assert_eq!(settled.gone.len(), 1);
        assert!(state.unacked.is_empty());
        assert!(state.ready.is_empty());
    }

    #[test]
    fn purge_counts_ready_messages_only() {
        let mut state = QueueState::default();
        state.enqueue(msg("a"), Place::Memory, 0);
        state.enqueue(msg("b"), Place::Memory, 0);
        let a = take(&mut state);
        state.record_unacked(a, None);
        assert_eq!(state.purge().len(), 1);
        assert_eq!(state.unacked.len(), 1);
        assert_eq!(state.loaded_bytes, 0);
    }

    #[test]
    fn paged_out_messages_keep_their_place_and_cost_no_body_memory() {
        let mut state = QueueState::default();
        state.enqueue(msg("aa"), Place::Memory, 0);
        state.enqueue(msg("bbb"), Place::Store, 0);
        assert_eq!(state.loaded_bytes, 2);
        assert_eq!(bodies(&state), vec![&b"aa"[..], &b"<disk>"[..]]);
        let a = take(&mut state);
        assert_eq!(state.loaded_bytes, 0);
        state.record_unacked(a.clone(), None);
        state.settle(&[(a.seq, None)], SettleAction::Requeue);
        assert_eq!(state.loaded_bytes, 2);
        let recovered = warren_store::IndexEntry {
            msg_id: 77,
            body_size: 10,
            meta: None,
        };
        state.enqueue_recovered(&recovered, 0);
        assert!(state.ready.iter().last().unwrap().redelivered);
    }

    #[test]
    fn spilled_and_stored_messages_page_out_together_in_queue_order() {
        let mut state = QueueState::default();
        let (a, b, c) = (msg("aa"), msg("bbb"), msg("cccc"));
        state.enqueue(a.clone(), Place::Spill, 0);
        state.enqueue(b.clone(), Place::Store, 0);
        state.enqueue(c.clone(), Place::Spill, 0);
        state.enqueue(msg("d"), Place::Memory, 0);
        assert_eq!((state.loaded_bytes, state.ready_bytes), (1, 10));
        let all = vec![
            PagedOut::Spilled(a.id),
            PagedOut::Stored(b.id),
            PagedOut::Spilled(c.id),
        ];
        assert_eq!(state.paged_out_front(u64::MAX, 64), all);
        assert_eq!(state.paged_out_front(5, 64), all[..2]);
        assert_eq!(state.paged_out_front(u64::MAX, 1), all[..1]);
        assert_eq!(state.paged_out_front(0, 64), all[..1], "at least one");
        assert_eq!(
            bodies(&state),
            vec![&b"<disk>"[..], b"<disk>", b"<disk>", b"d"]
        );
    }

    #[test]
    fn memory_pressure_pages_out_the_newest_bodies_first_within_a_round() {
        let mut state = QueueState::default();
        for body in ["aa", "bbb", "cccc", "ddddd"] {
            state.enqueue(msg(body), Place::Memory, 0);
        }
        assert_eq!(state.loaded_bytes, 14);
        // A round pages out at least up to its byte allowance, newest first; a message that cannot leave stays.
        let paged = state.page_out_newest(6, |m| match m.body.len() {
            4 => Place::Memory,
            _ => Place::Store,
        });
        assert_eq!((paged, state.loaded_bytes), (8, 6));
        assert_eq!(
            bodies(&state),
            vec![&b"aa"[..], b"<disk>", b"cccc", b"<disk>"]
        );
        let paged = state.page_out_newest(u64::MAX, |_| Place::Spill);
        assert_eq!((paged, state.loaded_bytes), (6, 0));
        assert_eq!(
            state.ready_bytes, 14,
            "paging out does not change what the queue holds"
        );
        assert_eq!(state.message_count(), 4);
    }

    fn expiring(body: &'static str, ms: u64) -> Arc<Message> {
        let mut m = Message::new(
            "".into(),
            "q".into(),
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(body.as_bytes()),
        );
        m.set_expiration(Some(ms));
        Arc::new(m)
    }

    fn with_rules(rules: ReadyRules) -> QueueState {
        QueueState {
            rules,
            ..QueueState::default()
        }
    }

    fn expired_bodies(entries: &[ReadyEntry]) -> Vec<&[u8]> {
        entries
            .iter()
            .map(|e| match &e.payload {
                Payload::Loaded(m) => &m.body[..],
                Payload::OnDisk { .. } | Payload::Spilled { .. } => &b"<disk>"[..],
            })
            .collect()
    }

    #[test]
    fn queue_ttl_expires_from_the_head_once_passed_and_never_earlier() {
        let mut state = with_rules(ReadyRules {
            message_ttl: Some(100),
            ..ReadyRules::default()
        });
        state.enqueue(msg("a"), Place::Memory, 1_000);
        state.enqueue(msg("b"), Place::Memory, 1_050);
        assert_eq!(state.next_expiry(), Some(1_100));
        assert!(
            state.expire(1_100).is_empty(),
            "alive at its expiry instant"
        );
        assert_eq!(expired_bodies(&state.expire(1_101)), vec![b"a"]);
        assert_eq!(bodies(&state), vec![b"b"]);
        assert_eq!(expired_bodies(&state.expire(5_000)), vec![b"b"]);
        assert_eq!(state.ready_bytes, 0);
        assert_eq!(state.next_expiry(), None);
    }

    #[test]
    fn a_message_expires_on_time_behind_messages_that_do_not() {
        let mut state = QueueState::default();
        state.enqueue(msg("stays"), Place::Memory, 0);
        state.enqueue(expiring("short", 10), Place::Memory, 0);
        state.enqueue(msg("stays too"), Place::Memory, 0);
        state.enqueue(expiring("longer", 50), Place::Memory, 0);
        assert_eq!(state.next_expiry(), Some(10));
        assert_eq!(expired_bodies(&state.expire(11)), vec![b"short"]);
        assert_eq!(bodies(&state), vec![&b"stays"[..], b"stays too", b"longer"]);
        assert_eq!(expired_bodies(&state.expire(51)), vec![b"longer"]);
        assert_eq!(state.message_count(), 2);
    }

    #[test]
    fn the_shorter_of_queue_ttl_and_expiration_applies() {
        let mut state = with_rules(ReadyRules {
            message_ttl: Some(100),
            ..ReadyRules::default()
        });
        state.enqueue(expiring("own shorter", 10), Place::Memory, 0);
        state.enqueue(expiring("queue shorter", 500), Place::Memory, 0);
        let expiries: Vec<_> = state.ready.iter().map(|e| e.expires_at.get()).collect();
        assert_eq!(expiries, vec![Some(10), Some(100)]);
    }

    #[test]
    fn ttl_zero_survives_only_the_instant_it_arrived() {
        let mut state = with_rules(ReadyRules {
            message_ttl: Some(0),
            ..ReadyRules::default()
        });
        state.enqueue(msg("now or never"), Place::Memory, 7);
        assert!(
            state.expire(7).is_empty(),
            "a waiting consumer may take it now"
        );
        assert_eq!(state.expire(8).len(), 1);
    }

    #[test]
    fn a_requeued_message_keeps_its_expiry_and_a_delivered_one_is_not_expired() {
        let mut state = QueueState::default();
        state.enqueue(expiring("a", 10), Place::Memory, 0);
        let a = take(&mut state);
        state.record_unacked(a.clone(), None);
        assert!(
            state.expire(20).is_empty(),
            "unacked messages do not expire"
        );
        state.settle(&[(a.seq, None)], SettleAction::Requeue);
        assert_eq!(expired_bodies(&state.expire(20)), vec![b"a"]);
    }

    #[test]
    fn the_expiry_index_is_rebuilt_once_mostly_stale() {
        let mut state = QueueState::default();
        for _ in 0..5_000 {
            state.enqueue(expiring("x", 1_000), Place::Memory, 0);
            let m = take(&mut state);
            state.record_unacked(m.clone(), None);
            state.settle(&[(m.seq, None)], SettleAction::Ack);
        }
        assert!(
            state.expiries.len() <= 1024 + 1,
            "{} records",
            state.expiries.len()
        );
    }

    #[test]
    fn a_changed_ttl_retimes_queued_messages_from_their_enqueue_time() {
        let ttl = |ms| ReadyRules {
            message_ttl: Some(ms),
            ..ReadyRules::default()
        };
        let mut state = with_rules(ttl(10_000));
        state.enqueue(msg("a"), Place::Memory, 1_000);
        state.enqueue(expiring("own", 500), Place::Memory, 2_000);
        state.enqueue(msg("b"), Place::Memory, 3_000);
        // Shortened to 1 s at 3.5 s: "a" (enqueued at 1 s) is past it, "own" keeps its own 0.5 s, "b" has until 4 s.
        state.change_rules(ttl(1_000), 3_500);
        assert_eq!(
            expired_bodies(&state.expire(3_500)),
            vec![b"a".as_slice(), b"own"]
        );
        assert_eq!(state.next_expiry(), Some(4_000));
        // Cleared: nothing expires any more.
        state.change_rules(ReadyRules::default(), 3_600);
        assert_eq!(state.next_expiry(), None);
        // Set again on a queue whose messages had none: counted from the change.
        state.change_rules(ttl(100), 5_000);
        assert!(state.expire(5_100).is_empty());
        assert_eq!(expired_bodies(&state.expire(5_101)), vec![b"b".as_slice()]);
    }

    #[test]
    fn a_lowered_length_limit_drops_the_oldest_at_once() {
        let mut state = QueueState::default();
        for body in ["1", "2", "3", "4"] {
            state.enqueue(msg(body), Place::Memory, 0);
        }
        state.change_rules(
            ReadyRules {
                max_length: Some(1),
                ..ReadyRules::default()
            },
            0,
        );
        assert_eq!(
            expired_bodies(&state.enforce_limits()),
            vec![b"1".as_slice(), b"2", b"3"]
        );
        assert_eq!(bodies(&state), vec![b"4".as_slice()]);
    }

    #[test]
    fn drop_head_keeps_the_newest_within_both_limits() {
        let mut state = with_rules(ReadyRules {
            max_length: Some(2),
            ..ReadyRules::default()
        });
        for b in ["1", "2", "3", "4"] {
            assert_eq!(state.enqueue(msg(b), Place::Memory, 0), Admission::Enqueued);
        }
        assert_eq!(expired_bodies(&state.enforce_limits()), vec![b"1", b"2"]);
        assert_eq!(bodies(&state), vec![b"3", b"4"]);

        let mut state = with_rules(ReadyRules {
            max_length_bytes: Some(5),
            ..ReadyRules::default()
        });
        for b in ["aa", "bb", "cc"] {
            state.enqueue(msg(b), Place::Memory, 0);
        }
        assert_eq!(expired_bodies(&state.enforce_limits()), vec![b"aa"]);
        assert_eq!(state.ready_bytes, 4);
    }

    #[test]
    fn reject_publish_refuses_what_would_overflow_and_counts_only_ready_messages() {
        let mut state = with_rules(ReadyRules {
            max_length: Some(2),
            reject_when_full: true,
            ..ReadyRules::default()
        });
        assert_eq!(
            state.enqueue(msg("1"), Place::Memory, 0),
            Admission::Enqueued
        );
        assert_eq!(
            state.enqueue(msg("2"), Place::Memory, 0),
            Admission::Enqueued
        );
        assert_eq!(
            state.enqueue(msg("3"), Place::Memory, 0),
            Admission::Refused
        );
        assert!(state.enforce_limits().is_empty());
        let first = take(&mut state);
        state.record_unacked(first, None);
        assert_eq!(
            state.enqueue(msg("4"), Place::Memory, 0),
            Admission::Enqueued
        );

        let mut state = with_rules(ReadyRules {
            max_length_bytes: Some(3),
            reject_when_full: true,
            ..ReadyRules::default()
        });
        assert_eq!(
            state.enqueue(msg("aa"), Place::Memory, 0),
            Admission::Enqueued
        );
        assert_eq!(
            state.enqueue(msg("bb"), Place::Memory, 0),
            Admission::Refused
        );
        assert_eq!(
            state.enqueue(msg("c"), Place::Memory, 0),
            Admission::Enqueued
        );
    }

    #[test]
    fn a_quorum_queue_counts_returns_and_stops_redelivering_past_the_limit() {
        let mut state = with_rules(ReadyRules {
            count_returns: true,
            delivery_limit: Some(1),
            ..ReadyRules::default()
        });
        state.enqueue(msg("poison"), Place::Memory, 0);
        let first = take(&mut state);
        state.record_unacked(first.clone(), None);
        let settled = state.settle(&[(first.seq, None)], SettleAction::Requeue);
        assert!(settled.over_limit.is_empty());
        let second = take(&mut state);
        assert!(second.redelivered);
        assert_eq!(
            second.message.id, first.message.id,
            "the stored copy is still the one acks forget"
        );
        assert_eq!(second.returns, 1);
        let delivered = second.counted_properties().expect("a counted copy");
        let count = warren_protocol::content::decode_properties(&delivered)
            .ok()
            .and_then(|p| p.headers().clone())
            .and_then(|h| h.inner().get("x-delivery-count").cloned());
        assert_eq!(count, Some(warren_protocol::AMQPValue::LongLongInt(1)));
        state.record_unacked(second.clone(), None);
        let settled = state.settle(&[(second.seq, None)], SettleAction::Requeue);
        assert_eq!(settled.over_limit.len(), 1);
        assert!(
            settled.over_limit[0].headers().is_none(),
            "dead-lettered as published, without the queue's count"
        );
        assert!(state.ready.is_empty());
    }

    #[test]
    fn a_quorum_queue_counts_its_own_returns_whatever_header_the_publisher_set() {
        let mut state = with_rules(ReadyRules {
            count_returns: true,
            delivery_limit: Some(2),
            ..ReadyRules::default()
        });
        let mut headers = warren_protocol::FieldTable::default();
        headers.insert(
            "x-delivery-count".into(),
            warren_protocol::AMQPValue::LongLongInt(5),
        );
        let properties = warren_protocol::content::encode_properties(
            &warren_protocol::basic::AMQPProperties::default().with_headers(headers),
        )
        .expect("encodes");
        state.enqueue(
            Arc::new(Message::new(
                "".into(),
                "q".into(),
                properties,
                Bytes::from_static(b"m"),
            )),
            Place::Memory,
            0,
        );
        for expected in 1..=2 {
            let m = take(&mut state);
            state.record_unacked(m.clone(), None);
            assert!(state
                .settle(&[(m.seq, None)], SettleAction::Requeue)
                .over_limit
                .is_empty());
            assert_eq!(state.ready.iter().next().map(|e| e.returns), Some(expected));
        }
        let m = take(&mut state);
        state.record_unacked(m.clone(), None);
        assert_eq!(
            state
                .settle(&[(m.seq, None)], SettleAction::Requeue)
                .over_limit
                .len(),
            1
        );
    }

    fn prioritised(body: &'static str, priority: u8) -> Arc<Message> {
        // Property flags with only priority (bit 11), then the octet.
        let flags = (1u16 << 11).to_be_bytes();
        let properties = Bytes::from(vec![flags[0], flags[1], priority]);
        Arc::new(Message::new(
            "".into(),
            "q".into(),
            properties,
            Bytes::from_static(body.as_bytes()),
        ))
    }

    #[test]
    fn priorities_deliver_highest_first_fifo_within_and_cap_at_the_maximum() {
        let mut state = QueueState {
            ready: ReadyList::with_max_priority(5),
            ..QueueState::default()
        };
        state.enqueue(prioritised("low", 1), Place::Memory, 0);
        state.enqueue(msg("none"), Place::Memory, 0);
        state.enqueue(prioritised("high-1", 5), Place::Memory, 0);
        state.enqueue(prioritised("over-max", 200), Place::Memory, 0);
        state.enqueue(prioritised("high-2", 5), Place::Memory, 0);
        assert_eq!(
            bodies(&state),
            vec![&b"high-1"[..], b"over-max", b"high-2", b"low", b"none"]
        );
        let first = take(&mut state);
        state.record_unacked(first.clone(), None);
        state.settle(&[(first.seq, None)], SettleAction::Requeue);
        assert_eq!(
            bodies(&state)[0],
            b"high-1",
            "a requeued message keeps its priority and place"
        );
        assert_eq!(state.message_count(), 5);
    }
}
