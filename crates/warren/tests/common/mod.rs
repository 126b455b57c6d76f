//! Shared test harness: a real Warren on 127.0.0.1:0 inside the test process, a lapin connection to it, and a
//! raw-socket client for wire-level tests.
#![allow(dead_code)]

pub(crate) mod api;
pub(crate) mod cluster;
pub(crate) mod process;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::config::Config;
use warren::server::RunningServer;

/// Starts a broker on a free loopback port with the embedded defaults.
pub(crate) async fn start_server() -> RunningServer {
    start_server_with(|_| {}).await
}

/// Starts a broker after `adjust` has changed the default configuration.
pub(crate) async fn start_server_with(adjust: impl FnOnce(&mut Config)) -> RunningServer {
    // Each server gets its own data directory: tests in one binary run in parallel.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data_dir = std::env::temp_dir().join(format!("warren-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        management: warren::config::ManagementConfig {
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            enabled: true,
            ..warren::config::ManagementConfig::default()
        },
        data_dir,
        ..Config::default()
    };
    // Tests run in parallel: each server's Prometheus endpoint on a port of its own.
    config.prometheus.listen = "127.0.0.1:0".parse().expect("loopback address");
    adjust(&mut config);
    RunningServer::start(config).await.expect("server starts")
}

pub(crate) async fn connect(server: &RunningServer) -> lapin::Connection {
    lapin::Connection::connect(&server.uri(), lapin::ConnectionProperties::default())
        .await
        .expect("lapin connects")
}

/// Waits at most `secs` seconds for `fut`, failing the test instead of hanging.
pub(crate) async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("operation finished in time")
}

/// A raw AMQP socket: write bytes, read frames.
pub(crate) struct RawClient {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame as read from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) channel: u16,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// (class id, method id) of a method frame.
    pub(crate) fn method_ids(&self) -> Option<(u16, u16)> {
        if self.kind != 1 || self.payload.len() < 4 {
            return None;
        }
        Some((
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            u16::from_be_bytes([self.payload[2], self.payload[3]]),
        ))
    }

    /// The reply code of a connection.close or channel.close frame.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self.method_ids()? {
            (10, 50) | (20, 40) => Some(u16::from_be_bytes([self.payload[4], self.payload[5]])),
            _ => None,
        }
    }

    /// The reply text of a connection.close or channel.close frame.
    pub(crate) fn close_text(&self) -> Option<String> {
        self.close_code()?;
        let len = self.payload[6] as usize;
        Some(String::from_utf8_lossy(&self.payload[7..7 + len]).into_owned())
    }
}

impl RawClient {
    pub(crate) async fn connect(server: &RunningServer) -> RawClient {
        RawClient::connect_to(server.addr).await
    }

    pub(crate) async fn connect_to(addr: std::net::SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("tcp connects");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a frame of the given type with an arbitrary payload.
    pub(crate) async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut out = vec![kind];
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out.push(0xCE);
        self.send(&out).await;
    }

    /// Reads exactly `n` raw bytes (e.g. a protocol header reply); None if the socket closed first.
    pub(crate) async fn read_exact_raw(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn fill(&mut self) -> bool {
        // On the heap: a 64 KiB stack buffer inside nested futures overflows debug-build test threads.
        let mut chunk = vec![0u8; 65536];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("no data from the server within 10 s"),
        }
    }

    /// The next frame, skipping heartbeats; None if the socket closed.
    pub(crate) async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            while self.buf.len() < 7 {
                if !self.fill().await {
                    return None;
                }
            }
            let size =
                u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]) as usize;
            while self.buf.len() < size + 8 {
                if !self.fill().await {
                    return None;
                }
            }
            let frame = Frame {
                kind: self.buf[0],
                channel: u16::from_be_bytes([self.buf[1], self.buf[2]]),
                payload: self.buf[7..7 + size].to_vec(),
            };
            assert_eq!(self.buf[7 + size], 0xCE, "frame end octet");
            self.buf.drain(..size + 8);
            if frame.kind != 8 {
                return Some(frame);
            }
        }
    }

    /// True if the server closes the socket (after any frames still in flight).
    pub(crate) async fn closed(&mut self) -> bool {
        loop {
            if !self.fill().await {
                return true;
            }
        }
    }

    /// Runs the handshake as guest/guest on vhost "/"; returns after open-ok.
    pub(crate) async fn handshake(&mut self) {
        self.handshake_announcing(&[]).await;
    }

    /// Runs the handshake as guest/guest on vhost "/", announcing the client `capabilities` besides
    /// authentication_failure_close and consumer_cancel_notify; returns after open-ok.
    pub(crate) async fn handshake_announcing(&mut self, capabilities: &[&str]) {
        self.send(b"AMQP\x00\x00\x09\x01").await;
        let start = self.read_frame().await.expect("connection.start");
        assert_eq!(start.method_ids(), Some((10, 10)));
        let mut start_ok = start_ok_payload("PLAIN", b"\0guest\0guest", true);
        if !capabilities.is_empty() {
            start_ok = start_ok_with(capabilities);
        }
        self.send_frame(1, 0, &start_ok).await;
        let tune = self.read_frame().await.expect("connection.tune");
        assert_eq!(tune.method_ids(), Some((10, 30)));
        // tune-ok: channel_max 2047, frame_max 131072, heartbeat 0
        self.send_frame(1, 0, &[0, 10, 0, 31, 0x07, 0xFF, 0, 2, 0, 0, 0, 0])
            .await;
        // open "/"
        self.send_frame(1, 0, &[0, 10, 0, 40, 1, b'/', 0, 0]).await;
        let open_ok = self.read_frame().await.expect("connection.open-ok");
        assert_eq!(open_ok.method_ids(), Some((10, 41)));
    }

    /// Sends `method` on channel `ch`.
    pub(crate) async fn send_method(&mut self, ch: u16, method: warren_protocol::AMQPClass) {
        self.send_frame(1, ch, &method_payload(method)).await;
    }

    /// The next frame, which must be a method: (channel, method); None if the socket closed.
    pub(crate) async fn read_method(&mut self) -> Option<(u16, warren_protocol::AMQPClass)> {
        let frame = self.read_frame().await?;
        let method = warren_protocol::decode_method(&frame.payload)
            .unwrap_or_else(|e| panic!("expected a method frame, got {frame:?}: {e}"));
        Some((frame.channel, method))
    }

    /// Opens channel `ch` and waits for open-ok.
    pub(crate) async fn open_channel(&mut self, ch: u16) {
        self.send_frame(1, ch, &[0, 20, 0, 10, 0]).await;
        let ok = self.read_frame().await.expect("channel.open-ok");
        assert_eq!(ok.method_ids(), Some((20, 11)));
    }
}

/// The payload of a method frame carrying `method`.
pub(crate) fn method_payload(method: warren_protocol::AMQPClass) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    warren_protocol::put_method(&mut out, 0, method);
    out[7..out.len() - 1].to_vec()
}

/// A connection.start-ok payload; `auth_failure_close` sets the client capability of that name.
pub(crate) fn start_ok_payload(
    mechanism: &str,
    response: &[u8],
    auth_failure_close: bool,
) -> Vec<u8> {
    start_ok_capabilities(
        mechanism,
        response,
        &[("authentication_failure_close", auth_failure_close)],
    )
}

/// A guest/guest PLAIN start-ok announcing `extra` capabilities besides authentication_failure_close.
fn start_ok_with(extra: &[&str]) -> Vec<u8> {
    let mut caps = vec![("authentication_failure_close", true)];
    caps.extend(extra.iter().map(|name| (*name, true)));
    start_ok_capabilities("PLAIN", b"\0guest\0guest", &caps)
}

/// A connection.start-ok payload with these capabilities and consumer_cancel_notify.
fn start_ok_capabilities(
    mechanism: &str,
    response: &[u8],
    capabilities: &[(&str, bool)],
) -> Vec<u8> {
    let mut caps = Vec::new();
    let cap = |name: &str, on: bool, out: &mut Vec<u8>| {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(b't');
        out.push(u8::from(on));
    };
    for (name, on) in capabilities {
        cap(name, *on, &mut caps);
    }
    cap("consumer_cancel_notify", true, &mut caps);
    let mut props = Vec::new();
    props.push(12);
    props.extend_from_slice(b"capabilities");
    props.push(b'F');
    props.extend_from_slice(&(caps.len() as u32).to_be_bytes());
    props.extend_from_slice(&caps);
    let mut p = vec![0, 10, 0, 11];
    p.extend_from_slice(&(props.len() as u32).to_be_bytes());
    p.extend_from_slice(&props);
    p.push(mechanism.len() as u8);
    p.extend_from_slice(mechanism.as_bytes());
    p.extend_from_slice(&(response.len() as u32).to_be_bytes());
    p.extend_from_slice(response);
    p.push(5);
    p.extend_from_slice(b"en_US");
    p
}

/// The reply code of the channel.close or connection.close behind a failed lapin operation; None if the failure
/// was not a close sent by the broker (an I/O error, a closed channel used again, ...).
pub(crate) fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// The closes the broker sends on one connection, as lapin reports them. Create it before the operation that
/// should fail: lapin only reports errors to listeners that already exist. Needed for methods without a reply
/// (basic.ack, basic.publish), whose failure reaches no future.
pub(crate) struct CloseWatcher(
    std::pin::Pin<Box<dyn futures_lite::Stream<Item = lapin::Event> + Send>>,
);

impl CloseWatcher {
    pub(crate) fn new(conn: &lapin::Connection) -> CloseWatcher {
        CloseWatcher(Box::pin(conn.events_listener()))
    }

    /// The reply code of the next channel.close or connection.close the broker sends (waits 10 s at most).
    pub(crate) async fn next_code(&mut self) -> u16 {
        self.next_close().await.0
    }

    /// The reply code and text of the next channel.close or connection.close the broker sends (waits 10 s at most).
    pub(crate) async fn next_close(&mut self) -> (u16, String) {
        use futures_lite::StreamExt;
        loop {
            match within(10, self.0.next()).await {
                Some(lapin::Event::Error(error)) => {
                    if let (Some(code), Some(text)) = (reply_code(&error), reply_text(&error)) {
                        return (code, text);
                    }
                }
                Some(_) => {}
                None => panic!("connection events ended before the broker sent a close"),
            }
        }
    }
}

/// The reply text of the channel.close or connection.close behind a failed lapin operation.
pub(crate) fn reply_text(error: &lapin::Error) -> Option<String> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_message().to_string()),
        _ => None,
    }
}

/// Waits (at most 5 s) for an operation the broker must refuse, and returns the reply code it closed with.
pub(crate) async fn refused_code<T: std::fmt::Debug>(
    op: impl std::future::Future<Output = lapin::Result<T>>,
) -> u16 {
    let error = within(5, op)
        .await
        .expect_err("the broker refuses the operation");
    reply_code(&error).unwrap_or_else(|| panic!("not an AMQP exception: {error:?}"))
}

/// The code and text of the close an operation caused (waits 5 s at most).
pub(crate) async fn refusal<T: std::fmt::Debug>(
    op: impl std::future::Future<Output = lapin::Result<T>>,
) -> (u16, String) {
    let error = within(5, op).await.expect_err("refused");
    (
        reply_code(&error).expect("an AMQP close"),
        reply_text(&error).expect("a reply text"),
    )
}

/// Connects as `user`/`password` to `vhost` (written as in a URI: "/" is `%2f`).
pub(crate) async fn connect_as(
    server: &RunningServer,
    user: &str,
    password: &str,
    vhost: &str,
) -> lapin::Result<lapin::Connection> {
    let uri = format!("amqp://{user}:{password}@{}/{vhost}", server.addr);
    within(
        10,
        lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()),
    )
    .await
}

/// Publishes on a channel in confirm mode and waits for the broker's ack: once it arrives the message is in
/// every queue it was routed to.
pub(crate) async fn publish_confirmed(
    ch: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    body: &str,
    properties: lapin::BasicProperties,
) {
    let confirm = within(5, async {
        ch.basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await
        .expect("publish sent")
        .await
        .expect("publish confirmed")
    })
    .await;
    assert!(confirm.is_ack(), "broker nacked the publish: {confirm:?}");
}

/// Takes every ready message from `queue` with basic.get (no-ack) and returns the bodies in order.
pub(crate) async fn drain_bodies(ch: &lapin::Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = within(
            5,
            ch.basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            ),
        )
        .await
        .expect("basic.get");
        match got {
            Some(message) => {
                bodies.push(String::from_utf8_lossy(&message.delivery.data).into_owned())
            }
            None => return bodies,
        }
    }
}

/// A channel in confirm mode.
pub(crate) async fn confirming_channel(conn: &lapin::Connection) -> lapin::Channel {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// queue.declare, bounded in time.
pub(crate) async fn declare(
    ch: &lapin::Channel,
    name: &str,
    options: lapin::options::QueueDeclareOptions,
    args: lapin::types::FieldTable,
) -> lapin::Queue {
    within(5, ch.queue_declare(name.into(), options, args))
        .await
        .expect("queue.declare")
}

/// Publishes `m0` .. `m{n-1}` to `queue` through the default exchange, each confirmed.
pub(crate) async fn publish_n(ch: &lapin::Channel, queue: &str, n: usize) {
    for i in 0..n {
        publish_confirmed(
            ch,
            "",
            queue,
            &format!("m{i}"),
            lapin::BasicProperties::default(),
        )
        .await;
    }
}

/// Options for a passive queue.declare.
pub(crate) fn passive() -> lapin::options::QueueDeclareOptions {
    lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// Messages ready in `queue`, read with a passive declare. Everything the broker sent before the declare-ok has been
/// processed by lapin when this returns, so it also serves as a barrier.
pub(crate) async fn ready_count(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(queue.into(), passive(), lapin::types::FieldTable::default())
        .await
        .expect("passive queue.declare")
        .message_count()
}

/// queue.declare of a plain (transient, non-exclusive) queue with no arguments.
pub(crate) async fn declare_plain(ch: &lapin::Channel, queue: &str) {
    declare(
        ch,
        queue,
        lapin::options::QueueDeclareOptions::default(),
        lapin::types::FieldTable::default(),
    )
    .await;
}

/// The frames of one basic.publish of `body` to `queue` through the default exchange, on channel 1.
pub(crate) fn publish_frames(queue: &str, body: &[u8]) -> Vec<u8> {
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
    header.extend((body.len() as u64).to_be_bytes());
    header.extend([0, 0]);
    frame(2, &header);
    frame(3, body);
    frames
}

/// The next connection-class method (10, id) the broker sends; other frames are skipped.
pub(crate) async fn next_connection_method(raw: &mut RawClient) -> Frame {
    within(10, async {
        loop {
            let frame = raw
                .read_frame()
                .await
                .expect("the broker keeps the connection");
            if frame.method_ids().is_some_and(|(class, _)| class == 10) {
                return frame;
            }
        }
    })
    .await
}

/// The reason text of a connection.blocked payload.
pub(crate) fn blocked_reason(frame: &Frame) -> String {
    let payload = &frame.payload[4..];
    let len = payload[0] as usize;
    String::from_utf8_lossy(&payload[1..1 + len]).into_owned()
}

/// Waits (at most 10 s) until `queue` holds `count` ready messages.
pub(crate) async fn wait_for_count(ch: &lapin::Channel, queue: &str, count: u32) {
    within(10, async {
        while ready_count(ch, queue).await != count {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits (at most 10 s) for a message in `queue`, taken with basic.get (manual ack).
pub(crate) async fn get_message(
    ch: &lapin::Channel,
    queue: &str,
) -> lapin::message::BasicGetMessage {
    within(10, async {
        loop {
            if let Some(message) = ch
                .basic_get(
                    queue.into(),
                    lapin::options::BasicGetOptions { no_ack: false },
                )
                .await
                .expect("basic.get")
            {
                return message;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}
