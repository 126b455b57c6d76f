//! The broker: configuration, the vhosts, the access table, the durable stores, and the node-wide id counters
//! every connection shares. Opening it recovers the durable state; the first start seeds users and vhosts
//! (`seed`); `admin` changes them at run time.

mod admin;
mod classic;
mod cluster;
mod delayed;
mod federation;
pub(crate) mod inspect;
mod metrics;
pub mod parameters;
mod quorum;
mod seed;
mod shovel_runner;
pub(crate) mod topology;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::alarm::monitor::ResourceMonitor;
use crate::alarm::Alarms;
pub use crate::alarm::Resource;
use crate::auth::access::{AccessControl, AccessTable};
use crate::auth::users::{CompiledPermission, CompiledTopicPermission};
use crate::config::{Config, DiskFreeLimit, MemoryWatermark, SyncPolicy};
pub use crate::delayed::DelayedMessage;
use crate::event::Event;
use crate::message::continue_ids_above;
use crate::meta::DefinitionStore;
pub use crate::meta::MetaError;
use crate::metrics::NodeMetrics;
use crate::policy::Policy;
pub use crate::policy::{PolicyError, PolicyInfo, PolicyInput, PolicyKind};
use crate::queue::flow::FlowLimits;
use crate::queue::settings::NodeQueueDefaults;
use crate::queue::NodeMemory;
use crate::registry::ConnectionRegistry;
use crate::reply_to::ReplyConsumers;
use crate::vhost::{DurableStores, EventPublisher, Vhost};
use admin::ADMIN_USER;
pub use admin::{AdminError, PermissionDefinition, TopicPermissionDefinition, UserDefinition};
pub use delayed::DelayedError;
use warren_store::{
    FileSystem, SpillConfig, SpillStore, StdFileSystem, Store, StoreConfig, StoreError, SyncMode,
};
pub use warren_store::{SpillStats, StoreHealth};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The configured `data_dir`.
        path: String,
        /// Why creating it failed.
        source: std::io::Error,
    },
    /// The definitions database could not be opened or read.
    #[error(transparent)]
    Definitions(#[from] MetaError),
    /// The `load_definitions` file could not be imported (nothing of it was).
    #[error("load_definitions: {0}")]
    LoadDefinitions(crate::definitions::DefinitionsError),
    /// The message store could not be opened or recovered.
    #[error("cannot open the message store: {0}")]
    Store(#[from] StoreError),
    /// The spill store's directory could not be emptied or its writer started.
    #[error("cannot open the spill store: {0}")]
    Spill(StoreError),
    /// A policy of the config file could not be set.
    #[error("cannot set {kind} '{name}' in vhost '{vhost}' from the config file: {error}")]
    Policy {
        /// `policy` or `operator policy`.
        kind: &'static str,
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// Why.
        error: PolicyError,
    },
}

/// One running broker node: what every connection shares. Built once by [`Broker::open`] and shared as an `Arc` by
/// the listener, every connection task and the registry's users (management API, shutdown).
pub struct Broker {
    /// The configuration it was opened with; fixed for the broker's life (limits, users, server identity).
    pub(crate) config: Config,
    /// The vhosts by name (stored, or seeded at the first start); a connection's connection.open looks its vhost
    /// up here. A `DashMap` so that lookups from many connection tasks never contend.
    vhosts: DashMap<String, Arc<Vhost>>,
    /// Users, permissions and topic permissions, checked by logins and by every channel method.
    pub(crate) access: AccessControl,
    /// The flow limits every vhost's queues run with (kept for vhosts added at run time).
    flow_limits: FlowLimits,
    /// What the compatibility profile sets for every vhost's new queues (kept for vhosts added at run time).
    queue_defaults: NodeQueueDefaults,
    /// The definitions store and the message store, opened and recovered once; every vhost writes through them.
    stores: Arc<DurableStores>,
    /// Notified by the store's writer thread whenever it takes queued publishes, so publishers held back by a full
    /// store queue wake without polling (see `channel::Backlog::wait`).
    store_room: Arc<Notify>,
    /// The next connection id: node-unique ids name the owner of exclusive queues and key the registry.
    next_connection_id: AtomicU64,
    /// The next consumer id: node-unique ids let a queue match an ack to its consumer without comparing tags.
    next_consumer_id: AtomicU64,
    /// The live connections, for listing and closing them (management API, shutdown).
    connections: ConnectionRegistry,
    /// The memory and disk alarms; publishing connections are blocked while one is raised.
    pub(crate) alarms: Arc<Alarms>,
    /// The limits the alarms apply and the last memory and disk samples.
    resources: Arc<ResourceMonitor>,
    /// The direct reply-to consumers of every channel, by token (see `reply_to`).
    pub(crate) reply_consumers: Arc<ReplyConsumers>,
    /// Where events go (`amq.rabbitmq.event`, `[event_exchange]`); publishes nothing when the feature is off.
    pub(crate) events: Arc<EventPublisher>,
    /// The node's counters, fed by connections and queues in batches, read by the Prometheus endpoint.
    pub(crate) metrics: Arc<NodeMetrics>,
    /// The cluster this node belongs to, set once at start when `[cluster]` is configured.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// This node's quorum queue groups, set once with the cluster.
    queue_groups: std::sync::OnceLock<Arc<crate::cluster::QueueGroups>>,
    /// The replication of quorum queues every vhost is given, set once with the cluster.
    replication: std::sync::OnceLock<Arc<dyn crate::vhost::QueueReplication>>,
    /// The runtime parameters of plugin components (`shovel`), as stored.
    parameters: std::sync::Mutex<parameters::ParameterTable>,
    /// The running shovels, dynamic and static.
    shovels: Arc<crate::shovel::Shovels>,
    /// The running federation links.
    links: crate::federation::Links,
    /// Wakes the federation reconciler when a federation parameter changes.
    federation_wake: Arc<Notify>,
}

/// Memory and disk as the resource monitor last sampled them (RabbitMQ's `mem_used`, `mem_limit`, `disk_free`,
/// `disk_free_limit` of a node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// Resident memory of the broker, bytes.
    pub mem_used: u64,
    /// The memory high watermark, bytes.
    pub mem_limit: u64,
    /// Free space of the data directory's file system, bytes.
    pub disk_free: u64,
    /// The free disk limit, bytes.
    pub disk_free_limit: u64,
}

impl Broker {
    /// [`Broker::open_with_file_system`] on the real file system.
    #[cfg(test)]
    pub(crate) fn open(config: Config) -> Result<Arc<Broker>, StartError> {
        Broker::open_with_file_system(config, Arc::new(warren_store::StdFileSystem))
    }

    /// Opens the data directory, recovers durable definitions and messages, and builds the vhosts. The message
    /// store's files go through `store_fs` (the real file system, or a simulated one with injected faults in
    /// tests). A full disk does not stop it: the store then starts failed, serving what it recovered, and the disk
    /// alarm blocks publishers until it has repaired itself.
    pub(crate) fn open_with_file_system(
        config: Config,
        store_fs: Arc<dyn FileSystem>,
    ) -> Result<Arc<Broker>, StartError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let definitions = DefinitionStore::open(&dir.join("definitions.redb"))?;
        crate::definitions::load_at_start(&definitions, &config.definitions)
            .map_err(StartError::LoadDefinitions)?;
        let mut stored = definitions.load()?;
        if stored.users.is_empty() && stored.vhosts.is_empty() {
            let seed = seed::first_start(&config.auth, &|key: &str| std::env::var(key).ok());
            definitions.seed(&seed.vhosts, &seed.users, &seed.permissions)?;
            let names: Vec<&str> = seed.users.iter().map(|u| u.name.as_str()).collect();
            tracing::info!(
                "first start: created vhosts {:?} and users {names:?} (passwords stored hashed)",
                seed.vhosts
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
            );
            stored.vhosts = seed.vhosts;
            stored.users = seed.users;
            stored.permissions = seed.permissions;
        } else if !config.auth.users.is_empty() {
            tracing::info!("[[auth.users]] only seed the first start; the stored users are used");
        }
        let access = AccessControl::new(access_table(&stored));
        let local_node = crate::shovel::LocalNode {
            addr: crate::shovel::loopback_if_unspecified(config.listen),
            secret: access.internal_secret().to_owned(),
        };
        let sync = match config.storage.sync {
            SyncPolicy::Always => SyncMode::Always,
            SyncPolicy::Never => {
                tracing::warn!("storage sync = \"never\": confirmed messages are not fsynced and can be lost on a power failure or OS crash");
                SyncMode::Never
            }
        };
        let store_config = StoreConfig {
            sync,
            wal_file_size: config.storage.wal_file_size,
            segment_size: config.storage.segment_size,
            ..StoreConfig::new(dir.join("msgs"))
        };
        let mut queue_ids: Vec<u64> = stored.queues.iter().map(|q| q.id).collect();
        // Durable delayed exchanges keep their delayed messages, and durable deduplicating exchanges their keys,
        // under store ids of their own.
        queue_ids.extend(
            definitions
                .delayed_store_ids()?
                .into_iter()
                .filter(|(vhost, name, _)| {
                    stored
                        .exchanges
                        .iter()
                        .any(|x| x.vhost == *vhost && x.name == *name)
                })
                .map(|(_, _, id)| id),
        );
        let (store, recovery) = Store::open(store_config, store_fs, &queue_ids)?;
        continue_ids_above(recovery.max_msg_id);
        tracing::info!(
            "recovery: {} durable queues, {} messages recovered, {} bytes truncated from torn tails",
            stored.queues.len(),
            recovery.messages,
            recovery.truncated_bytes
        );
        for (queue, reason) in &recovery.corrupt_queues {
            tracing::error!("recovery: queue with store id {queue} was damaged and serves what was readable: {reason}");
        }
        // Transient messages past their queue's budget; whatever a previous run spilled is deleted here.
        let spill = SpillStore::open(SpillConfig::new(dir.join("spill")), Arc::new(StdFileSystem))
            .map_err(StartError::Spill)?;
        if let StoreHealth::Failed { cause } = store.health() {
            tracing::error!("the message store cannot write ({cause}): serving consumers, publishers blocked by the disk alarm until it recovers");
        }
        let store_room = Arc::new(Notify::new());
        let wake = store_room.clone();
        store.on_queue_taken(Box::new(move || wake.notify_waiters()));
        let stores = Arc::new(DurableStores {
            definitions,
            store,
            spill,
            queue_memory_budget: config.storage.queue_memory_budget,
            node_memory: Arc::new(NodeMemory::new(config.storage.total_queue_memory_budget)),
        });
        let mut recovered: HashMap<u64, _> = recovery.queues;
        let mut recovered_keys: HashMap<u64, _> = recovery.dedup;
        let vhosts = DashMap::new();
        let events = EventPublisher::new(config.event_exchange_vhost());
        let metrics = Arc::new(NodeMetrics::default());
        let flow_limits = FlowLimits {
            high_messages: config.flow.queue_high_watermark_messages,
            high_bytes: config.flow.queue_high_watermark_bytes,
        };
        let queue_defaults = NodeQueueDefaults {
            quorum_delivery_limit: config.compatibility.quorum_delivery_limit(),
            transient_nonexclusive: config.deprecated_features.transient_nonexcl_queues,
        };
        for def in &stored.vhosts {
            let vhost = Vhost::new(
                &def.name,
                Arc::from(config.server.cluster_name.as_str()),
                Some(stores.clone()),
                flow_limits,
                queue_defaults,
                events.clone(),
                metrics.clone(),
            );
            vhost.set_limits(def.limits.clone());
            let queue_type = def
                .default_queue_type
                .as_deref()
                .map(crate::vhost::parse_default_queue_type);
            match queue_type {
                Some(Ok(queue_type)) => vhost.set_default_queue_type(queue_type),
                Some(Err(error)) => {
                    tracing::warn!("vhost '{}': stored {error}; not applied", def.name)
                }
                None => {}
            }
            vhost.restore(&stored, &mut recovered, &mut recovered_keys);
            vhosts.insert(def.name.clone(), vhost);
        }
        for def in &stored.queues {
            if recovered.contains_key(&def.id) {
                tracing::warn!(
                    "queue '{}' is stored in vhost '{}', which does not exist; not served",
                    def.name,
                    def.vhost
                );
            }
        }
        let alarms_config = config.alarms;
        let data_dir = config.data_dir.clone();
        let node = config.server.cluster_name.clone();
        // A shovel's status names the node running it: on a cluster, the member's name.
        let node_name = match &config.cluster {
            Some(cluster) => cluster.name.clone(),
            None => node.clone(),
        };
        let monitored_store = stores.store.clone();
        let node_memory = stores.node_memory.clone();
        let broker = Arc::new(Broker {
            config,
            vhosts,
            access,
            flow_limits,
            queue_defaults,
            stores,
            store_room,
            next_connection_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            connections: ConnectionRegistry::default(),
            alarms: Arc::new(Alarms::new(node)),
            resources: Arc::new(ResourceMonitor::new(
                alarms_config,
                data_dir,
                monitored_store,
                node_memory,
            )),
            reply_consumers: Arc::default(),
            events,
            metrics,
            cluster: std::sync::OnceLock::new(),
            queue_groups: std::sync::OnceLock::new(),
            replication: std::sync::OnceLock::new(),
            parameters: std::sync::Mutex::new(parameters::table_of(&stored.parameters)),
            shovels: Arc::new(crate::shovel::Shovels::new(&node_name, local_node)),
            links: crate::federation::Links::default(),
            federation_wake: Arc::new(Notify::new()),
        });
        let weak = Arc::downgrade(&broker);
        broker.resources.on_pressure_change(Box::new(move || {
            if let Some(broker) = weak.upgrade() {
                for vhost in broker.vhosts.iter() {
                    vhost.wake_queues();
                }
            }
        }));
        if let Some(name) = broker.config.event_exchange_vhost() {
            // As the plugin, which creates its vhost if missing (without permissions for anyone).
            if broker.vhost(name).is_none() {
                let name = name.to_owned();
                broker.add_vhost(&name).map_err(|error| match error {
                    AdminError::Store(e) => StartError::Definitions(e),
                    other => StartError::Definitions(MetaError::Storage(other.to_string())),
                })?;
            }
        }
        for p in &broker.config.policies {
            let kind = match p.operator {
                true => PolicyKind::Operator,
                false => PolicyKind::Policy,
            };
            let input = PolicyInput {
                pattern: p.pattern.clone(),
                apply_to: p.apply_to.clone(),
                priority: p.priority.map(Into::into),
                definition: p.definition.clone(),
            };
            broker
                .set_policy(kind, &p.vhost, &p.name, &input)
                .map_err(|error| StartError::Policy {
                    kind: match kind {
                        PolicyKind::Policy => "policy",
                        PolicyKind::Operator => "operator policy",
                    },
                    vhost: p.vhost.clone(),
                    name: p.name.clone(),
                    error,
                })?;
        }
        for vhost in &broker.config.trace_vhosts {
            if broker.set_tracing(vhost, true).is_err() {
                tracing::warn!(
                    "trace_vhosts names vhost '{vhost}', which does not exist; not traced"
                );
            }
        }
        Ok(broker)
    }

    /// Starts sampling memory and disk for the alarms (from a tokio runtime; `Server::bind` calls it).
    pub(crate) fn start_resource_monitor(&self) {
        crate::alarm::spawn_monitor(
            Arc::downgrade(&self.alarms),
            Arc::downgrade(&self.resources),
        );
    }

    /// The resource alarms raised now (RabbitMQ's local alarms).
    pub fn alarms(&self) -> Vec<Resource> {
        self.alarms.list()
    }

    /// Whether the message store takes persistent writes; while it is failed (a full disk, an I/O error) the disk
    /// alarm is raised, and it repairs itself once it can write again.
    pub fn store_health(&self) -> StoreHealth {
        self.stores.store.health()
    }

    /// Memory and disk as last sampled, with the limits.
    pub fn resource_usage(&self) -> ResourceUsage {
        let r = &self.resources;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ResourceUsage {
            mem_used: get(&r.mem_used),
            mem_limit: get(&r.mem_limit),
            disk_free: get(&r.disk_free),
            disk_free_limit: get(&r.disk_free_limit),
        }
    }

    /// Changes the memory high watermark at run time (`rabbitmqctl set_vm_memory_high_watermark`); the alarm is
    /// re-checked at once.
    pub fn set_vm_memory_high_watermark(&self, watermark: MemoryWatermark) {
        self.resources.set_limits(Some(watermark), None);
    }

    /// Changes the free disk limit at run time (`rabbitmqctl set_disk_free_limit`); re-checked at once.
    pub fn set_disk_free_limit(&self, limit: DiskFreeLimit) {
        self.resources.set_limits(None, Some(limit));
    }

    /// Sets (adds or replaces) the policy or operator policy `name` of `vhost`, checked as RabbitMQ checks it,
    /// stores it, and applies it at once to the queues and exchanges it matches. Blocks on a disk commit: call it
    /// off the async workers (`tokio::task::spawn_blocking`).
    pub fn set_policy(
        &self,
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        input: &PolicyInput,
    ) -> Result<(), PolicyError> {
        let host = self
            .vhost(vhost)
            .ok_or_else(|| PolicyError::NoSuchVhost(vhost.to_owned()))?;
        host.set_policy(Policy::parse(kind, vhost, name, input)?)?;
        self.events.emit(|| {
            let info = host.policy(kind, name);
            let empty = serde_json::Map::new();
            let (pattern, apply_to, priority, definition) = match &info {
                Some(p) => (
                    p.pattern.as_str(),
                    p.apply_to.as_str(),
                    p.priority,
                    p.definition.as_object().unwrap_or(&empty),
                ),
                None => (input.pattern.as_str(), "all", 0, &empty),
            };
            Event::policy_set(
                vhost, name, pattern, apply_to, priority, definition, ADMIN_USER,
            )
        });
        Ok(())
    }

    /// Clears the policy or operator policy `name` of `vhost`; Ok(false) if there is none. Its queues and
    /// exchanges fall back at once to the next matching policy, or to their arguments. Blocks on a disk commit.
    pub fn clear_policy(
        &self,
        kind: PolicyKind,
        vhost: &str,
        name: &str,
    ) -> Result<bool, PolicyError> {
        let host = self
            .vhost(vhost)
            .ok_or_else(|| PolicyError::NoSuchVhost(vhost.to_owned()))?;
        let cleared = host.clear_policy(kind, name)?;
        if cleared {
            let operator = kind == PolicyKind::Operator;
            self.events
                .emit(|| Event::policy_cleared(operator, vhost, name, ADMIN_USER));
        }
        Ok(cleared)
    }

    /// The policies (or operator policies) of `vhost`, or of every vhost, highest priority first within a vhost.
    pub fn policies(&self, kind: PolicyKind, vhost: Option<&str>) -> Vec<PolicyInfo> {
        let mut names: Vec<String> = match vhost {
            Some(v) => vec![v.to_owned()],
            None => self.vhosts.iter().map(|v| v.key().clone()).collect(),
        };
        names.sort();
        names
            .iter()
            .filter_map(|name| self.vhost(name))
            .flat_map(|v| v.policies(kind))
            .collect()
    }

    /// The policy (or operator policy) `name` of `vhost`, if set.
    pub fn policy(&self, kind: PolicyKind, vhost: &str, name: &str) -> Option<PolicyInfo> {
        self.vhost(vhost)?.policy(kind, name)
    }

    /// The vhost `name`, if configured.
    pub(crate) fn vhost(&self, name: &str) -> Option<Arc<Vhost>> {
        self.vhosts.get(name).map(|v| v.value().clone())
    }

    /// The message store.
    pub(crate) fn store(&self) -> &Store {
        &self.stores.store
    }

    /// What the spill store holds now: messages, bytes waiting for its writer, files and their bytes (for metrics
    /// and tests).
    pub fn spill_stats(&self) -> SpillStats {
        self.stores.spill.stats()
    }

    /// Notified each time the store's writer takes queued publishes (its queued bytes fell).
    pub(crate) fn store_room(&self) -> &Notify {
        &self.store_room
    }

    /// A fresh connection id, never handed out before by this broker.
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The live connections: listed and closed by id.
    pub fn connections(&self) -> &ConnectionRegistry {
        &self.connections
    }

    /// A fresh consumer id, never handed out before by this broker.
    pub(crate) fn next_consumer_id(&self) -> u64 {
        self.next_consumer_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes out everything queued for the store. Call it once at a clean shutdown, after connections stop
    /// publishing; it returns when the store's queued writes are on disk (failures are logged).
    pub fn flush(&self) {
        if let Err(error) = self.stores.store.flush() {
            tracing::error!(%error, "flushing the message store at shutdown failed");
        }
    }
}

/// The access table of the stored definitions; a stored permission that no longer compiles is logged and left out
/// (it grants nothing).
fn access_table(stored: &crate::meta::Definitions) -> AccessTable {
    let mut table = AccessTable::default();
    for user in &stored.users {
        if let Err(error) = user.validate() {
            tracing::error!(
                "stored user '{}' is not usable ({error}); it cannot log in",
                user.name
            );
        }
        table
            .users
            .insert(user.name.clone(), Arc::new(user.clone()));
    }
    for p in &stored.permissions {
        match CompiledPermission::new(p.clone()) {
            Ok(compiled) => table.set_permission(compiled),
            Err(error) => tracing::error!(
                "stored permission of user '{}' in vhost '{}' not applied: {error}",
                p.user,
                p.vhost
            ),
        }
    }
    for p in &stored.topic_permissions {
        match CompiledTopicPermission::new(p.clone()) {
            Ok(compiled) => table.set_topic_permission(compiled),
            Err(error) => tracing::error!(
                "stored topic permission of user '{}' in vhost '{}' not applied: {error}",
                p.user,
                p.vhost
            ),
        }
    }
    table
}
