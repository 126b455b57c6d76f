//! A policy's definition checked key by key as RabbitMQ 3.13 checks it (`rabbit_policies:validate_policy0/2`,
//! `rabbit_policy:validation/3`), refusals in its words, and typed into what queues and exchanges apply.

use serde_json::{Map, Value};

use super::term::{erlang_proplist, erlang_term};
use super::PolicyKind;
use crate::queue::arguments::{DeadLetterStrategy, Overflow};
use crate::queue::settings::{ConsumerTimeoutAction, QueueOverrides};

/// What one policy's definition sets, typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyValues {
    /// The queue settings it sets.
    pub(crate) queue: QueueOverrides,
    /// `alternate-exchange`: the only key exchanges take.
    pub(crate) alternate_exchange: Option<String>,
    /// `federation-upstream` or `federation-upstream-set`: the exchange or queue is federated from these.
    pub(crate) federation: Option<FederationTarget>,
}

/// The upstreams a policy federates its exchanges and queues from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FederationTarget {
    /// `federation-upstream`: one `federation-upstream` parameter, by name.
    Upstream(String),
    /// `federation-upstream-set`: a `federation-upstream-set` parameter by name, or `all` of the vhost's upstreams.
    Set(String),
}

/// How RabbitMQ checks one key's value; `Err` is the text of its refusal.
type Check = fn(&Value, &mut PolicyValues) -> Result<(), String>;

/// The keys a policy may set, with their checks, in RabbitMQ's names.
const POLICY_KEYS: &[(&str, Check)] = &[
    ("alternate-exchange", alternate_exchange),
    ("consumer-timeout", consumer_timeout),
    ("dead-letter-exchange", dead_letter_exchange),
    ("dead-letter-routing-key", dead_letter_routing_key),
    ("dead-letter-strategy", dead_letter_strategy),
    ("delivery-limit", delivery_limit),
    ("expires", expires),
    ("federation-upstream", federation_upstream),
    ("federation-upstream-set", federation_upstream_set),
    ("initial-cluster-size", initial_cluster_size),
    ("max-in-memory-bytes", max_in_memory),
    ("max-in-memory-length", max_in_memory),
    ("max-length", max_length),
    ("max-length-bytes", max_length_bytes),
    ("message-ttl", message_ttl),
    ("overflow", overflow),
    ("queue-leader-locator", queue_leader_locator),
    ("queue-mode", queue_mode),
    ("queue-version", queue_version),
    ("warren-consumer-timeout-action", consumer_timeout_action),
    ("x-message-deduplication", message_deduplication),
];

/// The keys an operator policy may set (`operator_policy_validator` in `rabbit_policies`).
const OPERATOR_POLICY_KEYS: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-version",
];

/// Keys RabbitMQ (or one of its plugins) knows that Warren does not implement: refused, never silently kept.
const UNSUPPORTED_KEYS: &[(&str, &str)] = &[
    (
        "ha-mode",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    (
        "ha-params",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    (
        "ha-sync-mode",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    (
        "ha-sync-batch-size",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    (
        "ha-promote-on-shutdown",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    (
        "ha-promote-on-failure",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    (
        "queue-master-locator",
        "Warren has no classic queue mirroring; use quorum queues",
    ),
    ("max-age", "Warren has no stream queues yet"),
    (
        "stream-max-segment-size-bytes",
        "Warren has no stream queues yet",
    ),
    (
        "stream-filter-size-bytes",
        "Warren has no stream queues yet",
    ),
    (
        "x-cache-size",
        "Warren reads x-cache-size only as an argument of an x-message-deduplication exchange",
    ),
    (
        "x-cache-ttl",
        "Warren reads x-cache-ttl only as an argument of an x-message-deduplication exchange",
    ),
    (
        "x-cache-persistence",
        "Warren reads x-cache-persistence only as an argument of an x-message-deduplication exchange",
    ),
];

impl PolicyValues {
    /// Checks a definition as RabbitMQ does for a policy of `kind` and types it; `Err` is RabbitMQ's refusal.
    pub(crate) fn parse(kind: PolicyKind, definition: &Value) -> Result<PolicyValues, String> {
        let map: &Map<String, Value> = match definition {
            Value::Object(map) => map,
            Value::Array(items) if items.is_empty() => return Err("no policy provided".into()),
            other => {
                return Err(format!(
                    "definition must be a dictionary: {}",
                    erlang_term(other)
                ))
            }
        };
        if map.is_empty() {
            return Err("no policy provided".into());
        }
        let mut values = PolicyValues::default();
        let mut unknown = Vec::new();
        for (key, value) in map {
            let allowed = match kind {
                PolicyKind::Policy => true,
                PolicyKind::Operator => OPERATOR_POLICY_KEYS.contains(&key.as_str()),
            };
            match POLICY_KEYS.iter().find(|(k, _)| k == key) {
                Some((_, check)) if allowed => check(value, &mut values)?,
                _ => match UNSUPPORTED_KEYS.iter().find(|(k, _)| k == key) {
                    Some((_, why)) if kind == PolicyKind::Policy => {
                        return Err(format!("policy key '{key}' is not supported: {why}"))
                    }
                    _ => unknown.push((key, value)),
                },
            }
        }
        if map.contains_key("federation-upstream") && map.contains_key("federation-upstream-set") {
            return Err(
                "cannot specify federation-upstream and federation-upstream-set together".into(),
            );
        }
        if !unknown.is_empty() {
            return Err(format!(
                "{} are not recognised policy settings",
                erlang_proplist(unknown.into_iter())
            ));
        }
        Ok(values)
    }
}

/// A non-negative integer, or None.
fn count(value: &Value) -> Option<u64> {
    value.as_u64()
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn refuse(value: &Value, what: &str) -> String {
    format!("{} is not a valid {what}", erlang_term(value))
}

fn alternate_exchange(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.alternate_exchange = Some(string(v).ok_or_else(|| refuse(v, "alternate exchange name"))?);
    Ok(())
}

fn consumer_timeout(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.consumer_timeout = Some(count(v).ok_or_else(|| refuse(v, "consumer timeout"))?);
    Ok(())
}

fn dead_letter_exchange(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.dead_letter_exchange =
        Some(string(v).ok_or_else(|| refuse(v, "dead letter exchange name"))?);
    Ok(())
}

fn dead_letter_routing_key(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.dead_letter_routing_key =
        Some(string(v).ok_or_else(|| refuse(v, "dead letter routing key"))?);
    Ok(())
}

fn dead_letter_strategy(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.dead_letter_strategy = Some(match v.as_str() {
        Some("at-most-once") => DeadLetterStrategy::AtMostOnce,
        Some("at-least-once") => DeadLetterStrategy::AtLeastOnce,
        _ => return Err(refuse(v, "dead letter strategy")),
    });
    Ok(())
}

fn delivery_limit(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.delivery_limit = Some(count(v).ok_or_else(|| refuse(v, "delivery limit"))?);
    Ok(())
}

fn expires(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.expires = Some(
        count(v)
            .filter(|n| *n >= 1)
            .ok_or_else(|| refuse(v, "queue expiry"))?,
    );
    Ok(())
}

fn federation_upstream(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    let name = string(v).ok_or_else(|| refuse(v, "federation-upstream name"))?;
    p.federation = Some(FederationTarget::Upstream(name));
    Ok(())
}

fn federation_upstream_set(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    let name = string(v).ok_or_else(|| refuse(v, "federation-upstream-set name"))?;
    p.federation = Some(FederationTarget::Set(name));
    Ok(())
}

fn initial_cluster_size(v: &Value, _: &mut PolicyValues) -> Result<(), String> {
    // A placement hint: every queue of a single node lives on that node.
    count(v).map(drop).ok_or_else(|| refuse(v, "cluster size"))
}

fn max_in_memory(v: &Value, _: &mut PolicyValues) -> Result<(), String> {
    // Deprecated in RabbitMQ; Warren's queue memory budget bounds what a queue keeps in memory.
    count(v)
        .map(drop)
        .ok_or_else(|| refuse(v, "maximum memory in bytes"))
}

fn max_length(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.max_length = Some(count(v).ok_or_else(|| refuse(v, "maximum length"))?);
    Ok(())
}

fn max_length_bytes(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.max_length_bytes = Some(count(v).ok_or_else(|| refuse(v, "maximum length in bytes"))?);
    Ok(())
}

fn message_ttl(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.message_ttl = Some(count(v).ok_or_else(|| refuse(v, "message TTL"))?);
    Ok(())
}

/// rabbitmq-message-deduplication's policy validator: a boolean, refused in its words.
fn message_deduplication(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    match v {
        Value::Bool(on) => {
            p.queue.deduplication = Some(*on);
            Ok(())
        }
        other => Err(format!(
            "\"x-message-deduplication\" must be a boolean, got {}",
            erlang_term(other)
        )),
    }
}

fn overflow(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.overflow = Some(match v.as_str() {
        Some("drop-head") => Overflow::DropHead,
        Some("reject-publish") => Overflow::RejectPublish,
        Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
        _ => return Err(refuse(v, "overflow value")),
    });
    Ok(())
}

fn queue_leader_locator(v: &Value, _: &mut PolicyValues) -> Result<(), String> {
    // A placement hint: every queue of a single node lives on that node.
    match v.as_str() {
        Some("client-local" | "balanced" | "random" | "least-leaders") => Ok(()),
        _ => Err(refuse(v, "queue leader locator value")),
    }
}

fn queue_mode(v: &Value, _: &mut PolicyValues) -> Result<(), String> {
    // Accepted and without effect, as in RabbitMQ 3.12+: a queue pages to disk past its memory budget.
    match v.as_str() {
        Some("default" | "lazy") => Ok(()),
        _ => Err(format!(
            "{} is not a valid queue-mode value",
            erlang_term(v)
        )),
    }
}

fn queue_version(v: &Value, _: &mut PolicyValues) -> Result<(), String> {
    // Warren has one queue index format.
    match v.as_u64() {
        Some(1 | 2) => Ok(()),
        _ => Err(format!(
            "{} is not a valid queue-version value",
            erlang_term(v)
        )),
    }
}

fn consumer_timeout_action(v: &Value, p: &mut PolicyValues) -> Result<(), String> {
    p.queue.consumer_timeout_action = Some(match v.as_str() {
        Some("close-channel") => ConsumerTimeoutAction::CloseChannel,
        Some("cancel-consumer") => ConsumerTimeoutAction::CancelConsumer,
        _ => {
            return Err(format!(
                "{} is not a valid consumer timeout action (close-channel or cancel-consumer)",
                erlang_term(v)
            ))
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(kind: PolicyKind, definition: Value) -> String {
        PolicyValues::parse(kind, &definition).unwrap_err()
    }

    #[test]
    fn every_key_is_typed() {
        let values = PolicyValues::parse(
            PolicyKind::Policy,
            &json!({
                "message-ttl": 1000, "expires": 5000, "max-length": 10, "max-length-bytes": 4096,
                "overflow": "reject-publish", "dead-letter-exchange": "dlx", "dead-letter-routing-key": "rk",
                "dead-letter-strategy": "at-most-once", "delivery-limit": 3, "consumer-timeout": 60000,
                "alternate-exchange": "ae", "queue-mode": "lazy", "queue-version": 2,
                "warren-consumer-timeout-action": "cancel-consumer"
            }),
        )
        .unwrap();
        let q = &values.queue;
        assert_eq!(q.message_ttl, Some(1000));
        assert_eq!(q.expires, Some(5000));
        assert_eq!(q.max_length, Some(10));
        assert_eq!(q.max_length_bytes, Some(4096));
        assert_eq!(q.overflow, Some(Overflow::RejectPublish));
        assert_eq!(q.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(q.dead_letter_routing_key.as_deref(), Some("rk"));
        assert_eq!(q.dead_letter_strategy, Some(DeadLetterStrategy::AtMostOnce));
        assert_eq!(q.delivery_limit, Some(3));
        assert_eq!(q.consumer_timeout, Some(60000));
        assert_eq!(
            q.consumer_timeout_action,
            Some(ConsumerTimeoutAction::CancelConsumer)
        );
        assert_eq!(values.alternate_exchange.as_deref(), Some("ae"));
    }

    #[test]
    fn both_dead_letter_strategies_are_taken() {
        for (value, strategy) in [
            ("at-most-once", DeadLetterStrategy::AtMostOnce),
            ("at-least-once", DeadLetterStrategy::AtLeastOnce),
        ] {
            let values = PolicyValues::parse(
                PolicyKind::Policy,
                &json!({"dead-letter-exchange": "dlx", "dead-letter-strategy": value}),
            )
            .unwrap();
            assert_eq!(values.queue.dead_letter_strategy, Some(strategy));
        }
        assert!(PolicyValues::parse(
            PolicyKind::Policy,
            &json!({"dead-letter-strategy": "exactly-once"})
        )
        .is_err());
    }

    #[test]
    fn bad_values_are_refused_in_rabbitmqs_words() {
        let p = PolicyKind::Policy;
        assert_eq!(
            refusal(p, json!({"message-ttl": "abc"})),
            "<<\"abc\">> is not a valid message TTL"
        );
        assert_eq!(
            refusal(p, json!({"message-ttl": -1})),
            "-1 is not a valid message TTL"
        );
        assert_eq!(
            refusal(p, json!({"expires": 0})),
            "0 is not a valid queue expiry"
        );
        assert_eq!(
            refusal(p, json!({"max-length": 1.5})),
            "1.5 is not a valid maximum length"
        );
        assert_eq!(
            refusal(p, json!({"overflow": "drop-tail"})),
            "<<\"drop-tail\">> is not a valid overflow value"
        );
        assert_eq!(
            refusal(p, json!({"dead-letter-exchange": 1})),
            "1 is not a valid dead letter exchange name"
        );
        assert_eq!(
            refusal(p, json!({"queue-mode": "fast"})),
            "<<\"fast\">> is not a valid queue-mode value"
        );
        assert_eq!(refusal(p, json!({})), "no policy provided");
        assert_eq!(
            refusal(p, json!("x")),
            "definition must be a dictionary: <<\"x\">>"
        );
        assert_eq!(
            refusal(p, json!({"foo": 1})),
            "[{<<\"foo\">>,1}] are not recognised policy settings"
        );
    }

    #[test]
    fn operator_policies_take_only_limits() {
        let op = PolicyKind::Operator;
        assert!(PolicyValues::parse(
            op,
            &json!({"max-length": 5, "message-ttl": 10, "overflow": "drop-head"})
        )
        .is_ok());
        assert_eq!(
            refusal(op, json!({"dead-letter-exchange": "x"})),
            "[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings"
        );
    }

    #[test]
    fn keys_warren_does_not_implement_are_refused_not_ignored() {
        assert_eq!(
            refusal(PolicyKind::Policy, json!({"ha-mode": "all"})),
            "policy key 'ha-mode' is not supported: Warren has no classic queue mirroring; use quorum queues"
        );
    }
}
