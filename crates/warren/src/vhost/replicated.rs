//! Quorum queues replicated across a cluster, as the vhost sees them: the declare and delete go through
//! [`QueueReplication`] (the cluster, behind a trait so the vhost never names it), which has every node adopt the
//! queue ([`Vhost::adopt_replicated`]) or drop it ([`Vhost::drop_replicated`]) in the order the cluster agreed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::Vhost;
use crate::queue::arguments::{QueueArguments, QueueType};
use crate::queue::{QueueHandle, QueueInbox, QueueSpec};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::FieldTable;

/// The arguments a replicated quorum queue honours; any other is refused at declare rather than ignored.
const SUPPORTED_ARGUMENTS: [&str; 13] = [
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-delivery-limit",
    "x-single-active-consumer",
    "x-message-ttl",
    "x-queue-leader-locator",
    "x-expires",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
];

/// The cluster's side of replicated quorum queues.
pub(crate) trait QueueReplication:
    super::clustered_classic::ClassicReplication + Send + Sync
{
    /// Declares quorum queue `name` of vhost `vhost` on every node; returns once this node has adopted it. Blocks
    /// the calling thread (declares run on the blocking pool).
    fn declare(&self, vhost: &str, name: &str, arguments: &FieldTable) -> Result<(), AmqpError>;

    /// Makes topology change `change` of `user` in vhost `vhost` on every node; returns once this node has applied
    /// it. Blocks the calling thread, as [`QueueReplication::declare`].
    fn topology(
        &self,
        vhost: &str,
        user: &str,
        change: super::TopologyChange,
    ) -> Result<(), AmqpError>;

    /// Deletes quorum queue `name` of vhost `vhost` on every node; returns once this node has dropped it.
    fn delete<'a>(
        &'a self,
        vhost: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AmqpError>> + Send + 'a>>;
}

impl Vhost {
    /// Replicates this vhost's quorum queues through `replication` from now on (the node joined a cluster).
    pub(crate) fn set_replication(&self, replication: Arc<dyn QueueReplication>) {
        // Set once; a second call (a vhost re-created) keeps the first.
        let _ = self.replication.set(replication);
    }

    /// Whether `queue` is a replicated quorum queue (this node is in a cluster).
    pub(crate) fn is_replicated(&self, queue: &QueueHandle) -> bool {
        self.replication.get().is_some() && queue.spec.args.queue_type == QueueType::Quorum
    }

    /// A new quorum queue's declare, when this node is in a cluster: through the cluster, and answered with the
    /// queue this node adopted. None when the queue is not one to replicate.
    pub(super) fn declare_replicated(
        &self,
        name: &str,
        args: &QueueArguments,
        arguments: &FieldTable,
    ) -> Option<Result<Arc<QueueHandle>, AmqpError>> {
        let replication = self.replication.get()?;
        if args.queue_type != QueueType::Quorum {
            return None;
        }
        let unsupported = arguments
            .inner()
            .keys()
            .map(|k| k.as_str())
            .find(|k| !SUPPORTED_ARGUMENTS.contains(k));
        if let Some(argument) = unsupported {
            return Some(Err(AmqpError::precondition(format!(
                "argument '{argument}' is not supported on a replicated quorum queue yet (see docs/clustering.md)"
            ))));
        }
        Some(
            replication
                .declare(&self.name, name, arguments)
                .and_then(|()| {
                    self.queue(name).ok_or_else(|| {
                        AmqpError::new(
                            ReplyCode::InternalError,
                            format!("quorum queue '{name}' was declared but is not on this node"),
                        )
                    })
                }),
        )
    }

    /// Deletes replicated queue `queue` everywhere (queue.delete, after its checks); the ready messages it held.
    pub(super) async fn delete_replicated(
        &self,
        queue: &Arc<QueueHandle>,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, AmqpError> {
        let Some(replication) = self.replication.get() else {
            return Ok(0);
        };
        let stats = queue.stats().await.unwrap_or_default();
        if if_unused && stats.consumers > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{}' in vhost '{}' in use",
                queue.name(),
                self.name
            )));
        }
        if if_empty && stats.messages > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{}' in vhost '{}' is not empty",
                queue.name(),
                self.name
            )));
        }
        replication.delete(&self.name, queue.name()).await?;
        Ok(stats.messages)
    }

    /// Makes replicated quorum queue `name` one of this vhost's, served by the task `serve` starts with the
    /// handle's inbox; nothing if the vhost has it already (a declare the cluster applies twice, or a restart
    /// replaying the cluster's log).
    pub(crate) fn adopt_replicated(
        &self,
        name: &str,
        arguments: &FieldTable,
        serve: impl FnOnce(&Arc<QueueHandle>, QueueInbox),
    ) -> Result<(), AmqpError> {
        if self.queue(name).is_some() {
            return Ok(());
        }
        let args = QueueArguments::parse(arguments, name, &self.name, true, false, false)?;
        let spec = QueueSpec {
            name: Arc::from(name),
            vhost: self.name.clone(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: arguments.clone(),
            args,
            // Kept by the cluster's log, not the node's definitions store.
            store_id: None,
        };
        let settings = self.queue_settings(&spec.name, &spec.args);
        let (handle, inbox) = QueueHandle::with_inbox(spec, settings);
        serve(&handle, inbox);
        self.queues.insert(handle.spec.name.clone(), handle);
        Ok(())
    }

    /// Removes replicated queue `name` from this vhost (the cluster deleted it); the handle, for its actor to be
    /// told.
    pub(crate) fn drop_replicated(&self, name: &str, user: &str) -> Option<Arc<QueueHandle>> {
        let queue = self.queue(name)?;
        self.forget_queue(&queue, user);
        Some(queue)
    }
}
