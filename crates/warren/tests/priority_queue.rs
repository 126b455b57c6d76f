//! `x-max-priority`: a priority queue delivers its highest-priority messages first, FIFO within a priority; a
//! priority above the maximum counts as the maximum, and a message without one as 0.

mod common;

use common::{
    confirming_channel, connect, declare, drain_bodies, publish_confirmed, start_server, within,
};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

async fn priority_queue(ch: &lapin::Channel, name: &str) {
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-max-priority"),
        AMQPValue::ShortShortUInt(10),
    );
    declare(ch, name, QueueDeclareOptions::default(), arguments).await;
}

async fn publish_all(ch: &lapin::Channel, queue: &str) {
    for (body, priority) in [
        ("none", None),
        ("low", Some(1)),
        ("mid", Some(5)),
        ("top", Some(9)),
        ("over", Some(200)),
        ("mid-2", Some(5)),
    ] {
        let properties = match priority {
            Some(p) => BasicProperties::default().with_priority(p),
            None => BasicProperties::default(),
        };
        publish_confirmed(ch, "", queue, body, properties).await;
    }
}

#[tokio::test]
async fn basic_get_takes_the_highest_priority_first() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    priority_queue(&ch, "prio-get").await;
    publish_all(&ch, "prio-get").await;
    assert_eq!(
        drain_bodies(&ch, "prio-get").await,
        vec!["over", "top", "mid", "mid-2", "low", "none"]
    );
}

#[tokio::test]
async fn a_consumer_with_prefetch_1_receives_by_priority() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    priority_queue(&ch, "prio-consume").await;
    publish_all(&ch, "prio-consume").await;
    let consumer_ch = conn.create_channel().await.expect("channel");
    consumer_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_ch
        .basic_consume(
            "prio-consume".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut order = Vec::new();
    for _ in 0..6 {
        let delivery = within(5, consumer.next())
            .await
            .expect("a delivery")
            .expect("a delivery");
        order.push(String::from_utf8_lossy(&delivery.data).into_owned());
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert_eq!(order, vec!["over", "top", "mid", "mid-2", "low", "none"]);
}
