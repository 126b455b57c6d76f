//! Resource alarms end to end: while the memory or disk alarm is raised, a connection that publishes gets
//! `connection.blocked` with RabbitMQ's reason and is no longer read; consumers keep consuming and acking; when the
//! alarm clears the connection gets `connection.unblocked` and what it sent meanwhile is taken in.

mod common;

use std::time::Duration;

use common::{
    blocked_reason, connect, declare, next_connection_method, publish_frames, ready_count,
    wait_for_count, within, RawClient,
};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::io::AsyncWriteExt;
use warren::config::{DiskFreeLimit, MemoryWatermark};

#[tokio::test]
async fn a_memory_alarm_blocks_publishers_but_not_consumers_until_it_clears() {
    let server = common::start_server().await;
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare(
        &ch,
        "work",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare(
        &ch,
        "held",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let mut publisher = RawClient::connect(&server).await;
    publisher
        .handshake_announcing(&["connection.blocked"])
        .await;
    publisher.open_channel(1).await;
    for _ in 0..3 {
        publisher
            .stream
            .write_all(&publish_frames("work", b"before"))
            .await
            .expect("written");
    }
    wait_for_count(&ch, "work", 3).await;

    server
        .broker
        .set_vm_memory_high_watermark(MemoryWatermark::Absolute(1));
    within(5, async {
        while server.broker.alarms().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The publish that meets the alarm is taken; then the connection is blocked and not read.
    publisher
        .stream
        .write_all(&publish_frames("held", b"first"))
        .await
        .expect("written");
    let blocked = next_connection_method(&mut publisher).await;
    assert_eq!(blocked.method_ids(), Some((10, 60)), "connection.blocked");
    assert_eq!(blocked_reason(&blocked), "low on memory");
    for _ in 0..5 {
        publisher
            .stream
            .write_all(&publish_frames("held", b"later"))
            .await
            .expect("written");
    }
    // A consumer on another connection still consumes and acks.
    let mut consumer = ch
        .basic_consume(
            "work".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for _ in 0..3 {
        let delivery = within(5, consumer.next())
            .await
            .expect("delivery")
            .expect("ok");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ready_count(&ch, "held").await,
        1,
        "nothing read from the blocked connection"
    );

    server
        .broker
        .set_vm_memory_high_watermark(MemoryWatermark::Relative(1000.0));
    let unblocked = next_connection_method(&mut publisher).await;
    assert_eq!(
        unblocked.method_ids(),
        Some((10, 61)),
        "connection.unblocked"
    );
    wait_for_count(&ch, "held", 6).await;
    assert!(server.broker.alarms().is_empty());
}

#[tokio::test]
async fn a_disk_alarm_blocks_with_rabbitmqs_reason_and_a_consume_only_connection_is_never_blocked()
{
    let server = common::start_server().await;
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare(
        &ch,
        "d",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    server
        .broker
        .set_disk_free_limit(DiskFreeLimit::Absolute(u64::MAX / 2));
    within(5, async {
        while server.broker.alarms().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Declares, consumes and gets go on: only a publish blocks a connection.
    declare(
        &ch,
        "e",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert_eq!(ready_count(&ch, "d").await, 0);
    let mut publisher = RawClient::connect(&server).await;
    publisher
        .handshake_announcing(&["connection.blocked"])
        .await;
    publisher.open_channel(1).await;
    publisher
        .stream
        .write_all(&publish_frames("d", b"x"))
        .await
        .expect("written");
    let blocked = next_connection_method(&mut publisher).await;
    assert_eq!(blocked.method_ids(), Some((10, 60)));
    assert_eq!(blocked_reason(&blocked), "low on disk");
    let usage = server.broker.resource_usage();
    assert!(usage.disk_free < usage.disk_free_limit);
    server
        .broker
        .set_disk_free_limit(DiskFreeLimit::Absolute(0));
    let unblocked = next_connection_method(&mut publisher).await;
    assert_eq!(unblocked.method_ids(), Some((10, 61)));
}
