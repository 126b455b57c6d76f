//! Which other nodes are up, as this node sees them: it asks each node it shares a queue group with for its run
//! every [`POLL`]. A queue's leader uses it to give back what the consumers of a node that is gone hold (a node
//! that restarted says so itself, with `NodeRun`; one that stays down or is cut off never would).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use super::super::network::Network;
use super::super::{node_id, ClusterNode};

/// How often each node is asked.
const POLL: Duration = Duration::from_millis(500);

/// A node not heard from for this long is taken as down. Longer than an election takes, so that a node that only
/// lost its leader is not mistaken for a dead one.
pub(crate) const DOWN_AFTER: Duration = Duration::from_secs(5);

/// The other nodes' runs and when each last answered.
pub(crate) struct Liveness {
    network: Network,
    peers: DashMap<u64, ClusterNode>,
    seen: DashMap<u64, (u64, Instant)>,
    /// When each node was first watched.
    watched: DashMap<u64, Instant>,
    started: Instant,
    polling: AtomicBool,
}

impl Liveness {
    /// Watches nobody yet.
    pub(crate) fn new(network: Network) -> Liveness {
        Liveness {
            network,
            peers: DashMap::new(),
            seen: DashMap::new(),
            watched: DashMap::new(),
            started: Instant::now(),
            polling: AtomicBool::new(false),
        }
    }

    /// Watches `nodes` too (but `me`), starting the poller at the first call.
    pub(crate) fn watch(self: &Arc<Self>, nodes: &[ClusterNode], me: &str) {
        for node in nodes.iter().filter(|n| n.name != me) {
            self.peers.insert(node_id(&node.name), node.clone());
            self.watched
                .entry(node_id(&node.name))
                .or_insert_with(Instant::now);
        }
        if !self.polling.swap(true, Ordering::AcqRel) {
            tokio::spawn(poll(Arc::downgrade(self)));
        }
    }

    /// Whether run `run` of node `node` is gone: the node answers with another run, or has not answered for
    /// [`DOWN_AFTER`].
    pub(crate) fn is_gone(&self, node: u64, run: u64) -> bool {
        match self.seen.get(&node).map(|s| *s.value()) {
            Some((current, _)) if current != run => true,
            Some((_, at)) => at.elapsed() > DOWN_AFTER,
            None => self.started.elapsed() > DOWN_AFTER,
        }
    }
}

impl Liveness {
    /// Whether node `node` (watched) has not answered for [`DOWN_AFTER`], whatever its run.
    pub(crate) fn is_down(&self, node: u64) -> bool {
        match self.seen.get(&node).map(|s| s.value().1) {
            Some(at) => at.elapsed() > DOWN_AFTER,
            None => self
                .watched
                .get(&node)
                .is_some_and(|at| at.elapsed() > DOWN_AFTER),
        }
    }
}

async fn poll(liveness: std::sync::Weak<Liveness>) {
    loop {
        let Some(me) = liveness.upgrade() else {
            return;
        };
        let peers: Vec<(u64, ClusterNode)> = me
            .peers
            .iter()
            .map(|p| (*p.key(), p.value().clone()))
            .collect();
        let mut asks = tokio::task::JoinSet::new();
        for (id, node) in peers {
            let me = me.clone();
            asks.spawn(async move {
                let answer: Result<u64, _> = me
                    .network
                    .post(
                        &node.addr,
                        "/cluster/run",
                        &(),
                        Some(Duration::from_secs(1)),
                    )
                    .await;
                if let Ok(run) = answer {
                    me.seen.insert(id, (run, Instant::now()));
                }
            });
        }
        while asks.join_next().await.is_some() {}
        drop(me);
        tokio::time::sleep(POLL).await;
    }
}
