//! The cluster: nodes configured in `[cluster]` form one Raft group of all of them, on openraft, that holds the
//! definitions they share (`docs/clustering.md`). A definition change made on any node is written to the group
//! (forwarded to its leader when this node is not) and applied by every node in log order; the call returns once
//! this node has applied it, and every other node that answers within [`PEER_APPLY_WAIT`] too (so a queue declared
//! on one node is there when a client of another publishes to it next). A node cut off from a majority cannot
//! commit: its changes are refused after [`WRITE_TIMEOUT`] with a clear error instead of diverging.
//!
//! A node's id is derived from its name ([`node_id`]), so every node gives every other the same id without a
//! handshake. The nodes of the first formation (no `join`) all initialise the group with the same membership at
//! first start, so the cluster forms whichever nodes come up first (the entries are identical). A node started
//! later with `join = true` initialises nothing: it asks the peers' leader to add it (`join_cluster`), and
//! `forget_cluster_node` removes a member through the leader.
//!
//! A single node (no `[cluster]`) starts none of this.

mod auth;
pub(crate) mod classic;
pub(crate) mod codec;
mod log_store;
mod network;
pub(crate) mod quorum;
mod server;
pub(crate) mod shovels;
mod state_machine;
mod tls;
mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use sha2::{Digest, Sha256};
use tls::InterNodeTls;

use crate::config::ClusterConfig;
use network::{Network, PostError};
use server::{MembershipChange, ServerState, WriteAnswer};

pub(crate) use quorum::QueueGroups;
pub(crate) use state_machine::MetaApplier;
pub(crate) use types::{MetaCommand, MetaResponse};

/// How long a definition change may wait for the group to commit it (an election, a slow disk) before it is
/// refused.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a definition change waits for each other node to apply it before it returns anyway.
pub(crate) const PEER_APPLY_WAIT: Duration = Duration::from_secs(2);

/// Why the cluster could not start or take a change.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Raft log could not be opened.
    #[error("cluster log {path}: {reason}")]
    Log {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The inter-node listener could not bind.
    #[error("cluster listener {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// openraft refused to start or failed.
    #[error("cluster: {0}")]
    Raft(String),
    /// The inter-node TLS files cannot be used.
    #[error("{0}")]
    Tls(String),
    /// A membership change that cannot be made (the node is not a member, or is this node).
    #[error("{0}")]
    Membership(String),
    /// The change was not committed in time: no leader, or this node cannot reach a majority.
    #[error(
        "the cluster could not commit the change within {0:?}: no leader reachable with a majority of nodes"
    )]
    NoQuorum(Duration),
}

/// A node's id in the group: the first eight bytes of the SHA-256 of its name, so that every node derives the same
/// id for a name, whatever the others' names are.
pub(crate) fn node_id(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// One node as the cluster knows it (what the group's membership records of each member).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterNode {
    /// Its name.
    pub name: String,
    /// Its inter-node address.
    pub addr: String,
}

/// The cluster as this node sees it now (`warren ctl cluster_status`, `/api/cluster-status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    /// Every member, by name.
    pub members: Vec<ClusterNode>,
    /// The leader this node knows of, if any.
    pub leader: Option<String>,
    /// The Raft term this node is in.
    pub term: u64,
    /// The index of the last change this node applied.
    pub applied_index: Option<u64>,
}

/// A running cluster membership of this node.
pub struct Cluster {
    raft: Raft<types::MetaTypes>,
    node_id: u64,
    name: String,
    network: Network,
    groups: Arc<QueueGroups>,
    listener: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// This node's quorum queue groups (none open yet), sharing the inter-node client and secret the cluster
    /// will use: made before [`Cluster::start`], since applying the definitions log at start opens them.
    pub(crate) fn queue_groups(
        config: &ClusterConfig,
        data_dir: &Path,
    ) -> Result<Arc<QueueGroups>, ClusterError> {
        let tls = config.tls.as_ref().map(InterNodeTls::load).transpose()?;
        let network = Network::new(
            auth::Signer::new(&config.secret),
            config.listen.ip(),
            tls.as_ref().map(|t| t.client.clone()),
        );
        let me = ClusterNode {
            name: config.name.clone(),
            addr: config.listen.to_string(),
        };
        Ok(Arc::new(QueueGroups::new(network, data_dir, me, tls)))
    }

    /// Joins the cluster `config` describes: opens the log under `data_dir/cluster`, starts the inter-node
    /// listener and the Raft group, and applies committed changes through `applier`; `groups` are this node's
    /// quorum queue groups (from [`Cluster::queue_groups`]).
    pub(crate) async fn start(
        config: &ClusterConfig,
        data_dir: &Path,
        applier: Arc<dyn MetaApplier>,
        groups: Arc<QueueGroups>,
        home: Arc<dyn classic::home::HomeBroker>,
        reports: Arc<dyn shovels::ShovelReports>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let mut all: BTreeMap<u64, ClusterNode> = BTreeMap::new();
        let me = ClusterNode {
            name: config.name.clone(),
            addr: config.listen.to_string(),
        };
        for node in config
            .peers
            .iter()
            .map(|p| ClusterNode {
                name: p.name.clone(),
                addr: p.addr.to_string(),
            })
            .chain(std::iter::once(me.clone()))
        {
            if let Some(other) = all.insert(node_id(&node.name), node.clone()) {
                return Err(ClusterError::Raft(format!(
                    "node names '{}' and '{}' give the same id: rename one",
                    other.name, node.name
                )));
            }
        }
        let node_id = node_id(&config.name);

        let dir = data_dir.join("cluster");
        let path = dir.join("meta.redb");
        let log_error = |reason: String| ClusterError::Log {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| log_error(e.to_string()))?;
        let shared = log_store::SharedLog::open(&path).map_err(|e| log_error(e.to_string()))?;
        // A data directory of a Warren that kept this log in `raft.redb`.
        shared
            .import_legacy(&dir.join("raft.redb"), 0)
            .await
            .map_err(|e| log_error(e.to_string()))?;
        let log = log_store::LogStore::new(shared, 0, codec::Codec::Json);

        let raft_config = openraft::Config {
            cluster_name: "warren".to_owned(),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            // The log is kept whole: see `state_machine`.
            snapshot_policy: SnapshotPolicy::Never,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let network = groups.network().clone();
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
            network.clone(),
            log,
            state_machine::StateMachine::new(applier),
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ClusterError::Listen {
                addr: config.listen,
                reason: e.to_string(),
            })?;
        let router = server::router(ServerState {
            raft: raft.clone(),
            signer: network.signer.clone(),
            groups: groups.clone(),
            home,
            sessions: Arc::default(),
            reports,
        });
        let listener = match groups.tls() {
            Some(tls) => {
                let listener =
                    tls::TlsListener::new(listener, tls.server.clone()).map_err(|e| {
                        ClusterError::Listen {
                            addr: config.listen,
                            reason: e.to_string(),
                        }
                    })?;
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, router).await {
                        tracing::error!(%error, "cluster listener stopped");
                    }
                })
            }
            None => tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router).await {
                    tracing::error!(%error, "cluster listener stopped");
                }
            }),
        };

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let peers: Vec<ClusterNode> = all
            .values()
            .filter(|n| n.name != me.name)
            .cloned()
            .collect();
        if !initialized && !config.join {
            // Every node of the first formation proposes the same membership; whichever entries win are identical.
            if let Err(error) = raft.initialize(all.clone()).await {
                tracing::debug!(%error, "cluster already initialised by another node");
            }
        }
        tracing::info!(
            node = %config.name, id = node_id, listen = %config.listen, join = config.join,
            "cluster node started with {} configured members", all.len()
        );
        let cluster = Arc::new(Cluster {
            raft,
            node_id,
            name: config.name.clone(),
            network,
            groups,
            listener,
        });
        if !initialized && config.join {
            tokio::spawn(cluster.clone().join(me, peers));
        }
        Ok(cluster)
    }

    /// Writes `command` to the group and waits until this node has applied it, and the other nodes that answer
    /// within [`PEER_APPLY_WAIT`]; what applying answered.
    pub(crate) async fn write(&self, command: MetaCommand) -> Result<MetaResponse, ClusterError> {
        let (index, response) = self.write_here(command).await?;
        self.await_others(index).await;
        Ok(response)
    }

    /// Waits until the other members have applied the log up to `index`: each is asked at once and waited for
    /// up to [`PEER_APPLY_WAIT`]; one that is down, cut off or slower is not waited for longer (it applies the
    /// change when it can, as it catches up).
    async fn await_others(&self, index: u64) {
        let others: Vec<ClusterNode> = {
            let metrics = self.raft.metrics().borrow().clone();
            metrics
                .membership_config
                .membership()
                .nodes()
                .filter(|(_, node)| node.name != self.name)
                .map(|(_, node)| node.clone())
                .collect()
        };
        let mut asks = tokio::task::JoinSet::new();
        for node in others {
            let network = self.network.clone();
            asks.spawn(async move {
                let _: Result<bool, PostError> = network
                    .post(
                        &node.addr,
                        "/cluster/applied",
                        &index,
                        Some(PEER_APPLY_WAIT),
                    )
                    .await;
            });
        }
        while asks.join_next().await.is_some() {}
    }

    /// Writes `command` and waits until this node has applied it: its log index and what applying answered.
    async fn write_here(&self, command: MetaCommand) -> Result<(u64, MetaResponse), ClusterError> {
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ClusterError::NoQuorum(WRITE_TIMEOUT));
            }
            let attempt = tokio::time::timeout(left, self.raft.client_write(command.clone())).await;
            let forward_to = match attempt {
                Err(_) => return Err(ClusterError::NoQuorum(WRITE_TIMEOUT)),
                Ok(Ok(written)) => return Ok((written.log_id.index, written.data)),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    forward.leader_node
                }
                Ok(Err(other)) => return Err(ClusterError::Raft(other.to_string())),
            };
            let Some(leader) = forward_to else {
                // No leader yet (an election): try again shortly.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let answer: Result<Result<WriteAnswer, String>, PostError> = self
                .network
                .post(&leader.addr, "/cluster/write", &command, Some(left))
                .await;
            match answer {
                Ok(Ok(written)) => {
                    self.raft
                        .wait(Some(
                            deadline.saturating_duration_since(tokio::time::Instant::now()),
                        ))
                        .applied_index_at_least(
                            Some(written.index),
                            "forwarded change applied here",
                        )
                        .await
                        .map_err(|_| ClusterError::NoQuorum(WRITE_TIMEOUT))?;
                    return Ok((written.index, written.response));
                }
                // The leader moved or could not commit: ask again.
                Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let members: Vec<ClusterNode> = membership.nodes().map(|(_, node)| node.clone()).collect();
        let name_of = |id: u64| membership.get_node(&id).map(|n| n.name.clone());
        ClusterStatus {
            node: self.name.clone(),
            members,
            leader: metrics.current_leader.and_then(name_of),
            term: metrics.current_term,
            applied_index: metrics.last_applied.map(|id| id.index),
        }
    }

    /// Asks the peers, one after another until the leader takes it, to add this node to the group; runs until it
    /// is added (a node started with `join = true`).
    async fn join(self: Arc<Self>, me: ClusterNode, peers: Vec<ClusterNode>) {
        let change = MembershipChange::Add { node: me };
        loop {
            for peer in &peers {
                let answer: Result<Result<(), String>, PostError> = self
                    .network
                    .post(
                        &peer.addr,
                        "/cluster/membership",
                        &change,
                        Some(WRITE_TIMEOUT),
                    )
                    .await;
                if let Ok(Ok(())) = answer {
                    tracing::info!(via = %peer.name, "joined the cluster");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Removes node `name` from the group (`forget_cluster_node`), through the leader. The node should be stopped:
    /// it is no longer sent anything, and its own votes no longer count.
    pub(crate) async fn forget(&self, name: &str) -> Result<(), ClusterError> {
        let id = node_id(name);
        if id == self.node_id {
            return Err(ClusterError::Membership(
                "a node cannot forget itself; run forget_cluster_node on another member".to_owned(),
            ));
        }
        let is_member = {
            let metrics = self.raft.metrics().borrow().clone();
            metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|voter| voter == id)
        };
        if !is_member {
            return Err(ClusterError::Membership(format!(
                "node '{name}' is not a member of the cluster"
            )));
        }
        let change = MembershipChange::Remove {
            name: name.to_owned(),
        };
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        loop {
            let leader = {
                let metrics = self.raft.metrics().borrow().clone();
                metrics.current_leader.and_then(|leader| {
                    metrics
                        .membership_config
                        .membership()
                        .get_node(&leader)
                        .cloned()
                })
            };
            let done = match leader {
                Some(leader) if leader.name == self.name => change.apply(&self.raft).await.is_ok(),
                Some(leader) => matches!(
                    self.network
                        .post::<_, Result<(), String>>(
                            &leader.addr,
                            "/cluster/membership",
                            &change,
                            Some(WRITE_TIMEOUT)
                        )
                        .await,
                    Ok(Ok(()))
                ),
                None => false,
            };
            if done {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::NoQuorum(WRITE_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the group, the quorum queue groups and the inter-node listener.
    pub(crate) async fn shutdown(&self) {
        self.groups.shutdown().await;
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "cluster shutdown");
        }
        self.listener.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use openraft::testing::{StoreBuilder, Suite};
    use openraft::StorageError;

    use super::log_store::{LogStore, SharedLog};
    use super::state_machine::{MetaApplier, StateMachine};
    use super::types::{MetaCommand, MetaTypes};

    /// Accepts every command.
    struct AcceptAll;

    impl MetaApplier for AcceptAll {
        fn apply<'a>(
            &'a self,
            _command: &'a MetaCommand,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Removes a test's log directory when the suite is done with it.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    struct Builder;

    impl StoreBuilder<MetaTypes, LogStore<MetaTypes>, StateMachine, Dir> for Builder {
        async fn build(
            &self,
        ) -> Result<(Dir, LogStore<MetaTypes>, StateMachine), StorageError<u64>> {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "warren-raft-suite-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("test dir");
            let shared = SharedLog::open(&dir.join("meta.redb")).expect("log opens");
            let log = LogStore::new(shared, 0, super::codec::Codec::Json);
            Ok((Dir(dir), log, StateMachine::new(Arc::new(AcceptAll))))
        }
    }

    /// openraft's own conformance suite for log stores and state machines.
    #[test]
    fn the_log_store_and_state_machine_pass_openrafts_storage_suite() {
        Suite::test_all(Builder).expect("suite passes");
    }
}
