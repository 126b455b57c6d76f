//! An exchange's `message_stats` (`publish_in`, `publish_out`, as RabbitMQ's management API shows them), and how
//! connections feed them without a shared write per message: each connection counts its publishes per exchange in
//! a [`PendingExchangeCounts`] of its own and adds them to the exchanges once per read of its socket, when it
//! flushes its other counters.
//!
//! As in RabbitMQ, both counts belong to the exchange a message was published to: `publish_in` counts the messages
//! published to it (routed or not), `publish_out` each queue one of them was routed to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An exchange's cumulative counts.
#[derive(Debug, Default)]
pub(crate) struct ExchangeStats {
    publish_in: AtomicU64,
    publish_out: AtomicU64,
}

impl ExchangeStats {
    /// Adds a connection's counts since its last flush.
    pub(crate) fn add(&self, published_in: u64, published_out: u64) {
        self.publish_in.fetch_add(published_in, Ordering::Relaxed);
        self.publish_out.fetch_add(published_out, Ordering::Relaxed);
    }

    /// (publish_in, publish_out) now.
    pub(crate) fn read(&self) -> (u64, u64) {
        (
            self.publish_in.load(Ordering::Relaxed),
            self.publish_out.load(Ordering::Relaxed),
        )
    }
}

/// One connection's publishes per exchange since its last flush: (exchange, in, out), the exchange a publisher
/// repeats found at the end with one pointer comparison.
#[derive(Debug, Default)]
pub(crate) struct PendingExchangeCounts {
    entries: Vec<(Arc<str>, u64, u64)>,
}

impl PendingExchangeCounts {
    /// A message published to `exchange` and routed to `queues` queues.
    #[inline]
    pub(crate) fn count(&mut self, exchange: &Arc<str>, queues: usize) {
        let queues = queues as u64;
        if let Some(last) = self.entries.last_mut() {
            if Arc::ptr_eq(&last.0, exchange) || *last.0 == **exchange {
                last.1 += 1;
                last.2 += queues;
                return;
            }
        }
        match self.entries.iter_mut().find(|e| *e.0 == **exchange) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += queues;
            }
            None => self.entries.push((exchange.clone(), 1, queues)),
        }
    }

    /// Hands every count to `add` (exchange, in, out) and starts again from nothing.
    pub(crate) fn drain(&mut self, mut add: impl FnMut(&str, u64, u64)) {
        for (exchange, published_in, published_out) in self.entries.drain(..) {
            add(&exchange, published_in, published_out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_exchange_until_drained() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut pending = PendingExchangeCounts::default();
        pending.count(&a, 2);
        pending.count(&a, 2);
        pending.count(&b, 0);
        pending.count(&Arc::from("a"), 1);
        let mut seen = Vec::new();
        pending.drain(|x, i, o| seen.push((x.to_owned(), i, o)));
        assert_eq!(seen, vec![("a".to_owned(), 3, 5), ("b".to_owned(), 1, 0)]);
        pending.drain(|_, _, _| panic!("drained twice"));
    }

    #[test]
    fn an_exchange_adds_what_connections_flush() {
        let stats = ExchangeStats::default();
        stats.add(3, 5);
        stats.add(1, 0);
        assert_eq!(stats.read(), (4, 5));
    }
}
