//! A classic queue of another node as this node's channels see it: a task serving the queue handle's inbox
//! ([`spawn`]) forwards each command to the home node ([`super::home`]) and each channel that consumes or gets
//! polls its session there, delivering what arrives to the channel as the queue would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;

use super::wire::{
    RemoteAnswer, RemoteCall, RemoteRequest, SessionEvent, WireMessage, WireReply, WireSettle,
};
use super::RemoteLink;
use crate::queue::sink::{same_sink, DeliverOutcome, DeliverySink, QueueReply};
use crate::queue::{
    ConsumerInspection, QueueCommand, QueueDeleted, QueueHandle, QueueInbox, QueueInspection,
    QueueStats,
};
use warren_protocol::error::AmqpError;

/// Failed polls in a row after which the home node is taken as gone and the session's consumers are cancelled.
const POLL_FAILURES: u32 = 3;

/// Serves `handle`'s inbox by forwarding to the queue's home node through `link`.
pub(crate) fn spawn(handle: &Arc<QueueHandle>, inbox: QueueInbox, link: Arc<RemoteLink>) {
    let proxy = Proxy {
        handle: Arc::downgrade(handle),
        shared: Arc::new(Shared {
            link,
            sessions: DashMap::new(),
            home_ids: DashMap::new(),
        }),
    };
    tokio::spawn(proxy.run(inbox));
}

/// What the proxy and its sessions' pollers share.
struct Shared {
    link: Arc<RemoteLink>,
    /// Sessions by their channel's sink (its data pointer).
    sessions: DashMap<usize, Arc<Session>>,
    /// Each local consumer's id on the home node, learnt from its deliveries: acks name it there.
    home_ids: DashMap<u64, u64>,
}

/// One channel of this node using the queue.
struct Session {
    id: u64,
    sink: Arc<dyn DeliverySink>,
    consumers: Mutex<HashMap<String, LocalConsumer>>,
    stopped: std::sync::atomic::AtomicBool,
    stop: Notify,
    /// Its poller runs: started once the home node has the session (after its first consume or get there).
    polling: std::sync::atomic::AtomicBool,
}

/// A consumer of the channel, as the proxy tracks it.
#[derive(Clone, Copy)]
struct LocalConsumer {
    /// Its id on this node.
    id: u64,
    /// Its client expects basic.consume-ok from the queue.
    consume_ok: bool,
    /// Its client expects basic.cancel-ok from the queue (set by a cancel).
    cancel_ok: bool,
}

impl Session {
    fn consumers(&self) -> MutexGuard<'_, HashMap<String, LocalConsumer>> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn halt(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop.notify_one();
    }

    fn halted(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The home node is gone: its consumers are cancelled as a deleted queue's are.
    fn cancel_consumers(&self) {
        let consumers: Vec<String> = self.consumers().drain().map(|(tag, _)| tag).collect();
        for tag in consumers {
            self.sink.forget_consumer(&tag);
            if self.sink.wants_cancel_notify() {
                self.sink.reply(QueueReply::Cancel {
                    tag: Arc::from(tag.as_str()),
                });
            }
        }
    }
}

fn sink_key(sink: &Arc<dyn DeliverySink>) -> usize {
    Arc::as_ptr(sink) as *const () as usize
}

struct Proxy {
    handle: Weak<QueueHandle>,
    shared: Arc<Shared>,
}

impl Shared {
    async fn call(&self, call: RemoteCall, timeout: Duration) -> Result<RemoteAnswer, AmqpError> {
        let request = RemoteRequest {
            vhost: self.link.vhost.clone(),
            queue: self.link.queue.clone(),
            call,
        };
        self.link.call(&request, timeout).await
    }
}

/// Messages (or settled deliveries) gathered into one call at most.
const MAX_FORWARD: usize = 4096;

/// Body bytes gathered into one publish call at most (past it the batch goes as it is).
const MAX_FORWARD_BYTES: usize = 8 << 20;

/// How long a call other than a poll may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a question (counts, what the management API shows) may take: a listing must not wait long for a home
/// node that is down.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a session whose channel holds its deliveries back is kept open at the home node (well within
/// [`SESSION_IDLE`](super::home::SESSION_IDLE)).
const KEEP_EVERY: Duration = Duration::from_secs(3);

impl Proxy {
    async fn run(self, mut inbox: QueueInbox) {
        // A command taken while gathering a batch, carried out next.
        let mut next: Option<QueueCommand> = None;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => tokio::select! {
                    biased;
                    Some(command) = inbox.settlements.recv() => command,
                    Some(command) = inbox.commands.recv() => command,
                    else => break,
                },
            };
            // One call for what waits behind it of the same kind: a call is a round trip (and, for publishes, a
            // wait for the home node's fsync), so a batch per call is what keeps a remote queue's rate up.
            let command = match command {
                QueueCommand::Publish(mut run) => {
                    let mut bytes: usize = run.iter().map(|e| e.message.body.len()).sum();
                    while run.len() < MAX_FORWARD && bytes < MAX_FORWARD_BYTES {
                        match inbox.commands.try_recv() {
                            Ok(QueueCommand::Publish(more)) => {
                                bytes += more.iter().map(|e| e.message.body.len()).sum::<usize>();
                                run.extend(more);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    QueueCommand::Publish(run)
                }
                QueueCommand::Settle {
                    mut deliveries,
                    action,
                } => {
                    while deliveries.len() < MAX_FORWARD {
                        match inbox.settlements.try_recv() {
                            Ok(QueueCommand::Settle {
                                deliveries: more,
                                action: same,
                            }) if same == action => deliveries.extend(more),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    QueueCommand::Settle { deliveries, action }
                }
                other => other,
            };
            if !self.apply(command).await {
                break;
            }
        }
        for session in self.shared.sessions.iter() {
            session.halt();
        }
    }

    /// Carries out one command; false once the queue is gone here.
    async fn apply(&self, command: QueueCommand) -> bool {
        match command {
            QueueCommand::Publish(run) => {
                let messages = run.iter().map(|e| WireMessage::from(&*e.message)).collect();
                let refused = self.published(messages).await;
                for (i, enqueue) in run.into_iter().enumerate() {
                    match (refused.get(i).copied().unwrap_or(true), enqueue.confirm) {
                        (true, Some(confirm)) => confirm.fail(),
                        (_, confirm) => drop(confirm),
                    }
                }
            }
            QueueCommand::PublishDeadLetters(run) => {
                let messages = run.iter().map(|e| WireMessage::from(&*e.message)).collect();
                let refused = self.published(messages).await;
                for (i, letter) in run.into_iter().enumerate() {
                    match refused.get(i).copied().unwrap_or(true) {
                        true => letter.share.refuse(),
                        false => drop(letter.share),
                    }
                }
            }
            // This node's copy never dead-letters: the home node's queue does.
            QueueCommand::DeadLettersSettled { .. } | QueueCommand::Reconfigure => {}
            QueueCommand::Consume {
                consumer,
                send_ok,
                reply,
            } => {
                let session = self.session(&consumer.sink);
                session.consumers().insert(
                    consumer.tag.to_string(),
                    LocalConsumer {
                        id: consumer.id,
                        consume_ok: send_ok,
                        cancel_ok: false,
                    },
                );
                let call = RemoteCall::Consume {
                    session: session.id,
                    tag: consumer.tag.to_string(),
                    no_ack: consumer.no_ack,
                    exclusive: consumer.exclusive,
                    prefetch: consumer.prefetch,
                    priority: consumer.priority,
                };
                let result = match self.shared.call(call, CALL_TIMEOUT).await {
                    Ok(RemoteAnswer::Consumed(home)) => {
                        self.shared.home_ids.insert(consumer.id, home);
                        self.start_polling(&session);
                        Ok(())
                    }
                    Ok(RemoteAnswer::Refused(e)) => Err(e.to_error()),
                    Ok(_) => Err(self.shared.link.no_queue()),
                    Err(e) => Err(e),
                };
                if result.is_err() {
                    session.consumers().remove(&*consumer.tag);
                }
                let _ = reply.send(result);
            }
            QueueCommand::Cancel {
                sink,
                consumer_tag,
                send_ok,
                reply,
            } => {
                let session = self
                    .shared
                    .sessions
                    .get(&sink_key(&sink))
                    .map(|s| s.clone());
                let known = session.as_ref().and_then(|s| {
                    let mut consumers = s.consumers();
                    let consumer = consumers.get_mut(&*consumer_tag)?;
                    consumer.cancel_ok = send_ok;
                    Some(consumer.id)
                });
                match (session, known) {
                    (Some(session), Some(_)) => {
                        let call = RemoteCall::Cancel {
                            session: session.id,
                            tag: consumer_tag.to_string(),
                        };
                        if self.shared.call(call, CALL_TIMEOUT).await.is_err() {
                            // The home node is gone: the consumer is too.
                            session.consumers().remove(&*consumer_tag);
                            if send_ok {
                                sink.reply(QueueReply::CancelOk { tag: consumer_tag });
                            }
                        }
                    }
                    _ if send_ok => sink.reply(QueueReply::CancelOk { tag: consumer_tag }),
                    _ => {}
                }
                let _ = reply.send(());
            }
            QueueCommand::Get { sink, no_ack } => {
                let session = self.session(&sink);
                let call = RemoteCall::Get {
                    session: session.id,
                    no_ack,
                };
                match self.shared.call(call, CALL_TIMEOUT).await {
                    // The answer comes with the session's events.
                    Ok(RemoteAnswer::Done) => self.start_polling(&session),
                    _ => sink.reply(QueueReply::GetEmpty),
                }
            }
            QueueCommand::Settle { deliveries, action } => {
                let deliveries = deliveries
                    .into_iter()
                    .map(|(seq, consumer)| {
                        let home = consumer
                            .and_then(|id| self.shared.home_ids.get(&id).map(|h| *h.value()));
                        (seq, home)
                    })
                    .collect();
                let call = RemoteCall::Settle {
                    deliveries,
                    action: WireSettle::from(action),
                };
                if let Err(error) = self.shared.call(call, CALL_TIMEOUT).await {
                    tracing::debug!(queue = %self.shared.link.queue, "settlement not forwarded: {}", error.text);
                }
            }
            QueueCommand::ChannelClosed { sink } => {
                if let Some((_, session)) = self.shared.sessions.remove(&sink_key(&sink)) {
                    session.halt();
                    let ids: Vec<u64> = session.consumers().values().map(|c| c.id).collect();
                    for id in ids {
                        self.shared.home_ids.remove(&id);
                    }
                    let call = RemoteCall::CloseSession {
                        session: session.id,
                    };
                    // Unanswered: the home node closes the session itself once it is not polled.
                    let _ = self.shared.call(call, CALL_TIMEOUT).await;
                }
            }
            QueueCommand::Stats { reply } => {
                let stats = match self.shared.call(RemoteCall::Stats, ASK_TIMEOUT).await {
                    Ok(RemoteAnswer::Stats {
                        messages,
                        consumers,
                    }) => QueueStats {
                        messages,
                        consumers,
                    },
                    _ => QueueStats::default(),
                };
                let _ = reply.send(stats);
            }
            QueueCommand::Inspect { reply } => {
                let inspection = match self.shared.call(RemoteCall::Inspect, ASK_TIMEOUT).await {
                    Ok(RemoteAnswer::Inspection(i)) => QueueInspection {
                        ready: i.ready,
                        unacked: i.unacked,
                        ready_bytes: i.ready_bytes,
                        consumers: i
                            .consumers
                            .into_iter()
                            .map(|(tag, ack_required, exclusive, prefetch, priority)| {
                                ConsumerInspection {
                                    tag: Arc::from(tag.as_str()),
                                    connection_id: 0,
                                    ack_required,
                                    exclusive,
                                    prefetch,
                                    priority,
                                }
                            })
                            .collect(),
                        dedup_keys: None,
                        replicas: None,
                        home: Some(self.shared.link.home.clone()),
                    },
                    _ => QueueInspection {
                        home: Some(self.shared.link.home.clone()),
                        ..QueueInspection::default()
                    },
                };
                let _ = reply.send(inspection);
            }
            QueueCommand::Purge { reply } => {
                let count = match self.shared.call(RemoteCall::Purge, CALL_TIMEOUT).await {
                    Ok(RemoteAnswer::Count(n)) => n,
                    _ => 0,
                };
                let _ = reply.send(count);
            }
            // queue.delete on a channel of this node: carried out by the home node, which removes the queue from
            // every node.
            QueueCommand::Delete {
                if_unused,
                if_empty,
                requester: Some(requester),
                reply,
            } => {
                // The requester's own consumers are cancelled after its delete-ok (see `QueueDeleted`).
                let mut after_reply = Vec::new();
                if let Some(session) = self.shared.sessions.get(&sink_key(&requester)) {
                    let mut consumers = session.consumers();
                    let tags: Vec<String> = consumers.keys().cloned().collect();
                    for tag in tags {
                        consumers.remove(&tag);
                        requester.forget_consumer(&tag);
                        if requester.wants_cancel_notify() {
                            after_reply.push(Arc::from(tag.as_str()));
                        }
                    }
                }
                let call = RemoteCall::Delete {
                    if_unused,
                    if_empty,
                };
                let result = match self.shared.call(call, CALL_TIMEOUT).await {
                    Ok(RemoteAnswer::Count(messages)) => Ok(QueueDeleted {
                        messages,
                        cancel_after_reply: after_reply,
                    }),
                    Ok(RemoteAnswer::Refused(e)) => Err(e.to_error()),
                    Ok(_) => Ok(QueueDeleted::default()),
                    Err(e) => Err(e),
                };
                let deleted = result.is_ok();
                let _ = reply.send(result);
                if deleted {
                    self.stop_sessions();
                    return false;
                }
            }
            // The queue is gone from the cluster: this node's consumers are cancelled, the task ends.
            QueueCommand::Delete { reply, .. } => {
                self.stop_sessions();
                let _ = reply.send(Ok(QueueDeleted::default()));
                return false;
            }
        }
        true
    }

    /// Stops every session, cancelling its consumers (the queue is gone).
    fn stop_sessions(&self) {
        for session in self.shared.sessions.iter() {
            session.halt();
            session.cancel_consumers();
        }
        self.shared.sessions.clear();
    }

    /// Publishes `messages` at the home node: whether each was refused (all are, when it cannot be reached).
    async fn published(&self, messages: Vec<WireMessage>) -> Vec<bool> {
        let count = messages.len();
        match self
            .shared
            .call(RemoteCall::Publish(messages), CALL_TIMEOUT)
            .await
        {
            Ok(RemoteAnswer::Published(refused)) => refused,
            // Deleted at home meanwhile: as a local queue deleted after routing, the message is gone.
            Ok(RemoteAnswer::NoQueue) => vec![false; count],
            _ => vec![true; count],
        }
    }

    /// The session of channel `sink`, made (and its poller started) at its first use.
    fn session(&self, sink: &Arc<dyn DeliverySink>) -> Arc<Session> {
        let key = sink_key(sink);
        if let Some(session) = self.shared.sessions.get(&key) {
            if same_sink(&session.sink, sink) {
                return session.clone();
            }
        }
        let session = Arc::new(Session {
            id: rand::random::<u64>(),
            sink: sink.clone(),
            consumers: Mutex::default(),
            stopped: Default::default(),
            stop: Notify::new(),
            polling: Default::default(),
        });
        self.shared.sessions.insert(key, session.clone());
        session
    }

    /// Starts `session`'s poller unless it runs: the home node has the session now.
    fn start_polling(&self, session: &Arc<Session>) {
        if session
            .polling
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(poll(
            self.handle.clone(),
            self.shared.clone(),
            session.clone(),
        ));
    }
}

/// Polls `session` at the home node and hands its channel what arrives, until the session stops or the home node
/// is gone.
async fn poll(handle: Weak<QueueHandle>, shared: Arc<Shared>, session: Arc<Session>) {
    let mut failures = 0;
    while !session.halted() {
        let call = RemoteCall::Poll {
            session: session.id,
            take: true,
        };
        let answer = tokio::select! {
            answer = shared.call(call, super::home::POLL_WAIT * 3) => answer,
            () = session.stop.notified() => break,
        };
        match answer {
            Ok(RemoteAnswer::Events(events)) => {
                failures = 0;
                let Some(queue) = handle.upgrade() else {
                    break;
                };
                for event in events {
                    if !hand_over(&queue, &shared, &session, event).await {
                        return;
                    }
                }
            }
            Ok(_) => {
                // The home node closed the session (it restarted, or the queue is gone).
                failures = POLL_FAILURES;
            }
            Err(_) => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if failures >= POLL_FAILURES {
            if !session.halted() {
                tracing::info!(queue = %shared.link.queue, home = %shared.link.home, "the queue's home node is gone: its consumers here are cancelled");
                session.cancel_consumers();
            }
            shared
                .sessions
                .remove_if(&sink_key(&session.sink), |_, s| Arc::ptr_eq(s, &session));
            break;
        }
    }
}

/// Hands `event` to the session's channel; false once the channel is closed.
async fn hand_over(
    queue: &Arc<QueueHandle>,
    shared: &Shared,
    session: &Session,
    event: SessionEvent,
) -> bool {
    let sink = &session.sink;
    match event {
        SessionEvent::Deliver {
            tag,
            consumer,
            no_ack,
            message,
        } => {
            let local = session.consumers().get(&tag).copied();
            let Some(local) = local else {
                // Cancelled here meanwhile: back to the queue.
                if !no_ack {
                    let call = RemoteCall::Settle {
                        deliveries: vec![(message.seq, Some(consumer))],
                        action: WireSettle::Requeue,
                    };
                    let _ = shared.call(call, CALL_TIMEOUT).await;
                }
                return true;
            };
            shared.home_ids.insert(local.id, consumer);
            let message = message.into_queued();
            let credit = Arc::new(Notify::new());
            let mut kept = tokio::time::Instant::now();
            loop {
                // Held back by the channel (a slow client, a consumer holding its prefetch): the session at the
                // home node is kept open meanwhile, or it would be closed as abandoned.
                if kept.elapsed() > KEEP_EVERY {
                    let call = RemoteCall::Poll {
                        session: session.id,
                        take: false,
                    };
                    let _ = shared.call(call, CALL_TIMEOUT).await;
                    kept = tokio::time::Instant::now();
                }
                if session.halted() {
                    return false;
                }
                if sink.over_budget() {
                    let drained = Arc::new(Notify::new());
                    sink.wake_when_drained(drained.clone());
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), drained.notified()).await;
                    continue;
                }
                match sink.deliver(queue, local.id, &tag, no_ack, &message, &credit) {
                    DeliverOutcome::Delivered => return true,
                    DeliverOutcome::NoChannelCredit => {
                        let _ = tokio::time::timeout(Duration::from_millis(200), credit.notified())
                            .await;
                    }
                    DeliverOutcome::Closed => return false,
                }
            }
        }
        SessionEvent::GetOk {
            no_ack,
            message,
            message_count,
        } => sink.deliver_get(queue, no_ack, &message.into_queued(), message_count),
        SessionEvent::Reply(reply) => {
            match reply {
                WireReply::ConsumeOk(tag) => {
                    let wanted = session.consumers().get(&tag).is_some_and(|c| c.consume_ok);
                    if wanted {
                        sink.reply(QueueReply::ConsumeOk {
                            tag: Arc::from(tag.as_str()),
                        });
                    }
                }
                WireReply::CancelOk(tag) => {
                    let removed = session.consumers().remove(&tag);
                    // Its id stays known: the channel may still ack what it was delivered.
                    if let Some(consumer) = removed {
                        if consumer.cancel_ok {
                            sink.reply(QueueReply::CancelOk {
                                tag: Arc::from(tag.as_str()),
                            });
                        }
                    }
                }
                WireReply::GetEmpty => sink.reply(QueueReply::GetEmpty),
                WireReply::Cancel(tag) => {
                    if session.consumers().remove(&tag).is_some() {
                        sink.forget_consumer(&tag);
                        if sink.wants_cancel_notify() {
                            sink.reply(QueueReply::Cancel {
                                tag: Arc::from(tag.as_str()),
                            });
                        }
                    }
                }
            }
            !sink.is_closed()
        }
    }
}
