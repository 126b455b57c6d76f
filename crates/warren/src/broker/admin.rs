//! The run-time administration of users, permissions and vhosts, shaped for the management HTTP API (RabbitMQ's
//! JSON objects for users and permissions): each change is committed to the definitions store, then installed in
//! the access table, whose generation tells channels that a remembered decision may be stale, so a change
//! applies to the next method. Every call but `delete_vhost` blocks on a disk commit: call them off the async
//! workers (`tokio::task::spawn_blocking`).

use std::sync::Arc;

use super::Broker;
use crate::auth::access::AccessTable;
use crate::auth::limits::{self, LimitMap};
use crate::auth::password::{hash_password, HashingAlgorithm};
use crate::auth::users::{CompiledPermission, CompiledTopicPermission};
pub use crate::auth::users::{PermissionDefinition, TopicPermissionDefinition, UserDefinition};
use crate::event::Event;
use crate::meta::{MetaError, VhostDef};
use crate::registry::CloseRequest;
use crate::vhost::{default_queue_type_name, parse_default_queue_type, Vhost};

/// The `user_who_performed_action` of the events of this API's changes: RabbitMQ's name for its CLI, whose
/// commands these calls are (the management API will pass its own user).
pub(crate) const ADMIN_USER: &str = "rmq-cli";

/// Why an administrative change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `add_user` of a name that exists.
    #[error("user '{0}' already exists")]
    UserExists(String),
    /// The user named does not exist.
    #[error("no user '{0}'")]
    NoSuchUser(String),
    /// `add_vhost` of a name that exists.
    #[error("vhost '{0}' already exists")]
    VhostExists(String),
    /// The vhost named does not exist.
    #[error("no vhost '{0}'")]
    NoSuchVhost(String),
    /// A value does not pass the checks (a bad regex, an unknown hashing algorithm, a malformed hash).
    #[error("{0}")]
    Invalid(String),
    /// The definitions store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] MetaError),
    /// The cluster could not commit the change (no quorum); nothing changed.
    #[error("{0}")]
    Cluster(String),
}

impl Broker {
    /// Every user, by name, as stored (passwords hashed).
    pub fn users(&self) -> Vec<UserDefinition> {
        self.access.users()
    }

    /// Every permission.
    pub fn permissions(&self) -> Vec<PermissionDefinition> {
        self.access.permissions()
    }

    /// Every topic permission.
    pub fn topic_permissions(&self) -> Vec<TopicPermissionDefinition> {
        self.access.topic_permissions()
    }

    /// The definitions as stored (durable objects only, as an export has them).
    pub(crate) fn stored_definitions(&self) -> Result<crate::meta::Definitions, MetaError> {
        self.stores.definitions.load()
    }

    /// The vhost names, sorted.
    pub fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vhosts.iter().map(|v| v.key().clone()).collect();
        names.sort();
        names
    }

    /// `rabbitmqctl add_user`: a new user with `password` hashed by SHA-256 and `tags`.
    pub fn add_user(
        &self,
        name: &str,
        password: &str,
        tags: Vec<String>,
    ) -> Result<(), AdminError> {
        if self.access.user(name).is_some() {
            return Err(AdminError::UserExists(name.to_owned()));
        }
        self.put_user(UserDefinition::with_password(name, password, tags.clone()))?;
        self.events
            .emit(|| Event::user("user.created", name, ADMIN_USER));
        if !tags.is_empty() {
            self.events
                .emit(|| Event::user_tags_set(name, &tags, ADMIN_USER));
        }
        Ok(())
    }

    /// The management API's `PUT /api/users/{name}`: creates or replaces a user from its definition, the hash
    /// taken as given (a user exported from RabbitMQ keeps its password and algorithm). Existing permissions stay.
    pub fn put_user(&self, user: UserDefinition) -> Result<(), AdminError> {
        user.validate().map_err(AdminError::Invalid)?;
        let _guard = self.access.lock();
        self.stores.definitions.put_user(&user)?;
        let mut table: AccessTable = (*self.access.table()).clone();
        tracing::info!("user '{}' stored with tags {:?}", user.name, user.tags);
        table.users.insert(user.name.clone(), Arc::new(user));
        self.access.replace(table);
        Ok(())
    }

    /// `rabbitmqctl change_password`: hashes `password` with SHA-256 and a new salt. Open connections stay.
    pub fn change_password(&self, name: &str, password: &str) -> Result<(), AdminError> {
        let Some(user) = self.access.user(name) else {
            return Err(AdminError::NoSuchUser(name.to_owned()));
        };
        self.put_user(UserDefinition {
            password_hash: hash_password(HashingAlgorithm::Sha256, password),
            hashing_algorithm: HashingAlgorithm::Sha256.name().to_owned(),
            ..(*user).clone()
        })?;
        self.events
            .emit(|| Event::user("user.password.changed", name, ADMIN_USER));
        Ok(())
    }

    /// `rabbitmqctl delete_user`: removes the user with its permissions and closes its connections with 320
    /// CONNECTION_FORCED "user '<name>' is deleted", as RabbitMQ does.
    pub fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        {
            let _guard = self.access.lock();
            if self.access.user(name).is_none() {
                return Err(AdminError::NoSuchUser(name.to_owned()));
            }
            self.stores.definitions.remove_user(name)?;
            let mut table = (*self.access.table()).clone();
            table.remove_user(name);
            self.access.replace(table);
        }
        tracing::info!("deleted user '{name}'; closing its connections");
        self.events
            .emit(|| Event::user("user.deleted", name, ADMIN_USER));
        let reason = CloseRequest::forced(format!("user '{name}' is deleted"));
        for c in self.connections.list() {
            if c.details.user == name {
                self.connections.close(c.details.id, reason.clone());
            }
        }
        Ok(())
    }

    /// `rabbitmqctl set_user_limits`: sets the limits given (`max-connections`, `max-channels`; negative means
    /// none), keeping the user's others. They apply to the next connection and channel; open ones stay.
    pub fn set_user_limits(&self, name: &str, limits: LimitMap) -> Result<(), AdminError> {
        let Some(user) = self.access.user(name) else {
            return Err(AdminError::NoSuchUser(name.to_owned()));
        };
        limits::validate("user-limits", &limits, limits::USER_LIMIT_KEYS)
            .map_err(AdminError::Invalid)?;
        let mut user = (*user).clone();
        user.limits.extend(limits);
        self.put_user(user)
    }

    /// `rabbitmqctl clear_user_limits`: removes one limit, or all of them when `key` is None.
    pub fn clear_user_limits(&self, name: &str, key: Option<&str>) -> Result<(), AdminError> {
        let Some(user) = self.access.user(name) else {
            return Err(AdminError::NoSuchUser(name.to_owned()));
        };
        let mut user = (*user).clone();
        match key {
            Some(key) => {
                user.limits.remove(key);
            }
            None => user.limits.clear(),
        }
        self.put_user(user)
    }

    /// A vhost's limits as set (RabbitMQ's `vhost-limits` parameter); None if there is no such vhost.
    pub fn vhost_limits(&self, name: &str) -> Option<LimitMap> {
        self.vhost(name).map(|v| v.limits())
    }

    /// `rabbitmqctl set_vhost_limits`: replaces the vhost's limits (`max-connections`, `max-queues`; negative
    /// means none). They apply to the next connection and the next new queue; what is open stays.
    pub fn set_vhost_limits(&self, name: &str, limits: LimitMap) -> Result<(), AdminError> {
        limits::validate("limits", &limits, limits::VHOST_LIMIT_KEYS)
            .map_err(AdminError::Invalid)?;
        let _guard = self.access.lock();
        let Some(vhost) = self.vhost(name) else {
            return Err(AdminError::NoSuchVhost(name.to_owned()));
        };
        self.stores.definitions.put_vhost(&VhostDef {
            name: name.to_owned(),
            limits: limits.clone(),
            default_queue_type: vhost
                .default_queue_type()
                .map(|t| default_queue_type_name(Some(t)).to_owned()),
        })?;
        tracing::info!("vhost '{name}' limits set to {limits:?}");
        self.events.emit(|| {
            let set: Vec<(String, i64)> = limits
                .iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or_default()))
                .collect();
            Event::vhost_limits((!set.is_empty()).then_some(&set[..]), ADMIN_USER)
        });
        vhost.set_limits(limits);
        Ok(())
    }

    /// `rabbitmqctl clear_vhost_limits`.
    pub fn clear_vhost_limits(&self, name: &str) -> Result<(), AdminError> {
        self.set_vhost_limits(name, LimitMap::new())
    }

    /// `rabbitmqctl trace_on -p VHOST` (`on`) and `trace_off`: every publish and delivery in the vhost is copied
    /// to its `amq.rabbitmq.trace` exchange while on. Not stored: a restart keeps only `[server] trace_vhosts`, as
    /// RabbitMQ keeps only its `trace_vhosts` setting.
    pub fn set_tracing(&self, vhost: &str, on: bool) -> Result<(), AdminError> {
        let Some(v) = self.vhost(vhost) else {
            return Err(AdminError::NoSuchVhost(vhost.to_owned()));
        };
        match (v.set_tracing(on), on) {
            (true, true) => tracing::info!("Enabling tracing for vhost '{vhost}'"),
            (true, false) => tracing::info!("Disabling tracing for vhost '{vhost}'"),
            (false, true) => tracing::info!("Tracing is already enabled for vhost '{vhost}'"),
            (false, false) => tracing::info!("Tracing is already disabled for vhost '{vhost}'"),
        }
        Ok(())
    }

    /// Whether the vhost has tracing on; None if there is no such vhost.
    pub fn tracing(&self, vhost: &str) -> Option<bool> {
        self.vhost(vhost).map(|v| v.is_tracing())
    }

    /// `rabbitmqctl set_permissions`: sets (replaces) a user's regexes in a vhost; applies to the next method of
    /// every open channel of that user.
    pub fn set_permissions(&self, permission: PermissionDefinition) -> Result<(), AdminError> {
        self.check_user_and_vhost(&permission.user, &permission.vhost)?;
        let compiled = CompiledPermission::new(permission).map_err(AdminError::Invalid)?;
        let _guard = self.access.lock();
        self.stores
            .definitions
            .put_permission(&compiled.definition)?;
        let mut table = (*self.access.table()).clone();
        self.events.emit(|| {
            let p = &compiled.definition;
            Event::permission_created(
                &p.user,
                &p.vhost,
                &p.configure,
                &p.write,
                &p.read,
                ADMIN_USER,
            )
        });
        table.set_permission(compiled);
        self.access.replace(table);
        Ok(())
    }

    /// `rabbitmqctl clear_permissions`: the user may no longer open the vhost; its channels there are refused
    /// from their next method on. Ok(false) if there was no permission.
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<bool, AdminError> {
        let _guard = self.access.lock();
        let mut table = (*self.access.table()).clone();
        let removed = table
            .permissions
            .get_mut(user)
            .and_then(|p| p.remove(vhost))
            .is_some();
        if removed {
            self.stores.definitions.remove_permission(user, vhost)?;
            self.access.replace(table);
            self.events
                .emit(|| Event::permission_deleted("permission.deleted", user, vhost, ADMIN_USER));
        }
        Ok(removed)
    }

    /// `rabbitmqctl set_topic_permissions`: the user's write and read regexes for routing keys on a topic
    /// exchange.
    pub fn set_topic_permissions(
        &self,
        permission: TopicPermissionDefinition,
    ) -> Result<(), AdminError> {
        self.check_user_and_vhost(&permission.user, &permission.vhost)?;
        let compiled = CompiledTopicPermission::new(permission).map_err(AdminError::Invalid)?;
        let _guard = self.access.lock();
        self.stores
            .definitions
            .put_topic_permission(&compiled.definition)?;
        let mut table = (*self.access.table()).clone();
        self.events.emit(|| {
            let p = &compiled.definition;
            Event::topic_permission_created(
                &p.user,
                &p.vhost,
                &p.exchange,
                &p.write,
                &p.read,
                ADMIN_USER,
            )
        });
        table.set_topic_permission(compiled);
        self.access.replace(table);
        Ok(())
    }

    /// `rabbitmqctl clear_topic_permissions` for one exchange; Ok(false) if there was none.
    pub fn clear_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
    ) -> Result<bool, AdminError> {
        let _guard = self.access.lock();
        let mut table = (*self.access.table()).clone();
        let removed = table
            .topic_permissions
            .get_mut(&(user.to_owned(), vhost.to_owned()))
            .and_then(|p| p.remove(exchange))
            .is_some();
        if removed {
            self.stores
                .definitions
                .remove_topic_permission(user, vhost, exchange)?;
            self.access.replace(table);
            self.events.emit(|| {
                Event::permission_deleted("topic.permission.deleted", user, vhost, ADMIN_USER)
            });
        }
        Ok(removed)
    }

    /// A vhost's default queue type as RabbitMQ names it (`undefined` when none is set); None if there is no
    /// such vhost.
    pub fn vhost_default_queue_type(&self, name: &str) -> Option<&'static str> {
        self.vhost(name)
            .map(|v| default_queue_type_name(v.default_queue_type()))
    }

    /// A vhost's default queue type (`rabbitmqctl add_vhost --default-queue-type`, `update_vhost_metadata`): the
    /// type of the queues declared in it from now on without `x-queue-type`; None clears it.
    pub fn set_vhost_default_queue_type(
        &self,
        name: &str,
        queue_type: Option<&str>,
    ) -> Result<(), AdminError> {
        let parsed = match queue_type {
            None => None,
            Some(text) => parse_default_queue_type(text).map_err(AdminError::Invalid)?,
        };
        let _guard = self.access.lock();
        let Some(vhost) = self.vhost(name) else {
            return Err(AdminError::NoSuchVhost(name.to_owned()));
        };
        self.stores.definitions.put_vhost(&VhostDef {
            name: name.to_owned(),
            limits: vhost.limits(),
            default_queue_type: parsed.map(|t| default_queue_type_name(Some(t)).to_owned()),
        })?;
        vhost.set_default_queue_type(parsed);
        tracing::info!(
            "vhost '{name}' default queue type set to {}",
            default_queue_type_name(parsed)
        );
        Ok(())
    }

    /// `rabbitmqctl add_vhost`: an empty vhost with the predeclared exchanges; nobody may open it until given
    /// permissions.
    pub fn add_vhost(&self, name: &str) -> Result<(), AdminError> {
        if name.is_empty() {
            return Err(AdminError::Invalid(
                "vhost name must not be empty".to_owned(),
            ));
        }
        let _guard = self.access.lock();
        if self.vhosts.contains_key(name) {
            return Err(AdminError::VhostExists(name.to_owned()));
        }
        self.stores.definitions.put_vhost(&VhostDef {
            name: name.to_owned(),
            ..VhostDef::default()
        })?;
        let vhost = Vhost::new(
            name,
            Arc::from(self.config.server.cluster_name.as_str()),
            Some(self.stores.clone()),
            self.flow_limits,
            self.queue_defaults,
            self.events.clone(),
            self.metrics.clone(),
        );
        if let Some(replication) = self.replication.get() {
            vhost.set_replication(replication.clone());
        }
        self.events.emit(|| {
            Event::vhost_created(
                name,
                &self.config.server.cluster_name,
                vhost.is_tracing(),
                ADMIN_USER,
            )
        });
        self.vhosts.insert(name.to_owned(), vhost);
        tracing::info!("added vhost '{name}'");
        Ok(())
    }

    /// `rabbitmqctl delete_vhost`: closes the vhost's connections with 320 CONNECTION_FORCED "vhost '<name>' is
    /// deleted" (RabbitMQ's text), deletes its queues with their messages, and removes it, its exchanges,
    /// bindings, policies and permissions from the definitions store.
    pub async fn delete_vhost(&self, name: &str) -> Result<(), AdminError> {
        let vhost = {
            let _guard = self.access.lock();
            let Some((_, vhost)) = self.vhosts.remove(name) else {
                return Err(AdminError::NoSuchVhost(name.to_owned()));
            };
            let mut table = (*self.access.table()).clone();
            table.remove_vhost(name);
            self.access.replace(table);
            vhost
        };
        tracing::info!("deleting vhost '{name}'; closing its connections");
        self.events.emit(|| Event::vhost_deleted(name, ADMIN_USER));
        let reason = CloseRequest::forced(format!("vhost '{name}' is deleted"));
        for c in self.connections.list() {
            if c.details.vhost == name {
                self.connections.close(c.details.id, reason.clone());
            }
        }
        self.shovels.stop_all(Some(name));
        self.parameters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(v, _, _), _| v != name);
        vhost.delete_all_queues(ADMIN_USER).await;
        vhost.stop_all_delayed();
        vhost.stop_all_dedup();
        let stores = self.stores.clone();
        let owned = name.to_owned();
        tokio::task::spawn_blocking(move || stores.definitions.remove_vhost(&owned))
            .await
            .map_err(|e| AdminError::Store(MetaError::Storage(e.to_string())))??;
        Ok(())
    }

    fn check_user_and_vhost(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if self.access.user(user).is_none() {
            return Err(AdminError::NoSuchUser(user.to_owned()));
        }
        if !self.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn users_permissions_and_vhosts_survive_a_restart_and_are_seeded_once() {
        let dir = std::env::temp_dir().join(format!("warren-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        {
            let broker = Broker::open(config.clone()).unwrap();
            broker.add_vhost("v").unwrap();
            assert!(matches!(
                broker.add_vhost("v"),
                Err(AdminError::VhostExists(_))
            ));
            broker
                .add_user("u", "pw", vec!["management".into()])
                .unwrap();
            assert!(matches!(
                broker.add_user("u", "pw", Vec::new()),
                Err(AdminError::UserExists(_))
            ));
            broker
                .set_permissions(PermissionDefinition {
                    user: "u".into(),
                    vhost: "v".into(),
                    configure: "^c".into(),
                    write: "^w".into(),
                    read: "^r".into(),
                })
                .unwrap();
            assert!(matches!(
                broker.set_permissions(PermissionDefinition {
                    user: "u".into(),
                    vhost: "v".into(),
                    configure: "(".into(),
                    write: "".into(),
                    read: "".into(),
                }),
                Err(AdminError::Invalid(_))
            ));
            broker
                .set_topic_permissions(TopicPermissionDefinition {
                    user: "u".into(),
                    vhost: "v".into(),
                    exchange: "amq.topic".into(),
                    write: "^a".into(),
                    read: "^b".into(),
                })
                .unwrap();
            let limits = |json: &str| serde_json::from_str::<LimitMap>(json).unwrap();
            broker
                .set_vhost_limits("v", limits(r#"{"max-queues": 7}"#))
                .unwrap();
            broker
                .set_user_limits("u", limits(r#"{"max-channels": 3}"#))
                .unwrap();
            broker.delete_user("guest").unwrap();
            assert!(matches!(
                broker.delete_user("guest"),
                Err(AdminError::NoSuchUser(_))
            ));
        }
        // The store is not empty: the config's default user (guest) is not created again.
        let broker = Broker::open(config).unwrap();
        assert_eq!(broker.vhost_names(), vec!["/".to_owned(), "v".to_owned()]);
        let users = broker.users();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "u");
        assert_eq!(users[0].tags, vec!["management".to_owned()]);
        assert_eq!(users[0].limits.get("max-channels"), Some(&3.into()));
        assert_eq!(
            broker
                .vhost_limits("v")
                .and_then(|l| l.get("max-queues").cloned()),
            Some(7.into())
        );
        let permissions = broker.permissions();
        assert_eq!(permissions.len(), 1);
        assert_eq!(permissions[0].configure, "^c");
        assert_eq!(broker.topic_permissions().len(), 1);
        assert!(broker.access.may_open("u", "v"));
        assert!(broker
            .access
            .check("u", "v", "queue", "rq", crate::auth::users::Access::Read)
            .is_ok());
        drop(broker);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
