//! Users, permissions and topic permissions as RabbitMQ's definitions and management API shape them (the JSON
//! objects `{"name","password_hash","hashing_algorithm","tags","limits"}` and
//! `{"user","vhost","configure","write","read"}`), and the compiled form a permission is checked in.

use std::sync::Arc;

use fancy_regex::Regex;
use serde::{Deserialize, Serialize};

use super::password::{hash_password, is_valid_hash, HashingAlgorithm};

/// The tags RabbitMQ gives meaning to; any other tag is kept as given (plugins read their own).
pub const KNOWN_TAGS: &[&str] = &[
    "administrator",
    "monitoring",
    "policymaker",
    "management",
    "impersonator",
];

/// A user as stored and exported. The password is only ever held hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDefinition {
    /// The login name.
    pub name: String,
    /// base64(salt ++ digest); empty when the user has no password (it cannot log in with PLAIN or AMQPLAIN).
    pub password_hash: String,
    /// RabbitMQ's name of the hashing module (`rabbit_password_hashing_sha256`, ...).
    pub hashing_algorithm: String,
    /// Its tags (`administrator`, `monitoring`, ...), in the order given.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Per-user limits (`max-connections`, `max-channels`), checked at connection.open and channel.open.
    #[serde(default)]
    pub limits: serde_json::Map<String, serde_json::Value>,
}

impl UserDefinition {
    /// A user with `password` hashed by RabbitMQ's default module (SHA-256, random salt).
    pub fn with_password(name: &str, password: &str, tags: Vec<String>) -> UserDefinition {
        UserDefinition {
            name: name.to_owned(),
            password_hash: hash_password(HashingAlgorithm::Sha256, password),
            hashing_algorithm: HashingAlgorithm::Sha256.name().to_owned(),
            tags,
            limits: serde_json::Map::new(),
        }
    }

    /// Its hashing module; an unknown name is refused when the user is added, so this is Some for stored users.
    pub fn algorithm(&self) -> Option<HashingAlgorithm> {
        HashingAlgorithm::from_name(&self.hashing_algorithm)
    }

    /// Checks the name, the algorithm and the hash's shape; the error is the text an admin call answers with.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("user name must not be empty".to_owned());
        }
        if self.name == super::access::INTERNAL_USER {
            return Err(format!(
                "the user name '{}' is reserved for Warren's own shovels and federation links",
                self.name
            ));
        }
        let Some(algorithm) = self.algorithm() else {
            return Err(format!(
                "unsupported hashing algorithm '{}'",
                self.hashing_algorithm
            ));
        };
        super::limits::validate("user-limits", &self.limits, super::limits::USER_LIMIT_KEYS)?;
        if !is_valid_hash(algorithm, &self.password_hash) {
            return Err(format!(
                "password_hash of user '{}' is not a {} hash",
                self.name, self.hashing_algorithm
            ));
        }
        Ok(())
    }
}

/// A user's configure, write and read regular expressions in one vhost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDefinition {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// Names the user may declare and delete.
    pub configure: String,
    /// Names the user may publish to and bind to (queues and destination exchanges).
    pub write: String,
    /// Names the user may consume from, purge, and bind from.
    pub read: String,
}

/// A user's write and read regular expressions for routing keys on one topic exchange of a vhost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissionDefinition {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// The topic exchange.
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Binding keys the user may bind with.
    pub read: String,
}

/// One of the three operations a permission grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Declare and delete.
    Configure,
    /// Publish to, bind to.
    Write,
    /// Consume, get, purge, bind from.
    Read,
}

impl Access {
    /// The word RabbitMQ's refusals start with.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// A permission regex as RabbitMQ applies it (`re:run(Name, Regex)`): searched, not anchored, so `^` and `$` are
/// the user's to write; the empty string stands for `^$` (matches only the empty name).
#[derive(Clone, Debug)]
pub(crate) struct PermissionRegex(Regex);

impl PermissionRegex {
    /// Compiles `pattern`; the error names it.
    pub(crate) fn new(pattern: &str) -> Result<PermissionRegex, String> {
        let pattern = if pattern.is_empty() { "^$" } else { pattern };
        Regex::new(pattern)
            .map(PermissionRegex)
            .map_err(|e| format!("invalid regular expression '{pattern}': {e}"))
    }

    /// Whether `name` matches; an expression too costly to evaluate matches nothing.
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.is_match(name).unwrap_or(false)
    }
}

/// A permission compiled once when set, checked many times.
#[derive(Debug)]
pub(crate) struct CompiledPermission {
    /// As set (listed and stored as given).
    pub(crate) definition: PermissionDefinition,
    configure: PermissionRegex,
    write: PermissionRegex,
    read: PermissionRegex,
}

impl CompiledPermission {
    /// Compiles the three expressions.
    pub(crate) fn new(definition: PermissionDefinition) -> Result<Arc<CompiledPermission>, String> {
        Ok(Arc::new(CompiledPermission {
            configure: PermissionRegex::new(&definition.configure)?,
            write: PermissionRegex::new(&definition.write)?,
            read: PermissionRegex::new(&definition.read)?,
            definition,
        }))
    }

    /// Whether `access` to the resource `name` is granted.
    pub(crate) fn allows(&self, access: Access, name: &str) -> bool {
        match access {
            Access::Configure => self.configure.matches(name),
            Access::Write => self.write.matches(name),
            Access::Read => self.read.matches(name),
        }
    }
}

/// A topic permission, its expressions kept as text: `{username}` and `{vhost}` are expanded per check before
/// compiling (RabbitMQ expands then runs the expression; the expanded form is cached by the caller).
#[derive(Debug)]
pub(crate) struct CompiledTopicPermission {
    /// As set.
    pub(crate) definition: TopicPermissionDefinition,
}

impl CompiledTopicPermission {
    /// Checks the expressions compile (with the variables expanded to plain words), so a bad one is refused when
    /// set rather than at publish time.
    pub(crate) fn new(
        definition: TopicPermissionDefinition,
    ) -> Result<Arc<CompiledTopicPermission>, String> {
        for pattern in [&definition.write, &definition.read] {
            PermissionRegex::new(&expand(pattern, "u", "v"))?;
        }
        Ok(Arc::new(CompiledTopicPermission { definition }))
    }

    /// Whether `routing_key` is granted `access` (write or read) for `user` in `vhost`. An expression that does
    /// not compile once expanded (a user name holding regex syntax) grants nothing.
    pub(crate) fn allows(
        &self,
        access: Access,
        user: &str,
        vhost: &str,
        routing_key: &str,
    ) -> bool {
        let pattern = match access {
            Access::Write => &self.definition.write,
            Access::Read => &self.definition.read,
            Access::Configure => return true,
        };
        PermissionRegex::new(&expand(pattern, user, vhost)).is_ok_and(|re| re.matches(routing_key))
    }
}

/// RabbitMQ's topic permission variables: `{username}` and `{vhost}` replaced by their values as they are (not
/// escaped). `{client_id}` is MQTT's and stays as written for AMQP 0-9-1 connections, as in RabbitMQ.
fn expand(pattern: &str, user: &str, vhost: &str) -> String {
    if !pattern.contains('{') {
        return pattern.to_owned();
    }
    pattern
        .replace("{username}", user)
        .replace("{vhost}", vhost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(configure: &str, write: &str, read: &str) -> Arc<CompiledPermission> {
        CompiledPermission::new(PermissionDefinition {
            user: "u".into(),
            vhost: "/".into(),
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        })
        .unwrap()
    }

    #[test]
    fn regexes_are_searched_not_anchored_and_empty_means_only_the_empty_name() {
        let p = perm("app", "^app$", "");
        assert!(p.allows(Access::Configure, "my-app-queue"));
        assert!(!p.allows(Access::Write, "my-app"));
        assert!(p.allows(Access::Write, "app"));
        assert!(!p.allows(Access::Read, "anything"));
        assert!(p.allows(Access::Read, ""));
        assert!(perm(".*", ".*", ".*").allows(Access::Read, "amq.gen-x"));
    }

    #[test]
    fn a_bad_regex_is_refused_when_set() {
        assert!(CompiledPermission::new(PermissionDefinition {
            user: "u".into(),
            vhost: "/".into(),
            configure: "(".into(),
            write: "".into(),
            read: "".into(),
        })
        .is_err());
    }

    #[test]
    fn topic_permissions_expand_username_and_vhost() {
        let t = CompiledTopicPermission::new(TopicPermissionDefinition {
            user: "alice".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{username}\\.".into(),
            read: "^{vhost}-{client_id}$".into(),
        })
        .unwrap();
        assert!(t.allows(Access::Write, "alice", "/", "alice.orders"));
        assert!(!t.allows(Access::Write, "alice", "/", "bob.orders"));
        assert!(t.allows(Access::Read, "alice", "prod", "prod-{client_id}"));
    }

    #[test]
    fn users_validate_their_hash_and_algorithm() {
        let user = UserDefinition::with_password("u", "pw", vec!["management".into()]);
        assert_eq!(user.validate(), Ok(()));
        let bad = UserDefinition {
            hashing_algorithm: "rabbit_password_hashing_bcrypt".into(),
            ..user.clone()
        };
        assert!(bad.validate().is_err());
        let short = UserDefinition {
            password_hash: "AAAA".into(),
            ..user
        };
        assert!(short.validate().is_err());
    }

    #[test]
    fn users_serialize_in_rabbitmq_shape() {
        let json = r#"{"name":"guest","password_hash":"kI3GCrswBLNZQzHJJ95QLoyfAVooYhnvf7jbqiW9BjOYUloe",
            "hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"],"limits":{}}"#;
        let user: UserDefinition = serde_json::from_str(json).unwrap();
        assert_eq!(user.tags, vec!["administrator".to_owned()]);
        assert_eq!(user.validate(), Ok(()));
        let back = serde_json::to_value(&user).unwrap();
        assert_eq!(back["hashing_algorithm"], "rabbit_password_hashing_sha256");
    }
}
