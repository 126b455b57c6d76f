//! Declaring queues through lapin: server-named queues, passive declare, reserved names, the counts in
//! declare-ok, and RabbitMQ's "inequivalent arg" refusals on redeclare. Exclusive queues are in
//! `exclusive_queues.rs`, the rest of the queue lifecycle in `queues.rs`.

mod common;

use common::{confirming_channel, declare, passive, publish_n};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};

fn ttl(ms: i32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(ms));
    args
}

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

#[tokio::test]
async fn server_named_queue_gets_an_amq_gen_name_and_receives_messages() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let q = declare(
        &ch,
        "",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
    let name = q.name().to_string();
    assert!(name.starts_with("amq.gen-"), "{name}");
    assert!(name.len() > "amq.gen-".len());
    let other = declare(
        &ch,
        "",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert_ne!(other.name().as_str(), name);
    common::publish_confirmed(&ch, "", &name, "hello", BasicProperties::default()).await;
    assert_eq!(common::drain_bodies(&ch, &name).await, ["hello"]);
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let code =
        common::refused_code(ch.queue_declare("missing".into(), passive(), FieldTable::default()))
            .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn declaring_a_queue_with_the_amq_prefix_is_refused_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let code = common::refused_code(ch.queue_declare(
        "amq.mine".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 403);
    assert!(!queue_exists(&conn, "amq.mine").await);
}

#[tokio::test]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let q = declare(
        &ch,
        "counted",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    publish_n(&ch, "counted", 3).await;
    let q = declare(
        &ch,
        "counted",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert_eq!((q.message_count(), q.consumer_count()), (3, 0));

    // A consumer with prefetch 1 holds one message unacked: two stay ready.
    let consuming = conn.create_channel().await.unwrap();
    consuming
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consuming
        .basic_consume(
            "counted".into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let first = common::within(5, consumer.next()).await.unwrap().unwrap();
    assert_eq!(first.data, b"m0");
    let q = declare(&ch, "counted", passive(), FieldTable::default()).await;
    assert_eq!((q.message_count(), q.consumer_count()), (2, 1));
}

/// Declares `name` with `first`, then again with `second`: returns the refusal's (code, text).
async fn redeclare_refusal(
    first: (QueueDeclareOptions, FieldTable),
    second: (QueueDeclareOptions, FieldTable),
) -> (u16, String) {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "q", first.0, first.1).await;
    let error = common::within(5, ch.queue_declare("q".into(), second.0, second.1))
        .await
        .unwrap_err();
    (
        common::reply_code(&error).unwrap_or(0),
        common::reply_text(&error).unwrap_or_default(),
    )
}

#[tokio::test]
async fn redeclaring_with_another_durable_flag_is_406_inequivalent_arg() {
    let (code, text) = redeclare_refusal(
        (QueueDeclareOptions::default(), FieldTable::default()),
        (
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, 406);
    assert!(text.contains("inequivalent arg 'durable'"), "{text}");
}

#[tokio::test]
async fn redeclaring_with_another_auto_delete_flag_is_406_inequivalent_arg() {
    let (code, text) = redeclare_refusal(
        (QueueDeclareOptions::default(), FieldTable::default()),
        (
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, 406);
    assert!(text.contains("inequivalent arg 'auto_delete'"), "{text}");
}

#[tokio::test]
async fn redeclaring_with_another_message_ttl_is_406_inequivalent_arg() {
    let (code, text) = redeclare_refusal(
        (QueueDeclareOptions::default(), ttl(1000)),
        (QueueDeclareOptions::default(), ttl(2000)),
    )
    .await;
    assert_eq!(code, 406);
    assert!(text.contains("inequivalent arg 'x-message-ttl'"), "{text}");
}

#[tokio::test]
async fn redeclaring_without_the_message_ttl_is_406_inequivalent_arg() {
    let (code, text) = redeclare_refusal(
        (QueueDeclareOptions::default(), ttl(1000)),
        (QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await;
    assert_eq!(code, 406);
    assert!(text.contains("inequivalent arg 'x-message-ttl'"), "{text}");
}

#[tokio::test]
async fn redeclaring_with_the_same_ttl_in_another_integer_width_succeeds() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "q", QueueDeclareOptions::default(), ttl(1000)).await;
    let mut wide = FieldTable::default();
    wide.insert("x-message-ttl".into(), AMQPValue::LongLongInt(1000));
    declare(&ch, "q", QueueDeclareOptions::default(), wide).await;
}
