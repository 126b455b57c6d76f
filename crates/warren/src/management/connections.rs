//! Connections and consumers: `/api/connections[/{name}]` (list, show, close with 320),
//! `/api/vhosts/{vhost}/connections`, `/api/consumers[/{vhost}]`. A user without the monitoring tag sees only
//! its own connections, as in RabbitMQ.

use std::time::UNIX_EPOCH;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::listing::{self, ListQuery};
use super::stats::details;
use super::ApiState;
use crate::registry::{CloseRequest, ConnectionSummary};

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/connections", get(list_all))
        .route(
            "/api/connections/{name}",
            get(get_connection).delete(close_connection),
        )
        .route("/api/vhosts/{vhost}/connections", get(list_vhost))
        .route("/api/consumers", get(consumers_all))
        .route("/api/consumers/{vhost}", get(consumers_vhost))
}

fn connection_json(state: &ApiState, c: &ConnectionSummary) -> Value {
    let d = &c.details;
    let connected_at = c
        .created_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_millis() as u64);
    let mut client_properties = json!({"product": d.client_product, "version": d.client_version});
    let mut connection = json!({
        "name": c.name,
        "node": state.broker.config.server.cluster_name,
        "type": "network",
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "user": d.user,
        "vhost": d.vhost,
        "peer_host": d.peer.ip().to_string(),
        "peer_port": d.peer.port(),
        "host": d.local.map(|a| a.ip().to_string()),
        "port": d.local.map(|a| a.port()),
        "channels": c.channels,
        "connected_at": connected_at,
    });
    let [recv_rate, send_rate] = state.rates.connection_rates(&c.name);
    let traffic = &c.traffic;
    if let Some(object) = connection.as_object_mut() {
        for (field, value) in [
            ("recv_oct", json!(traffic.recv_oct)),
            ("recv_oct_details", details(recv_rate)),
            ("recv_cnt", json!(traffic.recv_cnt)),
            ("send_oct", json!(traffic.send_oct)),
            ("send_oct_details", details(send_rate)),
            ("send_cnt", json!(traffic.send_cnt)),
        ] {
            object.insert(field.to_owned(), value);
        }
    }
    // RabbitMQ lists `user_provided_name` only for a connection whose client named it.
    if let Some(name) = &d.client_connection_name {
        client_properties["connection_name"] = json!(name);
        connection["user_provided_name"] = json!(name);
    }
    connection["client_properties"] = client_properties;
    connection
}

/// The live connections `caller` may see: all for monitoring users, else its own.
pub(super) fn visible(state: &ApiState, caller: &Caller) -> Vec<ConnectionSummary> {
    state
        .broker
        .connections()
        .list()
        .into_iter()
        .filter(|c| caller.is_monitor() || c.details.user == caller.name)
        .collect()
}

async fn list_all(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let items = visible(&state, &caller)
        .iter()
        .map(|c| connection_json(&state, c))
        .collect();
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

async fn list_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let items = visible(&state, &caller)
        .iter()
        .filter(|c| c.details.vhost == vhost)
        .map(|c| connection_json(&state, c))
        .collect();
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

fn find(state: &ApiState, caller: &Caller, name: &str) -> Result<ConnectionSummary, ApiError> {
    visible(state, caller)
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)
}

async fn get_connection(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let c = find(&state, &caller, &name)?;
    Ok(Json(connection_json(&state, &c)))
}

/// `DELETE`: closes the connection with 320 CONNECTION_FORCED, the `X-Reason` header as the text (RabbitMQ's
/// "Closed via management plugin" without one).
async fn close_connection(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let c = find(&state, &caller, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin");
    state
        .broker
        .connections()
        .close(c.details.id, CloseRequest::forced(reason));
    Ok(StatusCode::NO_CONTENT)
}

async fn consumers(
    state: ApiState,
    caller: Caller,
    vhost: Option<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(v) = &vhost {
        caller.require_vhost(&state.broker, v)?;
    }
    let connections = state.broker.connections().list();
    let mut items = Vec::new();
    for q in state.broker.queue_infos(vhost.as_deref()).await {
        if !caller.sees(&state.broker, &q.vhost) {
            continue;
        }
        let Some(inspection) = &q.state else {
            continue;
        };
        for c in &inspection.consumers {
            let connection = connections.iter().find(|s| s.details.id == c.connection_id);
            let channel_details = match connection {
                Some(s) => {
                    json!({"connection_name": s.name, "peer_host": s.details.peer.ip().to_string(),
                                  "peer_port": s.details.peer.port(), "user": s.details.user, "node":
                                  state.broker.config.server.cluster_name})
                }
                None => json!({}),
            };
            items.push(json!({
                "consumer_tag": &*c.tag,
                "queue": {"name": q.name, "vhost": q.vhost},
                "channel_details": channel_details,
                "ack_required": c.ack_required,
                "exclusive": c.exclusive,
                "prefetch_count": c.prefetch,
                "active": true,
                "activity_status": "up",
                "arguments": if c.priority != 0 { json!({"x-priority": c.priority}) } else { json!({}) },
            }));
        }
    }
    Ok(Json(Value::Array(items)))
}

async fn consumers_all(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    consumers(state, caller, None).await
}

async fn consumers_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    consumers(state, caller, Some(vhost)).await
}
