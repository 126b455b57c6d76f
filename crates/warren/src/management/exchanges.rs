//! Exchanges: `/api/exchanges[/{vhost}[/{name}]]` (list, declare, delete) and `/publish`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::listing::{self, ListQuery};
use super::message_json::message_from_publish;
use super::queues::{arguments_of, flag, DeleteConditions};
use super::{exchange_in_path, json_body, ApiState};
use crate::auth::users::Access;
use crate::broker::inspect::ExchangeInfo;
use crate::broker::topology::{channel_error_text, Declaration, TopologyError};

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/exchanges", get(list_all))
        .route("/api/exchanges/{vhost}", get(list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(get_exchange).put(put_exchange).delete(delete_exchange),
        )
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
}

fn exchange_json(state: &ApiState, x: &ExchangeInfo) -> Value {
    let mut exchange = json!({
        "name": x.name,
        "vhost": x.vhost,
        "type": x.kind,
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": x.arguments,
        "policy": x.policy,
        "user_who_performed_action": "",
    });
    if let (Some(stats), Some(object)) = (
        state.rates.exchange_stats(&x.vhost, &x.name, x.stats),
        exchange.as_object_mut(),
    ) {
        object.insert("message_stats".to_owned(), stats);
    }
    exchange
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
        .exchange_infos(vhost.as_deref())
        .iter()
        .filter(|x| caller.sees(&state.broker, &x.vhost))
        .map(|x| exchange_json(&state, x))
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

async fn get_exchange(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let info = state
        .broker
        .exchange_info(&vhost, exchange_in_path(&name))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(exchange_json(&state, &info)))
}

/// `PUT`: `type` (direct by default), `durable` (true), `auto_delete`, `internal`, `arguments`; 201 created,
/// 204 when an equivalent exchange exists, 400 when inequivalent or of an unknown type.
async fn put_exchange(
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
    let exchange = exchange_in_path(&name);
    caller.require_access(
        &state.broker,
        &vhost,
        "exchange",
        exchange,
        Access::Configure,
    )?;
    let body = json_body(&body)?;
    let declaration = Declaration {
        name: exchange.to_owned(),
        durable: flag(&body, "durable", true),
        auto_delete: flag(&body, "auto_delete", false),
        internal: flag(&body, "internal", false),
        kind: body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("direct")
            .to_owned(),
        arguments: arguments_of(&body)?,
    };
    let created = state
        .broker
        .declare_exchange_by_api(&vhost, declaration, &caller.name)
        .await
        .map_err(refusal_as_access)?;
    Ok(match created {
        true => StatusCode::CREATED,
        false => StatusCode::NO_CONTENT,
    })
}

/// 403 ACCESS_REFUSED (the default exchange, `amq.` names) is answered as RabbitMQ answers it: 401
/// "Access refused.".
fn refusal_as_access(error: TopologyError) -> ApiError {
    match &error {
        TopologyError::Refused(e) if e.code == warren_protocol::error::ReplyCode::AccessRefused => {
            ApiError::not_authorised("Access refused.")
        }
        _ => error.into(),
    }
}

async fn delete_exchange(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    Query(conditions): Query<DeleteConditions>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    caller.require_access(
        &state.broker,
        &vhost,
        "exchange",
        exchange_in_path(&name),
        Access::Configure,
    )?;
    state
        .broker
        .delete_exchange_by_api(
            &vhost,
            exchange_in_path(&name),
            conditions.if_unused(),
            &caller.name,
        )
        .await
        .map_err(refusal_as_access)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../publish`: `{"routed": bool}`; a refusal of the publish is 400 with the AMQP error's text
/// ("404 NOT_FOUND - no exchange ...").
async fn publish(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let body = json_body(&body)?;
    let exchange = exchange_in_path(&name);
    caller.require_access(&state.broker, &vhost, "exchange", exchange, Access::Write)?;
    let message = message_from_publish(exchange, &body)?;
    match state.broker.publish_by_api(&vhost, exchange, message) {
        Ok(routed) => Ok(Json(json!({"routed": routed}))),
        Err(TopologyError::Refused(e)) => Err(ApiError::bad_request(channel_error_text(&e))),
        Err(other) => Err(other.into()),
    }
}
