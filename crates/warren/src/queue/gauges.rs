//! A queue's counts as its actor last published them, readable without asking the actor: the Prometheus
//! endpoint (and the management API's listings) read thousands of queues per scrape and must not queue a command
//! behind each one's publishes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::counters::QueueKind;

/// Written by the queue's actor after each round in which a count changed (a relaxed store to a line only it
/// writes); read by scrapes. A scrape may see a round's counts half published, which a gauge tolerates.
#[derive(Debug, Default)]
pub(crate) struct QueueGauges {
    ready: AtomicU64,
    unacked: AtomicU64,
    consumers: AtomicU64,
}

/// One queue's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueCounts {
    /// Messages ready for delivery.
    pub(crate) ready: u64,
    /// Delivered, not yet acknowledged.
    pub(crate) unacked: u64,
    /// Consumers.
    pub(crate) consumers: u64,
}

impl QueueGauges {
    /// Publishes `now` if it differs from `last` (what this actor published before), and remembers it.
    pub(crate) fn publish(&self, last: &mut QueueCounts, now: QueueCounts) {
        if *last == now {
            return;
        }
        self.ready.store(now.ready, Ordering::Relaxed);
        self.unacked.store(now.unacked, Ordering::Relaxed);
        self.consumers.store(now.consumers, Ordering::Relaxed);
        *last = now;
    }

    /// The counts last published.
    pub(crate) fn read(&self) -> QueueCounts {
        QueueCounts {
            ready: self.ready.load(Ordering::Relaxed),
            unacked: self.unacked.load(Ordering::Relaxed),
            consumers: self.consumers.load(Ordering::Relaxed),
        }
    }
}

impl super::arguments::QueueType {
    /// The metrics' `queue_type` of this type.
    pub(crate) fn metrics_kind(self) -> QueueKind {
        match self {
            super::arguments::QueueType::Classic => QueueKind::Classic,
            super::arguments::QueueType::Quorum => QueueKind::Quorum,
            super::arguments::QueueType::Stream => QueueKind::Stream,
        }
    }
}
