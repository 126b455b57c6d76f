//! Deduplication through a real socket, as rabbitmq-message-deduplication behaves: a queue declared with
//! `x-message-deduplication` drops a message whose `x-deduplication-header` a message still in it has; an
//! `x-message-deduplication` exchange routes (as fanout) only messages whose header it has not seen within its
//! `x-cache-ttl` (or the message's own), remembering at most `x-cache-size` keys; bad arguments get the plugin's
//! refusals. Beyond the plugin: a duplicate is confirmed (acked), and the keys of a durable exchange and of a
//! durable queue survive kill -9, so a publisher republishing after a crash creates no duplicate.

mod common;

use std::time::Duration;

use common::process::{fresh_data_dir, BrokerProcess};
use common::{
    confirming_channel, connect, declare, drain_bodies, publish_confirmed, ready_count, refusal,
    start_server, within,
};
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Properties carrying `x-deduplication-header` (and an `x-cache-ttl` when given), persistent.
fn keyed(key: &str, cache_ttl: Option<i64>) -> BasicProperties {
    let mut headers = table(&[("x-deduplication-header", text(key))]);
    if let Some(ttl) = cache_ttl {
        headers.insert("x-cache-ttl".into(), AMQPValue::LongLongInt(ttl));
    }
    BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2)
}

fn dedup_queue_args() -> FieldTable {
    table(&[("x-message-deduplication", AMQPValue::Boolean(true))])
}

async fn declare_dedup_exchange(ch: &Channel, name: &str, durable: bool, args: FieldTable) {
    within(
        5,
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Custom("x-message-deduplication".into()),
            ExchangeDeclareOptions {
                durable,
                ..ExchangeDeclareOptions::default()
            },
            args,
        ),
    )
    .await
    .expect("exchange.declare");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str) {
    within(
        5,
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            "any-key".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.bind");
}

fn cache(size: i64, ttl: Option<i64>) -> FieldTable {
    let mut args = table(&[("x-cache-size", AMQPValue::LongLongInt(size))]);
    if let Some(ttl) = ttl {
        args.insert("x-cache-ttl".into(), AMQPValue::LongLongInt(ttl));
    }
    args
}

#[tokio::test]
async fn a_queue_drops_a_duplicate_of_a_message_it_holds_and_still_confirms_it() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "dq",
        QueueDeclareOptions::default(),
        dedup_queue_args(),
    )
    .await;
    for body in ["first", "copy", "again"] {
        // Each is acked: the duplicates too (the plugin's queue nacks them; a retry loop must end).
        publish_confirmed(&ch, "", "dq", body, keyed("order-1", None)).await;
    }
    publish_confirmed(&ch, "", "dq", "other", keyed("order-2", None)).await;
    publish_confirmed(&ch, "", "dq", "no header", BasicProperties::default()).await;
    publish_confirmed(&ch, "", "dq", "no header", BasicProperties::default()).await;
    assert_eq!(
        drain_bodies(&ch, "dq").await,
        vec!["first", "other", "no header", "no header"]
    );
    // Delivered (no-ack): the message left the queue, its key is free again.
    publish_confirmed(&ch, "", "dq", "later", keyed("order-1", None)).await;
    assert_eq!(ready_count(&ch, "dq").await, 1);
}

#[tokio::test]
async fn a_queue_keeps_a_key_while_its_message_is_unacked_and_frees_it_on_ack() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "dq",
        QueueDeclareOptions::default(),
        dedup_queue_args(),
    )
    .await;
    publish_confirmed(&ch, "", "dq", "first", keyed("k", None)).await;
    let held = common::get_message(&ch, "dq").await;
    publish_confirmed(&ch, "", "dq", "while unacked", keyed("k", None)).await;
    assert_eq!(
        ready_count(&ch, "dq").await,
        0,
        "the unacked one still holds the key"
    );
    held.ack(Default::default()).await.expect("ack");
    publish_confirmed(&ch, "", "dq", "after ack", keyed("k", None)).await;
    assert_eq!(drain_bodies(&ch, "dq").await, vec!["after ack"]);
}

#[tokio::test]
async fn an_exchange_routes_a_key_once_within_its_ttl_and_again_after_it() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "q1",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare(
        &ch,
        "q2",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare_dedup_exchange(&ch, "dx", false, cache(100, Some(400))).await;
    bind(&ch, "q1", "dx").await;
    bind(&ch, "q2", "dx").await;
    publish_confirmed(&ch, "dx", "whatever", "a1", keyed("a", None)).await;
    publish_confirmed(&ch, "dx", "other-key", "a2", keyed("a", None)).await;
    // Its own x-cache-ttl: remembered for 100 ms only.
    publish_confirmed(&ch, "dx", "k", "b1", keyed("b", Some(100))).await;
    publish_confirmed(&ch, "dx", "k", "plain", BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    publish_confirmed(&ch, "dx", "k", "b2", keyed("b", None)).await;
    publish_confirmed(&ch, "dx", "k", "a3", keyed("a", None)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_confirmed(&ch, "dx", "k", "a4", keyed("a", None)).await;
    let expected = vec!["a1", "b1", "plain", "b2", "a4"];
    assert_eq!(
        drain_bodies(&ch, "q1").await,
        expected,
        "as fanout, once per key"
    );
    assert_eq!(drain_bodies(&ch, "q2").await, expected);
}

#[tokio::test]
async fn an_exchange_remembers_at_most_its_cache_size_forgetting_the_oldest() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare_dedup_exchange(&ch, "dx", false, cache(2, None)).await;
    bind(&ch, "q", "dx").await;
    for key in ["a", "b", "c", "c", "b", "a"] {
        publish_confirmed(&ch, "dx", "", key, keyed(key, None)).await;
    }
    // "a" went when "c" came; when "a" came back, "b" (then the oldest) went.
    assert_eq!(drain_bodies(&ch, "q").await, vec!["a", "b", "c", "a"]);
}

#[tokio::test]
async fn a_mandatory_duplicate_is_returned_no_route_and_acked() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare_dedup_exchange(&ch, "dx", false, cache(10, None)).await;
    bind(&ch, "q", "dx").await;
    let mut returns = Vec::new();
    for _ in 0..2 {
        let confirm = within(5, async {
            ch.basic_publish(
                "dx".into(),
                "".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                b"m",
                keyed("k", None),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm")
        })
        .await;
        assert!(confirm.is_ack());
        returns.push(confirm.take_message().map(|m| m.reply_code));
    }
    assert_eq!(returns, vec![None, Some(312)]);
    assert_eq!(ready_count(&ch, "q").await, 1);
}

#[tokio::test]
async fn bad_exchange_arguments_get_the_plugins_refusals() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let cases = [
        (
            FieldTable::default(),
            "PRECONDITION_FAILED - Missing or invalid argument,           'x-cache-size' must be an integer greater than 0",
        ),
        (
            table(&[("x-cache-size", text("foo"))]),
            "PRECONDITION_FAILED - Missing or invalid argument,                       'x-cache-size' must be an integer greater than 0",
        ),
        (
            table(&[("x-cache-size", AMQPValue::LongInt(5)), ("x-cache-ttl", AMQPValue::LongInt(0))]),
            "PRECONDITION_FAILED - Invalid argument,              'x-cache-ttl' must be an integer greater than 0",
        ),
        (
            table(&[("x-cache-size", AMQPValue::LongInt(5)), ("x-cache-persistence", text("tape"))]),
            "PRECONDITION_FAILED - Invalid argument,              'x-cache-persistence' must be either 'disk' or 'memory'",
        ),
    ];
    for (args, expected) in cases {
        let ch = conn.create_channel().await.expect("channel");
        let (code, reply) = refusal(ch.exchange_declare(
            "bad".into(),
            ExchangeKind::Custom("x-message-deduplication".into()),
            ExchangeDeclareOptions::default(),
            args,
        ))
        .await;
        assert_eq!((code, reply.as_str()), (406, expected));
    }
}

/// A durable deduplicating exchange bound to a durable queue, and a durable deduplicating queue, each given a
/// confirmed persistent message; the publisher's retry after the crash must add nothing.
async fn publish_before_crash(broker: &BrokerProcess) {
    let conn = lapin::Connection::connect(&broker.uri(), Default::default())
        .await
        .expect("connect");
    let ch = confirming_channel(&conn).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    declare(&ch, "xq", durable, FieldTable::default()).await;
    declare(&ch, "dq", durable, dedup_queue_args()).await;
    declare_dedup_exchange(&ch, "dx", true, cache(1000, None)).await;
    bind(&ch, "xq", "dx").await;
    publish_confirmed(&ch, "dx", "", "x-original", keyed("x-1", None)).await;
    // Transient: routed, and its key is stored all the same (the exchange remembers keys, not messages).
    publish_confirmed(
        &ch,
        "dx",
        "",
        "x-transient",
        keyed("x-2", None).with_delivery_mode(1),
    )
    .await;
    publish_confirmed(&ch, "", "dq", "q-original", keyed("q-1", None)).await;
}

async fn republish_after_restart(broker: &BrokerProcess) {
    let conn = lapin::Connection::connect(&broker.uri(), Default::default())
        .await
        .expect("connect");
    let ch = confirming_channel(&conn).await;
    publish_confirmed(&ch, "dx", "", "x-retry", keyed("x-1", None)).await;
    publish_confirmed(&ch, "dx", "", "x-transient-retry", keyed("x-2", None)).await;
    publish_confirmed(&ch, "", "dq", "q-retry", keyed("q-1", None)).await;
    publish_confirmed(&ch, "dx", "", "x-new", keyed("x-3", None)).await;
    assert_eq!(drain_bodies(&ch, "xq").await, vec!["x-original", "x-new"]);
    assert_eq!(drain_bodies(&ch, "dq").await, vec!["q-original"]);
}

#[tokio::test]
async fn keys_of_a_durable_exchange_and_a_durable_queue_survive_kill_9() {
    let dir = fresh_data_dir("dedup-kill9");
    let broker = BrokerProcess::start(&dir, &[]);
    publish_before_crash(&broker).await;
    broker.kill9();
    let broker = BrokerProcess::start(&dir, &[]);
    republish_after_restart(&broker).await;
}

#[tokio::test]
async fn keys_of_a_durable_exchange_and_a_durable_queue_survive_a_clean_restart() {
    let dir = fresh_data_dir("dedup-restart");
    let broker = BrokerProcess::start(&dir, &[]);
    publish_before_crash(&broker).await;
    broker.stop();
    let broker = BrokerProcess::start(&dir, &[]);
    republish_after_restart(&broker).await;
}
