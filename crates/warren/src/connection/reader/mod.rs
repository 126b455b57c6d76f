//! The reader task: reads the socket, splits frames and dispatches them to the connection or to a channel state
//! machine. Soft errors close a channel; hard errors send connection.close, after which only close-ok (or close)
//! is looked at. A peer silent for two heartbeat intervals is dropped. Here: the read loop with its adaptive buffer
//! and the fast path for publishes and content; frames that may wait are handled in `dispatch`.

mod alarm;
mod dispatch;

use crate::event::{self, Event};
use crate::exchange::stats::PendingExchangeCounts;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;

use super::channels::{ChannelTable, Slot};
use super::handshake::Negotiated;
use super::transport::TransportRead;
use crate::broker::Broker;
use crate::channel::publish_runs::PublishRuns;
use crate::channel::Publisher;
use crate::channel::{runtime, Channel, ChannelContext, ChannelEffects, COPY_BODY_BELOW};
use crate::metrics::counters::LocalCounts;
use crate::queue::QueueHandle;
use crate::registry::{ChannelCount, CloseSignal, Traffic};
use crate::session::ConnectionShared;
use crate::vhost::Vhost;
use warren_protocol::error::AmqpError;
use warren_protocol::frame::FrameHead;
use warren_protocol::{parse_publish, FrameKind, FramePayload, FrameSplitter, RawFrame};

/// Bytes reserved per read: from the least, doubled after each read that fills the space up to the most, halved
/// after one that uses less than a quarter. A trickle of small messages then reads into a small buffer (a fresh
/// 64 KiB buffer per message cost page faults on every delivery), a flood into a large one. The buffer is released
/// when it empties, so idle connections stay small.
const READ_SIZE_MIN: usize = 4 * 1024;
const READ_SIZE_MAX: usize = 64 * 1024;
/// How long to wait for connection.close-ok after sending connection.close.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);
/// The most bytes dropped after a framing error while waiting for close-ok. A client that was writing a large
/// frame when the 501 went out is blocked in that write until the broker reads it (the socket buffers hold a few
/// MiB); reading its bytes lets the write finish, so the client reads the close instead of a broken pipe. This
/// covers any frame a client writes at once under the default 128 MiB message size cut into frames, and dropping
/// it takes milliseconds; a peer that sends more is cut off.
const DISCARD_LIMIT: u64 = 32 * 1024 * 1024;

/// Whether the reader goes on after a frame, or the connection is over (close-ok sent or received).
enum ReaderNext {
    /// Read and handle the next frame.
    Continue,
    /// The connection is closed: stop reading and clean up.
    Stop,
    /// The client sent connection.close: close its channels and delete its exclusive queues, then answer
    /// close-ok and stop. In this order, a client that declares passively right after its close-ok (another of
    /// its connections) finds the exclusive queues gone rather than locked (RabbitMQ's reader also closes the
    /// channels before close-ok, and its exclusive queues go a moment later).
    CloseOkAfterCleanup,
}

/// What handling a frame without waiting came to.
enum FrameOutcome {
    /// Handled at once.
    Done(ReaderNext),
    /// The rest needs awaiting (after the publish runs are flushed).
    Later(Later),
}

/// The part of a frame's handling that has to wait, left by [`Reader::handle_frame_now`].
enum Later {
    /// Any method but a publish on an open channel.
    Frame(RawFrame),
    /// A content frame or publish left effects to execute (a published message waiting for room in a queue or the
    /// store, a basic.return; they wait in [`Reader::pending_effects`]), or failed the channel, which closes it
    /// after those effects.
    Channel(u16, Result<(), AmqpError>),
}

/// Bytes the reader drops after a framing error, while it waits for connection.close-ok (see [`DISCARD_LIMIT`]).
struct Discard {
    /// Bytes of the refused frame still to drop before the next frame starts; `u64::MAX` when the peer lost frame
    /// sync (a bad frame-end octet) and every byte is dropped until the close-ok timeout.
    skip: u64,
    /// Bytes dropped so far.
    dropped: u64,
}

/// The reader task's state: the connection, its channels, and whether connection.close was sent.
struct Reader {
    conn: ConnectionState,
    /// How many channels may be in use at once (negotiated; it does not bound the channel numbers).
    channel_max: u16,
    channels: ChannelTable,
    /// Set once the broker has sent connection.close.
    closing: bool,
    /// When the close-ok for the broker's connection.close is due: the close is sent, so a peer that keeps
    /// sending other frames does not keep the connection open past it.
    close_deadline: Instant,
    /// Set after a framing error: what is still to be dropped before frames can be read again.
    discard: Option<Discard>,
    /// When the consumer timeouts are checked next (see [`Reader::check_consumer_timeouts`]).
    next_timeout_check: Instant,
    /// The client takes `connection.blocked` (its `connection.blocked` capability).
    blocked_notify: bool,
    /// A publish arrived while a resource alarm was raised: the connection is blocked before it reads again.
    publish_under_alarm: bool,
    /// What the last frame handled without waiting left to execute; empty between frames. Kept here rather than
    /// built per frame: constructing, returning and dropping one per frame cost about 1% of the broker's CPU at
    /// full publish rate (profile of scenario 1).
    pending_effects: ChannelEffects,
    /// Where its socket reads are counted.
    traffic: Arc<Traffic>,
}

/// What the reader holds of its connection apart from the channels, kept apart so that a channel taken from the
/// table and the context it runs in can be borrowed together.
struct ConnectionState {
    broker: Arc<Broker>,
    info: Arc<ConnectionShared>,
    vhost: Arc<Vhost>,
    exclusive_queues: Vec<Arc<QueueHandle>>,
    publish_runs: PublishRuns,
    /// A copy of the close requests the read loop watches, for waits on held queues to end on.
    close: Option<CloseSignal>,
    /// What its channels counted for the node's metrics since the last flush ([`Reader::flush_counts`]).
    counts: LocalCounts,
    /// What its channels published per exchange since the last flush.
    exchange_counts: PendingExchangeCounts,
}

impl ConnectionState {
    fn channel_context(&mut self) -> ChannelContext<'_> {
        ChannelContext {
            broker: &self.broker,
            vhost: &self.vhost,
            conn: &self.info,
            exclusive_queues: &mut self.exclusive_queues,
            publish_runs: &mut self.publish_runs,
            close: self.close.as_ref(),
            counts: &mut self.counts,
            exchange_counts: &mut self.exchange_counts,
        }
    }

    /// Gives a channel just opened its pid and reports it (`channel.created`), when the event exchange is on.
    fn channel_opened(&self, ch: &mut Channel) {
        let events = &self.broker.events;
        if !events.is_on() {
            return;
        }
        let (node, info) = (self.broker.config.server.cluster_name.as_str(), &self.info);
        let connection = event::connection_pid(node, info.id);
        let pid = event::channel_pid(node, info.id, ch.id, events.next_channel_serial());
        events.emit(|| {
            let vhost = &self.vhost.name;
            Event::channel_created(&pid, &connection, &info.name, ch.id, &info.user, vhost)
        });
        ch.event_pid = Some(Arc::from(pid));
    }

    /// Shuts a channel down and executes what that takes: settlements, which no queue refuses. Reports its
    /// consumers' end and its own (`consumer.deleted`, `channel.closed`) when the event exchange is on.
    async fn shut_down(&mut self, ch: &mut Channel) {
        if let Some(pid) = ch.event_pid.clone() {
            let events = &self.broker.events;
            let (vhost, user) = (&self.vhost.name, &self.info.user);
            for (tag, queue) in ch.deliveries.consumers() {
                events.emit(|| Event::consumer_deleted(vhost, queue.name(), &tag, &pid, user));
            }
            events.emit(|| Event::channel_closed(&pid, user));
        }
        let mut effects = ChannelEffects::default();
        ch.shutdown(&mut effects);
        let _ = runtime::execute(ch, &mut self.channel_context(), &mut effects).await;
    }
}

/// What ties the reader to the broker's registry of live connections.
pub(crate) struct Live {
    /// Kept equal to the number of open channels.
    pub(crate) channels: ChannelCount,
    /// Requests to close the connection (management API, shutdown); None when nobody can ask.
    pub(crate) close: Option<CloseSignal>,
    /// Where its socket reads are counted.
    pub(crate) traffic: Arc<Traffic>,
}

/// Reads and handles frames until the connection ends, then closes its channels.
pub(crate) async fn run<R: TransportRead>(
    broker: Arc<Broker>,
    info: Arc<ConnectionShared>,
    negotiated: Negotiated,
    live: Live,
    read: R,
    buf: BytesMut,
) {
    let splitter = FrameSplitter::new(negotiated.frame_max);
    let idle_limit = (negotiated.heartbeat > 0)
        .then(|| Duration::from_secs(2 * u64::from(negotiated.heartbeat)));
    let mut reader = Reader {
        conn: ConnectionState {
            broker,
            info,
            vhost: negotiated.vhost,
            exclusive_queues: Vec::new(),
            publish_runs: PublishRuns::default(),
            close: live.close.clone(),
            counts: LocalCounts::default(),
            exchange_counts: PendingExchangeCounts::default(),
        },
        channel_max: negotiated.channel_max,
        channels: ChannelTable::new(live.channels),
        closing: false,
        close_deadline: Instant::now(),
        discard: None,
        next_timeout_check: Instant::now(),
        blocked_notify: negotiated.connection_blocked,
        publish_under_alarm: false,
        pending_effects: ChannelEffects::default(),
        traffic: live.traffic,
    };
    let reason = reader
        .read_loop(
            read,
            buf,
            splitter,
            idle_limit,
            negotiated.heartbeat,
            live.close,
        )
        .await;
    // What the client published before it went is still enqueued, as RabbitMQ does.
    reader.flush_publish_runs().await;
    tracing::info!(peer = %reader.conn.info.peer, "closing AMQP connection {} (user '{}'): {reason}", reader.conn.info.peer, reader.conn.info.user);
    reader.cleanup().await;
    reader.flush_counts();
}

impl Reader {
    async fn read_loop<R: TransportRead>(
        &mut self,
        mut read: R,
        mut buf: BytesMut,
        splitter: FrameSplitter,
        idle_limit: Option<Duration>,
        heartbeat: u16,
        mut close_signal: Option<CloseSignal>,
    ) -> String {
        let mut read_size = READ_SIZE_MIN;
        // When the peer was last heard from: its silence is measured from here (heartbeats).
        let mut last_read = Instant::now();
        let mut woken_by_timer = false;
        // The reader's timers (heartbeat silence, close-ok, consumer timeouts) share one timer for the
        // connection's life, re-armed only when it fires or a deadline moves earlier: a wait for bytes registers
        // no timer of its own. It may fire early (the peer was heard since); then it is re-armed.
        let mut armed = self.wake_deadline(last_read, idle_limit);
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        // Watched for the connection's life, not registered anew per wait.
        let info = self.conn.info.clone();
        let outbound_closed = info.outbound.closed();
        tokio::pin!(outbound_closed);
        loop {
            // Frames are handled where they lie in the buffer; `consumed` bytes of it are done with.
            let mut consumed = 0;
            loop {
                if let Some(discard) = &mut self.discard {
                    let dropped = discard.skip.min((buf.len() - consumed) as u64);
                    discard.skip -= dropped;
                    discard.dropped += dropped;
                    consumed += dropped as usize;
                    if discard.dropped > DISCARD_LIMIT {
                        return format!(
                            "dropped {DISCARD_LIMIT} bytes after a frame error without seeing connection.close-ok"
                        );
                    }
                    if discard.skip > 0 {
                        buf.advance(consumed);
                        break;
                    }
                    // The refused frame is behind us: frames can be read again, and close-ok looked for.
                    self.discard = None;
                }
                let head = match splitter.peek(&buf[consumed..]) {
                    Ok(Some(head)) => head,
                    Ok(None) => {
                        buf.advance(consumed);
                        splitter.reserve_partial(&mut buf);
                        self.flush_publish_runs().await;
                        break;
                    }
                    Err(error) => {
                        // RabbitMQ sends the close and then stops reading for a while before it drops the socket;
                        // a client blocked writing the refused frame then sees a broken pipe rather than the
                        // close. Warren reads on, dropping the refused frame (or everything, when frame sync is
                        // lost), and still looks for close-ok until the close-ok timeout.
                        let skip = splitter
                            .refused_frame_len(&buf[consumed..])
                            .unwrap_or(u64::MAX);
                        self.close_connection(error);
                        let dropped = self.discard.take().map_or(0, |d| d.dropped);
                        self.discard = Some(Discard { skip, dropped });
                        continue;
                    }
                };
                let frame_outcome = if head.kind == FrameKind::Body && head.size >= COPY_BODY_BELOW
                {
                    // A large body stays a zero-copy slice of the buffer: take it out.
                    buf.advance(consumed);
                    consumed = 0;
                    let mut frame = buf.split_to(head.total());
                    frame.advance(7);
                    frame.truncate(head.size);
                    self.handle_frame_now(head, FramePayload::Owned(frame.freeze()))
                } else {
                    let payload = head.payload(&buf[consumed..]);
                    consumed += head.total();
                    self.handle_frame_now(head, FramePayload::Borrowed(payload))
                };
                let next = match frame_outcome {
                    FrameOutcome::Done(next) => next,
                    FrameOutcome::Later(later) => self.finish(later).await,
                };
                match next {
                    ReaderNext::Continue => {}
                    ReaderNext::Stop => return "client closed the connection".into(),
                    ReaderNext::CloseOkAfterCleanup => {
                        self.cleanup().await;
                        self.write_close_ok();
                        return "client closed the connection".into();
                    }
                }
            }
            if buf.is_empty() && buf.capacity() > 0 {
                buf = BytesMut::new();
            }
            if std::mem::take(&mut self.publish_under_alarm) {
                if let Some(request) = self.wait_out_alarms(&mut close_signal).await {
                    self.close_connection(AmqpError::new(request.code, request.detail));
                }
                // Blocked, the connection was not read: its silence is not the peer's.
                last_read = Instant::now();
            }
            // The peer's silence counts from the last read (or the end of a wait on a held queue), not from a
            // wake-up of the timer.
            if !std::mem::take(&mut woken_by_timer) {
                last_read = Instant::now();
                if last_read >= self.next_timeout_check {
                    // Also here: a connection whose socket always has bytes never reaches the timer branch.
                    self.check_consumer_timeouts().await;
                }
            }
            let due = self.wake_deadline(last_read, idle_limit);
            if due < armed {
                armed = due;
                timer.as_mut().reset(armed);
            }
            let readable = async {
                // Reserved only once bytes are waiting: an idle connection holds no read buffer.
                std::future::poll_fn(|cx| read.poll_read_ready(cx)).await?;
                buf.reserve(read_size.max(buf.len()));
                let spare = buf.capacity() - buf.len();
                read.read_buf(&mut buf).await.map(|n| (n, spare))
            };
            let close = close_signal.as_mut().filter(|_| !self.closing);
            let close_requested = async {
                match close {
                    Some(signal) => signal.requested().await,
                    None => std::future::pending().await,
                }
            };
            // Biased towards the read: while bytes keep arriving nothing else is even polled, so watching for
            // the rest costs nothing on a busy connection.
            let outcome = tokio::select! {
                biased;
                read = readable => read,
                request = close_requested => {
                    // Then, as for any broker-initiated close, only close-ok (or close) is looked at.
                    self.close_connection(AmqpError::new(request.code, request.detail));
                    continue;
                }
                _ = &mut outbound_closed => {
                    return "socket write failed or timed out".into();
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if self.closing {
                        if now >= self.close_deadline {
                            return "connection.close-ok not received in time".into();
                        }
                    } else {
                        if idle_limit.is_some_and(|limit| now >= last_read + limit) {
                            tracing::warn!(peer = %self.conn.info.peer, "missed heartbeats from client, timeout: {heartbeat}s");
                            return format!("missed heartbeats from client, timeout: {heartbeat}s");
                        }
                        if now >= self.next_timeout_check {
                            self.check_consumer_timeouts().await;
                        }
                    }
                    armed = self.wake_deadline(last_read, idle_limit);
                    timer.as_mut().reset(armed);
                    woken_by_timer = true;
                    continue;
                }
            };
            if let Ok((n, _)) = &outcome {
                self.traffic.received(*n as u64);
            }
            match outcome {
                Ok((0, _)) => return "client unexpectedly closed TCP connection".into(),
                Ok((n, spare)) if n == spare => {
                    read_size = (read_size * 2).min(READ_SIZE_MAX);
                }
                Ok((n, _)) if n < read_size / 4 => {
                    read_size = (read_size / 2).max(READ_SIZE_MIN);
                }
                Ok(_) => {}
                Err(error) => return format!("socket error: {error}"),
            }
            if self.conn.info.outbound.is_closed() && !self.closing {
                return "socket write failed".into();
            }
        }
    }

    /// When the reader must wake on its own: the close-ok deadline while closing; otherwise the next consumer
    /// timeout check or the end of the peer's allowed silence, whichever comes first.
    fn wake_deadline(&self, last_read: Instant, idle_limit: Option<Duration>) -> Instant {
        if self.closing {
            return self.close_deadline;
        }
        match idle_limit {
            Some(limit) => self.next_timeout_check.min(last_read + limit),
            None => self.next_timeout_check,
        }
    }

    /// Handles what needs no waiting, which is everything a publisher sends while its queues keep up: basic.publish
    /// and content frames on open channels, and heartbeats.
    fn handle_frame_now(&mut self, head: FrameHead, payload: FramePayload<'_>) -> FrameOutcome {
        let id = head.channel;
        let owned = |payload: FramePayload<'_>| RawFrame {
            kind: head.kind,
            channel: id,
            payload: payload.into_bytes(),
        };
        if self.closing {
            return FrameOutcome::Done(self.while_closing(owned(payload)));
        }
        if id == 0 {
            return FrameOutcome::Later(Later::Frame(owned(payload)));
        }
        let Some(Slot::Open(ch)) = self.channels.get_mut(id) else {
            return FrameOutcome::Later(Later::Frame(owned(payload)));
        };
        let mut ctx = self.conn.channel_context();
        let effects = &mut self.pending_effects;
        let result = match head.kind {
            FrameKind::Header | FrameKind::Body => {
                ch.handle_content(&mut ctx, head.kind, payload, effects)
            }
            FrameKind::Method => match parse_publish(payload.as_slice()) {
                Some(publish) => {
                    if ctx.broker.alarms.raised() {
                        self.publish_under_alarm = true;
                    }
                    ch.handle_publish(&ctx, publish)
                }
                None => return FrameOutcome::Later(Later::Frame(owned(payload))),
            },
            FrameKind::Heartbeat => return FrameOutcome::Later(Later::Frame(owned(payload))),
        };
        if result.is_ok() && effects.is_empty() {
            return FrameOutcome::Done(ReaderNext::Continue);
        }
        FrameOutcome::Later(Later::Channel(id, result))
    }

    /// Closes, with RabbitMQ's 406, each channel whose oldest unacknowledged delivery is older than its consumer
    /// timeout (its messages are requeued by the close); under a queue's `cancel-consumer` action, requeues that
    /// delivery and cancels its consumer instead. Runs about once a second, or four times per node-wide timeout
    /// when that is shorter.
    async fn check_consumer_timeouts(&mut self) {
        let default = self.conn.broker.config.limits.consumer_timeout;
        let now = Instant::now();
        let every = default.map_or(Duration::from_secs(1), |t| {
            (t / 4).min(Duration::from_secs(1))
        });
        self.next_timeout_check = now + every.max(Duration::from_millis(10));
        let mut overdue = Vec::new();
        for id in self.channels.open_ids() {
            if let Some(Slot::Open(ch)) = self.channels.get_mut(id) {
                if let Some(late) = ch.deliveries.overdue(now.into_std(), default) {
                    overdue.push((id, late, ch.deliveries.clone()));
                }
            }
        }
        for (id, late, deliveries) in overdue {
            if let Some(cancel) = late.cancel {
                crate::channel::consumer_timeout::cancel_late_consumer(&deliveries, cancel).await;
                continue;
            }
            let timeout = late.timeout;
            let error = AmqpError::precondition(format!(
                "delivery acknowledgement on channel {id} timed out. Timeout value used: {} ms. This timeout value can be configured, see consumers doc guide to learn more",
                timeout.as_millis()
            ));
            if let Err(error) = self.channel_failed(id, error).await {
                self.close_connection(error);
            }
        }
    }

    /// Moves what the channels counted into the node's counters. Called wherever the publish runs are flushed:
    /// once per read of the socket at full rate (a 64 KiB read holds hundreds of small publishes), so the
    /// counters cost a few atomic adds per read, and a scrape sees every publish the reader has handled before it
    /// waits for more bytes.
    fn flush_counts(&mut self) {
        let (node, key) = (&self.conn.broker.metrics.counters, self.conn.info.id);
        self.conn
            .counts
            .flush_to(&[node, &self.conn.vhost.counters], key);
        let vhost = &self.conn.vhost;
        self.conn
            .exchange_counts
            .drain(|name, published_in, published_out| {
                vhost.count_exchange_publishes(name, published_in, published_out);
            });
        self.channels.churn.flush(node, key);
    }

    /// Hands routed messages to their queues, waiting for room; see `channel::publish_runs` for when this must happen.
    async fn flush_publish_runs(&mut self) {
        self.flush_counts();
        if !self.conn.publish_runs.is_empty() {
            let backlog = self.conn.publish_runs.flush();
            let publisher = Publisher {
                connection: self.conn.info.id,
                close: self.conn.close.as_ref(),
            };
            backlog.wait(&self.conn.broker, publisher).await;
        }
    }

    async fn finish(&mut self, later: Later) -> ReaderNext {
        self.flush_publish_runs().await;
        match later {
            Later::Frame(frame) => self.handle_frame(frame).await,
            Later::Channel(id, result) => {
                let effects = std::mem::take(&mut self.pending_effects);
                match self.channel_effects(id, effects, result).await {
                    Ok(next) => next,
                    Err(error) => {
                        self.close_connection(error);
                        ReaderNext::Continue
                    }
                }
            }
        }
    }
}
