//! Consumer timeouts: a delivery left unacknowledged past `consumer_timeout` (or its queue's `x-consumer-timeout`)
//! closes its channel with RabbitMQ's 406, and the close requeues the message.

mod common;

use std::time::Duration;

use common::{
    confirming_channel, connect, declare, publish_confirmed, ready_count, within, RawClient,
};
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

/// basic.consume of `queue` with manual acks, tag "slow".
fn basic_consume(queue: &str) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 20, 0, 0, queue.len() as u8];
    p.extend(queue.as_bytes());
    p.extend([4, b's', b'l', b'o', b'w', 0, 0, 0, 0, 0]);
    p
}

/// Consumes `queue` on a raw connection, never acks, and returns the channel.close the broker sends.
async fn close_after_a_delivery(
    server: &warren::server::RunningServer,
    queue: &str,
) -> common::Frame {
    let mut raw = RawClient::connect(server).await;
    raw.handshake().await;
    raw.open_channel(1).await;
    raw.send_frame(1, 1, &basic_consume(queue)).await;
    within(20, async {
        loop {
            let frame = raw
                .read_frame()
                .await
                .expect("the broker keeps the connection");
            if frame.method_ids() == Some((20, 40)) {
                return frame;
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_unacknowledged_delivery_past_the_node_timeout_closes_its_channel_and_is_requeued() {
    let server = common::start_server_with(|config| {
        config.limits.consumer_timeout = Some(Duration::from_millis(300));
    })
    .await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "slow-work",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_confirmed(
        &ch,
        "",
        "slow-work",
        "forgotten",
        BasicProperties::default(),
    )
    .await;
    let close = close_after_a_delivery(&server, "slow-work").await;
    assert_eq!(close.close_code(), Some(406));
    assert_eq!(
        close.close_text().as_deref(),
        Some("PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 300 ms. This timeout value can be configured, see consumers doc guide to learn more")
    );
    within(5, async {
        while ready_count(&ch, "slow-work").await != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_queues_x_consumer_timeout_overrides_the_node_default() {
    // The node default is RabbitMQ's 30 minutes: only the queue's own 300 ms can close the channel in this test.
    let server = common::start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-consumer-timeout"),
        AMQPValue::LongInt(300),
    );
    declare(&ch, "impatient", QueueDeclareOptions::default(), arguments).await;
    publish_confirmed(
        &ch,
        "",
        "impatient",
        "forgotten",
        BasicProperties::default(),
    )
    .await;
    let close = close_after_a_delivery(&server, "impatient").await;
    assert_eq!(close.close_code(), Some(406));
    assert!(close
        .close_text()
        .unwrap_or_default()
        .contains("Timeout value used: 300 ms"));
}

#[tokio::test]
async fn the_cancel_consumer_action_requeues_the_late_delivery_and_cancels_only_its_consumer() {
    use futures_lite::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions};

    let server = common::start_server().await;
    let broker = server.broker.clone();
    tokio::task::spawn_blocking(move || {
        let input = warren::broker::PolicyInput {
            pattern: "^lazy$".into(),
            apply_to: Some("queues".into()),
            priority: None,
            definition: serde_json::json!({
                "consumer-timeout": 300,
                "warren-consumer-timeout-action": "cancel-consumer"
            }),
        };
        broker.set_policy(warren::broker::PolicyKind::Policy, "/", "lazy", &input)
    })
    .await
    .expect("ran")
    .expect("policy set");
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "lazy",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_confirmed(&ch, "", "lazy", "late", BasicProperties::default()).await;
    let consumer_channel = conn.create_channel().await.expect("channel");
    let mut consumer = consumer_channel
        .basic_consume(
            "lazy".into(),
            "sleepy".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let first = within(5, consumer.next())
        .await
        .expect("a delivery")
        .expect("delivery ok");
    assert_eq!(first.data, b"late");
    // Never acked: after the timeout the broker cancels the consumer (lapin ends its stream on basic.cancel).
    let after = within(10, consumer.next()).await;
    assert!(after.is_none(), "the consumer is cancelled, got {after:?}");
    // The channel lives on, and the message is back, marked redelivered.
    let again = within(
        5,
        consumer_channel.basic_get("lazy".into(), BasicGetOptions { no_ack: false }),
    )
    .await
    .expect("the channel is still open")
    .expect("the late message was requeued");
    assert_eq!(again.delivery.data, b"late");
    assert!(again.delivery.redelivered);
    consumer_channel
        .basic_ack(again.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack on the same channel");
    assert_eq!(ready_count(&ch, "lazy").await, 0);
    assert!(consumer_channel.status().connected());
}
