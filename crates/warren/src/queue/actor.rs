//! The queue actor: drains its inbox in batches, applies each command to the queue state, then delivers what it
//! can. It never waits on a connection: when a consumer's outbound queue or channel credit is spent it parks that
//! consumer and is woken through `QueueHandle::wake`.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::consumer::QueueConsumer;
use super::flow::FlowLimits;
use super::owner::QueueOwner;
use super::sink::{DeliverOutcome, DeliverySink, QueueReply};
use super::state::{Payload, QueueState};
use super::{Enqueue, QueueCommand, QueueHandle, QueueSpec, QueueStats, MAX_RUN};
use warren_protocol::error::AmqpError;
use warren_store::{IndexEntry, Store};

/// What a durable queue needs of the message store.
pub(crate) struct QueueStorage {
    /// The node's message store.
    pub(crate) store: Store,
    /// This queue's id in the store.
    pub(crate) queue_id: u64,
    /// Body bytes of ready messages kept in memory; persistent messages past it stay only on disk.
    pub(crate) memory_budget: u64,
}

/// Inbox capacity in commands; a full inbox makes publishers' readers wait. A publish command carries up to
/// `MAX_RUN` messages, so at most 32,768 messages wait in an inbox.
const INBOX_CAPACITY: usize = 32_768 / MAX_RUN;
const BATCH: usize = 256;

/// Creates a queue and starts its actor; a durable queue starts with the messages the store recovered for it.
pub(crate) fn spawn_queue(
    spec: QueueSpec,
    owner: Weak<dyn QueueOwner>,
    storage: Option<QueueStorage>,
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
    });
    let mut state = QueueState::default();
    for entry in recovered {
        state.enqueue_recovered(entry.msg_id, u64::from(entry.body_size));
    }
    let actor = QueueActor {
        handle: Arc::downgrade(&handle),
        owner,
        state,
        storage,
        flow_limits,
        held: None,
    };
    tokio::spawn(actor.run(receiver, settle_receiver, handle.clone()));
    handle
}

/// The task that owns one queue's state; its methods are here and, for reading paged-out messages, in `paging`.
pub(super) struct QueueActor {
    pub(super) handle: Weak<QueueHandle>,
    /// Told when an auto-delete queue goes; see [`QueueOwner::forget_queue`].
    owner: Weak<dyn QueueOwner>,
    pub(super) state: QueueState,
    pub(super) storage: Option<QueueStorage>,
    /// When the queue holds its publishers.
    flow_limits: FlowLimits,
    /// While the queue holds its publishers: the consumer generation its exempt connections were taken at.
    held: Option<u64>,
}

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
            }
            let Some(handle) = self.handle.upgrade() else {
                break;
            };
            self.dispatch(&handle).await;
            self.update_flow(&handle);
            if self.should_auto_delete() {
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
                self.cancel_all_consumers();
                break;
            }
        }
        // Deleted or dropped: publishers still waiting on it go on (their messages to it are dropped).
        if let Some(handle) = self.handle.upgrade() {
            handle.flow.release();
        }
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
                for Enqueue { message, confirm } in run {
                    let on_disk = match &self.storage {
                        Some(d) => {
                            message.persistent
                                && self.state.loaded_bytes + message.body_size() > d.memory_budget
                        }
                        None => false,
                    };
                    self.state.enqueue(message, on_disk);
                    // Enqueued: this queue's share of the confirm is released here (the store holds its own
                    // share until the fsync).
                    drop(confirm);
                }
            }
            QueueCommand::Consume {
                consumer,
                send_ok,
                reply,
            } => {
                let result = self.add_consumer(consumer, send_ok);
                let _ = reply.send(result);
            }
            QueueCommand::Cancel {
                sink,
                consumer_tag,
                send_ok,
                reply,
            } => {
                self.state.remove_consumer(&sink, &consumer_tag);
                if send_ok {
                    // After the last delivery to this consumer: nothing is delivered to it from here on.
                    sink.reply(QueueReply::CancelOk { tag: consumer_tag });
                }
                let _ = reply.send(());
            }
            QueueCommand::Get { sink, no_ack } => self.get(&sink, no_ack).await,
            QueueCommand::Settle { deliveries, action } => {
                let gone = self.state.settle(&deliveries, action);
                self.forget_stored(gone.iter().filter(|m| m.persistent).map(|m| m.id).collect());
            }
            QueueCommand::ChannelClosed { sink } => {
                self.state.remove_channel(&sink);
            }
            QueueCommand::Stats { reply } => {
                let _ = reply.send(QueueStats {
                    messages: self.state.message_count(),
                    consumers: self.state.consumers.len() as u32,
                });
            }
            QueueCommand::Purge { reply } => {
                let purged = self.state.purge();
                let count = purged.len() as u32;
                let stored = purged
                    .iter()
                    .filter_map(|e| match &e.payload {
                        Payload::Loaded(m) => m.persistent.then_some(m.id),
                        Payload::OnDisk { msg_id, .. } => Some(*msg_id),
                    })
                    .collect();
                self.forget_stored(stored);
                let _ = reply.send(count);
            }
            QueueCommand::Delete {
                if_unused,
                if_empty,
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
                let count = self.state.message_count();
                self.cancel_all_consumers();
                let _ = reply.send(Ok(count));
                return ActorNext::Stop;
            }
        }
        ActorNext::Continue
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
        self.state.add_consumer(consumer);
        Ok(())
    }

    async fn get(&mut self, sink: &Arc<dyn DeliverySink>, no_ack: bool) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        match self.take_next().await {
            None => sink.reply(QueueReply::GetEmpty),
            Some(msg) => {
                let remaining = self.state.message_count();
                if sink.deliver_get(&handle, no_ack, &msg, remaining) {
                    if !no_ack {
                        self.state.record_unacked(msg, None);
                    }
                } else {
                    self.state.unpop(msg);
                }
            }
        }
    }

    /// Hands ready messages to consumers with credit, round robin.
    async fn dispatch(&mut self, handle: &Arc<QueueHandle>) {
        let mut closed = false;
        while !self.state.ready.is_empty() && !self.state.consumers.is_empty() {
            let n = self.state.consumers.len();
            let mut delivered = false;
            for i in 0..n {
                let idx = (self.state.next_consumer + i) % n;
                let consumer = &self.state.consumers[idx];
                if !consumer.has_credit() {
                    continue;
                }
                if consumer.sink.over_budget() {
                    consumer.sink.wake_when_drained(handle.wake.clone());
                    continue;
                }
                let Some(msg) = self.take_next().await else {
                    break;
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
                        if !no_ack {
                            consumer.in_flight += 1;
                            self.state.record_unacked(msg, Some(id));
                        }
                        self.state.next_consumer = (idx + 1) % n;
                        delivered = true;
                        break;
                    }
                    DeliverOutcome::NoChannelCredit => self.state.unpop(msg),
                    DeliverOutcome::Closed => {
                        self.state.unpop(msg);
                        closed = true;
                    }
                }
            }
            if !delivered {
                break;
            }
        }
        if closed {
            self.state.consumers.retain(|c| !c.sink.is_closed());
            self.state.consumer_generation += 1;
        }
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

    fn should_auto_delete(&self) -> bool {
        let Some(handle) = self.handle.upgrade() else {
            return false;
        };
        handle.spec.auto_delete && self.state.had_consumers && self.state.consumers.is_empty()
    }

    /// The queue is going away: consumers that asked for it get basic.cancel.
    fn cancel_all_consumers(&mut self) {
        for consumer in self.state.consumers.drain(..) {
            consumer.sink.forget_consumer(&consumer.tag);
            if consumer.cancel_notify() {
                consumer.sink.reply(QueueReply::Cancel {
                    tag: consumer.tag.clone(),
                });
            }
        }
    }
}
