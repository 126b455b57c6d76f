//! The definitions group under faults, in the spirit of Jepsen: three nodes, a writer creating vhosts on random
//! nodes while the leader is killed (-9) or paused (SIGSTOP, then SIGCONT) and brought back, cycle after cycle; then
//! every node is checked. A vhost whose creation was acknowledged (201) must be on every node (lost: must be 0); a
//! vhost nobody tried to create must be on none (unexpected: must be 0); a creation that failed or timed out is
//! indeterminate, as in any consensus system, and is counted, not judged.
//!
//! Seeded and repeatable in its choices (which node each write goes to, which fault each cycle injects):
//! `WARREN_CLUSTER_SEED` (default 1) and `WARREN_CLUSTER_CYCLES` (default 3, the CI size; the long run in
//! docs/clustering.md uses 100). Prints one summary line per run.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{eventually, free_ports, start_three, Node};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes vhosts round `cycle` for `duration` on random running nodes (not `paused`); each attempt's name goes to
/// `acknowledged` or `indeterminate`.
#[allow(clippy::too_many_arguments)]
fn write_for(
    nodes: &[Node],
    paused: Option<usize>,
    rng: &mut StdRng,
    cycle: u64,
    next: &mut u64,
    duration: Duration,
    acknowledged: &mut BTreeSet<String>,
    indeterminate: &mut BTreeSet<String>,
) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let up: Vec<&Node> = nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.is_up() && Some(*i) != paused)
            .map(|(_, n)| n)
            .collect();
        let node = up[rng.random_range(0..up.len())];
        let name = format!("c{cycle}-w{next}");
        *next += 1;
        let status = node.try_api(
            Method::PUT,
            &format!("/vhosts/{name}"),
            Duration::from_secs(12),
        );
        match status {
            Some(StatusCode::CREATED) => {
                acknowledged.insert(name);
            }
            _ => {
                indeterminate.insert(name);
            }
        }
    }
}

#[test]
fn acknowledged_definition_changes_survive_leader_kills_and_pauses() {
    let seed = env_or("WARREN_CLUSTER_SEED", 1);
    let cycles = env_or("WARREN_CLUSTER_CYCLES", 3);
    let mut rng = StdRng::seed_from_u64(seed);
    let ports = free_ports();
    let mut nodes = start_three(&ports);
    let (mut acknowledged, mut indeterminate) = (BTreeSet::new(), BTreeSet::new());
    let mut next = 0;
    let (mut kills, mut pauses) = (0, 0);
    let mut elections: Vec<Duration> = Vec::new();

    for cycle in 0..cycles {
        eventually(30, "a leader", || nodes[0].leader().is_some());
        write_for(
            &nodes,
            None,
            &mut rng,
            cycle,
            &mut next,
            Duration::from_millis(300),
            &mut acknowledged,
            &mut indeterminate,
        );
        let leader = nodes[0].leader().expect("a leader");
        let index = ["n1", "n2", "n3"]
            .iter()
            .position(|n| *n == leader)
            .expect("a known node");
        if rng.random_bool(0.5) {
            kills += 1;
            nodes[index].kill9();
            // How long the survivors take to name a new leader (measured, not asserted).
            let killed_at = Instant::now();
            let survivor = &nodes[(index + 1) % 3];
            while killed_at.elapsed() < Duration::from_secs(10)
                && survivor.leader().is_none_or(|l| l == leader)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            elections.push(killed_at.elapsed());
            write_for(
                &nodes,
                None,
                &mut rng,
                cycle,
                &mut next,
                Duration::from_millis(2500),
                &mut acknowledged,
                &mut indeterminate,
            );
            nodes[index].restart();
        } else {
            pauses += 1;
            nodes[index].signal("STOP");
            write_for(
                &nodes,
                Some(index),
                &mut rng,
                cycle,
                &mut next,
                Duration::from_millis(2500),
                &mut acknowledged,
                &mut indeterminate,
            );
            nodes[index].signal("CONT");
        }
    }

    // Healed: every node must hold every acknowledged vhost, and nothing nobody asked for.
    let attempted: BTreeSet<&String> = acknowledged.iter().chain(indeterminate.iter()).collect();
    let mut lost = 0;
    let mut unexpected = 0;
    let mut indeterminate_present = 0;
    for (i, node) in nodes.iter().enumerate() {
        eventually(30, "every acknowledged vhost on the node", || {
            acknowledged
                .iter()
                .all(|name| node.get(&format!("/vhosts/{name}")).0 == StatusCode::OK)
        });
        let (_, list) = node.get("/vhosts");
        let present: BTreeSet<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .filter(|name| name.starts_with('c'))
            .collect();
        lost += acknowledged
            .iter()
            .filter(|n| !present.contains(*n))
            .count();
        unexpected += present.iter().filter(|n| !attempted.contains(n)).count();
        if i == 0 {
            indeterminate_present = indeterminate
                .iter()
                .filter(|n| present.contains(*n))
                .count();
        }
    }
    // Every node holds the same vhosts.
    let lists: Vec<BTreeSet<String>> = nodes
        .iter()
        .map(|node| {
            node.get("/vhosts")
                .1
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["name"].as_str().map(str::to_owned))
                .collect()
        })
        .collect();
    elections.sort();
    let election = |q: usize| {
        elections
            .get((elections.len() * q / 100).min(elections.len().saturating_sub(1)))
            .map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()))
    };
    println!(
        "cluster checker: seed {seed}, {cycles} cycles ({kills} leader kills, {pauses} leader pauses): \
         {} acknowledged, lost {lost}, unexpected {unexpected}, {} indeterminate ({indeterminate_present} of them \
         took effect), nodes agree: {}; new leader after a kill: median {}, max {}",
        acknowledged.len(),
        indeterminate.len(),
        lists.windows(2).all(|w| w[0] == w[1]),
        election(50),
        election(100),
    );
    assert_eq!(lost, 0);
    assert_eq!(unexpected, 0);
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "{lists:?}");
    assert!(
        !acknowledged.is_empty(),
        "the writer got nothing acknowledged"
    );
}
