//! The reader's handling of frames that may wait: methods on channel 0 (connection.close, update-secret), channel
//! open and close, every channel method but basic.publish (run through the channel's effects), failures that close a
//! channel or the connection, and the cleanup when the connection ends.

use warren_protocol::error::{AmqpError, ReplyCode, Scope};
use warren_protocol::ids;
use warren_protocol::method::qos_prefetch_size;
use warren_protocol::{
    channel, connection, decode_method, put_method, AMQPClass, FrameKind, RawFrame,
};

use super::{Reader, ReaderNext};
use crate::channel::{runtime, Channel, ChannelEffects};
use crate::connection::channels::Slot;

impl Reader {
    pub(super) async fn handle_frame(&mut self, frame: RawFrame) -> ReaderNext {
        if self.closing {
            return self.while_closing(frame);
        }
        let result = match (frame.kind, frame.channel) {
            (FrameKind::Heartbeat, 0) => Ok(ReaderNext::Continue),
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
            // As RabbitMQ: any number may be used, but a frame that would take one more number once
            // channel_max numbers are in use (open or closing) is refused, whatever the frame.
            (_, ch)
                if !self.channels.contains(ch)
                    && self.channels.in_use() >= usize::from(self.channel_max) =>
            {
                Err(AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({})",
                        self.channels.in_use(),
                        self.channel_max
                    ),
                ))
            }
            (FrameKind::Method, _) => self.channel_method(frame).await,
            (_, _) => self.channel_content(&frame),
        };
        match result {
            Ok(next) => next,
            Err(error) => {
                self.close_connection(error);
                ReaderNext::Continue
            }
        }
    }

    pub(super) fn while_closing(&mut self, frame: RawFrame) -> ReaderNext {
        if frame.kind != FrameKind::Method || frame.channel != 0 {
            return ReaderNext::Continue;
        }
        match decode_method(&frame.payload) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => ReaderNext::Stop,
            Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                self.write_connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
                ReaderNext::Stop
            }
            _ => ReaderNext::Continue,
        }
    }

    fn connection_method(&mut self, frame: &RawFrame) -> Result<ReaderNext, AmqpError> {
        match decode_method(&frame.payload)? {
            AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                tracing::debug!(peer = %self.conn.info.peer, code = close.reply_code, text = %close.reply_text, "client sent connection.close");
                Ok(ReaderNext::CloseOkAfterCleanup)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(ReaderNext::Stop),
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(update)) => {
                self.update_secret(update.reason.as_str());
                Ok(ReaderNext::Continue)
            }
            AMQPClass::Connection(
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
            ) => Ok(ReaderNext::Continue),
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

    /// The user's and the node's channel limits, checked as RabbitMQ does when a channel opens (530, which ends
    /// the connection). They are counted across connections only when one is set.
    fn check_channel_limits(&self) -> Result<(), AmqpError> {
        let broker = &self.conn.broker;
        let user = &*self.conn.info.user;
        let refused =
            |text: String| Err(AmqpError::new(ReplyCode::NotAllowed, text).on(ids::CHANNEL_OPEN));
        if let Some(max) = broker.access.user_limit(user, "max-channels") {
            if broker.connections().channels(|c| c.user == user) >= max {
                return refused(format!(
                    "number of channels opened for user '{user}' has reached the maximum allowed user limit of {max}"
                ));
            }
        }
        let node_max = broker.config.limits.max_channels_per_node;
        if node_max > 0 && broker.connections().channels(|_| true) >= node_max as u64 {
            return refused(format!(
                "number of channels opened on node '{}' has reached the maximum allowed limit of {node_max}",
                broker.config.server.cluster_name
            ));
        }
        Ok(())
    }

    /// connection.update-secret, answered as RabbitMQ 3.10 to 4.x answer it for users of the internal backend
    /// (the only one Warren has): with update-secret-ok, whatever the new secret. RabbitMQ's reader
    /// (`rabbit_reader:handle_method0(#'connection.update_secret'{..})`) hands the secret to
    /// `rabbit_access_control:update_state/2`, which passes it only to backends whose credentials expire (OAuth 2
    /// tokens; `state_can_expire/0` up to 3.12, `expiry_timestamp/1` =/= `never` from 3.13); the internal backend's
    /// never do, so the secret is not compared with the stored password hash, for PLAIN, AMQPLAIN and EXTERNAL
    /// logins alike. Only an expiring backend can refuse (530 "New secret was refused by one of the backends").
    /// A user deleted meanwhile has already had its connections closed with 320, and a closing connection ignores
    /// this method. The secret is never logged.
    fn update_secret(&self, reason: &str) {
        let (peer, user) = (self.conn.info.peer, &self.conn.info.user);
        tracing::debug!(%peer, "connection {peer} of user '{user}': asked to update secret, reason: {reason}");
        self.write_connection(connection::AMQPMethod::UpdateSecretOk(
            connection::UpdateSecretOk {},
        ));
        tracing::info!(%peer, "connection {peer}: user '{user}' updated secret, reason: {reason}");
    }

    async fn channel_method(&mut self, frame: RawFrame) -> Result<ReaderNext, AmqpError> {
        let id = frame.channel;
        let method = decode_method(&frame.payload)?;
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if let Some(size @ 1..) = qos_prefetch_size(&frame.payload) {
            return Err(
                AmqpError::not_implemented(format!("prefetch_size!=0 ({size})")).on(ids::BASIC_QOS),
            );
        }
        match self.channels.get_mut(id) {
            None => {
                if let AMQPClass::Channel(channel::AMQPMethod::Open(_)) = method {
                    self.check_channel_limits()?;
                    let mut ch = Box::new(Channel::new(self.conn.info.clone(), id));
                    self.conn.channel_opened(&mut ch);
                    self.channels.insert(id, Slot::Open(ch));
                    self.write_channel(id, channel::AMQPMethod::OpenOk(channel::OpenOk {}));
                    return Ok(ReaderNext::Continue);
                }
                Err(
                    AmqpError::new(ReplyCode::ChannelError, "expected 'channel.open'")
                        .on_method(class_id, method_id),
                )
            }
            Some(Slot::Closing) => {
                // As RabbitMQ's closing channel: only close-ok frees the number. A close that crossed ours is
                // answered with close-ok and the channel keeps waiting for the close-ok the client still owes;
                // everything else is dropped.
                match method {
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                        self.channels.remove(id);
                    }
                    AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                        self.write_channel(id, channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                    }
                    // RabbitMQ checks for a second open before it looks at the channel's state.
                    AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                        return Err(AmqpError::new(
                            ReplyCode::ChannelError,
                            "second 'channel.open' seen",
                        )
                        .on_method(class_id, method_id));
                    }
                    _ => {}
                }
                Ok(ReaderNext::Continue)
            }
            Some(Slot::Open(ch)) => match method {
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => Err(AmqpError::new(
                    ReplyCode::ChannelError,
                    "second 'channel.open' seen",
                )
                .on_method(class_id, method_id)),
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.conn.shut_down(ch).await;
                    self.channels.remove(id);
                    self.write_channel(id, channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                    Ok(ReaderNext::Continue)
                }
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(ReaderNext::Continue),
                method => {
                    let mut ctx = self.conn.channel_context();
                    let mut effects = ChannelEffects::default();
                    let result = ch.handle_method(&mut ctx, method, &mut effects);
                    let result = result.map_err(|e| e.on_method(class_id, method_id));
                    self.channel_effects(id, effects, result).await
                }
            },
        }
    }

    /// Executes what a channel emitted for one event, feeding it queue answers; then, if the event or an answer
    /// failed the channel, closes it.
    pub(super) async fn channel_effects(
        &mut self,
        id: u16,
        mut effects: ChannelEffects,
        result: Result<(), AmqpError>,
    ) -> Result<ReaderNext, AmqpError> {
        let executed = match self.channels.get_mut(id) {
            Some(Slot::Open(ch)) if !effects.is_empty() => {
                let mut ctx = self.conn.channel_context();
                runtime::execute(ch, &mut ctx, &mut effects).await
            }
            _ => Ok(()),
        };
        match result.and(executed) {
            Ok(()) => Ok(ReaderNext::Continue),
            Err(error) => self.channel_failed(id, error).await,
        }
    }

    /// A content frame on a channel that is not open (open channels take theirs in [`Self::handle_frame_now`]):
    /// dropped on a closing channel; on an unused number it is RabbitMQ's 505, since its frame assembler, which
    /// expects a method first, sees the frame before the channel does.
    fn channel_content(&mut self, frame: &RawFrame) -> Result<ReaderNext, AmqpError> {
        match self.channels.get_mut(frame.channel) {
            Some(Slot::Closing) => Ok(ReaderNext::Continue),
            _ => Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            )),
        }
    }

    /// A channel method failed: soft errors close the channel, hard ones the connection.
    pub(super) async fn channel_failed(
        &mut self,
        id: u16,
        error: AmqpError,
    ) -> Result<ReaderNext, AmqpError> {
        if error.scope == Scope::Connection {
            return Err(error);
        }
        tracing::info!(peer = %self.conn.info.peer, channel = id, "channel error on connection {}: {}", self.conn.info.peer, error.text);
        if let Some(Slot::Open(mut ch)) = self.channels.remove(id) {
            self.conn.shut_down(&mut ch).await;
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
        Ok(ReaderNext::Continue)
    }

    /// Sends connection.close for `error` (once: a connection already closing keeps its first close and its
    /// close-ok deadline); from then on only close-ok or close is looked at.
    pub(super) fn close_connection(&mut self, error: AmqpError) {
        if self.closing {
            tracing::debug!(peer = %self.conn.info.peer, "while closing: {}", error.text);
            return;
        }
        tracing::warn!(peer = %self.conn.info.peer, "closing AMQP connection {}: {}", self.conn.info.peer, error.text);
        self.write_connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: error.reply_code(),
            reply_text: error.short_text().into(),
            class_id: error.class_id,
            method_id: error.method_id,
        }));
        self.closing = true;
        self.close_deadline = tokio::time::Instant::now() + super::CLOSE_OK_TIMEOUT;
    }

    pub(super) fn write_connection(&self, method: connection::AMQPMethod) {
        self.conn
            .info
            .outbound
            .write(|out| put_method(out, 0, AMQPClass::Connection(method)));
    }

    /// Answers the client's connection.close.
    pub(super) fn write_close_ok(&self) {
        self.write_connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
    }

    fn write_channel(&self, id: u16, method: channel::AMQPMethod) {
        self.conn
            .info
            .outbound
            .write(|out| put_method(out, id, AMQPClass::Channel(method)));
    }

    /// Closes every channel (requeueing unacked deliveries) and deletes this connection's exclusive queues.
    pub(super) async fn cleanup(&mut self) {
        for slot in self.channels.drain() {
            if let Slot::Open(mut ch) = slot {
                self.conn.shut_down(&mut ch).await;
            }
        }
        for queue in std::mem::take(&mut self.conn.exclusive_queues) {
            let _ = self
                .conn
                .vhost
                .delete_queue(
                    queue.name(),
                    false,
                    false,
                    self.conn.info.id,
                    crate::event::INTERNAL_USER,
                )
                .await;
        }
    }
}
