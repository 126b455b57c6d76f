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
