//! Quorum queue membership, as `rabbitmq-queues` names it: `add_member` and `delete_member` of one queue (`-p` /
//! `--vhost`), and `grow` / `shrink` of every quorum queue by one node, through Warren's
//! `/api/queues/{vhost}/{name}/members` (docs/clustering.md).

use serde_json::{json, Value};

use crate::ctl::error::CtlError;
use crate::ctl::output::Rows;
use crate::ctl::Ctx;

/// `add_member <queue> <node>`: the node becomes a voting member of the queue.
pub(super) fn add_member(ctx: &Ctx, queue: &str, node: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Adding a replica for queue {queue} on node {node}..."
    ));
    ctx.api
        .post(
            &["queues", &ctx.vhost, queue, "members"],
            &json!({ "node": node }),
        )
        .map_err(|e| refused(ctx, e))
}

/// `delete_member <queue> <node>`: the node stops voting in the queue.
pub(super) fn delete_member(ctx: &Ctx, queue: &str, node: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Removing a replica of queue {queue} on node {node}..."
    ));
    ctx.api
        .delete(&["queues", &ctx.vhost, queue, "members", node], &[], &[])
        .map(drop)
        .map_err(|e| refused(ctx, e))
}

fn refused(ctx: &Ctx, error: crate::ctl::api::ApiError) -> CtlError {
    match error {
        crate::ctl::api::ApiError::NotFound => {
            ctx.missing_in_vhost(|| CtlError::Refused("queue not found".to_owned()))
        }
        other => other.into(),
    }
}

/// The quorum queues of the node, with their members: (vhost, name, members).
fn quorum_queues(ctx: &Ctx) -> Result<Vec<(String, String, Vec<String>)>, CtlError> {
    let queues = ctx.api.get(&["queues"])?;
    let text = |q: &Value, key: &str| {
        q.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(queues
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|q| q.get("type").and_then(Value::as_str) == Some("quorum"))
                .filter_map(|q| {
                    let members = q.get("members")?.as_array()?;
                    let members = members
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                    Some((text(q, "vhost"), text(q, "name"), members))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The result table of `grow` and `shrink`: vhost, name, size, result, as rabbitmq-queues prints it.
fn report(ctx: &Ctx, results: Vec<(String, String, usize, String)>) {
    let rows = Rows {
        columns: ["vhost", "name", "size", "result"]
            .map(str::to_owned)
            .to_vec(),
        rows: results
            .into_iter()
            .map(|(vhost, name, size, result)| {
                vec![json!(vhost), json!(name), json!(size), json!(result)]
            })
            .collect(),
    };
    ctx.print_rows(&rows);
}

/// `grow <node> <all|even>`: adds the node to every quorum queue it is not a member of (`even`: only those with an
/// even number of members).
pub(super) fn grow(ctx: &Ctx, node: &str, selector: &str) -> Result<(), CtlError> {
    let even_only = match selector {
        "all" => false,
        "even" => true,
        other => {
            return Err(CtlError::Usage(format!(
                "the selector must be 'all' or 'even', not '{other}'"
            )))
        }
    };
    ctx.banner(&format!("Growing {selector} quorum queues on {node}..."));
    let mut results = Vec::new();
    for (vhost, name, members) in quorum_queues(ctx)? {
        if members.iter().any(|m| m == node) || (even_only && members.len() % 2 != 0) {
            continue;
        }
        let outcome = ctx.api.post(
            &["queues", &vhost, &name, "members"],
            &json!({ "node": node }),
        );
        let (size, result) = match outcome {
            Ok(()) => (members.len() + 1, "ok".to_owned()),
            Err(e) => (members.len(), format!("error: {}", CtlError::from(e))),
        };
        results.push((vhost, name, size, result));
    }
    report(ctx, results);
    Ok(())
}

/// `shrink <node>`: removes the node from every quorum queue it is a member of.
pub(super) fn shrink(ctx: &Ctx, node: &str) -> Result<(), CtlError> {
    ctx.banner(&format!("Shrinking quorum queues on {node}..."));
    let mut results = Vec::new();
    for (vhost, name, members) in quorum_queues(ctx)? {
        if !members.iter().any(|m| m == node) {
            continue;
        }
        let outcome = ctx
            .api
            .delete(&["queues", &vhost, &name, "members", node], &[], &[]);
        let (size, result) = match outcome {
            Ok(_) => (members.len() - 1, "ok".to_owned()),
            Err(e) => (members.len(), format!("error: {}", CtlError::from(e))),
        };
        results.push((vhost, name, size, result));
    }
    report(ctx, results);
    Ok(())
}
