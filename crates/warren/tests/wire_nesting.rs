//! Deeply nested field tables and arrays on the wire. Before they were bounded, one such frame from any logged-in
//! client overflowed a worker's stack and aborted the whole broker (this test process with it). Now the frame's
//! connection gets 501 FRAME_ERROR and the broker goes on serving everyone else.

mod common;

use std::time::Duration;

use common::{Frame, RawClient};
use tokio::io::AsyncWriteExt;
use warren::server::RunningServer;
use warren_protocol::nesting::MAX_FIELD_NESTING;
use warren_protocol::{connection, decode_method, AMQPClass};

const BOUND: Duration = Duration::from_secs(10);
const METHOD: u8 = 1;
const HEADER: u8 = 2;
const BODY: u8 = 3;

/// A field table nested `depth` levels (the outermost counts), built by hand: amq-protocol's own encoder is
/// recursive too. With `arrays`, every other level is an array.
fn nested_table(depth: usize, arrays: bool) -> Vec<u8> {
    // The innermost level: a table with one long string.
    let mut value = vec![b'F'];
    let inner = [1, b'k', b'S', 0, 0, 0, 2, b'h', b'i'];
    value.extend((inner.len() as u32).to_be_bytes());
    value.extend(inner);
    for level in 2..depth {
        let mut outer = Vec::with_capacity(value.len() + 10);
        if arrays && level % 2 == 0 {
            outer.push(b'A');
            outer.extend(((value.len() + 2) as u32).to_be_bytes());
            outer.extend([b't', 1]);
            outer.extend(&value);
        } else {
            outer.push(b'F');
            outer.extend(((value.len() + 2) as u32).to_be_bytes());
            outer.extend([1, b'k']);
            outer.extend(&value);
        }
        value = outer;
    }
    // The outermost table: one key whose value is everything above.
    let mut table = ((value.len() + 2) as u32).to_be_bytes().to_vec();
    table.extend([1, b'd']);
    table.extend(&value);
    table
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend(s.as_bytes());
}

fn queue_declare(name: &str, arguments: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 50, 0, 10, 0, 0];
    short_str(&mut p, name);
    p.push(0);
    p.extend(arguments);
    p
}

fn basic_consume(queue: &str, arguments: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 20, 0, 0];
    short_str(&mut p, queue);
    short_str(&mut p, "");
    p.push(0);
    p.extend(arguments);
    p
}

fn exchange_declare(name: &str, arguments: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 40, 0, 10, 0, 0];
    short_str(&mut p, name);
    short_str(&mut p, "headers");
    p.push(0);
    p.extend(arguments);
    p
}

fn queue_bind(queue: &str, exchange: &str, arguments: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 50, 0, 20, 0, 0];
    short_str(&mut p, queue);
    short_str(&mut p, exchange);
    short_str(&mut p, "");
    p.push(0);
    p.extend(arguments);
    p
}

fn publish(exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 40, 0, 0];
    short_str(&mut p, exchange);
    short_str(&mut p, routing_key);
    p.push(0);
    p
}

/// A basic content header carrying only the headers property.
fn header_with_headers(body_size: u64, headers: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 0];
    p.extend(body_size.to_be_bytes());
    p.extend([0b0010_0000, 0]);
    p.extend(headers);
    p
}

async fn client_with_channel(server: &RunningServer) -> RawClient {
    let mut client = RawClient::connect(server).await;
    client.handshake().await;
    client.open_channel(1).await;
    client
}

async fn read(client: &mut RawClient) -> Option<Frame> {
    tokio::time::timeout(BOUND, client.read_frame())
        .await
        .expect("a frame or the socket's end in time")
}

/// Expects connection.close 501 on channel 0, answers close-ok, and checks the broker still serves a new client.
async fn expect_frame_error(client: &mut RawClient, server: &RunningServer) -> String {
    let frame = read(client).await.expect("connection.close");
    let close = match decode_method(&frame.payload) {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => c,
        other => panic!("expected connection.close, got {other:?}"),
    };
    assert_eq!(frame.channel, 0);
    assert_eq!(close.reply_code, 501, "{}", close.reply_text.as_str());
    let mut close_ok = vec![METHOD, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51];
    close_ok.push(0xCE);
    let _ = client.stream.write_all(&close_ok).await;
    assert_eq!(read(client).await, None, "nothing after connection.close");
    let mut fresh = client_with_channel(server).await;
    fresh
        .send_frame(METHOD, 1, &queue_declare("still-serving", &[0, 0, 0, 0]))
        .await;
    let ok = read(&mut fresh).await.expect("queue.declare-ok");
    assert_eq!(ok.method_ids(), Some((50, 11)));
    close.reply_text.as_str().to_owned()
}

#[tokio::test]
async fn deep_queue_declare_arguments_close_only_that_connection() {
    let server = common::start_server().await;
    let mut bystander = client_with_channel(&server).await;
    let mut client = client_with_channel(&server).await;
    let deep = nested_table(2_000, false);
    client
        .send_frame(METHOD, 1, &queue_declare("q", &deep))
        .await;
    let text = expect_frame_error(&mut client, &server).await;
    assert!(text.starts_with("FRAME_ERROR - "), "{text}");
    // A connection opened before the bad frame is untouched.
    bystander
        .send_frame(METHOD, 1, &queue_declare("bystander", &[0, 0, 0, 0]))
        .await;
    let ok = read(&mut bystander).await.expect("queue.declare-ok");
    assert_eq!(ok.method_ids(), Some((50, 11)));
}

#[tokio::test]
async fn deep_arrays_in_every_method_with_arguments_are_frame_errors() {
    let server = common::start_server().await;
    let deep = nested_table(3_000, true);
    let methods = [
        queue_declare("q", &deep),
        exchange_declare("x", &deep),
        queue_bind("q", "amq.headers", &deep),
        basic_consume("q", &deep),
    ];
    for method in methods {
        let mut client = client_with_channel(&server).await;
        client.send_frame(METHOD, 1, &method).await;
        expect_frame_error(&mut client, &server).await;
    }
}

#[tokio::test]
async fn deep_publish_headers_are_a_frame_error_even_when_not_routed_on() {
    let server = common::start_server().await;
    let deep = nested_table(2_000, true);
    for (exchange, routing_key) in [("amq.headers", ""), ("", "nowhere")] {
        let mut client = client_with_channel(&server).await;
        client
            .send_frame(METHOD, 1, &publish(exchange, routing_key))
            .await;
        client
            .send_frame(HEADER, 1, &header_with_headers(2, &deep))
            .await;
        client.send_frame(BODY, 1, b"hi").await;
        expect_frame_error(&mut client, &server).await;
    }
}

#[tokio::test]
async fn deep_client_properties_refuse_the_handshake_and_the_broker_lives() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    let start = read(&mut client).await.expect("connection.start");
    assert_eq!(start.method_ids(), Some((10, 10)));
    let mut start_ok = vec![0, 10, 0, 11];
    start_ok.extend(nested_table(2_000, false));
    short_str(&mut start_ok, "PLAIN");
    let response = b"\0guest\0guest";
    start_ok.extend((response.len() as u32).to_be_bytes());
    start_ok.extend(response);
    short_str(&mut start_ok, "en_US");
    client.send_frame(METHOD, 0, &start_ok).await;
    expect_frame_error(&mut client, &server).await;
}

#[tokio::test]
async fn tables_at_the_nesting_limit_are_accepted() {
    let server = common::start_server().await;
    let mut client = client_with_channel(&server).await;
    let table = nested_table(MAX_FIELD_NESTING, true);
    client
        .send_frame(METHOD, 1, &queue_declare("limit", &table))
        .await;
    let ok = read(&mut client).await.expect("queue.declare-ok");
    assert_eq!(ok.method_ids(), Some((50, 11)));
    client.send_frame(METHOD, 1, &publish("", "limit")).await;
    client
        .send_frame(HEADER, 1, &header_with_headers(2, &table))
        .await;
    client.send_frame(BODY, 1, b"hi").await;
    client
        .send_frame(METHOD, 1, &queue_declare("limit", &table))
        .await;
    let ok = read(&mut client).await.expect("queue.declare-ok");
    assert_eq!(ok.method_ids(), Some((50, 11)));
    assert_eq!(&ok.payload[10..14], &1u32.to_be_bytes(), "one message");
}
