//! Upstreams: RabbitMQ's `federation-upstream` runtime parameters (a broker and how to link to it) and
//! `federation-upstream-set` parameters (named lists of upstreams with per-member overrides), checked with its keys
//! and defaults.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::shovel::endpoint::Endpoint;

/// The keys an upstream may set (`rabbit_federation_parameters`), all but `uri` optional.
const UPSTREAM_KEYS: &[&str] = &[
    "uri",
    "prefetch-count",
    "reconnect-delay",
    "ack-mode",
    "trust-user-id",
    "exchange",
    "max-hops",
    "expires",
    "message-ttl",
    "queue",
    "consumer-tag",
    "bind-nowait",
    "ha-policy",
];

/// When a link acknowledges a message at the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAckMode {
    /// After this node confirmed it (the default).
    OnConfirm,
    /// Once republished here, unconfirmed.
    OnPublish,
    /// Consumed with no acknowledgements.
    NoAck,
}

/// A checked upstream, with RabbitMQ's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The parameter's name.
    pub name: String,
    /// `uri`: the brokers tried in turn.
    pub uris: Vec<Endpoint>,
    /// `prefetch-count` (default 1000).
    pub prefetch: u16,
    /// `reconnect-delay` (default 5 s).
    pub reconnect_delay: Duration,
    /// `ack-mode` (default on-confirm).
    pub ack_mode: LinkAckMode,
    /// `trust-user-id`: keep the messages' `user_id` (default false: it is removed).
    pub trust_user_id: bool,
    /// `exchange`: the upstream exchange (default: the federated exchange's own name).
    pub exchange: Option<String>,
    /// `queue`: the upstream queue of a federated queue (default: its own name).
    pub queue: Option<String>,
    /// `max-hops` (default 1): how many links a message may cross.
    pub max_hops: u64,
    /// `expires`: the upstream queue's `x-expires`, ms.
    pub expires: Option<u64>,
    /// `message-ttl`: the upstream queue's `x-message-ttl`, ms.
    pub message_ttl: Option<u64>,
    /// `consumer-tag`: the federated queue link's consumer tag at the upstream.
    pub consumer_tag: Option<String>,
    /// `bind-nowait`: bind at the upstream without waiting for the reply.
    pub bind_nowait: bool,
    /// The value as given, for comparing and listing.
    pub value: Value,
}

impl Upstream {
    /// Checks a `federation-upstream` value named `name`.
    pub fn parse(name: &str, value: &Value) -> Result<Upstream, String> {
        let Value::Object(def) = value else {
            return Err(format!(
                "federation-upstream must be an object, got {value}"
            ));
        };
        check_keys(def, "federation-upstream")?;
        let uris: Vec<&Value> = match def.get("uri") {
            None => return Err("Key \"uri\" not found in federation-upstream".to_owned()),
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
            Some(Value::Array(_)) => {
                return Err("uri should be a URI or a non-empty list of URIs".to_owned())
            }
            Some(one) => vec![one],
        };
        let uris = uris
            .into_iter()
            .map(|u| match u {
                Value::String(text) => Endpoint::parse(text)
                    .map_err(|e| format!("\"{}\" not a valid URI: {e}", redacted(text))),
                other => Err(format!("uri should be a string, actually was {other}")),
            })
            .collect::<Result<Vec<_>, String>>()?;
        if def.contains_key("ha-policy") {
            return Err("ha-policy: Warren has no classic queue mirroring; remove ha-policy from the upstream".to_owned());
        }
        let ack_mode = match def.get("ack-mode") {
            None => LinkAckMode::OnConfirm,
            Some(Value::String(m)) if m == "on-confirm" => LinkAckMode::OnConfirm,
            Some(Value::String(m)) if m == "on-publish" => LinkAckMode::OnPublish,
            Some(Value::String(m)) if m == "no-ack" => LinkAckMode::NoAck,
            Some(other) => {
                return Err(format!(
                    "ack-mode should be one of no-ack, on-publish, on-confirm, actually was {other}"
                ))
            }
        };
        let prefetch = match whole(def, "prefetch-count")? {
            None => 1000,
            Some(n) => {
                u16::try_from(n).map_err(|_| format!("prefetch-count is out of range: {n}"))?
            }
        };
        let reconnect_delay = match def.get("reconnect-delay") {
            None => 5.0,
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f >= 0.0) => {
                n.as_f64().unwrap_or(5.0)
            }
            Some(other) => {
                return Err(format!(
                    "reconnect-delay should be a number, actually was {other}"
                ))
            }
        };
        let max_hops = whole(def, "max-hops")?.unwrap_or(1);
        if max_hops == 0 {
            return Err("max-hops should be at least 1".to_owned());
        }
        Ok(Upstream {
            name: name.to_owned(),
            uris,
            prefetch,
            reconnect_delay: Duration::from_secs_f64(reconnect_delay),
            ack_mode,
            trust_user_id: boolean(def, "trust-user-id")?,
            exchange: text(def, "exchange")?,
            queue: text(def, "queue")?,
            max_hops,
            expires: whole(def, "expires")?,
            message_ttl: whole(def, "message-ttl")?,
            consumer_tag: text(def, "consumer-tag")?,
            bind_nowait: boolean(def, "bind-nowait")?,
            value: value.clone(),
        })
    }
}

/// One member of a `federation-upstream-set`: an upstream's name and the keys it overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMember {
    /// The `federation-upstream` it names.
    pub upstream: String,
    /// Keys set over the upstream's own.
    pub overrides: Map<String, Value>,
}

/// Checks a `federation-upstream-set` value: a list of `{"upstream": name, ...overrides}`.
pub fn parse_set(value: &Value) -> Result<Vec<SetMember>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "federation-upstream-set must be a list, got {value}"
        ));
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(fields) = item else {
                return Err(format!(
                    "each member of a federation-upstream-set is an object, got {item}"
                ));
            };
            let mut overrides = fields.clone();
            let upstream = match overrides.remove("upstream") {
                Some(Value::String(name)) => name,
                _ => {
                    return Err(
                        "Key \"upstream\" not found in federation-upstream-set member".to_owned(),
                    )
                }
            };
            check_keys(&overrides, "federation-upstream-set")?;
            if overrides.contains_key("uri") {
                // The set names upstreams; their brokers stay theirs.
                return Err("a federation-upstream-set member cannot override uri".to_owned());
            }
            Ok(SetMember {
                upstream,
                overrides,
            })
        })
        .collect()
}

/// An upstream with a set member's overrides applied.
pub fn with_overrides(
    upstream: &Upstream,
    overrides: &Map<String, Value>,
) -> Result<Upstream, String> {
    if overrides.is_empty() {
        return Ok(upstream.clone());
    }
    let mut value = upstream.value.clone();
    if let Value::Object(fields) = &mut value {
        for (k, v) in overrides {
            fields.insert(k.clone(), v.clone());
        }
    }
    Upstream::parse(&upstream.name, &value)
}

fn check_keys(def: &Map<String, Value>, what: &str) -> Result<(), String> {
    let unknown: Vec<&str> = def
        .keys()
        .map(String::as_str)
        .filter(|k| !UPSTREAM_KEYS.contains(k))
        .collect();
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(format!("Unrecognised terms {unknown:?} in {what}")),
    }
}

fn text(def: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match def.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key} should be a string, actually was {other}")),
    }
}

fn whole(def: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match def.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            format!("{key} should be a non-negative whole number, actually was {v}")
        }),
    }
}

fn boolean(def: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match def.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{key} should be a boolean, actually was {other}")),
    }
}

/// A URI without what may be its password, for error messages.
fn redacted(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &uri[..scheme + 3], &uri[at..])
        }
        _ => uri.to_owned(),
    }
}
