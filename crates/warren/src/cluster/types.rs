//! The Raft type configuration of the definitions group, and what its log carries: the definition changes every
//! node applies in the same order.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::auth::users::{PermissionDefinition, UserDefinition};
use crate::policy::{PolicyInput, PolicyKind};

/// A definition change, replicated through the definitions group and applied by every node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum MetaCommand {
    /// A virtual host is created.
    AddVhost {
        /// Its name.
        name: String,
    },
    /// A virtual host's default queue type is set (or cleared: None).
    SetVhostDefaultQueueType {
        /// The vhost.
        vhost: String,
        /// `classic` or `quorum`.
        queue_type: Option<String>,
    },
    /// A virtual host is deleted, with everything in it.
    DeleteVhost {
        /// Its name.
        name: String,
    },
    /// A user is created or replaced (its password already hashed by the node that took the call).
    PutUser {
        /// The user as stored.
        user: UserDefinition,
    },
    /// A user is deleted, with its permissions.
    DeleteUser {
        /// Its name.
        name: String,
    },
    /// A user's permissions in a vhost are cleared.
    ClearPermissions {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// A policy or operator policy is set (checked by the node that took the call, and again by each node).
    SetPolicy {
        /// Policy or operator policy.
        kind: PolicyKind,
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// Its pattern, definition, priority and apply-to.
        input: PolicyInput,
    },
    /// A policy or operator policy is cleared.
    ClearPolicy {
        /// Policy or operator policy.
        kind: PolicyKind,
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
    /// A user's permissions in a vhost are set.
    SetPermissions {
        /// The user, the vhost and the three patterns.
        permission: PermissionDefinition,
    },
    /// A replicated quorum queue is declared: every node opens its part of the queue's group and serves it.
    DeclareQuorumQueue {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// Its arguments, as definitions JSON carries them.
        arguments: serde_json::Map<String, serde_json::Value>,
        /// Its group's id, chosen by the node that took the declare (a queue declared again after a delete has a
        /// new group).
        group: u64,
        /// The group's voters.
        voters: Vec<super::ClusterNode>,
        /// Every node of the cluster when it was declared (those that are not voters follow as learners).
        nodes: Vec<super::ClusterNode>,
        /// The node that should lead the group (`x-queue-leader-locator`): it calls the first election.
        #[serde(default)]
        leader: Option<String>,
    },
    /// An exchange or binding change every node makes.
    Topology {
        /// Its vhost.
        vhost: String,
        /// Who made it (for its events).
        user: String,
        /// The change.
        change: crate::vhost::TopologyChange,
    },
    /// A durable classic queue is declared: its home node makes it, every other node serves it through a proxy to
    /// the home node.
    DeclareClassicQueue {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// The node it lives on: the one that took the declare.
        home: super::ClusterNode,
        /// Deleted when its last consumer goes.
        auto_delete: bool,
        /// Its arguments, as definitions JSON carries them.
        arguments: serde_json::Map<String, serde_json::Value>,
    },
    /// A classic queue of the cluster is gone (its home node deleted it): every node drops it.
    DeleteClassicQueue {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
    /// A replicated quorum queue is deleted, with its messages, on every node.
    DeleteQuorumQueue {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
    /// A runtime parameter of a plugin component (a dynamic shovel) is set: every node stores it, the node that
    /// runs it starts it.
    SetParameter {
        /// Its vhost.
        vhost: String,
        /// Its component.
        component: String,
        /// Its name.
        name: String,
        /// Its value (checked by the node that took the call, and again by each node).
        value: serde_json::Value,
    },
    /// A runtime parameter is cleared: every node forgets it, the node that runs it stops it.
    ClearParameter {
        /// Its vhost.
        vhost: String,
        /// Its component.
        component: String,
        /// Its name.
        name: String,
    },
    /// A dynamic shovel is restarted by the node that runs it.
    RestartShovel {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
}

/// What applying a [`MetaCommand`] answered on the node that applied it: RabbitMQ's error text when the change
/// was refused (a vhost that already exists, say), the same on every node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaResponse {
    /// None: applied.
    pub(crate) refused: Option<String>,
}

openraft::declare_raft_types!(
    /// The definitions group's types: a node's id is derived from its name ([`super::node_id`]); a node is known
    /// by its name and inter-node address.
    pub(crate) MetaTypes:
        D = MetaCommand,
        R = MetaResponse,
        NodeId = u64,
        Node = super::ClusterNode,
        Entry = openraft::Entry<MetaTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
