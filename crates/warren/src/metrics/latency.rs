//! Publisher confirm latency (`warren_confirm_latency_seconds`), a histogram observed once per ack batch rather
//! than per message: a connection's writer records, each time it emits a channel's `basic.ack multiple=true`, how
//! long the oldest publish of that batch waited. At full rate one batch covers hundreds of messages, so this
//! costs a few atomic adds per write of the socket, on a shard picked by connection id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from 100 µs (an idle fsync is about 0.2 ms here) to 10 s.
pub(crate) const BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];
const BUCKETS: usize = BOUNDS.len() + 1;
const SHARDS: usize = 8;

/// One shard: a count per bucket (the last one past every bound), the sum in microseconds and the count.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// The node's confirm latency histogram.
#[derive(Default)]
pub(crate) struct LatencyHistogram {
    shards: [Shard; SHARDS],
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram").finish_non_exhaustive()
    }
}

impl LatencyHistogram {
    /// Records one ack batch whose oldest publish waited `wait`, in the shard of owner `key`.
    pub(crate) fn observe(&self, wait: Duration, key: u64) {
        let seconds = wait.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BOUNDS.len());
        let shard = &self.shards[(key as usize) % SHARDS];
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        shard.sum_micros.fetch_add(micros, Ordering::Relaxed);
        shard.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals over every shard.
    pub(crate) fn totals(&self) -> LatencyTotals {
        let mut totals = LatencyTotals::default();
        for shard in &self.shards {
            for (total, bucket) in totals.buckets.iter_mut().zip(shard.buckets.iter()) {
                *total += bucket.load(Ordering::Relaxed);
            }
            totals.sum_micros += shard.sum_micros.load(Ordering::Relaxed);
            totals.count += shard.count.load(Ordering::Relaxed);
        }
        totals
    }
}

/// The histogram's totals at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LatencyTotals {
    /// Observations per bucket (not cumulative); the last is past every bound.
    pub(crate) buckets: [u64; BUCKETS],
    /// Sum of the observations, microseconds.
    pub(crate) sum_micros: u64,
    /// Observations.
    pub(crate) count: u64,
}

impl LatencyTotals {
    /// The buckets as (upper bound in seconds, observations in it), the last one `+Inf`.
    pub(crate) fn bucket_pairs(&self) -> Vec<(f64, u64)> {
        BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_sum() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(80), 1);
        histogram.observe(Duration::from_micros(300), 2);
        histogram.observe(Duration::from_secs(30), 3);
        let totals = histogram.totals();
        assert_eq!(totals.count, 3);
        assert_eq!(totals.sum_micros, 30_000_380);
        let pairs = totals.bucket_pairs();
        assert_eq!(pairs[0], (0.0001, 1));
        assert_eq!(pairs[2], (0.0005, 1));
        assert_eq!(pairs[pairs.len() - 1], (f64::INFINITY, 1));
        assert_eq!(pairs.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
