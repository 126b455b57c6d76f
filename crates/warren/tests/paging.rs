//! Persistent messages of a durable queue past its memory budget live only on disk and are read back (off the
//! async workers) when delivered: they still go out in queue order, to consumers and to basic.get alike.

mod common;

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test]
async fn paged_out_messages_are_delivered_in_queue_order() {
    let server = common::start_server_with(|c| c.storage.queue_memory_budget = 0).await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare(&ch, "paged", durable(), FieldTable::default()).await;
    // Transient messages stay in memory between the paged-out ones: the order must interleave them correctly.
    for i in 0..300 {
        let props = if i % 7 == 0 {
            BasicProperties::default()
        } else {
            persistent()
        };
        common::publish_confirmed(&ch, "", "paged", &format!("m{i}"), props).await;
    }
    let got = common::drain_bodies(&ch, "paged").await;
    let expected: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn paged_out_messages_reach_a_consumer_in_queue_order() {
    let server = common::start_server_with(|c| c.storage.queue_memory_budget = 0).await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare(&ch, "paged", durable(), FieldTable::default()).await;
    for i in 0..300 {
        common::publish_confirmed(&ch, "", "paged", &format!("m{i}"), persistent()).await;
    }
    let consumer_channel = conn.create_channel().await.expect("channel");
    let mut consumer = consumer_channel
        .basic_consume(
            "paged".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    for i in 0..300 {
        let delivery = common::within(5, consumer.next())
            .await
            .expect("a delivery")
            .expect("delivery ok");
        assert_eq!(String::from_utf8_lossy(&delivery.data), format!("m{i}"));
    }
}
