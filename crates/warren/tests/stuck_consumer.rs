//! A consumer that stops reading its socket is let go, as RabbitMQ lets it go: with heartbeats, the missed
//! heartbeats close the connection and its socket really closes (the writer blocked on the full socket does not
//! hold it); without heartbeats, a write that makes no progress for `send_timeout` closes it.

mod common;

use std::time::Duration;

use common::{connect, declare, publish_confirmed, within, RawClient};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::io::AsyncWriteExt;

/// basic.consume of `queue`, no-ack, so the broker sends everything it has.
fn consume_no_ack(queue: &str) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 20, 0, 0, queue.len() as u8];
    p.extend(queue.as_bytes());
    // consumer tag "stuck", flags: no-ack (bit 1), empty arguments
    p.extend([5, b's', b't', b'u', b'c', b'k', 0b10, 0, 0, 0, 0]);
    p
}

/// Opens a raw connection tuned to `heartbeat` seconds, consumes `queue` without ever reading again.
async fn stuck_consumer(
    server: &warren::server::RunningServer,
    queue: &str,
    heartbeat: u16,
) -> RawClient {
    let mut raw = RawClient::connect(server).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    raw.read_frame().await.expect("connection.start");
    raw.send_frame(
        1,
        0,
        &common::start_ok_payload("PLAIN", b"\0guest\0guest", true),
    )
    .await;
    raw.read_frame().await.expect("connection.tune");
    let mut tune_ok = vec![0, 10, 0, 31, 0x07, 0xFF, 0, 2, 0, 0];
    tune_ok.extend(heartbeat.to_be_bytes());
    raw.send_frame(1, 0, &tune_ok).await;
    raw.send_frame(1, 0, &[0, 10, 0, 40, 1, b'/', 0, 0]).await;
    raw.read_frame().await.expect("connection.open-ok");
    raw.open_channel(1).await;
    raw.stream
        .write_all(&{
            let payload = consume_no_ack(queue);
            let mut frame = vec![1, 0, 1];
            frame.extend((payload.len() as u32).to_be_bytes());
            frame.extend(payload);
            frame.push(0xCE);
            frame
        })
        .await
        .expect("consume sent");
    raw
}

/// Fills `queue` with 24 MiB: more than the broker's outbound budget and the kernel's socket buffers hold.
async fn fill(server: &warren::server::RunningServer, queue: &str) -> lapin::Connection {
    let conn = connect(server).await;
    let ch = common::confirming_channel(&conn).await;
    declare(
        &ch,
        queue,
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let body = "x".repeat(256 * 1024);
    for _ in 0..96 {
        publish_confirmed(&ch, "", queue, &body, BasicProperties::default()).await;
    }
    conn
}

async fn wait_for_connections(server: &warren::server::RunningServer, count: usize) {
    within(30, async {
        while server.broker.connections().list().len() != count {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn missed_heartbeats_really_close_a_stuck_consumers_connection() {
    let server = common::start_server().await;
    let _publisher = fill(&server, "deep").await;
    let stuck = stuck_consumer(&server, "deep", 1).await;
    wait_for_connections(&server, 2).await;
    // Two heartbeat intervals of silence, then the writer's short grace: gone, though its socket is full.
    wait_for_connections(&server, 1).await;
    drop(stuck);
}

#[tokio::test]
async fn without_heartbeats_a_write_blocked_past_send_timeout_closes_the_connection() {
    let server = common::start_server_with(|config| {
        config.limits.send_timeout = Some(Duration::from_millis(500));
    })
    .await;
    let _publisher = fill(&server, "deep").await;
    let stuck = stuck_consumer(&server, "deep", 0).await;
    wait_for_connections(&server, 2).await;
    wait_for_connections(&server, 1).await;
    drop(stuck);
}
