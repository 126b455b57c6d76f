//! The real kill -9 test: publishers with confirms in flight, SIGKILL at a random moment, restart, drain; no
//! message whose publish was confirmed may be missing, none may appear twice.
//!
//! CI runs a few cycles. The long run is `WARREN_KILL9_CYCLES=300 cargo test --release --test kill9 -- --nocapture`.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::process::{fresh_data_dir, BrokerProcess};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// xorshift64*: seeded and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const PUBLISHERS: u64 = 2;
const WINDOW: usize = 100;

/// Publishes persistent messages `publisher:seq` with a confirm window until the connection dies; returns the
/// confirmed ones.
async fn publish_until_killed(uri: String, queue: String, publisher: u64) -> HashSet<String> {
    let mut confirmed = HashSet::new();
    let Ok(conn) = Connection::connect(&uri, ConnectionProperties::default()).await else {
        return confirmed;
    };
    let Ok(ch) = conn.create_channel().await else {
        return confirmed;
    };
    if ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .is_err()
    {
        return confirmed;
    }
    let mut pending = Vec::new();
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut seq = 0u64;
    loop {
        let id = format!("{publisher}:{seq}");
        seq += 1;
        let publish = ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                id.as_bytes(),
                props.clone(),
            )
            .await;
        let Ok(confirm) = publish else {
            break;
        };
        pending.push((id, confirm));
        if pending.len() >= WINDOW {
            let mut dead = false;
            for (id, confirm) in pending.drain(..) {
                match confirm.await {
                    Ok(c) if c.is_ack() => {
                        confirmed.insert(id);
                    }
                    _ => dead = true,
                }
            }
            if dead {
                break;
            }
        }
    }
    for (id, confirm) in pending {
        if let Ok(c) = confirm.await {
            if c.is_ack() {
                confirmed.insert(id);
            }
        }
    }
    confirmed
}

async fn drain(uri: &str, queue: &str) -> Vec<String> {
    let conn = common::within(
        60,
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connect after restart");
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(1000, BasicQosOptions::default())
        .await
        .expect("qos");
    let declared = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue survives");
    let expected = declared.message_count() as usize;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "drain".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut got = Vec::with_capacity(expected);
    while got.len() < expected {
        let delivery = common::within(60, consumer.next())
            .await
            .expect("delivery")
            .expect("delivery ok");
        got.push(String::from_utf8_lossy(&delivery.data).into_owned());
    }
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let _ = conn.close(200, "done".into()).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_confirmed_message_is_lost_across_sigkill() {
    let cycles: u64 = std::env::var("WARREN_KILL9_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("WARREN_KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(seed | 1);
    let dir = fresh_data_dir("kill9");
    let mut broker = BrokerProcess::start(&dir, &[]);
    let mut total_confirmed = 0usize;
    for cycle in 0..cycles {
        let queue = format!("k9-{cycle}");
        declare_durable(&broker.uri(), &queue, FieldTable::default()).await;
        let delay = 200 + rng.next() % 800;
        let confirmed;
        (broker, confirmed) = publish_then_kill(broker, &dir, &queue, delay).await;
        let got = drain(&broker.uri(), &queue).await;
        let seen = distinct(cycle, &got);
        assert_none_lost(cycle, &confirmed, &seen);
        total_confirmed += confirmed.len();
        println!(
            "cycle {cycle}: killed after {delay} ms, {} confirmed, {} recovered, 0 lost",
            confirmed.len(),
            got.len()
        );
    }
    println!("{cycles} kill -9 cycles, {total_confirmed} confirmed messages, 0 lost");
}

/// Declares a durable queue with `arguments`.
async fn declare_durable(uri: &str, queue: &str, arguments: FieldTable) {
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), durable, arguments)
        .await
        .expect("declare");
    let _ = conn.close(200, "declared".into()).await;
}

/// Publishes to `queue` from [`PUBLISHERS`] connections, kills the broker after `delay_ms`, restarts it on the same
/// address and data directory; returns it and the messages whose publish was confirmed.
async fn publish_then_kill(
    broker: BrokerProcess,
    dir: &std::path::Path,
    queue: &str,
    delay_ms: u64,
) -> (BrokerProcess, HashSet<String>) {
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| tokio::spawn(publish_until_killed(broker.uri(), queue.to_owned(), p)))
        .collect();
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let addr = broker.addr;
    broker.kill9();
    let mut confirmed = HashSet::new();
    for p in publishers {
        confirmed.extend(p.await.expect("publisher task"));
    }
    (BrokerProcess::start_on(addr, dir, &[]), confirmed)
}

/// The messages of one queue's drain, each at most once.
fn distinct(cycle: u64, got: &[String]) -> HashSet<String> {
    let mut seen = HashSet::new();
    for id in got {
        assert!(
            seen.insert(id.clone()),
            "cycle {cycle}: message {id} delivered twice"
        );
    }
    seen
}

fn assert_none_lost(cycle: u64, confirmed: &HashSet<String>, seen: &HashSet<String>) {
    let missing: Vec<_> = confirmed.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "cycle {cycle}: {} confirmed messages lost, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}

/// Dead-lettering in flight: a durable queue with `x-max-length` pushes its oldest messages out to a durable
/// dead-letter queue while publishers fill it, and the broker is killed at a random moment. Every confirmed
/// message must come back in one of the two queues. Duplicates are allowed, as at-least-once: a kill between a
/// copy's store and its source's forget brings the message back in the source, and it may be pushed out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_confirmed_message_is_lost_while_being_dead_lettered_across_sigkill() {
    let cycles: u64 = std::env::var("WARREN_KILL9_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut rng = Rng(0xdead_1e77 | 1);
    let dir = fresh_data_dir("kill9-dlx");
    let mut broker = BrokerProcess::start(&dir, &[]);
    for cycle in 0..cycles {
        let source = format!("k9dl-src-{cycle}");
        let target = format!("k9dl-dst-{cycle}");
        declare_durable(&broker.uri(), &target, FieldTable::default()).await;
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(200));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            lapin::types::AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            lapin::types::AMQPValue::LongString(target.as_str().into()),
        );
        declare_durable(&broker.uri(), &source, arguments).await;
        let delay = 200 + rng.next() % 800;
        let confirmed;
        (broker, confirmed) = publish_then_kill(broker, &dir, &source, delay).await;
        let kept = drain(&broker.uri(), &source).await;
        let dead_lettered = drain(&broker.uri(), &target).await;
        // At least once: a kill after a copy was stored but before its source forgot the message brings the
        // message back in the source, which may push it out to the target again.
        let seen: HashSet<String> = kept.iter().chain(&dead_lettered).cloned().collect();
        let duplicates = kept.len() + dead_lettered.len() - seen.len();
        assert_none_lost(cycle, &confirmed, &seen);
        assert!(
            !dead_lettered.is_empty() || confirmed.len() <= 200,
            "cycle {cycle}: {} confirmed into a queue of 200, none dead-lettered",
            confirmed.len()
        );
        println!(
            "cycle {cycle}: killed after {delay} ms, {} confirmed, {} kept, {} dead-lettered, {duplicates} duplicates, 0 lost",
            confirmed.len(),
            kept.len(),
            dead_lettered.len()
        );
    }
}

/// At-least-once dead-lettering in flight between durable quorum queues: the source's messages expire after
/// 20 ms and are dead-lettered at least once to a durable quorum target while publishers fill the source, and the
/// broker is killed at a random moment. A dead letter leaves its source only once the target holds it on disk, so
/// every confirmed message must come back in one of the two queues (duplicates allowed: a kill after the target's
/// copy is durable but before the source forgot its own brings it back in both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_confirmed_message_is_lost_while_dead_lettered_at_least_once_across_sigkill() {
    use lapin::types::AMQPValue;
    let cycles: u64 = std::env::var("WARREN_KILL9_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut rng = Rng(0xa1_0dead | 1);
    let dir = fresh_data_dir("kill9-dlx-alo");
    let mut broker = BrokerProcess::start(&dir, &[]);
    let quorum = || {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments
    };
    for cycle in 0..cycles {
        let source = format!("k9alo-src-{cycle}");
        let target = format!("k9alo-dst-{cycle}");
        declare_durable(&broker.uri(), &target, quorum()).await;
        let mut arguments = quorum();
        for (key, value) in [
            ("x-dead-letter-exchange", ""),
            ("x-dead-letter-routing-key", target.as_str()),
            ("x-dead-letter-strategy", "at-least-once"),
            ("x-overflow", "reject-publish"),
        ] {
            arguments.insert(key.into(), AMQPValue::LongString(value.into()));
        }
        arguments.insert("x-message-ttl".into(), AMQPValue::LongInt(20));
        declare_durable(&broker.uri(), &source, arguments).await;
        let delay = 200 + rng.next() % 800;
        let confirmed;
        (broker, confirmed) = publish_then_kill(broker, &dir, &source, delay).await;
        let (got, seen) =
            collect_until_all_seen(&broker.uri(), &[&source, &target], &confirmed).await;
        assert_none_lost(cycle, &confirmed, &seen);
        println!(
            "cycle {cycle}: killed after {delay} ms, {} confirmed, {got} received from source and target, {} duplicates, 0 lost",
            confirmed.len(),
            got - seen.len()
        );
    }
}

/// Consumes (no-ack) from every one of `queues` until each of `expected` has been seen, or nothing has come for
/// 10 s; returns how many deliveries came and the distinct bodies.
async fn collect_until_all_seen(
    uri: &str,
    queues: &[&str],
    expected: &HashSet<String>,
) -> (usize, HashSet<String>) {
    let conn = common::within(
        60,
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connect after restart");
    let ch = conn.create_channel().await.expect("channel");
    let (sender, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    for queue in queues {
        let mut consumer = ch
            .basic_consume(
                (*queue).into(),
                format!("collect-{queue}").as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let sender = sender.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body = String::from_utf8_lossy(&delivery.data).into_owned();
                if sender.send(body).is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);
    let mut got = 0;
    let mut seen = HashSet::new();
    while !expected.iter().all(|id| seen.contains(id)) {
        match tokio::time::timeout(Duration::from_secs(10), deliveries.recv()).await {
            Ok(Some(body)) => {
                got += 1;
                seen.insert(body);
            }
            _ => break,
        }
    }
    let _ = conn.close(200, "done".into()).await;
    (got, seen)
}

/// Changes policies on the queue through the management API (set, replaced, cleared; definitions that keep every
/// message) until the broker stops answering; returns how many changes it made.
async fn churn_policies(management: String) -> usize {
    let http = reqwest::Client::new();
    let definitions = [
        serde_json::json!({"max-length": 1_000_000}),
        serde_json::json!({"message-ttl": 3_600_000}),
        serde_json::json!({"dead-letter-exchange": "k9p-dlx"}),
        serde_json::json!({"expires": 3_600_000}),
    ];
    let mut changes = 0;
    for i in 0usize.. {
        let url = format!("{management}/api/policies/%2F/churn-{}", i % 2);
        let request = match i % 3 {
            2 => http.delete(&url),
            _ => http.put(&url).json(&serde_json::json!({
                "pattern": "^k9p-",
                "apply-to": "queues",
                "priority": i % 3,
                "definition": definitions[i % definitions.len()],
            })),
        };
        match request.basic_auth("guest", Some("guest")).send().await {
            Ok(response) if response.status().is_success() || response.status() == 404 => {
                changes += 1
            }
            Ok(response) => panic!("policy change {i} refused: {}", response.status()),
            Err(_) => return changes,
        }
    }
    changes
}

/// Policy changes in flight: the queue's policies are set, replaced and cleared through the management API while
/// publishers fill it, and the broker is killed at a random moment. It must come back with its policies readable
/// and every confirmed message in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_confirmed_message_is_lost_while_policies_change_across_sigkill() {
    let cycles: u64 = std::env::var("WARREN_KILL9_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut rng = Rng(0x9011_c1e5 | 1);
    let dir = fresh_data_dir("kill9-policies");
    let mut broker = BrokerProcess::start(&dir, &[]);
    for cycle in 0..cycles {
        let queue = format!("k9p-{cycle}");
        declare_durable(&broker.uri(), &queue, FieldTable::default()).await;
        let management = format!("http://127.0.0.1:{}", broker.management_port());
        let churn = tokio::spawn(churn_policies(management));
        let delay = 200 + rng.next() % 800;
        let confirmed;
        (broker, confirmed) = publish_then_kill(broker, &dir, &queue, delay).await;
        let changes = churn.await.expect("policy task");
        assert!(changes > 0, "cycle {cycle}: no policy change went through");
        let management = format!("http://127.0.0.1:{}", broker.management_port());
        let listed = reqwest::Client::new()
            .get(format!("{management}/api/policies/%2F"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .expect("policies listed after the restart");
        assert!(listed.status().is_success());
        let policies: serde_json::Value = listed.json().await.expect("policies as JSON");
        assert!(policies.is_array(), "{policies}");
        let got = drain(&broker.uri(), &queue).await;
        let seen = distinct(cycle, &got);
        assert_none_lost(cycle, &confirmed, &seen);
        println!(
            "cycle {cycle}: killed after {delay} ms, {changes} policy changes, {} confirmed, {} recovered, 0 lost",
            confirmed.len(),
            got.len()
        );
    }
}
