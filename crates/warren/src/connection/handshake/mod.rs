//! The connection handshake as a state machine that does no I/O: protocol header, start/start-ok (SASL),
//! tune/tune-ok, open/open-ok, and the refusals RabbitMQ sends. Bytes go in through [`Handshake::handle_input`];
//! what to write and what to wait for come back as a [`HandshakeStep`]. `handshake_io` drives it over a socket.
//! Frames before tune-ok are limited to AMQP's 4096-byte minimum frame size.

mod properties;
#[cfg(test)]
mod tests;
mod tune;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use super::transport::TlsPeer;
use crate::auth::{self, limits, AuthError};
use crate::broker::Broker;
use crate::config::Mechanism;
use crate::event::{connection_pid, AuthAttempt, Event};
use crate::vhost::Vhost;
use properties::{client_capabilities, client_text, server_properties};
use tune::{check_tune_ok, Tuned};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::frame::{FrameKind, FrameSplitter, FRAME_MIN_SIZE};
use warren_protocol::ids;
use warren_protocol::{
    connection, decode_method, put_method, AMQPClass, FieldTable, LongString, PROTOCOL_HEADER,
};

/// RabbitMQ waits this long before dropping a client that failed to log in and cannot be told why.
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// RabbitMQ's SILENT_CLOSE_DELAY: how long it waits before dropping, without a word, a client whose start-ok it
/// cannot accept (a mechanism it does not offer).
const SILENT_CLOSE_DELAY: Duration = Duration::from_secs(3);

/// How long a refused client has to answer connection.close with close-ok.
const CLOSE_OK_WAIT: Duration = Duration::from_secs(3);

/// The AMQP 0-9 header, which RabbitMQ serves as 0-9-1 (connection.start says 0-9 either way).
const PROTOCOL_HEADER_0_9: &[u8; 8] = b"AMQP\x01\x01\x00\x09";

/// What a finished handshake agreed on; the reader and writer run with it.
pub(crate) struct Negotiated {
    /// The authenticated user.
    pub(crate) user: String,
    /// The virtual host opened with connection.open.
    pub(crate) vhost: Arc<Vhost>,
    /// The client's tune-ok frame_max: the largest frame either side may send.
    pub(crate) frame_max: u32,
    /// The client's tune-ok channel_max: the highest channel number it may open.
    pub(crate) channel_max: u16,
    /// The client's tune-ok heartbeat in seconds; 0 turns heartbeats off.
    pub(crate) heartbeat: u16,
    /// The client handles server-sent basic.cancel.
    pub(crate) consumer_cancel_notify: bool,
    /// The client handles connection.blocked and connection.unblocked.
    pub(crate) connection_blocked: bool,
    /// The client's `product` property, for listings.
    pub(crate) client_product: Option<String>,
    /// The client's `version` property, for listings.
    pub(crate) client_version: Option<String>,
    /// The client's `connection_name` property, for listings (RabbitMQ's `user_provided_name`).
    pub(crate) client_connection_name: Option<String>,
    /// The client's properties, kept for the connection's events only when the event exchange is on.
    pub(crate) client_properties: FieldTable,
    /// The SASL mechanism it logged in with.
    pub(crate) auth_mechanism: &'static str,
}

/// What the driver must do next, returned by [`Handshake::handle_input`].
pub(crate) enum HandshakeStep {
    /// Write these bytes to the peer, then call `handle_input` again (more input may already be buffered).
    Send(Bytes),
    /// Read more bytes into the buffer, then call `handle_input` again; at the end of the stream call
    /// [`Handshake::handle_eof`] instead.
    NeedMore,
    /// The connection is open (open-ok was handed out in the `Send` before this); the buffer's remaining bytes
    /// belong to the reader.
    Done(Negotiated),
    /// The handshake failed: carry out the [`Refusal`].
    Refused(Refusal),
    /// After a refusal that awaits close-ok: the close-ok (or input that cannot be one) arrived; shut down now.
    Closed,
}

/// How a failed handshake ends on the wire.
pub(crate) struct Refusal {
    /// Bytes to write first (connection.close, or AMQP 0-9-1's protocol header); a write error is ignored.
    pub(crate) reply: Option<Bytes>,
    /// What to wait for after writing, before shutting the socket down.
    pub(crate) then: AfterRefusal,
}

/// What a refused connection waits for before its socket is shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterRefusal {
    /// Nothing: shut down at once.
    Shutdown,
    /// Keep feeding input to `handle_input` until it returns [`HandshakeStep::Closed`], the stream ends or this
    /// much time passes. As RabbitMQ does: a client that writes its close-ok into an already closed socket reports
    /// the broken pipe instead of our reply code.
    AwaitCloseOk(Duration),
    /// Wait this long without a word (a failed login the client cannot be told about).
    Linger(Duration),
}

/// The handshake of one connection. Call [`Handshake::handle_input`] whenever the buffer may hold more input and
/// act on the step it returns; the caller owns the buffer, the socket and the deadline.
pub(crate) struct Handshake<'a> {
    broker: &'a Broker,
    peer: SocketAddr,
    /// What TLS established; None on a plain connection.
    tls: Option<TlsPeer>,
    /// The connection's id, name and listener address, which its login events name.
    identity: ConnectionIdentity,
    splitter: FrameSplitter,
    state: State,
}

/// Where the handshake is; each state names what it waits for.
enum State {
    Header,
    StartOk,
    TuneOk(Login),
    Open(Login, Tuned),
    /// open-ok has been handed out; the next call returns `Done`.
    Opened(Box<Negotiated>),
    /// connection.close was sent after a refusal.
    CloseOk,
    Finished,
}

/// Who a connection is before it is served: what its `user.authentication.*` and `connection.closed` events say.
pub(crate) struct ConnectionIdentity {
    /// Its node-unique id.
    pub(crate) id: u64,
    /// Its name, `peer -> local`.
    pub(crate) name: String,
    /// The listener's address.
    pub(crate) local: Option<SocketAddr>,
}

/// What start-ok established.
struct Login {
    user: String,
    consumer_cancel_notify: bool,
    connection_blocked: bool,
    client_product: Option<String>,
    client_version: Option<String>,
    client_connection_name: Option<String>,
    client_properties: FieldTable,
    auth_mechanism: &'static str,
}

impl<'a> Handshake<'a> {
    /// A handshake with `peer`, waiting for its protocol header.
    pub(crate) fn new(broker: &'a Broker, peer: SocketAddr) -> Handshake<'a> {
        Handshake {
            broker,
            peer,
            tls: None,
            identity: ConnectionIdentity {
                id: 0,
                name: peer.to_string(),
                local: None,
            },
            splitter: FrameSplitter::new(FRAME_MIN_SIZE),
            state: State::Header,
        }
    }

    /// The same handshake on a TLS connection that established `tls` (None: a plain connection).
    pub(crate) fn with_tls(mut self, tls: Option<TlsPeer>) -> Handshake<'a> {
        self.tls = tls;
        self
    }

    /// The same handshake for the connection `identity` (its events name it).
    pub(crate) fn with_identity(mut self, identity: ConnectionIdentity) -> Handshake<'a> {
        self.identity = identity;
        self
    }

    /// Reports a login (`user.authentication.success`, or `.failure` with `error`) when the event exchange is
    /// on; a refused one also ends the connection's life in events (`connection.closed`), as in RabbitMQ.
    fn login_event(
        &self,
        user: &str,
        mechanism: &str,
        error: Option<&AuthError>,
        client_properties: &FieldTable,
    ) {
        let events = &self.broker.events;
        let identity = &self.identity;
        events.emit(|| {
            let attempt = AuthAttempt {
                user,
                connection_name: &identity.name,
                peer: self.peer,
                local: identity.local,
                auth_mechanism: mechanism,
                ssl: self.tls.is_some(),
            };
            Event::authentication(&attempt, error.map(ToString::to_string).as_deref())
        });
        if error.is_some() {
            events.emit(|| {
                let node = &self.broker.config.server.cluster_name;
                let pid = connection_pid(node, identity.id);
                Event::connection_closed(&pid, &identity.name, node, client_properties)
            });
        }
    }

    /// The SASL mechanisms this connection is offered.
    fn mechanisms(&self) -> Vec<Mechanism> {
        let config = &self.broker.config;
        auth::external::offered(&config.sasl, config.ssl.verify, self.tls.is_some())
    }

    /// Advances on what `buf` holds, taking the bytes it uses off its front. Call it first with whatever has been
    /// read (possibly nothing), then again after acting on each step but `Done` and `Closed`.
    pub(crate) fn handle_input(&mut self, buf: &mut BytesMut) -> HandshakeStep {
        loop {
            let state = std::mem::replace(&mut self.state, State::Finished);
            let step = match state {
                State::Header => Some(self.on_header(buf)),
                State::Opened(negotiated) => Some(HandshakeStep::Done(*negotiated)),
                State::CloseOk => Some(self.on_close_wait(buf)),
                State::Finished => Some(HandshakeStep::Closed),
                waiting => match self.next_method(buf) {
                    Ok(None) => {
                        self.state = waiting;
                        Some(HandshakeStep::NeedMore)
                    }
                    Ok(Some(method)) => self.on_method(waiting, method),
                    Err(error) => Some(self.refuse(error)),
                },
            };
            // None: a method was taken that needs no answer (tune-ok); look at the rest of the buffer.
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// The peer closed its side (or the read failed) while `handle_input` wanted more.
    pub(crate) fn handle_eof(&mut self) {
        if let State::StartOk | State::TuneOk(_) | State::Open(..) = self.state {
            let peer = self.peer;
            tracing::info!(%peer, "closing AMQP connection {peer}: client closed the socket during the handshake");
        }
        self.state = State::Finished;
    }

    fn on_header(&mut self, buf: &mut BytesMut) -> HandshakeStep {
        let accepted = [PROTOCOL_HEADER, PROTOCOL_HEADER_0_9];
        if buf.len() < 8 && accepted.iter().any(|h| h.starts_with(&buf[..])) {
            self.state = State::Header;
            return HandshakeStep::NeedMore;
        }
        let peer = self.peer;
        if buf.len() >= 8 && accepted.iter().any(|h| buf[..8] == h[..]) {
            buf.advance(8);
            tracing::info!(%peer, "accepting AMQP connection {peer}");
            self.state = State::StartOk;
            return send(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: server_properties(self.broker),
                mechanisms: LongString::from(
                    self.mechanisms()
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                locales: LongString::from("en_US"),
            }));
        }
        tracing::warn!(%peer, "closing AMQP connection {peer}: bad protocol header {:?}", &buf[..buf.len().min(8)]);
        HandshakeStep::Refused(Refusal {
            reply: Some(Bytes::from_static(PROTOCOL_HEADER)),
            then: AfterRefusal::Shutdown,
        })
    }

    /// Handles a connection method received in `state`; None when there is nothing to send for it.
    fn on_method(&mut self, state: State, method: connection::AMQPMethod) -> Option<HandshakeStep> {
        match (state, method) {
            (State::StartOk, connection::AMQPMethod::StartOk(start_ok)) => {
                let capabilities = client_capabilities(&start_ok.client_properties);
                let has = |name: &str| capabilities.iter().any(|c| c == name);
                let mechanism = start_ok.mechanism.as_str();
                // A mechanism Warren has but does not offer here (EXTERNAL on a plain connection, one left out of
                // auth_mechanisms) is refused as RabbitMQ 3.10 refuses it: logged, and the socket closed after
                // SILENT_CLOSE_DELAY without a frame (checked against a RabbitMQ with rabbitmq_auth_mechanism_ssl).
                if let Some(known) = Mechanism::from_name(mechanism) {
                    if !self.mechanisms().contains(&known) {
                        let peer = self.peer;
                        tracing::warn!(%peer, "closing AMQP connection {peer}: invalid authentication mechanism '{mechanism}'");
                        self.state = State::Finished;
                        return Some(HandshakeStep::Refused(Refusal {
                            reply: None,
                            then: AfterRefusal::Linger(SILENT_CLOSE_DELAY),
                        }));
                    }
                }
                let user = match login(
                    self.broker,
                    mechanism,
                    start_ok.response.as_bytes(),
                    self.peer,
                    self.tls.as_ref(),
                ) {
                    Ok(user) => user,
                    Err(error) => {
                        let props = &start_ok.client_properties;
                        self.login_event(error.user(), mechanism, Some(&error), props);
                        return Some(self.auth_failed(
                            mechanism,
                            &error,
                            has("authentication_failure_close"),
                        ));
                    }
                };
                self.login_event(&user, mechanism, None, &start_ok.client_properties);
                let limits = &self.broker.config.limits;
                let tune = connection::Tune {
                    channel_max: limits.channel_max,
                    frame_max: limits.frame_max,
                    heartbeat: limits.heartbeat,
                };
                let props = &start_ok.client_properties;
                self.state = State::TuneOk(Login {
                    user,
                    consumer_cancel_notify: has("consumer_cancel_notify"),
                    connection_blocked: has("connection.blocked"),
                    client_product: client_text(props, "product"),
                    client_version: client_text(props, "version"),
                    client_connection_name: client_text(props, "connection_name"),
                    auth_mechanism: Mechanism::from_name(mechanism).map_or("", |m| m.name()),
                    // Kept for connection.created and connection.closed only: an idle connection stays small.
                    client_properties: match self.broker.events.is_on() {
                        true => start_ok.client_properties,
                        false => FieldTable::default(),
                    },
                });
                Some(send(connection::AMQPMethod::Tune(tune)))
            }
            (State::TuneOk(login), connection::AMQPMethod::TuneOk(tune_ok)) => {
                match check_tune_ok(&self.broker.config.limits, &tune_ok) {
                    Ok(tuned) => {
                        self.splitter.set_frame_max(tuned.frame_max);
                        self.state = State::Open(login, tuned);
                        None
                    }
                    Err(error) => Some(self.refuse(error)),
                }
            }
            (State::Open(login, tuned), connection::AMQPMethod::Open(open)) => {
                let vhost = match self.open_vhost(&login.user, open.virtual_host.as_str()) {
                    Ok(vhost) => vhost,
                    Err(error) => return Some(self.refuse(error)),
                };
                self.state = State::Opened(Box::new(Negotiated {
                    user: login.user,
                    vhost,
                    frame_max: tuned.frame_max,
                    channel_max: tuned.channel_max,
                    heartbeat: tuned.heartbeat,
                    consumer_cancel_notify: login.consumer_cancel_notify,
                    connection_blocked: login.connection_blocked,
                    client_product: login.client_product,
                    client_version: login.client_version,
                    client_connection_name: login.client_connection_name,
                    client_properties: login.client_properties,
                    auth_mechanism: login.auth_mechanism,
                }));
                Some(send(connection::AMQPMethod::OpenOk(connection::OpenOk {})))
            }
            (_, other) => Some(self.refuse(unexpected(&other))),
        }
    }

    /// The vhost a connection.open names, if it exists and `user` may use it (530 on connection.open otherwise).
    /// The connection limits are checked first, in RabbitMQ's order: the node's, the vhost's, the user's.
    fn open_vhost(&self, user: &str, name: &str) -> Result<Arc<Vhost>, AmqpError> {
        let not_allowed =
            |text: String| AmqpError::new(ReplyCode::NotAllowed, text).on(ids::CONNECTION_OPEN);
        let connections = self.broker.connections();
        let node_max = self.broker.config.limits.max_connections;
        if node_max > 0 && connections.len() >= node_max {
            return Err(not_allowed(format!(
                "connection refused: node connection limit ({node_max}) is reached"
            )));
        }
        let Some(vhost) = self.broker.vhost(name) else {
            return Err(not_allowed(format!("vhost {name} not found")));
        };
        if let Some(max) = vhost.limit("max-connections") {
            if limits::reached(Some(max), connections.count(|c| c.vhost == name)) {
                return Err(not_allowed(format!(
                    "access to vhost '{name}' refused for user '{user}': connection limit ({max}) is reached"
                )));
            }
        }
        if let Some(max) = self.broker.access.user_limit(user, "max-connections") {
            if limits::reached(Some(max), connections.count(|c| c.user == user)) {
                return Err(not_allowed(format!(
                    "connection refused for user '{user}': user connection limit ({max}) is reached"
                )));
            }
        }
        // RabbitMQ's check_vhost_access: any permission in the vhost lets the user open it.
        if !self.broker.access.may_open(user, name) {
            return Err(auth::access::vhost_refused(user, name).on(ids::CONNECTION_OPEN));
        }
        Ok(vhost)
    }

    /// The next connection-class method on channel 0, skipping heartbeats; None if the buffer holds no whole frame.
    fn next_method(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<connection::AMQPMethod>, AmqpError> {
        loop {
            let Some(frame) = self.splitter.next_frame(buf)? else {
                return Ok(None);
            };
            match frame.kind {
                FrameKind::Heartbeat => continue,
                FrameKind::Method if frame.channel == 0 => {
                    return match decode_method(&frame.payload)? {
                        AMQPClass::Connection(method) => Ok(Some(method)),
                        other => Err(AmqpError::new(
                            ReplyCode::CommandInvalid,
                            "expected a connection method during the handshake",
                        )
                        .on_method(other.get_amqp_class_id(), other.get_amqp_method_id())),
                    }
                }
                _ => {
                    return Err(AmqpError::new(
                        ReplyCode::UnexpectedFrame,
                        "expected a method frame on channel 0 during the handshake",
                    ))
                }
            }
        }
    }

    /// Drops frames until connection.close-ok; an undecodable frame ends the wait as well.
    fn on_close_wait(&mut self, buf: &mut BytesMut) -> HandshakeStep {
        loop {
            match self.splitter.next_frame(buf) {
                Ok(Some(frame)) => {
                    if frame.kind == FrameKind::Method && frame.channel == 0 {
                        if let Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                            decode_method(&frame.payload)
                        {
                            return HandshakeStep::Closed;
                        }
                    }
                }
                Ok(None) => {
                    self.state = State::CloseOk;
                    return HandshakeStep::NeedMore;
                }
                Err(_) => return HandshakeStep::Closed,
            }
        }
    }

    /// Refuses the connection with connection.close, then waits for close-ok (during the handshake there is
    /// nothing else to wait for).
    fn refuse(&mut self, error: AmqpError) -> HandshakeStep {
        let peer = self.peer;
        tracing::warn!(%peer, "closing AMQP connection {peer}: {}", error.text);
        self.state = State::CloseOk;
        let close = connection::AMQPMethod::Close(connection::Close {
            reply_code: error.reply_code(),
            reply_text: error.short_text().into(),
            class_id: error.class_id,
            method_id: error.method_id,
        });
        HandshakeStep::Refused(Refusal {
            reply: Some(encode(close)),
            then: AfterRefusal::AwaitCloseOk(CLOSE_OK_WAIT),
        })
    }

    /// A failed login: 403 to a client that asked for `authentication_failure_close`, silence to any other.
    fn auth_failed(
        &mut self,
        mechanism: &str,
        error: &AuthError,
        close_frame: bool,
    ) -> HandshakeStep {
        let peer = self.peer;
        tracing::warn!(%peer, "closing AMQP connection {peer}: {error}");
        if close_frame {
            let err = AmqpError::access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            )); // RabbitMQ names no method here: class and method ids 0.
            return self.refuse(err);
        }
        HandshakeStep::Refused(Refusal {
            reply: None,
            then: AfterRefusal::Linger(AUTH_FAILURE_DELAY),
        })
    }
}

/// The one place the handshake calls into `auth`, so that a change of its signature touches one line.
fn login(
    broker: &Broker,
    mechanism: &str,
    response: &[u8],
    peer: SocketAddr,
    tls: Option<&TlsPeer>,
) -> Result<String, AuthError> {
    let loopback_users = &broker.config.auth.loopback_users;
    if mechanism == Mechanism::External.name() {
        let certificate = tls.and_then(|tls| tls.certificate.as_deref());
        return auth::external::authenticate(
            &broker.access,
            loopback_users,
            &broker.config.sasl,
            certificate,
            peer.ip(),
        );
    }
    auth::authenticate(
        &broker.access,
        loopback_users,
        mechanism,
        response,
        peer.ip(),
    )
}

fn unexpected(method: &connection::AMQPMethod) -> AmqpError {
    let class = AMQPClass::Connection(method.clone());
    AmqpError::new(
        ReplyCode::CommandInvalid,
        "unexpected method during the handshake",
    )
    .on_method(class.get_amqp_class_id(), class.get_amqp_method_id())
}

fn encode(method: connection::AMQPMethod) -> Bytes {
    let mut out = BytesMut::new();
    put_method(&mut out, 0, AMQPClass::Connection(method));
    out.freeze()
}

fn send(method: connection::AMQPMethod) -> HandshakeStep {
    HandshakeStep::Send(encode(method))
}
