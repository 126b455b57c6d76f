//! The node's management HTTP API as `warren ctl` uses it: JSON over HTTP with basic auth (reqwest's blocking
//! client), each path built from percent-encoded segments (a vhost `/` is `%2F`). Failures come back as
//! [`ApiError`], which each command turns into its rabbitmqctl message.
//!
//! Why not the `rabbitmq_http_client` crate, which models these calls: it depends on `rbase64`, which declares
//! mimalloc as the `#[global_allocator]` of whatever binary links it, and the `warren` binary declares its own
//! (`main.rs`), so the two cannot be linked together ("the `#[global_allocator]` in this crate conflicts with global
//! allocator in: rbase64"). Its typed list responses could not show every rabbitmqctl info key either. The crate
//! is a dev-dependency instead: `tests/ctl.rs` checks what `warren ctl` did through it.

use std::time::Duration;

use serde_json::Value;

use super::error::CtlError;

/// How long one request may take before `warren ctl` gives up on the node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take: a node that is down refuses at once; one that is unreachable should not hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed API call, before a command gives it its meaning.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// HTTP 404: the object (or its vhost) does not exist.
    NotFound,
    /// Another 4xx: the node refused the request, with its reason.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The node's `reason` (or `error`, or body).
        reason: String,
    },
    /// Anything else, already a [`CtlError`]: unreachable, bad credentials, server error.
    Failed(CtlError),
}

impl From<ApiError> for CtlError {
    fn from(error: ApiError) -> CtlError {
        match error {
            ApiError::NotFound => CtlError::Data("Object not found (HTTP 404)".to_owned()),
            ApiError::Refused { status, reason } => refused(status, reason),
            ApiError::Failed(error) => error,
        }
    }
}

/// A 4xx other than 401/404: 400 (a bad argument) is a data error; the rest are the node refusing.
fn refused(status: u16, reason: String) -> CtlError {
    match status {
        400 => CtlError::Data(reason),
        403 => CtlError::Forbidden(format!("not authorised (HTTP 403): {reason}")),
        _ => CtlError::Refused(format!("HTTP {status}: {reason}")),
    }
}

/// What a result of the API means when its object is missing: `missing` names the object for a 404.
pub(crate) trait OrMissing<T> {
    /// Turns a 404 into `missing()`, any other failure into its [`CtlError`].
    fn or_missing(self, missing: impl FnOnce() -> CtlError) -> Result<T, CtlError>;
}

impl<T> OrMissing<T> for Result<T, ApiError> {
    fn or_missing(self, missing: impl FnOnce() -> CtlError) -> Result<T, CtlError> {
        self.map_err(|error| match error {
            ApiError::NotFound => missing(),
            other => other.into(),
        })
    }
}

/// The management API of one node, with the credentials to use.
pub(crate) struct Api {
    /// The node's URL without a trailing slash, such as `http://127.0.0.1:15672`.
    base: String,
    /// The user, for basic auth and for the bad-credentials message.
    user: String,
    /// The password.
    password: String,
    /// The HTTP client (one connection pool for the whole command).
    http: reqwest::blocking::Client,
}

impl Api {
    /// A client of the API at `base` (`http://host:port`, optionally with a path prefix) as `user`.
    pub(crate) fn new(
        base: &str,
        user: &str,
        password: &str,
        timeout: Option<Duration>,
    ) -> Result<Api, CtlError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CtlError::Usage(format!(
                "--node must be an http:// URL of the management API, such as http://127.0.0.1:15672 (got {base})"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout.unwrap_or(REQUEST_TIMEOUT))
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| CtlError::Software(format!("cannot set up HTTP: {error}")))?;
        Ok(Api {
            base,
            user: user.to_owned(),
            password: password.to_owned(),
            http,
        })
    }

    /// The node's URL, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/<segments...>` as JSON; each segment is percent-encoded (a vhost `/` is `%2F`).
    pub(crate) fn get(&self, segments: &[&str]) -> Result<Value, ApiError> {
        let request = self.http.get(self.url(segments)?);
        let response = self.send(request)?;
        response.json().map_err(|error| {
            ApiError::Failed(CtlError::Software(format!(
                "the node answered with JSON this tool cannot read: {error}"
            )))
        })
    }

    /// `GET /api/<segments...>` as the text the node sent (definitions are exported unchanged).
    pub(crate) fn get_text(&self, segments: &[&str]) -> Result<String, ApiError> {
        let request = self.http.get(self.url(segments)?);
        self.send(request)?
            .text()
            .map_err(|error| self.unreachable(&error))
    }

    /// `PUT /api/<segments...>` with a JSON body.
    pub(crate) fn put(&self, segments: &[&str], body: &Value) -> Result<(), ApiError> {
        let request = self.http.put(self.url(segments)?).json(body);
        self.send(request).map(drop)
    }

    /// `POST /api/<segments...>` with a JSON body.
    pub(crate) fn post(&self, segments: &[&str], body: &Value) -> Result<(), ApiError> {
        let request = self.http.post(self.url(segments)?).json(body);
        self.send(request).map(drop)
    }

    /// `DELETE /api/<segments...>?<query>`, with the headers given (`X-Reason` of a connection close).
    pub(crate) fn delete(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<(), ApiError> {
        let mut url = self.url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.delete(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).map(drop)
    }

    /// The URL of `/api/<segments...>`.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ApiError> {
        let bad =
            |why: String| ApiError::Failed(CtlError::Usage(format!("--node {}: {why}", self.base)));
        let mut url = reqwest::Url::parse(&self.base).map_err(|error| bad(error.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| bad("not a base URL".to_owned()))?
            .pop_if_empty()
            .push("api")
            .extend(segments);
        Ok(url)
    }

    /// Sends `request` with the credentials; a status other than 2xx is an error.
    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ApiError> {
        let response = request
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().unwrap_or_default();
        Err(self.status_error(status.as_u16(), reason_of(&body)))
    }

    /// An HTTP status other than success as an [`ApiError`].
    fn status_error(&self, status: u16, reason: String) -> ApiError {
        match status {
            404 => ApiError::NotFound,
            401 => ApiError::Failed(CtlError::BadCredentials {
                user: self.user.clone(),
            }),
            400..=499 => ApiError::Refused { status, reason },
            _ => ApiError::Failed(CtlError::Software(format!(
                "the node failed the request (HTTP {status}): {reason}"
            ))),
        }
    }

    /// A transport failure: the node is unreachable (or answered with something that is not HTTP).
    fn unreachable(&self, error: &reqwest::Error) -> ApiError {
        if let Some(status) = error.status() {
            return self.status_error(status.as_u16(), error.to_string());
        }
        let mut cause = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            cause = format!("{cause}: {inner}");
            source = inner.source();
        }
        ApiError::Failed(CtlError::Unreachable {
            url: self.base.clone(),
            cause,
        })
    }
}

/// The `reason` of a management API error body (`{"error": ..., "reason": ...}`), else the body itself.
fn reason_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(value) => value
            .get("reason")
            .or_else(|| value.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_owned()),
        Err(_) => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_gives_its_reason() {
        assert_eq!(
            reason_of(r#"{"error":"bad_request","reason":"vhost_or_user_not_found"}"#),
            "vhost_or_user_not_found"
        );
        assert_eq!(reason_of("plain text"), "plain text");
    }

    #[test]
    fn a_node_url_must_be_http() {
        let Err(error) = Api::new("amqp://localhost", "guest", "guest", None) else {
            panic!("amqp:// accepted as a management URL");
        };
        assert_eq!(error.exit_code(), 64);
    }
}
