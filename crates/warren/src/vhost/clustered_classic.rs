//! Classic queues across a cluster, as the vhost sees them. A durable, non-exclusive classic queue declared on a
//! cluster member is declared through the cluster ([`QueueReplication::declare_classic`]) with that node as its
//! home: the home node makes the queue ([`Vhost::adopt_classic`] with `home` true), every other node a handle
//! served by a proxy to it. Its bindings then go through the cluster too (`replicated_topology`). Exclusive
//! queues stay on their connection's node, as the connection does.

use std::sync::Arc;

use super::Vhost;
use crate::event::Event;
use crate::queue::arguments::{QueueArguments, QueueType};
use crate::queue::{spawn_queue, QueueHandle, QueueInbox, QueueSpec};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::FieldTable;

/// What a classic queue's declaration through the cluster carries.
pub(crate) struct ClassicDeclare<'a> {
    /// Its name.
    pub(crate) name: &'a str,
    /// Stored (always, today: only durable queues are declared through the cluster).
    pub(crate) durable: bool,
    /// Deleted when its last consumer goes.
    pub(crate) auto_delete: bool,
    /// Its arguments.
    pub(crate) arguments: &'a FieldTable,
    /// The node it lives on.
    pub(crate) home: &'a str,
}

impl Vhost {
    /// The home node of classic queue `name` when it is one of the cluster's, None otherwise.
    pub(crate) fn classic_home(&self, name: &str) -> Option<Arc<str>> {
        self.cluster_homes.get(name).map(|h| h.value().clone())
    }

    /// The home node of `name` when it is a classic queue of the cluster whose home node is down.
    fn down_home(&self, name: &str) -> Option<Arc<str>> {
        let replication = self.replication.get()?;
        self.classic_home(name)
            .filter(|home| replication.node_down(home))
    }

    /// True when `name` is a classic queue of the cluster whose home node is down.
    pub(crate) fn home_is_down(&self, name: &str) -> bool {
        self.down_home(name).is_some()
    }

    /// RabbitMQ's 404 when `name` is a classic queue of the cluster whose home node is down.
    pub(super) fn check_home(&self, name: &str) -> Result<(), AmqpError> {
        match self.down_home(name) {
            Some(home) => Err(crate::cluster::classic::home_down(&home, name, &self.name)),
            None => Ok(()),
        }
    }

    /// A new classic queue's declare on a cluster member: through the cluster, answered with the queue this node
    /// then has. None when the queue is not one for the cluster (not durable, exclusive, not classic, or no
    /// cluster).
    pub(super) fn declare_classic_everywhere(
        &self,
        name: &str,
        args: &QueueArguments,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: &FieldTable,
    ) -> Option<Result<Arc<QueueHandle>, AmqpError>> {
        let replication = self.replication.get()?;
        if args.queue_type != QueueType::Classic || !durable || exclusive {
            return None;
        }
        Some(
            replication
                .declare_classic(&self.name, name, auto_delete, arguments)
                .and_then(|()| {
                    self.queue(name).ok_or_else(|| {
                        AmqpError::new(
                            ReplyCode::InternalError,
                            format!("queue '{name}' was declared but is not on this node"),
                        )
                    })
                }),
        )
    }

    /// Makes classic queue `d.name` of the cluster one of this vhost's: the queue itself on its home node
    /// (`home`), else a handle whose inbox `serve` hands to a proxy. Nothing but noting its home if the vhost has
    /// it already (the home node's stored queue, recovered at start; a declare applied again).
    pub(crate) fn adopt_classic(
        &self,
        d: &ClassicDeclare<'_>,
        home: bool,
        serve: impl FnOnce(&Arc<QueueHandle>, QueueInbox),
    ) -> Result<(), AmqpError> {
        self.cluster_homes
            .insert(Arc::from(d.name), Arc::from(d.home));
        if self.queue(d.name).is_some() {
            return Ok(());
        }
        let args = QueueArguments::parse(
            d.arguments,
            d.name,
            &self.name,
            d.durable,
            false,
            d.auto_delete,
        )?;
        let mut spec = QueueSpec {
            name: Arc::from(d.name),
            vhost: self.name.clone(),
            durable: d.durable,
            exclusive_owner: None,
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
            args,
            store_id: None,
        };
        let settings = self.queue_settings(&spec.name, &spec.args);
        let handle = if home {
            let storage = self.persist_queue(&mut spec)?;
            spawn_queue(
                spec,
                settings,
                self.as_owner(),
                storage,
                self.queue_memory(),
                self.flow_limits,
                Vec::new(),
            )
        } else {
            // Kept by its home node: nothing of it is stored here.
            let (handle, inbox) = QueueHandle::with_inbox(spec, settings);
            serve(&handle, inbox);
            handle
        };
        self.events.emit(|| {
            let spec = &handle.spec;
            Event::queue_created(
                &self.name,
                &spec.name,
                spec.durable,
                spec.auto_delete,
                None,
                &spec.arguments,
                crate::event::INTERNAL_USER,
            )
        });
        self.queues.insert(handle.spec.name.clone(), handle);
        Ok(())
    }

    /// Removes classic queue `name` of the cluster from this vhost (the cluster deleted it); the handle, for its
    /// task to be told, if the vhost still had it.
    pub(crate) fn drop_classic(&self, name: &str, user: &str) -> Option<Arc<QueueHandle>> {
        self.cluster_homes.remove(name);
        let queue = self.queue(name)?;
        self.forget_queue(&queue, user);
        Some(queue)
    }

    /// Deletes classic queue `name` of the cluster for a client of this node: at its home node, which removes it
    /// from every node.
    pub(super) async fn delete_classic(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Option<Result<u32, AmqpError>> {
        let replication = self.replication.get()?;
        self.classic_home(name)?;
        Some(
            replication
                .delete_classic(&self.name, name, if_unused, if_empty)
                .await,
        )
    }

    /// The vhost forgot `queue` (deleted, auto-deleted, expired): when it is a classic queue of the cluster whose
    /// home is this node, the cluster is told, without waiting.
    pub(super) fn forgot_classic(&self, queue: &QueueHandle) {
        let Some((_, home)) = self.cluster_homes.remove(queue.name()) else {
            return;
        };
        if let Some(replication) = self.replication.get() {
            if replication.is_this_node(&home) {
                replication.forget_classic(&self.name, queue.name());
            }
        }
    }
}

/// The cluster's side of classic queues; every [`QueueReplication`](super::QueueReplication) is one.
pub(crate) trait ClassicReplication {
    /// Declares durable classic queue `name` of `vhost` with this node as its home, on every node; returns once this
    /// node has it. Blocks the calling thread (declares run on the blocking pool).
    fn declare_classic(
        &self,
        vhost: &str,
        name: &str,
        auto_delete: bool,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError>;

    /// Deletes classic queue `name` of `vhost` at its home node (which removes it from every node); the ready
    /// messages it held.
    fn delete_classic<'a>(
        &'a self,
        vhost: &'a str,
        name: &'a str,
        if_unused: bool,
        if_empty: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, AmqpError>> + Send + 'a>>;

    /// This node's classic queue `name` of `vhost` is gone: removes it from every node, without waiting.
    fn forget_classic(&self, vhost: &str, name: &str);

    /// Whether cluster node `node` is down as this node sees it.
    fn node_down(&self, node: &str) -> bool;

    /// Whether `node` names this node.
    fn is_this_node(&self, node: &str) -> bool;
}
