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
                durable: true,
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
        {
            let conn = Connection::connect(&broker.uri(), ConnectionProperties::default())
                .await
                .expect("connect");
            let ch = conn.create_channel().await.expect("channel");
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
                .await
                .expect("declare");
            let _ = conn.close(200, "declared".into()).await;
        }
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| tokio::spawn(publish_until_killed(broker.uri(), queue.clone(), p)))
            .collect();
        let delay = 200 + rng.next() % 800;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let addr = broker.addr;
        broker.kill9();
        let mut confirmed = HashSet::new();
        for p in publishers {
            confirmed.extend(p.await.expect("publisher task"));
        }
        broker = BrokerProcess::start_on(addr, &dir, &[]);
        let got = drain(&broker.uri(), &queue).await;
        let mut seen = HashSet::new();
        for id in &got {
            assert!(
                seen.insert(id.clone()),
                "cycle {cycle}: message {id} delivered twice"
            );
        }
        let missing: Vec<_> = confirmed.iter().filter(|id| !seen.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {} confirmed messages lost, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        total_confirmed += confirmed.len();
        println!(
            "cycle {cycle}: killed after {delay} ms, {} confirmed, {} recovered, 0 lost",
            confirmed.len(),
            got.len()
        );
    }
    println!("{cycles} kill -9 cycles, {total_confirmed} confirmed messages, 0 lost");
}
