//! What each producer and consumer has done, shared with the reporter. A handler adds to its [`Meter`] once per
//! batch (one lock per socket read or write, not per message); the reporter takes the interval's figures every
//! second and folds them into the run's totals.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::histogram::Histogram;

/// One producer's or consumer's figures since the reporter last took them, plus its state.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub sent: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub received: u64,
    /// Of `received`, those that arrived after every producer had stopped publishing (the drain).
    pub drained: u64,
    pub redelivered: u64,
    /// Received again without the redelivered flag.
    pub duplicates: u64,
    /// Messages from before this run or from another tool, not counted in the loss check.
    pub stale: u64,
    pub confirm_latency: Histogram,
    pub latency: Histogram,
}

impl Counts {
    /// Adds `other` into `self` (histograms included).
    pub(crate) fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.confirmed += other.confirmed;
        self.nacked += other.nacked;
        self.received += other.received;
        self.drained += other.drained;
        self.redelivered += other.redelivered;
        self.duplicates += other.duplicates;
        self.stale += other.stale;
        self.confirm_latency.merge(&other.confirm_latency);
        self.latency.merge(&other.latency);
    }

    /// Nothing counted and nothing recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.sent == 0
            && self.confirmed == 0
            && self.nacked == 0
            && self.received == 0
            && self.stale == 0
            && self.confirm_latency.is_empty()
            && self.latency.is_empty()
    }

    pub(crate) fn reset(&mut self) {
        self.sent = 0;
        self.confirmed = 0;
        self.nacked = 0;
        self.received = 0;
        self.drained = 0;
        self.redelivered = 0;
        self.duplicates = 0;
        self.stale = 0;
        self.confirm_latency.clear();
        self.latency.clear();
    }
}

#[derive(Debug, Default)]
pub(crate) struct MeterState {
    /// Since the reporter last drained it.
    pub interval: Counts,
    /// Unique messages of this run received so far (for the drain phase), never reset.
    pub unique_received: u64,
    /// When a producer stopped publishing.
    pub stopped_publishing: Option<Instant>,
    /// When a consumer last received a message.
    pub last_received: Option<Instant>,
    /// The handler has finished (or its connection is gone).
    pub done: bool,
}

/// How many producers are still publishing, shared by every producer (which counts itself out once, when it
/// stops publishing) and every consumer (which counts a delivery as drained once none is left). Consumers look at
/// it for each delivery rather than waiting for the coordinator's 50 ms tick, so that the line between the
/// publishing window and the drain is where the last producer stopped, not where the coordinator noticed.
#[derive(Clone, Debug)]
pub(crate) struct PublishersRunning(Arc<AtomicUsize>);

impl PublishersRunning {
    /// `producers` publishing; with none, the window is closed from the start (every delivery is drained).
    pub(crate) fn new(producers: usize) -> PublishersRunning {
        PublishersRunning(Arc::new(AtomicUsize::new(producers)))
    }

    /// One producer has stopped publishing; each producer calls this exactly once.
    pub(crate) fn one_stopped(&self) {
        // Saturating, so a stray second call cannot wrap the count and reopen the window.
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Some producer is still publishing. A load of a cache line written once per producer, so it stays shared
    /// and costs about a nanosecond per delivery; consumers stop asking once it is `false`.
    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// A handler's shared figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meter(Arc<Mutex<MeterState>>);

impl Meter {
    pub(crate) fn new() -> Meter {
        Meter::default()
    }

    /// A poisoned lock only means another thread panicked mid-update; the counters are still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MeterState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the interval's figures into `into` and starts a new interval.
    pub(crate) fn drain_into(&self, into: &mut Counts) {
        let mut state = self.lock();
        into.add(&state.interval);
        state.interval.reset();
    }
}

/// Every meter of a run, grouped by role.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meters {
    pub producers: Vec<Meter>,
    /// With the consumer group (queue index) of each consumer.
    pub consumers: Vec<(usize, Meter)>,
}

impl Meters {
    /// Takes the interval's figures of every meter.
    pub(crate) fn drain(&self) -> Counts {
        let mut counts = Counts::default();
        for meter in self
            .producers
            .iter()
            .chain(self.consumers.iter().map(|(_, m)| m))
        {
            meter.drain_into(&mut counts);
        }
        counts
    }

    pub(crate) fn producers_done(&self) -> bool {
        self.producers.iter().all(|m| m.lock().done)
    }

    pub(crate) fn consumers_done(&self) -> bool {
        self.consumers.iter().all(|(_, m)| m.lock().done)
    }

    /// Unique messages received by each of `groups` consumer groups.
    pub(crate) fn unique_per_group(&self, groups: usize) -> Vec<u64> {
        let mut per_group = vec![0; groups];
        for (group, meter) in &self.consumers {
            if let Some(slot) = per_group.get_mut(*group) {
                *slot += meter.lock().unique_received;
            }
        }
        per_group
    }

    /// When the last producer stopped publishing, if all have.
    pub(crate) fn publishing_stopped(&self) -> Option<Instant> {
        let mut last = None;
        for meter in &self.producers {
            let at = meter.lock().stopped_publishing?;
            last = last.max(Some(at));
        }
        last
    }

    pub(crate) fn last_received(&self) -> Option<Instant> {
        self.consumers
            .iter()
            .filter_map(|(_, m)| m.lock().last_received)
            .max()
    }
}
