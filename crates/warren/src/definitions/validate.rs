//! Reading a definitions file: every entry is checked against the file itself and what the store already holds,
//! and every problem is collected with its JSON path (`queues[3].arguments`), so a file is either imported whole
//! or not at all. What RabbitMQ skips on import (existing queues and exchanges, `amq.*` names) is skipped here too,
//! with a note; what Warren cannot honour is refused, never dropped silently. The section checks live in
//! `access` (users, vhosts, permissions, parameters, policies) and `topology` (exchanges, queues, bindings).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{access, topology};
use crate::meta::{Definitions, ImportBatch};

/// One entry of a definitions file that cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryError {
    /// Where it is in the file, as `section[index].key`.
    pub path: String,
    /// Why it cannot be imported.
    pub message: String,
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A checked file: what to store, and what was skipped (with the path and the reason).
#[derive(Debug, Default)]
pub(crate) struct ImportPlan {
    /// Everything to write, in one transaction.
    pub(crate) batch: ImportBatch,
    /// Entries left out the way RabbitMQ leaves them out (existing objects, `amq.*` names), and accepted settings
    /// that Warren takes from elsewhere.
    pub(crate) notes: Vec<String>,
    /// How many users, vhosts, permissions, policies and bindings of the file are stored already as they are (left
    /// out of the batch, so that importing the same file again writes nothing).
    pub(crate) unchanged: usize,
}

/// The top-level keys RabbitMQ (3.6 to 4.x, `rabbitmqctl` and the management API) writes besides the sections.
const INFORMATIONAL_KEYS: &[&str] = &[
    "rabbit_version",
    "rabbitmq_version",
    "product_name",
    "product_version",
    "rabbitmq_definition_format",
    "original_cluster_name",
    "explanation",
];

/// The sections, in the order RabbitMQ imports them.
const SECTIONS: &[&str] = &[
    "users",
    "vhosts",
    "permissions",
    "exchanges",
    "topic_permissions",
    "global_parameters",
    "policies",
    "parameters",
    "queues",
    "bindings",
];

/// The checking state: the errors so far, and what exists (stored, or accepted from the file so far).
pub(crate) struct Checker<'s> {
    /// Every problem found.
    pub(crate) errors: Vec<EntryError>,
    /// The plan being built.
    pub(crate) plan: ImportPlan,
    /// What the store holds now.
    pub(crate) stored: &'s Definitions,
    /// Vhosts stored or in the file.
    pub(crate) vhosts: HashSet<String>,
    /// Users stored or in the file.
    pub(crate) users: HashSet<String>,
    /// Exchanges (vhost, name) stored or accepted from the file, with their type; the predeclared `amq.*` ones are
    /// looked up separately.
    pub(crate) exchanges: HashMap<(String, String), String>,
    /// Queues (vhost, name) stored or accepted from the file.
    pub(crate) queues: HashSet<(String, String)>,
    /// Transient exchanges of the file, left out (bindings to them are left out too).
    pub(crate) transient_exchanges: HashSet<(String, String)>,
    /// Transient or exclusive queues of the file, left out.
    pub(crate) transient_queues: HashSet<(String, String)>,
    /// The version the file says it was exported by (old ones imply md5 password hashes).
    pub(crate) version: Option<String>,
}

/// Checks a parsed definitions file against `stored`; Err lists every problem.
pub(crate) fn check(file: &Value, stored: &Definitions) -> Result<ImportPlan, Vec<EntryError>> {
    let mut c = Checker {
        errors: Vec::new(),
        plan: ImportPlan::default(),
        stored,
        vhosts: stored.vhosts.iter().map(|v| v.name.clone()).collect(),
        users: stored.users.iter().map(|u| u.name.clone()).collect(),
        exchanges: stored
            .exchanges
            .iter()
            .map(|x| ((x.vhost.clone(), x.name.clone()), x.kind.clone()))
            .collect(),
        queues: stored
            .queues
            .iter()
            .map(|q| (q.vhost.clone(), q.name.clone()))
            .collect(),
        transient_exchanges: HashSet::new(),
        transient_queues: HashSet::new(),
        version: None,
    };
    let Value::Object(root) = file else {
        return Err(vec![EntryError {
            path: "$".to_owned(),
            message: "a definitions file is a JSON object".to_owned(),
        }]);
    };
    for key in root.keys() {
        if !SECTIONS.contains(&key.as_str()) && !INFORMATIONAL_KEYS.contains(&key.as_str()) {
            c.error(
                key,
                "unknown section; Warren imports ".to_owned() + &SECTIONS.join(", "),
            );
        }
    }
    c.version = ["rabbitmq_version", "rabbit_version"]
        .iter()
        .find_map(|k| root.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    // Users and vhosts first: the other sections refer to them.
    for (path, entry) in c.entries(root, "users") {
        access::user(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "vhosts") {
        access::vhost(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "permissions") {
        access::permission(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "topic_permissions") {
        access::topic_permission(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "global_parameters") {
        access::global_parameter(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "policies") {
        access::policy(&mut c, &path, entry, false);
    }
    for (path, entry) in c.entries(root, "parameters") {
        access::parameter(&mut c, &path, entry);
    }
    // Exchanges before queues (dead-letter and alternate exchanges are only names), both before bindings.
    for (path, entry) in c.entries(root, "exchanges") {
        topology::exchange(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "queues") {
        topology::queue(&mut c, &path, entry);
    }
    for (path, entry) in c.entries(root, "bindings") {
        topology::binding(&mut c, &path, entry);
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let mut plan = c.plan;
    drop_unchanged(&mut plan, stored);
    Ok(plan)
}

/// Leaves out of the batch every record stored already as it is.
fn drop_unchanged(plan: &mut ImportPlan, stored: &Definitions) {
    let b = &mut plan.batch;
    let before = b.users.len()
        + b.vhosts.len()
        + b.permissions.len()
        + b.topic_permissions.len()
        + b.policies.len()
        + b.bindings.len();
    b.users.retain(|x| !stored.users.contains(x));
    b.vhosts.retain(|x| !stored.vhosts.contains(x));
    b.permissions.retain(|x| !stored.permissions.contains(x));
    b.topic_permissions
        .retain(|x| !stored.topic_permissions.contains(x));
    b.policies.retain(|x| !stored.policies.contains(x));
    b.bindings.retain(|x| !stored.bindings.contains(x));
    let after = b.users.len()
        + b.vhosts.len()
        + b.permissions.len()
        + b.topic_permissions.len()
        + b.policies.len()
        + b.bindings.len();
    plan.unchanged = before - after;
}

impl Checker<'_> {
    /// Records a problem at `path`.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(EntryError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Records an entry left out, or a setting taken from elsewhere.
    pub(crate) fn note(&mut self, path: &str, message: impl std::fmt::Display) {
        self.plan.notes.push(format!("{path}: {message}"));
    }

    /// The objects of section `name` with their paths; a section that is not a list, or an entry that is not an
    /// object, is an error. A missing section is empty.
    fn entries<'v>(
        &mut self,
        root: &'v Map<String, Value>,
        name: &str,
    ) -> Vec<(String, &'v Map<String, Value>)> {
        let list = match root.get(name) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => {
                self.error(name, "must be a list");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{name}[{i}]");
            match entry {
                Value::Object(map) => out.push((path, map)),
                _ => self.error(&path, "must be an object"),
            }
        }
        out
    }

    /// The string `key` of `entry`, required.
    pub(crate) fn string(
        &mut self,
        path: &str,
        entry: &Map<String, Value>,
        key: &str,
    ) -> Option<String> {
        match entry.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => {
                self.error(&format!("{path}.{key}"), "missing");
                None
            }
            Some(other) => {
                self.error(
                    &format!("{path}.{key}"),
                    format!("must be a string, not {other}"),
                );
                None
            }
        }
    }

    /// The boolean `key` of `entry`, `default` when absent.
    pub(crate) fn flag(
        &mut self,
        path: &str,
        entry: &Map<String, Value>,
        key: &str,
        default: bool,
    ) -> Option<bool> {
        match entry.get(key) {
            None | Some(Value::Null) => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.error(
                    &format!("{path}.{key}"),
                    format!("must be true or false, not {other}"),
                );
                None
            }
        }
    }

    /// The `vhost` of `entry`, which must exist in the store or the file.
    pub(crate) fn vhost_of(&mut self, path: &str, entry: &Map<String, Value>) -> Option<String> {
        let vhost = self.string(path, entry, "vhost")?;
        if self.vhosts.contains(&vhost) {
            Some(vhost)
        } else {
            self.error(
                &format!("{path}.vhost"),
                format!("vhost '{vhost}' does not exist and is not in the file"),
            );
            None
        }
    }

    /// The object `key` of `entry` (`{}` when absent or null); see [`as_object`] for the forms accepted.
    pub(crate) fn object(
        &mut self,
        path: &str,
        entry: &Map<String, Value>,
        key: &str,
    ) -> Option<Map<String, Value>> {
        match entry.get(key) {
            None | Some(Value::Null) => Some(Map::new()),
            Some(value) => match as_object(value) {
                Some(map) => Some(map),
                None => {
                    self.error(
                        &format!("{path}.{key}"),
                        format!("must be an object, not {value}"),
                    );
                    None
                }
            },
        }
    }
}

/// `value` as an object: an object, or the list of `[key, value]` pairs RabbitMQ 3.10 writes for some of them
/// (vhost limits, operator policy definitions), or an empty list (how it writes no limits).
pub(crate) fn as_object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(m) => Some(m.clone()),
        Value::Array(pairs) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), v]) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}
