//! A shovel's definition: RabbitMQ's `shovel` runtime parameter value (and the same keys in a `[[shovels]]` table of
//! the config file), checked with RabbitMQ's rules and refusals, and read into the settings a worker runs with.
//!
//! Both the current key names (`src-prefetch-count`, `src-delete-after`, `dest-add-forward-headers`, ...) and the
//! pre-3.7 ones RabbitMQ still accepts (`prefetch-count`, `delete-after`, `add-forward-headers`, ...) are read, the
//! current name winning. AMQP 1.0 endpoints (`src-protocol`/`dest-protocol` = `amqp10`) are refused: Warren's
//! shovels speak AMQP 0-9-1 only.

use std::time::Duration;

use serde_json::{Map, Value};

use super::endpoint::Endpoint;

/// RabbitMQ's default `src-prefetch-count`.
const DEFAULT_PREFETCH: u16 = 1000;
/// RabbitMQ's default `reconnect-delay`, seconds.
const DEFAULT_RECONNECT_DELAY: f64 = 5.0;

/// Every key a shovel definition may have (AMQP 0-9-1 on both sides).
const KNOWN_KEYS: &[&str] = &[
    "src-protocol",
    "dest-protocol",
    "src-uri",
    "src-queue",
    "src-queue-args",
    "src-exchange",
    "src-exchange-key",
    "src-prefetch-count",
    "prefetch-count",
    "src-delete-after",
    "delete-after",
    "src-consumer-args",
    "dest-uri",
    "dest-queue",
    "dest-queue-args",
    "dest-exchange",
    "dest-exchange-key",
    "dest-add-forward-headers",
    "add-forward-headers",
    "dest-add-timestamp-header",
    "add-timestamp-header",
    "dest-publish-properties",
    "publish-properties",
    "ack-mode",
    "reconnect-delay",
];

/// When the source side acknowledges a message (`ack-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// After the destination confirmed it (the default): nothing is lost.
    OnConfirm,
    /// Once it was published to the destination, unconfirmed.
    OnPublish,
    /// Consumed with no acknowledgements at all.
    NoAck,
}

impl AckMode {
    /// RabbitMQ's name for it.
    pub fn name(self) -> &'static str {
        match self {
            AckMode::OnConfirm => "on-confirm",
            AckMode::OnPublish => "on-publish",
            AckMode::NoAck => "no-ack",
        }
    }
}

/// When a shovel ends by itself (`src-delete-after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteAfter {
    /// It runs until deleted.
    Never,
    /// After moving as many messages as the source queue held when it started.
    QueueLength,
    /// After moving this many messages.
    Count(u64),
}

/// Where a shovel consumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A queue, declared (durable, with `args`) if it does not exist.
    Queue {
        /// Its name.
        name: String,
        /// `src-queue-args`, used only when the shovel declares it.
        args: Map<String, Value>,
    },
    /// An exchange: the shovel binds an exclusive server-named queue to it with `key`.
    Exchange {
        /// The exchange.
        name: String,
        /// The binding key (default empty, as RabbitMQ).
        key: String,
    },
}

/// Where a shovel publishes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    /// A queue, through the default exchange; declared (durable, with `args`) if it does not exist.
    Queue {
        /// Its name.
        name: String,
        /// `dest-queue-args`, used only when the shovel declares it.
        args: Map<String, Value>,
    },
    /// An exchange; the routing key is `key` when set, else the message's own.
    Exchange {
        /// The exchange.
        name: String,
        /// `dest-exchange-key`.
        key: Option<String>,
    },
    /// Neither given: each message keeps its own exchange and routing key (as RabbitMQ).
    Original {
        /// `dest-exchange-key` alone: the routing key for every message.
        key: Option<String>,
    },
}

/// The source side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `src-uri`: the brokers tried in turn.
    pub uris: Vec<Endpoint>,
    /// What it consumes.
    pub kind: SourceKind,
    /// `src-prefetch-count`.
    pub prefetch: u16,
    /// `src-delete-after`.
    pub delete_after: DeleteAfter,
}

/// The destination side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// `dest-uri`: the brokers tried in turn.
    pub uris: Vec<Endpoint>,
    /// Where messages go.
    pub kind: DestinationKind,
    /// `dest-add-forward-headers`: an `x-shovelled` header naming the shovel and both ends.
    pub add_forward_headers: bool,
    /// `dest-add-timestamp-header`: an `x-shovelled-timestamp` header, seconds since the epoch.
    pub add_timestamp_header: bool,
    /// `dest-publish-properties`: basic properties set on every message, by RabbitMQ's field names.
    pub publish_properties: Map<String, Value>,
}

/// A checked shovel definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShovelDefinition {
    /// The source side.
    pub source: Source,
    /// The destination side.
    pub destination: Destination,
    /// `ack-mode`.
    pub ack_mode: AckMode,
    /// `reconnect-delay`: the pause before reconnecting after a failure; zero: a failed shovel stays terminated.
    pub reconnect_delay: Duration,
    /// The value as given, for listing it back.
    pub value: Value,
}

/// The basic properties `dest-publish-properties` may set, and whether each is a number (else a string).
const PUBLISH_PROPERTIES: &[(&str, bool)] = &[
    ("content_type", false),
    ("content_encoding", false),
    ("delivery_mode", true),
    ("priority", true),
    ("correlation_id", false),
    ("reply_to", false),
    ("expiration", false),
    ("message_id", false),
    ("timestamp", true),
    ("type", false),
    ("user_id", false),
    ("app_id", false),
    ("cluster_id", false),
];

impl ShovelDefinition {
    /// Checks a definition as RabbitMQ's shovel plugin does, with its messages; the first fault is reported.
    pub fn parse(value: &Value) -> Result<ShovelDefinition, String> {
        let Value::Object(def) = value else {
            return Err(format!("shovel definition must be an object, got {value}"));
        };
        for side in ["src-protocol", "dest-protocol"] {
            match def.get(side) {
                None => {}
                Some(Value::String(p)) if p == "amqp091" => {}
                Some(Value::String(p)) if p == "amqp10" => {
                    return Err(format!(
                        "{side}: Warren's shovels speak AMQP 0-9-1 only; amqp10 is not supported"
                    ))
                }
                Some(other) => {
                    return Err(format!(
                        "{side} should be one of amqp10, amqp091, actually was {other}"
                    ))
                }
            }
        }
        let unknown: Vec<&str> = def
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(format!("Unrecognised terms {unknown:?} in shovel"));
        }
        let source_kind = match (text(def, "src-exchange")?, text(def, "src-queue")?) {
            (None, None) => return Err("Must specify 'src-exchange' or 'src-queue'".to_owned()),
            (Some(_), Some(_)) => {
                return Err("Cannot specify 'src-exchange' and 'src-queue'".to_owned())
            }
            (None, Some(queue)) => SourceKind::Queue {
                name: queue,
                args: object(def, "src-queue-args")?,
            },
            (Some(exchange), None) => SourceKind::Exchange {
                name: exchange,
                key: text(def, "src-exchange-key")?.unwrap_or_default(),
            },
        };
        let dest_key = text(def, "dest-exchange-key")?;
        let destination_kind = match (text(def, "dest-exchange")?, text(def, "dest-queue")?) {
            (Some(_), Some(_)) => {
                return Err("Cannot specify 'dest-exchange' and 'dest-queue'".to_owned())
            }
            (None, Some(queue)) => DestinationKind::Queue {
                name: queue,
                args: object(def, "dest-queue-args")?,
            },
            (Some(exchange), None) => DestinationKind::Exchange {
                name: exchange,
                key: dest_key,
            },
            (None, None) => DestinationKind::Original { key: dest_key },
        };
        let ack_mode = match def.get("ack-mode") {
            None => AckMode::OnConfirm,
            Some(Value::String(m)) if m == "on-confirm" => AckMode::OnConfirm,
            Some(Value::String(m)) if m == "on-publish" => AckMode::OnPublish,
            Some(Value::String(m)) if m == "no-ack" => AckMode::NoAck,
            Some(other) => {
                return Err(format!(
                    "ack-mode should be one of no-ack, on-publish, on-confirm, actually was {other}"
                ))
            }
        };
        let delete_after = delete_after(def)?;
        if ack_mode == AckMode::NoAck && matches!(delete_after, DeleteAfter::Count(_)) {
            return Err("Cannot specify 'no-ack' and numerical 'delete-after'".to_owned());
        }
        let prefetch = match number(def, "src-prefetch-count")?.or(number(def, "prefetch-count")?) {
            None => DEFAULT_PREFETCH,
            Some(n) if n >= 0.0 && n <= f64::from(u16::MAX) && n.fract() == 0.0 => n as u16,
            Some(n) => {
                return Err(format!(
                    "src-prefetch-count should be a whole number from 0 to 65535, actually was {n}"
                ))
            }
        };
        let reconnect_delay = match number(def, "reconnect-delay")? {
            None => DEFAULT_RECONNECT_DELAY,
            Some(n) if n >= 0.0 && n.is_finite() => n,
            Some(n) => {
                return Err(format!(
                    "reconnect-delay should be a number of seconds, actually was {n}"
                ))
            }
        };
        let publish_properties = match def
            .get("dest-publish-properties")
            .or(def.get("publish-properties"))
        {
            None => Map::new(),
            Some(Value::Object(props)) => {
                check_publish_properties(props)?;
                props.clone()
            }
            Some(other) => {
                return Err(format!(
                    "dest-publish-properties should be an object, actually was {other}"
                ))
            }
        };
        Ok(ShovelDefinition {
            source: Source {
                uris: uris(def, "src-uri")?,
                kind: source_kind,
                prefetch,
                delete_after,
            },
            destination: Destination {
                uris: uris(def, "dest-uri")?,
                kind: destination_kind,
                add_forward_headers: flag(def, "dest-add-forward-headers", "add-forward-headers")?,
                add_timestamp_header: flag(
                    def,
                    "dest-add-timestamp-header",
                    "add-timestamp-header",
                )?,
                publish_properties,
            },
            ack_mode,
            reconnect_delay: Duration::from_secs_f64(reconnect_delay),
            value: value.clone(),
        })
    }
}

fn text(def: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match def.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key} should be a string, actually was {other}")),
    }
}

fn number(def: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match def.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!("{key} should be a number, actually was {other}")),
    }
}

/// A boolean under its current name, else under its pre-3.7 name; false when neither is there.
fn flag(def: &Map<String, Value>, key: &str, legacy: &str) -> Result<bool, String> {
    for k in [key, legacy] {
        match def.get(k) {
            None => continue,
            Some(Value::Bool(b)) => return Ok(*b),
            Some(other) => return Err(format!("{k} should be a boolean, actually was {other}")),
        }
    }
    Ok(false)
}

fn object(def: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, String> {
    match def.get(key) {
        None => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(other) => Err(format!("{key} should be an object, actually was {other}")),
    }
}

fn delete_after(def: &Map<String, Value>) -> Result<DeleteAfter, String> {
    let (key, value) = match (def.get("src-delete-after"), def.get("delete-after")) {
        (Some(v), _) => ("src-delete-after", v),
        (None, Some(v)) => ("delete-after", v),
        (None, None) => return Ok(DeleteAfter::Never),
    };
    match value {
        Value::String(s) if s == "never" => Ok(DeleteAfter::Never),
        Value::String(s) if s == "queue-length" => Ok(DeleteAfter::QueueLength),
        Value::Number(n) if n.as_u64().is_some() => Ok(DeleteAfter::Count(n.as_u64().unwrap_or(0))),
        other => Err(format!(
            "{key} should be number, \"never\" or \"queue-length\", actually was {other}"
        )),
    }
}

/// `src-uri`/`dest-uri`: one URI or a non-empty list of them, each a valid AMQP URI.
fn uris(def: &Map<String, Value>, key: &str) -> Result<Vec<Endpoint>, String> {
    let list: Vec<&Value> = match def.get(key) {
        None => return Err(format!("Key \"{key}\" not found in shovel")),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(format!("{key} should be a URI or a non-empty list of URIs"))
        }
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    list.into_iter()
        .map(|uri| match uri {
            Value::String(uri) => Endpoint::parse(uri)
                .map_err(|e| format!("\"{}\" not a valid URI: {e}", redacted(uri))),
            other => Err(format!("{key} should be a string, actually was {other}")),
        })
        .collect()
}

/// A URI with its password replaced, for error messages.
fn redacted(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Unparsable: whatever stands between the scheme and an '@' may be credentials.
        Err(_) => match (uri.find("://"), uri.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &uri[..scheme + 3], &uri[at..])
            }
            _ => uri.to_owned(),
        },
    }
}

fn check_publish_properties(props: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in props {
        let Some((_, numeric)) = PUBLISH_PROPERTIES.iter().find(|(name, _)| name == key) else {
            return Err(format!(
                "Unrecognised terms [\"{key}\"] in dest-publish-properties"
            ));
        };
        let ok = match numeric {
            true => value.as_u64().is_some(),
            false => value.is_string(),
        };
        if !ok {
            let kind = if *numeric { "a number" } else { "a string" };
            return Err(format!("{key} should be {kind}, actually was {value}"));
        }
    }
    Ok(())
}
