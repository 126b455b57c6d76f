//! The connection handshake: protocol header, start/start-ok (SASL), tune/tune-ok, open/open-ok, within the
//! handshake deadline. Frames before tune-ok are limited to AMQP's 4096-byte minimum frame size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::auth::{self, AuthError};
use crate::broker::Broker;
use crate::vhost::Vhost;
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::frame::{FrameKind, FrameSplitter, FRAME_MIN_SIZE};
use warren_protocol::{
    connection, decode_method, put_method, AMQPClass, AMQPValue, FieldTable, LongString,
    PROTOCOL_HEADER,
};

/// The nine capabilities RabbitMQ advertises, and whether Warren really provides each.
pub const CAPABILITIES: &[(&str, bool)] = &[
    ("publisher_confirms", true),
    ("exchange_exchange_bindings", true),
    ("basic.nack", true),
    ("consumer_cancel_notify", true),
    // Sent only with memory/disk watermarks, which Warren does not have yet.
    ("connection.blocked", false),
    ("consumer_priorities", false),
    ("authentication_failure_close", true),
    ("per_consumer_qos", true),
    ("direct_reply_to", false),
];

/// RabbitMQ waits this long before dropping a client that failed to log in and cannot be told why.
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

pub struct Negotiated {
    pub user: String,
    pub vhost: Arc<Vhost>,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub consumer_cancel_notify: bool,
}

struct Io<'a> {
    read: &'a mut OwnedReadHalf,
    write: &'a mut OwnedWriteHalf,
    buf: &'a mut BytesMut,
    splitter: FrameSplitter,
}

enum Step {
    /// The handshake failed; the socket is to be closed (a reason was logged and, if possible, sent).
    Abort,
}

pub async fn run(
    broker: &Broker,
    read: &mut OwnedReadHalf,
    write: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Option<Negotiated> {
    let deadline = broker.config.limits.handshake_timeout;
    let mut io = Io {
        read,
        write,
        buf,
        splitter: FrameSplitter::new(FRAME_MIN_SIZE),
    };
    match tokio::time::timeout(deadline, handshake(broker, &mut io, peer)).await {
        Ok(Ok(n)) => Some(n),
        Ok(Err(Step::Abort)) => None,
        Err(_) => {
            tracing::warn!(%peer, "closing AMQP connection {peer}: handshake_timeout - waiting for the handshake took longer than {deadline:?}");
            None
        }
    }
}

async fn handshake(broker: &Broker, io: &mut Io<'_>, peer: SocketAddr) -> Result<Negotiated, Step> {
    read_protocol_header(io, peer).await?;
    tracing::info!(%peer, "accepting AMQP connection {peer}");
    let config = &broker.config;
    send(
        io,
        connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(broker),
            mechanisms: LongString::from(auth::MECHANISMS),
            locales: LongString::from("en_US"),
        }),
    )
    .await?;

    let start_ok = match expect_method(io, peer).await? {
        connection::AMQPMethod::StartOk(s) => s,
        other => return Err(refuse(io, unexpected(&other), peer).await),
    };
    let capabilities = client_capabilities(&start_ok.client_properties);
    let has = |name: &str| capabilities.iter().any(|c| c == name);
    let mechanism = start_ok.mechanism.as_str().to_owned();
    let user = match auth::authenticate(broker, &mechanism, start_ok.response.as_bytes(), peer.ip())
    {
        Ok(user) => user,
        Err(error) => {
            return Err(auth_failed(
                io,
                &mechanism,
                &error,
                has("authentication_failure_close"),
                peer,
            )
            .await)
        }
    };

    let limits = &config.limits;
    send(
        io,
        connection::AMQPMethod::Tune(connection::Tune {
            channel_max: limits.channel_max,
            frame_max: limits.frame_max,
            heartbeat: limits.heartbeat,
        }),
    )
    .await?;
    let tune_ok = match expect_method(io, peer).await? {
        connection::AMQPMethod::TuneOk(t) => t,
        other => return Err(refuse(io, unexpected(&other), peer).await),
    };
    let negotiated = negotiated_value(
        "frame_max",
        tune_ok.frame_max,
        FRAME_MIN_SIZE,
        limits.frame_max,
    )
    .and_then(|frame_max| {
        let channel_max = negotiated_value(
            "channel_max",
            u32::from(tune_ok.channel_max),
            1,
            u32::from(limits.channel_max),
        )?;
        Ok((frame_max, channel_max as u16))
    });
    let (frame_max, channel_max) = match negotiated {
        Ok(values) => values,
        Err(err) => return Err(refuse(io, err, peer).await),
    };
    // The client's tune-ok heartbeat is the one both sides use; 0 turns heartbeats off.
    let heartbeat = tune_ok.heartbeat;
    io.splitter.set_frame_max(frame_max);

    let open = match expect_method(io, peer).await? {
        connection::AMQPMethod::Open(o) => o,
        other => return Err(refuse(io, unexpected(&other), peer).await),
    };
    let vhost_name = open.virtual_host.as_str();
    let Some(vhost) = broker.vhost(vhost_name) else {
        let err = AmqpError::new(
            ReplyCode::NotAllowed,
            format!("vhost {vhost_name} not found"),
        )
        .on_method(10, 40);
        return Err(refuse(io, err, peer).await);
    };
    let allowed = broker
        .user(&user)
        .is_some_and(|u| u.vhosts.iter().any(|v| v == vhost_name));
    if !allowed {
        let err = AmqpError::new(
            ReplyCode::NotAllowed,
            format!("access to vhost '{vhost_name}' refused for user '{user}'"),
        )
        .on_method(10, 40);
        return Err(refuse(io, err, peer).await);
    }
    send(io, connection::AMQPMethod::OpenOk(connection::OpenOk {})).await?;
    Ok(Negotiated {
        user,
        vhost,
        frame_max,
        channel_max,
        heartbeat,
        consumer_cancel_notify: has("consumer_cancel_notify"),
    })
}

/// Checks a tune-ok value as RabbitMQ does: at least `min` unless 0, and, when the server proposed a limit, neither
/// 0 ("no limit") nor above it. A refusal is 530 on connection.tune, with RabbitMQ's text.
fn negotiated_value(field: &str, client: u32, min: u32, server: u32) -> Result<u32, AmqpError> {
    let refuse = |bound: &str, which: &str, value: u32| {
        let detail = if field == "channel_max" && client == 0 {
            " (no limit)"
        } else {
            ""
        };
        AmqpError::new(
            ReplyCode::NotAllowed,
            format!("negotiated {field} = {client}{detail} is {bound} than the {which} allowed value ({value})"),
        )
        .on_method(10, 30)
    };
    if client != 0 && client < min {
        return Err(refuse("lower", "minimum", min));
    }
    if server != 0 && (client == 0 || client > server) {
        return Err(refuse("higher", "maximum", server));
    }
    Ok(client)
}

/// The AMQP 0-9 header, which RabbitMQ serves as 0-9-1 (connection.start says 0-9 either way).
const PROTOCOL_HEADER_0_9: &[u8; 8] = b"AMQP\x01\x01\x00\x09";

async fn read_protocol_header(io: &mut Io<'_>, peer: SocketAddr) -> Result<(), Step> {
    let accepted = [PROTOCOL_HEADER, PROTOCOL_HEADER_0_9];
    while io.buf.len() < 8 {
        let matches_so_far = accepted.iter().any(|h| h.starts_with(&io.buf[..]));
        if !matches_so_far {
            break;
        }
        io.buf.reserve(64);
        match read_more(io).await {
            Ok(0) | Err(_) => return Err(Step::Abort),
            Ok(_) => {}
        }
    }
    if io.buf.len() >= 8 && accepted.iter().any(|h| io.buf[..8] == h[..]) {
        let _ = io.buf.split_to(8);
        return Ok(());
    }
    tracing::warn!(%peer, "closing AMQP connection {peer}: bad protocol header {:?}", &io.buf[..io.buf.len().min(8)]);
    let _ = io.write.write_all(PROTOCOL_HEADER).await;
    let _ = io.write.shutdown().await;
    Err(Step::Abort)
}

async fn read_more(io: &mut Io<'_>) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    io.buf.reserve(4096);
    io.read.read_buf(io.buf).await
}

/// Reads the next connection-class method on channel 0, skipping heartbeats.
async fn expect_method(io: &mut Io<'_>, peer: SocketAddr) -> Result<connection::AMQPMethod, Step> {
    loop {
        let frame = match io.splitter.next_frame(io.buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match read_more(io).await {
                Ok(0) | Err(_) => {
                    tracing::info!(%peer, "closing AMQP connection {peer}: client closed the socket during the handshake");
                    return Err(Step::Abort);
                }
                Ok(_) => continue,
            },
            Err(error) => return Err(refuse(io, error, peer).await),
        };
        match frame.kind {
            FrameKind::Heartbeat => continue,
            FrameKind::Method if frame.channel == 0 => match decode_method(&frame.payload) {
                Ok(AMQPClass::Connection(method)) => return Ok(method),
                Ok(other) => {
                    let err = AmqpError::new(
                        ReplyCode::CommandInvalid,
                        "expected a connection method during the handshake",
                    )
                    .on_method(other.get_amqp_class_id(), other.get_amqp_method_id());
                    return Err(refuse(io, err, peer).await);
                }
                Err(error) => return Err(refuse(io, error, peer).await),
            },
            _ => {
                let err = AmqpError::new(
                    ReplyCode::UnexpectedFrame,
                    "expected a method frame on channel 0 during the handshake",
                );
                return Err(refuse(io, err, peer).await);
            }
        }
    }
}

fn unexpected(method: &connection::AMQPMethod) -> AmqpError {
    let class = AMQPClass::Connection(method.clone());
    AmqpError::new(
        ReplyCode::CommandInvalid,
        "unexpected method during the handshake",
    )
    .on_method(class.get_amqp_class_id(), class.get_amqp_method_id())
}

async fn send(io: &mut Io<'_>, method: connection::AMQPMethod) -> Result<(), Step> {
    let mut out = BytesMut::new();
    put_method(&mut out, 0, AMQPClass::Connection(method));
    io.write.write_all(&out).await.map_err(|_| Step::Abort)
}

/// Sends connection.close with the error and drops the socket (during the handshake there is nothing to wait for).
async fn refuse(io: &mut Io<'_>, error: AmqpError, peer: SocketAddr) -> Step {
    tracing::warn!(%peer, "closing AMQP connection {peer}: {}", error.text);
    let _ = send(
        io,
        connection::AMQPMethod::Close(connection::Close {
            reply_code: error.reply_code(),
            reply_text: error.short_text().into(),
            class_id: error.class_id,
            method_id: error.method_id,
        }),
    )
    .await;
    // As RabbitMQ does, keep the socket open until the client's close-ok (or a short timeout): a client that
    // writes its close-ok into an already closed socket reports the broken pipe instead of our reply code.
    let _ = tokio::time::timeout(CLOSE_OK_WAIT, await_close_ok(io)).await;
    let _ = io.write.shutdown().await;
    Step::Abort
}

/// How long a refused client has to answer connection.close with close-ok.
const CLOSE_OK_WAIT: Duration = Duration::from_secs(3);

/// Reads and drops frames until connection.close-ok, an undecodable frame or the end of the stream.
async fn await_close_ok(io: &mut Io<'_>) {
    loop {
        match io.splitter.next_frame(io.buf) {
            Ok(Some(frame)) => {
                if frame.kind == FrameKind::Method && frame.channel == 0 {
                    if let Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                        decode_method(&frame.payload)
                    {
                        return;
                    }
                }
            }
            Ok(None) => match read_more(io).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            Err(_) => return,
        }
    }
}

async fn auth_failed(
    io: &mut Io<'_>,
    mechanism: &str,
    error: &AuthError,
    close_frame: bool,
    peer: SocketAddr,
) -> Step {
    tracing::warn!(%peer, "closing AMQP connection {peer}: {error}");
    if close_frame {
        let err = AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        )); // RabbitMQ names no method here: class and method ids 0.
        return refuse(io, err, peer).await;
    }
    tokio::time::sleep(AUTH_FAILURE_DELAY).await;
    let _ = io.write.shutdown().await;
    Step::Abort
}

fn client_capabilities(props: &FieldTable) -> Vec<String> {
    let Some(AMQPValue::FieldTable(caps)) = props.inner().get("capabilities") else {
        return Vec::new();
    };
    caps.inner()
        .iter()
        .filter(|(_, v)| matches!(v, AMQPValue::Boolean(true)))
        .map(|(k, _)| k.as_str().to_owned())
        .collect()
}

fn server_properties(broker: &Broker) -> FieldTable {
    let server = &broker.config.server;
    let mut caps = FieldTable::default();
    for (name, on) in CAPABILITIES {
        caps.insert((*name).into(), AMQPValue::Boolean(*on));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    props.insert("product".into(), text(&server.product));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    props.insert(
        "platform".into(),
        text(&format!("Rust (tokio) on {}", std::env::consts::OS)),
    );
    props.insert(
        "copyright".into(),
        text("Copyright (c) 2026 the Warren authors"),
    );
    props.insert(
        "information".into(),
        text("Warren, an AMQP 0-9-1 broker compatible with RabbitMQ clients. Licensed under the Apache License 2.0."),
    );
    props.insert("cluster_name".into(), text(&server.cluster_name));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props
}
