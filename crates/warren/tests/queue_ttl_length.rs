//! Message TTL (`x-message-ttl` and the expiration property) and length limits (`x-max-length`,
//! `x-max-length-bytes`, `x-overflow`) end to end through lapin, as RabbitMQ behaves.

mod common;

use std::time::Duration;

use common::{
    confirming_channel, connect, declare, drain_bodies, ready_count, start_server, wait_for_count,
    within,
};
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

fn arguments(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

async fn declare_with(ch: &lapin::Channel, name: &str, pairs: &[(&str, AMQPValue)]) {
    declare(ch, name, QueueDeclareOptions::default(), arguments(pairs)).await;
}

/// Publishes `body` with confirms; true if acked, false if nacked.
async fn publish(
    ch: &lapin::Channel,
    queue: &str,
    body: &str,
    properties: BasicProperties,
) -> bool {
    within(5, async {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await
        .expect("publish sent")
        .await
        .expect("publish confirmed")
        .is_ack()
    })
    .await
}

#[tokio::test]
async fn a_queue_message_ttl_drops_messages_it_no_consumer_took_in_time() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "ttl", &[("x-message-ttl", AMQPValue::LongInt(200))]).await;
    assert!(publish(&ch, "ttl", "short-lived", BasicProperties::default()).await);
    assert_eq!(ready_count(&ch, "ttl").await, 1, "alive before its TTL");
    wait_for_count(&ch, "ttl", 0).await;
    assert!(drain_bodies(&ch, "ttl").await.is_empty());
}

#[tokio::test]
async fn a_per_message_expiration_expires_it_even_behind_a_message_that_does_not_expire() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "mixed", &[]).await;
    assert!(publish(&ch, "mixed", "stays", BasicProperties::default()).await);
    let expiring = BasicProperties::default().with_expiration(ShortString::from("100"));
    assert!(publish(&ch, "mixed", "goes", expiring).await);
    assert!(publish(&ch, "mixed", "stays too", BasicProperties::default()).await);
    wait_for_count(&ch, "mixed", 2).await;
    assert_eq!(drain_bodies(&ch, "mixed").await, vec!["stays", "stays too"]);
}

#[tokio::test]
async fn ttl_zero_reaches_a_waiting_consumer_and_nobody_else() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "now", &[("x-message-ttl", AMQPValue::LongInt(0))]).await;
    assert!(publish(&ch, "now", "nobody waits", BasicProperties::default()).await);
    wait_for_count(&ch, "now", 0).await;

    let consumer_ch = conn.create_channel().await.expect("channel");
    let mut consumer = consumer_ch
        .basic_consume(
            "now".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    assert!(publish(&ch, "now", "someone waits", BasicProperties::default()).await);
    let delivery = within(5, consumer.next())
        .await
        .expect("a delivery")
        .expect("a delivery");
    assert_eq!(&delivery.data[..], b"someone waits");
}

#[tokio::test]
async fn an_invalid_expiration_closes_the_channel_with_rabbitmqs_406() {
    let server = start_server().await;
    let conn = connect(&server).await;
    for (expiration, reason) in [
        ("abc", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", "{leftover_string,\".5\"}"),
    ] {
        let ch = confirming_channel(&conn).await;
        let properties = BasicProperties::default().with_expiration(ShortString::from(expiration));
        let error = within(5, async {
            ch.basic_publish(
                "".into(),
                "nowhere".into(),
                BasicPublishOptions::default(),
                b"x",
                properties,
            )
            .await?
            .await
        })
        .await
        .expect_err("the publish is refused");
        assert_eq!(common::reply_code(&error), Some(406));
        assert_eq!(
            common::reply_text(&error).as_deref(),
            Some(
                format!("PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}")
                    .as_str()
            )
        );
    }
}

#[tokio::test]
async fn max_length_drops_the_oldest_by_default() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(&ch, "two", &[("x-max-length", AMQPValue::LongInt(2))]).await;
    for body in ["1", "2", "3", "4"] {
        assert!(publish(&ch, "two", body, BasicProperties::default()).await);
    }
    assert_eq!(ready_count(&ch, "two").await, 2);
    assert_eq!(drain_bodies(&ch, "two").await, vec!["3", "4"]);

    declare_with(
        &ch,
        "bytes",
        &[("x-max-length-bytes", AMQPValue::LongInt(5))],
    )
    .await;
    for body in ["aa", "bb", "cc"] {
        assert!(publish(&ch, "bytes", body, BasicProperties::default()).await);
    }
    assert_eq!(drain_bodies(&ch, "bytes").await, vec!["bb", "cc"]);
}

#[tokio::test]
async fn reject_publish_nacks_what_does_not_fit_and_the_other_queues_still_get_it() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_with(
        &ch,
        "full",
        &[
            ("x-max-length", AMQPValue::LongInt(2)),
            (
                "x-overflow",
                AMQPValue::LongString(LongString::from("reject-publish")),
            ),
        ],
    )
    .await;
    declare_with(&ch, "open", &[]).await;
    for queue in ["full", "open"] {
        ch.queue_bind(
            queue.into(),
            "amq.fanout".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
    let mut acks = Vec::new();
    for body in ["1", "2", "3"] {
        let confirm = within(5, async {
            ch.basic_publish(
                "amq.fanout".into(),
                "".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish sent")
            .await
            .expect("publish confirmed")
        })
        .await;
        acks.push(confirm.is_ack());
    }
    assert_eq!(acks, vec![true, true, false], "the third is nacked");
    assert_eq!(drain_bodies(&ch, "full").await, vec!["1", "2"]);
    assert_eq!(drain_bodies(&ch, "open").await, vec!["1", "2", "3"]);
}

/// Whether a passive declare finds `name` (it also counts as a use of the queue, as in RabbitMQ).
async fn exists(conn: &lapin::Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    match within(
        5,
        ch.queue_declare(name.into(), common::passive(), FieldTable::default()),
    )
    .await
    {
        Ok(_) => true,
        Err(e) if common::reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive declare failed: {e:?}"),
    }
}

#[tokio::test]
async fn x_expires_deletes_a_queue_unused_that_long_but_not_while_it_has_a_consumer() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare_with(&ch, "unused", &[("x-expires", AMQPValue::LongInt(200))]).await;
    declare_with(&ch, "consumed", &[("x-expires", AMQPValue::LongInt(200))]).await;
    let consumer_ch = conn.create_channel().await.expect("channel");
    let _consumer = consumer_ch
        .basic_consume(
            "consumed".into(),
            "keeper".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    // Well past the 200 ms: only the unused one is gone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !exists(&conn, "unused").await,
        "an unused queue outlived its x-expires"
    );
    assert!(exists(&conn, "consumed").await, "a consumed queue expired");
    consumer_ch
        .basic_cancel("keeper".into(), Default::default())
        .await
        .expect("cancel");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !exists(&conn, "consumed").await,
        "the queue outlived its x-expires after its consumer left"
    );
}
