//! A shovel between two Warren processes survives kill -9 of either end: the node running the shovel is killed in
//! the middle of the transfer and restarted (its stored shovel resumes from the source queue), then the
//! destination is killed and restarted (the shovel reconnects). Every confirmed message must arrive; duplicates
//! are allowed (at-least-once, `on-confirm`) and counted.
//!
//! CI moves 20,000 messages. The long run: `SHOVEL_FAULT_MESSAGES=1000000 cargo test --release --test
//! shovel_faults -- --nocapture` (the summary line gives the counts).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::process::{fresh_data_dir, BrokerProcess};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

fn message_count() -> usize {
    std::env::var("SHOVEL_FAULT_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

async fn connect(broker: &BrokerProcess) -> Connection {
    Connection::connect(&broker.uri(), ConnectionProperties::default())
        .await
        .expect("connect")
}

/// Publishes `count` persistent messages `0..count` to the durable queue `queue`, 500 confirms in flight.
async fn publish(broker: &BrokerProcess, queue: &str, count: usize) {
    let conn = connect(broker).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), durable, FieldTable::default())
        .await
        .expect("declare");
    let mut pending = Vec::new();
    for i in 0..count {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                i.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        pending.push(confirm);
        if pending.len() == 500 {
            for confirm in pending.drain(..) {
                assert!(confirm.await.expect("confirm").is_ack());
            }
        }
    }
    for confirm in pending {
        assert!(confirm.await.expect("confirm").is_ack());
    }
    let _ = conn.close(200, "published".into()).await;
}

/// The ready count of `queue`, 0 while it does not exist or the broker is unreachable.
async fn ready(broker: &BrokerProcess, queue: &str) -> u32 {
    let Ok(conn) = Connection::connect(&broker.uri(), ConnectionProperties::default()).await else {
        return 0;
    };
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let count = match conn.create_channel().await {
        Ok(ch) => ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .map(|q| q.message_count())
            .unwrap_or(0),
        Err(_) => 0,
    };
    let _ = conn.close(200, "".into()).await;
    count
}

/// Waits until `queue` holds at least `at_least` ready messages.
async fn await_at_least(broker: &BrokerProcess, queue: &str, at_least: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while ready(broker, queue).await < at_least {
        assert!(
            Instant::now() < deadline,
            "{queue} never reached {at_least} messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes everything in `queue` (basic.get, no-ack) into `seen`, counting each body.
async fn drain(broker: &BrokerProcess, queue: &str, seen: &mut HashMap<usize, u32>) {
    let conn = connect(broker).await;
    let ch = conn.create_channel().await.expect("channel");
    while let Some(message) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        let body = String::from_utf8_lossy(&message.delivery.data).into_owned();
        let id: usize = body.parse().expect("a numeric body");
        *seen.entry(id).or_default() += 1;
    }
    let _ = conn.close(200, "".into()).await;
}

fn set_shovel(source: &BrokerProcess, destination: &BrokerProcess) {
    let port = source.management_port();
    let value = json!({"value": {"src-uri": source.uri(), "src-queue": "outbox", "dest-uri": destination.uri(),
                                 "dest-queue": "inbox", "reconnect-delay": 0.5, "src-prefetch-count": 500}});
    let response = reqwest::blocking::Client::new()
        .put(format!(
            "http://127.0.0.1:{port}/api/parameters/shovel/%2F/relay"
        ))
        .basic_auth("guest", Some("guest"))
        .json(&value)
        .send()
        .expect("PUT shovel");
    assert_eq!(response.status().as_u16(), 201, "{:?}", response.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shovel_loses_nothing_when_either_end_is_killed_and_restarted() {
    let total = message_count();
    let source_dir = fresh_data_dir("shovel-faults-source");
    let destination_dir = fresh_data_dir("shovel-faults-destination");
    let source = BrokerProcess::start(&source_dir, &[]);
    let destination = BrokerProcess::start(&destination_dir, &[]);
    let (source_addr, destination_addr) = (source.addr, destination.addr);
    publish(&source, "outbox", total).await;
    tokio::task::block_in_place(|| set_shovel(&source, &destination));
    let started = Instant::now();

    // The node running the shovel dies a third of the way through; its stored shovel resumes after the restart.
    let third = (total / 3) as u32;
    await_at_least(&destination, "inbox", third, Duration::from_secs(600)).await;
    source.kill9();
    let source = BrokerProcess::start_on(source_addr, &source_dir, &[]);

    // Then the destination, two thirds of the way.
    await_at_least(&destination, "inbox", 2 * third, Duration::from_secs(600)).await;
    destination.kill9();
    let destination = BrokerProcess::start_on(destination_addr, &destination_dir, &[]);

    // Drain until every message was seen, then once more after a pause for late duplicates.
    let mut seen: HashMap<usize, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < total && Instant::now() < deadline {
        drain(&destination, "inbox", &mut seen).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let moved_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    drain(&destination, "inbox", &mut seen).await;
    let missing = (0..total).filter(|id| !seen.contains_key(id)).count();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let unexpected = seen.keys().filter(|id| **id >= total).count();
    let left = ready(&source, "outbox").await;
    println!(
        "shovel faults: {total} confirmed, {} received, {missing} lost, {duplicates} duplicated, {unexpected} unexpected, {left} left at the source, {:.1} s",
        seen.values().sum::<u32>(),
        moved_in.as_secs_f64()
    );
    assert_eq!(missing, 0, "confirmed messages lost");
    assert_eq!(unexpected, 0);
    assert_eq!(left, 0, "the source queue was not emptied");
    source.stop();
    destination.stop();
}
