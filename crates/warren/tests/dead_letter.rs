//! Dead-lettering end to end through lapin: rejected, expired and length-limited messages go to the queue's
//! dead-letter exchange with RabbitMQ's `x-death` history, and a retry loop (a work queue that rejects into a TTL
//! queue that dead-letters back) counts its rounds there.

mod common;

use common::{
    confirming_channel, connect, declare, get_message as get, publish_confirmed, start_server,
};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicRejectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

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

async fn declare_with(ch: &lapin::Channel, name: &str, pairs: &[(&str, AMQPValue)]) {
    declare(ch, name, QueueDeclareOptions::default(), arguments(pairs)).await;
}

fn header<'a>(message: &'a BasicGetMessage, key: &str) -> Option<&'a AMQPValue> {
    message
        .delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(key)
}

fn as_text(value: Option<&AMQPValue>) -> Option<String> {
    match value? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_int(value: Option<&AMQPValue>) -> Option<i64> {
    match value? {
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// `x-death` as (queue, reason, count) per entry, most recent first.
fn deaths(message: &BasicGetMessage) -> Vec<(String, String, i64)> {
    let Some(AMQPValue::FieldArray(entries)) = header(message, "x-death") else {
        return Vec::new();
    };
    entries
        .as_slice()
        .iter()
        .filter_map(|entry| match entry {
            AMQPValue::FieldTable(t) => Some((
                as_text(t.inner().get("queue"))?,
                as_text(t.inner().get("reason"))?,
                as_int(t.inner().get("count"))?,
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_rejected_message_is_dead_lettered_with_its_history() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "graveyard", &[]).await;
    declare_with(
        &ch,
        "work",
        &[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("graveyard")),
        ],
    )
    .await;
    publish_confirmed(&ch, "", "work", "poison", BasicProperties::default()).await;
    let taken = get(&ch, "work").await;
    taken
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let dead = get(&ch, "graveyard").await;
    assert_eq!(&dead.delivery.data[..], b"poison");
    assert_eq!(dead.delivery.routing_key.as_str(), "graveyard");
    assert_eq!(
        deaths(&dead),
        vec![("work".to_owned(), "rejected".to_owned(), 1)]
    );
    assert_eq!(
        as_text(header(&dead, "x-first-death-reason")).as_deref(),
        Some("rejected")
    );
    assert_eq!(
        as_text(header(&dead, "x-first-death-queue")).as_deref(),
        Some("work")
    );
}

#[tokio::test]
async fn a_retry_loop_through_a_ttl_queue_counts_its_rounds_in_x_death() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(
        &ch,
        "jobs",
        &[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("jobs-retry")),
        ],
    )
    .await;
    declare_with(
        &ch,
        "jobs-retry",
        &[
            ("x-message-ttl", AMQPValue::LongInt(50)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("jobs")),
        ],
    )
    .await;
    publish_confirmed(&ch, "", "jobs", "flaky", BasicProperties::default()).await;
    for round in 1..=3 {
        let attempt = get(&ch, "jobs").await;
        let history = deaths(&attempt);
        if round == 1 {
            assert!(history.is_empty());
        } else {
            let n = round - 1;
            assert_eq!(
                history,
                vec![
                    ("jobs-retry".to_owned(), "expired".to_owned(), n),
                    ("jobs".to_owned(), "rejected".to_owned(), n),
                ],
                "round {round}"
            );
        }
        attempt
            .delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
    }
}

#[tokio::test]
async fn expired_and_length_limited_messages_are_dead_lettered_with_their_reason() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "dlq", &[]).await;
    declare_with(
        &ch,
        "short-lived",
        &[
            ("x-message-ttl", AMQPValue::LongInt(20)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dlq")),
        ],
    )
    .await;
    declare_with(
        &ch,
        "one-slot",
        &[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dlq")),
        ],
    )
    .await;
    let expiring = BasicProperties::default().with_expiration(ShortString::from("60000"));
    publish_confirmed(&ch, "", "short-lived", "too late", expiring).await;
    let expired = get(&ch, "dlq").await;
    assert_eq!(&expired.delivery.data[..], b"too late");
    assert_eq!(
        deaths(&expired),
        vec![("short-lived".to_owned(), "expired".to_owned(), 1)]
    );
    assert!(
        expired.delivery.properties.expiration().is_none(),
        "the copy has no expiration"
    );

    publish_confirmed(
        &ch,
        "",
        "one-slot",
        "pushed out",
        BasicProperties::default(),
    )
    .await;
    publish_confirmed(&ch, "", "one-slot", "stays", BasicProperties::default()).await;
    let pushed = get(&ch, "dlq").await;
    assert_eq!(&pushed.delivery.data[..], b"pushed out");
    assert_eq!(
        deaths(&pushed),
        vec![("one-slot".to_owned(), "maxlen".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_poison_message_past_its_quorum_queue_delivery_limit_is_dead_lettered() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "poison-dlq", &[]).await;
    declare(
        &ch,
        "poisoned",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        arguments(&[
            ("x-queue-type", text("quorum")),
            ("x-delivery-limit", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("poison-dlq")),
        ]),
    )
    .await;
    publish_confirmed(
        &ch,
        "",
        "poisoned",
        "crashes the worker",
        BasicProperties::default(),
    )
    .await;
    let first = get(&ch, "poisoned").await;
    assert!(
        header(&first, "x-delivery-count").is_none(),
        "first delivery"
    );
    first
        .delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("reject");
    let second = get(&ch, "poisoned").await;
    assert!(second.delivery.redelivered);
    assert_eq!(as_int(header(&second, "x-delivery-count")), Some(1));
    second
        .delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("reject");
    // Returned a second time, past the limit of 1: dead-lettered, not redelivered.
    let dead = get(&ch, "poison-dlq").await;
    assert_eq!(&dead.delivery.data[..], b"crashes the worker");
    assert_eq!(
        deaths(&dead),
        vec![("poisoned".to_owned(), "delivery_limit".to_owned(), 1)]
    );
    assert_eq!(common::ready_count(&ch, "poisoned").await, 0);
}

#[tokio::test]
async fn a_quorum_queue_counts_deliveries_itself_whatever_x_delivery_count_the_publisher_set() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "counted-dlq", &[]).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let quorum = arguments(&[
        ("x-queue-type", text("quorum")),
        ("x-delivery-limit", AMQPValue::LongInt(2)),
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("counted-dlq")),
    ]);
    declare(&ch, "counted", durable, quorum).await;
    let mut headers = FieldTable::default();
    headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(5));
    publish_confirmed(
        &ch,
        "",
        "counted",
        "claims five",
        BasicProperties::default().with_headers(headers),
    )
    .await;
    // The publisher's header passes through on the first delivery (RabbitMQ adds its own only on a return)...
    let first = get(&ch, "counted").await;
    assert_eq!(as_int(header(&first, "x-delivery-count")), Some(5));
    first
        .delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("reject");
    // ...and the queue counts from there on itself: 1, 2, then past the limit of 2.
    for expected in [1, 2] {
        let again = get(&ch, "counted").await;
        assert_eq!(as_int(header(&again, "x-delivery-count")), Some(expected));
        again
            .delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("reject");
    }
    let dead = get(&ch, "counted-dlq").await;
    assert_eq!(&dead.delivery.data[..], b"claims five");
    assert_eq!(
        as_int(header(&dead, "x-delivery-count")),
        Some(5),
        "dead-lettered as published, without the queue's count"
    );
}
