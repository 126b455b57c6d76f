//! The connection handshake on the wire, byte for byte: protocol header, connection.start's server properties,
//! SASL, tune/tune-ok validation, connection.open, the handshake deadline, heartbeats and a client-initiated close.
//! Every reply is compared with what RabbitMQ sends in the same situation.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{start_ok_payload, Frame, RawClient};
use warren::server::RunningServer;
use warren_protocol::{connection, decode_method, put_method, AMQPClass, AMQPValue};

/// Bounds every wait that is expected to end on its own (a close, a heartbeat).
const BOUND: Duration = Duration::from_secs(8);

/// The payload of a method frame as Warren's encoder writes it.
fn method_payload(method: AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_method(&mut out, 0, method);
    out[7..out.len() - 1].to_vec()
}

fn tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> Vec<u8> {
    method_payload(AMQPClass::Connection(connection::AMQPMethod::TuneOk(
        connection::TuneOk {
            channel_max,
            frame_max,
            heartbeat,
        },
    )))
}

fn open(vhost: &str) -> Vec<u8> {
    method_payload(AMQPClass::Connection(connection::AMQPMethod::Open(
        connection::Open {
            virtual_host: vhost.into(),
        },
    )))
}

/// Sends the protocol header and a PLAIN start-ok for `password`; returns the frame that follows.
async fn login(client: &mut RawClient, password: &str, auth_failure_close: bool) -> Option<Frame> {
    client.send(b"AMQP\x00\x00\x09\x01").await;
    let start = client.read_frame().await.expect("connection.start");
    assert_eq!(start.method_ids(), Some((10, 10)));
    let response = format!("\0guest\0{password}");
    client
        .send_frame(
            1,
            0,
            &start_ok_payload("PLAIN", response.as_bytes(), auth_failure_close),
        )
        .await;
    client.read_frame().await
}

/// Logs in as guest and reads connection.tune.
async fn until_tune(client: &mut RawClient) -> connection::Tune {
    let frame = login(client, "guest", true).await.expect("connection.tune");
    match decode_method(&frame.payload) {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Tune(tune))) => tune,
        other => panic!("expected connection.tune, got {other:?}"),
    }
}

/// Asserts `frame` is a connection.close on channel 0 and returns it decoded.
fn connection_close(frame: Option<Frame>) -> connection::Close {
    let frame = frame.expect("connection.close before the socket closed");
    assert_eq!(frame.channel, 0);
    match decode_method(&frame.payload) {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => close,
        other => panic!("expected connection.close, got {other:?}"),
    }
}

/// The socket closes within `BOUND`, with no frame before it.
async fn closes_without_frame(client: &mut RawClient) {
    let frame = tokio::time::timeout(BOUND, client.read_frame())
        .await
        .expect("socket closed in time");
    assert_eq!(frame, None, "no frame expected before the close");
}

async fn closes(client: &mut RawClient) {
    assert!(tokio::time::timeout(BOUND, client.closed())
        .await
        .expect("socket closed in time"));
}

/// The broker still serves a new connection after refusing one.
async fn still_serves(server: &RunningServer) {
    let mut client = RawClient::connect(server).await;
    // Boxed: the harness's read buffer lives in its futures, and nesting them deeply overflows a test's stack.
    Box::pin(client.handshake()).await;
    Box::pin(client.open_channel(1)).await;
}

/// Reads one frame, heartbeats included, as (type, channel, payload).
async fn read_raw_frame(client: &mut RawClient) -> Option<(u8, u16, Vec<u8>)> {
    let header = client.read_exact_raw(7).await?;
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let mut rest = client.read_exact_raw(size + 1).await?;
    assert_eq!(rest.pop(), Some(0xCE), "frame end octet");
    Some((header[0], u16::from_be_bytes([header[1], header[2]]), rest))
}

#[tokio::test]
async fn start_advertises_the_configured_product_version_and_platform() {
    // What an operator sets for clients that only talk to "RabbitMQ" (`[server]` product, version, platform).
    let server = common::start_server_with(|c| {
        c.server.product = "RabbitMQ".into();
        c.server.version = "3.13.7".into();
        c.server.platform = "Erlang/OTP 26.2.5".into();
    })
    .await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    let frame = client.read_frame().await.expect("connection.start");
    let start = match decode_method(&frame.payload) {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Start(start))) => start,
        other => panic!("expected connection.start, got {other:?}"),
    };
    let props = start.server_properties.inner();
    let text = |key: &str| match props.get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("server property {key}: {other:?}"),
    };
    assert_eq!(text("product"), "RabbitMQ");
    assert_eq!(text("version"), "3.13.7");
    assert_eq!(text("platform"), "Erlang/OTP 26.2.5");
}

#[tokio::test]
async fn start_advertises_rabbitmq_server_properties_and_capabilities() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    let frame = client.read_frame().await.expect("connection.start");
    assert_eq!(frame.channel, 0);
    let start = match decode_method(&frame.payload) {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Start(start))) => start,
        other => panic!("expected connection.start, got {other:?}"),
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let props = start.server_properties.inner();
    for key in ["product", "version", "platform", "copyright", "information"] {
        assert!(
            matches!(props.get(key), Some(AMQPValue::LongString(s)) if !s.as_bytes().is_empty()),
            "server property {key} is a non-empty long string: {:?}",
            props.get(key)
        );
    }
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!("capabilities is a table: {:?}", props.get("capabilities"));
    };
    let mut names: Vec<&str> = caps.inner().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    let mut expected = vec![
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ];
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert!(caps
        .inner()
        .values()
        .all(|v| matches!(v, AMQPValue::Boolean(_))));
    let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
    let mechanisms: Vec<&str> = mechanisms.split(' ').collect();
    assert!(mechanisms.contains(&"PLAIN"), "{mechanisms:?}");
    assert!(mechanisms.contains(&"AMQPLAIN"), "{mechanisms:?}");
    assert_eq!(start.locales.as_bytes(), b"en_US");
}

#[tokio::test]
async fn unsupported_protocol_headers_get_the_0_9_1_header_then_a_close() {
    let server = common::start_server().await;
    let headers: [&[u8]; 6] = [
        b"AMQP\x01\x01\x08\x00",             // AMQP 0-8
        b"AMQP\x00\x00\x09\x00",             // AMQP 0-9-0
        b"AMQP\x00\x00\x08\x00",             // AMQP 0-8 with the 0-9-1 layout
        b"AMQP\x00\x01\x00\x00",             // AMQP 1.0
        b"GET / HTTP/1.1\r\n\r\n",           // HTTP
        b"\x16\x03\x01\x02\x00\x01\x00\x01", // TLS ClientHello
    ];
    for header in headers {
        let mut client = RawClient::connect(&server).await;
        client.send(header).await;
        let reply = client.read_exact_raw(8).await;
        assert_eq!(
            reply.as_deref(),
            Some(&b"AMQP\x00\x00\x09\x01"[..]),
            "reply to {header:?}"
        );
        closes(&mut client).await;
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn amqp_0_9_header_is_served_as_0_9_1() {
    // RabbitMQ treats the 0-9 header (class 1, instance 1, version 0-9) as 0-9-1.
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x01\x01\x00\x09").await;
    let start = client.read_frame().await.expect("connection.start");
    assert_eq!(start.method_ids(), Some((10, 10)));
    assert_eq!(&start.payload[4..6], &[0, 9]);
}

#[tokio::test]
async fn bad_password_with_authentication_failure_close_gets_403() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    let close = connection_close(login(&mut client, "wrong", true).await);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        close.reply_text.as_str(),
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    );
    assert_eq!((close.class_id, close.method_id), (0, 0));
    closes(&mut client).await;
    still_serves(&server).await;
}

#[tokio::test]
async fn refused_login_keeps_the_socket_open_until_close_ok() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    let close = connection_close(login(&mut client, "wrong", true).await);
    assert_eq!(close.reply_code, 403);
    // The broker waits for close-ok, as RabbitMQ does: a client writing its close-ok must not hit a closed socket.
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut client.stream, &mut byte),
    )
    .await;
    assert!(
        early.is_err(),
        "the socket closed before close-ok: {early:?}"
    );
    client.send_frame(1, 0, &[0, 10, 0, 51]).await;
    closes(&mut client).await;
}

#[tokio::test]
async fn bad_password_without_the_capability_just_closes_the_socket() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    let reply = tokio::time::timeout(BOUND, login(&mut client, "wrong", false))
        .await
        .expect("socket closed in time");
    assert_eq!(reply, None, "no frame expected before the close");
    still_serves(&server).await;
}

#[tokio::test]
async fn amqplain_login_is_accepted() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    client.read_frame().await.expect("connection.start");
    // An AMQPLAIN response is a field table without its length prefix.
    let mut response = Vec::new();
    for (key, value) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
        response.push(key.len() as u8);
        response.extend_from_slice(key.as_bytes());
        response.push(b'S');
        response.extend_from_slice(&(value.len() as u32).to_be_bytes());
        response.extend_from_slice(value.as_bytes());
    }
    client
        .send_frame(1, 0, &start_ok_payload("AMQPLAIN", &response, true))
        .await;
    let tune = client.read_frame().await.expect("connection.tune");
    assert_eq!(tune.method_ids(), Some((10, 30)));
    client.send_frame(1, 0, &tune_ok(2047, 131072, 0)).await;
    client.send_frame(1, 0, &open("/")).await;
    let open_ok = client.read_frame().await.expect("connection.open-ok");
    assert_eq!(open_ok.method_ids(), Some((10, 41)));
}

#[tokio::test]
async fn tune_proposes_rabbitmq_defaults() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    let tune = until_tune(&mut client).await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131072, 60)
    );
}

#[tokio::test]
async fn tune_ok_with_lower_limits_and_no_heartbeat_is_accepted_and_enforced() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    until_tune(&mut client).await;
    client.send_frame(1, 0, &tune_ok(10, 4096, 0)).await;
    client.send_frame(1, 0, &open("/")).await;
    let open_ok = client.read_frame().await.expect("connection.open-ok");
    assert_eq!(open_ok.method_ids(), Some((10, 41)));
    client.open_channel(1).await;
    // The lower frame_max is the one in force now.
    client.send(&[3, 0, 1, 0, 0, 0x20, 0]).await;
    assert_eq!(connection_close(client.read_frame().await).reply_code, 501);
}

/// RabbitMQ refuses a tune-ok value outside [minimum, what the server proposed], 0 ("no limit") included when the
/// server proposed a limit: 530 on connection.tune.
#[tokio::test]
async fn tune_ok_outside_the_proposed_limits_is_not_allowed() {
    let server = common::start_server().await;
    let cases = [
        (
            tune_ok(2047, 0, 0),
            "NOT_ALLOWED - negotiated frame_max = 0 is higher than the maximum allowed value (131072)",
        ),
        (
            tune_ok(2047, 1 << 20, 0),
            "NOT_ALLOWED - negotiated frame_max = 1048576 is higher than the maximum allowed value (131072)",
        ),
        (
            tune_ok(2047, 1024, 0),
            "NOT_ALLOWED - negotiated frame_max = 1024 is lower than the minimum allowed value (4096)",
        ),
        (
            tune_ok(0, 131072, 0),
            "NOT_ALLOWED - negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)",
        ),
        (
            tune_ok(4000, 131072, 0),
            "NOT_ALLOWED - negotiated channel_max = 4000 is higher than the maximum allowed value (2047)",
        ),
    ];
    for (payload, text) in cases {
        let mut client = RawClient::connect(&server).await;
        until_tune(&mut client).await;
        client.send_frame(1, 0, &payload).await;
        let close = connection_close(client.read_frame().await);
        assert_eq!(close.reply_code, 530);
        assert_eq!(close.reply_text.as_str(), text);
        assert_eq!((close.class_id, close.method_id), (10, 30));
        closes(&mut client).await;
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn frame_larger_than_4096_before_tune_ok_is_a_frame_error() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    client.read_frame().await.expect("connection.start");
    // A start-ok frame header declaring 8 KiB: refused before the payload is sent.
    client.send(&[1, 0, 0, 0, 0, 0x20, 0]).await;
    let close = connection_close(client.read_frame().await);
    assert_eq!(close.reply_code, 501);
    closes(&mut client).await;
    still_serves(&server).await;
}

#[tokio::test]
async fn open_of_an_unknown_vhost_is_not_allowed() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    until_tune(&mut client).await;
    client.send_frame(1, 0, &tune_ok(2047, 131072, 0)).await;
    client.send_frame(1, 0, &open("nope")).await;
    let close = connection_close(client.read_frame().await);
    assert_eq!(close.reply_code, 530);
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - vhost nope not found"
    );
    assert_eq!((close.class_id, close.method_id), (10, 40));
    closes(&mut client).await;
    still_serves(&server).await;
}

#[tokio::test]
async fn client_silent_after_the_header_is_dropped_at_the_handshake_timeout() {
    let server = common::start_server_with(|c| {
        c.limits.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let mut client = RawClient::connect(&server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    let start = client.read_frame().await.expect("connection.start");
    assert_eq!(start.method_ids(), Some((10, 10)));
    closes_without_frame(&mut client).await;

    // A client that never sends the header is dropped too.
    let mut mute = RawClient::connect(&server).await;
    closes(&mut mute).await;
    still_serves(&server).await;
}

#[tokio::test]
async fn heartbeats_are_sent_and_a_silent_client_is_dropped() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    until_tune(&mut client).await;
    client.send_frame(1, 0, &tune_ok(2047, 131072, 1)).await;
    client.send_frame(1, 0, &open("/")).await;
    let open_ok = client.read_frame().await.expect("connection.open-ok");
    assert_eq!(open_ok.method_ids(), Some((10, 41)));

    let heartbeat = tokio::time::timeout(BOUND, read_raw_frame(&mut client))
        .await
        .expect("a frame within the bound");
    assert_eq!(heartbeat, Some((8, 0, Vec::new())), "a heartbeat frame");

    // The client stays silent: dropped after about two intervals, with nothing but heartbeats before.
    let dropped = tokio::time::timeout(BOUND, async {
        while let Some(frame) = read_raw_frame(&mut client).await {
            assert_eq!(frame, (8, 0, Vec::new()), "only heartbeats expected");
        }
    })
    .await;
    assert!(dropped.is_ok(), "silent client dropped within the bound");
}

#[tokio::test]
async fn client_close_gets_close_ok_then_the_socket_closes() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    client.open_channel(1).await;
    let close = method_payload(AMQPClass::Connection(connection::AMQPMethod::Close(
        connection::Close {
            reply_code: 200,
            reply_text: "Goodbye".into(),
            class_id: 0,
            method_id: 0,
        },
    )));
    client.send_frame(1, 0, &close).await;
    let close_ok = client.read_frame().await.expect("connection.close-ok");
    assert_eq!(
        (close_ok.channel, close_ok.method_ids()),
        (0, Some((10, 51)))
    );
    closes(&mut client).await;
    still_serves(&server).await;
}
