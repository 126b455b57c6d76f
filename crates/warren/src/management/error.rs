//! The management API's errors, answered as RabbitMQ's management plugin answers them: a status code and
//! `{"error": ..., "reason": ...}` (`rabbit_mgmt_util:halt_response`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::broker::topology::{bare_error_text, TopologyError};
use crate::broker::{AdminError, PolicyError};

/// An answer other than success.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// The HTTP status.
    status: StatusCode,
    /// RabbitMQ's `error` field.
    error: &'static str,
    /// RabbitMQ's `reason` field: usually a string.
    reason: Value,
    /// Ask for credentials (`WWW-Authenticate`), as a failed login does.
    challenge: bool,
    /// Send the JSON body; RabbitMQ sends none when a request carried no credentials at all.
    with_body: bool,
}

impl ApiError {
    /// 404 as every missing object and unknown path answers.
    pub(crate) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    /// 400 with RabbitMQ's `bad_request`.
    pub(crate) fn bad_request(reason: impl Into<Value>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401 for credentials that do not log in.
    pub(crate) fn login_failed(reason: &str) -> ApiError {
        ApiError {
            challenge: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, "not_authorized", reason)
        }
    }

    /// 401 with the challenge and an empty body, as RabbitMQ answers a request without an `Authorization` header.
    pub(crate) fn credentials_required() -> ApiError {
        ApiError {
            with_body: false,
            ..ApiError::login_failed("Login failed")
        }
    }

    /// 401 for a logged-in user whose tags or permissions do not allow the request ("Not administrator user").
    pub(crate) fn not_authorised(reason: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 500 for a failure of the broker (the definitions store).
    pub(crate) fn internal(reason: impl Into<Value>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            reason,
        )
    }

    /// An answer with any status.
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        reason: impl Into<Value>,
    ) -> ApiError {
        ApiError {
            status,
            error,
            reason: reason.into(),
            challenge: false,
            with_body: true,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.with_body {
            true => {
                let body = json!({"error": self.error, "reason": self.reason});
                (self.status, Json(body)).into_response()
            }
            false => self.status.into_response(),
        };
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        response
    }
}

impl From<TopologyError> for ApiError {
    fn from(error: TopologyError) -> ApiError {
        match error {
            TopologyError::NoSuchVhost(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "vhost_not_found")
            }
            TopologyError::NotFound => ApiError::not_found(),
            TopologyError::Refused(e) => ApiError::bad_request(bare_error_text(&e).to_owned()),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> ApiError {
        match error {
            AdminError::NoSuchUser(_) | AdminError::NoSuchVhost(_) => ApiError::not_found(),
            AdminError::Store(e) => ApiError::internal(e.to_string()),
            AdminError::Cluster(reason) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
            }
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<crate::cluster::ClusterError> for ApiError {
    fn from(error: crate::cluster::ClusterError) -> ApiError {
        match error {
            crate::cluster::ClusterError::Membership(reason) => ApiError::bad_request(reason),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                other.to_string(),
            ),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(error: PolicyError) -> ApiError {
        match error {
            PolicyError::NoSuchVhost(_) => ApiError::not_found(),
            PolicyError::Storage(e) => ApiError::internal(e.to_string()),
            PolicyError::Invalid(text) => {
                ApiError::bad_request(format!("Validation failed\n\n{text}\n"))
            }
        }
    }
}
