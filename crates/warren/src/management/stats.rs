//! Message rates for the API's `message_stats` and `*_details.rate` fields, as RabbitMQ's `rates_mode: basic`
//! shows them: a sampler reads the node's and each vhost's counters, every queue's gauges, every exchange's
//! counts, every channel's counts and every connection's traffic once per `collect_statistics_interval` (5 s by
//! default), and a rate is the change between the last two samples.
//!
//! Nothing here is on a message's path: the counts are the ones the owners already keep (the node's and vhosts'
//! sharded counters and exchanges' counts, flushed once per socket read or actor round; each queue's gauges; each
//! channel's counts, kept under the lock its deliveries take anyway); the sampler only reads them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::broker::inspect::{ExchangeSample, QueueSample};
use crate::broker::Broker;
use crate::metrics::counters::{Counter, CounterTotals, QueueCounter, QueueKind};
use crate::queue::gauges::{MessageStats, QueueStat};
use crate::registry::{ChannelMessageStats, TrafficCounts};

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

/// A queue or exchange: (vhost, name).
type ObjectKey = (Arc<str>, Arc<str>);

#[derive(Debug, Default)]
struct Samples {
    node: Window<NodeSample>,
    queues: HashMap<ObjectKey, Window<QueueSnapshot>>,
    /// Each vhost as the node is sampled: its counters' [`NODE_FIELDS`] and its queues' depth.
    vhosts: HashMap<Arc<str>, Window<NodeSample>>,
    /// (publish_in, publish_out) by (vhost, exchange).
    exchanges: HashMap<ObjectKey, Window<[u64; 2]>>,
    /// [`ChannelMessageStats::fields`]' values by channel name.
    channels: HashMap<String, Window<Vec<u64>>>,
    /// (recv_oct, send_oct) by connection name.
    connections: HashMap<String, Window<[u64; 2]>>,
}

/// Everything one sample reads, gathered before the samples' lock is taken.
#[derive(Debug, Default)]
struct Reading {
    totals: CounterTotals,
    queues: Vec<QueueSample>,
    vhosts: Vec<(Arc<str>, CounterTotals)>,
    exchanges: Vec<ExchangeSample>,
    channels: Vec<(String, ChannelMessageStats)>,
    connections: Vec<(String, TrafficCounts)>,
}

/// The next windows of a keyed family: each key's window moved on by its new value; keys not read this time
/// (objects gone since the last sample) are dropped with the old map.
fn advance<K: std::hash::Hash + Eq, T>(
    old: &mut HashMap<K, Window<T>>,
    at: Instant,
    values: impl IntoIterator<Item = (K, T)>,
) {
    let mut next = HashMap::with_capacity(old.len());
    for (key, value) in values {
        let mut window = old.remove(&key).unwrap_or_default();
        window.push(at, value);
        next.insert(key, window);
    }
    *old = next;
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

    /// Takes one sample of everything now.
    pub(crate) fn sample(&self, broker: &Broker) {
        let registry = broker.connections();
        let mut channels = Vec::new();
        let mut connections = Vec::new();
        for connection in registry.list() {
            for channel in registry.channel_summaries(connection.details.id) {
                channels.push((
                    channel_name(&connection.name, channel.number),
                    channel.stats,
                ));
            }
            connections.push((connection.name, connection.traffic));
        }
        let reading = Reading {
            totals: broker.metrics.counters.totals(),
            queues: broker.queue_samples(),
            vhosts: broker.vhost_totals(),
            exchanges: broker.exchange_samples(),
            channels,
            connections,
        };
        self.record(Instant::now(), reading);
    }

    fn record(&self, at: Instant, reading: Reading) {
        let mut node_depth = Depth::default();
        let mut vhost_depths: HashMap<Arc<str>, Depth> = HashMap::new();
        let mut queues = Vec::with_capacity(reading.queues.len());
        for queue in reading.queues {
            let depth = Depth {
                ready: queue.counts.ready,
                unacked: queue.counts.unacked,
            };
            for total in [
                &mut node_depth,
                vhost_depths.entry(queue.vhost.clone()).or_default(),
            ] {
                total.ready += depth.ready;
                total.unacked += depth.unacked;
            }
            let snapshot = QueueSnapshot {
                stats: queue.stats,
                depth,
            };
            queues.push(((queue.vhost, queue.name), snapshot));
        }
        let vhosts: Vec<_> = reading
            .vhosts
            .into_iter()
            .map(|(name, totals)| {
                let depth = vhost_depths.get(&name).copied().unwrap_or_default();
                let sample = NodeSample {
                    fields: node_fields(&totals),
                    depth,
                };
                (name, sample)
            })
            .collect();
        let exchanges = reading.exchanges.into_iter().map(|x| {
            let (published_in, published_out) = x.stats;
            ((x.vhost, x.name), [published_in, published_out])
        });
        let channels = reading.channels.into_iter().map(|(name, stats)| {
            let values = stats.fields().iter().map(|(_, value)| *value).collect();
            (name, values)
        });
        let connections = reading
            .connections
            .into_iter()
            .map(|(name, traffic)| (name, [traffic.recv_oct, traffic.send_oct]));
        let mut samples = self.lock();
        advance(&mut samples.queues, at, queues);
        advance(&mut samples.vhosts, at, vhosts);
        advance(&mut samples.exchanges, at, exchanges);
        advance(&mut samples.channels, at, channels);
        advance(&mut samples.connections, at, connections);
        samples.node.push(
            at,
            NodeSample {
                fields: node_fields(&reading.totals),
                depth: node_depth,
            },
        );
    }

    /// The overview's `message_stats`: the node's counts now, with their rates; `{}` while nothing has been
    /// published or delivered, as RabbitMQ shows a fresh node.
    pub(crate) fn node_stats(&self, totals: &CounterTotals) -> Value {
        let samples = self.lock();
        counter_stats(totals, Some(&samples.node))
    }

    /// The overview's `queue_totals` rates: (messages, messages_ready, messages_unacknowledged) per second.
    pub(crate) fn node_depth_rates(&self) -> [f64; 3] {
        depth_rates(&self.lock().node, |s| s.depth)
    }

    /// A vhost's `message_stats`, from its counters now, as the overview's are shown for the node.
    pub(crate) fn vhost_stats(&self, vhost: &str, totals: &CounterTotals) -> Value {
        let samples = self.lock();
        counter_stats(totals, samples.vhosts.get(vhost))
    }

    /// A vhost's depth rates: (messages, messages_ready, messages_unacknowledged) per second.
    pub(crate) fn vhost_depth_rates(&self, vhost: &str) -> [f64; 3] {
        match self.lock().vhosts.get(vhost) {
            Some(window) => depth_rates(window, |s| s.depth),
            None => [0.0; 3],
        }
    }

    /// An exchange's `message_stats` (`publish_in`, `publish_out`) from its counts now; None while it has counted
    /// nothing (RabbitMQ lists such an exchange without the field).
    pub(crate) fn exchange_stats(
        &self,
        vhost: &str,
        name: &str,
        stats: (u64, u64),
    ) -> Option<Value> {
        if stats == (0, 0) {
            return None;
        }
        let samples = self.lock();
        let window = samples.exchanges.get(&(Arc::from(vhost), Arc::from(name)));
        let mut out = Map::new();
        for (i, (field, value)) in [("publish_in", stats.0), ("publish_out", stats.1)]
            .into_iter()
            .enumerate()
        {
            let rate = window.map_or(0.0, |w| w.rate(|s| s[i], true));
            insert_stat(&mut out, field, value, rate);
        }
        Some(Value::Object(out))
    }

    /// A channel's `message_stats`: the counts it has made (others left out, as RabbitMQ shows them); None while
    /// it has counted nothing.
    pub(crate) fn channel_stats(&self, name: &str, stats: &ChannelMessageStats) -> Option<Value> {
        let fields = stats.fields();
        if fields.iter().all(|(_, value)| *value == 0) {
            return None;
        }
        let samples = self.lock();
        let window = samples.channels.get(name);
        let mut out = Map::new();
        for (i, (field, value)) in fields.into_iter().enumerate() {
            if value != 0 {
                let rate = window.map_or(0.0, |w| w.rate(|s| s.get(i).copied().unwrap_or(0), true));
                insert_stat(&mut out, field, value, rate);
            }
        }
        Some(Value::Object(out))
    }

    /// A connection's traffic rates: (recv_oct, send_oct) bytes per second.
    pub(crate) fn connection_rates(&self, name: &str) -> [f64; 2] {
        let samples = self.lock();
        match samples.connections.get(name) {
            Some(window) => [window.rate(|s| s[0], true), window.rate(|s| s[1], true)],
            None => [0.0; 2],
        }
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

/// RabbitMQ's name of a channel: its connection's name and its number, "<peer> -> <local> (N)".
pub(crate) fn channel_name(connection: &str, number: u16) -> String {
    format!("{connection} ({number})")
}

/// [`NODE_FIELDS`]' values in `totals`.
fn node_fields(totals: &CounterTotals) -> Vec<u64> {
    NODE_FIELDS.iter().map(|(_, read)| read(totals)).collect()
}

/// The node's or a vhost's `message_stats` from its counters now, with the rates of its samples; `{}` while
/// nothing has been published or delivered.
fn counter_stats(totals: &CounterTotals, window: Option<&Window<NodeSample>>) -> Value {
    let values = node_fields(totals);
    if values.iter().all(|v| *v == 0) {
        return json!({});
    }
    let mut stats = Map::new();
    for (i, ((name, _), value)) in NODE_FIELDS.iter().zip(values).enumerate() {
        let rate = window.map_or(0.0, |w| {
            w.rate(|s| s.fields.get(i).copied().unwrap_or(0), true)
        });
        insert_stat(&mut stats, name, value, rate);
    }
    Value::Object(stats)
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

    fn reading(node: &NodeCounters, queues: Vec<QueueSample>) -> Reading {
        Reading {
            totals: node.totals(),
            queues,
            ..Reading::default()
        }
    }

    #[test]
    fn rates_are_the_change_between_the_last_two_samples() {
        let sampler = RateSampler::new(Duration::from_secs(5));
        let node = NodeCounters::default();
        let t0 = Instant::now();
        sampler.record(t0, reading(&node, vec![queue(0, 0)]));
        let mut local = LocalCounts::default();
        local.add(Counter::Received, 500);
        local.flush(&node, 1);
        sampler.record(
            t0 + Duration::from_secs(5),
            reading(&node, vec![queue(250, 500)]),
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
        sampler.record(t0, reading(&node, vec![queue(10, 1000)]));
        sampler.record(
            t0 + Duration::from_secs(5),
            reading(&node, vec![queue(0, 10)]),
        );
        let mut stats = MessageStats::default();
        stats.add(QueueStat::Publish, 10);
        let q = sampler.queue_stats("/", "q", &stats).expect("stats");
        assert_eq!(q["publish_details"]["rate"], 0.0);
        // A depth may fall.
        assert_eq!(sampler.queue_depth_rates("/", "q")[1], -2.0);
    }

    #[test]
    fn vhosts_exchanges_channels_and_connections_have_rates_of_their_own() {
        let sampler = RateSampler::new(Duration::from_secs(5));
        let (node, vhost) = (NodeCounters::default(), NodeCounters::default());
        let sample = |published: u64, vhost: &NodeCounters| {
            let channel = ChannelMessageStats {
                publish: published,
                ..ChannelMessageStats::default()
            };
            let traffic = TrafficCounts {
                recv_oct: published * 100,
                ..TrafficCounts::default()
            };
            Reading {
                totals: node.totals(),
                queues: vec![queue(published / 2, published)],
                vhosts: vec![(Arc::from("/"), vhost.totals())],
                exchanges: vec![ExchangeSample {
                    vhost: Arc::from("/"),
                    name: Arc::from("x"),
                    stats: (published, published * 2),
                }],
                channels: vec![(channel_name("c", 1), channel)],
                connections: vec![("c".to_owned(), traffic)],
            }
        };
        let t0 = Instant::now();
        sampler.record(t0, sample(0, &vhost));
        let mut local = LocalCounts::default();
        local.add(Counter::Received, 50);
        local.flush_to(&[&node, &vhost], 1);
        sampler.record(t0 + Duration::from_secs(5), sample(50, &vhost));

        let v = sampler.vhost_stats("/", &vhost.totals());
        assert_eq!(v["publish"], 50);
        assert_eq!(v["publish_details"]["rate"], 10.0);
        assert_eq!(sampler.vhost_depth_rates("/"), [5.0, 5.0, 0.0]);
        assert_eq!(
            sampler.vhost_stats("other", &NodeCounters::default().totals()),
            json!({})
        );

        let x = sampler.exchange_stats("/", "x", (50, 100)).expect("stats");
        assert_eq!(x["publish_in"], 50);
        assert_eq!(x["publish_in_details"]["rate"], 10.0);
        assert_eq!(x["publish_out_details"]["rate"], 20.0);
        assert!(sampler.exchange_stats("/", "y", (0, 0)).is_none());

        let channel = ChannelMessageStats {
            publish: 50,
            ..ChannelMessageStats::default()
        };
        let ch = sampler
            .channel_stats(&channel_name("c", 1), &channel)
            .expect("stats");
        assert_eq!(ch["publish_details"]["rate"], 10.0);
        assert!(
            ch.get("ack").is_none(),
            "only what the channel counted: {ch}"
        );

        assert_eq!(sampler.connection_rates("c"), [1000.0, 0.0]);
        assert_eq!(sampler.connection_rates("gone"), [0.0, 0.0]);
    }
}
