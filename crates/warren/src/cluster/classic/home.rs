//! The home node's side of its classic queues' use from other nodes: each *session* (one channel of another node)
//! is a [`RemoteSink`] that the queue delivers to as to a local channel, keeping what it is handed until the other
//! node polls for it; [`serve`] carries out the other nodes' calls on the queue.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::wire::{
    RemoteAnswer, RemoteCall, SessionEvent, WireError, WireInspection, WireMessage, WireQueued,
    WireReply,
};
use crate::message::{Message, QueuedMessage};
use crate::queue::sink::{DeliverOutcome, DeliverySink, QueueReply};
use crate::queue::{Enqueue, QueueCommand, QueueConsumer, QueueHandle, MAX_RUN};
use crate::session::{ConfirmRef, ConfirmTracker};

/// How long a poll waits for something to happen before it answers with nothing.
pub(crate) const POLL_WAIT: Duration = Duration::from_secs(5);

/// A session not polled for this long is closed: its node is gone or cut off, and its unacknowledged deliveries
/// are requeued (as RabbitMQ requeues those of a channel whose node went down).
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(15);

/// Bytes a session may hold for its node before the queue stops delivering to it (as a connection's outbound
/// budget holds a local consumer back).
const SESSION_BUDGET: usize = 1 << 20;

/// What the home node needs of the broker to serve the calls.
pub(crate) trait HomeBroker: Send + Sync {
    /// Queue `name` of vhost `vhost`, if this node has it.
    fn queue(&self, vhost: &str, name: &str) -> Option<Arc<QueueHandle>>;

    /// Writes persistent `message` for durable `queue` to the message store; `confirm` is released once it is on
    /// disk, or failed.
    fn store_persistent(&self, message: &Message, queue: &QueueHandle, confirm: ConfirmRef);

    /// Deletes queue `name` of `vhost` from the cluster (queue.delete from another node); the ready messages it
    /// held.
    fn delete<'a>(
        &'a self,
        vhost: &'a str,
        name: &'a str,
        if_unused: bool,
        if_empty: bool,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<u32, warren_protocol::error::AmqpError>>
                + Send
                + 'a,
        >,
    >;

    /// A new node-unique consumer id.
    fn consumer_id(&self) -> u64;
}

/// This node's sessions, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    sessions: DashMap<u64, Arc<RemoteSink>>,
}

/// One session's sink.
pub(crate) struct RemoteSink {
    id: u64,
    queue: std::sync::Weak<QueueHandle>,
    state: Mutex<SinkState>,
    /// Wakes a waiting poll.
    ready: Notify,
}

struct SinkState {
    events: Vec<SessionEvent>,
    bytes: usize,
    closed: bool,
    drained: Vec<Arc<Notify>>,
    /// When the other node last polled (or kept the session open); None while a poll waits.
    last_seen: Option<Instant>,
}

impl Default for SinkState {
    fn default() -> SinkState {
        SinkState {
            events: Vec::new(),
            bytes: 0,
            closed: false,
            drained: Vec::new(),
            last_seen: Some(Instant::now()),
        }
    }
}

impl RemoteSink {
    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, event: SessionEvent, bytes: usize) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.events.push(event);
        state.bytes += bytes;
        drop(state);
        self.ready.notify_one();
        true
    }

    /// Closes the session: its queue forgets its consumers and requeues what it delivered to it.
    fn close(self: &Arc<Self>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        state.events.clear();
        let waiters = std::mem::take(&mut state.drained);
        drop(state);
        for waiter in waiters {
            waiter.notify_one();
        }
        self.ready.notify_one();
        if let Some(queue) = self.queue.upgrade() {
            let sink: Arc<dyn DeliverySink> = self.clone();
            queue.settle(QueueCommand::ChannelClosed { sink });
        }
    }

    /// The other node keeps the session open without taking anything; false once closed.
    fn keep(&self) -> bool {
        let mut state = self.lock();
        state.last_seen = Some(Instant::now());
        !state.closed
    }

    /// What happened since the last poll, waiting up to [`POLL_WAIT`] for something; None once closed.
    async fn poll(&self) -> Option<Vec<SessionEvent>> {
        self.lock().last_seen = None;
        let answer = self.wait_for_events().await;
        self.lock().last_seen = Some(Instant::now());
        answer
    }

    async fn wait_for_events(&self) -> Option<Vec<SessionEvent>> {
        let deadline = Instant::now() + POLL_WAIT;
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                if !state.events.is_empty() || Instant::now() >= deadline {
                    state.bytes = 0;
                    let waiters = std::mem::take(&mut state.drained);
                    let events = std::mem::take(&mut state.events);
                    drop(state);
                    for waiter in waiters {
                        waiter.notify_one();
                    }
                    return Some(events);
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

/// Bytes a delivered message counts against the session's budget.
fn weight(msg: &QueuedMessage) -> usize {
    msg.message.body.len() + msg.message.properties_raw.len() + 64
}

impl DeliverySink for RemoteSink {
    fn deliver(
        &self,
        _queue: &Arc<QueueHandle>,
        consumer_id: u64,
        consumer_tag: &str,
        no_ack: bool,
        msg: &QueuedMessage,
        _credit_waiter: &Arc<Notify>,
    ) -> DeliverOutcome {
        let event = SessionEvent::Deliver {
            tag: consumer_tag.to_owned(),
            consumer: consumer_id,
            no_ack,
            message: WireQueued::from(msg),
        };
        match self.push(event, weight(msg)) {
            true => DeliverOutcome::Delivered,
            false => DeliverOutcome::Closed,
        }
    }

    fn deliver_get(
        &self,
        _queue: &Arc<QueueHandle>,
        no_ack: bool,
        msg: &QueuedMessage,
        message_count: u32,
    ) -> bool {
        let event = SessionEvent::GetOk {
            no_ack,
            message: WireQueued::from(msg),
            message_count,
        };
        self.push(event, weight(msg))
    }

    fn reply(&self, reply: QueueReply) {
        self.push(SessionEvent::Reply(WireReply::from(&reply)), 64);
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn over_budget(&self) -> bool {
        self.lock().bytes > SESSION_BUDGET
    }

    fn wake_when_drained(&self, waiter: Arc<Notify>) {
        let mut state = self.lock();
        if state.bytes <= SESSION_BUDGET || state.closed {
            drop(state);
            waiter.notify_one();
        } else {
            state.drained.push(waiter);
        }
    }

    fn forget_consumer(&self, _tag: &str) {}

    // The other node decides what its client is told: it is sent every cancel.
    fn wants_cancel_notify(&self) -> bool {
        true
    }

    fn connection_id(&self) -> u64 {
        self.id
    }
}

impl Sessions {
    /// Session `id` on `queue`, made at its first use; it closes itself once not polled for [`SESSION_IDLE`].
    fn session(self: &Arc<Self>, id: u64, queue: &Arc<QueueHandle>) -> Arc<RemoteSink> {
        if let Some(sink) = self.sessions.get(&id) {
            return sink.clone();
        }
        let sink = Arc::new(RemoteSink {
            id,
            queue: Arc::downgrade(queue),
            state: Mutex::default(),
            ready: Notify::new(),
        });
        let sink = self.sessions.entry(id).or_insert(sink).clone();
        tokio::spawn(watch_idle(Arc::downgrade(self), id));
        sink
    }

    fn close(&self, id: u64) {
        if let Some((_, sink)) = self.sessions.remove(&id) {
            sink.close();
        }
    }
}

/// Closes session `id` once it is not polled (or kept) for [`SESSION_IDLE`].
async fn watch_idle(sessions: std::sync::Weak<Sessions>, id: u64) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let Some(sink) = sessions.sessions.get(&id).map(|s| s.clone()) else {
            return;
        };
        let idle = sink
            .lock()
            .last_seen
            .is_some_and(|seen| seen.elapsed() > SESSION_IDLE);
        if idle {
            tracing::info!(
                session = id,
                "a remote session was not polled: closed, its deliveries requeued"
            );
            sessions.close(id);
            return;
        }
    }
}

fn refused(error: &warren_protocol::error::AmqpError) -> RemoteAnswer {
    RemoteAnswer::Refused(WireError::from(error))
}

/// Carries out `call` on queue `name` of `vhost`.
pub(crate) async fn serve(
    sessions: &Arc<Sessions>,
    broker: &dyn HomeBroker,
    vhost: &str,
    name: &str,
    call: RemoteCall,
) -> RemoteAnswer {
    if let RemoteCall::Delete {
        if_unused,
        if_empty,
    } = call
    {
        return match broker.delete(vhost, name, if_unused, if_empty).await {
            Ok(count) => RemoteAnswer::Count(count),
            Err(e) => refused(&e),
        };
    }
    let Some(queue) = broker.queue(vhost, name) else {
        return RemoteAnswer::NoQueue;
    };
    match call {
        RemoteCall::Publish(messages) => publish(broker, &queue, messages).await,
        RemoteCall::Consume {
            session,
            tag,
            no_ack,
            exclusive,
            prefetch,
            priority,
        } => {
            let sink = sessions.session(session, &queue);
            let id = broker.consumer_id();
            let consumer = QueueConsumer {
                id,
                tag: Arc::from(tag.as_str()),
                sink,
                no_ack,
                exclusive,
                prefetch,
                in_flight: 0,
                priority,
            };
            let (reply, answer) = oneshot::channel();
            let command = QueueCommand::Consume {
                consumer,
                send_ok: true,
                reply,
            };
            if !queue.send(command).await {
                return RemoteAnswer::NoQueue;
            }
            match answer.await {
                Ok(Ok(())) => RemoteAnswer::Consumed(id),
                Ok(Err(e)) => refused(&e),
                Err(_) => RemoteAnswer::NoQueue,
            }
        }
        RemoteCall::Cancel { session, tag } => {
            let sink: Arc<dyn DeliverySink> = sessions.session(session, &queue);
            let (reply, answer) = oneshot::channel();
            let command = QueueCommand::Cancel {
                sink,
                consumer_tag: Arc::from(tag.as_str()),
                send_ok: true,
                reply,
            };
            if queue.send(command).await {
                let _ = answer.await;
            }
            RemoteAnswer::Done
        }
        RemoteCall::Get { session, no_ack } => {
            let sink: Arc<dyn DeliverySink> = sessions.session(session, &queue);
            match queue.send(QueueCommand::Get { sink, no_ack }).await {
                true => RemoteAnswer::Done,
                false => RemoteAnswer::NoQueue,
            }
        }
        RemoteCall::Settle { deliveries, action } => {
            queue.settle(QueueCommand::Settle {
                deliveries,
                action: action.into(),
            });
            RemoteAnswer::Done
        }
        RemoteCall::Poll { session, take } => {
            let sink = sessions.sessions.get(&session).map(|s| s.clone());
            match sink {
                Some(sink) if !take => match sink.keep() {
                    true => RemoteAnswer::Events(Vec::new()),
                    false => RemoteAnswer::NoQueue,
                },
                Some(sink) => match sink.poll().await {
                    Some(events) => RemoteAnswer::Events(events),
                    None => RemoteAnswer::NoQueue,
                },
                // Closed here (idle, or this node restarted): the other node cancels its consumers.
                None => RemoteAnswer::NoQueue,
            }
        }
        RemoteCall::CloseSession { session } => {
            sessions.close(session);
            RemoteAnswer::Done
        }
        RemoteCall::Stats => match queue.stats().await {
            Some(stats) => RemoteAnswer::Stats {
                messages: stats.messages,
                consumers: stats.consumers,
            },
            None => RemoteAnswer::NoQueue,
        },
        RemoteCall::Inspect => match queue.inspect().await {
            Some(i) => RemoteAnswer::Inspection(WireInspection {
                ready: i.ready,
                unacked: i.unacked,
                ready_bytes: i.ready_bytes,
                consumers: i
                    .consumers
                    .iter()
                    .map(|c| {
                        (
                            c.tag.to_string(),
                            c.ack_required,
                            c.exclusive,
                            c.prefetch,
                            c.priority,
                        )
                    })
                    .collect(),
            }),
            None => RemoteAnswer::NoQueue,
        },
        RemoteCall::Purge => {
            let (reply, answer) = oneshot::channel();
            if !queue.send(QueueCommand::Purge { reply }).await {
                return RemoteAnswer::NoQueue;
            }
            match answer.await {
                Ok(count) => RemoteAnswer::Count(count),
                Err(_) => RemoteAnswer::NoQueue,
            }
        }
        // Answered above.
        RemoteCall::Delete { .. } => RemoteAnswer::NoQueue,
    }
}

/// Enqueues what another node publishes, stored first where persistent (as a local publish is): answered once
/// every message is settled.
async fn publish(
    broker: &dyn HomeBroker,
    queue: &Arc<QueueHandle>,
    messages: Vec<WireMessage>,
) -> RemoteAnswer {
    let tracker = ConfirmTracker::detached();
    let mut run = Vec::with_capacity(messages.len().min(MAX_RUN));
    for message in messages {
        let message = Arc::new(message.into_message());
        let confirm = tracker.begin();
        if message.persistent() && queue.spec.store_id.is_some() {
            broker.store_persistent(&message, queue, confirm.share());
        }
        run.push(Enqueue {
            message,
            confirm: Some(confirm),
        });
        if run.len() == MAX_RUN {
            queue
                .send(QueueCommand::Publish(std::mem::take(&mut run)))
                .await;
        }
    }
    if !run.is_empty() {
        queue.send(QueueCommand::Publish(run)).await;
    }
    RemoteAnswer::Published(tracker.settled().await)
}
