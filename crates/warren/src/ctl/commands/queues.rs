//! Queues: `purge_queue` and `delete_queue` in a vhost (`-p`).

use serde_json::Value;

use crate::ctl::api::{ApiError, OrMissing};
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// "no such queue" in the vhost, or "no such vhost" when that is what is missing (exit 65).
fn no_such_queue(ctx: &Ctx, queue: &str) -> CtlError {
    ctx.missing_in_vhost(|| {
        CtlError::Data(format!(
            "Queue '{queue}' in vhost '{}' not found",
            ctx.vhost
        ))
    })
}

/// `purge_queue [-p vhost] <queue>`.
pub(super) fn purge_queue(ctx: &Ctx, queue: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Purging queue '{queue}' in vhost '{}' ...",
        ctx.vhost
    ));
    ctx.api
        .delete(&["queues", &ctx.vhost, queue, "contents"], &[], &[])
        .or_missing(|| no_such_queue(ctx, queue))
}

/// `delete_queue [-p vhost] <queue> [--if-empty|-e] [--if-unused|-u]`: prints how many ready messages went with
/// it, as rabbitmqctl ("Queue was successfully deleted with N ready messages"); with a condition the node refuses
/// a queue that does not meet it (exit 69, the node refusing).
pub(super) fn delete_queue(
    ctx: &Ctx,
    queue: &str,
    if_empty: bool,
    if_unused: bool,
) -> Result<(), CtlError> {
    let mut banner = format!("Deleting queue '{queue}' on vhost '{}' ", ctx.vhost);
    banner.push_str(match (if_empty, if_unused) {
        (false, false) => "...",
        (true, false) => "if queue is empty ...",
        (false, true) => "if queue is unused ...",
        (true, true) => "if queue is empty and if queue is unused ...",
    });
    ctx.banner(&banner);
    let info = ctx
        .api
        .get(&["queues", &ctx.vhost, queue])
        .or_missing(|| no_such_queue(ctx, queue))?;
    let ready = info
        .get("messages_ready")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut query = Vec::new();
    if if_empty {
        query.push(("if-empty", "true"));
    }
    if if_unused {
        query.push(("if-unused", "true"));
    }
    let result = ctx.api.delete(&["queues", &ctx.vhost, queue], &query, &[]);
    result.map_err(|error| match error {
        ApiError::NotFound => no_such_queue(ctx, queue),
        ApiError::Refused {
            status: 400,
            reason,
        } => CtlError::Refused(format!("Queue '{queue}' was not deleted: {reason}")),
        other => other.into(),
    })?;
    ctx.message(&format!(
        "Queue was successfully deleted with {ready} ready messages"
    ));
    Ok(())
}
