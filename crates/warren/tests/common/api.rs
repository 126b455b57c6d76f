//! The management API as guest: one request, its status and its body as JSON.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use warren::server::RunningServer;

/// Sends `method path` (under `/api`) with `body` as JSON, as guest; the status and the body (Null when empty or
/// not JSON).
pub(crate) async fn call(
    server: &RunningServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let addr = server.management_addr.expect("management API enabled");
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{addr}/api{path}"))
        .basic_auth("guest", Some("guest"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
