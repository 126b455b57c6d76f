//! The broker as a cluster member: definition changes go through the cluster's Raft group when there is one,
//! and the group's committed changes are applied here ([`MetaApplier`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use super::{AdminError, Broker};
use crate::cluster::{Cluster, ClusterError, MetaApplier, MetaCommand};
use crate::policy::PolicyError;

/// Applies committed changes to the broker, held weakly (the broker holds the cluster).
struct BrokerApplier(Weak<Broker>);

impl MetaApplier for BrokerApplier {
    fn apply<'a>(
        &'a self,
        command: &'a MetaCommand,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some(broker) = self.0.upgrade() else {
                return Err("the node is shutting down".to_owned());
            };
            broker
                .apply_locally(command.clone())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

fn policy_refusal(error: PolicyError) -> AdminError {
    match error {
        PolicyError::NoSuchVhost(vhost) => AdminError::NoSuchVhost(vhost),
        PolicyError::Invalid(text) => AdminError::Invalid(text),
        PolicyError::Storage(e) => AdminError::Store(e),
    }
}

impl Broker {
    /// Joins the cluster of `[cluster]`, if configured; call once, at start.
    pub(crate) async fn join_cluster(self: &Arc<Self>) -> Result<(), ClusterError> {
        let Some(config) = &self.config.cluster else {
            return Ok(());
        };
        let applier = Arc::new(BrokerApplier(Arc::downgrade(self)));
        let groups = Cluster::queue_groups(config, &self.config.data_dir)?;
        let _ = self.queue_groups.set(groups.clone());
        self.replicate_quorum_queues();
        let home = Arc::new(super::classic::BrokerHome(Arc::downgrade(self)));
        let cluster = Cluster::start(
            config,
            &self.config.data_dir,
            applier,
            groups,
            home.clone(),
            home,
        )
        .await?;
        // Set once: a second call finds it set and keeps the first.
        let _ = self.cluster.set(cluster);
        Ok(())
    }

    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// Makes a definition change: through the cluster, where every node applies it (the call returns once this
    /// node has), or here alone on a single node. The one path the management API's changes take.
    pub(crate) async fn change_definitions(
        self: &Arc<Self>,
        command: MetaCommand,
    ) -> Result<(), AdminError> {
        match self.cluster() {
            Some(cluster) => match cluster.write(command).await {
                Ok(response) => match response.refused {
                    None => Ok(()),
                    Some(reason) => Err(AdminError::Invalid(reason)),
                },
                Err(e) => Err(AdminError::Cluster(e.to_string())),
            },
            None => self.clone().apply_locally(command).await,
        }
    }

    /// [`Self::change_definitions`] from a thread that may block: the blocking pool, or a worker of the
    /// multi-threaded runtime (which hands its other tasks on while it waits).
    pub(crate) fn change_definitions_blocking(
        self: &Arc<Self>,
        command: MetaCommand,
    ) -> Result<(), AdminError> {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.change_definitions(command))
        })
    }

    /// Applies a definition change to this node only; the store commits run on the blocking pool.
    async fn apply_locally(self: Arc<Self>, command: MetaCommand) -> Result<(), AdminError> {
        match command {
            MetaCommand::DeleteVhost { name } => self.delete_vhost(&name).await,
            MetaCommand::DeclareQuorumQueue {
                vhost,
                name,
                arguments,
                group,
                voters,
                nodes,
                leader,
            } => {
                let group_members = super::quorum::GroupMembers {
                    id: group,
                    voters: &voters,
                    nodes: &nodes,
                    leader: leader.as_deref(),
                };
                self.adopt_quorum_queue(&vhost, &name, &arguments, group_members)
                    .await
            }
            MetaCommand::DeleteQuorumQueue { vhost, name } => {
                self.drop_quorum_queue(&vhost, &name).await
            }
            MetaCommand::DeclareClassicQueue {
                vhost,
                name,
                home,
                auto_delete,
                arguments,
            } => {
                self.adopt_classic_queue(&vhost, &name, home, auto_delete, &arguments)
                    .await
            }
            MetaCommand::DeleteClassicQueue { vhost, name } => {
                self.drop_classic_queue(&vhost, &name).await
            }
            other => tokio::task::spawn_blocking(move || self.apply_blocking(other))
                .await
                .map_err(|e| AdminError::Invalid(format!("definition change failed: {e}")))?,
        }
    }

    /// [`Self::apply_locally`] for the changes that are a store commit and a table swap.
    fn apply_blocking(&self, command: MetaCommand) -> Result<(), AdminError> {
        match command {
            MetaCommand::AddVhost { name } => self.add_vhost(&name),
            MetaCommand::SetVhostDefaultQueueType { vhost, queue_type } => {
                self.set_vhost_default_queue_type(&vhost, queue_type.as_deref())
            }
            // Never sent here: `apply_locally` awaits a deletion itself (it closes connections and queues).
            MetaCommand::DeleteVhost { name } => Err(AdminError::Invalid(format!(
                "vhost '{name}' is deleted asynchronously"
            ))),
            MetaCommand::SetPermissions { permission } => self.set_permissions(permission),
            MetaCommand::PutUser { user } => self.put_user(user),
            MetaCommand::DeleteUser { name } => self.delete_user(&name),
            // Clearing what is not there is no error: every node ends the same.
            MetaCommand::ClearPermissions { user, vhost } => {
                self.clear_permissions(&user, &vhost).map(|_| ())
            }
            MetaCommand::SetPolicy {
                kind,
                vhost,
                name,
                input,
            } => self
                .set_policy(kind, &vhost, &name, &input)
                .map_err(policy_refusal),
            MetaCommand::ClearPolicy { kind, vhost, name } => self
                .clear_policy(kind, &vhost, &name)
                .map(|_| ())
                .map_err(policy_refusal),
            MetaCommand::Topology {
                vhost,
                user,
                change,
            } => match self.vhost(&vhost) {
                Some(vhost) => vhost
                    .apply_topology(&change, &user)
                    .map_err(|e| AdminError::Invalid(e.text)),
                None => Err(AdminError::NoSuchVhost(vhost)),
            },
            MetaCommand::SetParameter {
                vhost,
                component,
                name,
                value,
            } => self.set_parameter_here(&component, &vhost, &name, value),
            // Clearing what is not there is no error: every node ends the same.
            MetaCommand::ClearParameter {
                vhost,
                component,
                name,
            } => self
                .clear_parameter_here(&component, &vhost, &name)
                .map(|_| ()),
            MetaCommand::RestartShovel { vhost, name } => {
                self.restart_shovel_here(Some(&vhost), &name);
                Ok(())
            }
            // Never sent here: `apply_locally` awaits them itself (they open and close Raft groups).
            MetaCommand::DeclareQuorumQueue { name, .. }
            | MetaCommand::DeleteQuorumQueue { name, .. }
            | MetaCommand::DeclareClassicQueue { name, .. }
            | MetaCommand::DeleteClassicQueue { name, .. } => Err(AdminError::Invalid(format!(
                "queue '{name}' is changed asynchronously"
            ))),
        }
    }

    /// Stops this node's part in the cluster (shutdown): its Raft group and inter-node listener.
    pub async fn stop_cluster(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.shutdown().await;
        }
    }
}
