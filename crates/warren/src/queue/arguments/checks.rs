//! RabbitMQ 3.13's per-argument checks for queue.declare (`rabbit_amqqueue:declare_args/0` and its `check_*_arg`
//! functions), which arguments each queue type takes (`capabilities/0` of `rabbit_classic_queue`,
//! `rabbit_quorum_queue` and `rabbit_stream_queue`), and each refusal printed as RabbitMQ prints the Erlang term
//! (`~p`), so a client sees the same reply text.

use std::fmt;

use warren_protocol::{AMQPValue, FieldTable};

/// Longest x-message-ttl and x-expires RabbitMQ accepts: ten years in milliseconds (`rabbit_misc:check_expiry/1`).
pub(super) const MAX_EXPIRY_MS: i64 = 315_360_000_000;

/// Highest x-max-priority (`?MAX_SUPPORTED_PRIORITY` in rabbit.hrl).
pub(super) const MAX_PRIORITY: i64 = 255;

/// Why RabbitMQ refuses one argument: the Erlang term that follows "invalid arg 'x-…' for queue 'q' in vhost
/// '/': " in its reply text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `{unacceptable_type,longstr}`: a boolean or string argument given a value of another AMQP type.
    UnacceptableType(&'static str),
    /// `"expected integer, got longstr"`: an integer argument given a non-integer (`check_int_arg`).
    ExpectedInteger(&'static str),
    /// `{value_negative,-1}`.
    ValueNegative(i64),
    /// `{value_zero,0}`: x-expires and the initial cluster sizes must be positive.
    ValueZero,
    /// `{value_too_large,N}`: a TTL or expiry over ten years.
    ValueTooLarge(i64),
    /// `{max_value_exceeded,N}`: x-max-priority over 255.
    MaxValueExceeded(i64),
    /// An atom RabbitMQ answers an unknown value with: `invalid_overflow`, `invalid_dlx_strategy`, ...
    Atom(&'static str),
    /// A message RabbitMQ formats into a string first, so it prints quoted: `"unsupported queue mode 'x'"`.
    Message(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnacceptableType(t) => write!(f, "{{unacceptable_type,{t}}}"),
            Refusal::ExpectedInteger(t) => {
                f.write_str(&erlang_string(&format!("expected integer, got {t}")))
            }
            Refusal::ValueNegative(n) => write!(f, "{{value_negative,{n}}}"),
            Refusal::ValueZero => f.write_str("{value_zero,0}"),
            Refusal::ValueTooLarge(n) => write!(f, "{{value_too_large,{n}}}"),
            Refusal::MaxValueExceeded(n) => write!(f, "{{max_value_exceeded,{n}}}"),
            Refusal::Atom(a) => f.write_str(a),
            Refusal::Message(m) => f.write_str(&erlang_string(m)),
        }
    }
}

/// A character list as Erlang's `~p` prints it (printable range latin1, the default): quoted with escapes when
/// every character is printable, else the list of code points.
fn erlang_string(s: &str) -> String {
    let printable = |c: char| matches!(c, ' '..='~' | '\u{a0}'..='\u{ff}' | '\n' | '\r' | '\t' | '\u{b}' | '\u{8}' | '\u{c}' | '\u{1b}');
    if !s.chars().all(printable) {
        let codes: Vec<String> = s.chars().map(|c| u32::from(c).to_string()).collect();
        return format!("[{}]", codes.join(","));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{1b}' => out.push_str("\\e"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// RabbitMQ's name for a field value's type, as its refusals print it.
pub(super) use warren_protocol::field_type::rabbit_type_name as type_name;

/// The value of an AMQP integer RabbitMQ counts as one (`?INTEGER_ARG_TYPES`: signed and unsigned 8, 16 and 32
/// bits, signed 64). A timestamp is not one.
pub(super) fn int(v: &AMQPValue) -> Option<i64> {
    warren_protocol::field_type::integer(v)
}

/// The text of a string value (RabbitMQ's `longstr`); None for any other type.
pub(super) fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// One of RabbitMQ's argument checks, named after its `check_*` function in `rabbit_amqqueue`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Check {
    /// `check_expires_arg`: a positive integer of at most ten years.
    Expires,
    /// `check_message_ttl_arg`: a non-negative integer of at most ten years.
    MessageTtl,
    /// `check_dlxname_arg`: a string.
    DeadLetterExchange,
    /// `check_dlxrk_arg`: a string, and only with x-dead-letter-exchange.
    DeadLetterRoutingKey,
    /// `check_dlxstrategy_arg`: at-most-once or at-least-once.
    DeadLetterStrategy,
    /// `check_non_neg_int_arg`.
    NonNegInt,
    /// `check_max_priority_arg`: 0 to 255.
    MaxPriority,
    /// `check_overflow`: drop-head, reject-publish or reject-publish-dlx.
    Overflow,
    /// `check_queue_mode`: default or lazy.
    QueueMode,
    /// `check_queue_version`: 1 or 2.
    QueueVersion,
    /// `check_single_active_consumer_arg` (`check_bool_arg`).
    Bool,
    /// `check_queue_type`: classic, quorum or stream.
    QueueType,
    /// `check_initial_cluster_size_arg`: a positive integer.
    InitialClusterSize,
    /// `check_max_age_arg`: a string such as `7D` (units Y, M, D, h, m, s).
    MaxAge,
    /// `check_queue_leader_locator_arg`.
    LeaderLocator,
}

/// `rabbit_amqqueue:declare_args/0`: the arguments RabbitMQ checks, in the order it checks them. Only those the
/// queue's type takes are checked. x-stream-filter-size-bytes is listed there but taken by no queue type in 3.13,
/// so it is never checked (nor refused); it is left out.
pub(super) const DECLARE_ARGS: &[(&str, Check)] = &[
    ("x-expires", Check::Expires),
    ("x-message-ttl", Check::MessageTtl),
    ("x-dead-letter-exchange", Check::DeadLetterExchange),
    ("x-dead-letter-routing-key", Check::DeadLetterRoutingKey),
    ("x-dead-letter-strategy", Check::DeadLetterStrategy),
    ("x-max-length", Check::NonNegInt),
    ("x-max-length-bytes", Check::NonNegInt),
    ("x-max-in-memory-length", Check::NonNegInt),
    ("x-max-in-memory-bytes", Check::NonNegInt),
    ("x-max-priority", Check::MaxPriority),
    ("x-overflow", Check::Overflow),
    ("x-queue-mode", Check::QueueMode),
    ("x-queue-version", Check::QueueVersion),
    ("x-single-active-consumer", Check::Bool),
    ("x-queue-type", Check::QueueType),
    ("x-quorum-initial-group-size", Check::InitialClusterSize),
    ("x-max-age", Check::MaxAge),
    ("x-stream-max-segment-size-bytes", Check::NonNegInt),
    ("x-initial-cluster-size", Check::InitialClusterSize),
    ("x-queue-leader-locator", Check::LeaderLocator),
];

/// `queue_arguments` of `rabbit_classic_queue:capabilities/0`.
pub(super) const CLASSIC_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
];

/// `queue_arguments` of `rabbit_quorum_queue:capabilities/0`.
pub(super) const QUORUM_ARGS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
    "x-queue-leader-locator",
];

/// `queue_arguments` of `rabbit_stream_queue:capabilities/0`.
pub(super) const STREAM_ARGS: &[&str] = &[
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// Whether some queue type takes `key` (`rabbit_queue_type:arguments(queue_arguments)`): such an argument given
/// to a type that does not take it is refused. Any other argument is ignored, as in RabbitMQ.
pub(super) fn known_to_a_type(key: &str) -> bool {
    [CLASSIC_ARGS, QUORUM_ARGS, STREAM_ARGS]
        .iter()
        .any(|args| args.contains(&key))
}

const OVERFLOW_MODES: &[&str] = &["drop-head", "reject-publish", "reject-publish-dlx"];
const DLX_STRATEGIES: &[&str] = &["at-most-once", "at-least-once"];
const QUEUE_MODES: &[&str] = &["default", "lazy"];
/// `rabbit_queue_type:known_queue_type_names/0`.
const QUEUE_TYPES: &[&str] = &["classic", "quorum", "stream"];
/// `rabbit_queue_location:queue_leader_locators/0`, the last two deprecated.
const LEADER_LOCATORS: &[&str] = &["client-local", "balanced", "random", "least-leaders"];

impl Check {
    /// Checks `value`, the argument's value in `arguments`, as RabbitMQ does.
    pub(super) fn run(self, value: &AMQPValue, arguments: &FieldTable) -> Result<(), Refusal> {
        match self {
            Check::Expires => match integer(value)? {
                0 => Err(Refusal::ValueZero),
                n => expiry(n),
            },
            Check::MessageTtl => expiry(integer(value)?),
            Check::DeadLetterExchange => string(value).map(|_| ()),
            Check::DeadLetterRoutingKey => {
                string(value)?;
                if arguments.inner().contains_key("x-dead-letter-exchange") {
                    Ok(())
                } else {
                    Err(Refusal::Atom("routing_key_but_no_dlx_defined"))
                }
            }
            Check::DeadLetterStrategy => one_of(value, DLX_STRATEGIES, || {
                Refusal::Atom("invalid_dlx_strategy")
            }),
            Check::NonNegInt => non_negative(value).map(|_| ()),
            Check::MaxPriority => match non_negative(value)? {
                n if n > MAX_PRIORITY => Err(Refusal::MaxValueExceeded(n)),
                _ => Ok(()),
            },
            Check::Overflow => one_of(value, OVERFLOW_MODES, || Refusal::Atom("invalid_overflow")),
            Check::QueueMode => {
                let mode = string(value)?;
                if QUEUE_MODES.contains(&mode.as_str()) {
                    Ok(())
                } else {
                    Err(Refusal::Message(format!("unsupported queue mode '{mode}'")))
                }
            }
            Check::QueueVersion => match non_negative(value)? {
                1 | 2 => Ok(()),
                n => Err(Refusal::Message(format!("unsupported queue version '{n}'"))),
            },
            Check::Bool => match value {
                AMQPValue::Boolean(_) => Ok(()),
                other => Err(Refusal::UnacceptableType(type_name(other))),
            },
            Check::QueueType => {
                let kind = string(value)?;
                // 3.13 reads "undefined" as no type given (`maybe_inject_default_queue_type_shortcut_into_args`).
                if kind == "undefined" || QUEUE_TYPES.contains(&kind.as_str()) {
                    Ok(())
                } else {
                    Err(Refusal::Message(format!("unsupported queue type '{kind}'")))
                }
            }
            Check::InitialClusterSize => match non_negative(value)? {
                0 => Err(Refusal::ValueZero),
                _ => Ok(()),
            },
            Check::MaxAge => max_age(&string(value)?),
            Check::LeaderLocator => one_of(value, LEADER_LOCATORS, || {
                Refusal::Atom("invalid_queue_locator_arg")
            }),
        }
    }
}

/// `check_int_arg`.
pub(super) fn integer(value: &AMQPValue) -> Result<i64, Refusal> {
    int(value).ok_or(Refusal::ExpectedInteger(type_name(value)))
}

/// `check_non_neg_int_arg`.
fn non_negative(value: &AMQPValue) -> Result<i64, Refusal> {
    match integer(value)? {
        n if n < 0 => Err(Refusal::ValueNegative(n)),
        n => Ok(n),
    }
}

/// `rabbit_misc:check_expiry/1`.
fn expiry(ms: i64) -> Result<(), Refusal> {
    if ms < 0 {
        Err(Refusal::ValueNegative(ms))
    } else if ms > MAX_EXPIRY_MS {
        Err(Refusal::ValueTooLarge(ms))
    } else {
        Ok(())
    }
}

/// A string argument: any other type is `{unacceptable_type,T}`.
fn string(value: &AMQPValue) -> Result<String, Refusal> {
    text(value).ok_or(Refusal::UnacceptableType(type_name(value)))
}

/// A string from `allowed`; another string is refused with `unknown()`.
fn one_of(
    value: &AMQPValue,
    allowed: &[&str],
    unknown: impl FnOnce() -> Refusal,
) -> Result<(), Refusal> {
    if allowed.contains(&string(value)?.as_str()) {
        Ok(())
    } else {
        Err(unknown())
    }
}

/// `check_max_age/1`: digits, a positive number, then exactly one unit. RabbitMQ crashes on a value without
/// digits (`list_to_integer("")`, an internal error); Warren refuses it like any other bad age.
fn max_age(age: &str) -> Result<(), Refusal> {
    let digits = age.len() - age.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = age.split_at(digits);
    let positive = number.bytes().any(|b| b != b'0');
    if positive && ["Y", "M", "D", "h", "m", "s"].contains(&unit) {
        Ok(())
    } else {
        Err(Refusal::Atom("invalid_max_age"))
    }
}
