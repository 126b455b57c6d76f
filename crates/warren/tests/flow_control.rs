//! Flow control from queue to publisher: a queue whose consumer stops keeping up holds its publishers (their
//! connections stop being read, so TCP pushes back) while publishers to other queues flow; releasing the consumer
//! releases them. A connection that consumes from the queue it publishes to is never held by it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{connect, declare_plain, publish_confirmed, ready_count, within, RawClient};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::io::AsyncWriteExt;
use warren::server::RunningServer;

const HIGH_WATERMARK: u64 = 100;
const BODY: usize = 4096;

async fn start() -> RunningServer {
    common::start_server_with(|config| {
        config.flow.queue_high_watermark_messages = HIGH_WATERMARK;
    })
    .await
}

/// The frames of one basic.publish of `body_size` bytes to `queue` through the default exchange, on channel 1.
fn publish_frames(queue: &str, body_size: usize) -> Vec<u8> {
    let mut frames = Vec::new();
    let mut frame = |kind: u8, payload: &[u8]| {
        frames.push(kind);
        frames.extend(1u16.to_be_bytes());
        frames.extend((payload.len() as u32).to_be_bytes());
        frames.extend(payload);
        frames.push(0xCE);
    };
    let mut method = vec![0, 60, 0, 40, 0, 0, 0, queue.len() as u8];
    method.extend(queue.as_bytes());
    method.push(0);
    frame(1, &method);
    let mut header = vec![0, 60, 0, 0];
    header.extend((body_size as u64).to_be_bytes());
    header.extend([0, 0]);
    frame(2, &header);
    frame(3, &vec![b'x'; body_size]);
    frames
}

/// Publishes to `queue` from a raw socket as fast as the socket takes it, counting the messages written, until
/// `cap` are.
async fn publish_raw(
    server: std::net::SocketAddr,
    queue: &'static str,
    written: Arc<AtomicU64>,
    cap: u64,
) {
    let mut raw = RawClient::connect_to(server).await;
    raw.handshake().await;
    raw.open_channel(1).await;
    let one = publish_frames(queue, BODY);
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 8).collect();
    while written.load(Ordering::Relaxed) < cap {
        raw.stream.write_all(&batch).await.expect("publish written");
        written.fetch_add(8, Ordering::Relaxed);
    }
}

/// Publishes `n` confirmed messages to `queue`.
async fn publish_confirmed_n(ch: &lapin::Channel, queue: &str, n: usize) {
    for _ in 0..n {
        publish_confirmed(ch, "", queue, "flowing", BasicProperties::default()).await;
    }
}

#[tokio::test]
async fn a_stalled_consumer_holds_its_publisher_while_another_queue_flows_and_acks_release_it() {
    let server = start().await;

    // The stalled consumer: prefetch 10, and it acks nothing until told to.
    let consumer_conn = connect(&server).await;
    let consumer_ch = consumer_conn.create_channel().await.expect("channel");
    declare_plain(&consumer_ch, "stalled").await;
    consumer_ch
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut stalled = consumer_ch
        .basic_consume(
            "stalled".into(),
            "stalled-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");

    // The other queue, consumed as fast as it comes, published to with confirms on another connection.
    let other_conn = connect(&server).await;
    let other_ch = common::confirming_channel(&other_conn).await;
    declare_plain(&other_ch, "flowing").await;
    let mut flowing = other_ch
        .basic_consume(
            "flowing".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move { while let Some(Ok(_)) = flowing.next().await {} });

    let written = Arc::new(AtomicU64::new(0));
    let publisher = tokio::spawn(publish_raw(
        server.addr,
        "stalled",
        written.clone(),
        1_000_000,
    ));

    // The publisher to the stalled queue stops being read: its writes stop completing while the other queue's
    // publisher keeps getting confirms.
    let mut held_at = None;
    for _ in 0..200 {
        let before = written.load(Ordering::Relaxed);
        within(30, publish_confirmed_n(&other_ch, "flowing", 200)).await;
        if before > 0 && written.load(Ordering::Relaxed) == before {
            held_at = Some(before);
            break;
        }
    }
    let held_at = held_at.expect("the publisher to the stalled queue is held");
    let observer = connect(&server).await;
    let observer_ch = observer.create_channel().await.expect("channel");
    let ready = ready_count(&observer_ch, "stalled").await;
    within(60, publish_confirmed_n(&other_ch, "flowing", 2000)).await;
    assert_eq!(
        written.load(Ordering::Relaxed),
        held_at,
        "the held publisher's socket was read while its queue's consumer stalled"
    );
    assert_eq!(
        ready_count(&observer_ch, "stalled").await,
        ready,
        "the stalled queue's backlog grew while it held its publisher"
    );
    assert!(
        u64::from(ready) + 10 < held_at,
        "{held_at} messages written, {ready} ready: the rest waits unread in the socket"
    );

    // Releasing the consumer (it acks from here on) releases the publisher.
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = stalled.next().await {
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    });
    within(60, async {
        while written.load(Ordering::Relaxed) < held_at + 2000 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    publisher.abort();
}

#[tokio::test]
async fn a_connection_consuming_from_the_queue_it_publishes_to_is_never_held_by_it() {
    let server = start().await;
    let conn = connect(&server).await;
    let consumer_ch = conn.create_channel().await.expect("channel");
    declare_plain(&consumer_ch, "loop").await;
    consumer_ch
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut deliveries = consumer_ch
        .basic_consume(
            "loop".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    const MESSAGES: u64 = 20 * HIGH_WATERMARK;
    let consumed = tokio::spawn(async move {
        let mut n = 0;
        while n < MESSAGES {
            let delivery = deliveries
                .next()
                .await
                .expect("delivery")
                .expect("delivery");
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
            n += 1;
        }
    });
    // Published on the same connection far past the watermark, faster than the consumer acks: were the reader held
    // by the queue, the consumer's acks behind it would never be read and neither side would move again.
    let publish_ch = conn.create_channel().await.expect("channel");
    let body = vec![b'x'; BODY];
    within(60, async {
        for _ in 0..MESSAGES {
            publish_ch
                .basic_publish(
                    "".into(),
                    "loop".into(),
                    Default::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
        }
        consumed.await.expect("every message consumed");
    })
    .await;
}
