//! A virtual host: its exchanges and queues in concurrent maps, the operations on them (`objects`), routing
//! (`routing`), and writing durable ones through to the definitions store (`durable`).

mod clustered_classic;
mod dead_letter;
mod dedup;
mod default_queue_type;
mod delayed;
mod durable;
mod equivalence;
mod events;
mod objects;
mod policies;
mod replicated;
mod replicated_topology;
mod routing;
mod trace;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::auth::limits::{self, LimitMap};
use crate::delayed::DelayedExchange;
use crate::exchange::dedup::DedupCache;
use crate::exchange::stats::ExchangeStats;
use crate::exchange::{Exchange, ExchangeKind};
use crate::metrics::counters::NodeCounters;
use crate::metrics::NodeMetrics;
use crate::policy::PolicySet;
use crate::queue::flow::FlowLimits;
use crate::queue::settings::NodeQueueDefaults;
use crate::queue::{DeadLetters, QueueHandle, QueueOwner};
use warren_protocol::error::AmqpError;
use warren_protocol::FieldTable;

pub(crate) use clustered_classic::{ClassicDeclare, ClassicReplication};
pub(crate) use default_queue_type::{default_queue_type_name, parse_default_queue_type};
pub(crate) use durable::DurableStores;
pub(crate) use events::EventPublisher;
pub(crate) use objects::{generated_queue_name, ExchangeDeclare, QueueDeclare};
pub(crate) use replicated::QueueReplication;
pub(crate) use replicated_topology::TopologyChange;
pub(crate) use routing::RouteExtras;

/// A virtual host: an isolated namespace of exchanges and queues, shared by every connection that opened it.
/// Publishing reads its maps without locks; topology changes serialise on one mutex (see [`Vhost::change_topology`]).
pub(crate) struct Vhost {
    /// The vhost's name, as clients give it in connection.open; named in reply texts and stored definitions.
    pub(crate) name: Arc<str>,
    /// Exchanges by name, predeclared ones included; concurrent so publishers look exchanges up without a lock.
    exchanges: DashMap<Arc<str>, Arc<Exchange>>,
    /// The delay stores of its `x-delayed-message` exchanges, by exchange name (see `delayed`); only routing
    /// through a delayed exchange looks here.
    delayed: DashMap<Arc<str>, Arc<DelayedExchange>>,
    /// The key caches of its `x-message-deduplication` exchanges, by exchange name (see `dedup`); only routing
    /// through a deduplicating exchange looks here.
    dedup: DashMap<Arc<str>, Arc<DedupCache>>,
    /// Queues by name; concurrent for the same reason. Removing a queue here is what makes it unreachable.
    queues: DashMap<Arc<str>, Arc<QueueHandle>>,
    /// Serialises topology changes (declare, bind, delete) so bindings tables are replaced without lost updates.
    /// Publishing never takes it.
    topology: Mutex<()>,
    /// Moves on after every topology change, so channels know when a route they remember may be stale.
    generation: AtomicU64,
    /// The definitions and message stores; None for a broker without a data directory (unit tests).
    stores: Option<Arc<DurableStores>>,
    /// When its queues hold their publishers.
    flow_limits: FlowLimits,
    /// What the node's compatibility profile sets for new queues.
    queue_defaults: NodeQueueDefaults,
    /// Its policies and operator policies; replaced whole under the topology lock (see `policies`).
    policies: ArcSwap<PolicySet>,
    /// The node's name (`cluster_name`), which trace messages carry.
    node: Arc<str>,
    /// Firehose tracing (`rabbitmqctl trace_on`): every publish and delivery is copied to `amq.rabbitmq.trace`.
    /// Shared with its connections, which read it once per delivery.
    tracing: Arc<std::sync::atomic::AtomicBool>,
    /// Where its queue, exchange, binding and policy events go (`amq.rabbitmq.event`, maybe of another vhost).
    events: Arc<EventPublisher>,
    /// The node's metrics: its queues count deliveries into them, and it counts queues declared, created and
    /// deleted.
    pub(crate) metrics: Arc<NodeMetrics>,
    /// The node's message counters counted again for this vhost alone (its `message_stats`): its connections and
    /// queues flush into both at once.
    pub(crate) counters: Arc<NodeCounters>,
    /// The default exchange's `message_stats` (it is not in `exchanges`: nothing else of it is kept).
    pub(crate) default_exchange_stats: ExchangeStats,
    /// Its limits (`max-connections`, `max-queues`) as set, read when a connection opens it or a queue is created.
    limits: RwLock<LimitMap>,
    /// The type of a queue declared without `x-queue-type` ([`Vhost::with_default_queue_type`]).
    default_queue_type: RwLock<Option<crate::queue::arguments::QueueType>>,
    /// The cluster's replication of quorum queues, once the node is in a cluster.
    replication: std::sync::OnceLock<Arc<dyn QueueReplication>>,
    /// The cluster's classic queues, by name: the node each lives on (see `clustered_classic`).
    cluster_homes: DashMap<Arc<str>, Arc<str>>,
    /// Itself, weakly: the owner its queues are spawned with ([`QueueOwner`]), without a reference cycle.
    me: Weak<Vhost>,
}

/// Held while changing the topology; moves the generation on when released, after the change is in place.
struct TopologyGuard<'a> {
    /// The topology mutex, held for the change.
    _lock: MutexGuard<'a, ()>,
    /// The vhost's generation, moved on at drop.
    generation: &'a AtomicU64,
}

impl Drop for TopologyGuard<'_> {
    fn drop(&mut self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The exchanges every vhost has, as RabbitMQ predeclares them.
pub(crate) const PREDECLARED: &[(&str, ExchangeKind, bool)] = &[
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

impl Vhost {
    /// Wakes every queue for a round (the memory pressure changed: they page out, or load again).
    pub(crate) fn wake_queues(&self) {
        for queue in self.queues.iter() {
            queue.wake.notify_one();
        }
    }

    /// An empty vhost with RabbitMQ's predeclared exchanges; `stores` is `None` only without a data directory
    /// (unit tests). Durable objects are added by [`Vhost::restore`].
    pub(crate) fn new(
        name: &str,
        node: Arc<str>,
        stores: Option<Arc<DurableStores>>,
        flow_limits: FlowLimits,
        queue_defaults: NodeQueueDefaults,
        events: Arc<EventPublisher>,
        metrics: Arc<NodeMetrics>,
    ) -> Arc<Vhost> {
        let vhost = Arc::new_cyclic(|me| {
            let vhost = Vhost {
                name: Arc::from(name),
                exchanges: DashMap::new(),
                delayed: DashMap::new(),
                dedup: DashMap::new(),
                queues: DashMap::new(),
                topology: Mutex::new(()),
                generation: AtomicU64::new(0),
                stores,
                flow_limits,
                queue_defaults,
                policies: ArcSwap::from_pointee(PolicySet::default()),
                limits: RwLock::new(LimitMap::new()),
                default_queue_type: RwLock::new(None),
                tracing: Arc::default(),
                node,
                events,
                metrics,
                counters: Arc::default(),
                default_exchange_stats: ExchangeStats::default(),
                replication: std::sync::OnceLock::new(),
                cluster_homes: DashMap::new(),
                me: me.clone(),
            };
            for (xname, kind, internal) in PREDECLARED {
                let x = Exchange::new(xname, *kind, true, false, *internal, FieldTable::default());
                vhost.exchanges.insert(x.name.clone(), Arc::new(x));
            }
            vhost
        });
        vhost.events.attach(&vhost);
        vhost
    }

    /// Its limits as set (validated by the caller); they apply to the next connection and the next new queue.
    pub(crate) fn set_limits(&self, limits: LimitMap) {
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// Its limits as set.
    pub(crate) fn limits(&self) -> LimitMap {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The limit `key` (`max-connections`, `max-queues`); None when unlimited.
    pub(crate) fn limit(&self, key: &str) -> Option<u64> {
        limits::limit(&self.limits.read().unwrap_or_else(|e| e.into_inner()), key)
    }

    /// This vhost as the owner its queues are spawned with.
    fn as_owner(&self) -> Weak<dyn QueueOwner> {
        self.me.clone()
    }

    /// Takes the topology lock; the generation moves on when the guard drops.
    fn lock_topology(&self) -> TopologyGuard<'_> {
        TopologyGuard {
            _lock: self.topology.lock().unwrap_or_else(|e| e.into_inner()),
            generation: &self.generation,
        }
    }

    /// The topology generation; it changes when a topology change ends.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The exchange `name`, if declared. Lock-free: publishers call it.
    pub(crate) fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges.get(name).map(|x| x.value().clone())
    }

    /// Adds a connection's publishes to exchange `name` ("" the default exchange): `published_in` messages,
    /// routed to `published_out` queues. Counts for an exchange deleted meanwhile are dropped.
    pub(crate) fn count_exchange_publishes(
        &self,
        name: &str,
        published_in: u64,
        published_out: u64,
    ) {
        if name.is_empty() {
            self.default_exchange_stats.add(published_in, published_out);
        } else if let Some(x) = self.exchanges.get(name) {
            x.stats.add(published_in, published_out);
        }
    }

    /// The queue `name`, if declared, whoever owns it (see [`Vhost::queue_for`] for the exclusive check).
    pub(crate) fn queue(&self, name: &str) -> Option<Arc<QueueHandle>> {
        self.queues.get(name).map(|q| q.value().clone())
    }

    /// Every queue, in no order (management listings, metrics).
    pub(crate) fn queue_handles(&self) -> Vec<Arc<QueueHandle>> {
        self.queues.iter().map(|q| q.value().clone()).collect()
    }

    /// Every exchange, predeclared ones included, in no order (management listings).
    pub(crate) fn exchange_handles(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.iter().map(|x| x.value().clone()).collect()
    }

    /// The name of the policy that applies to exchange `name`, if one does.
    pub(crate) fn exchange_policy(&self, name: &str) -> Option<String> {
        let matched = self.policies.load().for_exchange(name);
        matched.names().0.as_deref().map(str::to_owned)
    }

    /// The upstreams the policy of exchange `name` federates it from, if it does.
    pub(crate) fn exchange_federation(
        &self,
        name: &str,
    ) -> Option<crate::policy::FederationTarget> {
        let matched = self.policies.load().for_exchange(name);
        matched.policy?.values.federation.clone()
    }

    /// The upstreams the policy of `queue` federates it from, if it does.
    pub(crate) fn queue_federation(
        &self,
        queue: &QueueHandle,
    ) -> Option<crate::policy::FederationTarget> {
        let matched = self
            .policies
            .load()
            .for_queue(queue.name(), queue.spec.args.queue_type);
        matched.policy?.values.federation.clone()
    }

    /// Looks a queue up for an operation by `connection_id`: 404 if missing, 405 if another connection's
    /// exclusive queue.
    pub(crate) fn queue_for(
        &self,
        name: &str,
        connection_id: u64,
    ) -> Result<Arc<QueueHandle>, AmqpError> {
        let queue = self
            .queue(name)
            .ok_or_else(|| AmqpError::not_found("queue", name, &self.name))?;
        self.check_home(name)?;
        if queue.is_exclusive_to_other(connection_id) {
            return Err(self.locked(name));
        }
        Ok(queue)
    }

    /// 405 RESOURCE_LOCKED in RabbitMQ's words, for another connection's exclusive queue.
    fn locked(&self, queue: &str) -> AmqpError {
        AmqpError::new(
            warren_protocol::error::ReplyCode::ResourceLocked,
            format!(
                "cannot obtain exclusive access to locked queue '{queue}' in vhost '{}'. It could be originally \
                 declared on another connection or the exclusive property value does not match that of the \
                 original declaration.",
                self.name
            ),
        )
    }
}

/// Queues reach their vhost through this when they auto-delete.
impl QueueOwner for Vhost {
    fn forget_queue(&self, queue: &Arc<QueueHandle>) {
        // An auto-delete or expired queue: the broker deletes it, as RabbitMQ's internal user.
        Vhost::forget_queue(self, queue, crate::event::INTERNAL_USER);
    }

    fn dead_letter(&self, from: &Arc<QueueHandle>, dead: DeadLetters) {
        self.publish_dead_letters(from, dead);
    }

    fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    fn vhost_counters(&self) -> Arc<NodeCounters> {
        self.counters.clone()
    }
}
