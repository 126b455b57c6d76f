//! Exchanges and bindings across a cluster: on a cluster member, exchange.declare of a new exchange,
//! exchange.delete, exchange.bind and unbind, and queue.bind and unbind of a replicated queue are checked here,
//! then written to the cluster ([`QueueReplication::topology`]), which has every node apply them in log order
//! ([`Vhost::apply_topology`]); the call returns once this node has. Bindings of a queue of this node alone stay
//! this node's, as the queue does.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::objects::{check_new_exchange, ExchangeDeclare};
use super::{QueueReplication, Vhost};
use crate::definitions::arguments::{table_from_json, table_to_json};
use crate::exchange::ExchangeKind;
use warren_protocol::error::AmqpError;
use warren_protocol::FieldTable;

/// A topology change every node of a cluster applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum TopologyChange {
    /// exchange.declare of a new exchange.
    DeclareExchange {
        /// Its name.
        name: String,
        /// Its type.
        kind: String,
        /// Stored.
        durable: bool,
        /// Deleted with its last binding.
        auto_delete: bool,
        /// No client publishes.
        internal: bool,
        /// Its arguments.
        arguments: Map<String, Value>,
    },
    /// exchange.delete (its if-unused checked by the node that took it).
    DeleteExchange {
        /// Its name.
        name: String,
    },
    /// exchange.bind.
    BindExchange {
        /// The destination exchange.
        destination: String,
        /// The source exchange.
        source: String,
        /// The routing key.
        key: String,
        /// The binding's arguments.
        arguments: Map<String, Value>,
    },
    /// exchange.unbind.
    UnbindExchange {
        /// The destination exchange.
        destination: String,
        /// The source exchange.
        source: String,
        /// The routing key.
        key: String,
        /// The binding's arguments.
        arguments: Map<String, Value>,
    },
    /// queue.bind of a replicated queue.
    BindQueue {
        /// The queue.
        queue: String,
        /// The exchange.
        exchange: String,
        /// The routing key.
        key: String,
        /// The binding's arguments.
        arguments: Map<String, Value>,
    },
    /// queue.unbind of a replicated queue.
    UnbindQueue {
        /// The queue.
        queue: String,
        /// The exchange.
        exchange: String,
        /// The routing key.
        key: String,
        /// The binding's arguments.
        arguments: Map<String, Value>,
    },
}

fn table(arguments: &Map<String, Value>) -> Result<FieldTable, AmqpError> {
    table_from_json(arguments)
        .map_err(|(key, why)| AmqpError::precondition(format!("argument {key}: {why}")))
}

impl Vhost {
    fn replicating(&self) -> Option<&dyn QueueReplication> {
        self.replication.get().map(|r| r.as_ref())
    }

    /// exchange.declare: on a cluster member a new exchange is made on every node, else here.
    pub(crate) fn declare_exchange(&self, d: &ExchangeDeclare<'_>) -> Result<(), AmqpError> {
        let new = !d.passive && !d.name.is_empty() && self.exchange(d.name).is_none();
        match (self.replicating(), ExchangeKind::parse(d.kind)) {
            (Some(replication), Some(kind)) if new => {
                check_new_exchange(d, kind)?;
                let change = TopologyChange::DeclareExchange {
                    name: d.name.to_owned(),
                    kind: d.kind.to_owned(),
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: table_to_json(&d.arguments),
                };
                replication.topology(&self.name, d.user, change)
            }
            _ => self.declare_exchange_here(d),
        }
    }

    /// exchange.delete by `user`: on every node of a cluster, else here.
    pub(crate) fn delete_exchange(
        &self,
        name: &str,
        if_unused: bool,
        user: &str,
    ) -> Result<(), AmqpError> {
        let Some(replication) = self.replicating() else {
            return self.delete_exchange_here(name, if_unused, user);
        };
        match self.exchange(name) {
            Some(x) if !name.starts_with("amq.") => {
                if if_unused && !x.bindings.load().is_empty() {
                    return Err(AmqpError::precondition(format!(
                        "exchange '{name}' in vhost '{}' in use",
                        self.name
                    )));
                }
                let change = TopologyChange::DeleteExchange {
                    name: name.to_owned(),
                };
                replication.topology(&self.name, user, change)
            }
            _ => self.delete_exchange_here(name, if_unused, user),
        }
    }

    /// exchange.bind by `user`: on every node of a cluster, else here.
    pub(crate) fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        args: FieldTable,
        user: &str,
    ) -> Result<(), AmqpError> {
        let both = self.exchange(destination).is_some() && self.exchange(source).is_some();
        match self.replicating() {
            Some(replication) if both => {
                let change = TopologyChange::BindExchange {
                    destination: destination.to_owned(),
                    source: source.to_owned(),
                    key: key.to_owned(),
                    arguments: table_to_json(&args),
                };
                replication.topology(&self.name, user, change)
            }
            _ => self.bind_exchange_here(destination, source, key, args, user),
        }
    }

    /// exchange.unbind by `user`: on every node of a cluster, else here.
    pub(crate) fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        args: FieldTable,
        user: &str,
    ) -> Result<(), AmqpError> {
        let both = self.exchange(destination).is_some() && self.exchange(source).is_some();
        match self.replicating() {
            Some(replication) if both => {
                let change = TopologyChange::UnbindExchange {
                    destination: destination.to_owned(),
                    source: source.to_owned(),
                    key: key.to_owned(),
                    arguments: table_to_json(&args),
                };
                replication.topology(&self.name, user, change)
            }
            _ => self.unbind_exchange_here(destination, source, key, args, user),
        }
    }

    /// Whether queue `queue` is a replicated one, or a classic queue of the cluster, whose bindings every node
    /// keeps.
    fn binds_everywhere(&self, queue: &str, exchange: &str) -> bool {
        !exchange.is_empty()
            && self.exchange(exchange).is_some()
            && self
                .queue(queue)
                .is_some_and(|q| self.is_replicated(&q) || self.classic_home(queue).is_some())
    }

    /// queue.bind by `user`: on every node of a cluster for a replicated queue, else here.
    pub(crate) fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        args: FieldTable,
        connection_id: u64,
        user: &str,
    ) -> Result<(), AmqpError> {
        match self.replicating() {
            Some(replication) if self.binds_everywhere(queue, exchange) => {
                let change = TopologyChange::BindQueue {
                    queue: queue.to_owned(),
                    exchange: exchange.to_owned(),
                    key: key.to_owned(),
                    arguments: table_to_json(&args),
                };
                replication.topology(&self.name, user, change)
            }
            _ => self.bind_queue_here(queue, exchange, key, args, connection_id, user),
        }
    }

    /// queue.unbind by `user`: on every node of a cluster for a replicated queue, else here.
    pub(crate) fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        args: FieldTable,
        connection_id: u64,
        user: &str,
    ) -> Result<(), AmqpError> {
        match self.replicating() {
            Some(replication) if self.binds_everywhere(queue, exchange) => {
                let change = TopologyChange::UnbindQueue {
                    queue: queue.to_owned(),
                    exchange: exchange.to_owned(),
                    key: key.to_owned(),
                    arguments: table_to_json(&args),
                };
                replication.topology(&self.name, user, change)
            }
            _ => self.unbind_queue_here(queue, exchange, key, args, connection_id, user),
        }
    }

    /// Applies a change the cluster committed, on this node (it may commit the definitions store: call it on the
    /// blocking pool). A declare of an exchange that exists is checked as a redeclare.
    pub(crate) fn apply_topology(
        &self,
        change: &TopologyChange,
        user: &str,
    ) -> Result<(), AmqpError> {
        match change {
            TopologyChange::DeclareExchange {
                name,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            } => self.declare_exchange_here(&ExchangeDeclare {
                name,
                kind,
                passive: false,
                durable: *durable,
                auto_delete: *auto_delete,
                internal: *internal,
                arguments: table(arguments)?,
                user,
            }),
            TopologyChange::DeleteExchange { name } => self.delete_exchange_here(name, false, user),
            TopologyChange::BindExchange {
                destination,
                source,
                key,
                arguments,
            } => self.bind_exchange_here(destination, source, key, table(arguments)?, user),
            TopologyChange::UnbindExchange {
                destination,
                source,
                key,
                arguments,
            } => self.unbind_exchange_here(destination, source, key, table(arguments)?, user),
            TopologyChange::BindQueue {
                queue,
                exchange,
                key,
                arguments,
            } => self.bind_queue_here(queue, exchange, key, table(arguments)?, 0, user),
            TopologyChange::UnbindQueue {
                queue,
                exchange,
                key,
                arguments,
            } => self.unbind_queue_here(queue, exchange, key, table(arguments)?, 0, user),
        }
    }
}
