//! The queue actor: drains its inbox in batches, applies each command to the queue state, then delivers what it
//! can. It never waits on a connection: when a consumer's outbound queue or channel credit is spent it parks that
//! consumer and is woken through `QueueHandle::wake`.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::arguments::{Overflow, QueueType};
use super::consumer::QueueConsumer;
use super::dedup::DedupSet;
use super::flow::FlowLimits;
use super::gauges::{MessageStats, QueueCounts, QueueStat};
use super::owner::{DeadLetter, DeadLetters, QueueOwner};
use super::paging::QueueMemory;
use super::ready::ReadyList;
use super::settings::QueueSettings;
use super::sink::{same_sink, DeliverOutcome, DeliverySink, QueueReply};
use super::state::{
    Admission, DropReason, PagedOut, Payload, Place, QueueState, ReadyEntry, ReadyRules,
};
use super::{
    DeadLetterEnqueue, Enqueue, QueueCommand, QueueDeleted, QueueHandle, QueueSpec, QueueStats,
    SettleAction, MAX_RUN,
};
use crate::message::dead_letter::DeathReason;
use crate::message::{now_ms, Message};
use crate::metrics::counters::{LocalCounts, NodeCounters, QueueCounter, QueueKind};
use crate::metrics::NodeMetrics;
use warren_protocol::error::AmqpError;
use warren_store::{IndexEntry, Store};

/// What a durable queue needs of the message store.
pub(crate) struct QueueStorage {
    /// The node's message store.
    pub(crate) store: Store,
    /// This queue's id in the store.
    pub(crate) queue_id: u64,
}

/// Inbox capacity in commands; a full inbox makes publishers' readers wait. A publish command carries up to
/// `MAX_RUN` messages, so at most 32,768 messages wait in an inbox.
pub(super) const INBOX_CAPACITY: usize = 32_768 / MAX_RUN;
const BATCH: usize = 256;

/// Creates a queue applying `settings` and starts its actor; a durable queue starts with the messages the store
/// recovered for it. `memory` bounds the message bodies it keeps in memory.
pub(crate) fn spawn_queue(
    spec: QueueSpec,
    settings: QueueSettings,
    owner: Weak<dyn QueueOwner>,
    storage: Option<QueueStorage>,
    memory: QueueMemory,
    flow_limits: FlowLimits,
    recovered: Vec<IndexEntry>,
) -> Arc<QueueHandle> {
    let (inbox, receiver) = mpsc::channel(INBOX_CAPACITY);
    let (settlements, settle_receiver) = mpsc::unbounded_channel();
    let handle = Arc::new(QueueHandle {
        spec,
        inbox,
        settlements,
        wake: Arc::new(tokio::sync::Notify::new()),
        flow: Default::default(),
        settings: arc_swap::ArcSwap::from_pointee(settings),
        gauges: Default::default(),
    });
    let settings = handle.settings();
    let mut state = QueueState::default();
    state.rules = ready_rules(&settings, handle.spec.args.queue_type);
    state.ready = ReadyList::with_max_priority(handle.spec.args.max_priority.unwrap_or(0));
    // x-expires counts from a restart too, as in RabbitMQ; message TTLs count from each message's publish.
    let now = now_ms();
    if settings.deduplication {
        state.dedup = Some(DedupSet::default());
    }
    for entry in &recovered {
        if let (Some(_), Some(storage)) = (&state.dedup, &storage) {
            // Beyond the plugin, which starts a restarted queue's set empty: the keys of the messages that
            // survived come back with them (read once at start, and only for a deduplicating queue). A later copy
            // of a key is a duplicate whose ack a crash lost: it is forgotten now.
            match storage.store.read(storage.queue_id, entry.msg_id) {
                Ok(stored) if state.is_duplicate(&stored.properties_raw) => {
                    storage.store.ack(storage.queue_id, vec![entry.msg_id]);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    queue = %handle.spec.name, msg_id = entry.msg_id, error = %e,
                    "deduplication key of a recovered message unreadable"
                ),
            }
        }
        state.enqueue_recovered(entry, now);
    }
    let queue_type = handle.spec.args.queue_type;
    let metrics = owner.upgrade().map(|o| (o.metrics(), o.vhost_counters()));
    let actor = QueueActor {
        handle: Arc::downgrade(&handle),
        owner,
        state,
        storage,
        memory,
        flow_limits,
        held: None,
        at_least_once: settings.at_least_once(queue_type),
        settings,
        last_used: now,
        single_active_consumer: handle.spec.args.single_active_consumer,
        counts: QueueActorCounts {
            kind: queue_type.metrics_kind(),
            local: LocalCounts::default(),
            node: metrics,
            published: QueueCounts::default(),
            stats: MessageStats::default(),
            published_stats: MessageStats::default(),
        },
    };
    actor.warn_at_least_once_fallback(None);
    tokio::spawn(actor.run(receiver, settle_receiver, handle.clone()));
    handle
}

/// The rules a queue's settings set on its ready messages.
fn ready_rules(settings: &QueueSettings, queue_type: QueueType) -> ReadyRules {
    ReadyRules {
        message_ttl: settings.message_ttl,
        max_length: settings.max_length,
        max_length_bytes: settings.max_length_bytes,
        reject_when_full: settings.overflow != Overflow::DropHead,
        count_returns: queue_type == QueueType::Quorum,
        delivery_limit: settings.delivery_limit,
    }
}

/// The store ids of the persistent ones among `messages`.
fn persistent_ids(messages: &[Arc<Message>]) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m.persistent())
        .map(|m| m.id)
        .collect()
}

/// Resolves just after `deadline` (milliseconds since the epoch), when a message expires; never without one.
async fn expiry_timer(deadline: Option<u64>) {
    match deadline {
        Some(deadline) => {
            let wait = deadline.saturating_add(1).saturating_sub(now_ms());
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

/// The task that owns one queue's state; its methods are here and, for reading paged-out messages, in `paging`.
pub(super) struct QueueActor {
    pub(super) handle: Weak<QueueHandle>,
    /// Told when an auto-delete queue goes ([`QueueOwner::forget_queue`]) and given what dies here
    /// ([`QueueOwner::dead_letter`]).
    pub(super) owner: Weak<dyn QueueOwner>,
    pub(super) state: QueueState,
    pub(super) storage: Option<QueueStorage>,
    /// Its memory budget, and the spill store for transient messages past it.
    pub(super) memory: QueueMemory,
    /// When the queue holds its publishers.
    flow_limits: FlowLimits,
    /// While the queue holds its publishers: the consumer generation its exempt connections were taken at.
    held: Option<u64>,
    /// The settings applied (a copy of the handle's, taken again on [`QueueCommand::Reconfigure`]): the queue's
    /// expiry, dead-letter exchange and limits.
    pub(super) settings: Arc<QueueSettings>,
    /// Messages that die here are dead-lettered at least once ([`QueueSettings::at_least_once`]): kept in
    /// `state.dead_letters` until their targets hold them (the actor's side is in `queue/at_least_once.rs`).
    pub(super) at_least_once: bool,
    /// When it was last used, in milliseconds since the epoch (for `x-expires`).
    last_used: u64,
    /// `x-single-active-consumer`.
    single_active_consumer: bool,
    /// Its deliveries, gets and acks counted for the node's metrics, flushed once per round.
    counts: QueueActorCounts,
}

/// What a queue's actor counts for the metrics: plain integers per event, moved into the node's counters and its
/// handle's gauges once per round (see `metrics::counters`).
struct QueueActorCounts {
    /// The `queue_type` its counters carry.
    kind: QueueKind,
    /// Counted since the last round.
    local: LocalCounts,
    /// The node's metrics and its vhost's counters; None when the queue's owner was already gone at spawn.
    node: Option<(Arc<NodeMetrics>, Arc<NodeCounters>)>,
    /// The gauges last published on the handle.
    published: QueueCounts,
    /// Its `message_stats` counts since the queue started.
    stats: MessageStats,
    /// The stats last published on the handle.
    published_stats: MessageStats,
}

impl QueueActorCounts {
    fn add(&mut self, counter: QueueCounter, n: u64) {
        self.local.add_queue(self.kind, counter, n);
    }

    /// A delivery to a consumer (`get` false) or by basic.get.
    fn delivered(&mut self, get: bool, no_ack: bool, redelivered: bool) {
        self.add(QueueCounter::Delivered, 1);
        self.add(
            match (get, no_ack) {
                (false, false) => QueueCounter::DeliveredConsumeManualAck,
                (false, true) => QueueCounter::DeliveredConsumeAutoAck,
                (true, false) => QueueCounter::DeliveredGetManualAck,
                (true, true) => QueueCounter::DeliveredGetAutoAck,
            },
            1,
        );
        if redelivered {
            self.add(QueueCounter::Redelivered, 1);
        }
    }
}

/// The node's queue counters that are also a queue's own `message_stats`.
const STAT_COUNTERS: [(QueueStat, QueueCounter); 7] = [
    (QueueStat::Deliver, QueueCounter::DeliveredConsumeManualAck),
    (
        QueueStat::DeliverNoAck,
        QueueCounter::DeliveredConsumeAutoAck,
    ),
    (QueueStat::Get, QueueCounter::DeliveredGetManualAck),
    (QueueStat::GetNoAck, QueueCounter::DeliveredGetAutoAck),
    (QueueStat::GetEmpty, QueueCounter::GetEmpty),
    (QueueStat::Ack, QueueCounter::Acknowledged),
    (QueueStat::Redeliver, QueueCounter::Redelivered),
];

/// Whether the actor goes on after a command, or the queue is deleted and the actor ends.
enum ActorNext {
    /// Take the next command.
    Continue,
    /// The queue was deleted: end the task.
    Stop,
}

impl QueueActor {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<QueueCommand>,
        mut settlements: mpsc::UnboundedReceiver<QueueCommand>,
        handle: Arc<QueueHandle>,
    ) {
        let wake = handle.wake.clone();
        // The actor keeps only a weak reference so that a dropped handle ends it.
        drop(handle);
        let mut settle_batch = Vec::with_capacity(BATCH);
        loop {
            // Settlements first: an ack frees consumer credit, and behind a full inbox of publishes it would leave
            // consumers idle while the backlog grows (measured: 42-90k deliveries/s against 400k publishes/s with
            // prefetch 1000, before this ordering).
            tokio::select! {
                biased;
                n = settlements.recv_many(&mut settle_batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for command in settle_batch.drain(..) {
                        self.apply(command).await;
                    }
                }
                command = inbox.recv() => {
                    let Some(command) = command else {
                        break;
                    };
                    if let ActorNext::Stop = self.take_in(command, &mut inbox).await {
                        break;
                    }
                }
                _ = wake.notified() => {}
                _ = expiry_timer(self.next_deadline()) => {}
            }
            let Some(handle) = self.handle.upgrade() else {
                break;
            };
            self.dispatch(&handle).await;
            self.drop_dead().await;
            self.send_dead_letters().await;
            self.update_flow(&handle);
            self.publish_counts(&handle);
            self.memory.account(self.state.loaded_bytes);
            self.page_out_under_pressure(&wake).await;
            if self.should_auto_delete() || self.unused_too_long() {
                if let Some(owner) = self.owner.upgrade() {
                    let queue = handle.clone();
                    // The owner may commit to disk (see the trait): off the async workers, and waited for, so
                    // the queue is gone before its consumers hear of it.
                    let forgotten =
                        tokio::task::spawn_blocking(move || owner.forget_queue(&queue)).await;
                    if let Err(error) = forgotten {
                        tracing::error!(%error, "forgetting auto-delete queue '{}' failed", handle.name());
                    }
                }
                self.cancel_all_consumers(None);
                break;
            }
        }
        // Deleted or dropped: publishers still waiting on it go on (their messages to it are dropped).
        if let Some(handle) = self.handle.upgrade() {
            handle.flow.release();
        }
        // Noted once the messages are freed, so the workers that collect on it find the memory free.
        let (messages, body_bytes) = (self.state.ready.len() as u64, self.state.ready_bytes);
        drop(self);
        crate::memory_release::note_dropped(messages, body_bytes);
    }

    /// Applies `first` and whatever else the inbox holds, up to about [`BATCH`] messages, before the next dispatch.
    /// Taking more at once would let a fast publisher grow the queue faster than its consumers drain it while the
    /// broker is short of CPU; leaving the rest in the inbox makes the publisher's reader wait instead.
    async fn take_in(
        &mut self,
        first: QueueCommand,
        inbox: &mut mpsc::Receiver<QueueCommand>,
    ) -> ActorNext {
        let mut command = first;
        let mut messages = 0;
        loop {
            messages += match &command {
                QueueCommand::Publish(run) => run.len(),
                _ => 1,
            };
            if let ActorNext::Stop = self.apply(command).await {
                return ActorNext::Stop;
            }
            if messages >= BATCH {
                return ActorNext::Continue;
            }
            match inbox.try_recv() {
                Ok(next) => command = next,
                Err(_) => return ActorNext::Continue,
            }
        }
    }

    async fn apply(&mut self, command: QueueCommand) -> ActorNext {
        match command {
            QueueCommand::Publish(run) => {
                self.counts.stats.add(QueueStat::Publish, run.len() as u64);
                // The clock is read once per run, and only when a message can expire.
                let mut clock = None;
                let mut spilled = false;
                for Enqueue { message, confirm } in run {
                    match self.offer(message, &mut clock, &mut spilled) {
                        // Enqueued: this queue's share of the confirm is released here (the store holds its own
                        // share until the fsync).
                        Admission::Enqueued => drop(confirm),
                        // A duplicate is confirmed too (beyond the plugin, whose queue nacks it): a publisher
                        // retrying a message whose confirm it lost must see its retry succeed.
                        Admission::Duplicate => drop(confirm),
                        // x-overflow reject-publish: the publisher gets basic.nack (other queues still have it).
                        Admission::Refused => {
                            if let Some(confirm) = confirm {
                                confirm.fail();
                            }
                        }
                    }
                }
                if spilled {
                    self.wait_for_spill_room().await;
                }
            }
            QueueCommand::PublishDeadLetters(run) => {
                self.counts.stats.add(QueueStat::Publish, run.len() as u64);
                let mut clock = None;
                let mut spilled = false;
                for DeadLetterEnqueue { message, share } in run {
                    match self.offer(message, &mut clock, &mut spilled) {
                        // The queue holds that message already: nothing is lost by dropping this copy.
                        Admission::Enqueued | Admission::Duplicate => drop(share),
                        // Full under reject-publish: the source keeps the letter and tries again later.
                        Admission::Refused => share.refuse(),
                    }
                }
                if spilled {
                    self.wait_for_spill_room().await;
                }
            }
            QueueCommand::DeadLettersSettled { batch, outcomes } => {
                self.dead_letters_settled(batch, &outcomes)
            }
            QueueCommand::Consume {
                consumer,
                send_ok,
                reply,
            } => {
                self.used();
                let result = self.add_consumer(consumer, send_ok);
                let _ = reply.send(result);
            }
            QueueCommand::Cancel {
                sink,
                consumer_tag,
                send_ok,
                reply,
            } => {
                self.used();
                self.state.remove_consumer(&sink, &consumer_tag);
                if send_ok {
                    // After the last delivery to this consumer: nothing is delivered to it from here on.
                    sink.reply(QueueReply::CancelOk { tag: consumer_tag });
                }
                let _ = reply.send(());
            }
            QueueCommand::Get { sink, no_ack } => {
                self.used();
                self.drop_dead().await;
                self.get(&sink, no_ack).await
            }
            QueueCommand::Settle { deliveries, action } => {
                let settled = self.state.settle(&deliveries, action);
                if action == SettleAction::Ack {
                    self.counts
                        .add(QueueCounter::Acknowledged, settled.gone.len() as u64);
                }
                if action == SettleAction::Discard {
                    // basic.reject / basic.nack with requeue=false.
                    self.died(settled.gone, DeathReason::Rejected);
                } else {
                    self.forget_stored(persistent_ids(&settled.gone));
                }
                self.died(settled.over_limit, DeathReason::DeliveryLimit);
            }
            QueueCommand::Reconfigure => self.reconfigure(),
            QueueCommand::ChannelClosed { sink } => {
                self.used();
                self.state.remove_channel(&sink);
            }
            QueueCommand::Stats { reply } => {
                // queue.declare, passive or not: a use, as in RabbitMQ.
                self.used();
                self.drop_dead().await;
                let _ = reply.send(QueueStats {
                    messages: self.state.message_count(),
                    consumers: self.state.consumers.len() as u32,
                });
            }
            QueueCommand::Inspect { reply } => {
                let _ = reply.send(self.state.inspection());
            }
            QueueCommand::Purge { reply } => {
                let bytes_before = self.state.ready_bytes;
                let purged = self.state.purge();
                let count = purged.len() as u32;
                self.forget(&purged);
                drop(purged);
                crate::memory_release::note_dropped(
                    u64::from(count),
                    bytes_before.saturating_sub(self.state.ready_bytes),
                );
                let _ = reply.send(count);
            }
            QueueCommand::Delete {
                if_unused,
                if_empty,
                requester,
                reply,
            } => {
                let name = self.name();
                if if_unused && !self.state.consumers.is_empty() {
                    let _ = reply.send(Err(AmqpError::precondition(format!(
                        "queue '{}' in vhost '{}' in use",
                        name.0, name.1
                    ))));
                    return ActorNext::Continue;
                }
                if if_empty && self.state.message_count() > 0 {
                    let _ = reply.send(Err(AmqpError::precondition(format!(
                        "queue '{}' in vhost '{}' not empty",
                        name.0, name.1
                    ))));
                    return ActorNext::Continue;
                }
                let messages = self.state.message_count();
                let cancel_after_reply = self.cancel_all_consumers(requester.as_ref());
                let _ = reply.send(Ok(QueueDeleted {
                    messages,
                    cancel_after_reply,
                }));
                return ActorNext::Stop;
            }
        }
        ActorNext::Continue
    }

    /// Drops the ready messages that expired and, under drop-head, those past the length limits. The clock is read
    /// only when a message can expire.
    async fn drop_dead(&mut self) {
        let expired = match self.state.next_expiry() {
            Some(deadline) => {
                let now = now_ms();
                if deadline < now {
                    self.state.expire(now)
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        self.dead(expired, DropReason::Expired).await;
        let dropped = self.state.enforce_limits();
        self.dead(dropped, DropReason::Maxlen).await;
    }

    /// Offers one message to the ready list, the clock read into `clock` once per run and only when a message
    /// can expire; `spilled` is set if it went to the spill store. A message past the queue's memory budget is
    /// kept only on disk (`paging`). A message refused under `reject-publish` has its stored copy forgotten and
    /// its spill share released and, under `reject-publish-dlx`, is dead-lettered.
    fn offer(
        &mut self,
        message: Arc<Message>,
        clock: &mut Option<u64>,
        spilled: &mut bool,
    ) -> Admission {
        if self.state.refuses(message.body_size()) {
            // x-overflow reject-publish: checked first, so a refused message is never placed (or spilled).
            let (persistent, id) = (message.persistent(), message.id);
            if self.settings.overflow == Overflow::RejectPublishDlx {
                self.dead_letter(vec![message], DeathReason::Maxlen);
            }
            if persistent {
                self.forget_stored(vec![id]);
            }
            return Admission::Refused;
        }
        if self.state.is_duplicate(&message.properties_raw) {
            // Checked after the length limits, as RabbitMQ's queue asks its backing queue.
            if message.persistent() {
                self.forget_stored(vec![message.id]);
            }
            return Admission::Duplicate;
        }
        let now = match (self.state.rules.message_ttl, message.expiration()) {
            (None, None) => 0,
            _ => *clock.get_or_insert_with(now_ms),
        };
        // A queue under its budget, the usual case, pays this one comparison.
        let place = if self.state.loaded_bytes + message.body_size() > self.memory.budget {
            self.place_past_budget(&message)
        } else {
            Place::Memory
        };
        *spilled |= place == Place::Spill;
        // Moved, not cloned: the message's reference count is touched once per queue, by the publisher.
        self.state.enqueue(message, place, now)
    }

    /// Messages that died here (rejected, returned past the delivery limit): kept for at-least-once
    /// dead-lettering, or dead-lettered at most once (if the queue has a dead-letter exchange) and their stored
    /// copies forgotten.
    fn died(&mut self, messages: Vec<Arc<Message>>, reason: DeathReason) {
        if messages.is_empty() {
            return;
        }
        if self.at_least_once {
            self.keep_dead_letters(messages.into_iter().map(Payload::Loaded), reason);
            return;
        }
        let stored = persistent_ids(&messages);
        // The copies are handed to the store before the originals are forgotten (the store applies its writes
        // in order), so a crash in between leaves the message in both queues, never in neither.
        self.dead_letter(messages, reason);
        self.forget_stored(stored);
    }

    /// Ready messages that left the queue undelivered: kept for at-least-once dead-lettering, or dead-lettered
    /// at most once if the queue has a dead-letter exchange and their stored copies forgotten.
    async fn dead(&mut self, entries: Vec<ReadyEntry>, reason: DropReason) {
        if entries.is_empty() {
            return;
        }
        let reason = match reason {
            DropReason::Expired => DeathReason::Expired,
            DropReason::Maxlen => DeathReason::Maxlen,
        };
        if self.at_least_once {
            self.keep_dead_letters(entries.into_iter().map(|e| e.payload), reason);
            return;
        }
        if self.settings.dead_letter_exchange.is_some() {
            let messages = self.load_all(&entries).await;
            self.dead_letter(messages, reason);
        }
        self.forget(&entries);
    }

    /// The messages of `entries`, reading the paged-out ones back (one that cannot be read is logged and left
    /// out). The entries keep their stored copies and spill shares: the caller forgets them.
    async fn load_all(&self, entries: &[ReadyEntry]) -> Vec<Arc<Message>> {
        let paged_out: Vec<PagedOut> = entries
            .iter()
            .filter_map(|e| e.payload.paged_out())
            .collect();
        let mut read = match paged_out.is_empty() {
            true => Vec::new().into_iter(),
            false => match super::paging::read_paged_out(self.page_sources(), paged_out).await {
                Ok(results) => results.into_iter(),
                Err(_) => Vec::new().into_iter(),
            },
        };
        let mut messages = Vec::with_capacity(entries.len());
        for entry in entries {
            match &entry.payload {
                Payload::Loaded(message) => messages.push(message.clone()),
                Payload::OnDisk { msg_id, .. } | Payload::Spilled { msg_id, .. } => {
                    match read.next() {
                        Some(Ok(message)) => messages.push(Arc::new(message)),
                        _ => {
                            let (queue, vhost) = self.name();
                            tracing::error!("queue '{queue}' in vhost '{vhost}': cannot read message {msg_id} back to dead-letter it; dropped");
                        }
                    }
                }
            }
        }
        messages
    }

    /// Ready entries left the queue (purged, expired, dropped): their stored copies are forgotten and their
    /// spill shares released.
    fn forget(&self, entries: &[ReadyEntry]) {
        let mut stored = Vec::new();
        let mut spilled = Vec::new();
        for entry in entries {
            match &entry.payload {
                Payload::Loaded(m) if m.persistent() => stored.push(m.id),
                Payload::Loaded(_) => {}
                Payload::OnDisk { msg_id, .. } => stored.push(*msg_id),
                Payload::Spilled { msg_id, .. } => spilled.push(*msg_id),
            }
        }
        self.forget_stored(stored);
        self.release_spilled(spilled);
    }

    /// Hands messages that died here to the owner, to publish to the dead-letter exchange at most once.
    fn dead_letter(&self, messages: Vec<Arc<Message>>, reason: DeathReason) {
        let (Some(exchange), Some(handle), Some(owner)) = (
            &self.settings.dead_letter_exchange,
            self.handle.upgrade(),
            self.owner.upgrade(),
        ) else {
            return;
        };
        if messages.is_empty() {
            return;
        }
        let died_at = SystemTime::now();
        owner.dead_letter(
            &handle,
            DeadLetters {
                exchange: exchange.clone(),
                routing_key: self.settings.dead_letter_routing_key.clone(),
                letters: messages
                    .into_iter()
                    .map(|message| DeadLetter {
                        message,
                        reason,
                        died_at,
                    })
                    .collect(),
                batch: None,
            },
        );
    }

    /// Tells the store these persistent messages left the queue (acked, dropped or purged).
    pub(super) fn forget_stored(&self, msg_ids: Vec<u64>) {
        if let Some(d) = &self.storage {
            if !msg_ids.is_empty() {
                d.store.ack(d.queue_id, msg_ids);
            }
        }
    }

    pub(super) fn name(&self) -> (String, String) {
        match self.handle.upgrade() {
            Some(h) => (h.spec.name.to_string(), h.spec.vhost.to_string()),
            None => (String::new(), String::new()),
        }
    }

    fn add_consumer(&mut self, consumer: QueueConsumer, send_ok: bool) -> Result<(), AmqpError> {
        if self.state.has_exclusive_consumer()
            || (consumer.exclusive && !self.state.consumers.is_empty())
        {
            let (queue, vhost) = self.name();
            return Err(AmqpError::access_refused(format!(
                "queue '{queue}' in vhost '{vhost}' in exclusive use"
            )));
        }
        if send_ok {
            // Before the consumer joins the dispatch loop, so consume-ok precedes its first delivery.
            consumer.sink.reply(QueueReply::ConsumeOk {
                tag: consumer.tag.clone(),
            });
        }
        self.state
            .add_consumer(consumer, !self.single_active_consumer);
        Ok(())
    }

    async fn get(&mut self, sink: &Arc<dyn DeliverySink>, no_ack: bool) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        match self.take_next().await {
            None => {
                self.counts.add(QueueCounter::GetEmpty, 1);
                sink.reply(QueueReply::GetEmpty)
            }
            Some(msg) => {
                let remaining = self.state.message_count();
                if sink.deliver_get(&handle, no_ack, &msg, remaining) {
                    self.counts.delivered(true, no_ack, msg.redelivered);
                    if !no_ack {
                        self.state.record_unacked(msg, None);
                    }
                } else {
                    self.state.unpop(msg);
                }
            }
        }
    }

    /// Hands ready messages to consumers with credit: those of the highest `x-priority` that can take one, round
    /// robin among them (the consumers are kept in priority order).
    async fn dispatch(&mut self, handle: &Arc<QueueHandle>) {
        let mut closed = false;
        'deliveries: while !self.state.ready.is_empty() && !self.state.consumers.is_empty() {
            // x-single-active-consumer: only the earliest registered consumer receives; the next takes over when
            // it goes.
            let n = match self.single_active_consumer {
                true => 1,
                false => self.state.consumers.len(),
            };
            let mut start = 0;
            while start < n {
                let group = &self.state.consumers[start..n];
                let priority = group[0].priority;
                // In priority order: when the last shares the first's priority, so does everyone between (the
                // usual case, no priorities at all, costs no scan).
                let len = match group.last() {
                    Some(last) if last.priority == priority => group.len(),
                    _ => group.iter().take_while(|c| c.priority == priority).count(),
                };
                for k in 0..len {
                    let idx = start + (self.state.next_consumer + k) % len;
                    let consumer = &self.state.consumers[idx];
                    if !consumer.has_credit() {
                        continue;
                    }
                    if consumer.sink.over_budget() {
                        consumer.sink.wake_when_drained(handle.wake.clone());
                        continue;
                    }
                    let Some(msg) = self.take_next().await else {
                        break 'deliveries;
                    };
                    let consumer = &mut self.state.consumers[idx];
                    match consumer.sink.deliver(
                        handle,
                        consumer.id,
                        &consumer.tag,
                        consumer.no_ack,
                        &msg,
                        &handle.wake,
                    ) {
                        DeliverOutcome::Delivered => {
                            let (id, no_ack) = (consumer.id, consumer.no_ack);
                            self.counts.delivered(false, no_ack, msg.redelivered);
                            if !no_ack {
                                consumer.in_flight += 1;
                                self.state.record_unacked(msg, Some(id));
                            }
                            self.state.next_consumer = idx - start + 1;
                            continue 'deliveries;
                        }
                        DeliverOutcome::NoChannelCredit => self.state.unpop(msg),
                        DeliverOutcome::Closed => {
                            self.state.unpop(msg);
                            closed = true;
                        }
                    }
                }
                start += len;
            }
            // Nobody could take a message.
            break;
        }
        if closed {
            self.state.consumers.retain(|c| !c.sink.is_closed());
            self.state.consumer_generation += 1;
        }
    }

    /// After a round: moves what the round counted into the node's counters (in the shard of this queue) and
    /// publishes the queue's counts on its handle. A round with nothing counted and nothing changed costs two
    /// comparisons.
    fn publish_counts(&mut self, handle: &QueueHandle) {
        let counts = &mut self.counts;
        // The queue's own `message_stats` are the round's node counts of this queue, read before they move on.
        if counts.local.is_dirty() {
            for (stat, counter) in STAT_COUNTERS {
                counts
                    .stats
                    .add(stat, counts.local.queue_count(counts.kind, counter));
            }
        }
        match &counts.node {
            Some((node, vhost)) => {
                // The handle's address spreads queues over the shards (it is aligned, so the low bits are dropped).
                let key = std::ptr::from_ref(handle) as u64 >> 7;
                counts.local.flush_to(&[&node.counters, vhost], key);
            }
            None => counts.local.clear(),
        }
        let now = QueueCounts {
            ready: self.state.ready.len() as u64,
            unacked: self.state.unacked.len() as u64,
            consumers: self.state.consumers.len() as u64,
        };
        handle.gauges.publish(&mut counts.published, now);
        handle
            .gauges
            .publish_stats(&mut counts.published_stats, &counts.stats);
    }

    /// Holds or releases the queue's publishers after a round, as its backlog and consumers now stand.
    fn update_flow(&mut self, handle: &QueueHandle) {
        let holds = self.flow_limits.holds(
            self.held.is_some(),
            !self.state.consumers.is_empty(),
            self.state.ready.len() as u64,
            self.state.loaded_bytes,
        );
        match (holds, self.held) {
            (false, None) => {}
            (false, Some(_)) => {
                self.held = None;
                handle.flow.release();
            }
            (true, Some(generation)) if generation == self.state.consumer_generation => {}
            (true, _) => {
                self.held = Some(self.state.consumer_generation);
                let mut exempt: Vec<u64> = self
                    .state
                    .consumers
                    .iter()
                    .map(|c| c.sink.connection_id())
                    .collect();
                exempt.sort_unstable();
                exempt.dedup();
                handle.flow.hold(exempt);
            }
        }
    }

    /// Takes the handle's settings anew (a policy changed): the new limits and TTL apply to the messages already
    /// queued, from the next round on (which drops what is now over a limit or expired).
    fn reconfigure(&mut self) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let settings = handle.settings();
        if settings.expires.is_some() && self.settings.expires.is_none() {
            // A queue expiry set now counts from now.
            self.last_used = now_ms();
        }
        let queue_type = handle.spec.args.queue_type;
        let rules = ready_rules(&settings, queue_type);
        self.state.change_rules(rules, now_ms());
        match (self.state.dedup.is_some(), settings.deduplication) {
            // Turned on by a policy: the set starts empty, as the plugin's cache does.
            (false, true) => self.state.dedup = Some(DedupSet::default()),
            (true, false) => self.state.dedup = None,
            _ => {}
        }
        let at_least_once = settings.at_least_once(queue_type);
        let before = std::mem::replace(&mut self.settings, settings);
        self.warn_at_least_once_fallback(Some(&before));
        match (self.at_least_once, at_least_once) {
            // As RabbitMQ's switch away from at-least-once: the messages kept are deleted.
            (true, false) => self.drop_dead_letters(),
            // The exchange or routing key may have changed: try at once, as RabbitMQ's worker looks its
            // topology up again.
            (_, true) => self.state.dead_letters.retry_now(),
            (false, false) => {}
        }
        self.at_least_once = at_least_once;
    }

    /// Records a use of the queue for `x-expires`.
    fn used(&mut self) {
        if self.settings.expires.is_some() {
            self.last_used = now_ms();
        }
    }

    /// When the queue, unused, would expire (`x-expires`): never while it has consumers.
    fn unused_deadline(&self) -> Option<u64> {
        let expires = self.settings.expires?;
        self.state
            .consumers
            .is_empty()
            .then(|| self.last_used.saturating_add(expires))
    }

    /// The next moment the actor has something to do on its own: a message or the queue itself expiring, kept
    /// dead letters to retry.
    fn next_deadline(&self) -> Option<u64> {
        [
            self.state.next_expiry(),
            self.unused_deadline(),
            self.state.dead_letters.next_retry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the queue has been unused for its `x-expires`.
    fn unused_too_long(&self) -> bool {
        self.unused_deadline()
            .is_some_and(|deadline| deadline < now_ms())
    }

    fn should_auto_delete(&self) -> bool {
        let Some(handle) = self.handle.upgrade() else {
            return false;
        };
        handle.spec.auto_delete && self.state.had_consumers && self.state.consumers.is_empty()
    }

    /// The queue is going away: consumers that asked for it get basic.cancel, except those on the channel that
    /// asked for the deletion (`requester`), whose tags are returned for that channel to cancel after its
    /// delete-ok.
    fn cancel_all_consumers(&mut self, requester: Option<&Arc<dyn DeliverySink>>) -> Vec<Arc<str>> {
        let mut after_reply = Vec::new();
        for consumer in self.state.consumers.drain(..) {
            consumer.sink.forget_consumer(&consumer.tag);
            if !consumer.cancel_notify() {
                continue;
            }
            if requester.is_some_and(|r| same_sink(r, &consumer.sink)) {
                after_reply.push(consumer.tag.clone());
            } else {
                consumer.sink.reply(QueueReply::Cancel {
                    tag: consumer.tag.clone(),
                });
            }
        }
        after_reply
    }
}
