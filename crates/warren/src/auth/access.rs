//! The access table every connection checks against: users, their permissions per vhost and their topic
//! permissions, replaced whole on each change (readers never lock) with a generation that moves on with every
//! change, so a channel can keep a decision until the generation says it may be stale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use warren_protocol::error::{AmqpError, ReplyCode};

use super::users::{
    Access, CompiledPermission, CompiledTopicPermission, PermissionDefinition,
    TopicPermissionDefinition, UserDefinition,
};

/// Users and their permissions at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct AccessTable {
    /// Users by name.
    pub(crate) users: HashMap<String, Arc<UserDefinition>>,
    /// Permissions by user, then vhost: a user with no entry for a vhost may not open it.
    pub(crate) permissions: HashMap<String, HashMap<String, Arc<CompiledPermission>>>,
    /// Topic permissions by (user, vhost), then exchange: an exchange with no entry is not restricted.
    pub(crate) topic_permissions:
        HashMap<(String, String), HashMap<String, Arc<CompiledTopicPermission>>>,
}

impl AccessTable {
    /// Adds or replaces a permission.
    pub(crate) fn set_permission(&mut self, permission: Arc<CompiledPermission>) {
        let d = &permission.definition;
        self.permissions
            .entry(d.user.clone())
            .or_default()
            .insert(d.vhost.clone(), permission.clone());
    }

    /// Adds or replaces a topic permission.
    pub(crate) fn set_topic_permission(&mut self, permission: Arc<CompiledTopicPermission>) {
        let d = &permission.definition;
        self.topic_permissions
            .entry((d.user.clone(), d.vhost.clone()))
            .or_default()
            .insert(d.exchange.clone(), permission.clone());
    }

    /// Removes everything of `user`.
    pub(crate) fn remove_user(&mut self, user: &str) {
        self.users.remove(user);
        self.permissions.remove(user);
        self.topic_permissions.retain(|(u, _), _| u != user);
    }

    /// Removes every permission in `vhost`.
    pub(crate) fn remove_vhost(&mut self, vhost: &str) {
        for per_vhost in self.permissions.values_mut() {
            per_vhost.remove(vhost);
        }
        self.topic_permissions.retain(|(_, v), _| v != vhost);
    }
}

/// The broker's access table and its generation.
#[derive(Default)]
pub(crate) struct AccessControl {
    /// The current table; read lock-free by every check.
    table: ArcSwap<AccessTable>,
    /// Moves on after every change; channels compare it to reuse a publish decision (see `channel::route_cache`).
    generation: AtomicU64,
    /// Serialises changes, so two concurrent changes cannot lose one another.
    changes: Mutex<()>,
    /// The password of [`INTERNAL_USER`], random per process and never stored.
    internal_secret: String,
}

/// The user of the node's own shovels and federation links when they connect to this node (RabbitMQ's direct
/// connections, `amqp://` with no host): it logs in from loopback with the process's random secret only, may do
/// anything in every vhost, and may publish messages whose `user_id` names another user (RabbitMQ's shovels and
/// federation links run with the same rights). No stored user may take this name.
pub(crate) const INTERNAL_USER: &str = "warren-internal";

impl AccessControl {
    /// A control holding `table`.
    pub(crate) fn new(table: AccessTable) -> AccessControl {
        AccessControl {
            table: ArcSwap::from_pointee(table),
            generation: AtomicU64::new(0),
            changes: Mutex::new(()),
            internal_secret: (0..32)
                .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16)]))
                .collect(),
        }
    }

    /// The password [`INTERNAL_USER`] logs in with.
    pub(crate) fn internal_secret(&self) -> &str {
        &self.internal_secret
    }

    /// The generation: equal values mean no permission changed in between.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current table.
    pub(crate) fn table(&self) -> Arc<AccessTable> {
        self.table.load_full()
    }

    /// Serialises a change: read the table, persist, then [`AccessControl::replace`] while holding the guard.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs `table` and moves the generation on (call with [`AccessControl::lock`] held).
    pub(crate) fn replace(&self, table: AccessTable) {
        self.table.store(Arc::new(table));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The user `name`.
    pub(crate) fn user(&self, name: &str) -> Option<Arc<UserDefinition>> {
        self.table.load().users.get(name).cloned()
    }

    /// The user's limit `key` (`max-connections`, `max-channels`); None when unlimited or no such user.
    pub(crate) fn user_limit(&self, user: &str, key: &str) -> Option<u64> {
        let table = self.table();
        super::limits::limit(&table.users.get(user)?.limits, key)
    }

    /// Whether `user` has any permission in `vhost` (RabbitMQ's `check_vhost_access`).
    pub(crate) fn may_open(&self, user: &str, vhost: &str) -> bool {
        user == INTERNAL_USER
            || self
                .table
                .load()
                .permissions
                .get(user)
                .is_some_and(|p| p.contains_key(vhost))
    }

    /// RabbitMQ's `check_resource_access`: 403 unless `user`'s permission in `vhost` grants `access` to the
    /// `kind` (`queue` or `exchange`) named `name`. The default exchange is checked, and named, as `amq.default`.
    pub(crate) fn check(
        &self,
        user: &str,
        vhost: &str,
        kind: &str,
        name: &str,
        access: Access,
    ) -> Result<(), AmqpError> {
        if user == INTERNAL_USER {
            return Ok(());
        }
        let name = if kind == "exchange" && name.is_empty() {
            "amq.default"
        } else {
            name
        };
        let allowed = self
            .table
            .load()
            .permissions
            .get(user)
            .and_then(|p| p.get(vhost))
            .is_some_and(|p| p.allows(access, name));
        if allowed {
            return Ok(());
        }
        // RabbitMQ 3.x's text names no permission ("configure access to …" is 4.0's).
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
        )))
    }

    /// RabbitMQ's `check_topic_access` for a topic exchange: 403 unless the user's topic permission on
    /// `exchange` (if any) grants `access` to `routing_key`.
    pub(crate) fn check_topic(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        access: Access,
    ) -> Result<(), AmqpError> {
        if user == INTERNAL_USER {
            return Ok(());
        }
        let table = self.table.load();
        let Some(permission) = table
            .topic_permissions
            .get(&(user.to_owned(), vhost.to_owned()))
            .and_then(|p| p.get(exchange))
        else {
            return Ok(());
        };
        if permission.allows(access, user, vhost, routing_key) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
        )))
    }

    /// Every user, by name.
    pub(crate) fn users(&self) -> Vec<UserDefinition> {
        let mut users: Vec<UserDefinition> = self
            .table
            .load()
            .users
            .values()
            .map(|u| (**u).clone())
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// Every permission, by user then vhost.
    pub(crate) fn permissions(&self) -> Vec<PermissionDefinition> {
        let mut all: Vec<PermissionDefinition> = self
            .table
            .load()
            .permissions
            .values()
            .flat_map(|p| p.values().map(|c| c.definition.clone()))
            .collect();
        all.sort_by(|a, b| (&a.user, &a.vhost).cmp(&(&b.user, &b.vhost)));
        all
    }

    /// Every topic permission, by user, vhost, exchange.
    pub(crate) fn topic_permissions(&self) -> Vec<TopicPermissionDefinition> {
        let mut all: Vec<TopicPermissionDefinition> = self
            .table
            .load()
            .topic_permissions
            .values()
            .flat_map(|p| p.values().map(|c| c.definition.clone()))
            .collect();
        all.sort_by(|a, b| (&a.user, &a.vhost, &a.exchange).cmp(&(&b.user, &b.vhost, &b.exchange)));
        all
    }
}

/// 530 on connection.open to a vhost the user has no permission in (RabbitMQ's text).
pub(crate) fn vhost_refused(user: &str, vhost: &str) -> AmqpError {
    AmqpError::new(
        ReplyCode::NotAllowed,
        format!("access to vhost '{vhost}' refused for user '{user}'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> AccessControl {
        let mut table = AccessTable::default();
        table.set_permission(
            CompiledPermission::new(PermissionDefinition {
                user: "u".into(),
                vhost: "/".into(),
                configure: "^conf".into(),
                write: "^amq\\.default$".into(),
                read: "".into(),
            })
            .unwrap(),
        );
        table.set_topic_permission(
            CompiledTopicPermission::new(TopicPermissionDefinition {
                user: "u".into(),
                vhost: "/".into(),
                exchange: "amq.topic".into(),
                write: "^{username}\\.".into(),
                read: ".*".into(),
            })
            .unwrap(),
        );
        AccessControl::new(table)
    }

    #[test]
    fn refusals_carry_rabbitmq_texts() {
        let c = control();
        assert!(c.may_open("u", "/"));
        assert!(!c.may_open("u", "other"));
        assert!(c
            .check("u", "/", "queue", "conf-q", Access::Configure)
            .is_ok());
        let e = c.check("u", "/", "queue", "q", Access::Read).unwrap_err();
        assert_eq!(
            e.short_text(),
            "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'u'"
        );
        assert!(c.check("u", "/", "exchange", "", Access::Write).is_ok());
        let e = c
            .check("u", "/", "exchange", "x", Access::Write)
            .unwrap_err();
        assert_eq!(
            e.short_text(),
            "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'"
        );
        assert!(c
            .check("nobody", "/", "queue", "conf", Access::Configure)
            .is_err());
    }

    #[test]
    fn topic_permissions_restrict_only_their_exchange() {
        let c = control();
        assert!(c
            .check_topic("u", "/", "amq.topic", "u.a", Access::Write)
            .is_ok());
        let e = c
            .check_topic("u", "/", "amq.topic", "v.a", Access::Write)
            .unwrap_err();
        assert_eq!(
            e.short_text(),
            "ACCESS_REFUSED - access to topic 'v.a' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
        );
        assert!(c
            .check_topic("u", "/", "other", "v.a", Access::Write)
            .is_ok());
    }

    #[test]
    fn every_change_moves_the_generation() {
        let c = control();
        let before = c.generation();
        let mut table = (*c.table()).clone();
        table.remove_user("u");
        {
            let _guard = c.lock();
            c.replace(table);
        }
        assert!(c.generation() > before);
        assert!(!c.may_open("u", "/"));
    }
}
