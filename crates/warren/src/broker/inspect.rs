//! Read-only views of the live topology for the management API: queues with their counts and consumers,
//! exchanges, bindings. Plain structs, copied out of the vhosts, so the API never holds a vhost's maps or names
//! its internals. Listing reads the concurrent maps without the topology lock (a listing races a declare as
//! RabbitMQ's does); a queue's counts come from its actor, asked without counting as a use (`x-expires`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Broker;
use crate::definitions::table_to_json;
use crate::exchange::dedup::CachePersistence;
use crate::exchange::{Binding, Destination, Exchange};
use crate::metrics::counters::CounterTotals;
use crate::queue::arguments::QueueType;
use crate::queue::gauges::{MessageStats, QueueCounts};
use crate::queue::{QueueHandle, QueueInspection};
use crate::vhost::Vhost;

/// One queue as the management API shows it.
#[derive(Clone, Debug)]
pub(crate) struct QueueInfo {
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its name.
    pub(crate) name: String,
    /// Survives a restart.
    pub(crate) durable: bool,
    /// Deleted when its last consumer goes.
    pub(crate) auto_delete: bool,
    /// The id of the connection owning an exclusive queue.
    pub(crate) exclusive_owner: Option<u64>,
    /// The declared arguments, as JSON.
    pub(crate) arguments: Map<String, Value>,
    /// `classic` or `quorum`.
    pub(crate) kind: &'static str,
    /// The policy applied to it.
    pub(crate) policy: Option<String>,
    /// The operator policy applied to it.
    pub(crate) operator_policy: Option<String>,
    /// Its counts and consumers; None when its actor is gone (the queue is being deleted).
    pub(crate) state: Option<QueueInspection>,
    /// A classic queue of the cluster whose home node is down: listed as RabbitMQ lists it (`state` `down`, no
    /// counts), without asking its home node, so that a listing does not wait on a node that cannot answer.
    pub(crate) home_down: bool,
    /// Its `message_stats` counts as its actor last published them.
    pub(crate) stats: MessageStats,
}

/// A deduplicating exchange's cache as the management API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DedupCacheInfo {
    /// Keys remembered now.
    pub(crate) entries: usize,
    /// `x-cache-size`.
    pub(crate) capacity: u32,
    /// `x-cache-ttl` in milliseconds; None: until evicted.
    pub(crate) ttl: Option<u64>,
    /// `x-cache-persistence`: `disk` or `memory`.
    pub(crate) persistence: &'static str,
}

/// One queue's counts read from its gauges, without asking its actor: what the rate sampler takes every
/// interval from every queue.
#[derive(Clone, Debug)]
pub(crate) struct QueueSample {
    /// Its vhost.
    pub(crate) vhost: Arc<str>,
    /// Its name.
    pub(crate) name: Arc<str>,
    /// Ready, unacknowledged, consumers.
    pub(crate) counts: QueueCounts,
    /// Its `message_stats` counts.
    pub(crate) stats: MessageStats,
}

/// One exchange's `message_stats` counts, read without a lock: what the rate sampler takes every interval.
#[derive(Clone, Debug)]
pub(crate) struct ExchangeSample {
    /// Its vhost.
    pub(crate) vhost: Arc<str>,
    /// Its name ("" for the default exchange).
    pub(crate) name: Arc<str>,
    /// (publish_in, publish_out).
    pub(crate) stats: (u64, u64),
}

/// One exchange as the management API shows it.
#[derive(Clone, Debug)]
pub(crate) struct ExchangeInfo {
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its name ("" for the default exchange).
    pub(crate) name: String,
    /// Its declared type (`direct`, `x-delayed-message`, ...).
    pub(crate) kind: &'static str,
    /// Survives a restart.
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Clients cannot publish to it.
    pub(crate) internal: bool,
    /// The declared arguments, as JSON.
    pub(crate) arguments: Map<String, Value>,
    /// The policy applied to it.
    pub(crate) policy: Option<String>,
    /// Its `message_stats` counts: (publish_in, publish_out).
    pub(crate) stats: (u64, u64),
}

/// One binding as the management API shows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BindingInfo {
    /// Its vhost.
    pub(crate) vhost: String,
    /// The source exchange ("" for the default exchange's implicit bindings).
    pub(crate) source: String,
    /// The destination's name.
    pub(crate) destination: String,
    /// The destination is a queue (else an exchange).
    pub(crate) to_queue: bool,
    /// The binding key.
    pub(crate) routing_key: String,
    /// The binding arguments, as JSON.
    pub(crate) arguments: Map<String, Value>,
}

impl Broker {
    /// The queues of `vhost` (or of every vhost), sorted by vhost and name, with their counts.
    pub(crate) async fn queue_infos(&self, vhost: Option<&str>) -> Vec<QueueInfo> {
        let mut handles: Vec<(Arc<Vhost>, Arc<QueueHandle>)> = Vec::new();
        for host in self.vhosts_named(vhost) {
            for queue in host.queue_handles() {
                handles.push((host.clone(), queue));
            }
        }
        // Asked one after another: each answer is quick, and a listing must not flood every inbox at once.
        let mut infos = Vec::with_capacity(handles.len());
        for (host, queue) in handles {
            infos.push(inspected(&host, &queue).await);
        }
        infos.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        infos
    }

    /// The queue `name` of `vhost`, with its counts.
    pub(crate) async fn queue_info(&self, vhost: &str, name: &str) -> Option<QueueInfo> {
        let host = self.vhost(vhost)?;
        let queue = host.queue(name)?;
        Some(inspected(&host, &queue).await)
    }

    /// The exchanges of `vhost` (or of every vhost), the default exchange included, sorted by vhost and name.
    pub(crate) fn exchange_infos(&self, vhost: Option<&str>) -> Vec<ExchangeInfo> {
        let mut infos = Vec::new();
        for host in self.vhosts_named(vhost) {
            infos.push(default_exchange(&host));
            for x in host.exchange_handles() {
                infos.push(exchange_info(&host, &x));
            }
        }
        infos.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        infos
    }

    /// The exchange `name` of `vhost` ("" is the default exchange).
    pub(crate) fn exchange_info(&self, vhost: &str, name: &str) -> Option<ExchangeInfo> {
        let host = self.vhost(vhost)?;
        if name.is_empty() {
            return Some(default_exchange(&host));
        }
        let x = host.exchange(name)?;
        Some(exchange_info(&host, &x))
    }

    /// The bindings of `vhost` (or of every vhost): the default exchange's implicit binding of each queue first,
    /// as RabbitMQ lists them, then every exchange's bindings by source name, in the order they were made.
    pub(crate) fn binding_infos(&self, vhost: Option<&str>) -> Vec<BindingInfo> {
        let mut infos = Vec::new();
        for host in self.vhosts_named(vhost) {
            let mut queues: Vec<Arc<str>> = host
                .queue_handles()
                .iter()
                .map(|q| q.spec.name.clone())
                .collect();
            queues.sort();
            for queue in queues {
                infos.push(BindingInfo {
                    vhost: host.name.to_string(),
                    source: String::new(),
                    destination: queue.to_string(),
                    to_queue: true,
                    routing_key: queue.to_string(),
                    arguments: Map::new(),
                });
            }
            let mut exchanges = host.exchange_handles();
            exchanges.sort_by(|a, b| a.name.cmp(&b.name));
            for x in exchanges {
                for binding in x.bindings.load().bindings() {
                    infos.push(binding_info(&host.name, &x.name, binding));
                }
            }
        }
        infos
    }

    /// Every queue's gauges and stats, read without asking the actors (cheap enough for every queue every few
    /// seconds).
    pub(crate) fn queue_samples(&self) -> Vec<QueueSample> {
        let mut samples = Vec::new();
        for host in self.vhosts_named(None) {
            for queue in host.queue_handles() {
                samples.push(QueueSample {
                    vhost: host.name.clone(),
                    name: queue.spec.name.clone(),
                    counts: queue.gauges.read(),
                    stats: queue.gauges.read_stats(),
                });
            }
        }
        samples
    }

    /// Every exchange's counts, the default exchanges' included.
    pub(crate) fn exchange_samples(&self) -> Vec<ExchangeSample> {
        let mut samples = Vec::new();
        for host in self.vhosts_named(None) {
            samples.push(ExchangeSample {
                vhost: host.name.clone(),
                name: Arc::from(""),
                stats: host.default_exchange_stats.read(),
            });
            for x in host.exchange_handles() {
                samples.push(ExchangeSample {
                    vhost: host.name.clone(),
                    name: x.name.clone(),
                    stats: x.stats.read(),
                });
            }
        }
        samples
    }

    /// Every vhost's message counters now (its `message_stats`).
    pub(crate) fn vhost_totals(&self) -> Vec<(Arc<str>, CounterTotals)> {
        self.vhosts_named(None)
            .iter()
            .map(|host| (host.name.clone(), host.counters.totals()))
            .collect()
    }

    /// The message counters of `vhost` now.
    pub(crate) fn vhost_counter_totals(&self, vhost: &str) -> Option<CounterTotals> {
        self.vhost(vhost).map(|host| host.counters.totals())
    }

    /// The cache of deduplicating exchange `name` of `vhost`; None if there is no such exchange or it does not
    /// deduplicate.
    pub(crate) fn exchange_dedup(&self, vhost: &str, name: &str) -> Option<DedupCacheInfo> {
        let cache = self.vhost(vhost)?.dedup_cache(name)?;
        Some(DedupCacheInfo {
            entries: cache.entries(),
            capacity: cache.settings.capacity,
            ttl: cache.settings.ttl,
            persistence: match cache.settings.persistence {
                CachePersistence::Disk => "disk",
                CachePersistence::Memory => "memory",
            },
        })
    }

    /// Whether `vhost` exists.
    pub(crate) fn has_vhost(&self, vhost: &str) -> bool {
        self.vhosts.contains_key(vhost)
    }

    /// The vhost `vhost`, or every vhost, sorted by name.
    fn vhosts_named(&self, vhost: Option<&str>) -> Vec<Arc<Vhost>> {
        match vhost {
            Some(name) => self.vhost(name).into_iter().collect(),
            None => self
                .vhost_names()
                .iter()
                .filter_map(|name| self.vhost(name))
                .collect(),
        }
    }
}

/// `queue` with its counts, asked of its actor unless it is a classic queue whose home node is down.
async fn inspected(host: &Vhost, queue: &QueueHandle) -> QueueInfo {
    if host.home_is_down(&queue.spec.name) {
        let state = QueueInspection::default();
        return QueueInfo {
            home_down: true,
            ..queue_info(host, queue, Some(state))
        };
    }
    let state = queue.inspect().await;
    queue_info(host, queue, state)
}

fn queue_info(host: &Vhost, queue: &QueueHandle, mut state: Option<QueueInspection>) -> QueueInfo {
    let spec = &queue.spec;
    // A classic queue of the cluster is shown with its home node on every node, this one included.
    if let Some(state) = state.as_mut().filter(|s| s.home.is_none()) {
        state.home = host.classic_home(&spec.name).map(|h| h.to_string());
    }
    let settings = queue.settings();
    QueueInfo {
        vhost: host.name.to_string(),
        name: spec.name.to_string(),
        durable: spec.durable,
        auto_delete: spec.auto_delete,
        exclusive_owner: spec.exclusive_owner,
        arguments: table_to_json(&spec.arguments),
        kind: match spec.args.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
            QueueType::Classic => "classic",
        },
        policy: settings.policy.as_deref().map(str::to_owned),
        operator_policy: settings.operator_policy.as_deref().map(str::to_owned),
        state,
        home_down: false,
        stats: queue.gauges.read_stats(),
    }
}

fn exchange_info(host: &Vhost, x: &Exchange) -> ExchangeInfo {
    ExchangeInfo {
        vhost: host.name.to_string(),
        name: x.name.to_string(),
        kind: x.kind.as_str(),
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments: table_to_json(&x.arguments),
        policy: host.exchange_policy(&x.name),
        stats: x.stats.read(),
    }
}

/// The default exchange, which Warren routes without an `Exchange` value, as RabbitMQ lists it.
fn default_exchange(vhost: &Vhost) -> ExchangeInfo {
    ExchangeInfo {
        vhost: vhost.name.to_string(),
        name: String::new(),
        kind: "direct",
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Map::new(),
        policy: None,
        stats: vhost.default_exchange_stats.read(),
    }
}

fn binding_info(vhost: &str, source: &str, binding: &Binding) -> BindingInfo {
    let (destination, to_queue) = match &binding.destination {
        Destination::Queue(name) => (name.to_string(), true),
        Destination::Exchange(name) => (name.to_string(), false),
    };
    BindingInfo {
        vhost: vhost.to_owned(),
        source: source.to_owned(),
        destination,
        to_queue,
        routing_key: binding.routing_key.to_string(),
        arguments: table_to_json(&binding.arguments),
    }
}
