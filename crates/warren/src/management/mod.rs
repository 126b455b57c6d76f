//! The management HTTP API: RabbitMQ's management plugin's paths, verbs, JSON and status codes, served by axum on
//! the broker's tokio runtime from `[management] listen` (port 15672 by default). See docs/management.md for every
//! endpoint and its status.
//!
//! - `auth`: HTTP basic authentication and RabbitMQ's authorisation by user tags;
//! - `error`: RabbitMQ's `{"error", "reason"}` answers;
//! - `listing`: paging, sorting, filtering and columns of list endpoints;
//! - one file per group of resources: `overview` (overview, nodes, whoami, health checks), `access` (users,
//!   permissions, limits), `vhosts` (vhosts, policies), `queues`, `exchanges` (with publish), `bindings`,
//!   `connections` (connections, consumers), `channels`, `parameters` (runtime and global parameters),
//!   `definitions`, `extensions` (Warren's own: delayed messages, deduplication caches); `stats` samples message
//!   rates; `message_json` converts message properties.
//! - `ui`: the web UI's page and assets at `/`, a browser client of the routes above.
//!
//! It reads the broker through its admin, inspection and topology APIs (`broker::admin`, `broker::inspect`,
//! `broker::topology`) and never touches an AMQP hot path.

mod access;
mod auth;
mod bindings;
mod channels;
mod connections;
mod definitions;
mod error;
mod exchanges;
mod extensions;
mod federation;
mod listing;
mod message_json;
mod overview;
mod parameters;
mod queues;
mod shovels;
mod stats;
mod ui;
mod vhosts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::broker::Broker;
use error::ApiError;

/// What every handler is given.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// The broker the API manages.
    pub(crate) broker: Arc<Broker>,
    /// When the node started, for `uptime`.
    pub(crate) started: Instant,
    /// The AMQP listeners' bound addresses, then the management listener's (overview `listeners`, port health
    /// check).
    pub(crate) listeners: Arc<Vec<(&'static str, SocketAddr)>>,
    /// Message rates, sampled every `collect_statistics_interval`.
    pub(crate) rates: Arc<stats::RateSampler>,
}

/// The bound management listener, before it serves.
pub(crate) struct ManagementListener {
    socket: TcpListener,
    /// The bound address (port 0 resolved).
    pub(crate) addr: SocketAddr,
}

impl ManagementListener {
    /// Binds `addr`.
    pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<ManagementListener> {
        let socket = TcpListener::bind(addr).await?;
        let addr = socket.local_addr()?;
        Ok(ManagementListener { socket, addr })
    }

    /// Serves the API until the task is aborted. `amqp` are the AMQP listeners' addresses, each with its
    /// protocol name (`amqp`, `amqp/ssl`).
    pub(crate) async fn serve(self, broker: Arc<Broker>, amqp: Vec<(&'static str, SocketAddr)>) {
        let mut listeners = amqp;
        listeners.push(("http", self.addr));
        let rates = Arc::new(stats::RateSampler::new(
            broker.config.management.collect_statistics_interval,
        ));
        let state = ApiState {
            broker: broker.clone(),
            started: Instant::now(),
            listeners: Arc::new(listeners),
            rates: rates.clone(),
        };
        tracing::info!(
            "Management plugin: HTTP (non-TLS) listener started on port {}",
            self.addr.port()
        );
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        // The sampler lives as long as the listener: both end when this task is aborted.
        tokio::select! {
            served = axum::serve(self.socket, app) => {
                if let Err(error) = served {
                    tracing::error!(%error, "the management listener stopped");
                }
            }
            () = rates.run(broker) => {}
        }
    }
}

/// Every route of the API and the web UI's pages; anything else is 404 (and a known path with another verb 405), as
/// RabbitMQ answers.
fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/extensions", get(overview::extensions))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/aliveness-test/{vhost}", get(overview::aliveness))
        .route("/api/health/checks/alarms", get(overview::alarms))
        .route("/api/health/checks/local-alarms", get(overview::alarms))
        .route(
            "/api/health/checks/virtual-hosts",
            get(overview::virtual_hosts),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(overview::quorum_critical),
        )
        .route(
            "/api/health/checks/port-listener/{port}",
            get(overview::port_listener),
        )
        .merge(access::routes())
        .merge(vhosts::routes())
        .merge(queues::routes())
        .merge(exchanges::routes())
        .merge(bindings::routes())
        .merge(connections::routes())
        .merge(channels::routes())
        .merge(parameters::routes())
        .merge(shovels::routes())
        .merge(federation::routes())
        .merge(extensions::routes())
        .route(
            "/api/definitions",
            get(definitions::export_all).post(definitions::import_all),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

/// A request body as a JSON object; an empty body is an empty object. Anything else is 400 as RabbitMQ answers.
pub(crate) fn json_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("not_json")),
        Err(_) => Err(ApiError::bad_request("not_json")),
    }
}

/// 400 `[{key_missing,K},...]` naming the `keys` missing from a request body, in the order given (RabbitMQ's
/// `with_decode` order for the endpoint) and laid out as Erlang's `~p` prints the list.
pub(crate) fn require_keys(body: &Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|key| !body.contains_key(**key))
        .map(|key| format!("{{key_missing,{key}}}"))
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(ApiError::bad_request(erlang_pretty_list(&missing))),
    }
}

/// A list of already printed Erlang terms as `io_lib:format("~p", ...)` lays it out: on one line when that is at
/// most 78 characters, else one element a line, the continuation lines indented by one space (checked against
/// erl's own output for lists of 2 and 3 tuples either side of the limit).
fn erlang_pretty_list(items: &[String]) -> String {
    let flat = format!("[{}]", items.join(","));
    match flat.len() <= 78 {
        true => flat,
        false => format!("[{}]", items.join(",\n ")),
    }
}

/// The name of an exchange in a path: `amq.default` is the default exchange, as in RabbitMQ's paths.
pub(crate) fn exchange_in_path(name: &str) -> &str {
    match name {
        "amq.default" => "",
        other => other,
    }
}

/// Runs a blocking broker call (one that commits to the definitions store) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}
