//! A queue's counts as its actor last published them, readable without asking the actor: the Prometheus
//! endpoint (and the management API's listings) read thousands of queues per scrape and must not queue a command
//! behind each one's publishes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::counters::QueueKind;

/// Written by the queue's actor after each round in which a count changed (a relaxed store to a line only it
/// writes); read by scrapes. A scrape may see a round's counts half published, which a gauge tolerates.
///
/// Aligned to its own cache lines: it sits in the queue's handle next to what every publish reads (the flow
/// state, the settings), and a store per round on a shared line made each publisher re-fetch that line
/// (the publishers of scenario 5, ten queues, read the handle per message).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct QueueGauges {
    ready: AtomicU64,
    unacked: AtomicU64,
    consumers: AtomicU64,
    /// Cumulative message counts for the management API's `message_stats`, indexed by [`QueueStat`].
    stats: [AtomicU64; QueueStat::COUNT],
}

/// What a queue counts for its `message_stats`, as RabbitMQ's management API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueStat {
    /// Messages that arrived at the queue (published or dead-lettered into it).
    Publish,
    /// Delivered to consumers that acknowledge.
    Deliver,
    /// Delivered to `no_ack` consumers.
    DeliverNoAck,
    /// Fetched by basic.get, to be acknowledged.
    Get,
    /// Fetched by basic.get with `no_ack`.
    GetNoAck,
    /// basic.get found the queue empty.
    GetEmpty,
    /// Acknowledged.
    Ack,
    /// Delivered again (the redelivered flag set).
    Redeliver,
}

impl QueueStat {
    /// How many there are.
    pub(crate) const COUNT: usize = QueueStat::Redeliver as usize + 1;

    /// Every stat, in index order.
    pub(crate) const ALL: [QueueStat; QueueStat::COUNT] = [
        QueueStat::Publish,
        QueueStat::Deliver,
        QueueStat::DeliverNoAck,
        QueueStat::Get,
        QueueStat::GetNoAck,
        QueueStat::GetEmpty,
        QueueStat::Ack,
        QueueStat::Redeliver,
    ];

    /// Its field in `message_stats`.
    pub(crate) fn field(self) -> &'static str {
        match self {
            QueueStat::Publish => "publish",
            QueueStat::Deliver => "deliver",
            QueueStat::DeliverNoAck => "deliver_no_ack",
            QueueStat::Get => "get",
            QueueStat::GetNoAck => "get_no_ack",
            QueueStat::GetEmpty => "get_empty",
            QueueStat::Ack => "ack",
            QueueStat::Redeliver => "redeliver",
        }
    }
}

/// A queue's cumulative `message_stats` counts, kept by its actor and published with its gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MessageStats(pub(crate) [u64; QueueStat::COUNT]);

impl MessageStats {
    /// Adds `n` to `stat`.
    pub(crate) fn add(&mut self, stat: QueueStat, n: u64) {
        self.0[stat as usize] += n;
    }

    /// The count of `stat`.
    pub(crate) fn get(&self, stat: QueueStat) -> u64 {
        self.0[stat as usize]
    }
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

    /// Publishes the actor's cumulative stats if they moved since `last`, and remembers them.
    pub(crate) fn publish_stats(&self, last: &mut MessageStats, now: &MessageStats) {
        if last == now {
            return;
        }
        for (slot, value) in self.stats.iter().zip(now.0) {
            slot.store(value, Ordering::Relaxed);
        }
        *last = *now;
    }

    /// The stats last published.
    pub(crate) fn read_stats(&self) -> MessageStats {
        MessageStats(std::array::from_fn(|i| {
            self.stats[i].load(Ordering::Relaxed)
        }))
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
