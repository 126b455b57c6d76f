//! `/api/definitions[/{vhost}]`: export (GET) and import (POST) of RabbitMQ definitions JSON on the running
//! broker. An import is checked whole first (nothing applies when any entry is refused), then applied through
//! the same admin and topology calls as the other endpoints, so the new objects are live at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{blocking, ApiState};
use crate::broker::topology::Declaration;
use crate::broker::{PolicyInput, PolicyKind};
use crate::definitions::{check_import, export_json};
use crate::meta::ImportBatch;

async fn export(state: &ApiState) -> Result<Value, ApiError> {
    let broker = state.broker.clone();
    let stored = blocking(move || {
        broker
            .stored_definitions()
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    export_json(&stored).map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /api/definitions`: everything durable (administrators).
pub(crate) async fn export_all(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(export(&state).await?))
}

/// `GET /api/definitions/{vhost}`: one vhost's queues, exchanges, bindings, policies and parameters. Queues,
/// exchanges and bindings lose their `vhost` fields; policies and parameters keep them, as RabbitMQ 3.10 exports a
/// vhost (checked against its answer).
pub(crate) async fn export_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let all = export(&state).await?;
    let mut out =
        json!({"rabbit_version": all.get("rabbit_version").cloned().unwrap_or(Value::Null)});
    for key in ["parameters", "policies", "queues", "exchanges", "bindings"] {
        let items: Vec<Value> = all
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| item.get("vhost").and_then(Value::as_str) == Some(vhost.as_str()))
            .map(|item| {
                let mut item = item.clone();
                if let Some(map) = item.as_object_mut() {
                    if !matches!(key, "parameters" | "policies") {
                        map.remove("vhost");
                    }
                }
                item
            })
            .collect();
        out[key] = Value::Array(items);
    }
    Ok(Json(out))
}

/// `POST /api/definitions`: imports a definitions file; 204, or 400 listing every refused entry.
pub(crate) async fn import_all(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let json: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("not_json"))?;
    import(&state, &caller, json).await
}

/// `POST /api/definitions/{vhost}`: imports a vhost's definitions (entries without `vhost` go to it).
pub(crate) async fn import_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let mut json: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("not_json"))?;
    for key in ["parameters", "policies", "queues", "exchanges", "bindings"] {
        if let Some(items) = json.get_mut(key).and_then(Value::as_array_mut) {
            for item in items {
                if let Some(map) = item.as_object_mut() {
                    map.insert("vhost".into(), Value::String(vhost.clone()));
                }
            }
        }
    }
    for key in ["users", "vhosts", "permissions", "topic_permissions"] {
        if let Some(map) = json.as_object_mut() {
            map.remove(key);
        }
    }
    import(&state, &caller, json).await
}

async fn import(state: &ApiState, caller: &Caller, json: Value) -> Result<StatusCode, ApiError> {
    let broker = state.broker.clone();
    let batch = blocking(move || {
        let stored = broker
            .stored_definitions()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        check_import(&json, &stored).map_err(|errors| {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ApiError::bad_request(reasons.join("; "))
        })
    })
    .await?;
    apply(state, caller, batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a checked batch to the running broker: vhosts, users and permissions, policies, then the topology.
async fn apply(state: &ApiState, caller: &Caller, batch: ImportBatch) -> Result<(), ApiError> {
    let broker = state.broker.clone();
    let ImportBatch {
        users,
        vhosts,
        permissions,
        topic_permissions,
        policies,
        exchanges,
        queues,
        bindings,
        parameters,
        ..
    } = batch;
    blocking(move || {
        for vhost in vhosts {
            if !broker.has_vhost(&vhost.name) {
                broker.add_vhost(&vhost.name)?;
            }
            if !vhost.limits.is_empty() {
                broker.set_vhost_limits(&vhost.name, vhost.limits)?;
            }
            if let Some(queue_type) = vhost.default_queue_type {
                broker.set_vhost_default_queue_type(&vhost.name, Some(&queue_type))?;
            }
        }
        for user in users {
            broker.put_user(user)?;
        }
        for permission in permissions {
            broker.set_permissions(permission)?;
        }
        for permission in topic_permissions {
            broker.set_topic_permissions(permission)?;
        }
        for p in policies {
            let kind = match p.operator {
                true => PolicyKind::Operator,
                false => PolicyKind::Policy,
            };
            let input = PolicyInput {
                pattern: p.pattern,
                apply_to: Some(p.apply_to),
                priority: Some(Value::from(p.priority)),
                definition: p.definition,
            };
            broker.set_policy(kind, &p.vhost, &p.name, &input)?;
        }
        Ok(())
    })
    .await?;
    let broker = state.broker.clone();
    let shovels = parameters;
    // After the topology: a shovel may consume from a queue of this import.
    let start_shovels = move || -> Result<(), ApiError> {
        for p in shovels {
            broker.set_parameter(&p.component, &p.vhost, &p.name, p.value)?;
        }
        Ok(())
    };
    let broker = &state.broker;
    for x in exchanges {
        let declaration = Declaration {
            name: x.name,
            durable: true,
            auto_delete: x.auto_delete,
            internal: x.internal,
            kind: x.kind,
            arguments: x.arguments,
        };
        broker
            .declare_exchange_by_api(&x.vhost, declaration, &caller.name)
            .await?;
    }
    for q in queues {
        let declaration = Declaration {
            name: q.name,
            durable: true,
            auto_delete: q.auto_delete,
            internal: false,
            kind: String::new(),
            arguments: q.arguments,
        };
        broker
            .declare_queue_by_api(&q.vhost, declaration, &caller.name)
            .await?;
    }
    for b in bindings {
        broker
            .bind_by_api(
                &b.vhost,
                &b.source,
                &b.destination,
                b.destination_is_queue,
                &b.routing_key,
                b.arguments,
                &caller.name,
            )
            .await?;
    }
    blocking(start_shovels).await
}
