//! Policies: `set_policy`, `set_operator_policy` and `clear_policy` in a vhost (`-p`).

use serde_json::json;

use super::json_object;
use crate::ctl::api::OrMissing;
use crate::ctl::args::PolicyArgs;
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// The `--apply-to` values RabbitMQ takes (3.10 knows all, queues, exchanges; 3.12+ the per-type ones).
const TARGETS: [&str; 6] = [
    "all",
    "queues",
    "classic_queues",
    "quorum_queues",
    "streams",
    "exchanges",
];

/// `--apply-to` checked, as a data error (exit 65) when RabbitMQ has no such target.
fn target(apply_to: &str) -> Result<&str, CtlError> {
    if TARGETS.contains(&apply_to) {
        Ok(apply_to)
    } else {
        Err(CtlError::Data(format!(
            "--apply-to {apply_to}: it is one of {}",
            TARGETS.join(", ")
        )))
    }
}

/// `set_policy [-p vhost] [--priority N] [--apply-to X] <name> <pattern> <definition>` (and, with `operator`,
/// `set_operator_policy`). The node checks the definition's keys; its refusal is a data error (exit 65).
pub(super) fn set_policy(ctx: &Ctx, policy: &PolicyArgs, operator: bool) -> Result<(), CtlError> {
    let what = if operator {
        "operator policy override"
    } else {
        "policy"
    };
    ctx.banner(&format!(
        "Setting {what} \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{}\" ...",
        policy.name, policy.pattern, policy.definition, policy.priority, ctx.vhost
    ));
    let definition = json_object("the policy definition", &policy.definition)?;
    let body = json!({
        "pattern": policy.pattern,
        "apply-to": target(&policy.apply_to)?,
        "priority": policy.priority,
        "definition": definition,
    });
    let kind = if operator {
        "operator-policies"
    } else {
        "policies"
    };
    ctx.api
        .put(&[kind, &ctx.vhost, &policy.name], &body)
        .or_missing(|| CtlError::no_such_vhost(&ctx.vhost))
}

/// `clear_policy [-p vhost] <name>`.
pub(super) fn clear_policy(ctx: &Ctx, name: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Clearing policy \"{name}\" on vhost \"{}\" ...",
        ctx.vhost
    ));
    ctx.api
        .delete(&["policies", &ctx.vhost, name], &[], &[])
        .map_err(|error| match error {
            crate::ctl::api::ApiError::NotFound => ctx.missing_in_vhost(|| {
                CtlError::Data(format!(
                    "Parameter does not exist: no policy \"{name}\" in vhost \"{}\"",
                    ctx.vhost
                ))
            }),
            other => other.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_to_takes_rabbitmqs_targets_only() {
        assert_eq!(target("queues").map_err(|e| e.exit_code()), Ok("queues"));
        assert_eq!(target("all").map_err(|e| e.exit_code()), Ok("all"));
        assert_eq!(
            target("topics").map(drop).map_err(|e| e.exit_code()),
            Err(65)
        );
    }
}
