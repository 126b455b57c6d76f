//! The shovel management plugin's endpoints (rabbitmq_shovel_management):
//!
//! - `GET /api/shovels`, `GET /api/shovels/{vhost}`: every shovel's status in the vhosts the caller sees;
//! - `GET /api/shovels/vhost/{vhost}/{name}`: one shovel's;
//! - `DELETE /api/shovels/vhost/{vhost}/{name}/restart`: restarts it;
//! - `DELETE /api/shovels/vhost/{vhost}/{name}`: deletes a dynamic shovel (its parameter), as `delete_shovel`.
//!
//! A status has RabbitMQ's fields (`node`, `timestamp`, `name`, `vhost`, `type`, `state`, the connected URIs
//! without passwords and the source and destination, `reason` when terminated), and Warren's `messages_moved` and
//! `last_error`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{blocking, ApiState};
use crate::broker::parameters::SHOVEL;
use crate::shovel::definition::{DestinationKind, SourceKind};
use crate::shovel::{ShovelDefinition, ShovelState, ShovelStatus};

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/shovels", get(list_all))
        .route("/api/shovels/{vhost}", get(list_vhost))
        .route(
            "/api/shovels/vhost/{vhost}/{name}",
            get(get_one).delete(delete_one),
        )
        .route("/api/shovels/vhost/{vhost}/{name}/restart", delete(restart))
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the form of RabbitMQ's shovel timestamps.
pub(crate) fn timestamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The source and destination of a definition, by RabbitMQ's status keys.
fn endpoints(definition: &ShovelDefinition, out: &mut Map<String, Value>) {
    match &definition.source.kind {
        SourceKind::Queue { name, .. } => {
            out.insert("src_queue".into(), json!(name));
        }
        SourceKind::Exchange { name, key } => {
            out.insert("src_exchange".into(), json!(name));
            out.insert("src_exchange_key".into(), json!(key));
        }
    }
    match &definition.destination.kind {
        DestinationKind::Queue { name, .. } => {
            out.insert("dest_queue".into(), json!(name));
        }
        DestinationKind::Exchange { name, key } => {
            out.insert("dest_exchange".into(), json!(name));
            if let Some(key) = key {
                out.insert("dest_exchange_key".into(), json!(key));
            }
        }
        DestinationKind::Original { key } => {
            if let Some(key) = key {
                out.insert("dest_exchange_key".into(), json!(key));
            }
        }
    }
}

/// One status as RabbitMQ's JSON.
pub(crate) fn status_json(status: &ShovelStatus, definition: Option<&ShovelDefinition>) -> Value {
    let id = &status.identity;
    let mut out = Map::new();
    out.insert("node".into(), json!(id.node));
    out.insert("timestamp".into(), json!(timestamp(status.since)));
    out.insert("name".into(), json!(id.name));
    if let Some(vhost) = &id.vhost {
        out.insert("vhost".into(), json!(vhost));
    }
    out.insert("type".into(), json!(id.kind.name()));
    out.insert("state".into(), json!(status.state.name()));
    match &status.state {
        ShovelState::Starting => {}
        ShovelState::Running => {
            out.insert("blocked_status".into(), json!("running"));
            out.insert("src_uri".into(), json!(status.source_uri));
            out.insert("src_protocol".into(), json!("amqp091"));
            out.insert("dest_uri".into(), json!(status.destination_uri));
            out.insert("dest_protocol".into(), json!("amqp091"));
            if let Some(definition) = definition {
                endpoints(definition, &mut out);
            }
        }
        ShovelState::Terminated { reason } => {
            out.insert("reason".into(), json!(reason));
        }
    }
    out.insert("messages_moved".into(), json!(status.messages_moved));
    out.insert("last_error".into(), json!(status.last_error));
    Value::Object(out)
}

/// Every shovel's status, this node's and (on a cluster) the other members', in the vhosts `caller` sees.
async fn statuses(state: &ApiState, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let broker = &state.broker;
    let mut all = broker.shovel_statuses();
    if let Some(cluster) = broker.cluster() {
        all.extend(cluster.peer_shovel_statuses().await);
    }
    all.sort_by(|a, b| {
        (&a.identity.vhost, &a.identity.name).cmp(&(&b.identity.vhost, &b.identity.name))
    });
    all.iter()
        .filter(|s| match &s.identity.vhost {
            Some(v) => caller.sees(broker, v) && vhost.is_none_or(|want| want == v),
            // Static shovels belong to no vhost: shown to those who see the whole node.
            None => vhost.is_none() && caller.is_monitor(),
        })
        .map(|s| {
            let (vhost, name) = (s.identity.vhost.as_deref(), s.identity.name.as_str());
            // A shovel another node runs: its definition is the parameter every node has.
            let definition = broker.shovel_definition(vhost, name).or_else(|| {
                let stored = broker.runtime_parameters(Some(SHOVEL), vhost);
                let value = &stored.iter().find(|p| p.name == name)?.value;
                ShovelDefinition::parse(value).ok().map(std::sync::Arc::new)
            });
            status_json(s, definition.as_deref())
        })
        .collect()
}

async fn list_all(State(state): State<ApiState>, caller: Caller) -> Json<Value> {
    Json(Value::Array(statuses(&state, &caller, None).await))
}

async fn list_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    Ok(Json(Value::Array(
        statuses(&state, &caller, Some(&vhost)).await,
    )))
}

async fn get_one(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    statuses(&state, &caller, Some(&vhost))
        .await
        .into_iter()
        .find(|s| s["name"] == name.as_str())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

async fn restart(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_policymaker(&state.broker, &vhost)?;
    match state.broker.restart_shovel(Some(&vhost), &name).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found()),
    }
}

async fn delete_one(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_policymaker(&state.broker, &vhost)?;
    let broker = state.broker.clone();
    match blocking(move || Ok(broker.clear_parameter(SHOVEL, &vhost, &name)?)).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_read_as_civil_utc_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00");
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(timestamp(leap_day), "2024-02-29 12:34:56");
    }
}
