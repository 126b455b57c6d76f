//! The reader task: reads the socket, splits frames and dispatches them to the connection or to a channel state
//! machine. Soft errors close a channel; hard errors send connection.close, after which only close-ok (or close)
//! is looked at. A peer silent for two heartbeat intervals is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::tcp::OwnedReadHalf;

use super::handshake::Negotiated;
use super::ConnectionInfo;
use crate::broker::Broker;
use crate::channel::{Channel, ChannelContext};
use crate::error::{AmqpError, ReplyCode, Scope};
use crate::protocol::method::qos_prefetch_size;
use crate::protocol::{
    channel, connection, decode_method, put_method, AMQPClass, FrameKind, FrameSplitter, RawFrame,
};
use crate::queue::QueueHandle;
use crate::vhost::Vhost;

/// Bytes reserved per read while data flows; released when the buffer empties so idle connections stay small.
const READ_SIZE: usize = 64 * 1024;
/// How long to wait for connection.close-ok after sending connection.close.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);

enum Slot {
    Open(Channel),
    /// The broker sent channel.close and waits for close-ok; other frames on it are dropped.
    Closing,
}

enum Flow {
    Continue,
    Stop,
}

struct Reader {
    broker: Arc<Broker>,
    info: Arc<ConnectionInfo>,
    vhost: Arc<Vhost>,
    channel_max: u16,
    channels: HashMap<u16, Slot>,
    exclusive_queues: Vec<Arc<QueueHandle>>,
    /// Set once the broker has sent connection.close.
    closing: bool,
}

pub async fn run(
    broker: Arc<Broker>,
    info: Arc<ConnectionInfo>,
    negotiated: Negotiated,
    read: OwnedReadHalf,
    buf: BytesMut,
) {
    let splitter = FrameSplitter::new(negotiated.frame_max);
    let idle_limit = (negotiated.heartbeat > 0)
        .then(|| Duration::from_secs(2 * u64::from(negotiated.heartbeat)));
    let mut reader = Reader {
        broker,
        info,
        vhost: negotiated.vhost,
        channel_max: negotiated.channel_max,
        channels: HashMap::new(),
        exclusive_queues: Vec::new(),
        closing: false,
    };
    let reason = reader
        .read_loop(read, buf, splitter, idle_limit, negotiated.heartbeat)
        .await;
    tracing::info!(peer = %reader.info.peer, "closing AMQP connection {} (user '{}'): {reason}", reader.info.peer, reader.info.user);
    reader.cleanup().await;
}

impl Reader {
    async fn read_loop(
        &mut self,
        read: OwnedReadHalf,
        mut buf: BytesMut,
        splitter: FrameSplitter,
        idle_limit: Option<Duration>,
        heartbeat: u16,
    ) -> String {
        loop {
            loop {
                match splitter.next_frame(&mut buf) {
                    Ok(Some(frame)) => {
                        if let Flow::Stop = self.handle_frame(frame).await {
                            return "client closed the connection".into();
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        // The stream cannot be resynchronised after a framing error: report it and stop reading.
                        let text = error.text.clone();
                        self.close_connection(error);
                        return text;
                    }
                }
            }
            if buf.is_empty() && buf.capacity() > 0 {
                buf = BytesMut::new();
            }
            let limit = if self.closing {
                Some(CLOSE_OK_TIMEOUT)
            } else {
                idle_limit
            };
            let readable = async {
                read.readable().await?;
                buf.reserve(READ_SIZE.max(buf.len()));
                match read.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                    other => other.map(Some),
                }
            };
            let outcome = match limit {
                Some(limit) => match tokio::time::timeout(limit, readable).await {
                    Ok(r) => r,
                    Err(_) if self.closing => {
                        return "connection.close-ok not received in time".into()
                    }
                    Err(_) => {
                        tracing::warn!(peer = %self.info.peer, "missed heartbeats from client, timeout: {heartbeat}s");
                        return format!("missed heartbeats from client, timeout: {heartbeat}s");
                    }
                },
                None => readable.await,
            };
            match outcome {
                Ok(Some(0)) => return "client unexpectedly closed TCP connection".into(),
                Ok(_) => {}
                Err(error) => return format!("socket error: {error}"),
            }
            if self.info.outbound.is_closed() && !self.closing {
                return "socket write failed".into();
            }
        }
    }

    async fn handle_frame(&mut self, frame: RawFrame) -> Flow {
        if self.closing {
            return self.while_closing(frame);
        }
        let result = match (frame.kind, frame.channel) {
            (FrameKind::Heartbeat, 0) => Ok(Flow::Continue),
            // RabbitMQ answers 505, not the spec's 501.
            (FrameKind::Heartbeat, _) => Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "heartbeat frame on a non-zero channel",
            )),
            (FrameKind::Method, 0) => self.connection_method(&frame),
            (_, 0) => Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "content frame on channel 0",
            )),
            (_, ch) if ch > self.channel_max => Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!(
                    "channel number {ch} exceeds negotiated channel_max {}",
                    self.channel_max
                ),
            )),
            (FrameKind::Method, _) => self.channel_method(frame).await,
            (_, _) => self.channel_content(frame).await,
        };
        match result {
            Ok(flow) => flow,
            Err(error) => {
                self.close_connection(error);
                Flow::Continue
            }
        }
    }

    fn while_closing(&mut self, frame: RawFrame) -> Flow {
        if frame.kind != FrameKind::Method || frame.channel != 0 {
            return Flow::Continue;
        }
        match decode_method(&frame.payload) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => Flow::Stop,
            Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                self.write_connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
                Flow::Stop
            }
            _ => Flow::Continue,
        }
    }

    fn connection_method(&mut self, frame: &RawFrame) -> Result<Flow, AmqpError> {
        match decode_method(&frame.payload)? {
            AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                tracing::debug!(peer = %self.info.peer, code = close.reply_code, text = %close.reply_text, "client sent connection.close");
                self.write_connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
                Ok(Flow::Stop)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(Flow::Stop),
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.write_connection(connection::AMQPMethod::UpdateSecretOk(
                    connection::UpdateSecretOk {},
                ));
                Ok(Flow::Continue)
            }
            AMQPClass::Connection(
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
            ) => Ok(Flow::Continue),
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!(
                    "method {}.{} is not allowed on channel 0",
                    other.get_amqp_class_id(),
                    other.get_amqp_method_id()
                ),
            )
            .on_method(other.get_amqp_class_id(), other.get_amqp_method_id())),
        }
    }

    async fn channel_method(&mut self, frame: RawFrame) -> Result<Flow, AmqpError> {
        let id = frame.channel;
        let method = decode_method(&frame.payload)?;
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if let Some(size @ 1..) = qos_prefetch_size(&frame.payload) {
            return Err(
                AmqpError::not_implemented(format!("prefetch_size!=0 ({size})")).on_method(60, 10),
            );
        }
        match self.channels.get_mut(&id) {
            None => {
                if let AMQPClass::Channel(channel::AMQPMethod::Open(_)) = method {
                    self.channels
                        .insert(id, Slot::Open(Channel::new(self.info.clone(), id)));
                    self.write_channel(id, channel::AMQPMethod::OpenOk(channel::OpenOk {}));
                    return Ok(Flow::Continue);
                }
                Err(
                    AmqpError::new(ReplyCode::ChannelError, "expected 'channel.open'")
                        .on_method(class_id, method_id),
                )
            }
            Some(Slot::Closing) => {
                match method {
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                        self.channels.remove(&id);
                    }
                    AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                        self.write_channel(id, channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                        self.channels.remove(&id);
                    }
                    _ => {}
                }
                Ok(Flow::Continue)
            }
            Some(Slot::Open(ch)) => match method {
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => Err(AmqpError::new(
                    ReplyCode::ChannelError,
                    "second 'channel.open' seen",
                )
                .on_method(class_id, method_id)),
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    ch.shutdown().await;
                    self.channels.remove(&id);
                    self.write_channel(id, channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                    Ok(Flow::Continue)
                }
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(Flow::Continue),
                method => {
                    let mut ctx = ChannelContext {
                        broker: &self.broker,
                        vhost: &self.vhost,
                        conn: &self.info,
                        exclusive_queues: &mut self.exclusive_queues,
                    };
                    match ch.handle_method(&mut ctx, method).await {
                        Ok(()) => Ok(Flow::Continue),
                        Err(error) => {
                            self.channel_failed(id, error.on_method(class_id, method_id))
                                .await
                        }
                    }
                }
            },
        }
    }

    async fn channel_content(&mut self, frame: RawFrame) -> Result<Flow, AmqpError> {
        let id = frame.channel;
        match self.channels.get_mut(&id) {
            None => Err(AmqpError::new(
                ReplyCode::ChannelError,
                "expected 'channel.open'",
            )),
            Some(Slot::Closing) => Ok(Flow::Continue),
            Some(Slot::Open(ch)) => {
                let mut ctx = ChannelContext {
                    broker: &self.broker,
                    vhost: &self.vhost,
                    conn: &self.info,
                    exclusive_queues: &mut self.exclusive_queues,
                };
                match ch.handle_content(&mut ctx, frame).await {
                    Ok(()) => Ok(Flow::Continue),
                    Err(error) => self.channel_failed(id, error).await,
                }
            }
        }
    }

    /// A channel method failed: soft errors close the channel, hard ones the connection.
    async fn channel_failed(&mut self, id: u16, error: AmqpError) -> Result<Flow, AmqpError> {
        if error.scope == Scope::Connection {
            return Err(error);
        }
        tracing::info!(peer = %self.info.peer, channel = id, "channel error on connection {}: {}", self.info.peer, error.text);
        if let Some(Slot::Open(mut ch)) = self.channels.remove(&id) {
            ch.shutdown().await;
        }
        self.channels.insert(id, Slot::Closing);
        self.write_channel(
            id,
            channel::AMQPMethod::Close(channel::Close {
                reply_code: error.reply_code(),
                reply_text: error.short_text().into(),
                class_id: error.class_id,
                method_id: error.method_id,
            }),
        );
        Ok(Flow::Continue)
    }

    fn close_connection(&mut self, error: AmqpError) {
        tracing::warn!(peer = %self.info.peer, "closing AMQP connection {}: {}", self.info.peer, error.text);
        self.write_connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: error.reply_code(),
            reply_text: error.short_text().into(),
            class_id: error.class_id,
            method_id: error.method_id,
        }));
        self.closing = true;
    }

    fn write_connection(&self, method: connection::AMQPMethod) {
        self.info
            .outbound
            .write(|out| put_method(out, 0, AMQPClass::Connection(method)));
    }

    fn write_channel(&self, id: u16, method: channel::AMQPMethod) {
        self.info
            .outbound
            .write(|out| put_method(out, id, AMQPClass::Channel(method)));
    }

    /// Closes every channel (requeueing unacked deliveries) and deletes this connection's exclusive queues.
    async fn cleanup(&mut self) {
        for (_, slot) in self.channels.drain() {
            if let Slot::Open(mut ch) = slot {
                ch.shutdown().await;
            }
        }
        for queue in std::mem::take(&mut self.exclusive_queues) {
            let _ = self
                .vhost
                .delete_queue(queue.name(), false, false, self.info.id)
                .await;
        }
    }
}
