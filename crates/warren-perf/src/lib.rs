//! `warren perf`: a load generator for any AMQP 0-9-1 broker, in the spirit of RabbitMQ PerfTest. It is a lean
//! client on Warren's own [`warren_protocol`] (hand-encoded publishes and acks, a zero-allocation deliver decoder)
//! so that it is not the bottleneck when it measures a broker moving hundreds of thousands of messages a second.
//!
//! - `options`: the command line ([`PerfArgs`]) and its validation into a plan; `uri`: `amqp://` URIs;
//! - `declarations` declares the exchange, queues and bindings; `setup` opens the producer and consumer
//!   connections;
//! - `driver`: one task per connection runs its producers and consumers (`producer`, `consumer`) without
//!   awaiting per message; `pace`: when a slow consumer (`--consumer-rate`) may process; `turn`: what the driver hands them each turn (the phase, the output buffer), so the
//!   handlers never import the driver;
//! - `body`: the stamp in each message (producer, sequence number, send time); `loss`: who received what;
//! - `stats`, `histogram`, `report`: figures, once-a-second lines and the final [`Summary`]; `broker_memory`: the
//!   broker's RSS sampled from `/proc` (`--broker-pid`);
//! - `run`: the coordinator that starts, stops, drains and checks.
//!
//! - [`soak`]: `warren soak`, the long run with thousands of idle connections, churn, slow and stalled consumers,
//!   on the same client.
//!
//! Only [`run`], [`run_until`], their options and their [`Summary`], and [`soak`]'s run, options and summary are
//! public: the broker's `warren perf` and `warren soak` commands and their tests need nothing else, so everything
//! behind them can change freely.

mod body;
mod broker_memory;
mod client;
mod consumer;
mod declarations;
mod driver;
mod histogram;
mod loss;
mod options;
mod pace;
mod producer;
mod report;
pub mod rpc;
mod run;
mod setup;
pub mod soak;
mod stats;
mod stream;
mod turn;
mod uri;

use std::future::Future;

pub use broker_memory::BrokerMemory;
pub use options::{PerfArgs, QueueArgs};
pub use report::{ConsumeWindow, Latency, LossCheck, Summary};

/// Why a run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    /// The options contradict each other or a value is out of range.
    #[error("{0}")]
    InvalidOptions(String),
    /// The TCP connection to the broker failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The host and port from the URI.
        address: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A socket error after connecting.
    #[error("connection error: {0}")]
    Io(std::io::Error),
    /// The broker closed the socket.
    #[error("{0}")]
    Closed(String),
    /// The broker refused a setup step with channel.close or connection.close.
    #[error("the broker refused: {code} {text}")]
    Refused {
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The broker sent something this client cannot follow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker did not answer a setup step in time.
    #[error("{0}")]
    Timeout(String),
}

/// Runs the load described by `args` until it is done (`--pmessages`, `--time`), printing a line per second.
/// The summary says whether every confirmed message arrived exactly once; errors during the run are in it too.
pub async fn run(args: &PerfArgs) -> Result<Summary, PerfError> {
    run_until(args, std::future::pending()).await
}

/// As [`run`], but `interrupt` completing (Ctrl-C) stops the producers early; consumers then drain as usual.
pub async fn run_until(
    args: &PerfArgs,
    interrupt: impl Future<Output = ()>,
) -> Result<Summary, PerfError> {
    let plan = options::Plan::new(args)?;
    run::run(&plan, interrupt).await
}
