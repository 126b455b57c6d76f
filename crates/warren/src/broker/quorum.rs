//! Replicated quorum queues on a cluster member: a declare or delete taken here is written to the definitions
//! group ([`BrokerReplication`]); each node applies it by opening (or removing) its part of the queue's Raft group
//! and adopting (or dropping) the queue in its vhost.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use super::{AdminError, Broker};
use crate::cluster::quorum::machine::{DeadLettering, Limits};
use crate::cluster::quorum::{actor, MemberChange};
use crate::cluster::{ClusterNode, MetaCommand};
use crate::definitions::arguments::{table_from_json, table_to_json};
use crate::queue::arguments::{DeadLetterStrategy, Overflow, QueueArguments};
use crate::vhost::{QueueReplication, TopologyChange};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{AMQPValue, FieldTable};

/// Voters of a quorum queue when its declare does not say (`x-quorum-initial-group-size`): every node, up to this.
const DEFAULT_GROUP_SIZE: usize = 5;

/// The cluster's replication as the vhosts use it; holds the broker weakly (the broker holds the vhosts).
pub(super) struct BrokerReplication(pub(super) Weak<Broker>);

/// Makes definition change `command` through the cluster from a declare or bind running on the blocking pool: waits
/// there until this node has applied it.
pub(super) fn change_blocking(broker: &Arc<Broker>, command: MetaCommand) -> Result<(), AmqpError> {
    broker.change_definitions_blocking(command).map_err(refused)
}

/// A definition change the cluster refused, as the AMQP error the client gets.
pub(super) fn refused(error: AdminError) -> AmqpError {
    match error {
        AdminError::Cluster(text) => AmqpError::new(ReplyCode::InternalError, text),
        other => AmqpError::precondition(other.to_string()),
    }
}

impl QueueReplication for BrokerReplication {
    fn declare(&self, vhost: &str, name: &str, arguments: &FieldTable) -> Result<(), AmqpError> {
        let Some(broker) = self.0.upgrade() else {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the node is shutting down".to_owned(),
            ));
        };
        let Some(cluster) = broker.cluster() else {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the node has not joined its cluster yet".to_owned(),
            ));
        };
        let mut nodes: Vec<ClusterNode> = cluster.status().members;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let size = match arguments.inner().get("x-quorum-initial-group-size") {
            Some(AMQPValue::LongLongInt(n)) => usize::try_from(*n).unwrap_or(1),
            Some(AMQPValue::LongInt(n)) => usize::try_from(*n).unwrap_or(1),
            Some(AMQPValue::ShortInt(n)) => usize::try_from(*n).unwrap_or(1),
            Some(AMQPValue::ShortShortInt(n)) => usize::try_from(*n).unwrap_or(1),
            _ => DEFAULT_GROUP_SIZE,
        }
        .clamp(1, nodes.len().max(1));
        // The voters start at the node that should lead (and that node calls the first election).
        let leader = leader_for(
            arguments,
            &cluster.status().node,
            &nodes,
            groups_led(&broker, &nodes),
        );
        let offset = nodes.iter().position(|n| n.name == leader).unwrap_or(0);
        let voters: Vec<ClusterNode> = nodes
            .iter()
            .cycle()
            .skip(offset)
            .take(size)
            .cloned()
            .collect();
        let command = MetaCommand::DeclareQuorumQueue {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            arguments: table_to_json(arguments),
            group: rand::random::<u64>(),
            voters,
            nodes,
            leader: Some(leader),
        };
        // Declares run on the blocking pool: wait there for the cluster to commit and this node to apply, and for
        // the group to elect its leader, so that the first publish does not wait for it.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                broker.change_definitions(command).await?;
                if let Some(groups) = broker.queue_groups.get() {
                    groups.await_leader(vhost, name, LEADER_WAIT).await;
                }
                Ok(())
            })
        })
        .map_err(refused)
    }

    fn topology(&self, vhost: &str, user: &str, change: TopologyChange) -> Result<(), AmqpError> {
        let Some(broker) = self.0.upgrade() else {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the node is shutting down".to_owned(),
            ));
        };
        let command = MetaCommand::Topology {
            vhost: vhost.to_owned(),
            user: user.to_owned(),
            change,
        };
        change_blocking(&broker, command)
    }

    fn delete<'a>(
        &'a self,
        vhost: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AmqpError>> + Send + 'a>> {
        Box::pin(async move {
            let Some(broker) = self.0.upgrade() else {
                return Ok(());
            };
            let command = MetaCommand::DeleteQuorumQueue {
                vhost: vhost.to_owned(),
                name: name.to_owned(),
            };
            broker.change_definitions(command).await.map_err(refused)
        })
    }
}

/// How long a declare waits for the new group's first election.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A queue group's members, as its declaration names them.
pub(super) struct GroupMembers<'a> {
    /// The group's id.
    pub(super) id: u64,
    /// Its voters.
    pub(super) voters: &'a [ClusterNode],
    /// Every node (those not voters follow as learners).
    pub(super) nodes: &'a [ClusterNode],
    /// The node that should lead it.
    pub(super) leader: Option<&'a str>,
}

/// The node a new queue's group should be led by, as RabbitMQ's `x-queue-leader-locator` (default
/// `client-local`, RabbitMQ's default): `client-local`, the node that took the declare; `balanced` (and the
/// deprecated `random` and `least-leaders` it replaced), the node leading the fewest queues now, ties by name.
fn leader_for(
    arguments: &FieldTable,
    me: &str,
    nodes: &[ClusterNode],
    led: std::collections::HashMap<String, usize>,
) -> String {
    let locator = match arguments.inner().get("x-queue-leader-locator") {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        _ => "client-local".to_owned(),
    };
    if locator == "client-local" || nodes.is_empty() {
        return me.to_owned();
    }
    nodes
        .iter()
        .min_by_key(|n| (led.get(&n.name).copied().unwrap_or(0), n.name.clone()))
        .map_or_else(|| me.to_owned(), |n| n.name.clone())
}

/// How many quorum queues each of `nodes` leads, as this node's groups see their leaders.
fn groups_led(broker: &Broker, nodes: &[ClusterNode]) -> std::collections::HashMap<String, usize> {
    let mut led = std::collections::HashMap::new();
    if let Some(groups) = broker.queue_groups.get() {
        for leader in groups.leaders() {
            if let Some(node) = nodes
                .iter()
                .find(|n| crate::cluster::node_id(&n.name) == leader)
            {
                *led.entry(node.name.clone()).or_default() += 1;
            }
        }
    }
    led
}

/// Calls the first election of a new group this node should lead, before the others' election timers (1 to 2 s)
/// run out: again every 200 ms while no leader is known, as the other members may not have opened the group yet
/// when the first is called. Only for a group new here: a node that reopens one at a restart calling elections
/// would only unseat the leader the others elected meanwhile.
async fn call_first_election(raft: openraft::Raft<crate::cluster::quorum::group::QueueTypes>) {
    for _ in 0..4 {
        if let Err(e) = raft.trigger().elect().await {
            tracing::warn!(error = %e, "quorum queue: the first election could not be called");
            return;
        }
        let elected = raft
            .wait(Some(std::time::Duration::from_millis(200)))
            .metrics(|m| m.current_leader.is_some(), "a first leader")
            .await;
        if elected.is_ok() {
            return;
        }
    }
}

/// The limits replicated queue `name` applies, from its `arguments` alone (not from policies, nor from a node's
/// defaults, which could differ between nodes: every member must apply the same).
fn replicated_limits(name: &str, vhost: &str, arguments: &FieldTable) -> Result<Limits, AmqpError> {
    let args = QueueArguments::parse(arguments, name, vhost, true, false, false)?;
    Ok(Limits {
        max_length: args.max_length,
        max_length_bytes: args.max_length_bytes,
        reject_publish: args.overflow == Some(Overflow::RejectPublish),
        delivery_limit: args.delivery_limit,
        single_active_consumer: args.single_active_consumer,
        message_ttl: args.message_ttl,
        dead_lettering: match &args.dead_letter_exchange {
            None => DeadLettering::Off,
            Some(_)
                if args.dead_letter_strategy == Some(DeadLetterStrategy::AtLeastOnce)
                    && args.overflow == Some(Overflow::RejectPublish) =>
            {
                DeadLettering::AtLeastOnce
            }
            Some(_) => DeadLettering::AtMostOnce,
        },
        expires: args.expires,
    })
}

impl Broker {
    /// Applies a committed quorum queue declare: opens this node's part of its group and adopts the queue.
    pub(super) async fn adopt_quorum_queue(
        &self,
        vhost: &str,
        name: &str,
        arguments: &serde_json::Map<String, serde_json::Value>,
        members: GroupMembers<'_>,
    ) -> Result<(), AdminError> {
        let vhost = self
            .vhost(vhost)
            .ok_or_else(|| AdminError::NoSuchVhost(vhost.to_owned()))?;
        if vhost.queue(name).is_some() {
            return Ok(());
        }
        let (Some(groups), Some(replication)) = (self.queue_groups.get(), self.replication.get())
        else {
            return Err(AdminError::Cluster(
                "this node is not in a cluster".to_owned(),
            ));
        };
        let table = table_from_json(arguments)
            .map_err(|(key, why)| AdminError::Invalid(format!("argument {key}: {why}")))?;
        let limits = replicated_limits(name, &vhost.name, &table)
            .map_err(|e| AdminError::Invalid(e.text))?;
        let (group, applied) = groups
            .open(
                vhost.name.as_ref(),
                name,
                members.id,
                members.voters,
                members.nodes,
                limits,
            )
            .await
            .map_err(|e| AdminError::Cluster(e.to_string()))?;
        if group.new && members.leader == Some(groups.me().name.as_str()) {
            tokio::spawn(call_first_election(group.raft.clone()));
        }
        vhost
            .adopt_replicated(name, &table, |handle, inbox| {
                let owner: Weak<dyn crate::queue::QueueOwner> = Arc::downgrade(&vhost) as _;
                actor::spawn(handle, group, inbox, applied, replication.clone(), owner);
            })
            .map_err(|e| AdminError::Invalid(e.text))
    }

    /// Applies a committed quorum queue delete: drops the queue, tells its actor, removes this node's group.
    pub(super) async fn drop_quorum_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<(), AdminError> {
        let Some(vhost) = self.vhost(vhost) else {
            return Ok(());
        };
        let Some(queue) = vhost.drop_replicated(name, super::ADMIN_USER) else {
            return Ok(());
        };
        // Unconditional: the cluster deleted it.
        let _ = queue.delete(false, false).await;
        if let Some(groups) = self.queue_groups.get() {
            groups.remove(&vhost.name, name).await;
        }
        Ok(())
    }

    /// `rabbitmq-queues add_member` (`add`) or `delete_member`: cluster node `node` becomes or stops being a voting
    /// member of replicated quorum queue `queue` of `vhost`.
    pub(crate) async fn change_quorum_members(
        &self,
        vhost: &str,
        queue: &str,
        node: &str,
        add: bool,
    ) -> Result<(), AdminError> {
        let (Some(cluster), Some(groups)) = (self.cluster(), self.queue_groups.get()) else {
            return Err(AdminError::Invalid(
                "this node is not in a cluster".to_owned(),
            ));
        };
        let member = cluster
            .status()
            .members
            .into_iter()
            .find(|m| m.name == node)
            .ok_or_else(|| {
                AdminError::Invalid(format!("node '{node}' is not a member of the cluster"))
            })?;
        let change = match add {
            true => MemberChange::Add { node: member },
            false => MemberChange::Remove {
                name: node.to_owned(),
            },
        };
        groups
            .change_members(vhost, queue, change)
            .await
            .map_err(AdminError::Invalid)
    }

    /// Makes the vhosts replicate their quorum queues through the cluster.
    pub(super) fn replicate_quorum_queues(self: &Arc<Self>) {
        let replication: Arc<dyn QueueReplication> =
            Arc::new(BrokerReplication(Arc::downgrade(self)));
        for vhost in self.vhosts.iter() {
            vhost.value().set_replication(replication.clone());
        }
        let _ = self.replication.set(replication);
    }
}
