//! Vhosts, vhost limits, policies and operator policies: `/api/vhosts`, `/api/vhost-limits`, `/api/policies`,
//! `/api/operator-policies`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use std::collections::HashMap;
use std::sync::Arc;

use super::access::limit_value;
use super::auth::Caller;
use super::error::ApiError;
use super::listing::{self, ListQuery};
use super::stats::details;
use super::{blocking, json_body, ApiState};
use crate::broker::{AdminError, PermissionDefinition, PolicyInfo, PolicyInput, PolicyKind};
use crate::cluster::MetaCommand;
use crate::vhost::parse_default_queue_type;

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/vhosts", get(list_vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(get_vhost).put(put_vhost).delete(delete_vhost),
        )
        .route("/api/vhosts/{vhost}/permissions", get(vhost_permissions))
        .route("/api/vhost-limits", get(list_vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(get_vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            put(put_vhost_limit).delete(delete_vhost_limit),
        )
        .route("/api/policies", get(list_policies))
        .route("/api/policies/{vhost}", get(list_vhost_policies))
        .route(
            "/api/policies/{vhost}/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/api/operator-policies", get(list_operator_policies))
        .route(
            "/api/operator-policies/{vhost}",
            get(list_vhost_operator_policies),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(get_operator_policy)
                .put(put_operator_policy)
                .delete(delete_operator_policy),
        )
}

/// Ready and unacknowledged messages of each vhost's queues, as their gauges last showed them.
fn vhost_depths(state: &ApiState) -> HashMap<Arc<str>, (u64, u64)> {
    let mut depths: HashMap<Arc<str>, (u64, u64)> = HashMap::new();
    for queue in state.broker.queue_samples() {
        let depth = depths.entry(queue.vhost).or_default();
        depth.0 += queue.counts.ready;
        depth.1 += queue.counts.unacked;
    }
    depths
}

fn vhost_json(state: &ApiState, name: &str, depths: &HashMap<Arc<str>, (u64, u64)>) -> Value {
    let node = &state.broker.config.server.cluster_name;
    let tracing = state.broker.tracing(name).unwrap_or(false);
    let (ready, unacked) = depths.get(name).copied().unwrap_or_default();
    let default_queue_type = state
        .broker
        .vhost_default_queue_type(name)
        .unwrap_or("undefined");
    let mut metadata = json!({"description": "", "tags": []});
    if default_queue_type != "undefined" {
        metadata["default_queue_type"] = json!(default_queue_type);
    }
    let [messages_rate, ready_rate, unacked_rate] = state.rates.vhost_depth_rates(name);
    let message_stats = match state.broker.vhost_counter_totals(name) {
        Some(totals) => state.rates.vhost_stats(name, &totals),
        None => json!({}),
    };
    json!({
        "messages": ready + unacked,
        "messages_details": details(messages_rate),
        "messages_ready": ready,
        "messages_ready_details": details(ready_rate),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": details(unacked_rate),
        "message_stats": message_stats,
        "name": name,
        "description": "",
        "tags": [],
        "default_queue_type": default_queue_type,
        "metadata": metadata,
        "tracing": tracing,
        "cluster_state": {node.as_str(): "running"},
    })
}

async fn list_vhosts(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let depths = vhost_depths(&state);
    let items = state
        .broker
        .vhost_names()
        .iter()
        .filter(|v| caller.sees(&state.broker, v))
        .map(|v| vhost_json(&state, v, &depths))
        .collect();
    Ok(Json(listing::answer(items, &query, &["name"])?))
}

async fn get_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    Ok(Json(vhost_json(&state, &vhost, &vhost_depths(&state))))
}

/// `PUT /api/vhosts/{name}`: 201 when created, 204 when it exists; `tracing` turns firehose tracing on or off.
async fn put_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let body = json_body(&body)?;
    let broker = state.broker.clone();
    let existed = broker.has_vhost(&vhost);
    let tracing = body.get("tracing").and_then(Value::as_bool);
    // Checked before anything is made: a vhost is not created with a default Warren cannot honour.
    let default_queue_type = match body.get("default_queue_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            parse_default_queue_type(text).map_err(ApiError::bad_request)?;
            Some(text.clone())
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "default_queue_type must be a string, not {other}"
            )))
        }
    };
    // Made through the cluster on every node when there is one; tracing stays this node's own setting.
    if !existed {
        broker
            .change_definitions(MetaCommand::AddVhost {
                name: vhost.clone(),
            })
            .await?;
        // RabbitMQ grants the user who creates a vhost through the API full permissions in it
        // (`rabbit_mgmt_wm_vhost:maybe_grant_full_permissions`), so its next declare there works.
        let permission = PermissionDefinition {
            user: caller.name.clone(),
            vhost: vhost.clone(),
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        };
        broker
            .change_definitions(MetaCommand::SetPermissions { permission })
            .await?;
    }
    if let Some(queue_type) = default_queue_type {
        let queue_type = (queue_type != "undefined").then_some(queue_type);
        broker
            .change_definitions(MetaCommand::SetVhostDefaultQueueType {
                vhost: vhost.clone(),
                queue_type,
            })
            .await?;
    }
    if let Some(on) = tracing {
        blocking(move || Ok(broker.set_tracing(&vhost, on)?)).await?;
    }
    Ok(match existed {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::CREATED,
    })
}

async fn delete_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    state
        .broker
        .change_definitions(MetaCommand::DeleteVhost { name: vhost })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn vhost_permissions(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let items = state
        .broker
        .permissions()
        .iter()
        .filter(|p| p.vhost == vhost)
        .map(|p| json!({"vhost": p.vhost, "user": p.user, "configure": p.configure, "write": p.write, "read": p.read}))
        .collect();
    Ok(Json(Value::Array(items)))
}

fn limits_items(state: &ApiState, vhosts: &[String]) -> Value {
    vhosts
        .iter()
        .filter_map(|v| {
            let limits = state.broker.vhost_limits(v)?;
            (!limits.is_empty()).then(|| json!({"vhost": v, "value": limits}))
        })
        .collect()
}

async fn list_vhost_limits(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(limits_items(&state, &state.broker.vhost_names())))
}

async fn get_vhost_limits(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    Ok(Json(limits_items(&state, &[vhost])))
}

async fn put_vhost_limit(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let value = limit_value(&body)?;
    let broker = state.broker.clone();
    blocking(move || {
        let mut limits = broker.vhost_limits(&vhost).unwrap_or_default();
        limits.insert(name, value);
        // A vhost's limits are a runtime parameter in RabbitMQ, refused with its parameter validation's framing;
        // a user's limits are not (their texts come bare).
        broker
            .set_vhost_limits(&vhost, limits)
            .map_err(|error| match error {
                AdminError::Invalid(text) => {
                    ApiError::bad_request(format!("Validation failed\n\n{text}\n"))
                }
                other => ApiError::from(other),
            })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_vhost_limit(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let broker = state.broker.clone();
    blocking(move || {
        let Some(mut limits) = broker.vhost_limits(&vhost) else {
            return Err(ApiError::not_found());
        };
        limits.remove(&name);
        match limits.is_empty() {
            true => Ok(broker.clear_vhost_limits(&vhost)?),
            false => Ok(broker.set_vhost_limits(&vhost, limits)?),
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn policy_items(caller: &Caller, state: &ApiState, policies: Vec<PolicyInfo>) -> Vec<Value> {
    policies
        .into_iter()
        .filter(|p| caller.sees(&state.broker, &p.vhost))
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect()
}

async fn list_kind(
    kind: PolicyKind,
    state: ApiState,
    query: ListQuery,
    caller: Caller,
    vhost: Option<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(vhost) = &vhost {
        caller.require_vhost(&state.broker, vhost)?;
    }
    if kind == PolicyKind::Operator {
        caller.require_admin()?;
    }
    let items = policy_items(
        &caller,
        &state,
        state.broker.policies(kind, vhost.as_deref()),
    );
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

async fn get_kind(
    kind: PolicyKind,
    state: ApiState,
    vhost: String,
    name: String,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let policy = state
        .broker
        .policy(kind, &vhost, &name)
        .ok_or_else(ApiError::not_found)?;
    serde_json::to_value(policy)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A policy's `pattern`, `definition`, `priority` and `apply-to` from a request's JSON object (a policy's own body,
/// or a `policy` parameter's value): 400 `key_missing` without a pattern or definition; other fields are ignored,
/// as RabbitMQ ignores them (clients send `name` and `vhost` too).
pub(super) fn policy_input(
    fields: serde_json::Map<String, Value>,
) -> Result<PolicyInput, ApiError> {
    super::require_keys(&fields, &["pattern", "definition"])?;
    let known: serde_json::Map<String, Value> = fields
        .into_iter()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "pattern" | "definition" | "priority" | "apply-to"
            )
        })
        .collect();
    serde_json::from_value(Value::Object(known)).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `PUT` a policy: the body's `pattern`, `definition`, `priority` and `apply-to` (defaults: 0 and `all`, the
/// previous values not kept, as in RabbitMQ); 201 when new, 204 when replaced.
async fn put_kind(
    kind: PolicyKind,
    state: ApiState,
    vhost: String,
    name: String,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    match kind {
        PolicyKind::Operator => caller.require_admin()?,
        _ => caller.require_policymaker(&state.broker, &vhost)?,
    }
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let input = policy_input(json_body(&body)?)?;
    let broker = state.broker.clone();
    let existed = broker.policy(kind, &vhost, &name).is_some();
    // Checked here first, so a bad policy gets RabbitMQ's answer and never reaches a cluster's log.
    crate::policy::Policy::parse(kind, &vhost, &name, &input)?;
    broker
        .change_definitions(MetaCommand::SetPolicy {
            kind,
            vhost,
            name,
            input,
        })
        .await?;
    Ok(match existed {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::CREATED,
    })
}

async fn delete_kind(
    kind: PolicyKind,
    state: ApiState,
    vhost: String,
    name: String,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    match kind {
        PolicyKind::Operator => caller.require_admin()?,
        _ => caller.require_policymaker(&state.broker, &vhost)?,
    }
    let broker = &state.broker;
    if broker.policy(kind, &vhost, &name).is_none() {
        return Err(ApiError::not_found());
    }
    broker
        .change_definitions(MetaCommand::ClearPolicy { kind, vhost, name })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_policies(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    list_kind(PolicyKind::Policy, state, query, caller, None).await
}

async fn list_vhost_policies(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    list_kind(PolicyKind::Policy, state, query, caller, Some(vhost)).await
}

async fn get_policy(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    get_kind(PolicyKind::Policy, state, vhost, name, caller).await
}

async fn put_policy(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    put_kind(PolicyKind::Policy, state, vhost, name, caller, body).await
}

async fn delete_policy(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    delete_kind(PolicyKind::Policy, state, vhost, name, caller).await
}

async fn list_operator_policies(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    list_kind(PolicyKind::Operator, state, query, caller, None).await
}

async fn list_vhost_operator_policies(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    list_kind(PolicyKind::Operator, state, query, caller, Some(vhost)).await
}

async fn get_operator_policy(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    get_kind(PolicyKind::Operator, state, vhost, name, caller).await
}

async fn put_operator_policy(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    put_kind(PolicyKind::Operator, state, vhost, name, caller, body).await
}

async fn delete_operator_policy(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    delete_kind(PolicyKind::Operator, state, vhost, name, caller).await
}
