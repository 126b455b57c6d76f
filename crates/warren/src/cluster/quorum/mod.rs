//! Replicated quorum queues: one openraft group per queue, over the same inter-node listener and secret as the
//! definitions group. The declaration travels through the definitions group (every node learns the queue, its
//! group id and its members in log order); each node then opens its part of the group ([`QueueGroups::open`]) and
//! runs the queue's actor ([`actor`]), which writes what clients do (publishes, consumes, acks, gets) to the group
//! and carries out what the applied log decides for this node's clients. A publish is confirmed once its entry is
//! committed: on disk on a majority of the members.
//!
//! Nodes named in the declaration are voters; the cluster's other nodes are added as learners by the group's
//! leader, so that every node can serve the queue's clients.

pub(crate) mod actor;
pub(crate) mod dead_letters;
pub(crate) mod group;
pub(crate) mod liveness;
pub(crate) mod machine;
pub(crate) mod ready;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use tokio::sync::mpsc;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::log_store::{LogStore, SharedLog};
use super::network::{GroupNetwork, Network, PostError};
use super::{node_id, ClusterError, ClusterNode, WRITE_TIMEOUT};
use group::{Applied, AppliedBatch, OpBatch, QueueMachine, QueueTypes};
use machine::Op;

/// Entries between two snapshots of a queue's state (after which the log before the snapshot is purged).
const SNAPSHOT_EVERY: u64 = 20_000;

/// Entries in one AppendEntries at most (openraft's default is 300).
const MAX_PAYLOAD_ENTRIES: u64 = 4;

/// This node's quorum queue groups, by group id; shared with the inter-node listener, which routes each group's
/// RPCs to it.
pub(crate) struct QueueGroups {
    groups: DashMap<u64, Raft<QueueTypes>>,
    /// Each open group's id by (vhost, queue).
    by_queue: DashMap<(String, String), u64>,
    network: Network,
    dir: PathBuf,
    me: ClusterNode,
    /// This start of the node: consumers of earlier runs are known to be gone.
    run: u64,
    /// Which other nodes are up.
    liveness: Arc<liveness::Liveness>,
    /// Every group's log, opened with the first group.
    log: tokio::sync::OnceCell<Arc<SharedLog>>,
    /// Inter-node TLS, when configured: the listener accepts with it.
    tls: Option<super::tls::InterNodeTls>,
}

impl std::fmt::Debug for QueueGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueGroups")
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

/// One node's part of a queue's group: what the queue's actor writes through.
pub(crate) struct QuorumGroup {
    /// The group.
    pub(crate) raft: Raft<QueueTypes>,
    /// Its id.
    pub(crate) id: u64,
    /// This node's id.
    pub(crate) node: u64,
    /// This node's run.
    pub(crate) run: u64,
    network: Network,
    /// Which other nodes are up.
    pub(crate) liveness: Arc<liveness::Liveness>,
    /// Made by this open (it had no log here): its first election is still to come.
    pub(crate) new: bool,
}

/// A change of a queue's voting members (`rabbitmq-queues add_member` / `delete_member`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MemberChange {
    /// The node becomes a voter (a learner first, until it has caught up with the log or a snapshot).
    Add {
        /// The node.
        node: ClusterNode,
    },
    /// The node stops voting; it keeps following the log as a learner, so it still serves the queue's clients.
    Remove {
        /// The node's name.
        name: String,
    },
}

impl MemberChange {
    /// Makes the change on `raft`, which must lead the group; why not otherwise.
    pub(crate) async fn apply(&self, raft: &Raft<QueueTypes>) -> Result<(), String> {
        match self {
            MemberChange::Add { node } => {
                let id = node_id(&node.name);
                raft.add_learner(id, node.clone(), true)
                    .await
                    .map_err(|e| e.to_string())?;
                raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            MemberChange::Remove { name } => {
                let id = node_id(name);
                raft.change_membership(ChangeMembers::RemoveVoters([id].into()), true)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// This node's clock in milliseconds since the Unix epoch (0 if it is set before 1970).
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The inter-node route prefix of group `id`.
pub(crate) fn group_prefix(id: u64) -> String {
    format!("/queue/{id:016x}")
}

impl QueueGroups {
    /// No groups yet; their files go under `data_dir/cluster/queues`.
    pub(crate) fn new(
        network: Network,
        data_dir: &std::path::Path,
        me: ClusterNode,
        tls: Option<super::tls::InterNodeTls>,
    ) -> QueueGroups {
        QueueGroups {
            groups: DashMap::new(),
            by_queue: DashMap::new(),
            network: network.clone(),
            dir: data_dir.join("cluster").join("queues"),
            liveness: Arc::new(liveness::Liveness::new(network.clone())),
            me,
            run: rand::random::<u64>() | 1,
            log: tokio::sync::OnceCell::new(),
            tls,
        }
    }

    /// Inter-node TLS, when configured.
    pub(crate) fn tls(&self) -> Option<&super::tls::InterNodeTls> {
        self.tls.as_ref()
    }

    /// The inter-node client.
    pub(crate) fn network(&self) -> &Network {
        &self.network
    }

    /// Watches whether node `node` is up (a classic queue's home).
    pub(crate) fn watch(&self, node: &ClusterNode) {
        self.liveness
            .watch(std::slice::from_ref(node), &self.me.name);
    }

    /// Whether watched node `name` has not answered for a while: down or cut off. Never this node.
    pub(crate) fn node_down(&self, name: &str) -> bool {
        name != self.me.name && self.liveness.is_down(node_id(name))
    }

    /// This node's run, as `/cluster/run` answers it.
    pub(crate) fn run(&self) -> u64 {
        self.run
    }

    /// The group `id` if this node has it open.
    pub(crate) fn get(&self, id: u64) -> Option<Raft<QueueTypes>> {
        self.groups.get(&id).map(|g| g.value().clone())
    }

    /// This node.
    pub(crate) fn me(&self) -> &ClusterNode {
        &self.me
    }

    /// The leader's id of every open group that has one, as this node knows it.
    pub(crate) fn leaders(&self) -> Vec<u64> {
        self.groups
            .iter()
            .filter_map(|g| g.value().metrics().borrow().current_leader)
            .collect()
    }

    /// Waits up to `timeout` until queue `queue` of `vhost` has a leader this node knows of.
    pub(crate) async fn await_leader(&self, vhost: &str, queue: &str, timeout: Duration) {
        let id = self
            .by_queue
            .get(&(vhost.to_owned(), queue.to_owned()))
            .map(|id| *id);
        let Some(raft) = id.and_then(|id| self.get(id)) else {
            return;
        };
        let _ = raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a first leader")
            .await;
    }

    /// Opens this node's part of group `id` of queue `queue` of `vhost` (creating its files at first), whose
    /// voters are `voters` and whose other members are `all` but them, applying `limits`; the applied effects come
    /// out of the receiver.
    pub(crate) async fn open(
        &self,
        vhost: &str,
        queue: &str,
        id: u64,
        voters: &[ClusterNode],
        all: &[ClusterNode],
        limits: machine::Limits,
    ) -> Result<(Arc<QuorumGroup>, mpsc::UnboundedReceiver<AppliedBatch>), ClusterError> {
        let log_error = |reason: String| ClusterError::Log {
            path: self.dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| log_error(e.to_string()))?;
        let shared = self
            .log
            .get_or_try_init(|| async { SharedLog::open(&self.dir.join("log.redb")) })
            .await
            .map_err(|e| log_error(e.to_string()))?
            .clone();
        // A data directory of a Warren that kept each group's log in a file of its own.
        shared
            .import_legacy(&self.dir.join(format!("{id:016x}.redb")), id)
            .await
            .map_err(|e| log_error(e.to_string()))?;
        let log = LogStore::<QueueTypes>::new(shared, id, Codec::Binary);
        let (effects, applied) = mpsc::unbounded_channel();
        let me = node_id(&self.me.name);
        let machine = QueueMachine::open(
            self.dir.join(format!("{id:016x}.snapshot")),
            effects,
            me,
            limits,
        )
        .map_err(log_error)?;
        let config = openraft::Config {
            cluster_name: format!("warren-queue-{id:016x}"),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            // An entry may carry thousands of messages: a follower catching up gets a few at a time.
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let raft = Raft::new(
            me,
            Arc::new(config),
            GroupNetwork::new(self.network.clone(), group_prefix(id)),
            log,
            machine,
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let voter_map: BTreeMap<u64, ClusterNode> = voters
            .iter()
            .map(|n| (node_id(&n.name), n.clone()))
            .collect();
        if !initialized && voter_map.contains_key(&me) {
            // Every voter proposes the same membership; whichever entries win are identical.
            if let Err(error) = raft.initialize(voter_map.clone()).await {
                tracing::debug!(%error, "queue group already initialised by another member");
            }
        }
        let learners: Vec<ClusterNode> = all
            .iter()
            .filter(|n| !voter_map.contains_key(&node_id(&n.name)))
            .cloned()
            .collect();
        if !learners.is_empty() {
            tokio::spawn(add_learners(raft.clone(), learners));
        }
        self.liveness.watch(all, &self.me.name);
        self.groups.insert(id, raft.clone());
        self.by_queue
            .insert((vhost.to_owned(), queue.to_owned()), id);
        let group = QuorumGroup {
            raft,
            id,
            node: me,
            run: self.run,
            network: self.network.clone(),
            liveness: self.liveness.clone(),
            new: !initialized,
        };
        Ok((Arc::new(group), applied))
    }

    /// Closes the group of queue `queue` of `vhost` on this node and removes its files (the queue was deleted).
    pub(crate) async fn remove(&self, vhost: &str, queue: &str) {
        let Some((_, id)) = self.by_queue.remove(&(vhost.to_owned(), queue.to_owned())) else {
            return;
        };
        if let Some((_, raft)) = self.groups.remove(&id) {
            if let Err(error) = raft.shutdown().await {
                tracing::warn!(%error, group = id, "quorum queue group shutdown");
            }
        }
        if let Some(log) = self.log.get() {
            if let Err(error) = log.remove(id).await {
                tracing::warn!(%error, group = id, "quorum queue log not removed");
            }
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{id:016x}.snapshot")));
    }

    /// Makes `change` to the voters of queue `queue` of `vhost`, through the group's leader wherever it is.
    pub(crate) async fn change_members(
        &self,
        vhost: &str,
        queue: &str,
        change: MemberChange,
    ) -> Result<(), String> {
        let id = self
            .by_queue
            .get(&(vhost.to_owned(), queue.to_owned()))
            .map(|id| *id)
            .ok_or_else(|| {
                format!("queue '{queue}' in vhost '{vhost}' is not a replicated quorum queue")
            })?;
        let raft = self
            .get(id)
            .ok_or_else(|| format!("queue '{queue}' is not open on this node"))?;
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let mut last_error = no_quorum();
        while tokio::time::Instant::now() < deadline {
            let metrics = raft.metrics().borrow().clone();
            let leader = metrics.current_leader.and_then(|leader| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&leader)
                    .cloned()
            });
            match leader {
                Some(leader) if leader.name == self.me.name => return change.apply(&raft).await,
                Some(leader) => {
                    let path = format!("{}/members", group_prefix(id));
                    let answer: Result<Result<(), String>, PostError> = self
                        .network
                        .post_coded(
                            &leader.addr,
                            &path,
                            &change,
                            Some(WRITE_TIMEOUT),
                            Codec::Binary,
                        )
                        .await;
                    match answer {
                        Ok(outcome) => return outcome,
                        Err(e) => last_error = e.to_string(),
                    }
                }
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last_error)
    }

    /// Stops every group (the node is shutting down).
    pub(crate) async fn shutdown(&self) {
        let groups: Vec<Raft<QueueTypes>> = self.groups.iter().map(|g| g.value().clone()).collect();
        for raft in groups {
            let _ = raft.shutdown().await;
        }
    }
}

/// While this node leads the group, adds `learners` that are not members yet; ends when all are.
async fn add_learners(raft: Raft<QueueTypes>, learners: Vec<ClusterNode>) {
    loop {
        let metrics = raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let missing: Vec<&ClusterNode> = learners
            .iter()
            .filter(|n| membership.get_node(&node_id(&n.name)).is_none())
            .collect();
        if missing.is_empty() {
            return;
        }
        if metrics.current_leader == Some(metrics.id) {
            for node in missing {
                if let Err(error) = raft
                    .add_learner(node_id(&node.name), node.clone(), false)
                    .await
                {
                    tracing::debug!(%error, node = %node.name, "adding a learner to a queue group");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl QuorumGroup {
    /// The group's voters and leader, by node name, as this node knows them.
    pub(crate) fn replicas(&self) -> crate::queue::Replicas {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let name_of = |id: u64| membership.get_node(&id).map(|n| n.name.clone());
        let mut members: Vec<String> = membership.voter_ids().filter_map(name_of).collect();
        members.sort();
        crate::queue::Replicas {
            leader: metrics.current_leader.and_then(name_of),
            members,
        }
    }

    /// Writes `ops` as one entry and waits until it is committed, through the leader wherever it is; why not
    /// within [`WRITE_TIMEOUT`] otherwise (the entry may still commit later: a publish is then nacked although
    /// the message is in the queue, which at-least-once allows; it is never acked without being committed).
    pub(crate) async fn write(&self, ops: Vec<Op>) -> Result<Applied, String> {
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let batch = OpBatch {
            ops,
            now: unix_millis(),
        };
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(no_quorum());
            }
            let attempt = tokio::time::timeout(left, self.raft.client_write(batch.clone())).await;
            let leader = match attempt {
                Err(_) => return Err(no_quorum()),
                Ok(Ok(written)) => return Ok(written.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    forward.leader_node
                }
                Ok(Err(other)) => return Err(other.to_string()),
            };
            let Some(leader) = leader else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let path = format!("{}/write", group_prefix(self.id));
            let answer: Result<Result<Applied, String>, PostError> = self
                .network
                .post_coded(&leader.addr, &path, &batch, Some(left), Codec::Binary)
                .await;
            match answer {
                Ok(Ok(applied)) => return Ok(applied),
                // The leader moved, lost its quorum or is down: ask again.
                Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

fn no_quorum() -> String {
    ClusterError::NoQuorum(WRITE_TIMEOUT).to_string()
}
