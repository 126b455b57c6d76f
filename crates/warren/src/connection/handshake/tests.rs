//! The handshake state machine driven without sockets: a scripted client's bytes in, the steps checked.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;

use super::*;
use crate::config::Config;
use warren_protocol::{AMQPValue, FieldTable};

const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);

/// A broker with the default configuration (guest/guest on "/", guest loopback-only) in a fresh directory.
fn broker() -> Arc<Broker> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data_dir =
        std::env::temp_dir().join(format!("warren-handshake-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    Broker::open(Config {
        data_dir,
        ..Config::default()
    })
    .expect("broker opens")
}

fn frame(method: connection::AMQPMethod) -> BytesMut {
    let mut out = BytesMut::new();
    put_method(&mut out, 0, AMQPClass::Connection(method));
    out
}

fn start_ok(mechanism: &str, response: &[u8], capabilities: &[&str]) -> BytesMut {
    let mut caps = FieldTable::default();
    for name in capabilities {
        caps.insert((*name).into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert(
        "product".into(),
        AMQPValue::LongString("test-client".into()),
    );
    props.insert("version".into(), AMQPValue::LongString("1.2.3".into()));
    frame(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: props,
        mechanism: mechanism.into(),
        response: LongString::from(response.to_vec()),
        locale: "en_US".into(),
    }))
}

fn tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> BytesMut {
    frame(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

fn open(vhost: &str) -> BytesMut {
    frame(connection::AMQPMethod::Open(connection::Open {
        virtual_host: vhost.into(),
    }))
}

/// Decodes the one connection method a `Send` or a refusal carries.
fn decode(bytes: &[u8]) -> connection::AMQPMethod {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameSplitter::new(0)
        .next_frame(&mut buf)
        .expect("a valid frame")
        .expect("a whole frame");
    assert!(buf.is_empty(), "one frame per write");
    match decode_method(&frame.payload) {
        Ok(AMQPClass::Connection(method)) => method,
        other => panic!("expected a connection method, got {other:?}"),
    }
}

/// Feeds `input`, then steps until the machine needs more or finishes; returns the methods it sent and the last
/// step.
fn feed(
    handshake: &mut Handshake<'_>,
    buf: &mut BytesMut,
    input: &[u8],
) -> (Vec<connection::AMQPMethod>, HandshakeStep) {
    buf.extend_from_slice(input);
    let mut sent = Vec::new();
    loop {
        match handshake.handle_input(buf) {
            HandshakeStep::Send(bytes) => sent.push(decode(&bytes)),
            step => return (sent, step),
        }
    }
}

/// Runs the header and start-ok; returns what followed the start-ok.
fn login<'b>(
    broker: &'b Broker,
    peer: SocketAddr,
    start_ok: &[u8],
) -> (
    Handshake<'b>,
    BytesMut,
    Vec<connection::AMQPMethod>,
    HandshakeStep,
) {
    let mut handshake = Handshake::new(broker, peer);
    let mut buf = BytesMut::new();
    let (sent, step) = feed(&mut handshake, &mut buf, b"AMQP\x00\x00\x09\x01");
    assert!(matches!(sent[..], [connection::AMQPMethod::Start(_)]));
    assert!(matches!(step, HandshakeStep::NeedMore));
    let (sent, step) = feed(&mut handshake, &mut buf, start_ok);
    (handshake, buf, sent, step)
}

/// The connection.close of a refusal that waits for close-ok.
fn refused_close(step: HandshakeStep) -> connection::Close {
    let HandshakeStep::Refused(refusal) = step else {
        panic!("expected a refusal");
    };
    assert_eq!(refusal.then, AfterRefusal::AwaitCloseOk(CLOSE_OK_WAIT));
    match decode(&refusal.reply.expect("connection.close")) {
        connection::AMQPMethod::Close(close) => close,
        other => panic!("expected connection.close, got {other:?}"),
    }
}

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[test]
fn plain_login_tunes_and_opens_the_vhost() {
    let broker = broker();
    let caps = ["consumer_cancel_notify", "authentication_failure_close"];
    let (mut handshake, mut buf, sent, step) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("PLAIN", &plain("guest", "guest"), &caps),
    );
    let [connection::AMQPMethod::Tune(tune)] = &sent[..] else {
        panic!("expected connection.tune, got {sent:?}");
    };
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131072, 60)
    );
    assert!(matches!(step, HandshakeStep::NeedMore));
    // Tune-ok, open and the first channel.open in one read: the channel.open is left for the reader.
    let mut input = tune_ok(100, 8192, 30);
    input.extend_from_slice(&open("/"));
    let channel_open = [1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xCE];
    input.extend_from_slice(&channel_open);
    let (sent, step) = feed(&mut handshake, &mut buf, &input);
    assert!(matches!(sent[..], [connection::AMQPMethod::OpenOk(_)]));
    let HandshakeStep::Done(negotiated) = step else {
        panic!("expected the handshake to finish");
    };
    assert_eq!(negotiated.user, "guest");
    assert_eq!(&*negotiated.vhost.name, "/");
    assert_eq!(
        (
            negotiated.channel_max,
            negotiated.frame_max,
            negotiated.heartbeat
        ),
        (100, 8192, 30)
    );
    assert!(negotiated.consumer_cancel_notify);
    assert_eq!(negotiated.client_product.as_deref(), Some("test-client"));
    assert_eq!(negotiated.client_version.as_deref(), Some("1.2.3"));
    assert_eq!(&buf[..], &channel_open[..]);
}

#[test]
fn amqplain_login_is_accepted() {
    let broker = broker();
    let mut response = Vec::new();
    for (key, value) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
        response.push(key.len() as u8);
        response.extend_from_slice(key.as_bytes());
        response.push(b'S');
        response.extend_from_slice(&(value.len() as u32).to_be_bytes());
        response.extend_from_slice(value.as_bytes());
    }
    let (_, _, sent, step) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("AMQPLAIN", &response, &[]),
    );
    assert!(matches!(sent[..], [connection::AMQPMethod::Tune(_)]));
    assert!(matches!(step, HandshakeStep::NeedMore));
}

#[test]
fn bad_password_gets_403_access_refused_then_waits_for_close_ok() {
    let broker = broker();
    let caps = ["authentication_failure_close"];
    let (mut handshake, mut buf, sent, step) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("PLAIN", &plain("guest", "wrong"), &caps),
    );
    assert!(sent.is_empty());
    let close = refused_close(step);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        close.reply_text.as_str(),
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    );
    assert_eq!((close.class_id, close.method_id), (0, 0));
    // Anything but close-ok is dropped while waiting.
    let (_, step) = feed(&mut handshake, &mut buf, &open("/"));
    assert!(matches!(step, HandshakeStep::NeedMore));
    let (_, step) = feed(
        &mut handshake,
        &mut buf,
        &frame(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    );
    assert!(matches!(step, HandshakeStep::Closed));
}

#[test]
fn bad_password_without_authentication_failure_close_lingers_without_a_word() {
    let broker = broker();
    let (_, _, sent, step) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("PLAIN", &plain("guest", "wrong"), &[]),
    );
    assert!(sent.is_empty());
    let HandshakeStep::Refused(refusal) = step else {
        panic!("expected a refusal");
    };
    assert!(refusal.reply.is_none());
    assert_eq!(refusal.then, AfterRefusal::Linger(AUTH_FAILURE_DELAY));
}

#[test]
fn unknown_mechanism_is_refused_as_a_failed_login() {
    let broker = broker();
    let caps = ["authentication_failure_close"];
    let (_, _, _, step) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("CRAM-MD5", b"", &caps),
    );
    let close = refused_close(step);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        close.reply_text.as_str(),
        "ACCESS_REFUSED - Login was refused using authentication mechanism CRAM-MD5. For details see the broker logfile."
    );
}

#[test]
fn external_on_a_plain_connection_is_dropped_without_a_word() {
    // RabbitMQ 3.10 with rabbitmq_auth_mechanism_ssl: 3 s of silence, then the socket closes, whatever the client's
    // capabilities.
    let broker = broker();
    let caps = ["authentication_failure_close"];
    let (_, _, _, step) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("EXTERNAL", b"", &caps),
    );
    let HandshakeStep::Refused(refusal) = step else {
        panic!("expected a refusal");
    };
    assert!(refusal.reply.is_none());
    assert_eq!(refusal.then, AfterRefusal::Linger(SILENT_CLOSE_DELAY));
}

#[test]
fn guest_from_a_non_loopback_address_is_refused() {
    let broker = broker();
    let remote = SocketAddr::from(([192, 0, 2, 7], 40000));
    let caps = ["authentication_failure_close"];
    let (_, _, sent, step) = login(
        &broker,
        remote,
        &start_ok("PLAIN", &plain("guest", "guest"), &caps),
    );
    assert!(sent.is_empty());
    assert_eq!(refused_close(step).reply_code, 403);
}

#[test]
fn wrong_protocol_header_is_answered_with_amqp_0_9_1_header() {
    let broker = broker();
    for header in [&b"AMQP\x01\x01\x08\x00"[..], b"GET / HTTP/1.1\r\n", b"AMQX"] {
        let mut handshake = Handshake::new(&broker, SocketAddr::from(LOOPBACK));
        let (sent, step) = feed(&mut handshake, &mut BytesMut::new(), header);
        assert!(sent.is_empty());
        let HandshakeStep::Refused(refusal) = step else {
            panic!("expected a refusal of {header:?}");
        };
        assert_eq!(refusal.reply.as_deref(), Some(&PROTOCOL_HEADER[..]));
        assert_eq!(refusal.then, AfterRefusal::Shutdown);
    }
    // A prefix of a valid header waits for the rest; the 0-9 header is served as 0-9-1.
    let mut handshake = Handshake::new(&broker, SocketAddr::from(LOOPBACK));
    let mut buf = BytesMut::new();
    let (sent, step) = feed(&mut handshake, &mut buf, b"AMQP\x01");
    assert!(sent.is_empty() && matches!(step, HandshakeStep::NeedMore));
    let (sent, _) = feed(&mut handshake, &mut buf, b"\x01\x00\x09");
    assert!(matches!(sent[..], [connection::AMQPMethod::Start(_)]));
}

#[test]
fn tune_ok_outside_the_proposed_limits_is_530_on_connection_tune() {
    let broker = broker();
    let cases = [
        (tune_ok(2047, 1024, 0), "NOT_ALLOWED - negotiated frame_max = 1024 is lower than the minimum allowed value (4096)"),
        (tune_ok(2047, 0, 0), "NOT_ALLOWED - negotiated frame_max = 0 is higher than the maximum allowed value (131072)"),
        (
            tune_ok(0, 131072, 0),
            "NOT_ALLOWED - negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)",
        ),
    ];
    for (payload, text) in cases {
        let (mut handshake, mut buf, _, _) = login(
            &broker,
            SocketAddr::from(LOOPBACK),
            &start_ok("PLAIN", &plain("guest", "guest"), &[]),
        );
        let (sent, step) = feed(&mut handshake, &mut buf, &payload);
        assert!(sent.is_empty());
        let close = refused_close(step);
        assert_eq!((close.reply_code, close.reply_text.as_str()), (530, text));
        assert_eq!((close.class_id, close.method_id), (10, 30));
    }
}

#[test]
fn open_of_an_unknown_vhost_is_530_not_allowed() {
    let broker = broker();
    let (mut handshake, mut buf, _, _) = login(
        &broker,
        SocketAddr::from(LOOPBACK),
        &start_ok("PLAIN", &plain("guest", "guest"), &[]),
    );
    let mut input = tune_ok(2047, 131072, 0);
    input.extend_from_slice(&open("nope"));
    let (sent, step) = feed(&mut handshake, &mut buf, &input);
    assert!(sent.is_empty());
    let close = refused_close(step);
    assert_eq!(
        (close.reply_code, close.reply_text.as_str()),
        (530, "NOT_ALLOWED - vhost nope not found")
    );
    assert_eq!((close.class_id, close.method_id), (10, 40));
}

#[test]
fn frames_before_tune_ok_are_limited_to_4096_bytes_and_heartbeats_are_skipped() {
    let broker = broker();
    let mut handshake = Handshake::new(&broker, SocketAddr::from(LOOPBACK));
    let mut buf = BytesMut::new();
    feed(&mut handshake, &mut buf, b"AMQP\x00\x00\x09\x01");
    let (_, step) = feed(&mut handshake, &mut buf, &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
    assert!(matches!(step, HandshakeStep::NeedMore));
    let (_, step) = feed(&mut handshake, &mut buf, &[1, 0, 0, 0, 0, 0x20, 0]);
    assert_eq!(refused_close(step).reply_code, 501);
}

#[test]
fn end_of_stream_finishes_the_handshake() {
    let broker = broker();
    let mut handshake = Handshake::new(&broker, SocketAddr::from(LOOPBACK));
    let (_, step) = feed(
        &mut handshake,
        &mut BytesMut::new(),
        b"AMQP\x00\x00\x09\x01",
    );
    assert!(matches!(step, HandshakeStep::NeedMore));
    handshake.handle_eof();
    assert!(matches!(
        handshake.handle_input(&mut BytesMut::new()),
        HandshakeStep::Closed
    ));
}
