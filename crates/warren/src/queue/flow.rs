//! Flow control from a queue back to its publishers. A queue whose consumers are not keeping up, so that its ready
//! backlog passes the high watermark while it has consumers, is *held*: each connection reader that hands it a
//! publish waits, before reading its socket again, until the backlog is back under the low watermark, and TCP
//! pushes back on the publisher. A queue without consumers is never held: a backlog built on purpose is bounded by
//! paging, not by holding its publishers.
//!
//! The queue's own consumers' connections are exempt: their reader carries the acks that drain the queue, and
//! holding it would deadlock. See docs/architecture.md ("Flow control") for the whole mechanism.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

/// The watermarks a queue holds and releases its publishers at; a limit of 0 disables that test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlowLimits {
    /// Ready messages at which a queue with consumers holds its publishers.
    pub(crate) high_messages: u64,
    /// Ready body bytes held in memory at which a queue with consumers holds its publishers.
    pub(crate) high_bytes: u64,
}

impl FlowLimits {
    /// Whether a queue with this backlog holds its publishers, given whether it holds them now. A held queue
    /// releases them at half the watermarks, so one that hovers at the limit does not flap on every message.
    pub(crate) fn holds(
        &self,
        held: bool,
        has_consumers: bool,
        ready_messages: u64,
        ready_bytes: u64,
    ) -> bool {
        if !has_consumers {
            return false;
        }
        let over = |count: u64, limit: u64| {
            let threshold = if held { limit / 2 } else { limit };
            limit > 0 && count >= threshold.max(1)
        };
        over(ready_messages, self.high_messages) || over(ready_bytes, self.high_bytes)
    }
}

/// A queue's flow state as its publishers see it: whether it holds them, and the wake-up when it releases them.
#[derive(Default)]
pub(crate) struct QueueFlow {
    /// Set by the queue actor while it holds its publishers; read by readers after every flush to the queue.
    held: AtomicBool,
    /// The connections of the queue's consumers when it was held (updated while held): never held by it.
    exempt: Mutex<Vec<u64>>,
    /// Wakes the held readers once the queue releases them.
    released: Notify,
}

impl QueueFlow {
    /// Whether the queue holds its publishers now (one relaxed load: read after every flush).
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Whether the queue holds publishers on `connection`.
    pub(crate) fn holds(&self, connection: u64) -> bool {
        self.is_held() && !self.exempt_list().contains(&connection)
    }

    /// Waits until the queue no longer holds `connection`.
    pub(crate) async fn wait_released(&self, connection: u64) {
        loop {
            // Registered before the check, so a release between the check and the wait is not missed.
            let released = self.released.notified();
            let mut released = std::pin::pin!(released);
            released.as_mut().enable();
            if !self.holds(connection) {
                return;
            }
            released.await;
        }
    }

    /// Holds the queue's publishers, except those on `exempt` connections; the actor calls it when the backlog
    /// passes the high watermark and whenever its consumers change while held.
    pub(crate) fn hold(&self, exempt: Vec<u64>) {
        *self.exempt.lock().unwrap_or_else(|e| e.into_inner()) = exempt;
        self.held.store(true, Ordering::Release);
        // A newly exempt connection may be waiting already.
        self.released.notify_waiters();
    }

    /// Releases every held publisher.
    pub(crate) fn release(&self) {
        self.held.store(false, Ordering::Release);
        self.released.notify_waiters();
    }

    fn exempt_list(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.exempt.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FlowLimits = FlowLimits {
        high_messages: 100,
        high_bytes: 1000,
    };

    #[test]
    fn a_queue_holds_at_the_high_watermark_and_releases_at_half_of_it() {
        assert!(!LIMITS.holds(false, true, 99, 0));
        assert!(LIMITS.holds(false, true, 100, 0));
        assert!(LIMITS.holds(true, true, 51, 0));
        assert!(!LIMITS.holds(true, true, 49, 0));
        assert!(LIMITS.holds(false, true, 0, 1000));
        assert!(LIMITS.holds(true, true, 0, 500));
        assert!(!LIMITS.holds(true, true, 10, 499));
    }

    #[test]
    fn a_queue_without_consumers_or_with_limits_off_never_holds() {
        assert!(!LIMITS.holds(false, false, 1_000_000, 1 << 30));
        assert!(!LIMITS.holds(true, false, 1_000_000, 1 << 30));
        let off = FlowLimits {
            high_messages: 0,
            high_bytes: 0,
        };
        assert!(!off.holds(true, true, 1_000_000, 1 << 30));
    }

    #[tokio::test]
    async fn held_readers_wake_on_release_and_exempt_connections_are_never_held() {
        let flow = std::sync::Arc::new(QueueFlow::default());
        flow.hold(vec![7]);
        assert!(flow.holds(1));
        assert!(!flow.holds(7));
        flow.wait_released(7).await;
        let waiter = {
            let flow = flow.clone();
            tokio::spawn(async move { flow.wait_released(1).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        flow.release();
        waiter.await.expect("the held reader is released");
        assert!(!flow.holds(1));
    }
}
