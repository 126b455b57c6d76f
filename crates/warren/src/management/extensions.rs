//! Warren's own endpoints, for what it has beyond RabbitMQ's plugins (docs/management.md, "Warren extensions"):
//!
//! - `GET /api/exchanges/{vhost}/{name}/delayed-messages?offset=&limit=`: an `x-delayed-message` exchange's
//!   waiting messages in due order (the plugin shows only their count);
//! - `DELETE /api/exchanges/{vhost}/{name}/delayed-messages/{id}`: cancels one (never routed);
//! - `GET /api/exchanges/{vhost}/{name}/deduplication`: an `x-message-deduplication` exchange's cache;
//! - `GET /api/queues/{vhost}/{name}/deduplication`: the keys a deduplicating queue's messages hold;
//! - `GET /api/cluster-status`: the cluster this node belongs to (`warren ctl cluster_status`);
//! - `DELETE /api/cluster-nodes/{name}`: removes a member from the cluster (`warren ctl forget_cluster_node`).
//!
//! Tracing is RabbitMQ's own switch: `PUT /api/vhosts/{vhost}` with `{"tracing": true|false}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{blocking, ApiState};
use crate::auth::users::Access;
use crate::broker::DelayedError;

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/cluster-status", get(cluster_status))
        .route("/api/cluster-nodes/{name}", delete(forget_cluster_node))
        .route(
            "/api/queues/{vhost}/{name}/members",
            axum::routing::post(add_queue_member),
        )
        .route(
            "/api/queues/{vhost}/{name}/members/{node}",
            delete(delete_queue_member),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/delayed-messages",
            get(delayed_messages),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/delayed-messages/{id}",
            delete(cancel_delayed),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/deduplication",
            get(exchange_dedup),
        )
        .route("/api/queues/{vhost}/{name}/deduplication", get(queue_dedup))
}

/// The most delayed messages one page lists.
const MAX_PAGE: usize = 10_000;

/// A page of delayed messages.
#[derive(Debug, Deserialize)]
struct Page {
    /// How many to skip, in due order.
    #[serde(default)]
    offset: usize,
    /// How many to list; 100 by default, at most [`MAX_PAGE`].
    limit: Option<usize>,
}

fn delayed_error(error: DelayedError) -> ApiError {
    match error {
        DelayedError::NoSuchVhost(_) | DelayedError::NoSuchExchange(_) => ApiError::not_found(),
        DelayedError::NotDelayed(_) => ApiError::bad_request(error.to_string()),
    }
}

async fn delayed_messages(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    Query(page): Query<Page>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let limit = page.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_PAGE}"
        )));
    }
    let broker = state.broker.clone();
    // Listing may read routing keys back from the store.
    let messages = blocking(move || {
        broker
            .delayed_messages(&vhost, &name, page.offset, limit)
            .map_err(delayed_error)
    })
    .await?;
    let items = messages
        .iter()
        .map(|m| json!({"id": m.id, "due_at": m.due_at_ms, "routing_key": m.routing_key, "size": m.size}))
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn cancel_delayed(
    State(state): State<ApiState>,
    Path((vhost, name, id)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    // Cancelling undoes a publish: the right to publish to the exchange is asked.
    caller.require_access(&state.broker, &vhost, "exchange", &name, Access::Write)?;
    let id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
    let broker = state.broker.clone();
    let cancelled = blocking(move || {
        broker
            .cancel_delayed_message(&vhost, &name, id)
            .map_err(delayed_error)
    })
    .await?;
    match cancelled {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found()),
    }
}

/// The cluster's members and leader as this node sees them; a single node lists itself alone, with no leader.
async fn cluster_status(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_monitor()?;
    let node = &state.broker.config.server.cluster_name;
    let Some(cluster) = state.broker.cluster() else {
        return Ok(Json(json!({
            "clustered": false,
            "node": node,
            "members": [{"name": node, "address": Value::Null}],
            "leader": Value::Null,
        })));
    };
    let status = cluster.status();
    let members: Vec<Value> = status
        .members
        .iter()
        .map(|m| json!({"name": m.name, "address": m.addr}))
        .collect();
    Ok(Json(json!({
        "clustered": true,
        "node": status.node,
        "members": members,
        "leader": status.leader,
        "term": status.term,
        "applied_index": status.applied_index,
    })))
}

/// `POST /api/queues/{vhost}/{name}/members` with `{"node": NODE}`: NODE becomes a voting member of the replicated
/// quorum queue (`rabbitmq-queues add_member`).
async fn add_queue_member(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    Json(body): Json<Value>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let node = body
        .get("node")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("a \"node\" is required"))?;
    state
        .broker
        .change_quorum_members(&vhost, &name, node, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/queues/{vhost}/{name}/members/{node}`: NODE stops voting in the replicated quorum queue
/// (`rabbitmq-queues delete_member`); it keeps following it as a learner.
async fn delete_queue_member(
    State(state): State<ApiState>,
    Path((vhost, name, node)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    state
        .broker
        .change_quorum_members(&vhost, &name, &node, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes member `name` from the cluster, through its leader.
async fn forget_cluster_node(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let Some(cluster) = state.broker.cluster() else {
        return Err(ApiError::bad_request("this node is not in a cluster"));
    };
    cluster.forget(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn exchange_dedup(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    if state.broker.exchange_info(&vhost, &name).is_none() {
        return Err(ApiError::not_found());
    }
    let cache = state.broker.exchange_dedup(&vhost, &name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "exchange '{name}' is not of type x-message-deduplication"
        ))
    })?;
    Ok(Json(json!({
        "vhost": vhost,
        "name": name,
        "entries": cache.entries,
        "capacity": cache.capacity,
        "ttl": cache.ttl,
        "persistence": cache.persistence,
    })))
}

async fn queue_dedup(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let queue = state
        .broker
        .queue_info(&vhost, &name)
        .await
        .ok_or_else(ApiError::not_found)?;
    let keys = queue.state.and_then(|s| s.dedup_keys).ok_or_else(|| {
        ApiError::bad_request(format!(
            "queue '{name}' does not deduplicate (x-message-deduplication)"
        ))
    })?;
    Ok(Json(json!({"vhost": vhost, "name": name, "entries": keys})))
}
