//! Message rates for the API's `message_stats` and `*_details.rate` fields, as RabbitMQ's `rates_mode: basic`
//! shows them: a sampler reads the node's counters and every queue's gauges once per
//! `collect_statistics_interval` (5 s by default), and a rate is the change between the last two samples.
//!
//! Nothing here is on a message's path: the counts are the ones the owners already keep (the node's sharded
//! counters, each queue's gauges published once per actor round); the sampler only reads them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::broker::inspect::QueueSample;
use crate::broker::Broker;
use crate::metrics::counters::{Counter, CounterTotals, QueueCounter, QueueKind};
use crate::queue::gauges::{MessageStats, QueueStat};

/// Reads one figure from the node's counters.
type NodeField = fn(&CounterTotals) -> u64;

/// The node's `message_stats` fields, in RabbitMQ's names, with how each is read from the node's counters.
const NODE_FIELDS: [(&str, NodeField); 12] = [
    ("publish", |t| t.get(Counter::Received)),
    ("confirm", |t| t.get(Counter::Confirmed)),
    ("return_unroutable", |t| t.get(Counter::UnroutableReturned)),
    ("drop_unroutable", |t| t.get(Counter::UnroutableDropped)),
    ("deliver", |t| {
        queue_total(t, QueueCounter::DeliveredConsumeManualAck)
    }),
    ("deliver_no_ack", |t| {
        queue_total(t, QueueCounter::DeliveredConsumeAutoAck)
    }),
    ("get", |t| {
        queue_total(t, QueueCounter::DeliveredGetManualAck)
    }),
    ("get_no_ack", |t| {
        queue_total(t, QueueCounter::DeliveredGetAutoAck)
    }),
    ("get_empty", |t| queue_total(t, QueueCounter::GetEmpty)),
    ("deliver_get", |t| queue_total(t, QueueCounter::Delivered)),
    ("ack", |t| queue_total(t, QueueCounter::Acknowledged)),
    ("redeliver", |t| queue_total(t, QueueCounter::Redelivered)),
];

fn queue_total(totals: &CounterTotals, counter: QueueCounter) -> u64 {
    QueueKind::ALL
        .iter()
        .map(|kind| totals.queue(*kind, counter))
        .sum()
}

/// A queue's `message_stats` fields besides those of [`QueueStat`]: `deliver_get`, the sum of the four kinds
/// of delivery.
fn deliver_get(stats: &MessageStats) -> u64 {
    [
        QueueStat::Deliver,
        QueueStat::DeliverNoAck,
        QueueStat::Get,
        QueueStat::GetNoAck,
    ]
    .iter()
    .map(|stat| stats.get(*stat))
    .sum()
}

/// Message counts at one sample: messages, ready, unacknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Depth {
    ready: u64,
    unacked: u64,
}

/// The node at one sample.
#[derive(Clone, Debug, Default)]
struct NodeSample {
    /// [`NODE_FIELDS`]' values, in order.
    fields: Vec<u64>,
    /// Summed over every queue.
    depth: Depth,
}

/// A queue at one sample.
#[derive(Clone, Debug, Default)]
struct QueueSnapshot {
    stats: MessageStats,
    depth: Depth,
}

/// The last two samples of something.
#[derive(Debug)]
struct Window<T> {
    previous: Option<(Instant, T)>,
    latest: Option<(Instant, T)>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            previous: None,
            latest: None,
        }
    }
}

impl<T> Window<T> {
    fn push(&mut self, at: Instant, value: T) {
        self.previous = self.latest.take();
        self.latest = Some((at, value));
    }

    /// Change per second of `read` between the two samples; 0 until there are two. A counter that went back
    /// (a queue deleted and declared again between samples) gives 0, not a negative rate; a depth may fall.
    fn rate(&self, read: impl Fn(&T) -> u64, counter: bool) -> f64 {
        let (Some((t0, v0)), Some((t1, v1))) = (&self.previous, &self.latest) else {
            return 0.0;
        };
        let seconds = t1.duration_since(*t0).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        let (before, after) = (read(v0) as f64, read(v1) as f64);
        let change = if counter {
            (after - before).max(0.0)
        } else {
            after - before
        };
        // RabbitMQ's rates carry one decimal.
        (change / seconds * 10.0).round() / 10.0
    }
}

#[derive(Debug, Default)]
struct Samples {
    node: Window<NodeSample>,
    queues: HashMap<(Arc<str>, Arc<str>), Window<QueueSnapshot>>,
}

/// The sampled rates, shared by the API's handlers and the sampling task.
#[derive(Debug)]
pub(crate) struct RateSampler {
    interval: Duration,
    samples: Mutex<Samples>,
}

impl RateSampler {
    /// A sampler taking a sample every `interval`.
    pub(crate) fn new(interval: Duration) -> RateSampler {
        RateSampler {
            interval,
            samples: Mutex::new(Samples::default()),
        }
    }

    /// Samples `broker` every interval, forever (the task ends with the management listener's).
    pub(crate) async fn run(self: Arc<Self>, broker: Arc<Broker>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sample(&broker);
        }
    }

    /// Takes one sample of the node and every queue now.
    pub(crate) fn sample(&self, broker: &Broker) {
        let totals = broker.metrics.counters.totals();
        let queues = broker.queue_samples();
        self.record(Instant::now(), &totals, queues);
    }

    fn record(&self, at: Instant, totals: &CounterTotals, queues: Vec<QueueSample>) {
        let mut node_depth = Depth::default();
        let mut samples = self.lock();
        let mut next = HashMap::with_capacity(queues.len());
        for queue in queues {
            let depth = Depth {
                ready: queue.counts.ready,
                unacked: queue.counts.unacked,
            };
            node_depth.ready += depth.ready;
            node_depth.unacked += depth.unacked;
            let key = (queue.vhost, queue.name);
            // Queues gone since the last sample are dropped with the old map.
            let mut window = samples.queues.remove(&key).unwrap_or_default();
            window.push(
                at,
                QueueSnapshot {
                    stats: queue.stats,
                    depth,
                },
            );
            next.insert(key, window);
        }
        samples.queues = next;
        let fields = NODE_FIELDS.iter().map(|(_, read)| read(totals)).collect();
        samples.node.push(
            at,
            NodeSample {
                fields,
                depth: node_depth,
            },
        );
    }

    /// The overview's `message_stats`: the node's counts now, with their rates; `{}` while nothing has been
    /// published or delivered, as RabbitMQ shows a fresh node.
    pub(crate) fn node_stats(&self, totals: &CounterTotals) -> Value {
        let values: Vec<u64> = NODE_FIELDS.iter().map(|(_, read)| read(totals)).collect();
        if values.iter().all(|v| *v == 0) {
            return json!({});
        }
        let samples = self.lock();
        let mut stats = Map::new();
        for (i, ((name, _), value)) in NODE_FIELDS.iter().zip(values).enumerate() {
            let rate = samples
                .node
                .rate(|s| s.fields.get(i).copied().unwrap_or(0), true);
            insert_stat(&mut stats, name, value, rate);
        }
        Value::Object(stats)
    }

    /// The overview's `queue_totals` rates: (messages, messages_ready, messages_unacknowledged) per second.
    pub(crate) fn node_depth_rates(&self) -> [f64; 3] {
        depth_rates(&self.lock().node, |s| s.depth)
    }

    /// A queue's `message_stats`, with the counts `stats` read now; None while it has counted nothing (RabbitMQ
    /// lists such a queue without the field).
    pub(crate) fn queue_stats(
        &self,
        vhost: &str,
        name: &str,
        stats: &MessageStats,
    ) -> Option<Value> {
        let deliver_get_now = deliver_get(stats);
        if QueueStat::ALL.iter().all(|stat| stats.get(*stat) == 0) {
            return None;
        }
        let samples = self.lock();
        let window = samples.queues.get(&(Arc::from(vhost), Arc::from(name)));
        let rate = |read: &dyn Fn(&MessageStats) -> u64| {
            window.map_or(0.0, |w| w.rate(|s| read(&s.stats), true))
        };
        let mut out = Map::new();
        for stat in QueueStat::ALL {
            let value = stats.get(stat);
            if value != 0 {
                insert_stat(&mut out, stat.field(), value, rate(&|s| s.get(stat)));
            }
        }
        if deliver_get_now != 0 {
            insert_stat(&mut out, "deliver_get", deliver_get_now, rate(&deliver_get));
        }
        Some(Value::Object(out))
    }

    /// A queue's depth rates: (messages, messages_ready, messages_unacknowledged) per second.
    pub(crate) fn queue_depth_rates(&self, vhost: &str, name: &str) -> [f64; 3] {
        let samples = self.lock();
        match samples.queues.get(&(Arc::from(vhost), Arc::from(name))) {
            Some(window) => depth_rates(window, |s| s.depth),
            None => [0.0; 3],
        }
    }

    fn lock(&self) -> MutexGuard<'_, Samples> {
        // A handler that panicked mid-read leaves the samples whole: they are replaced, never edited in place.
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn depth_rates<T>(window: &Window<T>, depth: impl Fn(&T) -> Depth) -> [f64; 3] {
    [
        window.rate(|s| depth(s).ready + depth(s).unacked, false),
        window.rate(|s| depth(s).ready, false),
        window.rate(|s| depth(s).unacked, false),
    ]
}

fn insert_stat(stats: &mut Map<String, Value>, name: &str, value: u64, rate: f64) {
    stats.insert(name.to_owned(), json!(value));
    stats.insert(format!("{name}_details"), json!({ "rate": rate }));
}

/// `{"rate": r}`, RabbitMQ's shape of a `*_details` field.
pub(crate) fn details(rate: f64) -> Value {
    json!({ "rate": rate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::{LocalCounts, NodeCounters};
    use crate::queue::gauges::QueueCounts;

    fn queue(ready: u64, published: u64) -> QueueSample {
        let mut stats = MessageStats::default();
        stats.add(QueueStat::Publish, published);
        QueueSample {
            vhost: Arc::from("/"),
            name: Arc::from("q"),
            counts: QueueCounts {
                ready,
                unacked: 0,
                consumers: 0,
            },
            stats,
        }
    }

    #[test]
    fn rates_are_the_change_between_the_last_two_samples() {
        let sampler = RateSampler::new(Duration::from_secs(5));
        let node = NodeCounters::default();
        let t0 = Instant::now();
        sampler.record(t0, &node.totals(), vec![queue(0, 0)]);
        let mut local = LocalCounts::default();
        local.add(Counter::Received, 500);
        local.flush(&node, 1);
        sampler.record(
            t0 + Duration::from_secs(5),
            &node.totals(),
            vec![queue(250, 500)],
        );

        let overview = sampler.node_stats(&node.totals());
        assert_eq!(overview["publish"], 500);
        assert_eq!(overview["publish_details"]["rate"], 100.0);
        assert_eq!(overview["ack"], 0);
        assert_eq!(sampler.node_depth_rates(), [50.0, 50.0, 0.0]);

        let mut stats = MessageStats::default();
        stats.add(QueueStat::Publish, 500);
        let q = sampler.queue_stats("/", "q", &stats).expect("stats");
        assert_eq!(q["publish_details"]["rate"], 100.0);
        assert!(q.get("ack").is_none(), "only what the queue counted: {q}");
        assert_eq!(sampler.queue_depth_rates("/", "q"), [50.0, 50.0, 0.0]);
    }

    #[test]
    fn nothing_counted_shows_as_rabbitmq_shows_a_fresh_node() {
        let sampler = RateSampler::new(Duration::from_secs(5));
        let node = NodeCounters::default();
        assert_eq!(sampler.node_stats(&node.totals()), json!({}));
        assert!(sampler
            .queue_stats("/", "q", &MessageStats::default())
            .is_none());
        assert_eq!(sampler.queue_depth_rates("/", "q"), [0.0; 3]);
    }

    #[test]
    fn a_queue_declared_again_between_samples_has_no_negative_rate() {
        let sampler = RateSampler::new(Duration::from_secs(5));
        let node = NodeCounters::default();
        let t0 = Instant::now();
        sampler.record(t0, &node.totals(), vec![queue(10, 1000)]);
        sampler.record(
            t0 + Duration::from_secs(5),
            &node.totals(),
            vec![queue(0, 10)],
        );
        let mut stats = MessageStats::default();
        stats.add(QueueStat::Publish, 10);
        let q = sampler.queue_stats("/", "q", &stats).expect("stats");
        assert_eq!(q["publish_details"]["rate"], 0.0);
        // A depth may fall.
        assert_eq!(sampler.queue_depth_rates("/", "q")[1], -2.0);
    }
}
