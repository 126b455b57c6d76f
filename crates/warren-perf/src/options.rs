//! The command line of `warren perf`, named after RabbitMQ PerfTest's options (long and short) where one exists,
//! and its validation into a [`Plan`]: who publishes where, who consumes what, when to stop.

use std::time::Duration;

use clap::{Args, Parser};

use super::uri::AmqpUri;
use super::PerfError;
use warren_protocol::{AMQPValue, FieldTable, ShortString};

pub(crate) const DEFAULT_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The body carries a producer id, a sequence number and a send timestamp: 16 bytes (see `body.rs`).
pub(crate) const MIN_SIZE: usize = 16;
/// RabbitMQ's largest accepted message (`max_message_size`).
pub(crate) const MAX_SIZE: usize = 128 << 20;
/// Exchange declared for `--queues N` when `--exchange` is not given.
pub(crate) const FANOUT_EXCHANGE: &str = "warren-perf-fanout";
/// Routing key when publishing to a named exchange without `--routing-key`.
pub(crate) const DEFAULT_ROUTING_KEY: &str = "warren-perf";

/// Measure an AMQP 0-9-1 broker: publish and consume as fast as it allows (or at a set rate) and report
/// throughput, confirm latency, end-to-end latency and whether every message arrived exactly once.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct PerfArgs {
    /// Broker to measure: amqp://user:pass@host:port/vhost (vhost percent-encoded, %2f is "/"), or amqps://
    /// for AMQP over TLS (port 5671 by default; needs --ca-cert)
    #[arg(long, default_value = DEFAULT_URI)]
    pub uri: String,

    /// With an amqps:// URI: the CA certificates (PEM) the broker's certificate must chain to
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Number of publishing channels
    #[arg(long, short = 'x', default_value_t = 1)]
    pub producers: usize,

    /// Number of consuming channels [default: one per queue]
    #[arg(long, short = 'y')]
    pub consumers: Option<usize>,

    /// Message body size in bytes (at least 16: producer id, sequence number and send timestamp)
    #[arg(long, short = 's', default_value_t = MIN_SIZE, value_parser = parse_size)]
    pub size: usize,

    /// Stop publishing after this many seconds (consumers then drain what is left)
    #[arg(long, short = 'z', value_parser = clap::value_parser!(u64).range(1..))]
    pub time: Option<u64>,

    /// Stop each producer after this many messages
    #[arg(long, short = 'C', value_parser = clap::value_parser!(u64).range(1..))]
    pub pmessages: Option<u64>,

    /// With no producers: stop once the consumers have received this many messages in all (draining a backlog)
    #[arg(long, short = 'D', value_parser = clap::value_parser!(u64).range(1..))]
    pub cmessages: Option<u64>,

    /// Messages per second per producer; 0 is as fast as the broker takes them
    #[arg(long, short = 'r', default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Deliveries each consumer processes per second at most (a slow application): it reads what the broker
    /// sends, but counts, measures and acks each only when its budget allows; behind it, it stops reading
    #[arg(long, short = 'R', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub consumer_rate: Option<u32>,

    /// Publisher confirms with at most N unconfirmed messages per producer; 0 disables confirms
    #[arg(long, short = 'c', default_value_t = 0)]
    pub confirm: usize,

    /// Publish with delivery-mode 2 (persistent); pair with --durable-queue
    #[arg(long, short = 'f')]
    pub persistent: bool,

    /// Consume with no-ack (the broker considers a message delivered once it is sent)
    #[arg(long, short = 'a')]
    pub autoack: bool,

    /// Acknowledge every N deliveries with one basic.ack multiple=true (1 acks each message singly)
    #[arg(long, short = 'A', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub multi_ack_every: u32,

    /// Prefetch count per consumer (basic.qos); 0 is unlimited
    #[arg(long, short = 'q', default_value_t = 0)]
    pub qos: u16,

    /// Queue name [default: a server-named queue per consumer group]; with --queues N, NAME-1 .. NAME-N
    #[arg(long, short = 'u')]
    pub queue: Option<String>,

    /// Queue arguments as k=v,k=v (integers, true/false and strings), e.g. x-max-length=1000,x-queue-type=quorum
    #[arg(long, value_parser = parse_queue_args)]
    pub queue_args: Option<QueueArgs>,

    /// Exchange to publish to [default: the default exchange "", or warren-perf-fanout with --queues N]
    #[arg(long, short = 'e')]
    pub exchange: Option<String>,

    /// Type of the exchange to declare [default: direct, or fanout with --queues N]
    #[arg(long, short = 't')]
    pub exchange_type: Option<String>,

    /// Routing key [default: the queue name on the default exchange, "warren-perf" otherwise]
    #[arg(long, short = 'k')]
    pub routing_key: Option<String>,

    /// Fan-out: N queues bound to a fanout exchange, each consumed by its own consumer(s)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub queues: u64,

    /// With --queues N: producer i publishes only to queue (i mod N) through the default exchange, instead of to
    /// all N through a fanout exchange (4 producers, 4 consumers, 4 queues: a producer/consumer pair per queue)
    #[arg(long, conflicts_with_all = ["exchange", "exchange_type", "routing_key"])]
    pub spread: bool,

    /// Declare durable queues
    #[arg(long)]
    pub durable_queue: bool,

    /// One connection per producer and per consumer, each with one channel (the default)
    #[arg(long, conflicts_with = "shared_connection")]
    pub connections_per_channel: bool,

    /// All producers and consumers on one connection, a channel each
    #[arg(long)]
    pub shared_connection: bool,

    /// Declare nothing: the exchange and --queue already exist
    #[arg(long, short = 'p')]
    pub predeclared: bool,

    /// Print the final summary as one JSON line on stdout (progress goes to stderr)
    #[arg(long)]
    pub json: bool,

    /// Only open N connections with one channel each and hold them for --time seconds (memory tests)
    #[arg(long, default_value_t = 0)]
    pub idle_connections: usize,

    /// Linux: sample the broker's resident memory (VmRSS in /proc/PID/status) every 100 ms and report its peak
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub broker_pid: Option<u32>,

    /// Threads the tool runs its producers and consumers on (default: one per core). For latency at a low rate,
    /// 1 keeps the tool's own thread hand-offs out of what it measures
    #[arg(long)]
    pub threads: Option<usize>,

    /// Request/reply over direct reply-to with N requests in flight per requester: producers are requesters
    /// (replies consumed from amq.rabbitmq.reply-to), consumers are responders; reports round trips per second
    /// and round-trip latency instead of the publish/consume summary
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rpc: Option<u32>,
}

/// The command line of `warren perf` alone, for tests and for [`PerfArgs::from_args`].
#[derive(Parser, Debug)]
#[command(name = "warren perf")]
struct PerfCommand {
    #[command(flatten)]
    args: PerfArgs,
}

impl PerfArgs {
    /// Parses options as they follow `warren perf` on a command line.
    pub fn from_args<I, S>(args: I) -> Result<PerfArgs, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("perf"))
            .chain(args.into_iter().map(Into::into));
        PerfCommand::try_parse_from(argv).map(|c| c.args)
    }
}

impl Default for PerfArgs {
    fn default() -> PerfArgs {
        PerfArgs::from_args(std::iter::empty::<&str>())
            .unwrap_or_else(|e| unreachable!("the empty command line is valid: {e}"))
    }
}

/// `--queue-args`, parsed into an AMQP field table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueArgs(
    /// The arguments queue.declare carries.
    pub FieldTable,
);

fn parse_size(s: &str) -> Result<usize, String> {
    let size: usize = s.parse().map_err(|e| format!("{e}"))?;
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(format!("must be between {MIN_SIZE} and {MAX_SIZE} bytes"));
    }
    Ok(size)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err("must be a number of messages per second, 0 or more".to_owned());
    }
    Ok(rate)
}

fn parse_queue_args(s: &str) -> Result<QueueArgs, String> {
    let mut table = FieldTable::default();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not key=value"));
        };
        let key = ShortString::try_new(key.trim()).map_err(|e| format!("{e}"))?;
        let value = value.trim();
        let value = if let Ok(n) = value.parse::<i64>() {
            AMQPValue::LongLongInt(n)
        } else if value == "true" || value == "false" {
            AMQPValue::Boolean(value == "true")
        } else {
            AMQPValue::LongString(value.into())
        };
        table.insert(key, value);
    }
    Ok(QueueArgs(table))
}

/// What a consumer group reads: one queue, named now or by the server at declare time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueuePlan {
    /// Empty for a server-named queue.
    pub name: String,
}

/// The validated options.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub uri: AmqpUri,
    pub producers: usize,
    pub consumers: usize,
    pub size: usize,
    pub time: Option<Duration>,
    pub pmessages: Option<u64>,
    pub cmessages: Option<u64>,
    pub rate: Option<f64>,
    /// `--consumer-rate`: deliveries each consumer processes per second at most.
    pub consumer_rate: Option<u32>,
    pub confirm: Option<usize>,
    pub persistent: bool,
    pub autoack: bool,
    pub multi_ack_every: u32,
    pub qos: u16,
    /// One per consumer group; empty when nobody consumes and no queue was named.
    pub queues: Vec<QueuePlan>,
    pub queue_args: FieldTable,
    pub exchange: String,
    pub exchange_type: String,
    /// `None`: the (single) queue's name, known once it is declared.
    pub routing_key: Option<String>,
    /// `--spread`: each producer publishes to one queue (see [`Plan::producer_queue`]).
    pub spread: bool,
    pub durable_queue: bool,
    pub shared_connection: bool,
    pub predeclared: bool,
    pub json: bool,
    pub idle_connections: usize,
    pub broker_pid: Option<u32>,
}

impl Plan {
    pub(crate) fn new(args: &PerfArgs) -> Result<Plan, PerfError> {
        let invalid = |text: String| Err(PerfError::InvalidOptions(text));
        let mut uri = AmqpUri::parse(&args.uri)?;
        match (uri.tls, &args.ca_cert) {
            (true, None) => {
                return invalid("an amqps:// URI needs --ca-cert FILE (the CA that signed the broker's certificate)".to_owned())
            }
            (false, Some(_)) => return invalid("--ca-cert is for amqps:// URIs".to_owned()),
            _ => uri.ca_cert = args.ca_cert.clone(),
        }
        let groups = args.queues as usize;
        let consumers = args.consumers.unwrap_or(groups);
        if args.producers > usize::from(u16::MAX) {
            return invalid(format!("at most {} producers", u16::MAX));
        }
        if consumers > 0 && consumers < groups {
            return invalid(format!(
                "{groups} queues need at least {groups} consumers, one each (or --consumers 0)"
            ));
        }
        if args.consumer_rate.is_some() && args.idle_connections > 0 {
            return invalid(
                "--consumer-rate cannot be combined with --idle-connections: idle connections consume nothing"
                    .to_owned(),
            );
        }
        if args.consumer_rate.is_some() && consumers == 0 {
            return invalid(
                "--consumer-rate paces consumers, but --consumers 0 runs none".to_owned(),
            );
        }
        if args.shared_connection && args.producers + consumers > 2047 {
            return invalid("a shared connection holds at most 2047 channels".to_owned());
        }
        for (what, name) in [
            ("--queue", &args.queue),
            ("--exchange", &args.exchange),
            ("--exchange-type", &args.exchange_type),
            ("--routing-key", &args.routing_key),
        ] {
            if name.as_ref().is_some_and(|n| n.len() > 240) {
                return invalid(format!("{what} must be at most 240 bytes"));
            }
        }
        let exchange = match &args.exchange {
            Some(name) => name.clone(),
            None if groups > 1 && !args.spread => FANOUT_EXCHANGE.to_owned(),
            None => String::new(),
        };
        if exchange.is_empty() && groups > 1 && !args.spread {
            return invalid("--queues N needs an exchange to bind N queues to".to_owned());
        }
        let exchange_type = match &args.exchange_type {
            Some(kind) => kind.clone(),
            None if groups > 1 => "fanout".to_owned(),
            None => "direct".to_owned(),
        };
        let declare_queues = consumers > 0 || args.queue.is_some();
        let queues = if !declare_queues {
            Vec::new()
        } else {
            (1..=groups)
                .map(|i| QueuePlan {
                    name: match &args.queue {
                        Some(name) if groups == 1 => name.clone(),
                        Some(name) => format!("{name}-{i}"),
                        None => String::new(),
                    },
                })
                .collect()
        };
        if args.spread && queues.is_empty() {
            return invalid("--spread needs queues to publish to: consumers or --queue".to_owned());
        }
        if args.predeclared && queues.iter().any(|q| q.name.is_empty()) {
            return invalid(
                "--predeclared needs --queue: a server-named queue must be declared".to_owned(),
            );
        }
        let routing_key = match &args.routing_key {
            Some(key) => Some(key.clone()),
            None if exchange.is_empty() && !queues.is_empty() => None,
            None => Some(DEFAULT_ROUTING_KEY.to_owned()),
        };
        Ok(Plan {
            uri,
            producers: args.producers,
            consumers,
            size: args.size,
            time: args.time.map(Duration::from_secs),
            pmessages: args.pmessages,
            cmessages: args.cmessages,
            rate: (args.rate > 0.0).then_some(args.rate),
            consumer_rate: args.consumer_rate,
            confirm: (args.confirm > 0).then_some(args.confirm),
            persistent: args.persistent,
            autoack: args.autoack,
            multi_ack_every: args.multi_ack_every,
            qos: args.qos,
            queues,
            queue_args: args.queue_args.clone().unwrap_or_default().0,
            exchange,
            exchange_type,
            routing_key,
            spread: args.spread,
            durable_queue: args.durable_queue,
            shared_connection: args.shared_connection,
            predeclared: args.predeclared,
            json: args.json,
            idle_connections: args.idle_connections,
            broker_pid: args.broker_pid,
        })
    }

    /// The one queue (consumer group) producer `id` publishes to with `--spread`; `None` when every producer's
    /// messages reach every queue.
    pub(crate) fn producer_queue(&self, id: usize) -> Option<usize> {
        self.spread.then(|| id % self.queues.len().max(1))
    }

    /// Deliveries a consumer takes before it acks them all with one basic.ack multiple=true: every
    /// `--multi-ack-every`, but never more than the prefetch allows, or the consumer would wait forever.
    pub(crate) fn ack_every(&self) -> u32 {
        if self.qos == 0 {
            self.multi_ack_every
        } else {
            self.multi_ack_every.min(u32::from(self.qos))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, PerfError> {
        Plan::new(&PerfArgs::from_args(args).expect("options parse"))
    }

    #[test]
    fn defaults_are_one_producer_one_consumer_on_a_server_named_queue() {
        let args = PerfArgs::default();
        assert_eq!(args.uri, DEFAULT_URI);
        assert_eq!(args.size, 16);
        let plan = Plan::new(&args).expect("valid");
        assert_eq!((plan.producers, plan.consumers), (1, 1));
        assert_eq!(
            plan.queues,
            vec![QueuePlan {
                name: String::new()
            }]
        );
        assert_eq!(plan.exchange, "");
        assert_eq!(plan.routing_key, None);
        assert_eq!(plan.confirm, None);
        assert_eq!(plan.rate, None);
        assert_eq!(plan.time, None);
    }

    #[test]
    fn perftest_short_options_are_accepted() {
        let args = PerfArgs::from_args([
            "-x", "2", "-y", "3", "-s", "1024", "-z", "10", "-C", "500", "-r", "100", "-c", "50",
            "-f", "-a", "-A", "10", "-q", "100", "-u", "q", "-e", "ex", "-t", "topic", "-k", "a.b",
            "-p",
        ])
        .expect("parses");
        assert_eq!((args.producers, args.consumers), (2, Some(3)));
        assert_eq!(
            (args.size, args.time, args.pmessages),
            (1024, Some(10), Some(500))
        );
        assert_eq!(
            (args.rate, args.confirm, args.multi_ack_every, args.qos),
            (100.0, 50, 10, 100)
        );
        assert!(args.persistent && args.autoack && args.predeclared);
        assert_eq!(args.queue.as_deref(), Some("q"));
        assert_eq!(args.exchange_type.as_deref(), Some("topic"));
        assert_eq!(args.routing_key.as_deref(), Some("a.b"));
    }

    #[test]
    fn bad_values_are_refused_by_the_parser() {
        for bad in [
            &["--size", "15"][..],
            &["--size", "abc"],
            &["--rate", "-1"],
            &["--rate", "NaN"],
            &["--time", "0"],
            &["--multi-ack-every", "0"],
            &["--queues", "0"],
            &["--queue-args", "x-max-length"],
            &["--shared-connection", "--connections-per-channel"],
            &["--unknown"],
        ] {
            assert!(PerfArgs::from_args(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn queue_args_are_typed() {
        let args = PerfArgs::from_args([
            "--queue-args",
            "x-max-length=10,x-queue-type=quorum,x-single-active-consumer=true",
        ])
        .expect("parses");
        let table = args.queue_args.expect("given").0;
        let get = |k: &str| table.inner().get(k).cloned();
        assert_eq!(get("x-max-length"), Some(AMQPValue::LongLongInt(10)));
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            get("x-single-active-consumer"),
            Some(AMQPValue::Boolean(true))
        );
    }

    #[test]
    fn fan_out_binds_numbered_queues_to_a_fanout_exchange() {
        let plan = plan(&["--queues", "3", "--queue", "perf"]).expect("valid");
        assert_eq!(plan.consumers, 3);
        assert_eq!(plan.exchange, FANOUT_EXCHANGE);
        assert_eq!(plan.exchange_type, "fanout");
        let names: Vec<_> = plan.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["perf-1", "perf-2", "perf-3"]);
        assert_eq!(plan.routing_key.as_deref(), Some(DEFAULT_ROUTING_KEY));
    }

    #[test]
    fn inconsistent_plans_are_refused() {
        assert!(plan(&["--queues", "3", "--consumers", "2"]).is_err());
        assert!(plan(&["--queues", "2", "--exchange", ""]).is_err());
        assert!(plan(&["--predeclared"]).is_err());
        assert!(plan(&["--uri", "http://localhost"]).is_err());
        assert!(plan(&["--producers", "70000"]).is_err());
    }

    #[test]
    fn spread_gives_each_producer_one_queue_on_the_default_exchange() {
        let args: Vec<_> = "--queues 4 --queue p --producers 5 --spread"
            .split(' ')
            .collect();
        let spread = plan(&args).expect("valid");
        assert_eq!(spread.exchange, "");
        assert_eq!(spread.routing_key, None);
        assert_eq!(spread.consumers, 4);
        let targets: Vec<_> = (0..5).map(|id| spread.producer_queue(id)).collect();
        assert_eq!(targets, [Some(0), Some(1), Some(2), Some(3), Some(0)]);
        let fan_out = plan(&["--queues", "4"]).expect("valid");
        assert_eq!(fan_out.producer_queue(1), None);
        assert!(PerfArgs::from_args(["--spread", "--exchange", "x"]).is_err());
        assert!(plan(&["--spread", "--consumers", "0"]).is_err());
    }

    #[test]
    fn publish_only_declares_no_queue() {
        let plan = plan(&["--consumers", "0"]).expect("valid");
        assert!(plan.queues.is_empty());
        assert_eq!(plan.routing_key.as_deref(), Some(DEFAULT_ROUTING_KEY));
    }

    #[test]
    fn consumer_rate_needs_consumers_and_at_least_one_per_second() {
        let paced = plan(&["--consumer-rate", "200", "--qos", "50"]).expect("valid");
        assert_eq!(paced.consumer_rate, Some(200));
        assert_eq!(
            plan(&["-R", "5", "--autoack"])
                .expect("valid")
                .consumer_rate,
            Some(5)
        );
        assert_eq!(
            Plan::new(&PerfArgs::default())
                .expect("valid")
                .consumer_rate,
            None
        );
        assert!(PerfArgs::from_args(["--consumer-rate", "0"]).is_err());
        assert!(PerfArgs::from_args(["--consumer-rate", "1.5"]).is_err());
        for refused in [
            &["--consumer-rate", "10", "--consumers", "0"][..],
            &["--consumer-rate", "10", "--idle-connections", "3"],
        ] {
            match plan(refused) {
                Err(PerfError::InvalidOptions(text)) => {
                    assert!(text.contains("--consumer-rate"), "{text}")
                }
                other => panic!("{refused:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn acks_never_wait_for_more_than_the_prefetch() {
        let plan = plan(&["--multi-ack-every", "500", "--qos", "100"]).expect("valid");
        assert_eq!(plan.ack_every(), 100);
        let plan = Plan::new(&PerfArgs::default()).expect("valid");
        assert_eq!(plan.ack_every(), 1);
    }
}
