//! The definitions group's state machine: each committed [`MetaCommand`] is applied to this node's broker through
//! [`MetaApplier`], in log order, on every node. It also keeps what the commands amount to ([`MetaState`]: the
//! vhosts and permissions made through the cluster), which is what a snapshot carries to a node that fell behind.
//!
//! The applied position is kept in memory: after a restart the log is applied again from its start, which the
//! commands tolerate (each is refused or repeated harmlessly where it already took effect). Logs are never purged
//! (the group runs with no snapshot policy), so that replay always has the whole log.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::types::{MetaCommand, MetaResponse, MetaTypes};
use super::ClusterNode;
use crate::auth::users::{PermissionDefinition, UserDefinition};
use crate::policy::{PolicyInput, PolicyKind};

/// Where committed definition changes take effect: the node's broker.
pub(crate) trait MetaApplier: Send + Sync + 'static {
    /// Applies `command` on this node; `Err` carries the refusal's text (the same on every node).
    fn apply<'a>(
        &'a self,
        command: &'a MetaCommand,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// What the applied commands amount to.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MetaState {
    /// Vhosts created through the cluster and not deleted since.
    pub(crate) vhosts: BTreeSet<String>,
    /// Their default queue types set through the cluster, by vhost.
    pub(crate) default_queue_types: BTreeMap<String, String>,
    /// Users put through the cluster and not deleted since, by name.
    pub(crate) users: BTreeMap<String, UserDefinition>,
    /// Policies set through the cluster: (kind, vhost, name) → input.
    pub(crate) policies: BTreeMap<(PolicyKind, String, String), PolicyInput>,
    /// Permissions set through the cluster, by (user, vhost).
    pub(crate) permissions: BTreeMap<(String, String), PermissionDefinition>,
}

impl MetaState {
    fn record(&mut self, command: &MetaCommand) {
        match command {
            MetaCommand::AddVhost { name } => {
                self.vhosts.insert(name.clone());
            }
            MetaCommand::SetVhostDefaultQueueType { vhost, queue_type } => match queue_type {
                Some(queue_type) => {
                    self.default_queue_types
                        .insert(vhost.clone(), queue_type.clone());
                }
                None => {
                    self.default_queue_types.remove(vhost);
                }
            },
            MetaCommand::DeleteVhost { name } => {
                self.vhosts.remove(name);
                self.default_queue_types.remove(name);
                self.permissions.retain(|(_, vhost), _| vhost != name);
                self.policies.retain(|(_, vhost, _), _| vhost != name);
            }
            MetaCommand::PutUser { user } => {
                self.users.insert(user.name.clone(), user.clone());
            }
            MetaCommand::DeleteUser { name } => {
                self.users.remove(name);
                self.permissions.retain(|(user, _), _| user != name);
            }
            MetaCommand::ClearPermissions { user, vhost } => {
                self.permissions.remove(&(user.clone(), vhost.clone()));
            }
            MetaCommand::SetPolicy {
                kind,
                vhost,
                name,
                input,
            } => {
                self.policies
                    .insert((*kind, vhost.clone(), name.clone()), input.clone());
            }
            MetaCommand::ClearPolicy { kind, vhost, name } => {
                self.policies.remove(&(*kind, vhost.clone(), name.clone()));
            }
            MetaCommand::SetPermissions { permission } => {
                let key = (permission.user.clone(), permission.vhost.clone());
                self.permissions.insert(key, permission.clone());
            }
            // Not in snapshots: this group's log is never purged (see the module's documentation), so a node
            // that falls behind receives these entries themselves.
            MetaCommand::DeclareQuorumQueue { .. }
            | MetaCommand::DeleteQuorumQueue { .. }
            | MetaCommand::DeclareClassicQueue { .. }
            | MetaCommand::DeleteClassicQueue { .. }
            | MetaCommand::SetParameter { .. }
            | MetaCommand::ClearParameter { .. }
            | MetaCommand::RestartShovel { .. }
            | MetaCommand::Topology { .. } => {}
        }
    }

    /// The commands that rebuild this state on a node that has none of it.
    fn replay(&self) -> Vec<MetaCommand> {
        let vhosts = self
            .vhosts
            .iter()
            .map(|name| MetaCommand::AddVhost { name: name.clone() });
        let default_queue_types = self.default_queue_types.iter().map(|(vhost, queue_type)| {
            MetaCommand::SetVhostDefaultQueueType {
                vhost: vhost.clone(),
                queue_type: Some(queue_type.clone()),
            }
        });
        let permissions = self
            .permissions
            .values()
            .map(|permission| MetaCommand::SetPermissions {
                permission: permission.clone(),
            });
        let users = self
            .users
            .values()
            .map(|user| MetaCommand::PutUser { user: user.clone() });
        let policies =
            self.policies
                .iter()
                .map(|((kind, vhost, name), input)| MetaCommand::SetPolicy {
                    kind: *kind,
                    vhost: vhost.clone(),
                    name: name.clone(),
                    input: input.clone(),
                });
        vhosts
            .chain(default_queue_types)
            .chain(users)
            .chain(permissions)
            .chain(policies)
            .collect()
    }
}

/// A snapshot as sent: the commands that rebuild the state ([`MetaState::replay`]).
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    commands: Vec<MetaCommand>,
}

/// The state machine of one node.
pub(crate) struct StateMachine {
    applier: Arc<dyn MetaApplier>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, ClusterNode>,
    state: MetaState,
    snapshot: Option<(SnapshotMeta<u64, ClusterNode>, Vec<u8>)>,
    snapshots_built: u64,
}

impl StateMachine {
    /// A state machine applying to `applier`, at the start of the log.
    pub(crate) fn new(applier: Arc<dyn MetaApplier>) -> StateMachine {
        StateMachine {
            applier,
            last_applied: None,
            membership: StoredMembership::default(),
            state: MetaState::default(),
            snapshot: None,
            snapshots_built: 0,
        }
    }

    async fn apply_command(&mut self, command: &MetaCommand) -> MetaResponse {
        let refused = self.applier.apply(command).await.err();
        if refused.is_none() {
            self.state.record(command);
        }
        MetaResponse { refused }
    }
}

fn snapshot_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageError::from(StorageIOError::read_snapshot(
        None,
        AnyError::error(e.to_string()),
    ))
}

/// Builds a snapshot of the state at one moment.
pub(crate) struct SnapshotBuilder {
    meta: SnapshotMeta<u64, ClusterNode>,
    bytes: Vec<u8>,
}

impl RaftSnapshotBuilder<MetaTypes> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetaTypes>, StorageError<u64>> {
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.bytes.clone())),
        })
    }
}

impl RaftStateMachine<MetaTypes> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, ClusterNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<MetaTypes>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => MetaResponse::default(),
                EntryPayload::Normal(command) => self.apply_command(&command).await,
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    MetaResponse::default()
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshots_built += 1;
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.snapshots_built),
            None => format!("none-{}", self.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let body = SnapshotBody {
            commands: self.state.replay(),
        };
        // Serialising plain maps of strings cannot fail; an empty snapshot would be refused on install.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        self.snapshot = Some((meta.clone(), bytes.clone()));
        SnapshotBuilder { meta, bytes }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, ClusterNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let body: SnapshotBody = serde_json::from_slice(&bytes).map_err(snapshot_error)?;
        // What the snapshot holds is made here too; what this node made outside the cluster stays.
        let mut state = MetaState::default();
        for command in &body.commands {
            if let Err(refused) = self.applier.apply(command).await {
                tracing::debug!(?command, %refused, "snapshot command already in effect");
            }
            state.record(command);
        }
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetaTypes>>, StorageError<u64>> {
        Ok(self.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is asked to apply.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<MetaCommand>>);

    impl MetaApplier for Recorder {
        fn apply<'a>(
            &'a self,
            command: &'a MetaCommand,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
            Box::pin(async move {
                self.0.lock().expect("lock").push(command.clone());
                Ok(())
            })
        }
    }

    fn commands() -> Vec<MetaCommand> {
        vec![
            MetaCommand::AddVhost { name: "v".into() },
            MetaCommand::PutUser {
                user: UserDefinition {
                    name: "u".into(),
                    password_hash: String::new(),
                    hashing_algorithm: "rabbit_password_hashing_sha256".into(),
                    tags: vec![],
                    limits: Default::default(),
                },
            },
            MetaCommand::SetPermissions {
                permission: PermissionDefinition {
                    user: "u".into(),
                    vhost: "v".into(),
                    configure: ".*".into(),
                    write: ".*".into(),
                    read: ".*".into(),
                },
            },
            MetaCommand::SetPolicy {
                kind: PolicyKind::Policy,
                vhost: "v".into(),
                name: "p".into(),
                input: serde_json::from_value(serde_json::json!({
                    "pattern": ".*", "definition": {"max-length": 1}
                }))
                .expect("a policy input"),
            },
            MetaCommand::AddVhost {
                name: "gone".into(),
            },
            MetaCommand::DeleteVhost {
                name: "gone".into(),
            },
        ]
    }

    #[tokio::test]
    async fn a_snapshot_rebuilds_what_the_log_made_on_a_node_that_missed_it() {
        let leader = Arc::new(Recorder::default());
        let mut source = StateMachine::new(leader.clone());
        for command in commands() {
            source.apply_command(&command).await;
        }
        let mut builder = source.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.expect("built");

        let follower = Arc::new(Recorder::default());
        let mut target = StateMachine::new(follower.clone());
        target
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .expect("installed");
        assert_eq!(target.state, source.state);
        let applied = follower.0.lock().expect("lock").clone();
        assert!(applied.contains(&MetaCommand::AddVhost { name: "v".into() }));
        assert!(!applied.contains(&MetaCommand::AddVhost {
            name: "gone".into()
        }));
        assert_eq!(applied.len(), 4, "{applied:?}");
    }
}
