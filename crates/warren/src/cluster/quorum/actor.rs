//! A replicated quorum queue's actor on one node: it takes the same [`QueueCommand`]s as a local queue's actor,
//! turns each into operations of the queue's Raft group (publishes batched into one entry per round, confirmed once
//! committed), and carries out the applied effects meant for this node's consumers and basic.get callers.
//! Delivery decisions are the group's; the actor only hands them to the channels, holding a delivery back while its
//! channel is over budget or out of global credit, and detaching a consumer whose channel closed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::dead_letters::DeadLetterOutbox;
use super::group::{AppliedBatch, AppliedCounts};
use super::machine::{
    ConsumerKey, DeadLettering, DeadMessage, Death, Delivery, Effect, Limits, Op,
    ReplicatedMessage, Settlement, GET_CONSUMER,
};
use super::QuorumGroup;
use crate::message::dead_letter::DeathReason;
use crate::message::{Expiry, Message, QueuedMessage};
use crate::queue::arguments::{Overflow, QueueType};
use crate::queue::dead_letter_batch::DeadLetterBatch;
use crate::queue::gauges::QueueCounts;
use crate::queue::sink::{same_sink, DeliverOutcome, DeliverySink, QueueReply};
use crate::queue::{
    ConsumerInspection, QueueCommand, QueueConsumer, QueueDeleted, QueueHandle, QueueInbox,
    QueueInspection, QueueStats, SettleAction,
};
use crate::queue::{DeadLetter, DeadLetters, QueueOwner};
use crate::session::ConfirmRef;
use crate::vhost::QueueReplication;
use warren_protocol::error::{AmqpError, ReplyCode};

/// Messages a node may have written to the group and not yet seen committed: past it, the actor stops taking
/// publishes (its inbox fills and publishers' readers stop reading their sockets).
const IN_FLIGHT_MESSAGES: usize = 20_000;

/// How often a leader looks for consumers of nodes that are gone.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Operations written to the group in one entry at most.
const MAX_BATCH_OPS: usize = 2_000;

/// Message bytes in one entry at most (but a single write larger than this is one entry of its own): openraft gives
/// an AppendEntries only its heartbeat interval to reach a follower and be written there, so entries stay small.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// What to do once a write is committed or has failed.
enum Completion {
    /// Publisher confirms, one per enqueue of the write: released (acked) when committed, failed (nacked) when
    /// not, or when the queue refused that enqueue (full under `reject-publish`).
    Confirms(Vec<Option<ConfirmRef>>),
    /// Dead-letter receipts, one per enqueue: released when committed, refused otherwise.
    Letters(Vec<crate::queue::dead_letter_batch::LetterShare>),
    /// A consume, get or purge waiting for its effect: told only when the write failed.
    Failed(oneshot::Sender<String>),
    /// Nothing to tell (settlements: a lost one only means a redelivery).
    Nothing,
}

/// One write handed to the writer task.
struct Write {
    ops: Vec<Op>,
    /// About how many bytes its operations take in an entry: the messages' properties and bodies.
    bytes: usize,
    completion: Completion,
    _permit: Option<OwnedSemaphorePermit>,
}

/// A consumer of this node.
struct LocalConsumer {
    consumer: QueueConsumer,
    send_ok: bool,
    /// The consume's caller, answered once the group has it.
    attached: Option<oneshot::Sender<Result<(), AmqpError>>>,
    /// The cancel's caller: (send cancel-ok, answer).
    cancelling: Option<(bool, oneshot::Sender<()>)>,
    /// Deliveries the group made to it that its channel could not take yet.
    pending: VecDeque<Delivery>,
}

/// A request waiting for its effect.
enum Request {
    Get {
        sink: Arc<dyn DeliverySink>,
        no_ack: bool,
    },
    Purge(oneshot::Sender<u32>),
}

/// The actor's state.
struct Actor {
    handle: Weak<QueueHandle>,
    group: Arc<QuorumGroup>,
    consumers: HashMap<u64, LocalConsumer>,
    requests: HashMap<u64, Request>,
    next_request: u64,
    counts: AppliedCounts,
    published_counts: QueueCounts,
    writes: mpsc::UnboundedSender<Write>,
    in_flight: Arc<Semaphore>,
    /// Failures of consume, get and purge writes, with the request they were for.
    failures: mpsc::UnboundedSender<(u64, String)>,
    /// Deletes the queue on every node (a client's queue.delete).
    replication: Arc<dyn QueueReplication>,
    /// Consumers of a channel that deleted the queue: named in its delete-ok's answer, not sent basic.cancel.
    silent: Vec<u64>,
    /// The (node, run) of the other nodes' consumers and holders, as of the last applied batch.
    remote_holders: BTreeSet<(u64, u64)>,
    /// Those of them this node, as leader, wrote `NodeDown` for.
    reported_down: BTreeSet<(u64, u64)>,
    /// When the message at the head expires, as of the last applied batch: the leader then writes an entry
    /// whose time drops it.
    next_expiry: Option<u64>,
    /// The limits the group applies, as of the last applied batch (None before the first).
    limits: Option<Limits>,
    /// When a member that did not lead at the head's expiry looks again.
    expiry_not_before: Option<tokio::time::Instant>,
    /// The vhost, which publishes dead letters.
    owner: Weak<dyn QueueOwner>,
    /// The letters kept for at-least-once dead-lettering, which the leader sends.
    outbox: DeadLetterOutbox,
    /// When the queue, unused, is due to be deleted (`x-expires`), as of the last applied batch.
    expires_at: Option<u64>,
    /// This node, as leader, is deleting the queue for `x-expires`.
    expiring: Arc<std::sync::atomic::AtomicBool>,
}

/// Runs the actor of `handle` until the queue is deleted or the node stops.
pub(crate) fn spawn(
    handle: &Arc<QueueHandle>,
    group: Arc<QuorumGroup>,
    inbox: QueueInbox,
    applied: mpsc::UnboundedReceiver<AppliedBatch>,
    replication: Arc<dyn QueueReplication>,
    owner: Weak<dyn QueueOwner>,
) {
    let (writes, write_queue) = mpsc::unbounded_channel();
    tokio::spawn(writer(group.clone(), write_queue));
    let (failures, failure_queue) = mpsc::unbounded_channel();
    let actor = Actor {
        handle: Arc::downgrade(handle),
        group,
        consumers: HashMap::new(),
        requests: HashMap::new(),
        next_request: 0,
        counts: AppliedCounts::default(),
        published_counts: QueueCounts::default(),
        writes,
        in_flight: Arc::new(Semaphore::new(IN_FLIGHT_MESSAGES)),
        failures,
        replication,
        silent: Vec::new(),
        remote_holders: BTreeSet::new(),
        reported_down: BTreeSet::new(),
        next_expiry: None,
        limits: None,
        expiry_not_before: None,
        owner,
        outbox: DeadLetterOutbox::default(),
        expires_at: None,
        expiring: Arc::default(),
    };
    let wake = handle.wake.clone();
    tokio::spawn(actor.run(
        inbox.commands,
        inbox.settlements,
        applied,
        failure_queue,
        wake,
    ));
}

/// Writes what the actor hands it to the group, in order, taking everything waiting into one entry.
async fn writer(group: Arc<QuorumGroup>, mut queue: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 256).await > 0 {
        while batch.len() < 4096 {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let mut writes = std::mem::take(&mut batch).into_iter().peekable();
        while writes.peek().is_some() {
            let mut ops = Vec::new();
            let mut completions = Vec::new();
            let mut bytes = 0;
            while let Some(write) = writes.next_if(|write| {
                ops.is_empty()
                    || (ops.len() < MAX_BATCH_OPS && bytes + write.bytes <= MAX_BATCH_BYTES)
            }) {
                bytes += write.bytes;
                let range = ops.len()..ops.len() + write.ops.len();
                ops.extend(write.ops);
                completions.push((write.completion, range, write._permit));
            }
            let outcome = group.write(ops).await;
            for (completion, range, _permit) in completions {
                let outcome = outcome.as_ref().map(|applied| {
                    applied
                        .refused
                        .iter()
                        .map(|index| *index as usize)
                        .filter(|index| range.contains(index))
                        .map(|index| index - range.start)
                        .collect::<Vec<usize>>()
                });
                complete(completion, outcome);
            }
        }
    }
}

/// Settles what a write waited for: `outcome` is the indexes (within the write) of the enqueues the queue refused,
/// or why the write failed.
fn complete(completion: Completion, outcome: Result<Vec<usize>, &String>) {
    match (completion, outcome) {
        (Completion::Confirms(confirms), Err(_)) => {
            confirms.into_iter().flatten().for_each(ConfirmRef::fail)
        }
        (Completion::Confirms(mut confirms), Ok(refused)) => {
            for index in refused {
                if let Some(confirm) = confirms.get_mut(index).and_then(Option::take) {
                    confirm.fail();
                }
            }
        }
        (Completion::Letters(shares), Err(_)) => shares.into_iter().for_each(|s| s.refuse()),
        (Completion::Letters(shares), Ok(refused)) => {
            for (index, share) in shares.into_iter().enumerate() {
                if refused.contains(&index) {
                    share.refuse();
                }
            }
        }
        (Completion::Failed(tell), Err(reason)) => {
            let _ = tell.send(reason.clone());
        }
        // Dropping a confirm or share releases it.
        _ => {}
    }
}

impl Actor {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<QueueCommand>,
        mut settlements: mpsc::UnboundedReceiver<QueueCommand>,
        mut applied: mpsc::UnboundedReceiver<AppliedBatch>,
        mut failures: mpsc::UnboundedReceiver<(u64, String)>,
        wake: Arc<tokio::sync::Notify>,
    ) {
        self.write(
            vec![Op::NodeRun {
                node: self.group.node,
                run: self.group.run,
            }],
            Completion::Nothing,
            None,
        );
        let mut watch = tokio::time::interval(WATCH_EVERY);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let expiry = self.expiry_deadline();
            tokio::select! {
                biased;
                Some(batch) = applied.recv() => self.on_applied(batch),
                _ = watch.tick() => {
                    self.release_the_gone();
                    self.sync_limits();
                    self.send_dead_letters();
                    self.expire_unused();
                }
                () = tokio::time::sleep_until(expiry.unwrap_or_else(tokio::time::Instant::now)), if expiry.is_some() => {
                    self.expire();
                }
                Some((request, reason)) = failures.recv() => self.on_failure(request, reason),
                Some(command) = settlements.recv() => {
                    if !self.on_command(command).await {
                        return;
                    }
                }
                Some(command) = inbox.recv() => {
                    if !self.on_command(command).await {
                        return;
                    }
                }
                () = wake.notified() => self.flush_all(),
                else => return,
            }
        }
    }

    fn key(&self, id: u64) -> ConsumerKey {
        ConsumerKey {
            node: self.group.node,
            run: self.group.run,
            id,
        }
    }

    fn write(&self, ops: Vec<Op>, completion: Completion, permit: Option<OwnedSemaphorePermit>) {
        // Counted once here, off the writer's batching loop.
        let bytes = ops
            .iter()
            .map(|op| match op {
                Op::Enqueue(message) => message.properties.len() + message.body.len(),
                _ => 0,
            })
            .sum();
        // The writer lives as long as the actor.
        let _ = self.writes.send(Write {
            ops,
            bytes,
            completion,
            _permit: permit,
        });
    }

    /// A request's failure reporter: the write's failure comes back to the actor as request `request`'s.
    fn failure_for(&self, request: u64) -> Completion {
        let (tell, told) = oneshot::channel();
        let failures = self.failures.clone();
        tokio::spawn(async move {
            if let Ok(reason) = told.await {
                let _ = failures.send((request, reason));
            }
        });
        Completion::Failed(tell)
    }

    fn not_replicated(&self, what: &str, reason: &str) -> AmqpError {
        let name = self
            .handle
            .upgrade()
            .map(|h| h.spec.name.to_string())
            .unwrap_or_default();
        AmqpError::new(
            ReplyCode::InternalError,
            format!("failed {what} quorum queue '{name}': {reason}"),
        )
    }

    /// Handles one command; false once the queue is deleted.
    async fn on_command(&mut self, command: QueueCommand) -> bool {
        match command {
            QueueCommand::Publish(enqueues) => {
                let n = enqueues.len().clamp(1, IN_FLIGHT_MESSAGES) as u32;
                let Ok(permit) = self.in_flight.clone().acquire_many_owned(n).await else {
                    return true;
                };
                let mut ops = Vec::with_capacity(enqueues.len());
                let mut confirms = Vec::with_capacity(enqueues.len());
                for enqueue in enqueues {
                    ops.push(Op::Enqueue(replicated(&enqueue.message)));
                    confirms.push(enqueue.confirm);
                }
                self.write(ops, Completion::Confirms(confirms), Some(permit));
            }
            QueueCommand::PublishDeadLetters(letters) => {
                let n = letters.len().clamp(1, IN_FLIGHT_MESSAGES) as u32;
                let Ok(permit) = self.in_flight.clone().acquire_many_owned(n).await else {
                    return true;
                };
                let mut ops = Vec::with_capacity(letters.len());
                let mut shares = Vec::new();
                for letter in letters {
                    ops.push(Op::Enqueue(replicated(&letter.message)));
                    shares.push(letter.share);
                }
                self.write(ops, Completion::Letters(shares), Some(permit));
            }
            QueueCommand::Reconfigure => self.sync_limits(),
            QueueCommand::DeadLettersSettled { batch, outcomes } => {
                let done = self
                    .outbox
                    .settled(batch, &outcomes, tokio::time::Instant::now());
                if !done.is_empty() {
                    self.write(
                        vec![Op::DeadLettersDone { seqs: done }],
                        Completion::Nothing,
                        None,
                    );
                }
                self.send_dead_letters();
            }
            QueueCommand::Consume {
                consumer,
                send_ok,
                reply,
            } => {
                let key = self.key(consumer.id);
                let op = Op::Attach {
                    key,
                    prefetch: u32::from(consumer.prefetch),
                    no_ack: consumer.no_ack,
                    exclusive: consumer.exclusive,
                    priority: consumer.priority,
                };
                let request = consumer.id;
                self.consumers.insert(
                    consumer.id,
                    LocalConsumer {
                        consumer,
                        send_ok,
                        attached: Some(reply),
                        cancelling: None,
                        pending: VecDeque::new(),
                    },
                );
                let completion = self.failure_for(request);
                self.write(vec![op], completion, None);
            }
            QueueCommand::Cancel {
                sink,
                consumer_tag,
                send_ok,
                reply,
            } => {
                let found = self.consumers.iter_mut().find(|(_, c)| {
                    same_sink(&c.consumer.sink, &sink) && c.consumer.tag == consumer_tag
                });
                match found {
                    Some((id, local)) => {
                        local.cancelling = Some((send_ok, reply));
                        let id = *id;
                        let key = self.key(id);
                        self.write(vec![Op::Detach { key }], Completion::Nothing, None);
                    }
                    None => {
                        if send_ok {
                            sink.reply(QueueReply::CancelOk { tag: consumer_tag });
                        }
                        let _ = reply.send(());
                    }
                }
            }
            QueueCommand::Get { sink, no_ack } => {
                self.next_request += 1;
                let request = self.next_request;
                self.requests.insert(request, Request::Get { sink, no_ack });
                let op = Op::Get {
                    key: self.key(GET_CONSUMER),
                    request,
                    no_ack,
                };
                let completion = self.failure_for(request | REQUEST_BIT);
                self.write(vec![op], completion, None);
            }
            QueueCommand::Settle { deliveries, action } => {
                let action = match action {
                    SettleAction::Ack => Settlement::Ack,
                    SettleAction::Requeue => Settlement::Requeue,
                    SettleAction::Discard => Settlement::Discard,
                };
                let mut by_holder: HashMap<u64, Vec<u64>> = HashMap::new();
                for (seq, consumer) in deliveries {
                    by_holder
                        .entry(consumer.unwrap_or(GET_CONSUMER))
                        .or_default()
                        .push(seq);
                }
                let ops = by_holder
                    .into_iter()
                    .map(|(id, seqs)| Op::Settle {
                        key: self.key(id),
                        seqs,
                        action,
                    })
                    .collect();
                self.write(ops, Completion::Nothing, None);
            }
            QueueCommand::ChannelClosed { sink } => {
                let gone: Vec<u64> = self
                    .consumers
                    .iter()
                    .filter(|(_, c)| same_sink(&c.consumer.sink, &sink))
                    .map(|(id, _)| *id)
                    .collect();
                self.detach(&gone);
            }
            QueueCommand::Stats { reply } => {
                // queue.declare, passive or not: a use, as in RabbitMQ, which restarts the `x-expires` time.
                if self.limits.is_some_and(|l| l.expires.is_some()) {
                    self.write(vec![Op::Touch], Completion::Nothing, None);
                }
                let _ = reply.send(QueueStats {
                    messages: self.counts.ready.try_into().unwrap_or(u32::MAX),
                    consumers: self.counts.consumers.try_into().unwrap_or(u32::MAX),
                });
            }
            QueueCommand::Inspect { reply } => {
                let consumers = self
                    .consumers
                    .values()
                    .map(|c| ConsumerInspection {
                        tag: c.consumer.tag.clone(),
                        connection_id: c.consumer.sink.connection_id(),
                        ack_required: !c.consumer.no_ack,
                        exclusive: c.consumer.exclusive,
                        prefetch: c.consumer.prefetch,
                        priority: c.consumer.priority,
                    })
                    .collect();
                let _ = reply.send(QueueInspection {
                    ready: self.counts.ready,
                    unacked: self.counts.unacked,
                    ready_bytes: self.counts.ready_bytes,
                    consumers,
                    dedup_keys: None,
                    replicas: Some(self.group.replicas()),
                    home: None,
                });
            }
            QueueCommand::Purge { reply } => {
                self.next_request += 1;
                let request = self.next_request;
                self.requests.insert(request, Request::Purge(reply));
                let op = Op::Purge {
                    key: self.key(GET_CONSUMER),
                    request,
                };
                let completion = self.failure_for(request | REQUEST_BIT);
                self.write(vec![op], completion, None);
            }
            QueueCommand::Delete {
                if_unused,
                if_empty,
                requester: Some(requester),
                reply,
            } => self.delete_for_client(if_unused, if_empty, requester, reply),
            QueueCommand::Delete { reply, .. } => {
                // The cluster deleted the queue: this node's consumers are told (but those of a channel that
                // deleted it here, which names them in its delete-ok's answer).
                let messages = self.counts.ready.try_into().unwrap_or(u32::MAX);
                for (id, local) in self.consumers.drain() {
                    let consumer = local.consumer;
                    if !self.silent.contains(&id) && consumer.cancel_notify() {
                        consumer.sink.reply(QueueReply::Cancel {
                            tag: consumer.tag.clone(),
                        });
                    }
                    consumer.sink.forget_consumer(&consumer.tag);
                }
                let _ = reply.send(Ok(QueueDeleted {
                    messages,
                    cancel_after_reply: Vec::new(),
                }));
                return false;
            }
        }
        true
    }

    /// A client's queue.delete: checked here, carried out on every node through the cluster (which then sends
    /// this actor the cluster's delete), answered once this node has applied it.
    fn delete_for_client(
        &mut self,
        if_unused: bool,
        if_empty: bool,
        requester: Arc<dyn DeliverySink>,
        reply: oneshot::Sender<Result<QueueDeleted, AmqpError>>,
    ) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let (name, vhost) = (handle.spec.name.clone(), handle.spec.vhost.clone());
        if if_unused && self.counts.consumers > 0 {
            let _ = reply.send(Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{vhost}' in use"
            ))));
            return;
        }
        if if_empty && self.counts.ready > 0 {
            let _ = reply.send(Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{vhost}' is not empty"
            ))));
            return;
        }
        let mut cancel_after_reply = Vec::new();
        for (id, local) in &self.consumers {
            if same_sink(&local.consumer.sink, &requester) {
                self.silent.push(*id);
                cancel_after_reply.push(local.consumer.tag.clone());
            }
        }
        let messages = self.counts.ready.try_into().unwrap_or(u32::MAX);
        let replication = self.replication.clone();
        tokio::spawn(async move {
            let outcome = replication
                .delete(&vhost, &name)
                .await
                .map(|()| QueueDeleted {
                    messages,
                    cancel_after_reply,
                });
            let _ = reply.send(outcome);
        });
    }

    /// Detaches this node's consumers `ids` (their channel closed): forgotten here at once, and in the group.
    fn detach(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        let mut ops = Vec::new();
        for id in ids {
            if self.consumers.remove(id).is_some() {
                ops.push(Op::Detach { key: self.key(*id) });
            }
        }
        self.write(ops, Completion::Nothing, None);
    }

    /// A consume, get or purge whose write failed.
    fn on_failure(&mut self, request: u64, reason: String) {
        if request & REQUEST_BIT == 0 {
            if let Some(mut local) = self.consumers.remove(&request) {
                if let Some(reply) = local.attached.take() {
                    let _ = reply.send(Err(self.not_replicated("consuming from", &reason)));
                }
            }
            return;
        }
        match self.requests.remove(&(request & !REQUEST_BIT)) {
            // RabbitMQ answers a get it could not serve from a quorum queue with a channel error; an empty answer
            // would claim the queue is empty.
            Some(Request::Get { sink, .. }) => {
                tracing::warn!(%reason, "basic.get on a quorum queue failed");
                sink.reply(QueueReply::GetEmpty);
            }
            Some(Request::Purge(reply)) => drop(reply),
            None => {}
        }
    }

    /// As the group's leader: writes the limits the queue's arguments and policies ask for now when the group
    /// applies others (a policy changed), so that every member applies the change at the same entry.
    fn sync_limits(&mut self) {
        let (Some(applied), Some(handle)) = (self.limits, self.handle.upgrade()) else {
            return;
        };
        let wanted = wanted_limits(&handle);
        if wanted == applied || !self.leads() {
            return;
        }
        // Written once; the next applied batch confirms it (or a later tick writes it again).
        self.limits = Some(wanted);
        self.write(vec![Op::SetLimits(wanted)], Completion::Nothing, None);
    }

    fn leads(&self) -> bool {
        self.group.raft.metrics().borrow().current_leader == Some(self.group.node)
    }

    /// When to write an entry that expires the head: just after its expiry by this node's clock.
    /// A member that does not lead looks again a second later (it may lead by then), not sooner.
    fn expiry_deadline(&self) -> Option<tokio::time::Instant> {
        let at = self.next_expiry?;
        let wait = at.saturating_add(1).saturating_sub(super::unix_millis());
        let due = tokio::time::Instant::now() + std::time::Duration::from_millis(wait);
        Some(
            self.expiry_not_before
                .map_or(due, |not_before| due.max(not_before)),
        )
    }

    /// As the group's leader: writes an entry with no operations, whose time expires the messages at the head;
    /// the next applied batch says when the next one is due. A member that does not lead waits (a leader change
    /// leaves the next leader to do it).
    fn expire(&mut self) {
        if self.leads() {
            self.next_expiry = None;
            self.expiry_not_before = None;
            self.write(Vec::new(), Completion::Nothing, None);
        } else {
            self.expiry_not_before =
                Some(tokio::time::Instant::now() + std::time::Duration::from_secs(1));
        }
    }

    /// As the group's leader: gives back what the consumers of gone nodes (down, cut off, or restarted) hold.
    fn release_the_gone(&mut self) {
        self.reported_down
            .retain(|holder| self.remote_holders.contains(holder));
        if !self.leads() {
            return;
        }
        let gone: Vec<(u64, u64)> = self
            .remote_holders
            .iter()
            .filter(|(node, run)| self.group.liveness.is_gone(*node, *run))
            .filter(|holder| !self.reported_down.contains(holder))
            .copied()
            .collect();
        for (node, run) in gone {
            tracing::info!(
                node,
                run,
                "quorum queue: a node holding deliveries is gone; returning them"
            );
            self.reported_down.insert((node, run));
            self.write(vec![Op::NodeDown { node, run }], Completion::Nothing, None);
        }
    }

    /// Where this node, leading the group, sends dead letters: the queue, its owner and the dead-letter exchange
    /// and routing key its settings name. None when it does not lead or has no dead-letter exchange.
    fn dead_letter_route(&self) -> Option<DeadLetterRoute> {
        if !self.leads() {
            return None;
        }
        let (handle, owner) = (self.handle.upgrade()?, self.owner.upgrade()?);
        let settings = handle.settings();
        let exchange = settings.dead_letter_exchange.clone()?;
        let routing_key = settings.dead_letter_routing_key.clone();
        Some(DeadLetterRoute {
            handle,
            owner,
            exchange,
            routing_key,
        })
    }

    /// As the group's leader: hands the owner the next batch of kept dead letters (at least once).
    fn send_dead_letters(&mut self) {
        if self.outbox.len() == 0 {
            return;
        }
        let Some(route) = self.dead_letter_route() else {
            return;
        };
        let Some((number, letters)) = self.outbox.take_batch(tokio::time::Instant::now()) else {
            return;
        };
        let receipts = letters
            .iter()
            .map(|(seq, _, held_by)| (*seq, held_by.clone()));
        let batch = DeadLetterBatch::new(Arc::downgrade(&route.handle), number, receipts);
        let letters = letters
            .into_iter()
            .map(|(_, dead, _)| dead_letter(dead))
            .collect();
        route.send(letters, Some(batch));
    }

    /// As the group's leader: publishes messages that died here to the dead-letter exchange, once.
    fn dead_letter_at_most_once(&self, dead: Vec<DeadMessage>) {
        if dead.is_empty() {
            return;
        }
        if let Some(route) = self.dead_letter_route() {
            route.send(dead.into_iter().map(dead_letter).collect(), None);
        }
    }

    /// As the group's leader: deletes the queue on every node once it has been unused for its `x-expires`.
    fn expire_unused(&mut self) {
        let Some(at) = self.expires_at else {
            return;
        };
        if at > super::unix_millis() || !self.leads() {
            return;
        }
        use std::sync::atomic::Ordering;
        if self.expiring.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let (replication, expiring) = (self.replication.clone(), self.expiring.clone());
        tokio::spawn(async move {
            let (vhost, name) = (handle.spec.vhost.clone(), handle.spec.name.clone());
            drop(handle);
            if let Err(error) = replication.delete(&vhost, &name).await {
                tracing::warn!(%error.text, "quorum queue '{name}' in vhost '{vhost}': not deleted for x-expires; trying again");
                expiring.store(false, Ordering::Release);
            }
        });
    }

    fn on_applied(&mut self, batch: AppliedBatch) {
        self.counts = batch.counts;
        self.remote_holders = batch.remote_holders;
        self.next_expiry = batch.next_expiry;
        self.limits = Some(batch.limits);
        self.expires_at = batch.expires_at;
        if let Some(handle) = self.handle.upgrade() {
            handle.gauges.publish(
                &mut self.published_counts,
                QueueCounts {
                    ready: batch.counts.ready,
                    unacked: batch.counts.unacked,
                    consumers: batch.counts.consumers,
                },
            );
        }
        let mut touched = Vec::new();
        let mut at_most_once = Vec::new();
        for effect in batch.effects {
            match effect {
                Effect::Attached { key } if self.mine(key) => {
                    if let Some(local) = self.consumers.get_mut(&key.id) {
                        if local.send_ok {
                            local.consumer.sink.reply(QueueReply::ConsumeOk {
                                tag: local.consumer.tag.clone(),
                            });
                        }
                        if let Some(reply) = local.attached.take() {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                Effect::AttachRefused { key } if self.mine(key) => {
                    if let Some(mut local) = self.consumers.remove(&key.id) {
                        if let Some(reply) = local.attached.take() {
                            let name = self
                                .handle
                                .upgrade()
                                .map(|h| h.spec.name.to_string())
                                .unwrap_or_default();
                            let vhost = self
                                .handle
                                .upgrade()
                                .map(|h| h.spec.vhost.to_string())
                                .unwrap_or_default();
                            let _ = reply.send(Err(AmqpError::new(
                                ReplyCode::AccessRefused,
                                format!("queue '{name}' in vhost '{vhost}' in exclusive use"),
                            )));
                        }
                    }
                }
                Effect::Detached { key } if self.mine(key) => {
                    if let Some(local) = self.consumers.remove(&key.id) {
                        let consumer = local.consumer;
                        match local.cancelling {
                            Some((send_ok, reply)) => {
                                if send_ok {
                                    consumer.sink.reply(QueueReply::CancelOk {
                                        tag: consumer.tag.clone(),
                                    });
                                }
                                let _ = reply.send(());
                            }
                            None => {
                                if consumer.cancel_notify() {
                                    consumer.sink.reply(QueueReply::Cancel {
                                        tag: consumer.tag.clone(),
                                    });
                                }
                                consumer.sink.forget_consumer(&consumer.tag);
                            }
                        }
                    }
                }
                Effect::Deliver { key, delivery } if self.mine(key) => {
                    if let Some(local) = self.consumers.get_mut(&key.id) {
                        local.pending.push_back(delivery);
                        touched.push(key.id);
                    }
                }
                Effect::GetAnswer {
                    key,
                    request,
                    delivery,
                    remaining,
                } if self.mine(key) => self.answer_get(request, delivery, remaining),
                Effect::Purged {
                    key,
                    request,
                    count,
                } if self.mine(key) => {
                    if let Some(Request::Purge(reply)) = self.requests.remove(&request) {
                        let _ = reply.send(count);
                    }
                }
                Effect::DeadLettered { seq, dead, mode } => match mode {
                    DeadLettering::AtLeastOnce => self.outbox.add(seq, dead),
                    DeadLettering::AtMostOnce => at_most_once.push(dead),
                    DeadLettering::Off => {}
                },
                Effect::DeadLettersForgotten { seqs } => self.outbox.forget(&seqs),
                _ => {}
            }
        }
        if let Some(all) = batch.dead_letters {
            self.outbox.replace(all);
        }
        self.dead_letter_at_most_once(at_most_once);
        self.send_dead_letters();
        touched.dedup();
        for id in touched {
            self.flush(id);
        }
    }

    fn mine(&self, key: ConsumerKey) -> bool {
        key.node == self.group.node && key.run == self.group.run
    }

    fn answer_get(&mut self, request: u64, delivery: Option<Delivery>, remaining: u32) {
        let Some(Request::Get { sink, no_ack }) = self.requests.remove(&request) else {
            return;
        };
        let Some(delivery) = delivery else {
            sink.reply(QueueReply::GetEmpty);
            return;
        };
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let seq = delivery.seq;
        if !sink.deliver_get(&handle, no_ack, &queued(delivery), remaining) && !no_ack {
            let key = self.key(GET_CONSUMER);
            self.write(
                vec![Op::Settle {
                    key,
                    seqs: vec![seq],
                    action: Settlement::Requeue,
                }],
                Completion::Nothing,
                None,
            );
        }
    }

    fn flush_all(&mut self) {
        let ids: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.flush(id);
        }
    }

    /// Hands consumer `id`'s pending deliveries to its channel while it takes them.
    fn flush(&mut self, id: u64) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let mut closed = false;
        if let Some(local) = self.consumers.get_mut(&id) {
            let consumer = &local.consumer;
            while let Some(delivery) = local.pending.front() {
                if consumer.sink.is_closed() {
                    closed = true;
                    break;
                }
                if consumer.sink.over_budget() {
                    consumer.sink.wake_when_drained(handle.wake.clone());
                    break;
                }
                let message = queued(delivery.clone());
                match consumer.sink.deliver(
                    &handle,
                    id,
                    &consumer.tag,
                    consumer.no_ack,
                    &message,
                    &handle.wake,
                ) {
                    DeliverOutcome::Delivered => {
                        local.pending.pop_front();
                    }
                    DeliverOutcome::NoChannelCredit => break,
                    DeliverOutcome::Closed => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            self.detach(&[id]);
        }
    }
}

/// Marks a get or purge request number apart from consumer ids in the failure reports.
const REQUEST_BIT: u64 = 1 << 63;

/// The limits queue `handle` should apply: its arguments with what its policy and operator policy set, as
/// RabbitMQ's quorum queues combine them. Policy keys a replicated queue does not implement (dead-lettering,
/// `expires`) are not applied (docs/clustering.md).
fn wanted_limits(handle: &QueueHandle) -> Limits {
    let settings = handle.settings();
    let dead_lettering = match &settings.dead_letter_exchange {
        None => DeadLettering::Off,
        Some(_) if settings.at_least_once(QueueType::Quorum) => DeadLettering::AtLeastOnce,
        Some(_) => DeadLettering::AtMostOnce,
    };
    Limits {
        max_length: settings.max_length,
        max_length_bytes: settings.max_length_bytes,
        reject_publish: settings.overflow == Overflow::RejectPublish,
        delivery_limit: settings.delivery_limit,
        single_active_consumer: handle.spec.args.single_active_consumer,
        message_ttl: settings.message_ttl,
        dead_lettering,
        expires: settings.expires,
    }
}

/// Where a leader sends dead letters ([`Actor::dead_letter_route`]).
struct DeadLetterRoute {
    handle: Arc<QueueHandle>,
    owner: Arc<dyn QueueOwner>,
    exchange: String,
    routing_key: Option<String>,
}

impl DeadLetterRoute {
    /// Hands `letters` to the owner to publish, with `batch`'s receipt when at least once.
    fn send(self, letters: Vec<DeadLetter>, batch: Option<Arc<DeadLetterBatch>>) {
        self.owner.dead_letter(
            &self.handle,
            DeadLetters {
                exchange: self.exchange,
                routing_key: self.routing_key,
                letters,
                batch,
            },
        );
    }
}

/// A message that died here as the owner dead-letters it.
fn dead_letter(dead: DeadMessage) -> DeadLetter {
    let message = dead.message;
    DeadLetter {
        message: Arc::new(Message::new(
            Arc::from(message.exchange.as_str()),
            Arc::from(message.routing_key.as_str()),
            message.properties,
            message.body,
        )),
        reason: match dead.reason {
            Death::Rejected => DeathReason::Rejected,
            Death::Expired => DeathReason::Expired,
            Death::Maxlen => DeathReason::Maxlen,
            Death::DeliveryLimit => DeathReason::DeliveryLimit,
        },
        died_at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(dead.died_at),
    }
}

fn replicated(message: &Message) -> ReplicatedMessage {
    ReplicatedMessage {
        exchange: message.exchange.to_string(),
        routing_key: message.routing_key.to_string(),
        properties: message.properties_raw.clone(),
        body: message.body.clone(),
        expiration: message.expiration(),
        priority: message.priority().unwrap_or(0),
    }
}

fn queued(delivery: Delivery) -> QueuedMessage {
    let message = delivery.message;
    QueuedMessage {
        seq: delivery.seq,
        message: Arc::new(Message::new(
            Arc::from(message.exchange.as_str()),
            Arc::from(message.routing_key.as_str()),
            message.properties,
            message.body,
        )),
        redelivered: delivery.redelivered,
        expires_at: Expiry::NEVER,
        returns: delivery.returns,
    }
}
