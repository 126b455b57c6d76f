//! Channels: `/api/channels[/{name}]`, `/api/vhosts/{vhost}/channels`, `/api/connections/{name}/channels`, as
//! RabbitMQ lists them. A channel's figures are read from the channel's own shared state when asked (see
//! `registry::ChannelProbe`); a user without the monitoring tag sees only its own connections' channels.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::connections::visible;
use super::error::ApiError;
use super::listing::{self, ListQuery};
use super::stats::channel_name;
use super::ApiState;
use crate::registry::{ChannelSummary, ConnectionSummary};

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/channels", get(list_all))
        .route("/api/channels/{name}", get(get_channel))
        .route("/api/vhosts/{vhost}/channels", get(list_vhost))
        .route("/api/connections/{name}/channels", get(list_connection))
}

fn channel_json(state: &ApiState, c: &ConnectionSummary, ch: &ChannelSummary) -> Value {
    let d = &c.details;
    let name = channel_name(&c.name, ch.number);
    let mut channel = json!({
        "name": name,
        "number": ch.number,
        "node": state.broker.config.server.cluster_name,
        "state": "running",
        "user": d.user,
        "user_who_performed_action": d.user,
        "vhost": d.vhost,
        "connection_details": {
            "name": c.name,
            "peer_host": d.peer.ip().to_string(),
            "peer_port": d.peer.port(),
        },
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "consumer_count": ch.consumer_count,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
    });
    if let (Some(stats), Some(object)) = (
        state.rates.channel_stats(&name, &ch.stats),
        channel.as_object_mut(),
    ) {
        object.insert("message_stats".to_owned(), stats);
    }
    channel
}

/// The channels of the connections `pick` chooses among those `caller` sees, as JSON.
fn channels_of(
    state: &ApiState,
    caller: &Caller,
    pick: impl Fn(&ConnectionSummary) -> bool,
) -> Vec<Value> {
    let registry = state.broker.connections();
    visible(state, caller)
        .iter()
        .filter(|c| pick(c))
        .flat_map(|c| {
            registry
                .channel_summaries(c.details.id)
                .iter()
                .map(|ch| channel_json(state, c, ch))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn list_all(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let items = channels_of(&state, &caller, |_| true);
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

async fn list_vhost(
    State(state): State<ApiState>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&state.broker, &vhost)?;
    let items = channels_of(&state, &caller, |c| c.details.vhost == vhost);
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

async fn list_connection(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if !visible(&state, &caller).iter().any(|c| c.name == name) {
        return Err(ApiError::not_found());
    }
    let items = channels_of(&state, &caller, |c| c.name == name);
    Ok(Json(listing::answer(items, &query, &["vhost", "name"])?))
}

async fn get_channel(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    channels_of(&state, &caller, |c| name.starts_with(c.name.as_str()))
        .into_iter()
        .find(|ch| ch["name"] == name.as_str())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}
