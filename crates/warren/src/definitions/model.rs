//! The definitions file's JSON shape as Warren writes it: RabbitMQ's `rabbitmqctl export_definitions` format, every
//! section present (empty lists included), so `rabbitmqctl import_definitions` of RabbitMQ 3.10 and later reads it.
//! Reading goes through `validate`, which walks the JSON itself to name every entry at fault by its path.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::users::{PermissionDefinition, TopicPermissionDefinition, UserDefinition};

/// The RabbitMQ version Warren's behaviour follows, written as `rabbit_version` and `rabbitmq_version` (RabbitMQ
/// reads it only to pick a hashing algorithm for users exported before 3.6.1 without one).
pub(crate) const EMULATED_RABBITMQ_VERSION: &str = "3.13.7";

/// A whole definitions file.
#[derive(Debug, Serialize)]
pub(crate) struct DefinitionsFile {
    pub(crate) rabbit_version: String,
    pub(crate) rabbitmq_version: String,
    pub(crate) product_name: String,
    pub(crate) product_version: String,
    pub(crate) users: Vec<UserDefinition>,
    pub(crate) vhosts: Vec<VhostEntry>,
    pub(crate) permissions: Vec<PermissionDefinition>,
    pub(crate) topic_permissions: Vec<TopicPermissionDefinition>,
    pub(crate) parameters: Vec<ParameterEntry>,
    pub(crate) global_parameters: Vec<GlobalParameterEntry>,
    pub(crate) policies: Vec<PolicyEntry>,
    pub(crate) queues: Vec<QueueEntry>,
    pub(crate) exchanges: Vec<ExchangeEntry>,
    pub(crate) bindings: Vec<BindingEntry>,
}

/// `vhosts[]`: RabbitMQ 3.11+ writes `limits` as an object and `metadata` with a description and tags.
#[derive(Debug, Serialize)]
pub(crate) struct VhostEntry {
    pub(crate) name: String,
    pub(crate) limits: Map<String, Value>,
    pub(crate) metadata: VhostMetadata,
}

/// A vhost's `metadata`.
#[derive(Debug, Serialize)]
pub(crate) struct VhostMetadata {
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    /// Only when one is set, as RabbitMQ exports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default_queue_type: Option<String>,
}

/// `parameters[]`: a vhost-scoped runtime parameter (Warren writes `vhost-limits` and `operator_policy`).
#[derive(Debug, Serialize)]
pub(crate) struct ParameterEntry {
    pub(crate) vhost: String,
    pub(crate) component: String,
    pub(crate) name: String,
    pub(crate) value: Value,
}

/// `global_parameters[]`.
#[derive(Debug, Serialize)]
pub(crate) struct GlobalParameterEntry {
    pub(crate) name: String,
    pub(crate) value: Value,
}

/// `policies[]` (operator policies are written as `operator_policy` parameters, as RabbitMQ does).
#[derive(Debug, Serialize)]
pub(crate) struct PolicyEntry {
    pub(crate) vhost: String,
    pub(crate) name: String,
    pub(crate) pattern: String,
    #[serde(rename = "apply-to")]
    pub(crate) apply_to: String,
    pub(crate) definition: Value,
    pub(crate) priority: i64,
}

/// `queues[]`.
#[derive(Debug, Serialize)]
pub(crate) struct QueueEntry {
    pub(crate) name: String,
    pub(crate) vhost: String,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: Map<String, Value>,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

/// `exchanges[]`.
#[derive(Debug, Serialize)]
pub(crate) struct ExchangeEntry {
    pub(crate) name: String,
    pub(crate) vhost: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: Map<String, Value>,
}

/// `bindings[]`.
#[derive(Debug, Serialize)]
pub(crate) struct BindingEntry {
    pub(crate) source: String,
    pub(crate) vhost: String,
    pub(crate) destination: String,
    pub(crate) destination_type: String,
    pub(crate) routing_key: String,
    pub(crate) arguments: Map<String, Value>,
}
