//! Users, permissions, topic permissions and user limits: `/api/users`, `/api/permissions`,
//! `/api/topic-permissions`, `/api/user-limits` (administrators only, as in RabbitMQ).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::listing::{self, ListQuery};
use super::{blocking, json_body, ApiState};
use crate::auth::password::{hash_password, HashingAlgorithm};
use crate::broker::{PermissionDefinition, TopicPermissionDefinition, UserDefinition};
use crate::cluster::MetaCommand;

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/users", get(list_users))
        .route(
            "/api/users/without-permissions",
            get(users_without_permissions),
        )
        .route("/api/users/bulk-delete", post(bulk_delete_users))
        .route(
            "/api/users/{user}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/api/users/{user}/permissions", get(user_permissions))
        .route(
            "/api/users/{user}/topic-permissions",
            get(user_topic_permissions),
        )
        .route("/api/permissions", get(list_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(get_permission)
                .put(put_permission)
                .delete(delete_permission),
        )
        .route("/api/topic-permissions", get(list_topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(get_topic_permission)
                .put(put_topic_permission)
                .delete(delete_topic_permission),
        )
        .route("/api/user-limits", get(list_user_limits))
        .route("/api/user-limits/{user}", get(get_user_limits))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(put_user_limit).delete(delete_user_limit),
        )
}

fn user_json(user: &UserDefinition) -> Value {
    json!({
        "name": user.name,
        "password_hash": user.password_hash,
        "hashing_algorithm": user.hashing_algorithm,
        "tags": user.tags,
        "limits": user.limits,
    })
}

async fn list_users(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let users = state.broker.users().iter().map(user_json).collect();
    Ok(Json(listing::answer(users, &query, &["name"])?))
}

async fn users_without_permissions(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let permissions = state.broker.permissions();
    let users = state
        .broker
        .users()
        .iter()
        .filter(|u| !permissions.iter().any(|p| p.user == u.name))
        .map(user_json)
        .collect();
    Ok(Json(Value::Array(users)))
}

async fn get_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let user = state
        .broker
        .access
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&user)))
}

/// The tags of a user body: a comma-separated string or a list, as RabbitMQ 3.10 takes both.
fn tags_of(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a string or a list")),
    }
}

/// `PUT /api/users/{name}`: `password`, or `password_hash` (with `hashing_algorithm`), or neither (a user that
/// cannot log in with a password); 201 when created, 204 when replaced (its limits kept).
async fn put_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let body = json_body(&body)?;
    let tags = tags_of(&body)?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let (password_hash, hashing_algorithm) = match (text("password"), text("password_hash")) {
        (Some(password), _) => (
            hash_password(HashingAlgorithm::Sha256, &password),
            HashingAlgorithm::Sha256.name().to_owned(),
        ),
        (None, Some(hash)) => {
            // RabbitMQ decodes the hash first and answers `{not_base64, Hash}` (a JSON list) when it cannot;
            // the hash's length for its algorithm is Warren's own check, made later by `put_user`.
            if base64::engine::general_purpose::STANDARD
                .decode(&hash)
                .is_err()
            {
                return Err(ApiError::bad_request(json!(["not_base64", hash])));
            }
            (
                hash,
                text("hashing_algorithm")
                    .unwrap_or_else(|| HashingAlgorithm::Sha256.name().to_owned()),
            )
        }
        (None, None) => (String::new(), HashingAlgorithm::Sha256.name().to_owned()),
    };
    let broker = state.broker.clone();
    let existing = broker.access.user(&name);
    let limits = existing
        .as_ref()
        .map(|u| u.limits.clone())
        .unwrap_or_default();
    let user = UserDefinition {
        name,
        password_hash,
        hashing_algorithm,
        tags,
        limits,
    };
    broker
        .change_definitions(MetaCommand::PutUser { user })
        .await?;
    Ok(match existing {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::CREATED,
    })
}

async fn delete_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    // Checked here: a cluster's nodes answer a refusal as text, not as the missing user.
    if state.broker.access.user(&name).is_none() {
        return Err(ApiError::not_found());
    }
    state
        .broker
        .change_definitions(MetaCommand::DeleteUser { name })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/users/bulk-delete` with `{"users": [...]}`; names that do not exist are skipped.
async fn bulk_delete_users(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let body = json_body(&body)?;
    let names: Vec<String> = body
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("[{key_missing,users}]"))?
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let broker = state.broker.clone();
    blocking(move || {
        for name in names {
            match broker.delete_user(&name) {
                Ok(()) | Err(crate::broker::AdminError::NoSuchUser(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn permission_json(p: &PermissionDefinition) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

fn topic_permission_json(p: &TopicPermissionDefinition) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "exchange": p.exchange, "write": p.write, "read": p.read})
}

async fn list_permissions(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let items = state
        .broker
        .permissions()
        .iter()
        .map(permission_json)
        .collect();
    Ok(Json(listing::answer(items, &query, &["vhost", "user"])?))
}

/// `user`'s entries of `all` as JSON (administrators only; 404 for an unknown user).
fn of_user<T>(
    state: &ApiState,
    caller: &Caller,
    user: &str,
    all: Vec<T>,
    owner: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Value,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    state
        .broker
        .access
        .user(user)
        .ok_or_else(ApiError::not_found)?;
    let items = all
        .iter()
        .filter(|p| owner(p) == user)
        .map(to_json)
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn user_permissions(
    State(state): State<ApiState>,
    Path(user): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = state.broker.permissions();
    of_user(&state, &caller, &user, all, |p| &p.user, permission_json)
}

async fn user_topic_permissions(
    State(state): State<ApiState>,
    Path(user): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = state.broker.topic_permissions();
    of_user(
        &state,
        &caller,
        &user,
        all,
        |p| &p.user,
        topic_permission_json,
    )
}

async fn get_permission(
    State(state): State<ApiState>,
    Path((vhost, user)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let permission = state
        .broker
        .permissions()
        .into_iter()
        .find(|p| p.vhost == vhost && p.user == user)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&permission)))
}

/// `PUT /api/permissions/{vhost}/{user}`: 201 when new, 204 when replaced; 400 `vhost_or_user_not_found`.
async fn put_permission(
    State(state): State<ApiState>,
    Path((vhost, user)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let body = json_body(&body)?;
    let broker = state.broker.clone();
    if broker.access.user(&user).is_none() || !broker.has_vhost(&vhost) {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    super::require_keys(&body, &["configure", "write", "read"])?;
    let field = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let existed = broker
        .permissions()
        .iter()
        .any(|p| p.vhost == vhost && p.user == user);
    let permission = PermissionDefinition {
        user,
        vhost,
        configure: field("configure"),
        write: field("write"),
        read: field("read"),
    };
    broker
        .change_definitions(MetaCommand::SetPermissions { permission })
        .await?;
    Ok(match existed {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::CREATED,
    })
}

async fn delete_permission(
    State(state): State<ApiState>,
    Path((vhost, user)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let broker = &state.broker;
    let exists = broker
        .permissions()
        .iter()
        .any(|p| p.vhost == vhost && p.user == user);
    if !exists {
        return Err(ApiError::not_found());
    }
    broker
        .change_definitions(MetaCommand::ClearPermissions { user, vhost })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_topic_permissions(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let items = state
        .broker
        .topic_permissions()
        .iter()
        .map(topic_permission_json)
        .collect();
    Ok(Json(listing::answer(items, &query, &["vhost", "user"])?))
}

async fn get_topic_permission(
    State(state): State<ApiState>,
    Path((vhost, user)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let items: Vec<Value> = state
        .broker
        .topic_permissions()
        .iter()
        .filter(|p| p.vhost == vhost && p.user == user)
        .map(topic_permission_json)
        .collect();
    if items.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(items)))
}

async fn put_topic_permission(
    State(state): State<ApiState>,
    Path((vhost, user)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let body = json_body(&body)?;
    let broker = state.broker.clone();
    if broker.access.user(&user).is_none() || !broker.has_vhost(&vhost) {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    super::require_keys(&body, &["exchange", "write", "read"])?;
    let field = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let exchange = field("exchange");
    let existed = broker
        .topic_permissions()
        .iter()
        .any(|p| p.vhost == vhost && p.user == user && p.exchange == exchange);
    let permission = TopicPermissionDefinition {
        user,
        vhost,
        exchange,
        write: field("write"),
        read: field("read"),
    };
    blocking(move || {
        broker
            .set_topic_permissions(permission)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(match existed {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::CREATED,
    })
}

/// `DELETE /api/topic-permissions/{vhost}/{user}`: every topic permission of the user in the vhost.
async fn delete_topic_permission(
    State(state): State<ApiState>,
    Path((vhost, user)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let broker = state.broker.clone();
    let removed = blocking(move || {
        let exchanges: Vec<String> = broker
            .topic_permissions()
            .into_iter()
            .filter(|p| p.vhost == vhost && p.user == user)
            .map(|p| p.exchange)
            .collect();
        for exchange in &exchanges {
            broker.clear_topic_permissions(&user, &vhost, exchange)?;
        }
        Ok(!exchanges.is_empty())
    })
    .await?;
    match removed {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found()),
    }
}

fn user_limits_json(user: &UserDefinition) -> Value {
    json!({"user": user.name, "value": user.limits})
}

async fn list_user_limits(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let items = state
        .broker
        .users()
        .iter()
        .filter(|u| !u.limits.is_empty())
        .map(user_limits_json)
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn get_user_limits(
    State(state): State<ApiState>,
    Path(user): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let user = state
        .broker
        .access
        .user(&user)
        .ok_or_else(ApiError::not_found)?;
    let items = match user.limits.is_empty() {
        true => Vec::new(),
        false => vec![user_limits_json(&user)],
    };
    Ok(Json(Value::Array(items)))
}

/// The `{"value": N}` body of a limit.
pub(crate) fn limit_value(body: &Bytes) -> Result<Value, ApiError> {
    json_body(body)?
        .remove("value")
        .ok_or_else(|| ApiError::bad_request("[{key_missing,value}]"))
}

async fn put_user_limit(
    State(state): State<ApiState>,
    Path((user, name)): Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let value = limit_value(&body)?;
    let broker = state.broker.clone();
    let mut limits = Map::new();
    limits.insert(name, value);
    blocking(move || {
        broker
            .set_user_limits(&user, limits)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user_limit(
    State(state): State<ApiState>,
    Path((user, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let broker = state.broker.clone();
    blocking(move || {
        broker
            .clear_user_limits(&user, Some(&name))
            .map_err(ApiError::from)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
