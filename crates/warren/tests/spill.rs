//! Transient messages past a queue's memory budget live only in the node's spill store and come back on delivery,
//! get and dead-lettering, in queue order; a message routed to several queues is spilled once; the spill files go
//! once the messages have left (drained, purged, queue deleted). The memory bound itself is in `spill_memory.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use warren::server::RunningServer;

/// A broker whose queues keep no message body in memory; returns it with its spill directory.
async fn start_spilling() -> (RunningServer, PathBuf) {
    let mut spill_dir = PathBuf::new();
    let server = common::start_server_with(|c| {
        c.storage.queue_memory_budget = 0;
        spill_dir = c.data_dir.join("spill");
    })
    .await;
    (server, spill_dir)
}

/// Bytes in the spill files.
fn spill_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Waits (10 s at most) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// The broker's spill store has written everything put so far.
async fn spill_written(server: &RunningServer) {
    let broker = server.broker.clone();
    eventually("spill writer caught up", || {
        broker.spill_stats().pending_bytes == 0
    })
    .await;
}

/// The spill store holds nothing, and its directory has no bytes left.
async fn spill_empty(server: &RunningServer, dir: &Path) {
    let broker = server.broker.clone();
    eventually("spill store emptied", || {
        let stats = broker.spill_stats();
        stats.messages == 0 && stats.files == 0 && spill_bytes(dir) == 0
    })
    .await;
}

/// A body of `len` bytes that names message `i`.
fn body(i: usize, len: usize) -> String {
    let mut b = format!("m{i}:");
    while b.len() < len {
        b.push(char::from(b'a' + (b.len() % 26) as u8));
    }
    b
}

#[tokio::test]
async fn spilled_messages_come_back_in_order_to_basic_get_and_the_files_go() {
    let (server, dir) = start_spilling().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "deep").await;
    for i in 0..300 {
        common::publish_confirmed(&ch, "", "deep", &body(i, 1000), BasicProperties::default())
            .await;
    }
    spill_written(&server).await;
    let stats = server.broker.spill_stats();
    assert_eq!(stats.messages, 300, "{stats:?}");
    assert!(
        spill_bytes(&dir) > 300_000,
        "{} bytes spilled",
        spill_bytes(&dir)
    );
    let got = common::drain_bodies(&ch, "deep").await;
    let expected: Vec<String> = (0..300).map(|i| body(i, 1000)).collect();
    assert_eq!(got, expected);
    spill_empty(&server, &dir).await;
}

#[tokio::test]
async fn spilled_messages_reach_a_consumer_in_order_and_persistent_ones_in_a_transient_queue_spill_too(
) {
    let (server, dir) = start_spilling().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "deep").await;
    for i in 0..300 {
        // A persistent message in a non-durable queue is transient too: it has no stored copy to page to.
        let props = match i % 3 {
            0 => BasicProperties::default().with_delivery_mode(2),
            _ => BasicProperties::default(),
        };
        common::publish_confirmed(&ch, "", "deep", &body(i, 2000), props).await;
    }
    assert_eq!(server.broker.spill_stats().messages, 300);
    let consumer_channel = conn.create_channel().await.expect("channel");
    consumer_channel
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = consumer_channel
        .basic_consume(
            "deep".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    for i in 0..300 {
        let delivery = common::within(5, consumer.next())
            .await
            .expect("a delivery")
            .expect("delivery ok");
        assert_eq!(String::from_utf8_lossy(&delivery.data), body(i, 2000));
        let persistent = delivery.properties.delivery_mode() == &Some(2);
        assert_eq!(persistent, i % 3 == 0, "properties come back with the body");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    spill_empty(&server, &dir).await;
}

#[tokio::test]
async fn a_message_routed_to_two_queues_is_spilled_once_and_read_back_by_each() {
    let (server, dir) = start_spilling().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    ch.exchange_declare(
        "fan".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    for q in ["left", "right"] {
        common::declare_plain(&ch, q).await;
        ch.queue_bind(
            q.into(),
            "fan".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
    }
    for i in 0..100 {
        common::publish_confirmed(&ch, "fan", "", &body(i, 5000), BasicProperties::default()).await;
    }
    spill_written(&server).await;
    let stats = server.broker.spill_stats();
    assert_eq!((stats.messages, stats.written), (100, 100), "{stats:?}");
    let expected: Vec<String> = (0..100).map(|i| body(i, 5000)).collect();
    assert_eq!(common::drain_bodies(&ch, "left").await, expected);
    // Read back by one queue, still held for the other.
    assert_eq!(server.broker.spill_stats().messages, 100);
    assert_eq!(common::drain_bodies(&ch, "right").await, expected);
    spill_empty(&server, &dir).await;
}

#[tokio::test]
async fn purging_or_deleting_a_queue_releases_its_spilled_messages() {
    let (server, dir) = start_spilling().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    for q in ["purged", "deleted"] {
        common::declare_plain(&ch, q).await;
        for i in 0..100 {
            common::publish_confirmed(&ch, "", q, &body(i, 10_000), BasicProperties::default())
                .await;
        }
    }
    spill_written(&server).await;
    assert!(spill_bytes(&dir) > 2_000_000);
    let purged = ch
        .queue_purge("purged".into(), QueuePurgeOptions::default())
        .await
        .expect("queue.purge");
    assert_eq!(purged, 100);
    assert_eq!(server.broker.spill_stats().messages, 100);
    let deleted = ch
        .queue_delete("deleted".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    assert_eq!(deleted, 100);
    spill_empty(&server, &dir).await;
}

#[tokio::test]
async fn expired_spilled_messages_are_dead_lettered_with_their_bodies() {
    let (server, dir) = start_spilling().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "dead").await;
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(50));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("dead".into()),
    );
    common::declare(&ch, "short", Default::default(), args).await;
    for i in 0..50 {
        common::publish_confirmed(&ch, "", "short", &body(i, 3000), BasicProperties::default())
            .await;
    }
    let mut ready = 0;
    for _ in 0..500 {
        ready = common::ready_count(&ch, "dead").await;
        if ready == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 50, "every expired message was dead-lettered");
    let expected: Vec<String> = (0..50).map(|i| body(i, 3000)).collect();
    assert_eq!(common::drain_bodies(&ch, "dead").await, expected);
    spill_empty(&server, &dir).await;
}

#[tokio::test]
async fn queues_together_past_the_node_budget_spill_though_each_is_under_its_own() {
    let mut spill_dir = PathBuf::new();
    let server = common::start_server_with(|c| {
        c.storage.total_queue_memory_budget = 100_000;
        spill_dir = c.data_dir.join("spill");
    })
    .await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    for q in ["one", "two"] {
        common::declare_plain(&ch, q).await;
    }
    for i in 0..100 {
        for q in ["one", "two"] {
            common::publish_confirmed(&ch, "", q, &body(i, 10_000), BasicProperties::default())
                .await;
        }
    }
    // 2 MB in two queues of 64 MiB budgets each: the node's 100 kB sends all but the first few to disk.
    let spilled = server.broker.spill_stats().messages;
    assert!(spilled >= 150, "{spilled} of 200 spilled");
    let expected: Vec<String> = (0..100).map(|i| body(i, 10_000)).collect();
    for q in ["one", "two"] {
        assert_eq!(common::drain_bodies(&ch, q).await, expected);
    }
    spill_empty(&server, &spill_dir).await;
}

#[tokio::test]
async fn spilled_messages_dead_lettered_at_least_once_keep_their_share_until_delivered() {
    let (server, dir) = start_spilling().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "dead").await;
    // A quorum queue whose expired messages wait, spilled, in its pending list until "dead" holds them.
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(50));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("dead".into()),
    );
    args.insert(
        "x-dead-letter-strategy".into(),
        AMQPValue::LongString("at-least-once".into()),
    );
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    common::declare(&ch, "source", durable, args).await;
    for i in 0..30 {
        common::publish_confirmed(
            &ch,
            "",
            "source",
            &body(i, 3000),
            BasicProperties::default(),
        )
        .await;
    }
    let mut ready = 0;
    for _ in 0..500 {
        ready = common::ready_count(&ch, "dead").await;
        if ready == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 30, "every expired message was dead-lettered");
    let expected: Vec<String> = (0..30).map(|i| body(i, 3000)).collect();
    assert_eq!(common::drain_bodies(&ch, "dead").await, expected);
    spill_empty(&server, &dir).await;
}
