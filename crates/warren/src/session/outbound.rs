//! The byte-budgeted outbound queue of one connection. Channels and queue actors append encoded frames; the
//! connection's writer task takes everything queued and writes it in one vectored write. Small frames are
//! copied into one growing buffer; large message bodies are queued as zero-copy slices.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::Notify;

use warren_protocol::content::{body_chunk_size, body_frame_prefix};
use warren_protocol::frame::FRAME_END;

/// Bodies at least this large are queued as slices rather than copied (copying is cheaper below it).
const ZERO_COPY_MIN: usize = 16 * 1024;

/// What the writer has not taken yet, behind one short lock.
#[derive(Default)]
struct Pending {
    /// Frames ready to write, in order; `tail` holds the newest small frames not yet cut into a chunk.
    chunks: VecDeque<Bytes>,
    /// Small frames appended since the last chunk was cut; taken as one chunk.
    tail: BytesMut,
    /// Queue actors that stopped delivering because the budget was spent, woken when the writer drains.
    waiters: Vec<Arc<Notify>>,
}

/// The frames queued for one connection's socket, with a byte budget that holds queue deliveries back.
pub(crate) struct OutboundQueue {
    /// The queued frames: appended by channels and queue actors, taken by the writer. A std Mutex, held only to
    /// copy bytes in or swap them out, never across an await.
    pending: Mutex<Pending>,
    /// Bytes appended and not yet written; read without the lock by queue actors checking the budget.
    queued_bytes: AtomicUsize,
    /// Set when the connection closes: appends are dropped from then on and the writer finishes.
    closed: AtomicBool,
    /// Wakes the writer.
    pub(crate) ready: Notify,
    /// Wakes everyone waiting in [`OutboundQueue::closed`].
    closing: Notify,
    /// Queued bytes past which queue actors stop delivering to this connection (back-pressure on consumers).
    budget: usize,
}

impl OutboundQueue {
    /// An empty queue that counts as over budget past `budget` bytes.
    pub(crate) fn new(budget: usize) -> OutboundQueue {
        OutboundQueue {
            pending: Mutex::new(Pending::default()),
            queued_bytes: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
            closing: Notify::new(),
            budget,
        }
    }

    /// Locks the pending frames.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves plain byte buffers behind, still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends frames encoded by `encode`. Returns false (and drops them) once the connection is closing.
    pub(crate) fn write(&self, encode: impl FnOnce(&mut BytesMut)) -> bool {
        if self.is_closed() {
            return false;
        }
        let mut pending = self.lock();
        let before = pending.tail.len();
        encode(&mut pending.tail);
        let added = pending.tail.len() - before;
        drop(pending);
        self.queued_bytes.fetch_add(added, Ordering::Relaxed);
        self.ready.notify_one();
        true
    }

    /// Appends a message: `head` encodes the method and content header frames, then the body follows in body
    /// frames no larger than `frame_max`.
    pub(crate) fn write_message(
        &self,
        channel: u16,
        frame_max: u32,
        body: &Bytes,
        head: impl FnOnce(&mut BytesMut),
    ) -> bool {
        if self.is_closed() {
            return false;
        }
        let chunk = body_chunk_size(frame_max);
        let mut pending = self.lock();
        let before = pending.tail.len();
        head(&mut pending.tail);
        let mut added = pending.tail.len() - before;
        if body.len() < ZERO_COPY_MIN {
            for part in body.chunks(chunk) {
                let tail = &mut pending.tail;
                tail.extend_from_slice(&body_frame_prefix(channel, part.len()));
                tail.extend_from_slice(part);
                tail.put_u8(FRAME_END);
                added += part.len() + 8;
            }
        } else {
            let mut offset = 0;
            while offset < body.len() {
                let end = (offset + chunk).min(body.len());
                pending
                    .tail
                    .extend_from_slice(&body_frame_prefix(channel, end - offset));
                let head_bytes = pending.tail.split().freeze();
                pending.chunks.push_back(head_bytes);
                pending.chunks.push_back(body.slice(offset..end));
                pending.tail.put_u8(FRAME_END);
                added += end - offset + 8;
                offset = end;
            }
        }
        drop(pending);
        self.queued_bytes.fetch_add(added, Ordering::Relaxed);
        self.ready.notify_one();
        true
    }

    /// True while more than the budget is waiting to be written: queue actors hold further deliveries back.
    pub(crate) fn over_budget(&self) -> bool {
        self.queued_bytes.load(Ordering::Relaxed) > self.budget
    }

    /// Registers a queue actor to be woken when the queued bytes fall back under the budget.
    pub(crate) fn wake_when_drained(&self, waiter: Arc<Notify>) {
        let mut pending = self.lock();
        if !self.over_budget() {
            drop(pending);
            waiter.notify_one();
            return;
        }
        if !pending.waiters.iter().any(|w| Arc::ptr_eq(w, &waiter)) {
            pending.waiters.push(waiter);
        }
    }

    /// Takes everything queued, in order, or None if nothing is.
    pub(crate) fn take(&self) -> Option<Vec<Bytes>> {
        let mut pending = self.lock();
        if pending.chunks.is_empty() && pending.tail.is_empty() {
            // Idle: give the buffer's memory back so an idle connection costs little.
            if pending.tail.capacity() > 4096 {
                pending.tail = BytesMut::new();
            }
            return None;
        }
        let mut out: Vec<Bytes> = pending.chunks.drain(..).collect();
        if !pending.tail.is_empty() {
            out.push(pending.tail.split().freeze());
        }
        Some(out)
    }

    /// Called by the writer after writing `bytes`; wakes held-back queue actors once under budget.
    pub(crate) fn written(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if !self.over_budget() {
            let waiters = std::mem::take(&mut self.lock().waiters);
            for waiter in waiters {
                waiter.notify_one();
            }
        }
    }

    /// Stops accepting frames; the writer writes what is queued, then shuts the socket down.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
        self.closing.notify_waiters();
        let waiters = std::mem::take(&mut self.lock().waiters);
        for waiter in waiters {
            waiter.notify_one();
        }
    }

    /// True once the connection is closing: frames appended now are dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once the queue is closed (by the reader, or by the writer when the socket failed or timed out).
    pub(crate) async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        // Registered before the check, so a close between the check and the wait is not missed.
        notified.as_mut().enable();
        if self.is_closed() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(chunks: Vec<Bytes>) -> Vec<u8> {
        chunks.into_iter().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn keeps_order_across_copied_and_zero_copy_bodies() {
        let out = OutboundQueue::new(1 << 20);
        out.write(|b| b.extend_from_slice(b"A"));
        let big = Bytes::from(vec![9u8; ZERO_COPY_MIN]);
        out.write_message(1, 131072, &big, |b| b.extend_from_slice(b"H"));
        out.write(|b| b.extend_from_slice(b"Z"));
        let bytes = concat(out.take().unwrap());
        assert_eq!(bytes[0], b'A');
        assert_eq!(bytes[1], b'H');
        assert_eq!(&bytes[2..9], &body_frame_prefix(1, ZERO_COPY_MIN));
        assert_eq!(bytes[9 + ZERO_COPY_MIN], FRAME_END);
        assert_eq!(*bytes.last().unwrap(), b'Z');
        assert_eq!(bytes.len(), 3 + 8 + ZERO_COPY_MIN);
    }

    #[test]
    fn budget_holds_back_and_wakes_waiters() {
        let out = OutboundQueue::new(10);
        out.write(|b| b.extend_from_slice(&[0u8; 20]));
        assert!(out.over_budget());
        let waiter = Arc::new(Notify::new());
        out.wake_when_drained(waiter.clone());
        let taken = out.take().unwrap();
        out.written(taken.iter().map(|b| b.len()).sum());
        assert!(!out.over_budget());
        assert!(out.lock().waiters.is_empty());
    }

    #[test]
    fn closed_outbound_drops_writes() {
        let out = OutboundQueue::new(10);
        out.close();
        assert!(!out.write(|b| b.extend_from_slice(b"x")));
        assert!(out.take().is_none());
    }
}
