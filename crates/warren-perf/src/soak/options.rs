//! The command line of `warren soak` ([`SoakArgs`]) and its validation into a [`SoakPlan`]: the URI parsed, the
//! loopback source addresses chosen, the rates turned into intervals.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::{Args, Parser};

use super::super::uri::AmqpUri;
use super::super::PerfError;

const DEFAULT_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Options of `warren soak`: thousands of idle connections with heartbeats, connection and queue churn, a steady
/// producer/consumer pair measuring latency, slow and stalled consumers, for a set time, with a report line each
/// interval.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// The broker, as an amqp:// URI
    #[arg(long, default_value = DEFAULT_URI)]
    pub uri: String,

    /// How long the load runs once the idle connections are open, in seconds
    #[arg(long, short = 'z', default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub time: u64,

    /// Connections opened at the start and held, each with one channel, doing nothing but heartbeats
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,

    /// The heartbeat interval every connection asks for, in seconds (the lower of this and the broker's
    /// proposal; 0 for none)
    #[arg(long, default_value_t = 10)]
    pub heartbeat: u16,

    /// Spread connections over this many loopback source addresses, 127.0.0.1 to 127.0.0.N, when the broker is
    /// on an IPv4 loopback address (each has its own ephemeral port range); 1 binds nothing
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addresses: u8,

    /// How many idle connections are being opened at once
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub open_concurrency: u32,

    /// Connections opened (with a channel) and closed again per second
    #[arg(long, default_value_t = 10.0)]
    pub connection_churn: f64,

    /// Queues declared and deleted per second (every other one durable), on one connection
    #[arg(long, default_value_t = 10.0)]
    pub queue_churn: f64,

    /// Messages per second of the steady producer/consumer pair whose end-to-end latency is reported
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Consumers that take a delivery, wait --slow-delay-ms, then ack it, one at a time
    #[arg(long, default_value_t = 2)]
    pub slow_consumers: usize,

    /// How long a slow consumer works on each delivery before acking it, in milliseconds
    #[arg(long, default_value_t = 200)]
    pub slow_delay_ms: u64,

    /// The slow consumers' prefetch (unacked deliveries each may hold)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub slow_prefetch: u16,

    /// Consumers that consume without a prefetch limit and then stop reading and writing their socket
    /// (no heartbeats either) for --stall-secs; then they look whether the broker let them go, and start over
    #[arg(long, default_value_t = 1)]
    pub stalled_consumers: usize,

    /// How long a stalled consumer stays silent, in seconds
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_secs: u64,

    /// Messages per second published to the slow consumers' queue, and as many to the stalled consumers'
    #[arg(long, default_value_t = 20.0)]
    pub feed_rate: f64,

    /// Body size of the messages fed to slow and stalled consumers, in bytes (at least 16)
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub feed_size: u32,

    /// Seconds between report lines (and one at the end)
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub report_every: u64,

    /// Linux: report the broker's RSS and open file descriptors from /proc/PID (RabbitMQ: the beam.smp process)
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub broker_pid: Option<u32>,

    /// JSON lines on standard output (one per report, then the summary); the human lines go to standard error
    #[arg(long)]
    pub json: bool,
}

/// The command line of `warren soak` alone, for tests and for [`SoakArgs::from_args`].
#[derive(Parser, Debug)]
#[command(name = "warren soak")]
struct SoakCommand {
    #[command(flatten)]
    args: SoakArgs,
}

impl SoakArgs {
    /// Parses options as they follow `warren soak` on a command line.
    pub fn from_args<I, S>(args: I) -> Result<SoakArgs, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("soak"))
            .chain(args.into_iter().map(Into::into));
        SoakCommand::try_parse_from(argv).map(|c| c.args)
    }
}

/// What a run does, validated.
#[derive(Clone, Debug)]
pub(crate) struct SoakPlan {
    pub uri: AmqpUri,
    pub time: Duration,
    pub idle_connections: usize,
    pub heartbeat: u16,
    /// Source addresses to bind, used round robin; empty binds nothing.
    pub sources: Vec<IpAddr>,
    pub open_concurrency: usize,
    /// `None` when the rate is 0.
    pub connection_churn: Option<Duration>,
    pub queue_churn: Option<Duration>,
    pub steady_every: Option<Duration>,
    pub slow_consumers: usize,
    pub slow_delay: Duration,
    pub slow_prefetch: u16,
    pub stalled_consumers: usize,
    pub stall: Duration,
    pub feed_every: Option<Duration>,
    pub feed_size: usize,
    pub report_every: Duration,
    pub broker_pid: Option<u32>,
    pub json: bool,
    /// Prefix of every queue this run declares, so runs never see each other's queues.
    pub prefix: String,
}

impl SoakPlan {
    /// Validates `args` and resolves the broker's address to choose the source addresses.
    pub(crate) async fn new(args: &SoakArgs) -> Result<SoakPlan, PerfError> {
        let uri = AmqpUri::parse(&args.uri)?;
        if uri.tls {
            // The soak's links are driven by socket readiness, which a TLS stream does not offer.
            return Err(PerfError::InvalidOptions(
                "warren soak does not run over TLS (amqps://)".to_owned(),
            ));
        }
        let loopback_v4 = tokio::net::lookup_host(&uri.address)
            .await
            .map_err(|source| PerfError::Connect {
                address: uri.address.clone(),
                source,
            })?
            .any(|a| matches!(a.ip(), IpAddr::V4(ip) if ip.is_loopback()));
        let sources = if loopback_v4 && args.source_addresses > 1 {
            (1..=args.source_addresses)
                .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(SoakPlan {
            uri,
            time: Duration::from_secs(args.time),
            idle_connections: args.idle_connections,
            heartbeat: args.heartbeat,
            sources,
            open_concurrency: args.open_concurrency as usize,
            connection_churn: every("--connection-churn", args.connection_churn)?,
            queue_churn: every("--queue-churn", args.queue_churn)?,
            steady_every: every("--rate", args.rate)?,
            slow_consumers: args.slow_consumers,
            slow_delay: Duration::from_millis(args.slow_delay_ms),
            slow_prefetch: args.slow_prefetch,
            stalled_consumers: args.stalled_consumers,
            stall: Duration::from_secs(args.stall_secs),
            feed_every: every("--feed-rate", args.feed_rate)?,
            feed_size: args.feed_size as usize,
            report_every: Duration::from_secs(args.report_every),
            broker_pid: args.broker_pid,
            json: args.json,
            prefix: format!(
                "soak-{}-{:06x}",
                std::process::id(),
                (super::super::body::now_ns() / 1000) & 0xff_ffff
            ),
        })
    }

    /// The source address of the `n`-th connection opened; `None` when not spreading.
    pub(crate) fn source(&self, n: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[n % self.sources.len()])
    }

    /// The heartbeat to ask for: `Some(0)` asks for none.
    pub(crate) fn dial(&self, n: usize) -> super::super::client::Dial {
        super::super::client::Dial {
            source: self.source(n),
            heartbeat: Some(self.heartbeat),
        }
    }

    /// File descriptors the tool needs at most: every idle connection, the churn in flight, the pair, the
    /// feeders and the consumers, and a margin for the runtime.
    pub(crate) fn fds_needed(&self) -> u64 {
        (self.idle_connections
            + self.open_concurrency
            + super::churn::CHURN_IN_FLIGHT
            + self.slow_consumers
            + self.stalled_consumers
            + 64) as u64
    }
}

/// The interval between events at `rate` per second; `None` for 0.
fn every(flag: &str, rate: f64) -> Result<Option<Duration>, PerfError> {
    if !rate.is_finite() || rate < 0.0 {
        return Err(PerfError::InvalidOptions(format!(
            "{flag} must be a rate of 0 or more per second, not {rate}"
        )));
    }
    if rate == 0.0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs_f64(1.0 / rate.min(1_000_000.0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn defaults_are_the_full_soak_spread_over_loopback() {
        let args = SoakArgs::from_args(std::iter::empty::<&str>()).expect("defaults parse");
        let plan = SoakPlan::new(&args).await.expect("valid");
        assert_eq!(plan.idle_connections, 10_000);
        assert_eq!(plan.heartbeat, 10);
        assert_eq!(plan.sources.len(), 16);
        assert_eq!(
            plan.source(0),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
        );
        assert_eq!(
            plan.source(17),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        );
        assert_eq!(plan.steady_every, Some(Duration::from_millis(10)));
        assert!(plan.prefix.starts_with("soak-"));
    }

    #[tokio::test]
    async fn zero_rates_turn_a_load_off_and_bad_ones_are_refused() {
        let args =
            SoakArgs::from_args(["--queue-churn", "0", "--source-addresses", "1"]).expect("parses");
        let plan = SoakPlan::new(&args).await.expect("valid");
        assert_eq!(plan.queue_churn, None);
        assert_eq!(plan.source(3), None);
        let args = SoakArgs::from_args(["--rate=-1"]).expect("parses");
        assert!(SoakPlan::new(&args).await.is_err());
        assert!(SoakArgs::from_args(["--feed-size", "8"]).is_err());
    }
}
