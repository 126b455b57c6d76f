//! The node: `status` (from `/api/overview` and `/api/nodes/<name>`) and `await_startup` (polls until the API
//! answers).

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ctl::error::CtlError;
use crate::ctl::output::Formatter;
use crate::ctl::Ctx;

/// How often `await_startup` asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// rabbitmqctl's `await_startup` default timeout.
const DEFAULT_AWAIT: Duration = Duration::from_secs(300);

/// `status`: the node's version, uptime, memory, disk, alarms and listeners, as rabbitmqctl's sections show them.
/// With `--formatter json`, `{"overview": ..., "node": ...}` as the API gave them.
pub(super) fn status(ctx: &Ctx) -> Result<(), CtlError> {
    let overview = ctx.api.get(&["overview"])?;
    let name = overview
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let node = if name.is_empty() {
        Value::Null
    } else {
        ctx.api.get(&["nodes", &name])?
    };
    if ctx.formatter == Formatter::Json {
        ctx.write(&format!(
            "{}\n",
            json!({"overview": overview, "node": node})
        ));
        return Ok(());
    }
    ctx.banner(&format!("Status of node {name} ..."));
    ctx.write(&render_status(&overview, &node));
    Ok(())
}

/// `cluster_status`: the cluster's members and its leader (`/api/cluster-status`), in rabbitmqctl's sections.
pub(super) fn cluster_status(ctx: &Ctx) -> Result<(), CtlError> {
    let status = ctx.api.get(&["cluster-status"])?;
    if ctx.formatter == Formatter::Json {
        ctx.write(&format!("{status}\n"));
        return Ok(());
    }
    let node = status
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ctx.banner(&format!("Cluster status of node {node} ..."));
    ctx.write(&render_cluster_status(&status));
    Ok(())
}

/// `forget_cluster_node <node>`: the node is removed from the cluster by its leader.
pub(super) fn forget_cluster_node(ctx: &Ctx, node: &str) -> Result<(), CtlError> {
    ctx.banner(&format!("Removing node {node} from the cluster"));
    Ok(ctx.api.delete(&["cluster-nodes", node], &[], &[])?)
}

/// The text of `cluster_status`.
fn render_cluster_status(status: &Value) -> String {
    let mut out = String::from("Basics\n\nCluster name: warren\n\nDisk Nodes\n\n");
    for member in status
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = member
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match member.get("address").and_then(Value::as_str) {
            Some(address) => out.push_str(&format!("{name} ({address})\n")),
            None => out.push_str(&format!("{name}\n")),
        }
    }
    out.push_str("\nLeader\n\n");
    match status.get("leader").and_then(Value::as_str) {
        Some(leader) => out.push_str(&format!("{leader}\n")),
        None if status.get("clustered").and_then(Value::as_bool) == Some(true) => {
            out.push_str("(none: an election is under way or no majority is reachable)\n")
        }
        None => out.push_str("(a single node)\n"),
    }
    out
}

/// The text of `status`, from the API's overview and node objects.
fn render_status(overview: &Value, node: &Value) -> String {
    let text = |value: &Value, key: &str| match value.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "unknown".to_owned(),
        Some(other) => other.to_string(),
    };
    let mut out = String::from("Runtime\n\n");
    out.push_str(&format!("OS PID: {}\n", text(node, "os_pid")));
    out.push_str(&format!(
        "Uptime (seconds): {}\n",
        node.get("uptime")
            .and_then(Value::as_u64)
            .map_or("unknown".to_owned(), |ms| (ms / 1000).to_string())
    ));
    out.push_str(&format!(
        "RabbitMQ version: {}\n",
        text(overview, "rabbitmq_version")
    ));
    out.push_str(&format!(
        "Product name: {}\n",
        text(overview, "product_name")
    ));
    out.push_str(&format!(
        "Product version: {}\n",
        text(overview, "product_version")
    ));
    out.push_str(&format!("Node name: {}\n", text(overview, "node")));
    out.push_str(&format!(
        "Erlang configuration: {}\n",
        text(overview, "erlang_full_version")
    ));
    out.push_str("\nAlarms\n\n");
    let mut alarms = Vec::new();
    if node.get("mem_alarm").and_then(Value::as_bool) == Some(true) {
        alarms.push("memory");
    }
    if node.get("disk_free_alarm").and_then(Value::as_bool) == Some(true) {
        alarms.push("disk");
    }
    if alarms.is_empty() {
        out.push_str("(none)\n");
    } else {
        for alarm in alarms {
            out.push_str(&format!("Alarm: resource limit: {alarm}\n"));
        }
    }
    out.push_str("\nMemory\n\n");
    out.push_str(&format!(
        "Total memory used: {} gb\n",
        gigabytes(node.get("mem_used"))
    ));
    out.push_str(&format!(
        "Memory high watermark setting: {} gb\n",
        gigabytes(node.get("mem_limit"))
    ));
    out.push_str("\nFree Disk Space\n\n");
    out.push_str(&format!(
        "Low free disk space watermark: {} gb\n",
        gigabytes(node.get("disk_free_limit"))
    ));
    out.push_str(&format!(
        "Free disk space: {} gb\n",
        gigabytes(node.get("disk_free"))
    ));
    out.push_str("\nListeners\n\n");
    for listener in overview
        .get("listeners")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "Interface: {}, port: {}, protocol: {}\n",
            text(listener, "ip_address"),
            text(listener, "port"),
            text(listener, "protocol")
        ));
    }
    out.push_str("\nTotals\n\n");
    let totals = overview
        .get("object_totals")
        .cloned()
        .unwrap_or(Value::Null);
    for key in [
        "connections",
        "channels",
        "queues",
        "exchanges",
        "consumers",
    ] {
        out.push_str(&format!("{key}: {}\n", text(&totals, key)));
    }
    out
}

/// Bytes as rabbitmqctl prints memory and disk: gigabytes with three decimals.
fn gigabytes(bytes: Option<&Value>) -> String {
    match bytes.and_then(Value::as_u64) {
        Some(bytes) => format!("{:.3}", bytes as f64 / 1e9),
        None => "unknown".to_owned(),
    }
}

/// `await_startup [--timeout SECONDS]`: asks `/api/overview` every half second until it answers (exit 0), the
/// credentials are refused (exit 77: waiting longer will not help), or the timeout (300 s) runs out (exit 75).
pub(super) fn await_startup(ctx: &Ctx) -> Result<(), CtlError> {
    let timeout = ctx.timeout.unwrap_or(DEFAULT_AWAIT);
    let deadline = Instant::now() + timeout;
    loop {
        let last = match ctx.api.get(&["overview"]) {
            Ok(_) => return Ok(()),
            Err(error) => CtlError::from(error),
        };
        if !matches!(last, CtlError::Unreachable { .. } | CtlError::Software(_)) {
            return Err(last);
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(CtlError::Timeout(format!(
                "the node at {} did not start within {} seconds; last: {last}",
                ctx.api.base(),
                timeout.as_secs()
            )));
        }
        sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_version_alarms_memory_and_listeners() {
        let overview = json!({"node": "rabbit@h", "rabbitmq_version": "3.10.8", "product_name": "RabbitMQ",
            "product_version": "3.10.8", "erlang_full_version": "Erlang/OTP 25",
            "listeners": [{"protocol": "amqp", "port": 5672, "ip_address": "::"}],
            "object_totals": {"connections": 1, "channels": 2, "queues": 3, "exchanges": 7, "consumers": 0}});
        let node = json!({"os_pid": "1409", "uptime": 12000, "mem_used": 150_000_000u64,
            "mem_limit": 9_000_000_000u64, "disk_free": 20_000_000_000u64, "disk_free_limit": 50_000_000u64,
            "mem_alarm": false, "disk_free_alarm": true});
        let text = render_status(&overview, &node);
        for line in [
            "OS PID: 1409",
            "Uptime (seconds): 12",
            "RabbitMQ version: 3.10.8",
            "Node name: rabbit@h",
            "Alarm: resource limit: disk",
            "Total memory used: 0.150 gb",
            "Free disk space: 20.000 gb",
            "Interface: ::, port: 5672, protocol: amqp",
            "queues: 3",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }
}
