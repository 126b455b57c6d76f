//! RabbitMQ's vhost limits (the `vhost-limits` parameter: `max-connections`, `max-queues`) and user limits
//! (`max-connections`, `max-channels`), kept as the JSON objects RabbitMQ's definitions and management API carry,
//! and read as numbers where they are enforced. As in RabbitMQ, a negative value means "no limit" and 0 allows
//! nothing; only integers pass validation.

use serde_json::{Map, Value};

use crate::policy::term::erlang_term;

/// A JSON object of limits, as stored and exported.
pub type LimitMap = Map<String, Value>;

/// The keys of a vhost's limits.
pub const VHOST_LIMIT_KEYS: &[&str] = &["max-connections", "max-queues"];
/// The keys of a user's limits.
pub const USER_LIMIT_KEYS: &[&str] = &["max-connections", "max-channels"];

/// Checks `limits` as RabbitMQ's parameter validation does; `what` names the object in the error as RabbitMQ
/// does (`limits` for a vhost's, `user-limits` for a user's). The error text is RabbitMQ's, with the offending
/// terms printed as Erlang prints them (compared with RabbitMQ 3.10.8's management API answers).
pub fn validate(what: &str, limits: &LimitMap, keys: &[&str]) -> Result<(), String> {
    let unknown: Vec<String> = limits
        .iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, v)| {
            format!(
                "{{{},{}}}",
                erlang_term(&Value::String(k.clone())),
                erlang_term(v)
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Unrecognised terms [{}] in {what}",
            unknown.join(",")
        ));
    }
    for (key, value) in limits {
        if !(value.is_i64() || value.is_u64()) {
            return Err(format!(
                "{key} should be a number, actually was {}",
                erlang_term(value)
            ));
        }
    }
    Ok(())
}

/// The limit `key` in `limits`: None when absent or negative (no limit), else the most allowed.
pub fn limit(limits: &LimitMap, key: &str) -> Option<u64> {
    limits.get(key)?.as_u64()
}

/// A vhost's limits in the form they are checked in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostLimits {
    /// The most connections open to the vhost at once.
    pub max_connections: Option<u64>,
    /// The most queues the vhost may hold.
    pub max_queues: Option<u64>,
}

impl VhostLimits {
    /// Reads a validated vhost-limits object.
    pub fn from_map(limits: &LimitMap) -> VhostLimits {
        VhostLimits {
            max_connections: limit(limits, "max-connections"),
            max_queues: limit(limits, "max-queues"),
        }
    }
}

/// `current` has reached `max` (so one more is refused); no limit is never reached.
pub fn reached(max: Option<u64>, current: usize) -> bool {
    max.is_some_and(|max| current as u64 >= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> LimitMap {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn negative_means_no_limit_and_zero_allows_nothing() {
        let limits = map(r#"{"max-connections": -1, "max-queues": 0}"#);
        assert_eq!(
            VhostLimits::from_map(&limits),
            VhostLimits {
                max_connections: None,
                max_queues: Some(0)
            }
        );
        assert!(reached(Some(0), 0));
        assert!(!reached(None, 1_000_000));
        assert!(reached(Some(2), 2));
        assert!(!reached(Some(2), 1));
    }

    #[test]
    fn validation_gives_rabbitmq_texts() {
        assert_eq!(
            validate(
                "vhost-limits",
                &map(r#"{"max-connections": 1}"#),
                VHOST_LIMIT_KEYS
            ),
            Ok(())
        );
        assert_eq!(
            validate("user-limits", &map(r#"{"max-queues": 1}"#), USER_LIMIT_KEYS),
            Err(r#"Unrecognised terms [{<<"max-queues">>,1}] in user-limits"#.to_owned())
        );
        assert_eq!(
            validate("limits", &map(r#"{"max-queues": "ten"}"#), VHOST_LIMIT_KEYS),
            Err(r#"max-queues should be a number, actually was <<"ten">>"#.to_owned())
        );
        assert!(validate(
            "vhost-limits",
            &map(r#"{"max-queues": 1.5}"#),
            VHOST_LIMIT_KEYS
        )
        .is_err());
    }
}
