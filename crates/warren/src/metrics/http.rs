//! The Prometheus listener (`[prometheus] listen`, 127.0.0.1:15692 by default): a small axum server on the
//! broker's tokio runtime answering RabbitMQ's three paths. A scrape reads a snapshot of atomics and queue tables
//! (never waits on a queue or a disk) and renders it on the spot: a few microseconds per queue.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::exposition::{self, View};
use super::snapshot::MetricsSource;

/// What the handlers share.
#[derive(Clone)]
struct Endpoint {
    source: Arc<dyn MetricsSource>,
    /// `return_per_object_metrics`: `/metrics` answers as `/metrics/per-object`.
    per_object: bool,
}

/// The bound Prometheus listener, served by [`MetricsListener::serve`].
pub(crate) struct MetricsListener {
    socket: TcpListener,
    /// The address bound (port 0 resolved).
    pub(crate) addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr` (port 0 picks a free port).
    pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<MetricsListener> {
        let socket = TcpListener::bind(addr).await?;
        let addr = socket.local_addr()?;
        Ok(MetricsListener { socket, addr })
    }

    /// Serves scrapes until the future is dropped. `per_object`: `/metrics` shows a series per queue
    /// (RabbitMQ's `prometheus.return_per_object_metrics`).
    pub(crate) async fn serve(self, source: Arc<dyn MetricsSource>, per_object: bool) {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/metrics/per-object", get(per_object_metrics))
            .route("/metrics/detailed", get(detailed))
            .fallback(not_found)
            .with_state(Endpoint { source, per_object });
        if let Err(error) = axum::serve(self.socket, app).await {
            tracing::error!(%error, "the Prometheus listener stopped");
        }
    }
}

async fn metrics(State(endpoint): State<Endpoint>) -> Response {
    let view = match endpoint.per_object {
        true => View::PerObject,
        false => View::Aggregated,
    };
    scrape(&endpoint, view)
}

async fn per_object_metrics(State(endpoint): State<Endpoint>) -> Response {
    scrape(&endpoint, View::PerObject)
}

async fn detailed(State(endpoint): State<Endpoint>, RawQuery(query): RawQuery) -> Response {
    let (families, vhosts) = detailed_filters(query.as_deref().unwrap_or(""));
    scrape(&endpoint, View::Detailed { families, vhosts })
}

/// RabbitMQ's answer to any other path.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"Object Not Found","reason":"Not Found"}"#,
    )
        .into_response()
}

fn scrape(endpoint: &Endpoint, view: View) -> Response {
    match exposition::render(endpoint.source.snapshot(), view) {
        Ok(text) => ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The `family` and `vhost` parameters of a `/metrics/detailed` query; each may repeat, as in RabbitMQ.
fn detailed_filters(query: &str) -> (Vec<String>, Vec<String>) {
    let (mut families, mut vhosts) = (Vec::new(), Vec::new());
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "family" => families.push(percent_decode(value)),
            "vhost" => vhosts.push(percent_decode(value)),
            _ => {}
        }
    }
    (families, vhosts)
}

/// Decodes `%XX` escapes and `+` (a space in a query); a malformed escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_filters_repeat_and_decode() {
        let (families, vhosts) = detailed_filters(
            "family=queue_coarse_metrics&vhost=%2F&family=queue_consumer_count&vhost=a+b&x=1",
        );
        assert_eq!(families, ["queue_coarse_metrics", "queue_consumer_count"]);
        assert_eq!(vhosts, ["/", "a b"]);
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
