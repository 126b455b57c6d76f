//! What every soak task counts, shared: plain atomic counters (cumulative; the report takes differences), the
//! steady pair's latency histograms (one for the interval, one for the run), and the distinct texts of the errors
//! and connection losses seen, with how often each occurred.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::super::histogram::Histogram;

/// Distinct texts with how often each occurred.
pub(crate) type TextCounts = Vec<(String, u64)>;

/// Distinct texts kept per kind; further new texts are only counted.
const MAX_TEXTS: usize = 20;

/// The run's counters. Every field only grows except [`Tally::idle_open`], a gauge.
#[derive(Default)]
pub(crate) struct Tally {
    /// Idle connections open now.
    pub idle_open: AtomicU64,
    /// Idle connections that opened.
    pub idle_opened: AtomicU64,
    /// Idle connections that failed to open (also in the errors).
    pub idle_failed: AtomicU64,
    /// Idle connections the broker closed or lost: the missed heartbeats (also in the losses).
    pub idle_lost: AtomicU64,
    /// Times a connection saw nothing from the broker for more than two heartbeat intervals.
    pub late_heartbeats: AtomicU64,
    /// Churned connections opened and closed cleanly.
    pub churned_connections: AtomicU64,
    /// Churn ticks skipped because too many churned connections were still in flight.
    pub churn_skipped: AtomicU64,
    /// Queues declared and deleted.
    pub churned_queues: AtomicU64,
    /// Messages the steady producer sent, and the steady consumer received.
    pub steady_sent: AtomicU64,
    pub steady_received: AtomicU64,
    /// Messages published to the slow and stalled consumers' queues.
    pub fed: AtomicU64,
    /// Publishes the feeders skipped because the broker was not reading them (flow control).
    pub feed_held: AtomicU64,
    /// Deliveries the slow consumers acked.
    pub slow_acked: AtomicU64,
    /// Stalls that ended with the broker having closed the stalled connection, and with it still open.
    pub stalls_let_go: AtomicU64,
    pub stalls_kept: AtomicU64,
    /// Errors: anything that failed other than an idle connection lost and a stalled one let go.
    pub errors: AtomicU64,
    texts: Mutex<Texts>,
    latency: Mutex<Latencies>,
}

#[derive(Default)]
struct Texts {
    errors: BTreeMap<String, u64>,
    losses: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Latencies {
    interval: Histogram,
    run: Histogram,
}

impl Tally {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts an error of `what` (a task) with its text.
    pub(crate) fn error(&self, what: &str, text: impl std::fmt::Display) {
        Tally::bump(&self.errors);
        if let Ok(mut texts) = self.texts.lock() {
            count_text(&mut texts.errors, format!("{what}: {text}"));
        }
    }

    /// Counts the loss of an idle connection, with why.
    pub(crate) fn idle_lost(&self, why: impl std::fmt::Display) {
        Tally::bump(&self.idle_lost);
        self.idle_open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut texts) = self.texts.lock() {
            count_text(&mut texts.losses, why.to_string());
        }
    }

    /// Records one end-to-end latency of the steady pair, in nanoseconds.
    pub(crate) fn latency(&self, ns: u64) {
        if let Ok(mut latency) = self.latency.lock() {
            latency.interval.record(ns);
            latency.run.record(ns);
        }
    }

    /// The interval's latencies, leaving an empty histogram for the next interval.
    pub(crate) fn take_interval_latency(&self) -> Histogram {
        match self.latency.lock() {
            Ok(mut latency) => std::mem::take(&mut latency.interval),
            Err(_) => Histogram::new(),
        }
    }

    /// The whole run's latencies.
    pub(crate) fn run_latency(&self) -> Histogram {
        match self.latency.lock() {
            Ok(latency) => latency.run.clone(),
            Err(_) => Histogram::new(),
        }
    }

    /// The distinct error texts with their counts, and the same for losses of idle connections.
    pub(crate) fn texts(&self) -> (TextCounts, TextCounts) {
        match self.texts.lock() {
            Ok(texts) => (
                texts.errors.iter().map(|(t, n)| (t.clone(), *n)).collect(),
                texts.losses.iter().map(|(t, n)| (t.clone(), *n)).collect(),
            ),
            Err(_) => (Vec::new(), Vec::new()),
        }
    }
}

fn count_text(texts: &mut BTreeMap<String, u64>, text: String) {
    if let Some(n) = texts.get_mut(&text) {
        *n += 1;
    } else if texts.len() < MAX_TEXTS {
        texts.insert(text, 1);
    } else {
        *texts.entry("(other texts)".to_owned()).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_losses_are_counted_by_text() {
        let tally = Tally::default();
        tally.error("churn", "refused");
        tally.error("churn", "refused");
        Tally::bump(&tally.idle_open);
        tally.idle_lost("the broker closed the socket");
        assert_eq!(Tally::get(&tally.errors), 2);
        assert_eq!(Tally::get(&tally.idle_open), 0);
        let (errors, losses) = tally.texts();
        assert_eq!(errors, vec![("churn: refused".to_owned(), 2)]);
        assert_eq!(losses, vec![("the broker closed the socket".to_owned(), 1)]);
    }

    #[test]
    fn the_interval_latency_restarts_and_the_run_keeps_all() {
        let tally = Tally::default();
        tally.latency(1_000);
        assert_eq!(tally.take_interval_latency().max(), Some(1_000));
        tally.latency(2_000);
        assert_eq!(tally.take_interval_latency().max(), Some(2_000));
        assert!(tally.take_interval_latency().is_empty());
        assert_eq!(tally.run_latency().max(), Some(2_000));
    }

    #[test]
    fn distinct_texts_are_capped() {
        let tally = Tally::default();
        for i in 0..MAX_TEXTS + 5 {
            tally.error("x", i);
        }
        let (errors, _) = tally.texts();
        assert_eq!(errors.len(), MAX_TEXTS + 1);
        assert_eq!(Tally::get(&tally.errors), (MAX_TEXTS + 5) as u64);
    }
}
