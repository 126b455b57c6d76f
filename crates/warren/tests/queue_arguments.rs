//! queue.declare arguments through lapin: each argument RabbitMQ refuses is refused with 406 and RabbitMQ's exact
//! reply text before the queue exists; a declare with every argument is accepted. The rules themselves are unit
//! tested in `queue/arguments/tests.rs`.

mod common;

use common::{declare, passive};

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Connection;

fn s(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (key, value) in pairs {
        t.insert((*key).into(), value.clone());
    }
    t
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Whether a passive declare finds the queue, on a fresh channel since a 404 closes it.
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

/// Declares queue `name` on a fresh broker and returns the refusal's (code, text), having checked that the queue
/// was not created.
async fn refusal(name: &str, options: QueueDeclareOptions, arguments: FieldTable) -> (u16, String) {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let error = common::within(5, ch.queue_declare(name.into(), options, arguments))
        .await
        .expect_err("the broker refuses the declare");
    if !name.is_empty() {
        assert!(!queue_exists(&conn, name).await, "'{name}' was created");
    }
    (
        common::reply_code(&error).unwrap_or(0),
        common::reply_text(&error).unwrap_or_default(),
    )
}

fn invalid(key: &str, term: &str) -> (u16, String) {
    (
        406,
        format!("PRECONDITION_FAILED - invalid arg '{key}' for queue 'q' in vhost '/': {term}"),
    )
}

#[tokio::test]
async fn a_string_for_an_integer_argument_is_refused_as_expected_integer() {
    assert_eq!(
        refusal("q", durable(), args(&[("x-max-length", s("ten"))])).await,
        invalid("x-max-length", "\"expected integer, got longstr\"")
    );
}

#[tokio::test]
async fn a_negative_message_ttl_is_refused_as_value_negative() {
    assert_eq!(
        refusal(
            "q",
            durable(),
            args(&[("x-message-ttl", AMQPValue::LongInt(-1))])
        )
        .await,
        invalid("x-message-ttl", "{value_negative,-1}")
    );
}

#[tokio::test]
async fn x_expires_zero_is_refused_as_value_zero() {
    assert_eq!(
        refusal(
            "q",
            QueueDeclareOptions::default(),
            args(&[("x-expires", AMQPValue::ShortShortUInt(0))])
        )
        .await,
        invalid("x-expires", "{value_zero,0}")
    );
}

#[tokio::test]
async fn x_max_priority_300_is_refused_as_max_value_exceeded() {
    assert_eq!(
        refusal(
            "q",
            durable(),
            args(&[("x-max-priority", AMQPValue::ShortInt(300))])
        )
        .await,
        invalid("x-max-priority", "{max_value_exceeded,300}")
    );
}

#[tokio::test]
async fn an_unknown_overflow_mode_is_refused_as_invalid_overflow() {
    assert_eq!(
        refusal("q", durable(), args(&[("x-overflow", s("drop-tail"))])).await,
        invalid("x-overflow", "invalid_overflow")
    );
}

#[tokio::test]
async fn a_dead_letter_exchange_that_is_not_a_string_is_refused_as_invalid_type() {
    assert_eq!(
        refusal(
            "q",
            durable(),
            args(&[("x-dead-letter-exchange", AMQPValue::LongLongInt(5))])
        )
        .await,
        (
            406,
            "PRECONDITION_FAILED - invalid type 'long' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
                .into()
        )
    );
}

#[tokio::test]
async fn a_delivery_limit_on_a_classic_queue_is_refused_naming_the_type() {
    assert_eq!(
        refusal("q", durable(), args(&[("x-delivery-limit", AMQPValue::LongInt(5))])).await,
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
                .into()
        )
    );
}

#[tokio::test]
async fn an_unknown_queue_type_is_refused() {
    assert_eq!(
        refusal("q", durable(), args(&[("x-queue-type", s("fifo"))])).await,
        invalid("x-queue-type", "\"unsupported queue type 'fifo'\"")
    );
}

#[tokio::test]
async fn a_stream_queue_is_refused_as_not_supported_yet() {
    assert_eq!(
        refusal("q", durable(), args(&[("x-queue-type", s("stream"))])).await,
        invalid("x-queue-type", "Warren does not support stream queues yet")
    );
}

#[tokio::test]
async fn an_exclusive_quorum_queue_is_refused() {
    let exclusive = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    assert_eq!(
        refusal("q", exclusive, args(&[("x-queue-type", s("quorum"))])).await,
        (
            406,
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'q' in vhost '/'"
                .into()
        )
    );
}

#[tokio::test]
async fn a_transient_or_auto_delete_quorum_queue_is_refused() {
    let property = |p: &str| {
        (
            406,
            format!("PRECONDITION_FAILED - invalid property '{p}' for queue 'q' in vhost '/'"),
        )
    };
    let quorum = || args(&[("x-queue-type", s("quorum"))]);
    assert_eq!(
        refusal("q", QueueDeclareOptions::default(), quorum()).await,
        property("non-durable")
    );
    let auto_delete = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..Default::default()
    };
    assert_eq!(
        refusal("q", auto_delete, quorum()).await,
        property("auto-delete")
    );
}

#[tokio::test]
async fn a_server_named_quorum_queue_is_refused() {
    assert_eq!(
        refusal("", durable(), args(&[("x-queue-type", s("quorum"))])).await,
        (
            406,
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
                .into()
        )
    );
}

#[tokio::test]
async fn a_redeclare_is_compared_not_checked_as_rabbitmq_does() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "q", durable(), FieldTable::default()).await;
    let error = common::within(
        5,
        ch.queue_declare("q".into(), durable(), args(&[("x-max-length", s("ten"))])),
    )
    .await
    .expect_err("refused");
    assert_eq!(common::reply_code(&error), Some(406));
    let text = common::reply_text(&error).unwrap_or_default();
    assert!(
        text.starts_with(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/'"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_declare_with_every_supported_argument_is_accepted_and_redeclared() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let classic = args(&[
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ("x-expires", AMQPValue::LongUInt(1_800_000)),
        ("x-max-length", AMQPValue::LongLongInt(1000)),
        ("x-max-length-bytes", AMQPValue::LongInt(1 << 20)),
        ("x-overflow", s("reject-publish-dlx")),
        ("x-dead-letter-exchange", s("dlx")),
        ("x-dead-letter-routing-key", s("dead")),
        ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ("x-max-priority", AMQPValue::ShortShortUInt(10)),
        ("x-consumer-timeout", AMQPValue::LongInt(5000)),
        ("x-queue-type", s("classic")),
        ("x-queue-mode", s("lazy")),
        ("x-queue-version", AMQPValue::ShortShortInt(2)),
        ("x-queue-master-locator", s("client-local")),
        ("x-custom", s("ignored")),
    ]);
    declare(&ch, "all-classic", durable(), classic.clone()).await;
    declare(&ch, "all-classic", durable(), classic).await;
    let quorum = args(&[
        ("x-queue-type", s("quorum")),
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ("x-expires", AMQPValue::LongInt(1_800_000)),
        ("x-max-length", AMQPValue::LongInt(1000)),
        ("x-max-length-bytes", AMQPValue::LongInt(1 << 20)),
        ("x-overflow", s("reject-publish")),
        ("x-dead-letter-exchange", s("dlx")),
        ("x-dead-letter-routing-key", s("dead")),
        ("x-dead-letter-strategy", s("at-least-once")),
        ("x-single-active-consumer", AMQPValue::Boolean(false)),
        ("x-delivery-limit", AMQPValue::LongInt(5)),
        ("x-max-in-memory-length", AMQPValue::LongInt(10)),
        ("x-max-in-memory-bytes", AMQPValue::LongInt(1000)),
        ("x-quorum-initial-group-size", AMQPValue::LongInt(3)),
        ("x-queue-leader-locator", s("balanced")),
    ]);
    declare(&ch, "all-quorum", durable(), quorum).await;
    assert!(queue_exists(&conn, "all-classic").await);
    assert!(queue_exists(&conn, "all-quorum").await);
}
