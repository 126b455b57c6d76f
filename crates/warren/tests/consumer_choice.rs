//! Which consumer a queue delivers to. `x-single-active-consumer`: only the earliest registered receives; when it
//! goes, the next one takes over, its predecessor's unacknowledged messages first. Consumer priorities
//! (`x-priority`): the highest-priority consumers receive while they have credit, the others get the rest.

mod common;

use common::{confirming_channel, connect, declare, publish_confirmed, start_server, within};
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

async fn consumer(conn: &lapin::Connection, tag: &str) -> (lapin::Channel, lapin::Consumer) {
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let consumer = ch
        .basic_consume(
            "sac".into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    (ch, consumer)
}

async fn take(consumer: &mut lapin::Consumer, n: usize) -> Vec<(String, bool)> {
    let mut got = Vec::new();
    while got.len() < n {
        let delivery = within(5, consumer.next())
            .await
            .expect("a delivery")
            .expect("a delivery");
        got.push((
            String::from_utf8_lossy(&delivery.data).into_owned(),
            delivery.redelivered,
        ));
    }
    got
}

#[tokio::test]
async fn only_the_first_consumer_receives_and_the_next_takes_over_when_it_goes() {
    let server = start_server().await;
    let first_conn = connect(&server).await;
    let second_conn = connect(&server).await;
    let publisher = confirming_channel(&second_conn).await;
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-single-active-consumer"),
        AMQPValue::Boolean(true),
    );
    declare(&publisher, "sac", QueueDeclareOptions::default(), arguments).await;
    let (first_ch, mut first) = consumer(&first_conn, "first").await;
    let (_second_ch, mut second) = consumer(&second_conn, "second").await;

    for i in 0..10 {
        publish_confirmed(
            &publisher,
            "",
            "sac",
            &format!("m{i}"),
            BasicProperties::default(),
        )
        .await;
    }
    // Every one of the ten goes to the first consumer, so none to the second.
    let to_first = take(&mut first, 10).await;
    assert_eq!(to_first.len(), 10);
    assert!(to_first.iter().all(|(_, redelivered)| !redelivered));

    // The active consumer's channel closes without acking: the second takes over, the requeued ones first.
    first_ch.close(200, "bye".into()).await.expect("close");
    publish_confirmed(&publisher, "", "sac", "after", BasicProperties::default()).await;
    let to_second = take(&mut second, 11).await;
    let expected: Vec<(String, bool)> = (0..10)
        .map(|i| (format!("m{i}"), true))
        .chain([("after".to_owned(), false)])
        .collect();
    assert_eq!(to_second, expected);
}

async fn prioritised(
    conn: &lapin::Connection,
    queue: &str,
    prefetch: u16,
    priority: Option<AMQPValue>,
) -> lapin::Result<(lapin::Channel, lapin::Consumer)> {
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut arguments = FieldTable::default();
    if let Some(priority) = priority {
        arguments.insert(ShortString::from("x-priority"), priority);
    }
    let consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await?;
    Ok((ch, consumer))
}

#[tokio::test]
async fn a_higher_priority_consumer_receives_while_it_can_and_the_lower_one_gets_the_rest() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let publisher = confirming_channel(&conn).await;
    declare(
        &publisher,
        "prio",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    // The low-priority consumer registers first: registration order does not decide.
    let (_low_ch, mut low) = prioritised(&conn, "prio", 100, None)
        .await
        .expect("consume");
    let (_high_ch, mut high) = prioritised(&conn, "prio", 3, Some(AMQPValue::LongInt(10)))
        .await
        .expect("consume");
    for i in 0..10 {
        publish_confirmed(
            &publisher,
            "",
            "prio",
            &format!("m{i}"),
            BasicProperties::default(),
        )
        .await;
    }
    let to_high: Vec<String> = take(&mut high, 3)
        .await
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(
        to_high,
        vec!["m0", "m1", "m2"],
        "the high-priority consumer first, up to its prefetch"
    );
    let to_low: Vec<String> = take(&mut low, 7)
        .await
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(to_low, (3..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_non_integer_x_priority_is_refused_with_rabbitmqs_406() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare(
        &ch,
        "prio-bad",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let priority = AMQPValue::LongString(lapin::types::LongString::from("high"));
    let error = within(5, prioritised(&conn, "prio-bad", 1, Some(priority)))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(common::reply_code(&error), Some(406));
    assert_eq!(
        common::reply_text(&error).as_deref(),
        Some("PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'prio-bad' in vhost '/': \"expected integer, got longstr\"")
    );
}
