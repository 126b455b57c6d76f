//! Queues: `/api/queues[/{vhost}[/{name}]]` (list, declare, delete), `/contents` (purge), `/get`, `/bindings`,
//! and the aliveness test's queue.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::bindings::binding_json;
use super::error::ApiError;
use super::listing::{self, ListQuery};
use super::message_json::{got_json, message_from_publish, PayloadEncoding};
use super::stats::details;
use super::{json_body, ApiState};
use crate::auth::users::Access;
use crate::broker::inspect::QueueInfo;
use crate::broker::topology::{Declaration, GetAckMode};
use crate::broker::Broker;
use crate::definitions::table_from_json;

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/queues", get(list_all))
        .route("/api/queues/{vhost}", get(list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(get_queue).put(put_queue).delete(delete_queue),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
        .route("/api/queues/{vhost}/{name}/get", post(get_messages))
        .route("/api/queues/{vhost}/{name}/bindings", get(queue_bindings))
}

/// A queue as RabbitMQ 3.10 lists it, with its `message_stats` and depth rates.
pub(crate) fn queue_json(state: &ApiState, q: &QueueInfo) -> Value {
    let node = &state.broker.config.server.cluster_name;
    let rates = &state.rates;
    let [messages_rate, ready_rate, unacked_rate] = rates.queue_depth_rates(&q.vhost, &q.name);
    let message_stats = rates.queue_stats(&q.vhost, &q.name, &q.stats);
    let state = q.state.clone().unwrap_or_default();
    let consumers: Vec<Value> = state
        .consumers
        .iter()
        .map(|c| json!({"consumer_tag": &*c.tag, "ack_required": c.ack_required, "exclusive": c.exclusive,
                        "prefetch_count": c.prefetch, "active": true}))
        .collect();
    let exclusive_tag = state
        .consumers
        .iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.to_string());
    let mut queue = json!({
        "name": q.name,
        "vhost": q.vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": q.arguments,
        "node": node,
        "type": q.kind,
        "state": match (q.home_down, q.state.is_some()) {
            (true, _) => "down",
            (false, true) => "running",
            (false, false) => "stopped",
        },
        "policy": q.policy,
        "operator_policy": q.operator_policy,
        "exclusive_consumer_tag": exclusive_tag,
        "consumers": state.consumers.len(),
        "consumer_details": consumers,
        "messages": state.ready + state.unacked,
        "messages_ready": state.ready,
        "messages_unacknowledged": state.unacked,
        "message_bytes_ready": state.ready_bytes,
        "messages_details": details(messages_rate),
        "messages_ready_details": details(ready_rate),
        "messages_unacknowledged_details": details(unacked_rate),
    });
    if let (Some(stats), Some(object)) = (message_stats, queue.as_object_mut()) {
        object.insert("message_stats".to_owned(), stats);
    }
    if let (Some(home), Some(object)) = (&state.home, queue.as_object_mut()) {
        // A classic queue of the cluster, as RabbitMQ shows it on every node: `node` is its home's.
        object.insert("node".to_owned(), json!(home));
    }
    if let (Some(replicas), Some(object)) = (&state.replicas, queue.as_object_mut()) {
        // As RabbitMQ shows a quorum queue: `node` is its leader's.
        object.insert("leader".to_owned(), json!(replicas.leader));
        object.insert("members".to_owned(), json!(replicas.members));
        if let Some(leader) = &replicas.leader {
            object.insert("node".to_owned(), json!(leader));
        }
    }
    queue
}

async fn list(
    state: ApiState,
    caller: Caller,
    vhost: Option<String>,
    query: ListQuery,
) -> Result<Json<Value>, ApiError> {
    if let Some(v) = &vhost {
        caller.require_vhost(&state.broker, v)?;
    }
    let items = state
        .broker
        .queue_infos(vhost.as_deref())
        .await
        .iter()
        .filter(|q| caller.sees(&state.broker, &q.vhost))
        .map(|q| queue_json(&state, q))
        .collect();
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

async fn list_all(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    list(state, caller, None, query).await
}

async fn list_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    list(state, caller, Some(vhost), query).await
}

async fn get_queue(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let info = state
        .broker
        .queue_info(&vhost, &name)
        .await
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(queue_json(&state, &info)))
}

/// The `arguments` object of a declare body, as a field table.
pub(crate) fn arguments_of(
    body: &Map<String, Value>,
) -> Result<warren_protocol::FieldTable, ApiError> {
    match body.get("arguments") {
        None | Some(Value::Null) => Ok(Default::default()),
        Some(Value::Object(map)) => table_from_json(map)
            .map_err(|(key, why)| ApiError::bad_request(format!("arguments.{key}: {why}"))),
        // RabbitMQ's forms send an empty list for no arguments.
        Some(Value::Array(list)) if list.is_empty() => Ok(Default::default()),
        Some(_) => Err(ApiError::bad_request("arguments must be an object")),
    }
}

/// A boolean field of a declare body, `default` when absent; RabbitMQ also takes "true"/"false" strings.
pub(crate) fn flag(body: &Map<String, Value>, key: &str, default: bool) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    }
}

/// `PUT /api/queues/{vhost}/{name}`: 201 created, 204 when an equivalent queue exists, 400 when inequivalent.
async fn put_queue(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "vhost_not_found",
        ));
    }
    caller.require_vhost(&state.broker, &vhost)?;
    caller.require_access(&state.broker, &vhost, "queue", &name, Access::Configure)?;
    let body = json_body(&body)?;
    let declaration = Declaration {
        name,
        durable: flag(&body, "durable", true),
        auto_delete: flag(&body, "auto_delete", false),
        internal: false,
        kind: String::new(),
        arguments: arguments_of(&body)?,
    };
    let created = state
        .broker
        .declare_queue_by_api(&vhost, declaration, &caller.name)
        .await?;
    Ok(match created {
        true => StatusCode::CREATED,
        false => StatusCode::NO_CONTENT,
    })
}

/// The `if-empty` and `if-unused` query parameters of a delete.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeleteConditions {
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
}

impl DeleteConditions {
    /// `if-unused=true`.
    pub(crate) fn if_unused(&self) -> bool {
        self.if_unused.as_deref() == Some("true")
    }

    fn if_empty(&self) -> bool {
        self.if_empty.as_deref() == Some("true")
    }
}

async fn delete_queue(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    Query(conditions): Query<DeleteConditions>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    caller.require_access(&state.broker, &vhost, "queue", &name, Access::Configure)?;
    state
        .broker
        .delete_queue_by_api(
            &vhost,
            &name,
            conditions.if_unused(),
            conditions.if_empty(),
            &caller.name,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    caller.require_access(&state.broker, &vhost, "queue", &name, Access::Read)?;
    state.broker.purge_queue_by_api(&vhost, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/queues/{vhost}/{name}/get`: `count`, `ackmode` (`ack_requeue_true`, `ack_requeue_false`,
/// `reject_requeue_true`, `reject_requeue_false`), `encoding` (`auto`, `base64`), optional `truncate`.
async fn get_messages(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    caller.require_access(&state.broker, &vhost, "queue", &name, Access::Read)?;
    let body = json_body(&body)?;
    super::require_keys(&body, &["ackmode", "count", "encoding"])?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    let mode = match text("ackmode") {
        "ack_requeue_true" | "reject_requeue_true" => GetAckMode::Requeue,
        "ack_requeue_false" => GetAckMode::Ack,
        "reject_requeue_false" => GetAckMode::RejectDrop,
        other => {
            return Err(ApiError::bad_request(format!(
                "{{invalid_ackmode,{other}}}"
            )))
        }
    };
    let encoding = match text("encoding") {
        "auto" => PayloadEncoding::Auto,
        "base64" => PayloadEncoding::Base64,
        other => {
            return Err(ApiError::bad_request(format!(
                "{{invalid_encoding,{other}}}"
            )))
        }
    };
    let number = |key: &str| match body.get(key) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let count = number("count").unwrap_or(1) as usize;
    let truncate = number("truncate").map(|n| n as usize);
    let got = state.broker.get_by_api(&vhost, &name, count, mode).await?;
    Ok(Json(
        got.iter()
            .map(|m| got_json(m, encoding, truncate))
            .collect(),
    ))
}

async fn queue_bindings(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    if state.broker.queue_info(&vhost, &name).await.is_none() {
        return Err(ApiError::not_found());
    }
    let items = state
        .broker
        .binding_infos(Some(&vhost))
        .iter()
        .filter(|b| b.to_queue && b.destination == name)
        .map(binding_json)
        .collect();
    Ok(Json(items))
}

/// The aliveness test: declares the durable queue `aliveness-test` in `vhost`, publishes a message to it through
/// the default exchange and gets it back, as RabbitMQ's `rabbit_mgmt_wm_aliveness_test` does.
pub(crate) async fn aliveness(broker: &Broker, vhost: &str, user: &str) -> Result<(), ApiError> {
    const QUEUE: &str = "aliveness-test";
    let declaration = Declaration {
        name: QUEUE.to_owned(),
        durable: false,
        auto_delete: false,
        internal: false,
        kind: String::new(),
        arguments: Default::default(),
    };
    broker
        .declare_queue_by_api(vhost, declaration, user)
        .await?;
    let publish: Map<String, Value> = serde_json::from_value(json!({
        "properties": {}, "routing_key": QUEUE, "payload": "test_message", "payload_encoding": "string"
    }))
    .map_err(|e| ApiError::internal(e.to_string()))?;
    broker.publish_by_api(vhost, "", message_from_publish("", &publish)?)?;
    let got = broker.get_by_api(vhost, QUEUE, 1, GetAckMode::Ack).await?;
    match got.first() {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "failed",
            "aliveness-test message not received",
        )),
    }
}
