//! Checking the access sections of a definitions file (users, vhosts, permissions, topic permissions) and its
//! settings (policies, runtime and global parameters), as `rabbit_definitions` and the modules it calls check them.

use serde_json::{Map, Value};

use super::validate::{as_object, Checker};
use crate::auth::limits::{self, LimitMap};
use crate::auth::password::{hash_password, HashingAlgorithm};
use crate::auth::users::{
    PermissionDefinition, PermissionRegex, TopicPermissionDefinition, UserDefinition,
};
use crate::meta::{PolicyDef, VhostDef};
use crate::policy::{Policy, PolicyInput, PolicyKind};
use crate::vhost::parse_default_queue_type;

/// RabbitMQ's limit on a user's tags (`?MAX_USER_TAGS`).
const MAX_USER_TAGS: usize = 32;

/// `users[i]`: `rabbit_auth_backend_internal:put_user/3`. An existing user is replaced (hash, tags, limits).
pub(super) fn user(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let Some(name) = c.string(path, e, "name") else {
        return;
    };
    if name.is_empty() {
        return c.error(&format!("{path}.name"), "must not be empty");
    }
    let tags = match e.get("tags") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| t.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<Vec<_>>>(),
        // RabbitMQ also takes "tag1,tag2".
        Some(Value::String(s)) => Some(
            s.split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        ),
        None | Some(Value::Null) => {
            return c.error(
                &format!("{path}.tags"),
                "missing (RabbitMQ refuses a user without tags: tags_not_present)",
            )
        }
        Some(_) => None,
    };
    let Some(tags) = tags else {
        return c.error(
            &format!("{path}.tags"),
            "must be a list of strings or a comma-separated string",
        );
    };
    if tags.len() > MAX_USER_TAGS {
        return c.error(
            &format!("{path}.tags"),
            format!("more than {MAX_USER_TAGS} tags"),
        );
    }
    let Some(limits) = c.object(path, e, "limits") else {
        return;
    };
    if !limits_valid(
        c,
        &format!("{path}.limits"),
        "user-limits",
        &limits,
        limits::USER_LIMIT_KEYS,
    ) {
        return;
    }
    let algorithm_name = match e.get("hashing_algorithm") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => default_algorithm(c.version.as_deref()).name().to_owned(),
        Some(other) => {
            return c.error(
                &format!("{path}.hashing_algorithm"),
                format!("must be a string, not {other}"),
            )
        }
    };
    let password_hash = match (e.get("password"), e.get("password_hash")) {
        (Some(_), Some(_)) => {
            return c.error(
                path,
                "both password and password_hash are given (RabbitMQ: both_password_and_password_hash_are_provided)",
            )
        }
        (Some(Value::String(password)), None) => {
            let Some(algorithm) = HashingAlgorithm::from_name(&algorithm_name) else {
                let message = format!("unsupported hashing algorithm '{algorithm_name}'");
                return c.error(&format!("{path}.hashing_algorithm"), message);
            };
            hash_password(algorithm, password)
        }
        (None, Some(Value::String(hash))) => hash.clone(),
        // A user without a password: it logs in only with EXTERNAL (certificates).
        (None, None) => String::new(),
        (Some(_), None) => return c.error(&format!("{path}.password"), "must be a string"),
        (None, Some(_)) => return c.error(&format!("{path}.password_hash"), "must be a string"),
    };
    let user = UserDefinition {
        name: name.clone(),
        password_hash,
        hashing_algorithm: algorithm_name,
        tags,
        limits,
    };
    if let Err(message) = user.validate() {
        return c.error(path, message);
    }
    c.users.insert(name);
    c.plan.batch.users.push(user);
}

/// The hashing module RabbitMQ assumes for a user exported without one (`hashing_algorithm/2`): MD5 before 3.6.
fn default_algorithm(version: Option<&str>) -> HashingAlgorithm {
    match version {
        Some(v)
            if ["3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5."]
                .iter()
                .any(|p| v.starts_with(p)) =>
        {
            HashingAlgorithm::Md5
        }
        _ => HashingAlgorithm::Sha256,
    }
}

/// Checks a limits object as RabbitMQ does (`rabbit_parameter_validation`, its texts), reporting at `path`.
fn limits_valid(
    c: &mut Checker<'_>,
    path: &str,
    what: &str,
    limits: &LimitMap,
    keys: &[&str],
) -> bool {
    match limits::validate(what, limits, keys) {
        Ok(()) => true,
        Err(message) => {
            c.error(path, message);
            false
        }
    }
}

/// `vhosts[i]`: `rabbit_definitions:add_vhost/2`. Description and tags are accepted and not kept (Warren stores
/// none); the default queue type is kept; what would change behaviour if ignored (a `stream` default, tracing) is
/// refused.
/// `limits` here is informational, as in RabbitMQ: limits are imported from the `vhost-limits` parameters.
pub(super) fn vhost(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let Some(name) = c.string(path, e, "name") else {
        return;
    };
    if name.is_empty() {
        return c.error(&format!("{path}.name"), "must not be empty");
    }
    let Some(metadata) = c.object(path, e, "metadata") else {
        return;
    };
    let default_queue_type = match metadata
        .get("default_queue_type")
        .or_else(|| e.get("default_queue_type"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => match parse_default_queue_type(t) {
            Ok(parsed) => parsed.map(|_| t.clone()),
            Err(why) => return c.error(&format!("{path}.metadata.default_queue_type"), why),
        },
        Some(other) => {
            return c.error(
                &format!("{path}.metadata.default_queue_type"),
                format!("must be a string, not {other}"),
            )
        }
    };
    if e.get("tracing") == Some(&Value::Bool(true)) {
        return c.error(
            &format!("{path}.tracing"),
            "Warren does not support message tracing (the firehose)",
        );
    }
    let def = c
        .stored
        .vhosts
        .iter()
        .find(|v| v.name == name)
        .cloned()
        .unwrap_or_else(|| VhostDef {
            name: name.clone(),
            limits: LimitMap::new(),
            default_queue_type: None,
        });
    let def = VhostDef {
        default_queue_type,
        ..def
    };
    c.vhosts.insert(name);
    c.plan.batch.vhosts.push(def);
}

/// Sets the limits of `vhost` (known to exist) in the batch: on its record from the file, or on a copy of its
/// stored record. Like RabbitMQ's `vhost-limits` parameter, the object replaces the limits it had.
fn set_vhost_limits(c: &mut Checker<'_>, vhost: &str, value: LimitMap) {
    if let Some(def) = c
        .plan
        .batch
        .vhosts
        .iter_mut()
        .rev()
        .find(|v| v.name == vhost)
    {
        def.limits = value;
        return;
    }
    if let Some(stored) = c.stored.vhosts.iter().find(|v| v.name == vhost) {
        c.plan.batch.vhosts.push(VhostDef {
            limits: value,
            ..stored.clone()
        });
    }
}

/// `permissions[i]`: `rabbit_auth_backend_internal:set_permissions/6`.
pub(super) fn permission(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let (Some(user), Some(vhost)) = (user_of(c, path, e), c.vhost_of(path, e)) else {
        return;
    };
    let [Some(configure), Some(write), Some(read)] =
        ["configure", "write", "read"].map(|k| regex(c, path, e, k))
    else {
        return;
    };
    c.plan.batch.permissions.push(PermissionDefinition {
        user,
        vhost,
        configure,
        write,
        read,
    });
}

/// `topic_permissions[i]`: `rabbit_auth_backend_internal:set_topic_permissions/6`.
pub(super) fn topic_permission(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let (Some(user), Some(vhost)) = (user_of(c, path, e), c.vhost_of(path, e)) else {
        return;
    };
    let Some(exchange) = c.string(path, e, "exchange") else {
        return;
    };
    let [Some(write), Some(read)] = ["write", "read"].map(|k| regex(c, path, e, k)) else {
        return;
    };
    c.plan
        .batch
        .topic_permissions
        .push(TopicPermissionDefinition {
            user,
            vhost,
            exchange,
            write,
            read,
        });
}

/// The `user` of `entry`, which must exist in the store or the file.
fn user_of(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) -> Option<String> {
    let user = c.string(path, e, "user")?;
    if c.users.contains(&user) {
        Some(user)
    } else {
        c.error(
            &format!("{path}.user"),
            format!("user '{user}' does not exist and is not in the file"),
        );
        None
    }
}

/// The permission expression `key` of `entry`, compiled to check it.
fn regex(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>, key: &str) -> Option<String> {
    let pattern = c.string(path, e, key)?;
    match PermissionRegex::new(&pattern) {
        Ok(_) => Some(pattern),
        Err(message) => {
            c.error(&format!("{path}.{key}"), message);
            None
        }
    }
}

/// `global_parameters[i]`. `cluster_name` is Warren's `[server] cluster_name` setting and `internal_*` ones are
/// RabbitMQ's own bookkeeping (`internal_cluster_id`): both accepted with a note; others refused.
pub(super) fn global_parameter(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let Some(name) = c.string(path, e, "name") else {
        return;
    };
    if name == "cluster_name" {
        let value = e.get("value").cloned().unwrap_or(Value::Null);
        c.note(
            path,
            format!(
                "cluster_name {value} not imported: Warren takes it from [server] cluster_name"
            ),
        );
    } else if name.starts_with("internal") {
        c.note(
            path,
            format!("{name} ignored (RabbitMQ's internal bookkeeping)"),
        );
    } else {
        c.error(
            &format!("{path}.name"),
            format!("unknown global parameter '{name}'; Warren knows cluster_name"),
        );
    }
}

/// `policies[i]` (and, with `operator`, the value of an `operator_policy` parameter): `rabbit_policy:set/7`.
pub(super) fn policy(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>, operator: bool) {
    let Some(vhost) = c.vhost_of(path, e) else {
        return;
    };
    let Some(name) = c.string(path, e, "name") else {
        return;
    };
    policy_value(c, path, &vhost, &name, e, operator);
}

/// The pattern, apply-to, priority and definition of a policy named `name` in `vhost`, found in `e`.
fn policy_value(
    c: &mut Checker<'_>,
    path: &str,
    vhost: &str,
    name: &str,
    e: &Map<String, Value>,
    operator: bool,
) {
    let Some(pattern) = c.string(path, e, "pattern") else {
        return;
    };
    let apply_to = match e.get("apply-to") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return c.error(
                &format!("{path}.apply-to"),
                format!("must be a string, not {other}"),
            )
        }
    };
    let Some(definition) = e.get("definition").and_then(as_object) else {
        return c.error(&format!("{path}.definition"), "must be an object");
    };
    let input = PolicyInput {
        pattern,
        apply_to,
        priority: e.get("priority").cloned(),
        definition: Value::Object(definition),
    };
    let kind = if operator {
        PolicyKind::Operator
    } else {
        PolicyKind::Policy
    };
    match Policy::parse(kind, vhost, name, &input) {
        Ok(policy) => c.plan.batch.policies.push(PolicyDef {
            operator,
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            pattern: policy.pattern,
            apply_to: policy.apply_to.as_str().to_owned(),
            priority: policy.priority,
            definition: policy.definition,
        }),
        Err(error) => c.error(path, error.to_string()),
    }
}

/// `parameters[i]`: vhost-scoped runtime parameters. Warren has `vhost-limits`, `operator_policy` (how RabbitMQ
/// exports operator policies), `shovel`, `federation-upstream` and `federation-upstream-set`; the components of
/// plugins it does not have are refused.
pub(super) fn parameter(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let Some(vhost) = c.vhost_of(path, e) else {
        return;
    };
    let (Some(component), Some(name)) = (c.string(path, e, "component"), c.string(path, e, "name"))
    else {
        return;
    };
    let value_path = format!("{path}.value");
    let Some(value) = e.get("value").and_then(as_object) else {
        return c.error(&value_path, "must be an object");
    };
    match component.as_str() {
        "vhost-limits" => {
            if name != "limits" {
                return c.error(
                    &format!("{path}.name"),
                    "a vhost-limits parameter is named 'limits'",
                );
            }
            if limits_valid(c, &value_path, "limits", &value, limits::VHOST_LIMIT_KEYS) {
                set_vhost_limits(c, &vhost, value);
            }
        }
        "operator_policy" => policy_value(c, &value_path, &vhost, &name, &value, true),
        plugin if crate::broker::parameters::PLUGIN_COMPONENTS.contains(&plugin) => {
            let value = Value::Object(value);
            match crate::broker::parameters::validate(plugin, &name, &value) {
                Ok(()) => c.plan.batch.parameters.push(crate::meta::ParameterDef {
                    vhost,
                    component,
                    name,
                    value,
                }),
                Err(error) => c.error(&value_path, error),
            }
        }
        other => c.error(
            &format!("{path}.component"),
            format!("Warren has no '{other}' component; not imported"),
        ),
    }
}
