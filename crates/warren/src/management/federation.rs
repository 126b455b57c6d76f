//! The federation management plugin's endpoints (rabbitmq_federation_management):
//!
//! - `GET /api/federation-links`, `GET /api/federation-links/{vhost}`: every link and its status;
//! - `DELETE /api/federation-links/vhost/{vhost}/{id}/{node}/restart`: restarts one.
//!
//! A link has RabbitMQ's fields (`node`, `vhost`, `id`, `type`, `exchange` or `queue`, `upstream_exchange` or
//! `upstream_queue`, `upstream`, `uri` without its password, `status`, `error` when failed, `timestamp`), and
//! Warren's `messages_moved` and `last_error`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::shovels::timestamp;
use super::ApiState;
use crate::federation::{LinkState, LinkView};

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/federation-links", get(list_all))
        .route("/api/federation-links/{vhost}", get(list_vhost))
        .route(
            "/api/federation-links/vhost/{vhost}/{id}/{node}/restart",
            delete(restart),
        )
}

fn link_json(node: &str, link: &LinkView) -> Value {
    let (object, upstream_object) = match link.kind {
        "exchange" => ("exchange", "upstream_exchange"),
        _ => ("queue", "upstream_queue"),
    };
    let mut out = json!({
        "node": node,
        "vhost": link.vhost,
        "id": link.id,
        "type": link.kind,
        object: link.name,
        upstream_object: link.upstream_object,
        "upstream": link.upstream,
        "uri": link.status.uri,
        "status": link.status.state.name(),
        "timestamp": timestamp(link.status.since),
        "messages_moved": link.status.messages_moved,
        "last_error": link.status.last_error,
    });
    if let LinkState::Error { reason } = &link.status.state {
        out["error"] = json!(reason);
    }
    out
}

fn links(state: &ApiState, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let broker = &state.broker;
    let node = &broker.config.server.cluster_name;
    broker
        .federation_links()
        .iter()
        .filter(|l| caller.sees(broker, &l.vhost) && vhost.is_none_or(|v| v == l.vhost))
        .map(|l| link_json(node, l))
        .collect()
}

async fn list_all(State(state): State<ApiState>, caller: Caller) -> Json<Value> {
    Json(Value::Array(links(&state, &caller, None)))
}

async fn list_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    Ok(Json(Value::Array(links(&state, &caller, Some(&vhost)))))
}

async fn restart(
    State(state): State<ApiState>,
    Path((vhost, id, _node)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_policymaker(&state.broker, &vhost)?;
    let ours = state
        .broker
        .federation_links()
        .iter()
        .any(|l| l.vhost == vhost && l.id == id);
    match ours && state.broker.restart_federation_link(&id) {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found()),
    }
}
