//! Publisher confirms. Each publish on a confirm channel gets a sequence number and a [`ConfirmRef`]; the reader
//! hands a share of it to every queue the message is routed to (and, for persistent messages, the store holds one
//! until the fsync that covers it). The publish is settled when the last share is dropped. Acks are emitted in
//! sequence order by the connection's writer just before it writes, so everything settled since the last write
//! goes out as one `basic.ack multiple=true`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::ConnectionShared;
use warren_protocol::content::put_confirm;

/// One publish awaiting settlement.
#[derive(Debug)]
struct Pending {
    shares: u32,
    failed: bool,
}

/// The tracker's sequence, behind its lock.
#[derive(Debug, Default)]
struct ConfirmState {
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// Set when a settlement may let the front of `pending` go; cleared by `flush`.
    dirty: bool,
    closed: bool,
    /// When the oldest publish not yet acked began waiting, as far as one clock read per ack batch tells: set by
    /// the first `begin` after a flush, and to the flush's time when publishes are still pending after it. The
    /// latency histogram takes one sample per batch from it instead of a clock read per message.
    batch_started: Option<Instant>,
    /// Publishes acked so far (the channel's `confirm` count).
    acked: u64,
}

/// What one [`ConfirmTracker::flush`] emitted, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConfirmFlush {
    /// Publishes acked (not nacked).
    pub(crate) acked: u64,
    /// How long the oldest of them waited, when any was settled.
    pub(crate) oldest_wait: Option<Duration>,
}

/// Where a tracker's settlements go.
enum SettleTarget {
    /// A channel's acks and nacks, written by its connection's writer.
    Connection(Arc<ConnectionShared>),
    /// Nowhere but a waiter (a publish another node forwarded, answered once settled): notified at every
    /// settlement; see [`ConfirmTracker::detached`].
    Waiter(Arc<tokio::sync::Notify>),
}

/// The confirm sequence of one channel.
pub(crate) struct ConfirmTracker {
    target: SettleTarget,
    channel: u16,
    state: Mutex<ConfirmState>,
}

impl ConfirmTracker {
    /// The tracker of a channel that entered confirm mode; its acks go out on `channel` of `conn`.
    pub(crate) fn new(conn: Arc<ConnectionShared>, channel: u16) -> Arc<ConfirmTracker> {
        Arc::new(ConfirmTracker {
            target: SettleTarget::Connection(conn),
            channel,
            state: Mutex::new(ConfirmState {
                next_seq: 1,
                ..ConfirmState::default()
            }),
        })
    }

    /// A tracker whose settlements no client is sent: [`ConfirmTracker::settled`] waits for them instead. The home
    /// node of a classic queue publishes what another node forwards with one, to answer once the messages are
    /// enqueued (and on disk where persistent).
    pub(crate) fn detached() -> Arc<ConfirmTracker> {
        Arc::new(ConfirmTracker {
            target: SettleTarget::Waiter(Arc::new(tokio::sync::Notify::new())),
            channel: 0,
            state: Mutex::new(ConfirmState {
                next_seq: 1,
                ..ConfirmState::default()
            }),
        })
    }

    /// Of a [`ConfirmTracker::detached`] tracker: waits until every publish begun is settled, then forgets them;
    /// whether each, in the order begun, failed (is to be nacked). Of a channel's tracker: what is settled now.
    pub(crate) async fn settled(&self) -> Vec<bool> {
        loop {
            let notified = match &self.target {
                SettleTarget::Waiter(waiter) => Some(waiter.notified()),
                SettleTarget::Connection(_) => None,
            };
            {
                let mut state = self.lock();
                if notified.is_none() || state.pending.values().all(|p| p.shares == 0) {
                    let pending = std::mem::take(&mut state.pending);
                    return pending.into_values().map(|p| p.failed).collect();
                }
            }
            if let Some(notified) = notified {
                notified.await;
            }
        }
    }

    /// Publishes acked to the client so far.
    pub(crate) fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// Publishes not yet confirmed (acked or nacked to the client).
    pub(crate) fn unconfirmed(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> MutexGuard<'_, ConfirmState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the next publish; it is settled once the returned ref and every share of it are dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> ConfirmRef {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        if state.batch_started.is_none() {
            state.batch_started = Some(Instant::now());
        }
        state.pending.insert(
            seq,
            Pending {
                shares: 1,
                failed: false,
            },
        );
        ConfirmRef {
            tracker: self.clone(),
            seq,
        }
    }

    fn share(&self, seq: u64) {
        if let Some(p) = self.lock().pending.get_mut(&seq) {
            p.shares += 1;
        }
    }

    fn fail(&self, seq: u64) {
        if let Some(p) = self.lock().pending.get_mut(&seq) {
            p.failed = true;
        }
    }

    fn release(self: &Arc<Self>, seq: u64) {
        let mut state = self.lock();
        let Some(p) = state.pending.get_mut(&seq) else {
            return;
        };
        p.shares -= 1;
        if p.shares > 0 {
            return;
        }
        let conn = match &self.target {
            SettleTarget::Connection(conn) => conn,
            SettleTarget::Waiter(waiter) => return wake_waiter(waiter),
        };
        let first = state.pending.keys().next().copied();
        if first == Some(seq) && !state.dirty {
            state.dirty = true;
            drop(state);
            conn.schedule_confirm_flush(self.clone());
        }
    }

    /// Writes acks and nacks for the settled publishes at the front of the sequence, coalesced into runs.
    pub(crate) fn flush(&self) -> ConfirmFlush {
        let mut out = BytesMut::new();
        let mut flushed = ConfirmFlush::default();
        {
            let mut state = self.lock();
            state.dirty = false;
            if state.closed {
                return flushed;
            }
            let mut settled = 0;
            let mut run: Option<(u64, u64, bool)> = None; // (first, last, failed)
            while let Some(entry) = state.pending.first_entry() {
                if entry.get().shares > 0 {
                    break;
                }
                let seq = *entry.key();
                let failed = entry.get().failed;
                entry.remove();
                settled += 1;
                if !failed {
                    flushed.acked += 1;
                }
                run = match run {
                    Some((first, _, f)) if f == failed => Some((first, seq, f)),
                    Some((first, last, f)) => {
                        put_confirm(&mut out, self.channel, last, last > first, !f);
                        Some((seq, seq, failed))
                    }
                    None => Some((seq, seq, failed)),
                };
            }
            if let Some((first, last, failed)) = run {
                put_confirm(&mut out, self.channel, last, last > first, !failed);
            }
            state.acked += flushed.acked;
            if settled > 0 {
                let now = Instant::now();
                flushed.oldest_wait = state
                    .batch_started
                    .map(|start| now.saturating_duration_since(start));
                state.batch_started = (!state.pending.is_empty()).then_some(now);
            }
        }
        if let (false, SettleTarget::Connection(conn)) = (out.is_empty(), &self.target) {
            conn.outbound.write(|buf| buf.extend_from_slice(&out));
        }
        flushed
    }

    /// The channel closed: nothing more is emitted (the channel number may be reused by a new channel).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.pending.clear();
    }

    /// Publishes started but not yet confirmed.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> usize {
        self.lock().pending.len()
    }
}

/// Wakes a detached tracker's waiter: out of line, so that a channel's settlements (the hot path) stay as small as
/// they were before detached trackers existed.
#[cold]
#[inline(never)]
fn wake_waiter(waiter: &tokio::sync::Notify) {
    waiter.notify_one();
}

/// One share in the settlement of a publish; dropping the last share settles it.
pub(crate) struct ConfirmRef {
    tracker: Arc<ConfirmTracker>,
    seq: u64,
}

impl ConfirmRef {
    /// Another share, held by one more destination.
    pub(crate) fn share(&self) -> ConfirmRef {
        self.tracker.share(self.seq);
        ConfirmRef {
            tracker: self.tracker.clone(),
            seq: self.seq,
        }
    }

    /// Marks the publish as failed: it is nacked instead of acked when settled.
    pub(crate) fn fail(self) {
        self.tracker.fail(self.seq);
    }
}

impl Drop for ConfirmRef {
    fn drop(&mut self) {
        self.tracker.release(self.seq);
    }
}

impl std::fmt::Debug for ConfirmRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfirmRef({})", self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::frame::FrameSplitter;
    use warren_protocol::{basic, decode_method, AMQPClass};

    fn emitted(conn: &ConnectionShared) -> Vec<(u64, bool, bool)> {
        for t in conn.take_confirm_flushes() {
            t.flush();
        }
        let mut buf = BytesMut::new();
        for chunk in conn.outbound.take().unwrap_or_default() {
            buf.extend_from_slice(&chunk);
        }
        let splitter = FrameSplitter::new(0);
        let mut out = Vec::new();
        while let Some(frame) = splitter.next_frame(&mut buf).unwrap() {
            match decode_method(&frame.payload).unwrap() {
                AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                    out.push((a.delivery_tag, a.multiple, true))
                }
                AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                    out.push((n.delivery_tag, n.multiple, false))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    #[test]
    fn settled_publishes_coalesce_into_one_multiple_ack() {
        let conn = ConnectionShared::for_tests();
        let tracker = ConfirmTracker::new(conn.clone(), 1);
        let refs: Vec<_> = (0..5).map(|_| tracker.begin()).collect();
        drop(refs);
        assert_eq!(emitted(&conn), vec![(5, true, true)]);
        assert_eq!(tracker.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_detached_tracker_answers_once_every_share_is_released() {
        let tracker = ConfirmTracker::detached();
        let first = tracker.begin();
        let stored = first.share();
        let second = tracker.begin();
        let refused = second.share();
        drop(first);
        drop(second);
        let waiting = {
            let tracker = tracker.clone();
            tokio::spawn(async move { tracker.settled().await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "answered before the store's share was released"
        );
        refused.fail();
        drop(stored);
        let failed = within(waiting).await;
        assert_eq!(failed, vec![false, true]);
        assert_eq!(tracker.outstanding(), 0);
    }

    async fn within<T>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("settled in time")
            .expect("task")
    }

    #[test]
    fn publish_waits_for_every_share() {
        let conn = ConnectionShared::for_tests();
        let tracker = ConfirmTracker::new(conn.clone(), 1);
        let first = tracker.begin();
        let queue_share = first.share();
        drop(first);
        assert_eq!(emitted(&conn), vec![]);
        drop(queue_share);
        assert_eq!(emitted(&conn), vec![(1, false, true)]);
    }

    #[test]
    fn later_publish_waits_for_an_earlier_unsettled_one() {
        let conn = ConnectionShared::for_tests();
        let tracker = ConfirmTracker::new(conn.clone(), 1);
        let one = tracker.begin();
        let two = tracker.begin();
        drop(two);
        assert_eq!(emitted(&conn), vec![]);
        drop(one);
        assert_eq!(emitted(&conn), vec![(2, true, true)]);
    }

    #[test]
    fn failures_are_nacked_in_their_own_run() {
        let conn = ConnectionShared::for_tests();
        let tracker = ConfirmTracker::new(conn.clone(), 1);
        let a = tracker.begin();
        let b = tracker.begin();
        let c = tracker.begin();
        drop(a);
        b.fail();
        drop(c);
        assert_eq!(
            emitted(&conn),
            vec![(1, false, true), (2, false, false), (3, false, true)]
        );
    }
}
