//! A quorum queue under faults, in the spirit of Jepsen: three (or five) nodes, publishers with confirms and
//! consumers with acks on every node (each reconnecting to another node when its own fails), while each cycle kills
//! (-9) the queue's leader or a follower, pauses one (SIGSTOP, then SIGCONT), or cuts the leader (with a second node
//! on five) or a follower off from the others for 3 to 7 s, and brings it back. Then the faults stop, the queue is
//! drained, and every message is checked:
//! - lost: confirmed (acked to its publisher) but never received; must be 0;
//! - unexpected: received but never published; must be 0;
//! - duplicated: received more than once; counted, as at-least-once delivery allows (a delivery whose ack a fault
//!   cut off is redelivered).
//!
//! A publish whose confirm never came (its connection died) is indeterminate: it may or may not be in the queue.
//!
//! The queue dead-letters at least once (`x-dead-letter-strategy: at-least-once`, `reject-publish`) to a second
//! quorum queue, and the consumers reject (without requeue) every fifth message instead of acking it: such a
//! message counts as received once a consumer of the dead-letter queue has it, so a letter lost between the two
//! queues is counted lost too.
//!
//! Partitions need a network namespace: the test runs itself again inside one of its own (`unshare --net`), where
//! each node's inter-node address is its own (127.0.0.11, .12, ...) and a partition is a pair of `blackhole`
//! policy-routing rules per cut link; the machine's network is not touched. Where namespaces cannot be made (not
//! root), it runs without partitions and its summary line says so.
//!
//! Seeded and repeatable in its choices: `WARREN_QUORUM_SEED` (default 1), `WARREN_QUORUM_CYCLES` (default 3, the
//! CI size; the long run in docs/clustering.md uses 100) and `WARREN_QUORUM_NODES` (3 or 5, default 3). Prints one
//! summary line per run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{eventually, free_port_list, start_cluster, Node};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const QUEUE: &str = "checked";

/// Where the consumers' rejections go.
const DEAD_LETTER_QUEUE: &str = "checked-dead";

/// Set (to 1) in the run inside the test's own network namespace.
const NAMESPACE_ENV: &str = "WARREN_QUORUM_NETNS";

/// Readies a fresh network namespace: loopback up, and the local routing table looked up after the partition rules
/// (preference 10) rather than before them.
const NAMESPACE_SETUP: &str =
    "ip link set lo up && ip rule add pref 100 table local && ip rule del pref 0";

/// Runs this test again in a network namespace of its own; None when one cannot be made here.
fn rerun_in_namespace() -> Option<std::process::ExitStatus> {
    let probe = Command::new("unshare")
        .args(["--net", "sh", "-c", NAMESPACE_SETUP])
        .output()
        .ok()?;
    if !probe.status.success() {
        eprintln!(
            "no network namespace here ({}): partitions left out",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    Command::new("unshare")
        .args(["--net", "sh", "-c"])
        .arg(format!("{NAMESPACE_SETUP} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([
            "--exact",
            "confirmed_messages_of_a_quorum_queue_survive_kills_pauses_and_partitions",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NAMESPACE_ENV, "1")
        .status()
        .ok()
}

/// Cuts and heals links between nodes whose inter-node addresses are `ips`, inside the test's namespace.
struct Partitions {
    ips: Vec<String>,
}

impl Partitions {
    fn rule(action: &str, from: &str, to: &str) {
        let out = Command::new("ip")
            .args([
                "rule",
                action,
                "pref",
                "10",
                "from",
                from,
                "to",
                to,
                "blackhole",
            ])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip rule {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Cuts every link between a node of `side` and a node not in it, both ways.
    fn isolate(&self, side: &[usize]) {
        self.each_cut(side, "add");
    }

    /// Heals what [`Partitions::isolate`] cut for `side`.
    fn heal(&self, side: &[usize]) {
        self.each_cut(side, "del");
    }

    fn each_cut(&self, side: &[usize], action: &str) {
        for a in side {
            for b in (0..self.ips.len()).filter(|b| !side.contains(b)) {
                Partitions::rule(action, &self.ips[*a], &self.ips[b]);
                Partitions::rule(action, &self.ips[b], &self.ips[*a]);
            }
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Each node's AMQP URI: a restarted node listens on a new port.
type Uris = Arc<Mutex<Vec<String>>>;

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    published: BTreeSet<String>,
    confirmed: BTreeSet<String>,
    received: BTreeMap<String, u32>,
}

fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// The checked queue's arguments: quorum, dead-lettering at least once to [`DEAD_LETTER_QUEUE`].
fn checked_queue() -> FieldTable {
    let mut arguments = quorum();
    for (key, value) in [
        ("x-dead-letter-exchange", ""),
        ("x-dead-letter-routing-key", DEAD_LETTER_QUEUE),
        ("x-dead-letter-strategy", "at-least-once"),
        ("x-overflow", "reject-publish"),
    ] {
        arguments.insert(key.into(), AMQPValue::LongString(value.into()));
    }
    arguments
}

/// Whether the consumers reject `body` (`p{id}-{n}` with `n` a multiple of five) rather than ack it.
fn rejected(body: &str) -> bool {
    body.rsplit('-')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n % 5 == 0)
}

/// A connection and channel to the node `target` names (then the next one), with its URI; None (after a pause
/// when the node does not answer) when either fails.
async fn open_next(
    uris: &Uris,
    target: &mut usize,
) -> Option<(String, Connection, lapin::Channel)> {
    let uri = {
        let uris = uris.lock().expect("uris");
        uris[*target % uris.len()].clone()
    };
    *target += 1;
    let Ok(Ok(conn)) = tokio::time::timeout(
        Duration::from_secs(3),
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    else {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return None;
    };
    let Ok(Ok(ch)) = tokio::time::timeout(Duration::from_secs(10), conn.create_channel()).await
    else {
        return None;
    };
    Some((uri, conn, ch))
}

/// Publishes `p{id}-{n}` in windows of 20 with confirms to the nodes in turn, starting with node `id`, until
/// `stop`; reconnects to the next node when a connection fails.
async fn publisher(id: usize, uris: Uris, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let mut next = 0u64;
    let mut target = id;
    while !stop.load(Ordering::Relaxed) {
        let Some((uri, conn, ch)) = open_next(&uris, &mut target).await else {
            continue;
        };
        let uri = &uri;
        if ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .is_err()
        {
            continue;
        }
        'window: while !stop.load(Ordering::Relaxed) {
            let mut window = Vec::new();
            for _ in 0..20 {
                let body = format!("p{id}-{next}");
                next += 1;
                ledger
                    .lock()
                    .expect("ledger")
                    .published
                    .insert(body.clone());
                let sent = tokio::time::timeout(
                    Duration::from_secs(20),
                    ch.basic_publish(
                        "".into(),
                        QUEUE.into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    ),
                )
                .await;
                match sent {
                    Ok(Ok(confirm)) => window.push((body, confirm)),
                    _ => {
                        eprintln!("publisher {id}: publish failed on {uri}");
                        break 'window;
                    }
                }
            }
            for (body, confirm) in window {
                match tokio::time::timeout(Duration::from_secs(20), confirm).await {
                    Ok(Ok(c)) if c.is_ack() => {
                        ledger.lock().expect("ledger").confirmed.insert(body);
                    }
                    // Nacked, failed or timed out: indeterminate.
                    outcome => {
                        eprintln!("publisher {id}: confirm on {uri}: {outcome:?}");
                        break 'window;
                    }
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "next".into())).await;
    }
}

/// Consumes from `queue` with acks from the nodes in turn, starting with node `id`, until `stop`. From the checked
/// queue, the messages [`rejected`] picks are rejected and not counted received: they count once they come out of
/// the dead-letter queue.
async fn consumer(
    id: usize,
    queue: &'static str,
    uris: Uris,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut target = id;
    while !stop.load(Ordering::Relaxed) {
        let Some((_, conn, ch)) = open_next(&uris, &mut target).await else {
            continue;
        };
        if ch.basic_qos(50, BasicQosOptions::default()).await.is_err() {
            continue;
        }
        let Ok(Ok(mut deliveries)) = tokio::time::timeout(
            Duration::from_secs(15),
            ch.basic_consume(
                queue.into(),
                format!("c{id}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        else {
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let next = tokio::time::timeout(Duration::from_millis(500), deliveries.next()).await;
            let delivery = match next {
                Err(_) => continue,
                Ok(Some(Ok(delivery))) => delivery,
                Ok(_) => break,
            };
            let body = String::from_utf8_lossy(&delivery.data).into_owned();
            if queue == QUEUE && rejected(&body) {
                let reject = BasicRejectOptions { requeue: false };
                if delivery.reject(reject).await.is_err() {
                    break;
                }
                continue;
            }
            *ledger
                .lock()
                .expect("ledger")
                .received
                .entry(body)
                .or_default() += 1;
            if delivery.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "next".into())).await;
    }
}

/// The node the queue's group is led by, as the first node that answers names it.
fn queue_leader(nodes: &[Node]) -> Option<usize> {
    for node in nodes.iter().filter(|n| n.is_up()) {
        let Some(code) = node.try_api(
            reqwest::Method::GET,
            &format!("/queues/%2F/{QUEUE}"),
            Duration::from_secs(2),
        ) else {
            continue;
        };
        if code.is_success() {
            let (_, queue) = node.get(&format!("/queues/%2F/{QUEUE}"));
            if let Some(leader) = queue["leader"].as_str() {
                return leader[1..].parse::<usize>().ok().map(|n| n - 1);
            }
        }
    }
    None
}

#[test]
fn confirmed_messages_of_a_quorum_queue_survive_kills_pauses_and_partitions() {
    let inside = std::env::var_os(NAMESPACE_ENV).is_some();
    if !inside {
        if let Some(status) = rerun_in_namespace() {
            assert!(status.success(), "the run in its own namespace failed");
            return;
        }
    }
    let seed = env_or("WARREN_QUORUM_SEED", 1);
    let cycles = env_or("WARREN_QUORUM_CYCLES", 3);
    let n = env_or("WARREN_QUORUM_NODES", 3) as usize;
    assert!(n == 3 || n == 5, "WARREN_QUORUM_NODES is 3 or 5");
    let mut rng = StdRng::seed_from_u64(seed);
    let ports = free_port_list(n);
    // In the namespace each node has an address of its own, so links between two nodes can be cut.
    let ips: Vec<String> = (0..n)
        .map(|i| match inside {
            true => format!("127.0.0.{}", 11 + i),
            false => "127.0.0.1".to_owned(),
        })
        .collect();
    let partitions = inside.then(|| Partitions { ips: ips.clone() });
    let addrs: Vec<String> = (0..n).map(|i| format!("{}:{}", ips[i], ports[i])).collect();
    let mut nodes = start_cluster(&addrs);
    eventually(30, "a leader elected", || nodes[0].leader().is_some());
    let uris: Uris = Arc::new(Mutex::new(
        nodes.iter().map(|n| n.process().uri()).collect(),
    ));
    let first_uri = uris.lock().expect("uris")[0].clone();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let conn = Connection::connect(&first_uri, ConnectionProperties::default())
            .await
            .expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        for (queue, arguments) in [(DEAD_LETTER_QUEUE, quorum()), (QUEUE, checked_queue())] {
            ch.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await
            .expect("declare");
        }
        conn.close(200, "declared".into()).await.expect("close");
    });

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for id in 0..3 {
        tasks.push(rt.spawn(publisher(
            id,
            uris.clone(),
            ledger.clone(),
            stop_publishing.clone(),
        )));
        for queue in [QUEUE, DEAD_LETTER_QUEUE] {
            tasks.push(rt.spawn(consumer(
                id,
                queue,
                uris.clone(),
                ledger.clone(),
                stop_consuming.clone(),
            )));
        }
    }

    let (mut leader_kills, mut follower_kills, mut pauses, mut leader_pauses) = (0, 0, 0, 0);
    let (mut leader_cuts, mut follower_cuts) = (0, 0);
    let mut recoveries: Vec<Duration> = Vec::new();
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(1500));
        let leader = queue_leader(&nodes).unwrap_or(0);
        // 0: kill the leader, 1: kill a follower, 2: pause the leader, 3: pause a follower; in a namespace also
        // 4: cut the leader off (with a follower on five nodes: a minority of two), 5: cut a follower off.
        let fault = rng.random_range(0..if partitions.is_some() { 6 } else { 4 });
        let follower = (leader + rng.random_range(1..n)) % n;
        let victim = match fault {
            0 | 2 | 4 => leader,
            _ => follower,
        };
        let confirmed_before = ledger.lock().expect("ledger").confirmed.len();
        let started = Instant::now();
        eprintln!(
            "cycle {cycle}: fault {fault} on n{} (queue leader n{}), {confirmed_before} confirmed so far",
            victim + 1,
            leader + 1
        );
        if let (Some(partitions), 4 | 5) = (&partitions, fault) {
            let side = match (fault, n) {
                (4, 5) => vec![leader, follower],
                _ => vec![victim],
            };
            match fault {
                4 => leader_cuts += 1,
                _ => follower_cuts += 1,
            }
            partitions.isolate(&side);
            std::thread::sleep(Duration::from_millis(rng.random_range(3000..7000)));
            partitions.heal(&side);
        } else if fault >= 2 {
            pauses += 1;
            if fault == 2 {
                leader_pauses += 1;
            }
            nodes[victim].signal("STOP");
            std::thread::sleep(Duration::from_millis(2500));
            nodes[victim].signal("CONT");
        } else {
            if fault == 0 {
                leader_kills += 1;
            } else {
                follower_kills += 1;
            }
            nodes[victim].kill9();
            std::thread::sleep(Duration::from_millis(2500));
            nodes[victim].restart();
            uris.lock().expect("uris")[victim] = nodes[victim].process().uri();
        }
        eventually(60, "the node back in the cluster", || {
            nodes[victim].leader().is_some()
        });
        // Publishing goes on: new confirms after the fault.
        let deadline = Instant::now() + Duration::from_secs(60);
        while ledger.lock().expect("ledger").confirmed.len() <= confirmed_before + 20 {
            if Instant::now() > deadline {
                for (i, node) in nodes.iter().enumerate() {
                    let (_, queue) = node.get(&format!("/queues/%2F/{QUEUE}"));
                    eprintln!(
                        "n{}: leader {} members {} ready {} unacked {} consumers {}",
                        i + 1,
                        queue["leader"],
                        queue["members"],
                        queue["messages_ready"],
                        queue["messages_unacknowledged"],
                        queue["consumers"]
                    );
                }
                panic!("no confirms within 60 s after the fault of cycle {cycle}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        recoveries.push(started.elapsed());
    }

    stop_publishing.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    // Drained: everything confirmed received, and nothing left in the queue.
    // A long run can leave a backlog: draining may take long, but it must not stall.
    let mut progress = (0usize, Instant::now());
    loop {
        let missing: Vec<String> = {
            let ledger = ledger.lock().expect("ledger");
            ledger
                .confirmed
                .iter()
                .filter(|body| !ledger.received.contains_key(*body))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        if progress.0 != missing.len() {
            progress = (missing.len(), Instant::now());
        } else if progress.1.elapsed() > Duration::from_secs(60) {
            let rejected = missing.iter().filter(|b| rejected(b)).count();
            eprintln!(
                "not drained: {} confirmed messages not received ({rejected} of them rejected ones), e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
            for (i, node) in nodes.iter().enumerate() {
                for name in [QUEUE, DEAD_LETTER_QUEUE] {
                    let (_, queue) = node.get(&format!("/queues/%2F/{name}"));
                    eprintln!(
                        "n{} {name}: leader {} messages {} ready {} unacked {} consumers {}",
                        i + 1,
                        queue["leader"],
                        queue["messages"],
                        queue["messages_ready"],
                        queue["messages_unacknowledged"],
                        queue["consumers"]
                    );
                }
            }
            panic!("the queues stopped draining for 60 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eventually(60, "nothing left in the queues", || {
        [QUEUE, DEAD_LETTER_QUEUE].iter().all(|name| {
            let (_, queue) = nodes[0].get(&format!("/queues/%2F/{name}"));
            queue["messages"] == 0
        })
    });
    stop_consuming.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    });

    let ledger = ledger.lock().expect("ledger");
    let lost = ledger
        .confirmed
        .iter()
        .filter(|body| !ledger.received.contains_key(*body))
        .count();
    let unexpected = ledger
        .received
        .keys()
        .filter(|body| !ledger.published.contains(*body))
        .count();
    let duplicated = ledger.received.values().filter(|n| **n > 1).count();
    let slowest = recoveries.iter().max().copied().unwrap_or_default();
    println!(
        "quorum checker: seed {seed}, {n} nodes, {cycles} cycles ({leader_kills} leader kills, {follower_kills} \
         follower kills, {pauses} pauses of which {leader_pauses} of the leader, {} leader cut-offs, {} follower \
         cut-offs): published {}, confirmed {}, received {} distinct, lost {lost}, duplicated {duplicated}, \
         unexpected {unexpected}; slowest recovery {:.1} s",
        partitions.as_ref().map_or("no".to_owned(), |_| leader_cuts.to_string()),
        partitions.as_ref().map_or("no".to_owned(), |_| follower_cuts.to_string()),
        ledger.published.len(),
        ledger.confirmed.len(),
        ledger.received.len(),
        slowest.as_secs_f64()
    );
    assert_eq!(lost, 0, "confirmed messages lost");
    assert_eq!(unexpected, 0, "messages nobody published");
    assert!(!ledger.confirmed.is_empty(), "nothing was confirmed");
}
