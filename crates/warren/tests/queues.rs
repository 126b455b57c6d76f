//! The queue lifecycle through lapin after declaring: bind/unbind, purge, delete (if-unused, if-empty),
//! auto-delete, and consumers cancelled by a deletion. Declaring is in `queue_declare.rs`, exclusive queues in
//! `exclusive_queues.rs`.

mod common;

use common::{confirming_channel, declare, passive, publish_n, RawClient};
use warren_protocol::{basic, queue, AMQPClass};

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};

/// Whether a passive declare finds the queue (404 otherwise), on a fresh channel since a 404 closes it.
async fn queue_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.unwrap();
    match common::within(
        5,
        ch.queue_declare(name.into(), passive(), FieldTable::default()),
    )
    .await
    {
        Ok(_) => true,
        Err(e) if common::reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive declare of '{name}' failed: {e:?}"),
    }
}

/// Waits (at most 5 s) until the broker has removed `name`: deletions that follow a connection close or a
/// cancel happen after the client's operation returns, as in RabbitMQ.
async fn wait_until_gone(conn: &Connection, name: &str) {
    common::within(5, async {
        while queue_exists(conn, name).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn unbinding_a_queue_stops_routing_to_it() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    ch.exchange_declare(
        "x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for key in ["k1", "k2"] {
        ch.queue_bind(
            "q".into(),
            "x".into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    common::publish_confirmed(&ch, "x", "k1", "before", BasicProperties::default()).await;
    ch.queue_unbind("q".into(), "x".into(), "k1".into(), FieldTable::default())
        .await
        .unwrap();
    common::publish_confirmed(&ch, "x", "k1", "after", BasicProperties::default()).await;
    common::publish_confirmed(&ch, "x", "k2", "other-key", BasicProperties::default()).await;
    assert_eq!(
        common::drain_bodies(&ch, "q").await,
        ["before", "other-key"]
    );
}

#[tokio::test]
async fn binding_a_missing_queue_is_404() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let code = common::refused_code(ch.queue_bind(
        "missing".into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn binding_to_a_missing_exchange_is_404() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let code = common::refused_code(ch.queue_bind(
        "q".into(),
        "missing".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn purge_returns_the_ready_count_and_empties_the_queue() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_n(&ch, "q", 4).await;
    let purged = ch
        .queue_purge("q".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 4);
    let q = declare(&ch, "q", passive(), FieldTable::default()).await;
    assert_eq!(q.message_count(), 0);
    assert!(common::drain_bodies(&ch, "q").await.is_empty());
    // The queue still works after a purge.
    common::publish_confirmed(&ch, "", "q", "later", BasicProperties::default()).await;
    assert_eq!(common::drain_bodies(&ch, "q").await, ["later"]);
}

#[tokio::test]
async fn delete_returns_the_message_count_and_removes_the_queue() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_n(&ch, "q", 3).await;
    let count = ch
        .queue_delete("q".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(count, 3);
    assert!(!queue_exists(&conn, "q").await);
}

#[tokio::test]
async fn deleting_a_missing_queue_succeeds_with_zero() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let count = ch
        .queue_delete("missing".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn delete_if_unused_of_a_queue_with_a_consumer_is_406_and_keeps_it() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let _consumer = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    let code = common::refused_code(other.queue_delete(
        "q".into(),
        QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    ))
    .await;
    assert_eq!(code, 406);
    assert!(queue_exists(&conn, "q").await);
}

#[tokio::test]
async fn delete_if_empty_of_a_queue_with_messages_is_406_and_keeps_them() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_n(&ch, "q", 2).await;
    let code = common::refused_code(ch.queue_delete(
        "q".into(),
        QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        },
    ))
    .await;
    assert_eq!(code, 406);
    let ch2 = conn.create_channel().await.unwrap();
    assert_eq!(common::drain_bodies(&ch2, "q").await, ["m0", "m1"]);
    // Empty now: if-empty deletes it.
    ch2.queue_delete(
        "q".into(),
        QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!queue_exists(&conn, "q").await);
}

#[tokio::test]
async fn consumer_of_a_deleted_queue_is_cancelled_by_the_broker() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let mut consumer = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    other
        .queue_delete("q".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    // basic.cancel from the broker ends the consumer's stream (lapin advertises consumer_cancel_notify).
    assert!(common::within(5, consumer.next()).await.is_none());
    // The channel itself stays open.
    declare(
        &ch,
        "q2",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
}

/// The method frames the next `n` frames carry, as (channel, method).
async fn methods(client: &mut RawClient, n: usize) -> Vec<(u16, AMQPClass)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            common::within(5, client.read_method())
                .await
                .expect("a method frame"),
        );
    }
    out
}

fn raw_declare(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: Default::default(),
    }))
}

fn raw_consume(name: &str, tag: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: name.into(),
        consumer_tag: tag.into(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: false,
        arguments: Default::default(),
    }))
}

fn raw_delete(name: &str, nowait: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
        queue: name.into(),
        if_unused: false,
        if_empty: false,
        nowait,
    }))
}

fn is_cancel(method: &AMQPClass, tag: &str) -> bool {
    matches!(method, AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) if c.consumer_tag.as_str() == tag)
}

#[tokio::test]
async fn a_queue_deleted_on_its_consumers_channel_answers_delete_ok_before_the_cancel() {
    // RabbitMQ's order, which py-amqp (and so kombu) relies on: its delete call would otherwise raise
    // ConsumerCancelled. Consumers on other channels get their cancel whenever the queue goes.
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    client.open_channel(1).await;
    client.open_channel(2).await;
    client.send_method(1, raw_declare("q")).await;
    client.send_method(1, raw_consume("q", "mine")).await;
    client.send_method(2, raw_consume("q", "theirs")).await;
    methods(&mut client, 3).await;
    client.send_method(1, raw_delete("q", false)).await;
    let frames = methods(&mut client, 3).await;
    let on_1: Vec<&AMQPClass> = frames
        .iter()
        .filter(|(ch, _)| *ch == 1)
        .map(|(_, m)| m)
        .collect();
    assert!(
        matches!(on_1[..], [AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)), cancel] if is_cancel(cancel, "mine")),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|(ch, m)| *ch == 2 && is_cancel(m, "theirs")),
        "{frames:?}"
    );
    // Without delete-ok (nowait) the cancel still comes.
    client.send_method(1, raw_declare("q2")).await;
    client.send_method(1, raw_consume("q2", "again")).await;
    methods(&mut client, 2).await;
    client.send_method(1, raw_delete("q2", true)).await;
    let frames = methods(&mut client, 1).await;
    assert!(
        matches!(&frames[..], [(1, cancel)] if is_cancel(cancel, "again")),
        "{frames:?}"
    );
    // The channel is still open.
    client.send_method(1, raw_declare("q3")).await;
    assert!(matches!(
        &methods(&mut client, 1).await[..],
        [(1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))]
    ));
}

#[tokio::test]
async fn auto_delete_queue_lives_until_its_last_consumer_cancels() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "ad", auto_delete, FieldTable::default()).await;
    // No consumer yet: publishing and getting do not delete it.
    publish_n(&ch, "ad", 1).await;
    assert_eq!(common::drain_bodies(&ch, "ad").await, ["m0"]);
    assert!(queue_exists(&conn, "ad").await);

    let consuming = conn.create_channel().await.unwrap();
    // Held: lapin cancels a consumer whose handle is dropped.
    let mut consumers = Vec::new();
    for tag in ["c1", "c2"] {
        let consumer = consuming
            .basic_consume(
                "ad".into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        consumers.push(consumer);
    }
    consuming
        .basic_cancel("c1".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert!(queue_exists(&conn, "ad").await);
    consuming
        .basic_cancel("c2".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    wait_until_gone(&conn, "ad").await;
}

#[tokio::test]
async fn auto_delete_queue_is_deleted_when_its_last_consumers_channel_closes() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "ad", auto_delete, FieldTable::default()).await;
    let consuming = conn.create_channel().await.unwrap();
    let _consumer = consuming
        .basic_consume(
            "ad".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    consuming.close(200, "done".into()).await.unwrap();
    wait_until_gone(&conn, "ad").await;
}

/// Publishes a client sent just before a framing error ended its connection are enqueued, however many arrived in
/// the same read (the reader hands routed messages to queues in runs; the last run must not be lost with the
/// connection).
#[tokio::test]
async fn publishes_sent_just_before_a_framing_error_are_all_enqueued() {
    use bytes::BytesMut;
    use warren_protocol::client::put_publish;
    use warren_protocol::content::{put_body_frames, put_content_header};

    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "last-words").await;

    const SENT: u32 = 1000;
    let mut raw = common::RawClient::connect(&server).await;
    raw.handshake().await;
    raw.open_channel(1).await;
    let mut out = BytesMut::new();
    for i in 0..SENT {
        let body = i.to_be_bytes();
        put_publish(&mut out, 1, "", "last-words", false);
        put_content_header(&mut out, 1, body.len() as u64, &[0, 0]);
        put_body_frames(&mut out, 1, &body, 131_072);
    }
    // A frame of type 9, which AMQP does not have: 501, connection closed.
    out.extend_from_slice(&[9, 0, 1, 0, 0, 0, 0, 0xCE]);
    raw.send(&out).await;
    let close = raw.read_frame().await.expect("connection.close");
    assert_eq!(close.close_code(), Some(501));
    drop(raw);

    let mut ready = 0;
    for _ in 0..100 {
        ready = common::ready_count(&ch, "last-words").await;
        if ready == SENT {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready, SENT);
}
