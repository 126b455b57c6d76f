//! Classic queues across the cluster, the broker's side: declaring and deleting them through the cluster
//! ([`ClassicReplication`]), applying those changes on every node (the queue on its home node, a proxy elsewhere),
//! and serving other nodes' calls on this node's queues ([`BrokerHome`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use super::quorum::{change_blocking, refused, BrokerReplication};
use super::{AdminError, Broker, ADMIN_USER};
use crate::cluster::classic::home::HomeBroker;
use crate::cluster::classic::wire::{RemoteAnswer, RemoteCall, RemoteRequest};
use crate::cluster::classic::{proxy, RemoteLink};
use crate::cluster::{ClusterNode, MetaCommand};
use crate::definitions::arguments::{table_from_json, table_to_json};
use crate::message::{now_ms, Message};
use crate::queue::QueueHandle;
use crate::session::ConfirmRef;
use crate::vhost::{ClassicDeclare, ClassicReplication};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::FieldTable;

/// How long a delete forwarded to the home node may take.
const DELETE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn shutting_down() -> AmqpError {
    AmqpError::new(ReplyCode::InternalError, "the node is shutting down")
}

impl ClassicReplication for BrokerReplication {
    fn declare_classic(
        &self,
        vhost: &str,
        name: &str,
        auto_delete: bool,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        let broker = self.0.upgrade().ok_or_else(shutting_down)?;
        let Some(groups) = broker.queue_groups.get() else {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the node has not joined its cluster yet",
            ));
        };
        let command = MetaCommand::DeclareClassicQueue {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            home: groups.me().clone(),
            auto_delete,
            arguments: table_to_json(arguments),
        };
        change_blocking(&broker, command)
    }

    fn delete_classic<'a>(
        &'a self,
        vhost: &'a str,
        name: &'a str,
        if_unused: bool,
        if_empty: bool,
    ) -> Pin<Box<dyn Future<Output = Result<u32, AmqpError>> + Send + 'a>> {
        Box::pin(async move {
            let broker = self.0.upgrade().ok_or_else(shutting_down)?;
            let (Some(groups), Some(v)) = (broker.queue_groups.get(), broker.vhost(vhost)) else {
                return Ok(0);
            };
            let Some(home) = v.classic_home(name) else {
                return Ok(0);
            };
            if *home == *groups.me().name {
                return broker
                    .delete_home_classic(vhost, name, if_unused, if_empty)
                    .await;
            }
            let link = broker.link_to(&home, vhost, name)?;
            let request = RemoteRequest {
                vhost: vhost.to_owned(),
                queue: name.to_owned(),
                call: RemoteCall::Delete {
                    if_unused,
                    if_empty,
                },
            };
            match link.call(&request, DELETE_TIMEOUT).await? {
                RemoteAnswer::Count(count) => Ok(count),
                RemoteAnswer::Refused(e) => Err(e.to_error()),
                _ => Ok(0),
            }
        })
    }

    fn forget_classic(&self, vhost: &str, name: &str) {
        let Some(broker) = self.0.upgrade() else {
            return;
        };
        let command = MetaCommand::DeleteClassicQueue {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = broker.change_definitions(command).await {
                tracing::warn!(%error, "a removed classic queue stays known to the cluster");
            }
        });
    }

    fn is_this_node(&self, node: &str) -> bool {
        self.0
            .upgrade()
            .and_then(|b| b.queue_groups.get().map(|g| g.me().name == node))
            .unwrap_or(false)
    }

    fn node_down(&self, node: &str) -> bool {
        self.0
            .upgrade()
            .and_then(|b| b.queue_groups.get().map(|g| g.node_down(node)))
            .unwrap_or(false)
    }
}

/// The broker as the other nodes' calls reach it: the home of classic queues they use, and the runner of some of the
/// cluster's shovels. Held weakly (the broker holds the cluster).
pub(super) struct BrokerHome(pub(super) Weak<Broker>);

impl HomeBroker for BrokerHome {
    fn queue(&self, vhost: &str, name: &str) -> Option<Arc<QueueHandle>> {
        self.0.upgrade()?.vhost(vhost)?.queue(name)
    }

    fn store_persistent(&self, message: &Message, queue: &QueueHandle, confirm: ConfirmRef) {
        let (Some(broker), Some(id)) = (self.0.upgrade(), queue.spec.store_id) else {
            return;
        };
        broker.store().publish(
            message.to_stored(now_ms()),
            vec![id],
            Box::new(move |result| {
                if result.is_err() {
                    confirm.fail();
                }
            }),
        );
    }

    fn delete<'a>(
        &'a self,
        vhost: &'a str,
        name: &'a str,
        if_unused: bool,
        if_empty: bool,
    ) -> Pin<Box<dyn Future<Output = Result<u32, AmqpError>> + Send + 'a>> {
        Box::pin(async move {
            let broker = self.0.upgrade().ok_or_else(shutting_down)?;
            broker
                .delete_home_classic(vhost, name, if_unused, if_empty)
                .await
        })
    }

    fn consumer_id(&self) -> u64 {
        self.0.upgrade().map_or(0, |b| b.next_consumer_id())
    }
}

impl Broker {
    /// The link a proxy of queue `name` of `vhost` uses to its home node `home`.
    fn link_to(&self, home: &str, vhost: &str, name: &str) -> Result<Arc<RemoteLink>, AmqpError> {
        let groups = self.queue_groups.get().ok_or_else(shutting_down)?;
        let addr = self
            .cluster()
            .and_then(|c| c.status().members.into_iter().find(|m| m.name == home))
            .map(|m| m.addr)
            .ok_or_else(|| crate::cluster::classic::home_down(home, name, vhost))?;
        Ok(Arc::new(RemoteLink {
            network: groups.network().clone(),
            home: home.to_owned(),
            addr,
            vhost: vhost.to_owned(),
            queue: name.to_owned(),
        }))
    }

    /// Deletes this node's classic queue `name` of `vhost` (queue.delete here or from another node), then removes
    /// it from the cluster; the ready messages it held.
    async fn delete_home_classic(
        self: &Arc<Self>,
        vhost: &str,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, AmqpError> {
        let Some(v) = self.vhost(vhost) else {
            return Ok(0);
        };
        let Some(queue) = v.queue(name) else {
            return Ok(0);
        };
        let count = queue.delete(if_unused, if_empty).await?;
        // Dropped here as the cluster's delete drops it everywhere; the delete is written and waited for below.
        let name_here = name.to_owned();
        v.change_topology(move |vhost| {
            vhost.drop_classic(&name_here, ADMIN_USER);
            Ok(())
        })
        .await?;
        let command = MetaCommand::DeleteClassicQueue {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
        };
        self.change_definitions(command).await.map_err(refused)?;
        Ok(count)
    }

    /// Applies a committed classic queue declare: the queue on its home node, a proxy to it elsewhere.
    pub(super) async fn adopt_classic_queue(
        &self,
        vhost: &str,
        name: &str,
        home: ClusterNode,
        auto_delete: bool,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), AdminError> {
        let v = self
            .vhost(vhost)
            .ok_or_else(|| AdminError::NoSuchVhost(vhost.to_owned()))?;
        let Some(groups) = self.queue_groups.get() else {
            return Err(AdminError::Cluster(
                "this node is not in a cluster".to_owned(),
            ));
        };
        let here = home.name == groups.me().name;
        if !here {
            groups.watch(&home);
        }
        let link = Arc::new(RemoteLink {
            network: groups.network().clone(),
            home: home.name.clone(),
            addr: home.addr.clone(),
            vhost: vhost.to_owned(),
            queue: name.to_owned(),
        });
        let table = table_from_json(arguments)
            .map_err(|(key, why)| AdminError::Invalid(format!("argument {key}: {why}")))?;
        let name = name.to_owned();
        let runtime = tokio::runtime::Handle::current();
        // The home node stores the queue: a commit, off the async workers.
        tokio::task::spawn_blocking(move || {
            let declare = ClassicDeclare {
                name: &name,
                durable: true,
                auto_delete,
                arguments: &table,
                home: &home.name,
            };
            v.adopt_classic(&declare, here, |handle, inbox| {
                let _entered = runtime.enter();
                proxy::spawn(handle, inbox, link);
            })
            .map_err(|e| AdminError::Invalid(e.text))
        })
        .await
        .map_err(|e| AdminError::Invalid(format!("declare failed: {e}")))?
    }

    /// Applies a committed classic queue delete: drops the queue (its proxy ends; on its home node it is normally
    /// gone already).
    pub(super) async fn drop_classic_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<(), AdminError> {
        let Some(v) = self.vhost(vhost) else {
            return Ok(());
        };
        let name = name.to_owned();
        let dropped = tokio::task::spawn_blocking(move || v.drop_classic(&name, ADMIN_USER))
            .await
            .map_err(|e| AdminError::Invalid(format!("delete failed: {e}")))?;
        if let Some(queue) = dropped {
            // Not waited for: a proxy may itself be waiting for this change to commit (a queue.delete it forwarded),
            // and the log applies nothing more until this returns.
            tokio::spawn(async move {
                let _ = queue.delete(false, false).await;
            });
        }
        Ok(())
    }
}

impl crate::cluster::shovels::ShovelReports for BrokerHome {
    fn shovel_statuses(&self) -> Vec<crate::shovel::ShovelStatus> {
        self.0
            .upgrade()
            .map(|b| b.shovel_statuses())
            .unwrap_or_default()
    }
}
