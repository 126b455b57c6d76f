//! `/api/overview`, `/api/whoami`, `/api/nodes`, `/api/extensions`, the aliveness test and the health checks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::stats::details;
use super::ApiState;
use crate::broker::Resource;
use crate::definitions::EMULATED_RABBITMQ_VERSION;

/// The exchange types Warren serves, as the overview lists them.
const EXCHANGE_TYPES: [(&str, &str); 4] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
];

fn node_name(state: &ApiState) -> String {
    state.broker.config.server.cluster_name.clone()
}

fn exchange_types() -> Value {
    EXCHANGE_TYPES
        .iter()
        .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
        .collect()
}

/// `GET /api/overview`: versions, the node, object and message totals with their rates, listeners. The node's
/// `message_stats` are shown to monitoring users and administrators (Warren does not split them by vhost).
pub(crate) async fn overview(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let broker = &state.broker;
    let queues: Vec<_> = broker
        .queue_infos(None)
        .await
        .into_iter()
        .filter(|q| caller.sees(broker, &q.vhost))
        .collect();
    let (mut ready, mut unacked, mut consumers) = (0u64, 0u64, 0usize);
    for q in &queues {
        if let Some(s) = &q.state {
            ready += s.ready;
            unacked += s.unacked;
            consumers += s.consumers.len();
        }
    }
    let exchanges = broker
        .exchange_infos(None)
        .iter()
        .filter(|x| caller.sees(broker, &x.vhost))
        .count();
    let connections: Vec<_> = broker
        .connections()
        .list()
        .into_iter()
        .filter(|c| caller.is_monitor() || c.details.user == caller.name)
        .collect();
    let channels: u64 = connections.iter().map(|c| u64::from(c.channels)).sum();
    let node = node_name(&state);
    let listeners: Vec<Value> = state
        .listeners
        .iter()
        .map(|(protocol, addr)| {
            json!({"node": node, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port()})
        })
        .collect();
    let server = &broker.config.server;
    let message_stats = match caller.is_monitor() {
        true => state.rates.node_stats(&broker.metrics.counters.totals()),
        false => json!({}),
    };
    let [messages_rate, ready_rate, unacked_rate] = state.rates.node_depth_rates();
    Ok(Json(json!({
        "management_version": EMULATED_RABBITMQ_VERSION,
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "product_version": server.version,
        "product_name": server.product,
        "rabbitmq_version": EMULATED_RABBITMQ_VERSION,
        "cluster_name": server.cluster_name,
        "erlang_version": "",
        "erlang_full_version": server.platform,
        "disable_stats": false,
        "enable_queue_totals": true,
        "message_stats": message_stats,
        "queue_totals": {
            "messages": ready + unacked,
            "messages_details": details(messages_rate),
            "messages_ready": ready,
            "messages_ready_details": details(ready_rate),
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": details(unacked_rate),
        },
        "object_totals": {
            "channels": channels,
            "connections": connections.len(),
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues.len(),
        },
        "statistics_db_event_queue": 0,
        "node": node,
        "listeners": listeners,
        "contexts": [{"node": node, "description": "RabbitMQ Management", "path": "/",
                      "port": state.listeners.last().map_or(0, |(_, a)| a.port()).to_string()}],
    })))
}

/// `GET /api/whoami`.
pub(crate) async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.name, "tags": caller.tags}))
}

/// `GET /api/extensions`: the web UI's extensions; Warren serves no web UI yet.
pub(crate) async fn extensions(_caller: Caller) -> Json<Value> {
    Json(json!([]))
}

/// `GET /api/nodes`: this node (monitoring).
pub(crate) async fn nodes(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_monitor()?;
    Ok(Json(json!([node_json(&state)])))
}

/// `GET /api/nodes/{name}`.
pub(crate) async fn node(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_monitor()?;
    if name != node_name(&state) {
        return Err(ApiError::not_found());
    }
    Ok(Json(node_json(&state)))
}

fn node_json(state: &ApiState) -> Value {
    let broker = &state.broker;
    let usage = broker.resource_usage();
    let alarms = broker.alarms();
    let (fd_used, fd_total) = open_files();
    json!({
        "name": node_name(state),
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": std::process::id().to_string(),
        "mem_used": usage.mem_used,
        "mem_limit": usage.mem_limit,
        "mem_alarm": alarms.contains(&Resource::Memory),
        "disk_free": usage.disk_free,
        "disk_free_limit": usage.disk_free_limit,
        "disk_free_alarm": alarms.contains(&Resource::Disk),
        "fd_used": fd_used,
        "fd_total": fd_total,
        "sockets_used": broker.connections().len(),
        "proc_used": 0,
        "uptime": state.started.elapsed().as_millis() as u64,
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
        ],
        "partitions": [],
        "cluster_links": [],
        "applications": [],
        "contexts": [],
        "log_files": [],
        "config_files": [],
        "enabled_plugins": ["rabbitmq_management"],
    })
}

/// Open file descriptors and their limit, from /proc (0 where it cannot be read).
fn open_files() -> (u64, u64) {
    let used = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(0);
    (used, limit)
}

/// `GET /api/aliveness-test/{vhost}`: declares `aliveness-test`, publishes to it and gets the message back, as
/// RabbitMQ does.
pub(crate) async fn aliveness(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    super::queues::aliveness(&state.broker, &vhost, &caller.name).await?;
    Ok(Json(json!({"status": "ok"})))
}

/// `GET /api/health/checks/alarms` and `/local-alarms`: 503 with the alarms while any is raised.
pub(crate) async fn alarms(State(state): State<ApiState>, caller: Caller) -> Response {
    let _ = caller;
    let alarms = state.broker.alarms();
    if alarms.is_empty() {
        return Json(json!({"status": "ok"})).into_response();
    }
    let node = node_name(&state);
    let listed: Vec<Value> = alarms
        .iter()
        .map(|a| {
            let resource = match a {
                Resource::Memory => "memory",
                Resource::Disk => "disk",
            };
            json!({"node": node, "resource": resource})
        })
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "failed", "reason": "resource alarm(s) in effect in the cluster", "alarms": listed})),
    )
        .into_response()
}

/// `GET /api/health/checks/virtual-hosts`: every vhost runs.
pub(crate) async fn virtual_hosts(_caller: Caller) -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/health/checks/node-is-quorum-critical`: a single node is never critical.
pub(crate) async fn quorum_critical(_caller: Caller) -> Json<Value> {
    Json(json!({"status": "ok", "reason": "single node cluster"}))
}

/// `GET /api/health/checks/port-listener/{port}`: 503 when no listener has that port.
pub(crate) async fn port_listener(
    State(state): State<ApiState>,
    Path(port): Path<String>,
    _caller: Caller,
) -> Response {
    let ports: Vec<u16> = state.listeners.iter().map(|(_, a)| a.port()).collect();
    match port.parse::<u16>() {
        Ok(p) if ports.contains(&p) => Json(json!({"status": "ok", "port": p})).into_response(),
        Ok(p) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": "No active listener", "missing": p, "ports": ports})),
        )
            .into_response(),
        Err(_) => ApiError::bad_request(format!("{port} is not a port")).into_response(),
    }
}
