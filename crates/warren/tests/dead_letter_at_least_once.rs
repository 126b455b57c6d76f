//! At-least-once dead-lettering end to end through lapin (`x-dead-letter-strategy: at-least-once` on a quorum
//! queue with `x-overflow: reject-publish`, or the same through a policy): a dead message stays in its queue,
//! counted against its length limit but not ready, until every target queue holds it; a dead-letter exchange
//! that does not exist yet, a binding that is missing and a target that is full only delay it. With `drop-head`
//! the queue falls back to at most once, as RabbitMQ does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    confirming_channel, connect, declare, get_message as get, publish_confirmed, ready_count,
    start_server, wait_for_count, within,
};
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicPublishOptions, BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::json;
use warren::broker::{Broker, PolicyInput, PolicyKind};

fn arguments(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Declares a durable quorum queue with `pairs` as further arguments.
async fn declare_quorum(ch: &lapin::Channel, name: &str, pairs: &[(&str, AMQPValue)]) {
    let mut all = vec![("x-queue-type", text("quorum"))];
    all.extend(pairs.iter().cloned());
    declare(ch, name, durable(), arguments(&all)).await;
}

/// The arguments of a quorum queue that dead-letters at least once through `exchange`, with `routing_key`.
fn at_least_once(exchange: &str, routing_key: Option<&str>) -> Vec<(&'static str, AMQPValue)> {
    let mut pairs = vec![
        ("x-dead-letter-exchange", text(exchange)),
        ("x-dead-letter-strategy", text("at-least-once")),
        ("x-overflow", text("reject-publish")),
    ];
    if let Some(key) = routing_key {
        pairs.push(("x-dead-letter-routing-key", text(key)));
    }
    pairs
}

/// Takes `n` messages from `queue` and rejects each without requeue: they die there.
async fn reject_all(ch: &lapin::Channel, queue: &str, n: usize) {
    for _ in 0..n {
        get(ch, queue)
            .await
            .delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
    }
}

/// Publishes `body` to `queue` through the default exchange and returns whether the broker acked it.
async fn publish_acked(ch: &lapin::Channel, queue: &str, body: &str) -> bool {
    within(5, async {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await
        .expect("publish sent")
        .await
        .expect("publish settled")
        .is_ack()
    })
    .await
}

/// The first `x-death` entry's (queue, reason).
fn first_death(message: &BasicGetMessage) -> Option<(String, String)> {
    let headers = message.delivery.properties.headers().as_ref()?;
    let Some(AMQPValue::FieldArray(entries)) = headers.inner().get("x-death") else {
        return None;
    };
    let AMQPValue::FieldTable(entry) = entries.as_slice().first()? else {
        return None;
    };
    let field = |key: &str| match entry.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    };
    Some((field("queue")?, field("reason")?))
}

/// Bodies of the messages `queue` holds, taken with basic.get (no-ack), sorted.
async fn sorted_bodies(ch: &lapin::Channel, queue: &str) -> Vec<String> {
    let mut bodies = common::drain_bodies(ch, queue).await;
    bodies.sort();
    bodies
}

#[tokio::test]
async fn rejected_messages_reach_a_durable_target_at_least_once() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_quorum(&ch, "alo-rejected-dst", &[]).await;
    declare_quorum(
        &ch,
        "alo-rejected",
        &at_least_once("", Some("alo-rejected-dst")),
    )
    .await;
    for i in 0..20 {
        publish_confirmed(&ch, "", "alo-rejected", &format!("m{i:02}"), persistent()).await;
    }
    reject_all(&ch, "alo-rejected", 20).await;
    wait_for_count(&ch, "alo-rejected-dst", 20).await;
    let dead = get(&ch, "alo-rejected-dst").await;
    assert_eq!(
        first_death(&dead),
        Some(("alo-rejected".to_owned(), "rejected".to_owned()))
    );
    assert_eq!(dead.delivery.properties.delivery_mode(), &Some(2));
    assert_eq!(ready_count(&ch, "alo-rejected").await, 0);
}

#[tokio::test]
async fn a_message_past_the_delivery_limit_reaches_the_target_at_least_once() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_quorum(&ch, "alo-poison-dst", &[]).await;
    let mut pairs = at_least_once("", Some("alo-poison-dst"));
    pairs.push(("x-delivery-limit", AMQPValue::LongInt(1)));
    declare_quorum(&ch, "alo-poison", &pairs).await;
    publish_confirmed(&ch, "", "alo-poison", "poison", persistent()).await;
    for _ in 0..2 {
        get(&ch, "alo-poison")
            .await
            .delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("reject");
    }
    let dead = get(&ch, "alo-poison-dst").await;
    assert_eq!(&dead.delivery.data[..], b"poison");
    assert_eq!(
        first_death(&dead),
        Some(("alo-poison".to_owned(), "delivery_limit".to_owned()))
    );
    assert_eq!(ready_count(&ch, "alo-poison").await, 0);
}

#[tokio::test]
async fn messages_wait_for_a_missing_exchange_and_binding_and_fill_the_queue_meanwhile() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let mut pairs = at_least_once("late-dlx", None);
    pairs.push(("x-max-length", AMQPValue::LongInt(2)));
    declare_quorum(&ch, "alo-late", &pairs).await;
    publish_confirmed(&ch, "", "alo-late", "first", persistent()).await;
    publish_confirmed(&ch, "", "alo-late", "second", persistent()).await;
    reject_all(&ch, "alo-late", 2).await;
    // Kept, not ready, yet counted against x-max-length: the queue is full.
    assert_eq!(ready_count(&ch, "alo-late").await, 0);
    assert!(!publish_acked(&ch, "alo-late", "refused").await);

    // The exchange appears, without a binding: still kept.
    within(
        5,
        ch.exchange_declare(
            "late-dlx".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    declare_quorum(&ch, "alo-late-dst", &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ready_count(&ch, "alo-late-dst").await, 0);
    assert!(!publish_acked(&ch, "alo-late", "still refused").await);

    // The binding appears: both arrive, and the queue has room again.
    within(
        5,
        ch.queue_bind(
            "alo-late-dst".into(),
            "late-dlx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.bind");
    wait_for_count(&ch, "alo-late-dst", 2).await;
    assert_eq!(
        sorted_bodies(&ch, "alo-late-dst").await,
        vec!["first", "second"]
    );
    within(10, async {
        while !publish_acked(&ch, "alo-late", "accepted").await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_full_target_gets_the_message_once_it_has_room() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_quorum(
        &ch,
        "alo-full-dst",
        &[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", text("reject-publish")),
        ],
    )
    .await;
    declare_quorum(&ch, "alo-full", &at_least_once("", Some("alo-full-dst"))).await;
    publish_confirmed(&ch, "", "alo-full-dst", "filler", persistent()).await;
    publish_confirmed(&ch, "", "alo-full", "waits", persistent()).await;
    reject_all(&ch, "alo-full", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filler = get(&ch, "alo-full-dst").await;
    assert_eq!(&filler.delivery.data[..], b"filler");
    filler
        .delivery
        .ack(lapin::options::BasicAckOptions::default())
        .await
        .expect("ack");
    let dead = get(&ch, "alo-full-dst").await;
    assert_eq!(&dead.delivery.data[..], b"waits");
}

/// Sets a policy off the async workers, as the management API does (it commits to disk).
async fn set_policy(broker: &Arc<Broker>, name: &str, input: PolicyInput) {
    let broker = broker.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || broker.set_policy(PolicyKind::Policy, "/", &name, &input))
        .await
        .expect("set_policy ran")
        .expect("policy accepted");
}

#[tokio::test]
async fn a_policy_with_the_at_least_once_strategy_keeps_messages_until_delivered() {
    let server = start_server().await;
    set_policy(
        &server.broker,
        "alo",
        PolicyInput {
            pattern: "^alo-policy$".into(),
            apply_to: Some("quorum_queues".into()),
            priority: Some(json!(0)),
            definition: json!({
                "dead-letter-exchange": "policy-dlx",
                "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish",
            }),
        },
    )
    .await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_quorum(&ch, "alo-policy", &[]).await;
    publish_confirmed(&ch, "", "alo-policy", "kept by policy", persistent()).await;
    reject_all(&ch, "alo-policy", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    within(
        5,
        ch.exchange_declare(
            "policy-dlx".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    declare_quorum(&ch, "alo-policy-dst", &[]).await;
    within(
        5,
        ch.queue_bind(
            "alo-policy-dst".into(),
            "policy-dlx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.bind");
    let dead = get(&ch, "alo-policy-dst").await;
    assert_eq!(&dead.delivery.data[..], b"kept by policy");
    assert_eq!(
        first_death(&dead),
        Some(("alo-policy".to_owned(), "rejected".to_owned()))
    );
}

#[tokio::test]
async fn with_drop_head_at_least_once_falls_back_to_at_most_once() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_quorum(
        &ch,
        "alo-drop-head",
        &[
            ("x-dead-letter-exchange", text("gone-dlx")),
            ("x-dead-letter-strategy", text("at-least-once")),
        ],
    )
    .await;
    publish_confirmed(&ch, "", "alo-drop-head", "lost", persistent()).await;
    reject_all(&ch, "alo-drop-head", 1).await;
    // At most once: the missing exchange dropped it; it does not come when the exchange does.
    within(
        5,
        ch.exchange_declare(
            "gone-dlx".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    declare_quorum(&ch, "alo-drop-head-dst", &[]).await;
    within(
        5,
        ch.queue_bind(
            "alo-drop-head-dst".into(),
            "gone-dlx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.bind");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(ready_count(&ch, "alo-drop-head-dst").await, 0);
    assert_eq!(ready_count(&ch, "alo-drop-head").await, 0);
}
