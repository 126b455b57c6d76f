//! Bindings: `/api/bindings[/{vhost}]`, `/api/bindings/{vhost}/e/{source}/q|e/{destination}[/{props}]`, and
//! an exchange's bindings as source or destination. A binding is named in paths by its properties key: the
//! routing key, URL-encoded as RabbitMQ encodes it, then `~` and a hash of the arguments when it has any (the hash
//! is Warren's own, so a key names the same binding only on the broker that listed it, as with RabbitMQ).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::auth::Caller;
use super::error::ApiError;
use super::queues::arguments_of;
use super::{exchange_in_path, json_body, ApiState};
use crate::broker::inspect::BindingInfo;
use crate::definitions::table_from_json;

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/bindings", get(list_all))
        .route("/api/bindings/{vhost}", get(list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(list_between).post(create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(get_one).delete(delete_one),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(exchange_as_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(exchange_as_destination),
        )
}

/// The properties key of a binding.
fn properties_key(routing_key: &str, arguments: &Map<String, Value>) -> String {
    let key = url_encode(routing_key);
    if arguments.is_empty() {
        return key;
    }
    let digest = sha2::Sha256::digest(Value::Object(arguments.clone()).to_string().as_bytes());
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..6]);
    format!("{key}~{hash}")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A binding as RabbitMQ lists it.
pub(crate) fn binding_json(b: &BindingInfo) -> Value {
    json!({
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": if b.to_queue { "queue" } else { "exchange" },
        "routing_key": b.routing_key,
        "arguments": b.arguments,
        "properties_key": properties_key(&b.routing_key, &b.arguments),
    })
}

fn to_queue(kind: &str) -> Result<bool, ApiError> {
    match kind {
        "q" => Ok(true),
        "e" => Ok(false),
        _ => Err(ApiError::not_found()),
    }
}

fn listed(state: &ApiState, caller: &Caller, vhost: Option<&str>) -> Vec<BindingInfo> {
    state
        .broker
        .binding_infos(vhost)
        .into_iter()
        .filter(|b| caller.sees(&state.broker, &b.vhost))
        .collect()
}

async fn list_all(State(state): State<ApiState>, caller: Caller) -> Json<Value> {
    Json(
        listed(&state, &caller, None)
            .iter()
            .map(binding_json)
            .collect(),
    )
}

async fn list_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    Ok(Json(
        listed(&state, &caller, Some(&vhost))
            .iter()
            .map(binding_json)
            .collect(),
    ))
}

/// The bindings from `source` to `destination`: none when either does not exist (RabbitMQ lists `[]` then; a
/// single binding's path is 404 because nothing matches).
async fn between(
    state: &ApiState,
    caller: &Caller,
    (vhost, source, kind, destination): &(String, String, String, String),
) -> Result<Vec<BindingInfo>, ApiError> {
    caller.require_vhost(&state.broker, vhost)?;
    let to_queue = to_queue(kind)?;
    let source = exchange_in_path(source);
    Ok(listed(state, caller, Some(vhost))
        .into_iter()
        .filter(|b| b.source == source && b.destination == *destination && b.to_queue == to_queue)
        .collect())
}

async fn list_between(
    State(state): State<ApiState>,
    Path(path): Path<(String, String, String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let found = between(&state, &caller, &path).await?;
    Ok(Json(found.iter().map(binding_json).collect()))
}

/// `POST`: binds with the body's `routing_key` and `arguments`; 201 with a `Location` naming the new binding.
async fn create(
    State(state): State<ApiState>,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let to_queue = to_queue(&kind)?;
    let destination_kind = if to_queue { "queue" } else { "exchange" };
    caller.require_binding(
        &state.broker,
        &vhost,
        &source,
        destination_kind,
        &destination,
    )?;
    let body = json_body(&body)?;
    let routing_key = body
        .get("routing_key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let arguments = arguments_of(&body)?;
    let arguments_json = crate::definitions::table_to_json(&arguments);
    require_ends(&state, &vhost, &source, destination_kind, &destination).await?;
    state
        .broker
        .bind_by_api(
            &vhost,
            exchange_in_path(&source),
            &destination,
            to_queue,
            &routing_key,
            arguments,
            &caller.name,
        )
        .await?;
    let location = format!(
        "{destination}/{}",
        properties_key(&routing_key, &arguments_json)
    );
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// 404 `not_found` with the text `queue.bind` closes a channel with when the source exchange (checked first, as
/// `rabbit_binding` does) or the destination does not exist: RabbitMQ binds on an internal channel and answers
/// with that text.
async fn require_ends(
    state: &ApiState,
    vhost: &str,
    source: &str,
    destination_kind: &str,
    destination: &str,
) -> Result<(), ApiError> {
    let missing = |kind: &str, name: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {kind} '{name}' in vhost '{vhost}'"),
        )
    };
    if state
        .broker
        .exchange_info(vhost, exchange_in_path(source))
        .is_none()
    {
        return Err(missing("exchange", source));
    }
    let destination_exists = match destination_kind {
        "queue" => state.broker.queue_info(vhost, destination).await.is_some(),
        _ => state.broker.exchange_info(vhost, destination).is_some(),
    };
    match destination_exists {
        true => Ok(()),
        false => Err(missing(destination_kind, destination)),
    }
}

async fn find(
    state: &ApiState,
    caller: &Caller,
    path: (String, String, String, String, String),
) -> Result<BindingInfo, ApiError> {
    let (vhost, source, kind, destination, props) = path;
    let found = between(state, caller, &(vhost, source, kind, destination)).await?;
    found
        .into_iter()
        .find(|b| properties_key(&b.routing_key, &b.arguments) == url_encode_props(&props))
        .ok_or_else(ApiError::not_found)
}

/// The properties key as it arrived in the (decoded) path, encoded back as listed.
fn url_encode_props(props: &str) -> String {
    match props.split_once('~') {
        Some((key, hash)) => format!("{}~{hash}", url_encode(key)),
        None => url_encode(props),
    }
}

async fn get_one(
    State(state): State<ApiState>,
    Path(path): Path<(String, String, String, String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let binding = find(&state, &caller, path).await?;
    Ok(Json(binding_json(&binding)))
}

async fn delete_one(
    State(state): State<ApiState>,
    Path(path): Path<(String, String, String, String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let binding = find(&state, &caller, path).await?;
    let destination_kind = if binding.to_queue {
        "queue"
    } else {
        "exchange"
    };
    caller.require_binding(
        &state.broker,
        &binding.vhost,
        &binding.source,
        destination_kind,
        &binding.destination,
    )?;
    let arguments =
        table_from_json(&binding.arguments).map_err(|(_, why)| ApiError::internal(why))?;
    state
        .broker
        .unbind_by_api(
            &binding.vhost,
            &binding.source,
            &binding.destination,
            binding.to_queue,
            &binding.routing_key,
            arguments,
            &caller.name,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn exchange_bindings(
    state: ApiState,
    caller: Caller,
    vhost: String,
    name: String,
    as_source: bool,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let name = exchange_in_path(&name);
    if state.broker.exchange_info(&vhost, name).is_none() {
        return Err(ApiError::not_found());
    }
    let items = listed(&state, &caller, Some(&vhost))
        .iter()
        .filter(|b| match as_source {
            true => b.source == name,
            false => !b.to_queue && b.destination == name,
        })
        .map(binding_json)
        .collect();
    Ok(Json(items))
}

async fn exchange_as_source(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    exchange_bindings(state, caller, vhost, name, true).await
}

async fn exchange_as_destination(
    State(state): State<ApiState>,
    Path((vhost, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    exchange_bindings(state, caller, vhost, name, false).await
}
