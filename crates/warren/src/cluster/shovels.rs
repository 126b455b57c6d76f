//! Dynamic shovels on a cluster. Their parameters go through the definitions group, so every node has them; each
//! runs on one node, its *runner*: of the members this node does not see down, the one that ranks highest for the
//! shovel's vhost and name (rendezvous hashing). Every node works out the same runner from the same view, and when
//! the runner goes down the shovel moves to the next in rank, as RabbitMQ restarts a dynamic shovel on another node.
//! Two nodes that see each other down (a partition) may both run it for a while: a shovel's transfer is
//! at-least-once, so that duplicates at worst, as it does in RabbitMQ.
//!
//! A node lists every node's shovels by asking the others for theirs (`POST /shovels`).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Cluster;
use crate::shovel::ShovelStatus;

/// The inter-node path that answers this node's shovels' statuses.
pub(crate) const PATH: &str = "/shovels";

/// How long a listing waits for a node's shovels.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What this node answers about its own shovels.
pub(crate) trait ShovelReports: Send + Sync + 'static {
    /// The statuses of the shovels running on this node.
    fn shovel_statuses(&self) -> Vec<ShovelStatus>;
}

/// The rank of `node` for shovel `name` of `vhost`: the highest ranked live node runs it.
fn rank(node: &str, vhost: &str, name: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [node, vhost, name] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

/// Of `nodes`, the one that runs shovel `name` of `vhost`.
fn runner<'a>(nodes: impl Iterator<Item = &'a str>, vhost: &str, name: &str) -> Option<&'a str> {
    nodes.max_by_key(|node| rank(node, vhost, name))
}

impl Cluster {
    /// The node that runs dynamic shovel `name` of `vhost`, as this node sees the members now.
    pub(crate) fn shovel_runner(&self, vhost: &str, name: &str) -> String {
        let members = self.status().members;
        let live = members
            .iter()
            .map(|m| m.name.as_str())
            .filter(|m| !self.groups.node_down(m));
        runner(live, vhost, name).unwrap_or(&self.name).to_owned()
    }

    /// The shovels the other members run, from those that answer within [`ASK_TIMEOUT`]; those seen down are not
    /// asked.
    pub(crate) async fn peer_shovel_statuses(&self) -> Vec<ShovelStatus> {
        let mut asks = tokio::task::JoinSet::new();
        for member in self.status().members {
            if member.name == self.name || self.groups.node_down(&member.name) {
                continue;
            }
            let network = self.network.clone();
            asks.spawn(async move {
                let answer: Result<Vec<ShovelStatus>, _> = network
                    .post(&member.addr, PATH, &(), Some(ASK_TIMEOUT))
                    .await;
                answer.unwrap_or_else(|error| {
                    tracing::debug!(node = %member.name, %error, "no shovel statuses from a member");
                    Vec::new()
                })
            });
        }
        let mut statuses = Vec::new();
        while let Some(answer) = asks.join_next().await {
            statuses.extend(answer.unwrap_or_default());
        }
        statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_picks_the_same_runner_and_a_lost_runner_moves_only_its_shovels() {
        let all = ["n1", "n2", "n3"];
        let names: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
        let first: Vec<&str> = names
            .iter()
            .map(|n| runner(all.iter().copied(), "/", n).expect("a runner"))
            .collect();
        let reversed: Vec<&str> = names
            .iter()
            .map(|n| runner(all.iter().rev().copied(), "/", n).expect("a runner"))
            .collect();
        assert_eq!(
            first, reversed,
            "the order members are listed in does not matter"
        );
        for node in all {
            assert!(first.contains(&node), "{node} runs none of 60 shovels");
        }
        let without_n2 = ["n1", "n3"];
        for (name, was) in names.iter().zip(&first) {
            let now = runner(without_n2.iter().copied(), "/", name).expect("a runner");
            match *was {
                "n2" => assert_ne!(now, "n2"),
                other => assert_eq!(now, other, "{name} moved though its runner stayed"),
            }
        }
        assert_ne!(
            runner(all.iter().copied(), "a", "s"),
            None,
            "a vhost and name always have a runner"
        );
    }
}
