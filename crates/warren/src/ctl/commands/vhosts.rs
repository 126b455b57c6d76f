//! Virtual hosts: `add_vhost`, `delete_vhost`, `set_vhost_limits`, and tracing (`trace_on`, `trace_off`, which
//! set the vhost's `tracing` field through `PUT /api/vhosts/V`, as RabbitMQ's management API does).

use serde_json::{json, Value};

use super::json_object;
use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// The default queue types a vhost can have.
const QUEUE_TYPES: [&str; 3] = ["classic", "quorum", "stream"];

/// `add_vhost <vhost> [--description D] [--tags a,b] [--default-queue-type T]`.
pub(super) fn add_vhost(
    ctx: &Ctx,
    vhost: &str,
    description: Option<&str>,
    tags: Option<&str>,
    default_queue_type: Option<&str>,
) -> Result<(), CtlError> {
    if let Some(other) = default_queue_type.filter(|t| !QUEUE_TYPES.contains(t)) {
        return Err(CtlError::Data(format!(
            "unknown default queue type '{other}': it is classic, quorum or stream"
        )));
    }
    ctx.banner(&format!("Adding vhost \"{vhost}\" ..."));
    let mut body = json!({});
    if let Some(description) = description {
        body["description"] = json!(description);
    }
    if let Some(tags) = tags {
        body["tags"] = json!(tags);
    }
    if let Some(queue_type) = default_queue_type {
        body["default_queue_type"] = json!(queue_type);
    }
    ctx.api.put(&["vhosts", vhost], &body)?;
    Ok(())
}

/// `delete_vhost <vhost>`.
pub(super) fn delete_vhost(ctx: &Ctx, vhost: &str) -> Result<(), CtlError> {
    ctx.banner(&format!("Deleting vhost \"{vhost}\" ..."));
    ctx.api
        .delete(&["vhosts", vhost], &[], &[])
        .or_missing(|| CtlError::no_such_vhost(vhost))
}

/// `set_vhost_limits [-p vhost] <definition>`: each of `max-connections` and `max-queues` given is set (a
/// negative value lifts it); any other key is refused before anything is changed.
pub(super) fn set_vhost_limits(ctx: &Ctx, definition: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Setting vhost limits to \"{definition}\" for vhost \"{}\" ...",
        ctx.vhost
    ));
    let limits = json_object("the vhost limits", definition)?;
    let limits = super::limits("vhost", &limits, &["max-connections", "max-queues"])?;
    for (name, value) in limits {
        ctx.api
            .put(
                &["vhost-limits", &ctx.vhost, name],
                &json!({ "value": value }),
            )
            .or_missing(|| CtlError::no_such_vhost(&ctx.vhost))?;
    }
    Ok(())
}

/// `trace_on` / `trace_off [-p vhost]`: the vhost is stored again with `tracing` set, its description, tags and
/// default queue type kept.
pub(super) fn trace(ctx: &Ctx, on: bool) -> Result<(), CtlError> {
    let vhost = ctx.vhost.as_str();
    ctx.banner(&if on {
        format!("Starting tracing for vhost \"{vhost}\" ...")
    } else {
        format!("Stopping tracing for vhost \"{vhost}\" ...")
    });
    let record = ctx
        .api
        .get(&["vhosts", vhost])
        .or_missing(|| CtlError::no_such_vhost(vhost))?;
    ctx.api
        .put(&["vhosts", vhost], &traced(&record, on))
        .or_missing(|| CtlError::no_such_vhost(vhost))?;
    ctx.message(&if on {
        format!("Trace enabled for vhost {vhost}")
    } else {
        format!("Trace disabled for vhost {vhost}")
    });
    Ok(())
}

/// The body that stores vhost `record` (as `GET /api/vhosts/V` gave it) again with `tracing` set to `on`, keeping
/// its description, tags and default queue type (a PUT without them would clear them).
fn traced(record: &Value, on: bool) -> Value {
    let mut body = json!({ "tracing": on });
    if let Some(description) = record.get("description").and_then(Value::as_str) {
        body["description"] = json!(description);
    }
    match record.get("tags") {
        Some(Value::Array(tags)) => {
            let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
            body["tags"] = json!(tags.join(","));
        }
        Some(Value::String(tags)) => body["tags"] = json!(tags),
        _ => {}
    }
    if let Some(queue_type) = record
        .get("default_queue_type")
        .and_then(Value::as_str)
        .filter(|t| QUEUE_TYPES.contains(t))
    {
        body["default_queue_type"] = json!(queue_type);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_keeps_the_vhosts_metadata() {
        // RabbitMQ 3.10.8's GET /api/vhosts/v1, shortened.
        let record = json!({"name": "v1", "description": "orders", "tags": ["a", "b"],
                            "default_queue_type": "undefined", "tracing": false});
        assert_eq!(
            traced(&record, true),
            json!({"tracing": true, "description": "orders", "tags": "a,b"})
        );
        assert_eq!(
            traced(&json!({"name": "/"}), false),
            json!({"tracing": false})
        );
    }
}
