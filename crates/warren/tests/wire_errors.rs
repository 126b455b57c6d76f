//! Malformed and refused input after the handshake, on the wire: each case gets the reply RabbitMQ sends (reply
//! code, text where clients show it, and the class and method ids), and the broker goes on serving others.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{Frame, RawClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::server::RunningServer;
use warren_protocol::{
    basic, channel, connection, decode_method, put_method, queue, AMQPClass, FieldTable,
};

/// Bounds every wait that is expected to end on its own.
const BOUND: Duration = Duration::from_secs(8);

const METHOD: u8 = 1;
const HEADER: u8 = 2;
const BODY: u8 = 3;
const HEARTBEAT: u8 = 8;

fn payload(method: AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_method(&mut out, 0, method);
    out[7..out.len() - 1].to_vec()
}

fn publish(immediate: bool) -> Vec<u8> {
    payload(AMQPClass::Basic(basic::AMQPMethod::Publish(
        basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: false,
            immediate,
        },
    )))
}

fn declare(name: &str, passive: bool) -> Vec<u8> {
    payload(AMQPClass::Queue(queue::AMQPMethod::Declare(
        queue::Declare {
            queue: name.into(),
            passive,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        },
    )))
}

/// A basic content header: class 60, weight 0, the body size, no properties.
fn content_header(body_size: u64) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 0];
    p.extend_from_slice(&body_size.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p
}

fn close_ok(class: u16) -> Vec<u8> {
    match class {
        10 => payload(AMQPClass::Connection(connection::AMQPMethod::CloseOk(
            connection::CloseOk {},
        ))),
        _ => payload(AMQPClass::Channel(channel::AMQPMethod::CloseOk(
            channel::CloseOk {},
        ))),
    }
}

/// A client past connection.open-ok with channel 1 open.
async fn client_with_channel(server: &RunningServer) -> RawClient {
    let mut client = RawClient::connect(server).await;
    client.handshake().await;
    client.open_channel(1).await;
    client
}

/// What a connection.close from the server said: (code, text, class id, method id).
type Close = (u16, String, u16, u16);

fn decode_close(frame: Option<Frame>, channel: u16) -> Close {
    let frame = frame.expect("a close frame before the socket closed");
    assert_eq!(
        frame.channel, channel,
        "close on channel {channel}: {frame:?}"
    );
    match (channel, decode_method(&frame.payload)) {
        (0, Ok(AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => (
            c.reply_code,
            c.reply_text.as_str().to_owned(),
            c.class_id,
            c.method_id,
        ),
        (1.., Ok(AMQPClass::Channel(channel::AMQPMethod::Close(c)))) => (
            c.reply_code,
            c.reply_text.as_str().to_owned(),
            c.class_id,
            c.method_id,
        ),
        (_, other) => panic!("expected a close, got {other:?}"),
    }
}

/// Answers connection.close; the server may already have dropped the socket (after a framing error it stops
/// reading, as RabbitMQ does), so a failed write is fine.
async fn send_close_ok(client: &mut RawClient) {
    let mut frame = vec![METHOD, 0, 0, 0, 0, 0, 4];
    frame.extend_from_slice(&close_ok(10));
    frame.push(0xCE);
    let _ = client.stream.write_all(&frame).await;
}

/// Reads the server's connection.close, answers close-ok, checks the socket closes and that the broker still
/// serves a new client. Returns the close.
async fn hard_error(client: &mut RawClient, server: &RunningServer) -> Close {
    let close = decode_close(client.read_frame().await, 0);
    send_close_ok(client).await;
    let rest = tokio::time::timeout(BOUND, client.read_frame())
        .await
        .expect("socket closed in time");
    assert_eq!(rest, None, "nothing after connection.close");
    let mut fresh = RawClient::connect(server).await;
    // Boxed: the harness's read buffer lives in its futures, and nesting them deeply overflows a test's stack.
    Box::pin(fresh.handshake()).await;
    Box::pin(fresh.open_channel(1)).await;
    close
}

/// Sends `frames` on a fresh connection with channel 1 open and returns the connection.close they cause.
async fn close_after(frames: &[(u8, u16, Vec<u8>)]) -> Close {
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    for (kind, ch, p) in frames {
        client.send_frame(*kind, *ch, p).await;
    }
    hard_error(&mut client, &server).await
}

#[tokio::test]
async fn declared_4_gib_frame_is_a_frame_error_before_any_payload() {
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    // Only the 7-byte header: the reply must not wait for (or buffer) the 4 GiB it announces.
    client.send(&[METHOD, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]).await;
    let close = hard_error(&mut client, &server).await;
    assert_eq!(close.0, 501);
    assert!(close.1.starts_with("FRAME_ERROR - "), "{}", close.1);
}

#[tokio::test]
async fn frame_of_exactly_frame_max_payload_is_accepted() {
    // RabbitMQ lets a frame's payload reach frame_max (clients often forget the 8 bytes of overhead).
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    client.send_frame(METHOD, 1, &declare("q", false)).await;
    let ok = client.read_frame().await.expect("queue.declare-ok");
    assert_eq!(ok.method_ids(), Some((50, 11)));
    client.send_frame(METHOD, 1, &publish(false)).await;
    client.send_frame(HEADER, 1, &content_header(131072)).await;
    client.send_frame(BODY, 1, &vec![7u8; 131072]).await;
    client.send_frame(METHOD, 1, &declare("q", true)).await;
    let ok = client.read_frame().await.expect("queue.declare-ok");
    assert_eq!(ok.method_ids(), Some((50, 11)));
    assert_eq!(&ok.payload[6..10], &1u32.to_be_bytes(), "one message in q");
}

#[tokio::test]
async fn a_client_writing_an_oversized_frame_finishes_its_write_and_reads_the_close() {
    // A client that cuts a 12 MiB body into one frame (over frame_max) is still writing it when the 501 goes out.
    // The broker reads and drops the frame, so the write completes and the client reads the close instead of
    // a broken pipe; after the dropped frame, its close-ok is recognised.
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    const BODY_SIZE: usize = 12 * 1024 * 1024;
    let mut bytes = Vec::with_capacity(BODY_SIZE + 100);
    let mut frame = |kind: u8, payload: &[u8]| {
        bytes.push(kind);
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes.push(0xCE);
    };
    frame(METHOD, &publish(false));
    frame(HEADER, &content_header(BODY_SIZE as u64));
    frame(BODY, &vec![7u8; BODY_SIZE]);
    let (mut read, mut write) = client.stream.split();
    tokio::time::timeout(BOUND, write.write_all(&bytes))
        .await
        .expect("the write finished in time")
        .expect("the broker read the whole frame: no broken pipe");
    let mut head = [0u8; 7];
    tokio::time::timeout(BOUND, read.read_exact(&mut head))
        .await
        .expect("close in time")
        .expect("the close frame arrives");
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    let mut rest = vec![0u8; size + 1];
    read.read_exact(&mut rest).await.expect("close payload");
    let mut close = head.to_vec();
    close.extend_from_slice(&rest);
    let frame = Frame {
        kind: close[0],
        channel: 0,
        payload: close[7..7 + size].to_vec(),
    };
    assert_eq!(
        decode_close(Some(frame), 0),
        (
            501,
            format!(
                "FRAME_ERROR - type 3, all octets = <<>>: {{frame_too_large,{BODY_SIZE},131064}}"
            ),
            0,
            0
        )
    );
    let mut close_ok_frame = vec![METHOD, 0, 0, 0, 0, 0, 4];
    close_ok_frame.extend_from_slice(&close_ok(10));
    close_ok_frame.push(0xCE);
    write
        .write_all(&close_ok_frame)
        .await
        .expect("close-ok sent");
    // Well before the 3 s close-ok timeout: the close-ok after the dropped frame was read.
    let mut tail = Vec::new();
    let started = std::time::Instant::now();
    tokio::time::timeout(BOUND, read.read_to_end(&mut tail))
        .await
        .expect("socket closed in time")
        .expect("clean close");
    assert!(tail.is_empty(), "nothing after connection.close");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed after close-ok, not at the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropping_after_a_frame_error_is_bounded_in_bytes() {
    // A declared 4 GiB frame: the broker drops what follows, but not without end: past 32 MiB it hangs up, well
    // before the close-ok timeout.
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    client.send(&[BODY, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]).await;
    let chunk = vec![0u8; 1024 * 1024];
    let started = std::time::Instant::now();
    let (_read, mut write) = client.stream.split();
    let mut sent = 0usize;
    let outcome = tokio::time::timeout(BOUND, async {
        loop {
            if let Err(error) = write.write_all(&chunk).await {
                return error;
            }
            sent += chunk.len();
        }
    })
    .await
    .expect("the broker hung up in time");
    assert!(
        sent >= 32 * 1024 * 1024,
        "the broker read at least 32 MiB before hanging up ({sent} sent, {outcome})"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "cut off by bytes, not at the close-ok timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_frame_end_octet_is_a_frame_error() {
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    let mut frame = vec![METHOD, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0];
    frame.push(0x00);
    client.send(&frame).await;
    let close = hard_error(&mut client, &server).await;
    assert_eq!(close.0, 501);
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    let close = close_after(&[(7, 1, vec![1, 2, 3])]).await;
    assert_eq!(close.0, 501);
}

#[tokio::test]
async fn body_frame_with_no_publish_is_an_unexpected_frame() {
    let close = close_after(&[(BODY, 1, b"hello".to_vec())]).await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead".into(),
            0,
            0
        )
    );
}

#[tokio::test]
async fn body_frame_before_the_content_header_is_an_unexpected_frame() {
    let close = close_after(&[(METHOD, 1, publish(false)), (BODY, 1, b"hello".to_vec())]).await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
                .into(),
            60,
            40
        )
    );
}

#[tokio::test]
async fn content_header_with_no_publish_is_an_unexpected_frame() {
    let close = close_after(&[(HEADER, 1, content_header(5))]).await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead".into(),
            0,
            0
        )
    );
}

#[tokio::test]
async fn content_header_of_another_class_is_an_unexpected_frame() {
    // RabbitMQ's frame assembler: 505 naming basic.publish, not a frame error.
    let mut header = content_header(0);
    header[..2].copy_from_slice(&10u16.to_be_bytes());
    let close = close_after(&[(METHOD, 1, publish(false)), (HEADER, 1, header)]).await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got one for class 10 instead"
                .into(),
            60,
            40
        )
    );
}

#[tokio::test]
async fn content_header_with_a_non_zero_weight_is_an_unexpected_frame() {
    let mut header = content_header(0);
    header[2..4].copy_from_slice(&1u16.to_be_bytes());
    let close = close_after(&[(METHOD, 1, publish(false)), (HEADER, 1, header)]).await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
                .into(),
            60,
            40
        )
    );
}

#[tokio::test]
async fn method_where_a_content_header_is_expected_is_an_unexpected_frame() {
    let close = close_after(&[
        (METHOD, 1, publish(false)),
        (METHOD, 1, declare("x", false)),
    ])
    .await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
                .into(),
            60,
            40
        )
    );
}

#[tokio::test]
async fn content_header_where_a_body_is_expected_is_an_unexpected_frame() {
    let close = close_after(&[
        (METHOD, 1, publish(false)),
        (HEADER, 1, content_header(5)),
        (HEADER, 1, content_header(5)),
    ])
    .await;
    assert_eq!(
        close,
        (
            505,
            "UNEXPECTED_FRAME - expected content body, got non content body frame instead".into(),
            60,
            40
        )
    );
}

#[tokio::test]
async fn unknown_method_is_not_implemented() {
    let close = close_after(&[(METHOD, 1, vec![0, 60, 0, 99])]).await;
    assert_eq!((close.0, close.2, close.3), (540, 60, 99));
}

#[tokio::test]
async fn unknown_class_is_not_implemented() {
    let close = close_after(&[(METHOD, 1, vec![0, 99, 0, 10])]).await;
    assert_eq!((close.0, close.2, close.3), (540, 99, 10));
}

#[tokio::test]
async fn truncated_method_arguments_are_a_frame_error() {
    // RabbitMQ answers an undecodable method with 501 "cannot decode", naming the method.
    let mut truncated = declare("some-queue", false);
    truncated.truncate(truncated.len() - 3);
    let close = close_after(&[(METHOD, 1, truncated)]).await;
    assert_eq!((close.0, close.2, close.3), (501, 50, 10));
    assert!(close.1.starts_with("FRAME_ERROR - "), "{}", close.1);
}

#[tokio::test]
async fn method_on_a_channel_never_opened_is_a_channel_error() {
    let close = close_after(&[(METHOD, 5, declare("q", false))]).await;
    assert_eq!(
        close,
        (
            504,
            "CHANNEL_ERROR - expected 'channel.open'".into(),
            50,
            10
        )
    );
}

#[tokio::test]
async fn second_channel_open_is_a_channel_error() {
    let open = payload(AMQPClass::Channel(channel::AMQPMethod::Open(
        channel::Open {},
    )));
    let close = close_after(&[(METHOD, 1, open)]).await;
    assert_eq!(
        close,
        (
            504,
            "CHANNEL_ERROR - second 'channel.open' seen".into(),
            20,
            10
        )
    );
}

#[tokio::test]
async fn opening_more_channels_than_channel_max_is_not_allowed() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    client.read_frame().await.expect("connection.start");
    client
        .send_frame(
            METHOD,
            0,
            &common::start_ok_payload("PLAIN", b"\0guest\0guest", true),
        )
        .await;
    client.read_frame().await.expect("connection.tune");
    // tune-ok: channel_max 2, frame_max 131072, heartbeat 0; then open "/".
    client
        .send_frame(METHOD, 0, &[0, 10, 0, 31, 0, 2, 0, 2, 0, 0, 0, 0])
        .await;
    client
        .send_frame(METHOD, 0, &[0, 10, 0, 40, 1, b'/', 0, 0])
        .await;
    let open_ok = client.read_frame().await.expect("connection.open-ok");
    assert_eq!(open_ok.method_ids(), Some((10, 41)));
    client.open_channel(1).await;
    client.open_channel(2).await;
    client.send_frame(METHOD, 3, &[0, 20, 0, 10, 0]).await;
    let close = hard_error(&mut client, &server).await;
    assert_eq!(close.0, 530);
    assert!(close.1.starts_with("NOT_ALLOWED - "), "{}", close.1);
}

#[tokio::test]
async fn heartbeat_on_a_non_zero_channel_is_an_unexpected_frame() {
    // RabbitMQ raises unexpected_frame for a heartbeat on a channel other than 0.
    let close = close_after(&[(HEARTBEAT, 1, Vec::new())]).await;
    assert_eq!(close.0, 505);
}

#[tokio::test]
async fn channel_flow_inactive_is_not_implemented() {
    let flow = payload(AMQPClass::Channel(channel::AMQPMethod::Flow(
        channel::Flow { active: false },
    )));
    let close = close_after(&[(METHOD, 1, flow)]).await;
    assert_eq!(
        close,
        (540, "NOT_IMPLEMENTED - active=false".into(), 20, 20)
    );
}

#[tokio::test]
async fn qos_with_a_prefetch_size_is_not_implemented() {
    // basic.qos: prefetch-size 10, prefetch-count 0, global false (amq-protocol cannot encode prefetch-size).
    let qos = vec![0, 60, 0, 10, 0, 0, 0, 10, 0, 0, 0];
    let close = close_after(&[(METHOD, 1, qos)]).await;
    assert_eq!(
        close,
        (
            540,
            "NOT_IMPLEMENTED - prefetch_size!=0 (10)".into(),
            60,
            10
        )
    );
}

#[tokio::test]
async fn recover_without_requeue_is_not_implemented() {
    let recover = payload(AMQPClass::Basic(basic::AMQPMethod::Recover(
        basic::Recover { requeue: false },
    )));
    let close = close_after(&[(METHOD, 1, recover)]).await;
    assert_eq!(
        close,
        (540, "NOT_IMPLEMENTED - requeue=false".into(), 60, 110)
    );
}

#[tokio::test]
async fn publish_immediate_is_not_implemented() {
    let close = close_after(&[(METHOD, 1, publish(true))]).await;
    assert_eq!(
        close,
        (540, "NOT_IMPLEMENTED - immediate=true".into(), 60, 40)
    );
}

#[tokio::test]
async fn after_connection_close_only_close_ok_is_heeded() {
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    client.send_frame(METHOD, 1, &publish(true)).await;
    let close = decode_close(client.read_frame().await, 0);
    assert_eq!(close.0, 540);
    // Ignored: a new channel, a declare, content frames, a heartbeat.
    client.send_frame(METHOD, 2, &[0, 20, 0, 10, 0]).await;
    client.send_frame(METHOD, 1, &declare("q", false)).await;
    client.send_frame(HEADER, 1, &content_header(1)).await;
    client.send_frame(HEARTBEAT, 0, &[]).await;
    client.send_frame(METHOD, 0, &close_ok(10)).await;
    let rest = tokio::time::timeout(BOUND, client.read_frame())
        .await
        .expect("socket closed in time");
    assert_eq!(
        rest, None,
        "no reply to methods sent after connection.close"
    );
    let mut fresh = RawClient::connect(&server).await;
    fresh.handshake().await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_closes_only_the_channel() {
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    client.send_frame(METHOD, 1, &declare("x", true)).await;
    let close = decode_close(client.read_frame().await, 1);
    assert_eq!(
        close,
        (404, "NOT_FOUND - no queue 'x' in vhost '/'".into(), 50, 10)
    );
    // Until close-ok, other methods on the channel are dropped.
    client.send_frame(METHOD, 1, &declare("y", false)).await;
    client.send_frame(METHOD, 1, &close_ok(20)).await;
    client.open_channel(1).await;
    client.send_frame(METHOD, 1, &declare("y", false)).await;
    let ok = client.read_frame().await.expect("queue.declare-ok");
    assert_eq!((ok.channel, ok.method_ids()), (1, Some((50, 11))));
}
