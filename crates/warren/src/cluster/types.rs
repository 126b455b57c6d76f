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
