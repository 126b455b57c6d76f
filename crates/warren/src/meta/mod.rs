//! Durable definitions: vhosts, users, permissions, exchanges, queues, bindings and policies that survive a restart, kept in an embedded redb database
//! (`<data_dir>/definitions.redb`). Every change is one committed (fsynced) transaction; transient and exclusive
//! objects are never written here, so after a restart they are gone, as in RabbitMQ.
//!
//! On a full disk: opening commits nothing when the tables exist (so a broker starts), and a change that fails
//! (its commit could not write) fails with the error; redb then refuses every later call on that database
//! (`PreviousIo`), so the database is closed and the next change opens it again (redb repairs it), which succeeds
//! once there is space.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::auth::limits::LimitMap;
use crate::auth::users::{PermissionDefinition, TopicPermissionDefinition, UserDefinition};
use warren_protocol::FieldTable;

const EXCHANGES: TableDefinition<&str, &[u8]> = TableDefinition::new("exchanges");
const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues");
const BINDINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// The key in COUNTERS of the hash of the definitions file last imported at start.
const IMPORTED_HASH: &str = "imported_definitions_hash";
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
const VHOSTS: TableDefinition<&str, &[u8]> = TableDefinition::new("vhosts");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const PERMISSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("permissions");
const TOPIC_PERMISSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("topic_permissions");
/// Runtime parameters of the plugins' components (`shovel`, ...), keyed `vhost\0component\0name`. Older databases
/// lack it; opening one creates it.
const PARAMETERS: TableDefinition<&str, &[u8]> = TableDefinition::new("parameters");
/// The message-store id of each durable `x-delayed-message` exchange (keyed as `EXCHANGES`), under which its
/// persistent delayed messages are stored. Created by the first delayed exchange; older databases lack it.
const DELAYED_STORE_IDS: TableDefinition<&str, u64> = TableDefinition::new("delayed_store_ids");

/// Every table of records, for creating them and checking they exist.
const RECORD_TABLES: [TableDefinition<&str, &[u8]>; 9] = [
    EXCHANGES,
    QUEUES,
    BINDINGS,
    POLICIES,
    VHOSTS,
    USERS,
    PERMISSIONS,
    TOPIC_PERMISSIONS,
    PARAMETERS,
];

/// Why the definitions store (redb) failed; at start this stops the broker, later it fails the topology change.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database file could not be opened or created.
    #[error("cannot open the definitions database: {0}")]
    Open(#[from] redb::DatabaseError),
    /// A transaction, table or storage operation failed.
    #[error("definitions database error: {0}")]
    Storage(String),
    /// A stored record does not decode.
    #[error("corrupt definition record '{key}': {error}")]
    Corrupt {
        /// The record's key in its table.
        key: String,
        /// Why it does not decode.
        error: String,
    },
}

fn storage(e: impl std::fmt::Display) -> MetaError {
    MetaError::Storage(e.to_string())
}

/// A stored durable exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExchangeDef {
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its name.
    pub(crate) name: String,
    /// Its type name (`direct`, `topic`, ...).
    pub(crate) kind: String,
    /// Its auto-delete flag.
    pub(crate) auto_delete: bool,
    /// Its internal flag.
    pub(crate) internal: bool,
    /// Its arguments.
    pub(crate) arguments: FieldTable,
}

/// A stored durable queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueDef {
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its name.
    pub(crate) name: String,
    /// The id the message store files this queue's messages under.
    pub(crate) id: u64,
    /// Its auto-delete flag.
    pub(crate) auto_delete: bool,
    /// Its arguments.
    pub(crate) arguments: FieldTable,
}

/// A stored binding (both its ends durable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BindingDef {
    /// Its vhost.
    pub(crate) vhost: String,
    /// The source exchange.
    pub(crate) source: String,
    /// The destination queue or exchange.
    pub(crate) destination: String,
    /// Whether the destination is a queue.
    pub(crate) destination_is_queue: bool,
    /// The binding key.
    pub(crate) routing_key: String,
    /// The binding arguments (headers exchanges match on them).
    pub(crate) arguments: FieldTable,
}

impl BindingDef {
    fn key(&self) -> Result<String, MetaError> {
        let args = serde_json::to_string(&self.arguments).map_err(storage)?;
        let kind = if self.destination_is_queue { "q" } else { "e" };
        Ok(format!(
            "{}\0{}\0{kind}\0{}\0{}\0{args}",
            self.vhost, self.source, self.destination, self.routing_key
        ))
    }
}

/// A stored policy or operator policy, as it was set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyDef {
    /// An operator policy rather than a policy.
    pub(crate) operator: bool,
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its name.
    pub(crate) name: String,
    /// The name pattern.
    pub(crate) pattern: String,
    /// What it applies to (`all`, `queues`, ...).
    pub(crate) apply_to: String,
    /// Its priority.
    pub(crate) priority: i64,
    /// Its definition, as set.
    pub(crate) definition: serde_json::Value,
}

fn policy_key(operator: bool, vhost: &str, name: &str) -> String {
    let kind = if operator { "o" } else { "p" };
    format!("{kind}\0{vhost}\0{name}")
}

/// A stored runtime parameter (RabbitMQ's `{"vhost", "component", "name", "value"}` of definitions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ParameterDef {
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its component (`shovel`, ...).
    pub(crate) component: String,
    /// Its name.
    pub(crate) name: String,
    /// Its value, as set (validated by its component).
    pub(crate) value: serde_json::Value,
}

fn parameter_key(vhost: &str, component: &str, name: &str) -> String {
    format!("{vhost}\0{component}\0{name}")
}

/// A stored vhost (RabbitMQ's `{"name"}` object of definitions) with its limits (RabbitMQ keeps those as the
/// vhost's `vhost-limits` parameter).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VhostDef {
    /// Its name.
    pub(crate) name: String,
    /// Its limits (`max-connections`, `max-queues`), validated; empty when it has none.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub(crate) limits: LimitMap,
    /// Its default queue type (`classic` or `quorum`), if one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_queue_type: Option<String>,
}

/// Everything stored, as loaded at start.
#[derive(Debug, Default)]
pub(crate) struct Definitions {
    /// Every stored exchange.
    pub(crate) exchanges: Vec<ExchangeDef>,
    /// Every stored queue.
    pub(crate) queues: Vec<QueueDef>,
    /// Every stored binding.
    pub(crate) bindings: Vec<BindingDef>,
    /// Every stored policy and operator policy.
    pub(crate) policies: Vec<PolicyDef>,
    /// Every stored vhost.
    pub(crate) vhosts: Vec<VhostDef>,
    /// Every stored user.
    pub(crate) users: Vec<UserDefinition>,
    /// Every stored permission.
    pub(crate) permissions: Vec<PermissionDefinition>,
    /// Every stored topic permission.
    pub(crate) topic_permissions: Vec<TopicPermissionDefinition>,
    /// Every stored runtime parameter of a plugin component.
    pub(crate) parameters: Vec<ParameterDef>,
}

/// What one definitions import stores ([`DefinitionStore::import`]): all of it in one transaction, or nothing.
#[derive(Debug, Default)]
pub(crate) struct ImportBatch {
    /// Users to add or replace.
    pub(crate) users: Vec<UserDefinition>,
    /// Vhosts to add or replace.
    pub(crate) vhosts: Vec<VhostDef>,
    /// Permissions to add or replace.
    pub(crate) permissions: Vec<PermissionDefinition>,
    /// Topic permissions to add or replace.
    pub(crate) topic_permissions: Vec<TopicPermissionDefinition>,
    /// Policies and operator policies to add or replace.
    pub(crate) policies: Vec<PolicyDef>,
    /// New exchanges.
    pub(crate) exchanges: Vec<ExchangeDef>,
    /// New queues; their ids are assigned when stored.
    pub(crate) queues: Vec<QueueDef>,
    /// Bindings to add.
    pub(crate) bindings: Vec<BindingDef>,
    /// Runtime parameters to add or replace.
    pub(crate) parameters: Vec<ParameterDef>,
    /// A hash of the imported file, kept to skip importing it again unchanged (RabbitMQ's
    /// `definitions.skip_if_unchanged`).
    pub(crate) content_hash: Option<u64>,
}

impl ImportBatch {
    /// Whether it stores nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.vhosts.is_empty()
            && self.permissions.is_empty()
            && self.topic_permissions.is_empty()
            && self.policies.is_empty()
            && self.exchanges.is_empty()
            && self.queues.is_empty()
            && self.bindings.is_empty()
            && self.parameters.is_empty()
    }
}

/// The definitions database (redb): durable exchanges, queues and bindings. Each write commits (an
/// fsync), so callers run it off the async workers.
pub(crate) struct DefinitionStore {
    /// The database file.
    path: PathBuf,
    /// The open database; None after a failed call, until the next call opens it again (redb fails every call on
    /// a database that once hit an I/O error). Also serialises changes, which redb would do anyway.
    db: Mutex<Option<Database>>,
}

fn object_key(vhost: &str, name: &str) -> String {
    format!("{vhost}\0{name}")
}

/// Opens or creates the database at `path`, creating the tables only if one is missing: a database that has them
/// is opened without a commit, so a broker starts on a full disk.
fn open_database(path: &Path) -> Result<Database, MetaError> {
    let db = Database::create(path)?;
    if !tables_exist(&db)? {
        let txn = db.begin_write().map_err(storage)?;
        for table in RECORD_TABLES {
            txn.open_table(table).map_err(storage)?;
        }
        txn.open_table(COUNTERS).map_err(storage)?;
        txn.commit().map_err(storage)?;
    }
    Ok(db)
}

/// Whether every table exists.
fn tables_exist(db: &Database) -> Result<bool, MetaError> {
    let txn = db.begin_read().map_err(storage)?;
    for table in RECORD_TABLES {
        match txn.open_table(table) {
            Ok(_) => {}
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(storage(e)),
        }
    }
    match txn.open_table(COUNTERS) {
        Ok(_) => Ok(true),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(storage(e)),
    }
}

impl DefinitionStore {
    /// Opens or creates the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<DefinitionStore, MetaError> {
        let db = open_database(path)?;
        Ok(DefinitionStore {
            path: path.to_path_buf(),
            db: Mutex::new(Some(db)),
        })
    }

    /// Runs `f` on the database, opening it again first if a failed call closed it; a failure closes it.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut guard: MutexGuard<'_, Option<Database>> =
            self.db.lock().unwrap_or_else(|e| e.into_inner());
        let db = match guard.take() {
            Some(db) => db,
            None => {
                let db = open_database(&self.path)?;
                tracing::info!("definitions database opened again after a failed write");
                db
            }
        };
        let result = f(&db);
        match &result {
            // The database is dropped (closed) here: the next call opens it again.
            Err(error) => {
                tracing::warn!(%error, "definitions database closed after a failed call; the next change opens it again")
            }
            Ok(_) => *guard = Some(db),
        }
        result
    }

    fn put(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &impl Serialize,
    ) -> Result<(), MetaError> {
        let bytes = serde_json::to_vec(value).map_err(storage)?;
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(table)
                .map_err(storage)?
                .insert(key, bytes.as_slice())
                .map_err(storage)?;
            txn.commit().map_err(storage)
        })
    }

    fn remove(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<(), MetaError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(table)
                .map_err(storage)?
                .remove(key)
                .map_err(storage)?;
            txn.commit().map_err(storage)
        })
    }

    /// Stores or replaces an exchange; returns once committed.
    pub(crate) fn put_exchange(&self, def: &ExchangeDef) -> Result<(), MetaError> {
        self.put(EXCHANGES, &object_key(&def.vhost, &def.name), def)
    }

    /// Removes an exchange (and its delayed-message store id, if it has one); returns once committed.
    pub(crate) fn remove_exchange(&self, vhost: &str, name: &str) -> Result<(), MetaError> {
        let key = object_key(vhost, name);
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(EXCHANGES)
                .map_err(storage)?
                .remove(key.as_str())
                .map_err(storage)?;
            txn.open_table(DELAYED_STORE_IDS)
                .map_err(storage)?
                .remove(key.as_str())
                .map_err(storage)?;
            txn.commit().map_err(storage)
        })
    }

    /// Stores a durable `x-delayed-message` exchange with a new message-store id for its delayed messages (taken
    /// from the queue ids, so never reused), in one transaction; returns the id once committed.
    pub(crate) fn put_delayed_exchange(&self, def: &ExchangeDef) -> Result<u64, MetaError> {
        let key = object_key(&def.vhost, &def.name);
        let bytes = serde_json::to_vec(def).map_err(storage)?;
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            let id = {
                let mut counters = txn.open_table(COUNTERS).map_err(storage)?;
                let next = counters
                    .get("queue_id")
                    .map_err(storage)?
                    .map(|v| v.value())
                    .unwrap_or(0)
                    + 1;
                counters.insert("queue_id", next).map_err(storage)?;
                next
            };
            txn.open_table(EXCHANGES)
                .map_err(storage)?
                .insert(key.as_str(), bytes.as_slice())
                .map_err(storage)?;
            txn.open_table(DELAYED_STORE_IDS)
                .map_err(storage)?
                .insert(key.as_str(), id)
                .map_err(storage)?;
            txn.commit().map_err(storage)?;
            Ok(id)
        })
    }

    /// The message-store id of the stored delayed exchange `name` of `vhost`, if it has one.
    pub(crate) fn delayed_store_id(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<Option<u64>, MetaError> {
        let key = object_key(vhost, name);
        self.with_db(|db| {
            let txn = db.begin_read().map_err(storage)?;
            match txn.open_table(DELAYED_STORE_IDS) {
                Ok(table) => Ok(table.get(key.as_str()).map_err(storage)?.map(|v| v.value())),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(storage(e)),
            }
        })
    }

    /// Every stored delayed exchange's message-store id, as (vhost, exchange name, id).
    pub(crate) fn delayed_store_ids(&self) -> Result<Vec<(String, String, u64)>, MetaError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(storage)?;
            let table = match txn.open_table(DELAYED_STORE_IDS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(storage(e)),
            };
            let mut out = Vec::new();
            for entry in table.iter().map_err(storage)? {
                let (key, id) = entry.map_err(storage)?;
                if let Some((vhost, name)) = key.value().split_once('\0') {
                    out.push((vhost.to_owned(), name.to_owned(), id.value()));
                }
            }
            Ok(out)
        })
    }

    /// Stores or replaces a queue; returns once committed.
    pub(crate) fn put_queue(&self, def: &QueueDef) -> Result<(), MetaError> {
        self.put(QUEUES, &object_key(&def.vhost, &def.name), def)
    }

    /// Removes a queue; returns once committed.
    pub(crate) fn remove_queue(&self, vhost: &str, name: &str) -> Result<(), MetaError> {
        self.remove(QUEUES, &object_key(vhost, name))
    }

    /// Stores a binding; returns once committed.
    pub(crate) fn put_binding(&self, def: &BindingDef) -> Result<(), MetaError> {
        self.put(BINDINGS, &def.key()?, def)
    }

    /// Removes a binding; returns once committed.
    pub(crate) fn remove_binding(&self, def: &BindingDef) -> Result<(), MetaError> {
        self.remove(BINDINGS, &def.key()?)
    }

    /// Stores or replaces a policy; returns once committed.
    pub(crate) fn put_policy(&self, def: &PolicyDef) -> Result<(), MetaError> {
        self.put(
            POLICIES,
            &policy_key(def.operator, &def.vhost, &def.name),
            def,
        )
    }

    /// Removes a policy; returns once committed.
    pub(crate) fn remove_policy(
        &self,
        operator: bool,
        vhost: &str,
        name: &str,
    ) -> Result<(), MetaError> {
        self.remove(POLICIES, &policy_key(operator, vhost, name))
    }

    /// Stores or replaces a runtime parameter; returns once committed.
    pub(crate) fn put_parameter(&self, def: &ParameterDef) -> Result<(), MetaError> {
        self.put(
            PARAMETERS,
            &parameter_key(&def.vhost, &def.component, &def.name),
            def,
        )
    }

    /// Removes a runtime parameter; returns once committed.
    pub(crate) fn remove_parameter(
        &self,
        vhost: &str,
        component: &str,
        name: &str,
    ) -> Result<(), MetaError> {
        self.remove(PARAMETERS, &parameter_key(vhost, component, name))
    }

    /// Stores or replaces a vhost; returns once committed.
    pub(crate) fn put_vhost(&self, def: &VhostDef) -> Result<(), MetaError> {
        self.put(VHOSTS, &def.name, def)
    }

    /// Removes a vhost record and every exchange, queue, binding, policy and permission of that vhost, in one
    /// transaction; returns once committed.
    pub(crate) fn remove_vhost(&self, vhost: &str) -> Result<(), MetaError> {
        let prefix = format!("{vhost}\0");
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(VHOSTS)
                .map_err(storage)?
                .remove(vhost)
                .map_err(storage)?;
            for table in [EXCHANGES, QUEUES, BINDINGS, PARAMETERS] {
                remove_where(&txn, table, |key| key.starts_with(&prefix))?;
            }
            let policy_keys = [format!("p\0{prefix}"), format!("o\0{prefix}")];
            remove_where(&txn, POLICIES, |key| {
                policy_keys.iter().any(|p| key.starts_with(p.as_str()))
            })?;
            let middle = format!("\0{vhost}");
            remove_where(&txn, PERMISSIONS, |key| key.ends_with(&middle))?;
            let middle = format!("\0{vhost}\0");
            remove_where(&txn, TOPIC_PERMISSIONS, |key| key.contains(&middle))?;
            txn.commit().map_err(storage)
        })
    }

    /// Stores or replaces a user; returns once committed.
    pub(crate) fn put_user(&self, def: &UserDefinition) -> Result<(), MetaError> {
        self.put(USERS, &def.name, def)
    }

    /// Removes a user and all its permissions and topic permissions, in one transaction.
    pub(crate) fn remove_user(&self, user: &str) -> Result<(), MetaError> {
        let prefix = format!("{user}\0");
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(USERS)
                .map_err(storage)?
                .remove(user)
                .map_err(storage)?;
            remove_where(&txn, PERMISSIONS, |key| key.starts_with(&prefix))?;
            remove_where(&txn, TOPIC_PERMISSIONS, |key| key.starts_with(&prefix))?;
            txn.commit().map_err(storage)
        })
    }

    /// Stores or replaces a permission.
    pub(crate) fn put_permission(&self, def: &PermissionDefinition) -> Result<(), MetaError> {
        self.put(PERMISSIONS, &object_key(&def.user, &def.vhost), def)
    }

    /// Removes a permission.
    pub(crate) fn remove_permission(&self, user: &str, vhost: &str) -> Result<(), MetaError> {
        self.remove(PERMISSIONS, &object_key(user, vhost))
    }

    /// Stores or replaces a topic permission.
    pub(crate) fn put_topic_permission(
        &self,
        def: &TopicPermissionDefinition,
    ) -> Result<(), MetaError> {
        let key = format!("{}\0{}\0{}", def.user, def.vhost, def.exchange);
        self.put(TOPIC_PERMISSIONS, &key, def)
    }

    /// Removes a topic permission.
    pub(crate) fn remove_topic_permission(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
    ) -> Result<(), MetaError> {
        self.remove(TOPIC_PERMISSIONS, &format!("{user}\0{vhost}\0{exchange}"))
    }

    /// Stores vhosts, users and permissions together (the first start's seed): all or nothing.
    pub(crate) fn seed(
        &self,
        vhosts: &[VhostDef],
        users: &[UserDefinition],
        permissions: &[PermissionDefinition],
    ) -> Result<(), MetaError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            insert_all(&txn, VHOSTS, vhosts.iter().map(|v| (v.name.clone(), v)))?;
            insert_all(&txn, USERS, users.iter().map(|u| (u.name.clone(), u)))?;
            let permissions = permissions
                .iter()
                .map(|p| (object_key(&p.user, &p.vhost), p));
            insert_all(&txn, PERMISSIONS, permissions)?;
            txn.commit().map_err(storage)
        })
    }

    /// Stores an import: every record of `batch` in one transaction (all or nothing), new queues getting fresh
    /// ids; returns once committed.
    pub(crate) fn import(&self, batch: &ImportBatch) -> Result<(), MetaError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            // A vhost listed twice: the later record wins, as inserting in order does.
            insert_all(
                &txn,
                VHOSTS,
                batch.vhosts.iter().map(|v| (v.name.clone(), v)),
            )?;
            insert_all(&txn, USERS, batch.users.iter().map(|u| (u.name.clone(), u)))?;
            let permissions = batch
                .permissions
                .iter()
                .map(|p| (object_key(&p.user, &p.vhost), p));
            insert_all(&txn, PERMISSIONS, permissions)?;
            let topic = batch
                .topic_permissions
                .iter()
                .map(|p| (format!("{}\0{}\0{}", p.user, p.vhost, p.exchange), p));
            insert_all(&txn, TOPIC_PERMISSIONS, topic)?;
            let policies = batch
                .policies
                .iter()
                .map(|p| (policy_key(p.operator, &p.vhost, &p.name), p));
            insert_all(&txn, POLICIES, policies)?;
            let exchanges = batch
                .exchanges
                .iter()
                .map(|x| (object_key(&x.vhost, &x.name), x));
            insert_all(&txn, EXCHANGES, exchanges)?;
            let mut queues = Vec::with_capacity(batch.queues.len());
            {
                let mut counters = txn.open_table(COUNTERS).map_err(storage)?;
                let mut next = counters
                    .get("queue_id")
                    .map_err(storage)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                for queue in &batch.queues {
                    next += 1;
                    queues.push(QueueDef {
                        id: next,
                        ..queue.clone()
                    });
                }
                counters.insert("queue_id", next).map_err(storage)?;
                if let Some(hash) = batch.content_hash {
                    counters.insert(IMPORTED_HASH, hash).map_err(storage)?;
                }
            }
            insert_all(
                &txn,
                QUEUES,
                queues.iter().map(|q| (object_key(&q.vhost, &q.name), q)),
            )?;
            let mut bindings = Vec::with_capacity(batch.bindings.len());
            for b in &batch.bindings {
                bindings.push((b.key()?, b));
            }
            insert_all(&txn, BINDINGS, bindings.into_iter())?;
            let parameters = batch
                .parameters
                .iter()
                .map(|p| (parameter_key(&p.vhost, &p.component, &p.name), p));
            insert_all(&txn, PARAMETERS, parameters)?;
            txn.commit().map_err(storage)
        })
    }

    /// The hash of the definitions file last imported at start, if any.
    pub(crate) fn imported_hash(&self) -> Result<Option<u64>, MetaError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(storage)?;
            let counters = txn.open_table(COUNTERS).map_err(storage)?;
            let hash = counters.get(IMPORTED_HASH).map_err(storage)?;
            Ok(hash.map(|v| v.value()))
        })
    }

    /// A new queue id for the message store, never reused.
    pub(crate) fn next_queue_id(&self) -> Result<u64, MetaError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            let id = {
                let mut counters = txn.open_table(COUNTERS).map_err(storage)?;
                let next = counters
                    .get("queue_id")
                    .map_err(storage)?
                    .map(|v| v.value())
                    .unwrap_or(0)
                    + 1;
                counters.insert("queue_id", next).map_err(storage)?;
                next
            };
            txn.commit().map_err(storage)?;
            Ok(id)
        })
    }

    /// Reads everything stored (at start).
    pub(crate) fn load(&self) -> Result<Definitions, MetaError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(storage)?;
            Ok(Definitions {
                exchanges: read_all(&txn, EXCHANGES)?,
                queues: read_all(&txn, QUEUES)?,
                bindings: read_all(&txn, BINDINGS)?,
                policies: read_all(&txn, POLICIES)?,
                vhosts: read_all(&txn, VHOSTS)?,
                users: read_all(&txn, USERS)?,
                permissions: read_all(&txn, PERMISSIONS)?,
                topic_permissions: read_all(&txn, TOPIC_PERMISSIONS)?,
                parameters: read_all(&txn, PARAMETERS)?,
            })
        })
    }
}

/// Inserts (key, record) pairs into `table`, records as JSON.
fn insert_all<'r, T: Serialize + 'r>(
    txn: &redb::WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    rows: impl Iterator<Item = (String, &'r T)>,
) -> Result<(), MetaError> {
    let mut table = txn.open_table(table).map_err(storage)?;
    for (key, record) in rows {
        let bytes = serde_json::to_vec(record).map_err(storage)?;
        table
            .insert(key.as_str(), bytes.as_slice())
            .map_err(storage)?;
    }
    Ok(())
}

/// Removes the records of `table` whose key `doomed` picks.
fn remove_where(
    txn: &redb::WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    doomed: impl Fn(&str) -> bool,
) -> Result<(), MetaError> {
    let mut table = txn.open_table(table).map_err(storage)?;
    let mut keys = Vec::new();
    for entry in table.iter().map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        if doomed(key.value()) {
            keys.push(key.value().to_owned());
        }
    }
    for key in keys {
        table.remove(key.as_str()).map_err(storage)?;
    }
    Ok(())
}

fn read_all<T: for<'de> Deserialize<'de>>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, MetaError> {
    let table = txn.open_table(table).map_err(storage)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let item = serde_json::from_slice(value.value()).map_err(|e| MetaError::Corrupt {
            key: key.value().replace('\0', "/"),
            error: e.to_string(),
        })?;
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::AMQPValue;

    #[test]
    fn definitions_survive_reopen_and_removals_stick() {
        let dir = std::env::temp_dir().join(format!("warren-meta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("definitions.redb");
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
        let queue = QueueDef {
            vhost: "/".into(),
            name: "q".into(),
            id: 0,
            auto_delete: false,
            arguments: args.clone(),
        };
        let binding = BindingDef {
            vhost: "/".into(),
            source: "x".into(),
            destination: "q".into(),
            destination_is_queue: true,
            routing_key: "k".into(),
            arguments: args,
        };
        {
            let store = DefinitionStore::open(&path).unwrap();
            let id = store.next_queue_id().unwrap();
            assert_eq!(store.next_queue_id().unwrap(), id + 1);
            store
                .put_queue(&QueueDef {
                    id,
                    ..queue.clone()
                })
                .unwrap();
            store.put_binding(&binding).unwrap();
            store
                .put_exchange(&ExchangeDef {
                    vhost: "/".into(),
                    name: "x".into(),
                    kind: "topic".into(),
                    auto_delete: false,
                    internal: false,
                    arguments: FieldTable::default(),
                })
                .unwrap();
            store.remove_exchange("/", "x").unwrap();
        }
        let store = DefinitionStore::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.exchanges.is_empty());
        assert_eq!(loaded.queues.len(), 1);
        assert_eq!(loaded.queues[0].name, "q");
        assert_eq!(loaded.bindings, vec![binding.clone()]);
        assert!(store.next_queue_id().unwrap() > loaded.queues[0].id);
        store.remove_binding(&binding).unwrap();
        assert!(store.load().unwrap().bindings.is_empty());
        let policy = PolicyDef {
            operator: true,
            vhost: "/".into(),
            name: "limit".into(),
            pattern: ".*".into(),
            apply_to: "queues".into(),
            priority: 1,
            definition: serde_json::json!({"max-length": 10}),
        };
        store.put_policy(&policy).unwrap();
        drop(store);
        let store = DefinitionStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap().policies, vec![policy]);
        store.remove_policy(true, "/", "limit").unwrap();
        assert!(store.load().unwrap().policies.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
