//! Policies and operator policies, as RabbitMQ has them: named per vhost, each a name pattern (a regular
//! expression searched in the queue's or exchange's name), what it applies to, a priority and a definition of
//! settings. The highest-priority policy matching an object applies to it, and so does the highest-priority
//! operator policy; their limits combine by RabbitMQ's rules (`merged`). Pure: the vhost keeps the set, stores it,
//! and re-resolves its queues and exchanges when it changes.

mod definition;
pub(crate) mod term;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::queue::arguments::QueueType;
use crate::queue::settings::QueueOverrides;
pub(crate) use definition::{FederationTarget, PolicyValues};

/// A policy or an operator policy (RabbitMQ's runtime parameter components `policy` and `operator_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// A policy, set by users with the policymaker tag.
    Policy,
    /// An operator policy: limits an operator imposes whatever the users' policies say.
    Operator,
}

/// What a policy applies to (`apply-to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApplyTo {
    /// Queues and exchanges.
    All,
    /// Exchanges only.
    Exchanges,
    /// Queues of every type.
    Queues,
    /// Classic queues only.
    ClassicQueues,
    /// Quorum queues only.
    QuorumQueues,
    /// Streams only (Warren has none, so it matches nothing).
    Streams,
}

impl ApplyTo {
    /// Its name in RabbitMQ's JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApplyTo::All => "all",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::Queues => "queues",
            ApplyTo::ClassicQueues => "classic_queues",
            ApplyTo::QuorumQueues => "quorum_queues",
            ApplyTo::Streams => "streams",
        }
    }

    fn parse(text: &str) -> Result<ApplyTo, PolicyError> {
        Ok(match text {
            "all" => ApplyTo::All,
            "exchanges" => ApplyTo::Exchanges,
            "queues" => ApplyTo::Queues,
            "classic_queues" => ApplyTo::ClassicQueues,
            "quorum_queues" => ApplyTo::QuorumQueues,
            "streams" => ApplyTo::Streams,
            other => {
                return Err(PolicyError::Invalid(format!(
                "apply-to '{other}' unrecognised; should be one of: 'queues', 'classic_queues',  \
                     'quorum_queues', 'streams', 'exchanges', or 'all'"
            )))
            }
        })
    }

    fn takes_queue(self, kind: QueueType) -> bool {
        match self {
            ApplyTo::All | ApplyTo::Queues => true,
            ApplyTo::ClassicQueues => kind == QueueType::Classic,
            ApplyTo::QuorumQueues => kind == QueueType::Quorum,
            ApplyTo::Streams => kind == QueueType::Stream,
            ApplyTo::Exchanges => false,
        }
    }

    fn takes_exchanges(self) -> bool {
        matches!(self, ApplyTo::All | ApplyTo::Exchanges)
    }
}

/// A policy as it is set: the body of the management API's `PUT /api/policies/{vhost}/{name}`, an entry of a
/// definitions file, a `[[policies]]` table of the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// The regular expression searched in object names.
    pub pattern: String,
    /// `all` (the default), `exchanges`, `queues`, `classic_queues`, `quorum_queues` or `streams`.
    #[serde(rename = "apply-to", default)]
    pub apply_to: Option<String>,
    /// The higher applies when several match; 0 by default.
    #[serde(default)]
    pub priority: Option<Value>,
    /// The settings, by RabbitMQ's key names (`message-ttl`, `max-length`, ...).
    pub definition: Value,
}

/// A policy as the broker lists it, in the management API's JSON shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyInfo {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// The name pattern.
    pub pattern: String,
    /// What it applies to.
    #[serde(rename = "apply-to")]
    pub apply_to: String,
    /// Its settings.
    pub definition: Value,
    /// Its priority.
    pub priority: i64,
}

/// Why a policy could not be set or cleared.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy is not valid; the text is RabbitMQ's ("<<\"abc\">> is not a valid message TTL").
    #[error("{0}")]
    Invalid(String),
    /// The vhost does not exist.
    #[error("vhost '{0}' does not exist")]
    NoSuchVhost(String),
    /// The definitions store failed to record the change.
    #[error(transparent)]
    Storage(#[from] crate::meta::MetaError),
}

/// A checked policy.
#[derive(Debug)]
pub(crate) struct Policy {
    /// Policy or operator policy.
    pub(crate) kind: PolicyKind,
    /// Its vhost.
    pub(crate) vhost: String,
    /// Its name, unique per vhost and kind.
    pub(crate) name: Arc<str>,
    /// The pattern as given.
    pub(crate) pattern: String,
    /// The pattern compiled. `fancy_regex` for the lookarounds PCRE patterns use (`^(?!amq\.).*`).
    regex: fancy_regex::Regex,
    /// What it applies to.
    pub(crate) apply_to: ApplyTo,
    /// The higher wins.
    pub(crate) priority: i64,
    /// The definition as given.
    pub(crate) definition: Value,
    /// The definition typed.
    pub(crate) values: PolicyValues,
}

impl Policy {
    /// Whether `other` sets the same as this one (kind, vhost, name, pattern, apply-to, priority, definition).
    pub(crate) fn same_as(&self, other: &Policy) -> bool {
        self.kind == other.kind
            && self.vhost == other.vhost
            && self.name == other.name
            && self.pattern == other.pattern
            && self.apply_to == other.apply_to
            && self.priority == other.priority
            && self.definition == other.definition
    }

    /// Checks `input` as RabbitMQ checks a policy of `kind` named `name` in `vhost`.
    pub(crate) fn parse(
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        input: &PolicyInput,
    ) -> Result<Policy, PolicyError> {
        let invalid = PolicyError::Invalid;
        if name.is_empty() {
            return Err(invalid("a policy needs a name".into()));
        }
        let priority = match &input.priority {
            None | Some(Value::Null) => 0,
            Some(value) => match (value.as_i64(), value.as_f64()) {
                (Some(n), _) => n,
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => f as i64,
                _ => {
                    return Err(invalid(format!(
                        "priority should be a number, actually was {}",
                        term::erlang_term(value)
                    )))
                }
            },
        };
        let regex = fancy_regex::Regex::new(&input.pattern).map_err(|e| {
            invalid(format!(
                "pattern should be regular expression but is invalid: {e}"
            ))
        })?;
        let apply_to = match &input.apply_to {
            None => ApplyTo::All,
            Some(text) => ApplyTo::parse(text)?,
        };
        let values = PolicyValues::parse(kind, &input.definition).map_err(invalid)?;
        Ok(Policy {
            kind,
            vhost: vhost.to_owned(),
            name: Arc::from(name),
            pattern: input.pattern.clone(),
            regex,
            apply_to,
            priority,
            definition: input.definition.clone(),
            values,
        })
    }

    /// The policy as it is listed.
    pub(crate) fn info(&self) -> PolicyInfo {
        PolicyInfo {
            vhost: self.vhost.clone(),
            name: self.name.to_string(),
            pattern: self.pattern.clone(),
            apply_to: self.apply_to.as_str().to_owned(),
            definition: self.definition.clone(),
            priority: self.priority,
        }
    }

    /// Whether the pattern is found in `name` (searched, not anchored, as `re:run`). A pattern that fails on a
    /// name (fancy-regex's backtracking limit) does not match it.
    fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name).unwrap_or(false)
    }
}

/// A vhost's policies and operator policies, each list highest priority first (ties by name).
#[derive(Debug, Default, Clone)]
pub(crate) struct PolicySet {
    policies: Vec<Arc<Policy>>,
    operator: Vec<Arc<Policy>>,
}

impl PolicySet {
    /// The set with `policy` added, replacing one of the same kind and name.
    pub(crate) fn with(&self, policy: Arc<Policy>) -> PolicySet {
        let mut set = self.without(policy.kind, &policy.name);
        let list = set.list_mut(policy.kind);
        list.push(policy);
        list.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        set
    }

    /// The set without the policy of `kind` named `name`.
    pub(crate) fn without(&self, kind: PolicyKind, name: &str) -> PolicySet {
        let mut set = self.clone();
        set.list_mut(kind).retain(|p| &*p.name != name);
        set
    }

    fn list_mut(&mut self, kind: PolicyKind) -> &mut Vec<Arc<Policy>> {
        match kind {
            PolicyKind::Policy => &mut self.policies,
            PolicyKind::Operator => &mut self.operator,
        }
    }

    /// The policies of `kind`, highest priority first.
    pub(crate) fn list(&self, kind: PolicyKind) -> &[Arc<Policy>] {
        match kind {
            PolicyKind::Policy => &self.policies,
            PolicyKind::Operator => &self.operator,
        }
    }

    /// The policy of `kind` named `name`.
    pub(crate) fn get(&self, kind: PolicyKind, name: &str) -> Option<&Arc<Policy>> {
        self.list(kind).iter().find(|p| &*p.name == name)
    }

    /// The policy and operator policy that apply to queue `name` of type `kind`.
    pub(crate) fn for_queue(&self, name: &str, kind: QueueType) -> Matched {
        let first = |list: &[Arc<Policy>]| {
            list.iter()
                .find(|p| p.apply_to.takes_queue(kind) && p.matches(name))
                .cloned()
        };
        Matched {
            policy: first(&self.policies),
            operator: first(&self.operator),
        }
    }

    /// The policy and operator policy that apply to exchange `name`.
    pub(crate) fn for_exchange(&self, name: &str) -> Matched {
        let first = |list: &[Arc<Policy>]| {
            list.iter()
                .find(|p| p.apply_to.takes_exchanges() && p.matches(name))
                .cloned()
        };
        Matched {
            policy: first(&self.policies),
            operator: first(&self.operator),
        }
    }
}

/// The policy and the operator policy that apply to one object.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matched {
    /// The highest-priority matching policy.
    pub(crate) policy: Option<Arc<Policy>>,
    /// The highest-priority matching operator policy.
    pub(crate) operator: Option<Arc<Policy>>,
}

impl Matched {
    /// What the two set for a queue together (`rabbit_policy:merge_operator_definitions`): where both set a
    /// limit or TTL, the lower; the operator policy's `overflow`; everything else from the policy (operator
    /// policies take no other keys).
    pub(crate) fn queue_overrides(&self) -> QueueOverrides {
        let base = self
            .policy
            .as_ref()
            .map(|p| p.values.queue.clone())
            .unwrap_or_default();
        let Some(op) = self.operator.as_ref().map(|p| &p.values.queue) else {
            return base;
        };
        let lower = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        QueueOverrides {
            message_ttl: lower(base.message_ttl, op.message_ttl),
            expires: lower(base.expires, op.expires),
            max_length: lower(base.max_length, op.max_length),
            max_length_bytes: lower(base.max_length_bytes, op.max_length_bytes),
            delivery_limit: lower(base.delivery_limit, op.delivery_limit),
            overflow: op.overflow.or(base.overflow),
            ..base
        }
    }

    /// The alternate exchange the policy sets for an exchange.
    pub(crate) fn alternate_exchange(&self) -> Option<Arc<str>> {
        let policy = self.policy.as_ref()?;
        policy.values.alternate_exchange.as_deref().map(Arc::from)
    }

    /// The names of the two, for listing.
    pub(crate) fn names(&self) -> (Option<Arc<str>>, Option<Arc<str>>) {
        (
            self.policy.as_ref().map(|p| p.name.clone()),
            self.operator.as_ref().map(|p| p.name.clone()),
        )
    }
}

#[cfg(test)]
mod tests;
