//! Warren: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
//!
//! The flow of a message, and the module that owns each step (see docs/architecture.md):
//! - [`server`] accepts sockets; [`connection`] runs the handshake, a reader task and a writer task per connection;
//! - `warren_protocol` (its own crate) splits and encodes frames (the only user of amq-protocol);
//! - [`channel`] is the per-channel state machine: publish, consume, acks, confirms, transactions;
//! - [`vhost`] holds exchanges and queues and routes messages, with the binding tables of [`exchange`];
//! - [`queue`] runs one actor task per queue, delivering through the `DeliverySink` trait it owns;
//! - [`delayed`] holds the messages of `x-delayed-message` exchanges until due (one timer task per exchange);
//! - [`session`] holds what a connection's channels and the queues delivering to them share (outbound bytes,
//!   confirms);
//! - [`config`], [`cli`], [`auth`] and [`broker`] set it all up; [`registry`] lists and closes live connections;
//!   [`definitions`] imports and exports RabbitMQ definitions JSON; [`management`] serves RabbitMQ's management
//!   HTTP API over them;
//! - [`ctl`] is `warren ctl` (and `warrenctl`): rabbitmqctl's commands, as a client of a node's management API;
//! - `warren_store` (its own crate) is the message store; `warren_perf` (its own crate) is `warren perf`.
//!
//! Imports run one way: connection -> channel -> (vhost, exchange) -> queue -> store, with `session`, `message` and
//! `config` below them all; a queue names no channel or connection, and `auth` names no broker.

pub(crate) mod alarm;
pub mod auth;
pub mod broker;
pub(crate) mod channel;
pub mod cli;
pub mod cluster;
pub mod config;
pub(crate) mod connection;
pub mod ctl;
pub mod definitions;
pub(crate) mod delayed;
pub(crate) mod event;
pub(crate) mod exchange;
pub mod federation;
pub(crate) mod management;
pub mod memory_release;
pub(crate) mod message;
pub(crate) mod meta;
pub(crate) mod metrics;
pub(crate) mod policy;
pub(crate) mod queue;
pub mod registry;
pub(crate) mod reply_to;
pub mod server;
pub(crate) mod session;
pub mod shovel;
pub(crate) mod vhost;

/// Makes rustls's ring provider the process's default crypto provider, unless one is set already. Every HTTP client
/// in Warren (reqwest: the inter-node client, `warren ctl`) builds its TLS with the process's provider; Warren
/// ships ring only (no aws-lc). Called at start by the binaries, [`server::Server`] and [`ctl::run`]; calling it again does
/// nothing.
pub fn install_crypto_provider() {
    // Err: a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
