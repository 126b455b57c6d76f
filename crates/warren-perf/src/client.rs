//! A minimal AMQP 0-9-1 client connection for the load generator: the handshake (SASL PLAIN, tune, open) and
//! request/reply calls for setup (declare, bind, qos, consume, confirm.select). Once set up, the connection is
//! handed to a [`super::driver`] that runs the hot path without awaiting per message.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::stream::{self, ReadHalf, WriteHalf};
use super::uri::AmqpUri;
use super::PerfError;
use warren_protocol::frame::{FrameKind, FrameSplitter, RawFrame, FRAME_MIN_SIZE};
use warren_protocol::{
    channel, connection, decode_method, put_method, AMQPClass, AMQPValue, FieldTable, LongString,
    ShortString, PROTOCOL_HEADER,
};

/// How long a setup call (connect, handshake step, declare, consume) may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Used when the server proposes no frame size limit.
const DEFAULT_FRAME_MAX: u32 = 131_072;

/// An open connection in its setup phase.
pub(crate) struct Connection {
    pub read: ReadHalf,
    pub write: WriteHalf,
    pub inbuf: BytesMut,
    pub splitter: FrameSplitter,
    pub frame_max: u32,
    /// Negotiated heartbeat interval in seconds, 0 for none.
    pub heartbeat: u16,
    /// Frames that arrived for other channels while a call waited for its reply (deliveries to a consumer set up
    /// earlier on a shared connection); the driver handles them first.
    pub early: VecDeque<RawFrame>,
    out: BytesMut,
}

/// How a connection is dialled beyond the URI: the soak tool spreads thousands of connections over loopback
/// source addresses and asks for its own heartbeat interval; `warren perf` takes the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dial {
    /// Bind the socket to this source address (port 0) before connecting: each source address has its own
    /// ephemeral port range, so 127.0.0.1..=127.0.0.N together hold N times as many connections.
    pub source: Option<IpAddr>,
    /// The heartbeat interval to ask for in tune-ok, as client libraries do: the lower of this and the server's
    /// proposal, unless either is 0 (then the other). `None` takes the server's proposal.
    pub heartbeat: Option<u16>,
}

impl Connection {
    /// Connects, logs in with PLAIN and opens the URI's vhost.
    pub(crate) async fn open(uri: &AmqpUri, name: &str) -> Result<Connection, PerfError> {
        Connection::open_with(uri, name, Dial::default()).await
    }

    /// As [`Connection::open`], dialled as `dial` says.
    pub(crate) async fn open_with(
        uri: &AmqpUri,
        name: &str,
        dial: Dial,
    ) -> Result<Connection, PerfError> {
        let connect_error = |source| PerfError::Connect {
            address: uri.address.clone(),
            source,
        };
        let stream = match dial.source {
            None => timeout("connect", TcpStream::connect(&uri.address))
                .await?
                .map_err(connect_error)?,
            Some(source) => timeout("connect", connect_from(source, &uri.address))
                .await?
                .map_err(connect_error)?,
        };
        stream.set_nodelay(true).map_err(PerfError::Io)?;
        let (read, write) = if uri.tls {
            let ca_file = uri.ca_cert.as_deref().ok_or_else(|| {
                PerfError::InvalidOptions("amqps:// needs --ca-cert FILE".to_owned())
            })?;
            timeout("the TLS handshake", stream::tls(stream, &uri.host, ca_file))
                .await?
                .map_err(connect_error)?
        } else {
            stream::plain(stream)
        };
        let mut conn = Connection {
            read,
            write,
            inbuf: BytesMut::with_capacity(4096),
            splitter: FrameSplitter::new(FRAME_MIN_SIZE),
            frame_max: FRAME_MIN_SIZE,
            heartbeat: 0,
            early: VecDeque::new(),
            out: BytesMut::new(),
        };
        timeout("the handshake", conn.handshake(uri, name, dial.heartbeat)).await??;
        Ok(conn)
    }

    async fn handshake(
        &mut self,
        uri: &AmqpUri,
        name: &str,
        heartbeat: Option<u16>,
    ) -> Result<(), PerfError> {
        self.write
            .write_all(PROTOCOL_HEADER)
            .await
            .map_err(PerfError::Io)?;
        let start = match self.reply(0).await? {
            AMQPClass::Connection(connection::AMQPMethod::Start(start)) => start,
            other => return Err(unexpected("connection.start", &other)),
        };
        let mechanisms = start.mechanisms.to_string();
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            return Err(PerfError::Protocol(format!(
                "the server offers no PLAIN login (mechanisms: {mechanisms})"
            )));
        }
        let response = format!("\0{}\0{}", uri.user, uri.password);
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_properties(name),
                mechanism: "PLAIN".into(),
                response: LongString::from(response),
                locale: "en_US".into(),
            })),
        )
        .await?;
        let tune = match self.reply(0).await {
            Ok(AMQPClass::Connection(connection::AMQPMethod::Tune(tune))) => tune,
            Ok(other) => return Err(unexpected("connection.tune", &other)),
            Err(PerfError::Closed(_)) => {
                return Err(PerfError::Refused {
                    code: 403,
                    text: format!("login refused for user '{}' (connection closed)", uri.user),
                })
            }
            Err(e) => return Err(e),
        };
        let frame_max = if tune.frame_max == 0 {
            DEFAULT_FRAME_MAX
        } else {
            tune.frame_max
        };
        let heartbeat = negotiate_heartbeat(heartbeat, tune.heartbeat);
        let channel_max = if tune.channel_max == 0 {
            2047
        } else {
            tune.channel_max
        };
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            })),
        )
        .await?;
        self.frame_max = frame_max;
        self.heartbeat = heartbeat;
        self.splitter.set_frame_max(frame_max);
        let vhost = ShortString::try_new(uri.vhost.clone())
            .map_err(|_| PerfError::InvalidOptions("the vhost name is too long".to_owned()))?;
        match self
            .call(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                    virtual_host: vhost,
                })),
            )
            .await?
        {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => Ok(()),
            other => Err(unexpected("connection.open-ok", &other)),
        }
    }

    /// Sends connection.close (200) and waits for close-ok; the socket is dropped with the connection.
    pub(crate) async fn close(&mut self) -> Result<(), PerfError> {
        let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "soak done".into(),
            class_id: 0,
            method_id: 0,
        }));
        match self.call(0, close).await? {
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(()),
            other => Err(unexpected("connection.close-ok", &other)),
        }
    }

    /// Opens channel `id`.
    pub(crate) async fn open_channel(&mut self, id: u16) -> Result<(), PerfError> {
        match self
            .call(
                id,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            )
            .await?
        {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(()),
            other => Err(unexpected("channel.open-ok", &other)),
        }
    }

    pub(crate) async fn send_method(
        &mut self,
        channel: u16,
        method: AMQPClass,
    ) -> Result<(), PerfError> {
        self.out.clear();
        put_method(&mut self.out, channel, method);
        self.write.write_all(&self.out).await.map_err(PerfError::Io)
    }

    /// Sends `method` on `channel` and returns the next method the server sends on it.
    pub(crate) async fn call(
        &mut self,
        channel: u16,
        method: AMQPClass,
    ) -> Result<AMQPClass, PerfError> {
        self.send_method(channel, method).await?;
        timeout("a reply", self.reply(channel)).await?
    }

    /// The next method on `channel`. A channel.close or connection.close from the server is answered and
    /// returned as [`PerfError::Refused`]; frames for other channels are kept in `early`.
    async fn reply(&mut self, channel: u16) -> Result<AMQPClass, PerfError> {
        loop {
            let frame = self.read_frame().await?;
            if frame.channel != channel && frame.channel != 0 {
                self.early.push_back(frame);
                continue;
            }
            if frame.kind != FrameKind::Method {
                return Err(PerfError::Protocol(format!(
                    "unexpected {:?} frame on channel {}",
                    frame.kind, frame.channel
                )));
            }
            let method = decode_method(&frame.payload).map_err(|e| {
                PerfError::Protocol(format!("undecodable method from the server: {}", e.text))
            })?;
            match method {
                AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                    let _ = self
                        .send_method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )),
                        )
                        .await;
                    return Err(PerfError::Refused {
                        code: close.reply_code,
                        text: close.reply_text.to_string(),
                    });
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(close))
                    if frame.channel == channel =>
                {
                    let _ = self
                        .send_method(
                            channel,
                            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                        )
                        .await;
                    return Err(PerfError::Refused {
                        code: close.reply_code,
                        text: close.reply_text.to_string(),
                    });
                }
                // connection.blocked and the like on channel 0 while waiting for a channel's reply.
                _ if frame.channel != channel => continue,
                method => return Ok(method),
            }
        }
    }

    /// The next frame, skipping heartbeats.
    pub(crate) async fn read_frame(&mut self) -> Result<RawFrame, PerfError> {
        loop {
            match self.splitter.next_frame(&mut self.inbuf) {
                Ok(Some(frame)) if frame.kind == FrameKind::Heartbeat => continue,
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    let text = if self.inbuf.starts_with(b"AMQP") {
                        "the server does not speak AMQP 0-9-1 (it answered with another protocol header)"
                            .to_owned()
                    } else {
                        e.text
                    };
                    return Err(PerfError::Protocol(text));
                }
            }
            self.inbuf.reserve(4096);
            let n = self
                .read
                .read_buf(&mut self.inbuf)
                .await
                .map_err(PerfError::Io)?;
            if n == 0 {
                return Err(PerfError::Closed(
                    "the server closed the connection".to_owned(),
                ));
            }
        }
    }
}

/// The heartbeat interval to answer `server`'s proposal with when the client wants `mine`: as client libraries
/// negotiate, the lower of the two unless either is 0 (then the other); `None` takes the proposal.
fn negotiate_heartbeat(mine: Option<u16>, server: u16) -> u16 {
    match mine {
        None => server,
        Some(mine) if mine == 0 || server == 0 => mine.max(server),
        Some(mine) => mine.min(server),
    }
}

/// Connects from `source` (any port) to the first address `address` resolves to.
async fn connect_from(source: IpAddr, address: &str) -> std::io::Result<TcpStream> {
    let target = tokio::net::lookup_host(address)
        .await?
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{address} has no address of the source address's family ({source})"),
            )
        })?;
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

fn client_properties(name: &str) -> FieldTable {
    let mut capabilities = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "consumer_cancel_notify",
        "basic.nack",
        "connection.blocked",
        "authentication_failure_close",
    ] {
        capabilities.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(s.into());
    props.insert("product".into(), text("warren perf"));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), text("Rust"));
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    props.insert("connection_name".into(), text(name));
    props
}

pub(super) fn unexpected(wanted: &str, got: &AMQPClass) -> PerfError {
    PerfError::Protocol(format!("expected {wanted}, got {got:?}"))
}

async fn timeout<T>(what: &str, fut: impl std::future::Future<Output = T>) -> Result<T, PerfError> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .map_err(|_| PerfError::Timeout(format!("no answer to {what} within {CALL_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_is_the_lower_nonzero_one() {
        assert_eq!(negotiate_heartbeat(None, 60), 60);
        assert_eq!(negotiate_heartbeat(Some(10), 60), 10);
        assert_eq!(negotiate_heartbeat(Some(90), 60), 60);
        assert_eq!(negotiate_heartbeat(Some(10), 0), 10);
        assert_eq!(negotiate_heartbeat(Some(0), 60), 60);
    }
}
