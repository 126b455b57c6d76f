//! The replicated state of a quorum queue, as every member of its group applies it: the messages not yet settled,
//! which are ready and which each consumer holds, and the consumers with their credit. Deterministic (no clock of
//! its own: time is what the log's entries carry; no randomness, no I/O), so every member that applies the same log ends in the same state and makes the same
//! decisions: which consumer a message goes to is decided here, in log order, as RabbitMQ's `rabbit_fifo` does.
//!
//! What applying an operation makes happen outside the state (a delivery, a get's answer, a consume-ok) comes back
//! as [`Effect`]s naming the consumer they are for; only the node that serves that consumer acts on them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ready::ReadyOrder;

/// A consumer (or a node's basic.get callers) across the cluster: the node that serves its client, that node's
/// run (each start of a node is a new run, so consumers of an earlier run are known dead), and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct ConsumerKey {
    /// The node's id.
    pub(crate) node: u64,
    /// The node's run.
    pub(crate) run: u64,
    /// The consumer's id on that node; [`GET_CONSUMER`] for the node's basic.get deliveries.
    pub(crate) id: u64,
}

/// The consumer id under which a node's basic.get deliveries are held (no consumer of its own has id 0).
pub(crate) const GET_CONSUMER: u64 = 0;

/// A message as the group replicates it: what a consumer is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplicatedMessage {
    /// The exchange it was published to.
    pub(crate) exchange: String,
    /// Its routing key.
    pub(crate) routing_key: String,
    /// Its properties exactly as published.
    #[serde(with = "crate::cluster::codec::serde_bytes")]
    pub(crate) properties: Bytes,
    /// Its body.
    #[serde(with = "crate::cluster::codec::serde_bytes")]
    pub(crate) body: Bytes,
    /// Its `expiration` property in milliseconds, when it has a valid one.
    pub(crate) expiration: Option<u64>,
    /// Its `priority` property (0 without one): above 4 it is of the high level ([`super::ready`]).
    pub(crate) priority: u8,
}

/// What a settlement does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Settlement {
    /// Done with: removed.
    Ack,
    /// Back to the queue, marked redelivered, its delivery count raised.
    Requeue,
    /// Dropped.
    Discard,
}

/// One operation of the queue's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// A published message.
    Enqueue(ReplicatedMessage),
    /// A consumer subscribes.
    Attach {
        /// Who.
        key: ConsumerKey,
        /// The most unacknowledged deliveries it may hold; 0 = no limit.
        prefetch: u32,
        /// Deliveries count as settled at once.
        no_ack: bool,
        /// basic.consume exclusive: refused while the queue has consumers, and no other may join while it is.
        exclusive: bool,
        /// Its `x-priority`: deliveries go to the consumers of the highest priority with credit first.
        priority: i64,
    },
    /// A consumer goes; what it holds goes back to the queue.
    Detach {
        /// Who.
        key: ConsumerKey,
    },
    /// Acks, requeues or discards what `key` holds.
    Settle {
        /// The holder.
        key: ConsumerKey,
        /// The messages, by sequence number; those `key` does not hold are ignored.
        seqs: Vec<u64>,
        /// What to do with them.
        action: Settlement,
    },
    /// basic.get on node `key.node`: the first ready message, held by `key` unless `no_ack`.
    Get {
        /// The node's get holder.
        key: ConsumerKey,
        /// The node's number for the request, echoed in the answer.
        request: u64,
        /// Settled at once.
        no_ack: bool,
    },
    /// Node `node` started its run `run`: consumers of its earlier runs are gone.
    NodeRun {
        /// The node.
        node: u64,
        /// Its new run.
        run: u64,
    },
    /// Node `node` in its run `run` is unreachable (the leader's view): its consumers are gone, what they hold is
    /// ready again. A consumer of that run may attach again once the node is back.
    NodeDown {
        /// The node.
        node: u64,
        /// The run that went down.
        run: u64,
    },
    /// The limits change (a policy changed): applied from this entry on.
    SetLimits(Limits),
    /// Drops the ready messages (queue.purge) for `key`'s request `request`.
    Purge {
        /// The requester.
        key: ConsumerKey,
        /// Its number for the request.
        request: u64,
    },
    /// Dead letters kept for at-least-once dead-lettering that every target now holds: forgotten.
    DeadLettersDone {
        /// The letters, by the sequence number they had here.
        seqs: Vec<u64>,
    },
    /// The queue was redeclared: a use, which restarts its `x-expires` time.
    Touch,
}

/// Why a message died, as its `x-death` entry names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Death {
    /// basic.reject or basic.nack without requeue.
    Rejected,
    /// Its TTL ran out at the head.
    Expired,
    /// `drop-head` made room.
    Maxlen,
    /// Returned more often than the delivery limit.
    DeliveryLimit,
}

/// How messages that die here are dead-lettered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DeadLettering {
    /// No dead-letter exchange: they are dropped.
    #[default]
    Off,
    /// Handed to the leader to publish once (a leader change in between loses them, as RabbitMQ's `at-most-once`).
    AtMostOnce,
    /// Kept in the queue's state until the dead-letter targets hold them (`at-least-once` with `reject-publish`).
    AtLeastOnce,
}

/// A message that died here, as dead-lettering needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeadMessage {
    /// The message.
    pub(crate) message: ReplicatedMessage,
    /// Why it died.
    pub(crate) reason: Death,
    /// When (milliseconds since the Unix epoch, in the log's time).
    pub(crate) died_at: u64,
}

/// Something applying an operation makes happen, for the node serving `key` to carry out.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// The consumer is registered: consume-ok, then its deliveries.
    Attached {
        /// Who.
        key: ConsumerKey,
    },
    /// The consumer was refused: the queue is in exclusive use (or it asked for exclusive use of a queue with
    /// consumers).
    AttachRefused {
        /// Who.
        key: ConsumerKey,
    },
    /// The consumer is gone: cancel-ok (or basic.cancel if it did not ask).
    Detached {
        /// Who.
        key: ConsumerKey,
    },
    /// Deliver message `seq` to consumer `key`.
    Deliver {
        /// To whom.
        key: ConsumerKey,
        /// The message as the consumer gets it.
        delivery: Delivery,
    },
    /// A basic.get's answer: the message, or None when the queue was empty.
    GetAnswer {
        /// The node's get holder.
        key: ConsumerKey,
        /// The request.
        request: u64,
        /// The message, if one was ready.
        delivery: Option<Delivery>,
        /// Ready messages left.
        remaining: u32,
    },
    /// A purge's answer.
    Purged {
        /// The requester.
        key: ConsumerKey,
        /// The request.
        request: u64,
        /// Ready messages dropped.
        count: u32,
    },
    /// Message `seq` died and is to be dead-lettered: published at once by the leader (`at-most-once`), or kept
    /// until [`Op::DeadLettersDone`] names it (`at-least-once`).
    DeadLettered {
        /// Its sequence number here.
        seq: u64,
        /// The message and its death.
        dead: DeadMessage,
        /// How.
        mode: DeadLettering,
    },
    /// Kept dead letters were forgotten: their targets hold them, or the queue no longer dead-letters at least
    /// once.
    DeadLettersForgotten {
        /// Their sequence numbers.
        seqs: Vec<u64>,
    },
}

/// A message handed to a consumer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Delivery {
    /// Its sequence number in the queue: what its settlement names.
    pub(crate) seq: u64,
    /// The message.
    pub(crate) message: ReplicatedMessage,
    /// Delivered before.
    pub(crate) redelivered: bool,
    /// How often it came back (the `x-delivery-count` it is delivered with when above 0).
    pub(crate) returns: u32,
}

/// A message the queue holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Held {
    message: ReplicatedMessage,
    redelivered: bool,
    returns: u32,
    /// The consumer it is checked out to; None while ready.
    holder: Option<ConsumerKey>,
    /// When it expires (milliseconds since the Unix epoch, in the log's time), if it does.
    expires_at: Option<u64>,
}

/// A consumer as the queue keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Consumer {
    prefetch: u32,
    no_ack: bool,
    exclusive: bool,
    priority: i64,
    held: BTreeSet<u64>,
}

impl Consumer {
    fn has_credit(&self) -> bool {
        self.no_ack || self.prefetch == 0 || (self.held.len() as u64) < u64::from(self.prefetch)
    }
}

/// What the queue limits: first from its declaration's arguments (the same on every node), then as the leader
/// writes them to the log when policies change ([`Op::SetLimits`]), so every member applies the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Limits {
    /// `x-max-length`: most ready messages.
    pub(crate) max_length: Option<u64>,
    /// `x-max-length-bytes`: most body bytes of ready messages.
    pub(crate) max_length_bytes: Option<u64>,
    /// `x-overflow: reject-publish`: a publish over the limits is refused (nacked); otherwise the oldest ready
    /// messages are dropped (`drop-head`).
    pub(crate) reject_publish: bool,
    /// `x-delivery-limit`: a message returned more often than this is dropped.
    pub(crate) delivery_limit: Option<u64>,
    /// `x-single-active-consumer`: only the first consumer receives; the next when it goes.
    pub(crate) single_active_consumer: bool,
    /// `x-message-ttl`: milliseconds a message may wait; it is dropped when it reaches the head later.
    pub(crate) message_ttl: Option<u64>,
    /// Whether and how messages that die are dead-lettered.
    pub(crate) dead_lettering: DeadLettering,
    /// `x-expires`: milliseconds the queue may stay unused (no consumers, no basic.get, no redeclare) before the
    /// leader deletes it.
    pub(crate) expires: Option<u64>,
}

/// The queue's replicated state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct QuorumState {
    limits: Limits,
    next_seq: u64,
    messages: BTreeMap<u64, Held>,
    ready: ReadyOrder,
    /// Body bytes of the ready messages.
    ready_bytes: u64,
    /// The latest time an applied entry carried (milliseconds since the Unix epoch): the queue's clock.
    now: u64,
    #[serde(with = "pairs")]
    consumers: BTreeMap<ConsumerKey, Consumer>,
    /// Dispatch order: the next delivery goes to the first consumer here with credit, which then moves last.
    rotation: VecDeque<ConsumerKey>,
    /// Each node's current run.
    runs: BTreeMap<u64, u64>,
    /// Messages held per (node, run), consumers' and basic.get callers' alike.
    #[serde(with = "pairs")]
    held_by: BTreeMap<(u64, u64), u64>,
    /// Messages that died, kept until their dead-letter targets hold them (`at-least-once`).
    dead: BTreeMap<u64, DeadMessage>,
    /// Body bytes of those.
    dead_bytes: u64,
    /// The log's time of the last use (an attach, the last detach, a get, a redeclare): `x-expires` counts from it.
    last_used: u64,
}

impl QuorumState {
    /// Ready messages.
    pub(crate) fn ready(&self) -> u64 {
        self.ready.len() as u64
    }

    /// Messages checked out and not yet settled.
    pub(crate) fn unacked(&self) -> u64 {
        (self.messages.len() - self.ready.len()) as u64
    }

    /// Consumers.
    pub(crate) fn consumers(&self) -> u64 {
        self.consumers.len() as u64
    }

    /// Body bytes of the ready messages.
    pub(crate) fn ready_bytes(&self) -> u64 {
        self.ready_bytes
    }

    /// Moves the queue's clock to `now` (the time of the entry about to be applied; never backwards, as the
    /// entries' times come from the clocks of different nodes) and drops the expired messages at the head.
    pub(crate) fn advance(&mut self, now: u64, effects: &mut Vec<Effect>) {
        self.now = self.now.max(now);
        if self.last_used == 0 {
            // The queue's first entry: its `x-expires` time starts here.
            self.last_used = self.now;
        }
        self.expire_head(effects);
    }

    /// When the queue, unused, is due to be deleted (`x-expires`): never while it has consumers.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        let expires = self.limits.expires?;
        self.consumers
            .is_empty()
            .then(|| self.last_used.saturating_add(expires))
    }

    /// The messages kept for at-least-once dead-lettering, by sequence number.
    pub(crate) fn dead_letters(&self) -> impl Iterator<Item = (u64, &DeadMessage)> {
        self.dead.iter().map(|(seq, dead)| (*seq, dead))
    }

    /// Message `seq`, taken out of the queue (no longer ready nor held), dies for `reason`: dead-lettered as the
    /// limits say, dropped otherwise.
    fn die(&mut self, seq: u64, reason: Death, effects: &mut Vec<Effect>) {
        let Some(held) = self.messages.remove(&seq) else {
            return;
        };
        let mode = self.limits.dead_lettering;
        if mode == DeadLettering::Off {
            return;
        }
        let dead = DeadMessage {
            message: held.message,
            reason,
            died_at: self.now,
        };
        if mode == DeadLettering::AtLeastOnce {
            self.dead_bytes += dead.message.body.len() as u64;
            self.dead.insert(seq, dead.clone());
        }
        effects.push(Effect::DeadLettered { seq, dead, mode });
    }

    /// When the message at the head expires, if it does: when a tick should be written.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        let seq = self.ready.oldest()?;
        self.messages.get(&seq)?.expires_at
    }

    /// Drops ready messages at the head whose time is past (as RabbitMQ, a message expires when it reaches the
    /// head; one with a shorter TTL behind a longer one waits).
    fn expire_head(&mut self, effects: &mut Vec<Effect>) {
        while let Some(seq) = self.ready.oldest() {
            let expired = self
                .messages
                .get(&seq)
                .and_then(|held| held.expires_at)
                .is_some_and(|at| at < self.now);
            if !expired {
                return;
            }
            self.unready(seq);
            self.die(seq, Death::Expired, effects);
        }
    }

    /// Applies `limits` from now on.
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits applied now.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Drops the oldest ready messages while the queue is over its limits (`drop-head`).
    fn drop_head(&mut self, effects: &mut Vec<Effect>) {
        while self.over_limits_with(0, 0) {
            let Some(oldest) = self.ready.oldest() else {
                break;
            };
            self.unready(oldest);
            self.die(oldest, Death::Maxlen, effects);
        }
    }

    /// Makes message `seq` ready: with the returned ones if it was `returned`.
    fn make_ready(&mut self, seq: u64, returned: bool) {
        if let Some(held) = self.messages.get(&seq) {
            if self.ready.insert(seq, returned, held.message.priority) {
                self.ready_bytes += held.message.body.len() as u64;
            }
        }
    }

    /// Takes the ready message to hand out next, if any.
    fn take_next(&mut self) -> Option<u64> {
        let seq = self.ready.next()?;
        self.ready.take(seq);
        let len = self
            .messages
            .get(&seq)
            .map_or(0, |h| h.message.body.len() as u64);
        self.ready_bytes = self.ready_bytes.saturating_sub(len);
        Some(seq)
    }

    /// Takes message `seq` out of the ready ones; whether it was ready.
    fn unready(&mut self, seq: u64) -> bool {
        let was = self.ready.remove(seq);
        if was {
            let len = self
                .messages
                .get(&seq)
                .map_or(0, |h| h.message.body.len() as u64);
            self.ready_bytes = self.ready_bytes.saturating_sub(len);
        }
        was
    }

    /// Whether `count` more ready messages of `len` body bytes would put the queue over its limits: the ready
    /// messages with those kept for at-least-once dead-lettering, as RabbitMQ's `rabbit_fifo` counts them.
    fn over_limits_with(&self, count: u64, len: u64) -> bool {
        let messages = self.ready() + self.dead.len() as u64 + count;
        let bytes = self.ready_bytes + self.dead_bytes + len;
        self.limits.max_length.is_some_and(|max| messages > max)
            || self.limits.max_length_bytes.is_some_and(|max| bytes > max)
    }

    /// Applies `op`, appending what it makes happen to `effects`; false when it was an enqueue the queue refused
    /// (full under `reject-publish`).
    pub(crate) fn apply(&mut self, op: Op, effects: &mut Vec<Effect>) -> bool {
        match op {
            Op::Enqueue(message) => {
                let len = message.body.len() as u64;
                if self.limits.reject_publish && self.over_limits_with(1, len) {
                    return false;
                }
                let ttl = match (self.limits.message_ttl, message.expiration) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let expires_at = ttl.map(|ttl| self.now.saturating_add(ttl));
                self.next_seq += 1;
                self.messages.insert(
                    self.next_seq,
                    Held {
                        message,
                        redelivered: false,
                        returns: 0,
                        holder: None,
                        expires_at,
                    },
                );
                self.make_ready(self.next_seq, false);
                // drop-head: the oldest ready messages make room.
                self.drop_head(effects);
            }
            Op::SetLimits(limits) => {
                self.limits = limits;
                // Lowered limits trim a drop-head queue at once; a reject-publish queue refuses publishes until
                // it is under them again.
                if !limits.reject_publish {
                    self.drop_head(effects);
                }
                // No longer at least once (RabbitMQ's switch away from it): the kept letters are dropped.
                if limits.dead_lettering != DeadLettering::AtLeastOnce && !self.dead.is_empty() {
                    let seqs = std::mem::take(&mut self.dead).into_keys().collect();
                    self.dead_bytes = 0;
                    effects.push(Effect::DeadLettersForgotten { seqs });
                }
            }
            Op::DeadLettersDone { seqs } => {
                let mut forgotten = Vec::with_capacity(seqs.len());
                for seq in seqs {
                    if let Some(dead) = self.dead.remove(&seq) {
                        self.dead_bytes = self
                            .dead_bytes
                            .saturating_sub(dead.message.body.len() as u64);
                        forgotten.push(seq);
                    }
                }
                if !forgotten.is_empty() {
                    effects.push(Effect::DeadLettersForgotten { seqs: forgotten });
                }
            }
            Op::Touch => self.last_used = self.now,
            Op::Attach {
                key,
                prefetch,
                no_ack,
                exclusive,
                priority,
            } => {
                if self.is_stale(key) || self.consumers.contains_key(&key) {
                    return true;
                }
                let in_exclusive_use = self.consumers.values().any(|c| c.exclusive);
                if in_exclusive_use || (exclusive && !self.consumers.is_empty()) {
                    effects.push(Effect::AttachRefused { key });
                    return true;
                }
                self.consumers.insert(
                    key,
                    Consumer {
                        prefetch,
                        no_ack,
                        exclusive,
                        priority,
                        held: BTreeSet::new(),
                    },
                );
                self.rotation.push_back(key);
                self.last_used = self.now;
                effects.push(Effect::Attached { key });
            }
            Op::Detach { key } => {
                if self.detach(key, effects) {
                    effects.push(Effect::Detached { key });
                }
            }
            Op::Settle { key, seqs, action } => {
                for seq in seqs {
                    self.settle(key, seq, action, effects);
                }
            }
            Op::Get {
                key,
                request,
                no_ack,
            } => {
                self.last_used = self.now;
                self.expire_head(effects);
                let delivery = match self.take_next() {
                    Some(seq) => self.check_out(seq, key, no_ack),
                    None => None,
                };
                effects.push(Effect::GetAnswer {
                    key,
                    request,
                    delivery,
                    remaining: self.ready.len().try_into().unwrap_or(u32::MAX),
                });
            }
            Op::NodeRun { node, run } => {
                self.runs.insert(node, run);
                self.release(effects, |key| key.node == node && key.run != run);
            }
            Op::NodeDown { node, run } => {
                self.release(effects, |key| key.node == node && key.run == run);
            }
            Op::Purge { key, request } => {
                let count = self.ready.len().try_into().unwrap_or(u32::MAX);
                self.ready_bytes = 0;
                for seq in self.ready.take_all() {
                    self.messages.remove(&seq);
                }
                effects.push(Effect::Purged {
                    key,
                    request,
                    count,
                });
            }
        }
        self.dispatch(effects);
        true
    }

    /// Detaches the consumers `gone` picks and requeues everything they (or that node's basic.get callers) hold.
    fn release(&mut self, effects: &mut Vec<Effect>, gone: impl Fn(&ConsumerKey) -> bool) {
        let consumers: Vec<ConsumerKey> =
            self.consumers.keys().filter(|k| gone(k)).copied().collect();
        for key in consumers {
            self.detach(key, effects);
            effects.push(Effect::Detached { key });
        }
        let held: Vec<(u64, ConsumerKey)> = self
            .messages
            .iter()
            .filter_map(|(seq, held)| held.holder.map(|key| (*seq, key)))
            .filter(|(_, key)| gone(key))
            .collect();
        for (seq, key) in held {
            self.settle(key, seq, Settlement::Requeue, effects);
        }
    }

    /// The (node, run) of every consumer and holder of a message, but those of `node`: whom the leader watches.
    pub(crate) fn remote_holders(&self, node: u64) -> BTreeSet<(u64, u64)> {
        let consumers = self.consumers.keys().map(|k| (k.node, k.run));
        let holders = self.held_by.keys().copied();
        consumers
            .chain(holders)
            .filter(|(n, _)| *n != node)
            .collect()
    }

    /// Whether `key` belongs to a run of its node that has been succeeded.
    fn is_stale(&self, key: ConsumerKey) -> bool {
        matches!(self.runs.get(&key.node), Some(run) if *run != key.run)
    }

    /// Removes consumer `key`, returning what it holds; false if there was no such consumer.
    fn detach(&mut self, key: ConsumerKey, effects: &mut Vec<Effect>) -> bool {
        let Some(consumer) = self.consumers.remove(&key) else {
            return false;
        };
        self.rotation.retain(|k| *k != key);
        if self.consumers.is_empty() {
            self.last_used = self.now;
        }
        for seq in consumer.held {
            self.settle(key, seq, Settlement::Requeue, effects);
        }
        true
    }

    /// Settles message `seq` if `key` holds it.
    fn settle(
        &mut self,
        key: ConsumerKey,
        seq: u64,
        action: Settlement,
        effects: &mut Vec<Effect>,
    ) {
        let Some(held) = self.messages.get_mut(&seq) else {
            return;
        };
        if held.holder != Some(key) {
            return;
        }
        if let Some(consumer) = self.consumers.get_mut(&key) {
            consumer.held.remove(&seq);
        }
        if let Some(count) = self.held_by.get_mut(&(key.node, key.run)) {
            *count -= 1;
            if *count == 0 {
                self.held_by.remove(&(key.node, key.run));
            }
        }
        match action {
            Settlement::Ack => {
                self.messages.remove(&seq);
            }
            Settlement::Discard => self.die(seq, Death::Rejected, effects),
            Settlement::Requeue => {
                held.holder = None;
                held.redelivered = true;
                held.returns = held.returns.saturating_add(1);
                let returns = u64::from(held.returns);
                // Past the delivery limit it dies.
                if self
                    .limits
                    .delivery_limit
                    .is_some_and(|limit| returns > limit)
                {
                    self.die(seq, Death::DeliveryLimit, effects);
                } else {
                    self.make_ready(seq, true);
                }
            }
        }
    }

    /// Takes ready message `seq` out for `key`: removed when `no_ack`, held by `key` otherwise.
    fn check_out(&mut self, seq: u64, key: ConsumerKey, no_ack: bool) -> Option<Delivery> {
        let delivery = {
            let held = self.messages.get_mut(&seq)?;
            held.holder = Some(key);
            Delivery {
                seq,
                message: held.message.clone(),
                redelivered: held.redelivered,
                returns: held.returns,
            }
        };
        if no_ack {
            self.messages.remove(&seq);
        } else {
            *self.held_by.entry((key.node, key.run)).or_default() += 1;
            if let Some(consumer) = self.consumers.get_mut(&key) {
                consumer.held.insert(seq);
            }
        }
        Some(delivery)
    }

    /// Hands ready messages, in order, to the consumers with credit, in turn.
    fn dispatch(&mut self, effects: &mut Vec<Effect>) {
        loop {
            self.expire_head(effects);
            if self.ready.next().is_none() {
                return;
            }
            let Some(key) = self.next_with_credit() else {
                return;
            };
            let Some(seq) = self.take_next() else {
                return;
            };
            let no_ack = self.consumers.get(&key).is_some_and(|c| c.no_ack);
            if let Some(delivery) = self.check_out(seq, key, no_ack) {
                effects.push(Effect::Deliver { key, delivery });
            }
        }
    }

    /// The next consumer in turn that may take a delivery, moved to the back of the turn: of those with credit,
    /// the first in turn of the highest priority (consumer priorities: a lower one receives only while every higher
    /// one is out of credit). With a single active consumer, the first to attach of those still there, if it has
    /// credit.
    fn next_with_credit(&mut self) -> Option<ConsumerKey> {
        if self.limits.single_active_consumer {
            let active = *self.rotation.front()?;
            return self
                .consumers
                .get(&active)
                .is_some_and(Consumer::has_credit)
                .then_some(active);
        }
        let (position, _) = self
            .rotation
            .iter()
            .enumerate()
            .filter_map(|(i, key)| {
                let consumer = self.consumers.get(key)?;
                consumer.has_credit().then_some((i, consumer.priority))
            })
            // The first of the highest: max_by_key keeps the last of equals, so compare positions reversed.
            .max_by_key(|&(i, priority)| (priority, std::cmp::Reverse(i)))?;
        let key = self.rotation.remove(position)?;
        self.rotation.push_back(key);
        Some(key)
    }
}

/// A map as a list of (key, value) pairs, whatever its key type.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// A message with body `body` and no properties, for tests.
#[cfg(test)]
pub(crate) fn test_message(body: &'static str) -> ReplicatedMessage {
    ReplicatedMessage {
        exchange: String::new(),
        routing_key: "q".to_owned(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(body.as_bytes()),
        expiration: None,
        priority: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_message as message;

    fn key(node: u64, run: u64, id: u64) -> ConsumerKey {
        ConsumerKey { node, run, id }
    }

    fn deliveries(effects: &[Effect]) -> Vec<(ConsumerKey, u64, bool, u32)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Deliver { key, delivery } => {
                    Some((*key, delivery.seq, delivery.redelivered, delivery.returns))
                }
                _ => None,
            })
            .collect()
    }

    fn attach(state: &mut QuorumState, key: ConsumerKey, prefetch: u32) -> Vec<Effect> {
        attach_with_priority(state, key, prefetch, 0)
    }

    fn attach_with_priority(
        state: &mut QuorumState,
        key: ConsumerKey,
        prefetch: u32,
        priority: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        state.apply(
            Op::Attach {
                key,
                prefetch,
                no_ack: false,
                exclusive: false,
                priority,
            },
            &mut effects,
        );
        effects
    }

    fn dead_letters(effects: &[Effect]) -> Vec<(u64, Death, DeadLettering)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::DeadLettered { seq, dead, mode } => Some((*seq, dead.reason, *mode)),
                _ => None,
            })
            .collect()
    }

    fn settle(
        state: &mut QuorumState,
        key: ConsumerKey,
        seq: u64,
        action: Settlement,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        state.apply(
            Op::Settle {
                key,
                seqs: vec![seq],
                action,
            },
            &mut effects,
        );
        effects
    }

    #[test]
    fn high_priority_messages_go_two_for_each_normal_one_and_returned_ones_first() {
        let mut state = QuorumState::default();
        let mut effects = Vec::new();
        for (body, priority) in [("n1", 0), ("n2", 4), ("h1", 5), ("h2", 9), ("h3", 200)] {
            let mut m = message(body);
            m.priority = priority;
            state.apply(Op::Enqueue(m), &mut effects);
        }
        let a = key(1, 1, 1);
        let effects = attach(&mut state, a, 1);
        assert_eq!(deliveries(&effects), vec![(a, 3, false, 0)]);
        // Returned: it comes back before everything else.
        let effects = settle(&mut state, a, 3, Settlement::Requeue);
        assert_eq!(deliveries(&effects), vec![(a, 3, true, 1)]);
        let mut order = Vec::new();
        let mut last = 3;
        for _ in 0..4 {
            let effects = settle(&mut state, a, last, Settlement::Ack);
            let (_, seq, _, _) = deliveries(&effects)[0];
            order.push(seq);
            last = seq;
        }
        // h1 was handed out before the return, so h2 is the second high in a row: then a normal one.
        assert_eq!(order, [4, 1, 5, 2]);
    }

    #[test]
    fn higher_priority_consumers_receive_first_and_equals_take_turns() {
        let mut state = QuorumState::default();
        let (low, high_a, high_b) = (key(1, 1, 1), key(2, 1, 1), key(3, 1, 1));
        attach_with_priority(&mut state, low, 0, -1);
        attach_with_priority(&mut state, high_a, 1, 5);
        attach_with_priority(&mut state, high_b, 1, 5);
        let mut effects = Vec::new();
        for body in ["1", "2", "3", "4"] {
            state.apply(Op::Enqueue(message(body)), &mut effects);
        }
        // The two of priority 5 take one each (their prefetch); the rest go to the lower one.
        assert_eq!(
            deliveries(&effects),
            vec![
                (high_a, 1, false, 0),
                (high_b, 2, false, 0),
                (low, 3, false, 0),
                (low, 4, false, 0)
            ]
        );
        let effects = settle(&mut state, high_b, 2, Settlement::Ack);
        assert!(deliveries(&effects).is_empty());
        let mut effects = Vec::new();
        state.apply(Op::Enqueue(message("5")), &mut effects);
        assert_eq!(deliveries(&effects), vec![(high_b, 5, false, 0)]);
    }

    #[test]
    fn dead_messages_are_dead_lettered_at_most_once_or_kept_until_done() {
        let mut state = QuorumState::default();
        state.set_limits(Limits {
            max_length: Some(2),
            delivery_limit: Some(0),
            dead_lettering: DeadLettering::AtMostOnce,
            ..Limits::default()
        });
        let mut effects = Vec::new();
        for body in ["1", "2", "3"] {
            state.apply(Op::Enqueue(message(body)), &mut effects);
        }
        // drop-head: the oldest dies as maxlen.
        assert_eq!(
            dead_letters(&effects),
            vec![(1, Death::Maxlen, DeadLettering::AtMostOnce)]
        );
        let a = key(1, 1, 1);
        attach(&mut state, a, 0);
        let effects = settle(&mut state, a, 2, Settlement::Discard);
        assert_eq!(
            dead_letters(&effects),
            vec![(2, Death::Rejected, DeadLettering::AtMostOnce)]
        );
        let effects = settle(&mut state, a, 3, Settlement::Requeue);
        assert_eq!(
            dead_letters(&effects),
            vec![(3, Death::DeliveryLimit, DeadLettering::AtMostOnce)]
        );
        assert_eq!(
            state.dead_letters().count(),
            0,
            "at most once keeps nothing"
        );

        // At least once (reject-publish): kept, counted against the limits, until done.
        let mut state = QuorumState::default();
        state.set_limits(Limits {
            max_length: Some(2),
            reject_publish: true,
            message_ttl: Some(10),
            dead_lettering: DeadLettering::AtLeastOnce,
            ..Limits::default()
        });
        let mut effects = Vec::new();
        state.advance(1_000, &mut effects);
        assert!(state.apply(Op::Enqueue(message("1")), &mut effects));
        assert!(state.apply(Op::Enqueue(message("2")), &mut effects));
        state.advance(1_011, &mut effects);
        assert_eq!(
            dead_letters(&effects),
            vec![
                (1, Death::Expired, DeadLettering::AtLeastOnce),
                (2, Death::Expired, DeadLettering::AtLeastOnce)
            ]
        );
        assert_eq!(state.ready(), 0);
        assert_eq!(
            state.dead_letters().map(|(seq, _)| seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(
            !state.apply(Op::Enqueue(message("3")), &mut effects),
            "the kept letters count against max-length"
        );
        state.apply(Op::DeadLettersDone { seqs: vec![1] }, &mut effects);
        assert!(state.apply(Op::Enqueue(message("3")), &mut effects));
        assert_eq!(
            state.dead_letters().map(|(seq, _)| seq).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn an_unused_queue_expires_from_its_last_use_and_never_with_consumers() {
        let mut state = QuorumState::default();
        state.set_limits(Limits {
            expires: Some(5_000),
            ..Limits::default()
        });
        let mut effects = Vec::new();
        state.advance(1_000, &mut effects);
        assert_eq!(state.expires_at(), Some(6_000));
        state.advance(2_000, &mut effects);
        state.apply(Op::Enqueue(message("1")), &mut effects);
        assert_eq!(state.expires_at(), Some(6_000), "a publish is no use");
        state.apply(Op::Touch, &mut effects);
        assert_eq!(state.expires_at(), Some(7_000));
        let a = key(1, 1, 1);
        attach(&mut state, a, 0);
        assert_eq!(state.expires_at(), None);
        state.advance(9_000, &mut effects);
        state.apply(Op::Detach { key: a }, &mut effects);
        assert_eq!(state.expires_at(), Some(14_000));
    }

    #[test]
    fn messages_go_to_consumers_in_turn_within_their_prefetch() {
        let mut state = QuorumState::default();
        let (a, b) = (key(1, 1, 1), key(2, 1, 1));
        let mut effects = Vec::new();
        for body in ["1", "2", "3", "4", "5"] {
            state.apply(Op::Enqueue(message(body)), &mut effects);
        }
        assert_eq!(state.ready(), 5);
        assert_eq!(attach(&mut state, a, 2)[0], Effect::Attached { key: a });
        let effects = attach(&mut state, b, 2);
        // a took 1 and 2 when it attached; b takes 3 and 4; 5 waits for credit.
        assert_eq!(
            deliveries(&effects),
            vec![(b, 3, false, 0), (b, 4, false, 0)]
        );
        assert_eq!((state.ready(), state.unacked()), (1, 4));
        let mut effects = Vec::new();
        state.apply(
            Op::Settle {
                key: a,
                seqs: vec![1],
                action: Settlement::Ack,
            },
            &mut effects,
        );
        assert_eq!(deliveries(&effects), vec![(a, 5, false, 0)]);
    }

    #[test]
    fn a_requeued_or_orphaned_message_comes_back_first_counted_and_redelivered() {
        let mut state = QuorumState::default();
        let a = key(1, 1, 1);
        let mut effects = Vec::new();
        state.apply(Op::Enqueue(message("1")), &mut effects);
        state.apply(Op::Enqueue(message("2")), &mut effects);
        attach(&mut state, a, 1);
        let mut effects = Vec::new();
        state.apply(
            Op::Settle {
                key: a,
                seqs: vec![1],
                action: Settlement::Requeue,
            },
            &mut effects,
        );
        assert_eq!(deliveries(&effects), vec![(a, 1, true, 1)]);
        // The node restarts: its consumers of the old run are gone and what they held is ready again.
        let mut effects = Vec::new();
        state.apply(Op::NodeRun { node: 1, run: 2 }, &mut effects);
        assert_eq!((state.ready(), state.consumers()), (2, 0));
        // A late attach from the old run is refused.
        assert!(attach(&mut state, a, 1).is_empty());
        let b = key(1, 2, 7);
        let effects = attach(&mut state, b, 0);
        assert_eq!(
            deliveries(&effects),
            vec![(b, 1, true, 2), (b, 2, false, 0)]
        );
    }

    #[test]
    fn a_node_seen_down_loses_its_consumers_and_what_they_and_its_gets_hold() {
        let mut state = QuorumState::default();
        let (a, getter, b) = (key(1, 1, 1), key(1, 1, GET_CONSUMER), key(2, 1, 1));
        let mut effects = Vec::new();
        for body in ["1", "2", "3"] {
            state.apply(Op::Enqueue(message(body)), &mut effects);
        }
        state.apply(
            Op::Get {
                key: getter,
                request: 1,
                no_ack: false,
            },
            &mut effects,
        );
        attach(&mut state, a, 0);
        assert_eq!(state.remote_holders(2), BTreeSet::from([(1, 1)]));
        let mut effects = Vec::new();
        state.apply(Op::NodeDown { node: 1, run: 1 }, &mut effects);
        assert!(effects.contains(&Effect::Detached { key: a }));
        assert_eq!((state.ready(), state.unacked()), (3, 0));
        assert!(state.remote_holders(2).is_empty());
        let effects = attach(&mut state, b, 0);
        assert_eq!(
            deliveries(&effects),
            vec![(b, 1, true, 1), (b, 2, true, 1), (b, 3, true, 1)]
        );
    }

    #[test]
    fn a_settlement_from_someone_who_does_not_hold_the_message_changes_nothing() {
        let mut state = QuorumState::default();
        let (a, b) = (key(1, 1, 1), key(2, 1, 1));
        let mut effects = Vec::new();
        state.apply(Op::Enqueue(message("1")), &mut effects);
        attach(&mut state, a, 1);
        let before = state.clone();
        state.apply(
            Op::Settle {
                key: b,
                seqs: vec![1, 99],
                action: Settlement::Ack,
            },
            &mut effects,
        );
        assert_eq!(state, before);
    }

    #[test]
    fn get_takes_the_first_ready_message_and_answers_empty_after() {
        let mut state = QuorumState::default();
        let getter = key(3, 1, GET_CONSUMER);
        let mut effects = Vec::new();
        state.apply(Op::Enqueue(message("1")), &mut effects);
        state.apply(
            Op::Get {
                key: getter,
                request: 1,
                no_ack: false,
            },
            &mut effects,
        );
        state.apply(
            Op::Get {
                key: getter,
                request: 2,
                no_ack: true,
            },
            &mut effects,
        );
        assert!(matches!(
            &effects[..],
            [
                Effect::GetAnswer { request: 1, delivery: Some(d), remaining: 0, .. },
                Effect::GetAnswer { request: 2, delivery: None, .. },
            ] if d.seq == 1
        ));
        assert_eq!(state.unacked(), 1);
        state.apply(
            Op::Settle {
                key: getter,
                seqs: vec![1],
                action: Settlement::Ack,
            },
            &mut effects,
        );
        assert_eq!((state.ready(), state.unacked()), (0, 0));
    }

    #[test]
    fn limits_drop_the_head_or_refuse_and_a_message_past_its_delivery_limit_is_dropped() {
        let mut state = QuorumState::default();
        state.set_limits(Limits {
            max_length: Some(2),
            ..Limits::default()
        });
        let mut effects = Vec::new();
        for body in ["1", "2", "3"] {
            assert!(state.apply(Op::Enqueue(message(body)), &mut effects));
        }
        let a = key(1, 1, 1);
        let effects = attach(&mut state, a, 0);
        assert_eq!(
            deliveries(&effects),
            vec![(a, 2, false, 0), (a, 3, false, 0)]
        );

        let mut state = QuorumState::default();
        state.set_limits(Limits {
            max_length_bytes: Some(2),
            reject_publish: true,
            delivery_limit: Some(1),
            ..Limits::default()
        });
        let mut effects = Vec::new();
        assert!(state.apply(Op::Enqueue(message("1")), &mut effects));
        assert!(state.apply(Op::Enqueue(message("2")), &mut effects));
        assert!(!state.apply(Op::Enqueue(message("3")), &mut effects));
        assert_eq!((state.ready(), state.ready_bytes()), (2, 2));
        attach(&mut state, a, 1);
        for expected_returns in [1, 2] {
            let mut effects = Vec::new();
            state.apply(
                Op::Settle {
                    key: a,
                    seqs: vec![1],
                    action: Settlement::Requeue,
                },
                &mut effects,
            );
            if expected_returns == 1 {
                assert_eq!(deliveries(&effects), vec![(a, 1, true, 1)]);
            } else {
                // Returned a second time with a limit of 1: dropped, and the next one goes out.
                assert_eq!(deliveries(&effects), vec![(a, 2, false, 0)]);
            }
        }
    }

    #[test]
    fn messages_expire_at_the_head_by_the_time_the_entries_carry() {
        let mut state = QuorumState::default();
        state.set_limits(Limits {
            message_ttl: Some(1_000),
            ..Limits::default()
        });
        let mut effects = Vec::new();
        state.advance(10_000, &mut effects);
        state.apply(Op::Enqueue(message("queue ttl")), &mut effects);
        let mut short = message("own expiration");
        short.expiration = Some(100);
        state.apply(Op::Enqueue(short), &mut effects);
        assert_eq!(state.next_expiry(), Some(11_000));
        // The second's own expiration is past, but it waits behind the head.
        state.advance(10_500, &mut effects);
        assert_eq!(state.ready(), 2);
        state.advance(11_001, &mut effects);
        assert_eq!((state.ready(), state.ready_bytes()), (0, 0));
        assert_eq!(state.next_expiry(), None);

        // A requeued message keeps its expiry; a consumer with credit gets a message before it expires.
        let a = key(1, 1, 1);
        state.apply(Op::Enqueue(message("m")), &mut effects);
        let effects = attach(&mut state, a, 1);
        assert_eq!(deliveries(&effects), vec![(a, 3, false, 0)]);
        let mut effects = Vec::new();
        state.apply(Op::Detach { key: a }, &mut effects);
        assert_eq!(state.ready(), 1);
        state.advance(12_002, &mut effects);
        let mut effects = Vec::new();
        state.apply(
            Op::Get {
                key: key(1, 1, GET_CONSUMER),
                request: 1,
                no_ack: true,
            },
            &mut effects,
        );
        assert!(matches!(
            effects.as_slice(),
            [Effect::GetAnswer { delivery: None, .. }]
        ));
    }

    #[test]
    fn lowered_limits_trim_a_drop_head_queue_at_their_entry() {
        let mut state = QuorumState::default();
        let mut effects = Vec::new();
        for body in ["1", "2", "3"] {
            state.apply(Op::Enqueue(message(body)), &mut effects);
        }
        let limits = Limits {
            max_length: Some(1),
            ..Limits::default()
        };
        state.apply(Op::SetLimits(limits), &mut effects);
        assert_eq!((state.ready(), state.limits()), (1, limits));
        let reject = Limits {
            reject_publish: true,
            ..limits
        };
        state.apply(Op::SetLimits(reject), &mut effects);
        assert!(!state.apply(Op::Enqueue(message("4")), &mut effects));
    }

    #[test]
    fn a_single_active_consumer_gets_everything_until_it_goes() {
        let mut state = QuorumState::default();
        state.set_limits(Limits {
            single_active_consumer: true,
            ..Limits::default()
        });
        let (a, b) = (key(1, 1, 1), key(2, 1, 1));
        attach(&mut state, a, 1);
        attach(&mut state, b, 1);
        let mut effects = Vec::new();
        for body in ["1", "2"] {
            state.apply(Op::Enqueue(message(body)), &mut effects);
        }
        assert_eq!(deliveries(&effects), vec![(a, 1, false, 0)]);
        let mut effects = Vec::new();
        state.apply(Op::Detach { key: a }, &mut effects);
        assert_eq!(
            deliveries(&effects),
            vec![(b, 1, true, 1)],
            "the next consumer takes over, the returned message first"
        );
    }

    #[test]
    fn the_state_survives_its_binary_form() {
        let mut state = QuorumState::default();
        let mut effects = Vec::new();
        state.apply(Op::Enqueue(message("body")), &mut effects);
        attach(&mut state, key(1, 1, 1), 5);
        let bytes = postcard::to_stdvec(&state).expect("serialises");
        let back: QuorumState = postcard::from_bytes(&bytes).expect("deserialises");
        assert_eq!(back, state);
    }
}
