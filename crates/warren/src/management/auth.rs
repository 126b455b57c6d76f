//! HTTP basic authentication against Warren's users, and RabbitMQ's authorisation by user tags
//! (`rabbit_web_dispatch_access_control`): a user needs one of the management tags to use the API at all;
//! `policymaker` adds policies and parameters, `monitoring` adds every connection, channel and node,
//! `administrator` adds users, vhosts, permissions and definitions. Vhost resources need permissions in the
//! vhost, except for administrators; monitors see every vhost's objects in listings.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;

use super::error::ApiError;
use super::ApiState;
use crate::auth::password::verify_password;
use crate::auth::users::Access;
use crate::broker::Broker;

/// The tags that give access to the management API, lowest first.
const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

/// The logged-in user of a request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The user name.
    pub(crate) name: String,
    /// Its tags.
    pub(crate) tags: Vec<String>,
}

impl Caller {
    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Tagged `administrator`.
    pub(crate) fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    /// Tagged `monitoring` or `administrator`: sees every vhost, connection and node.
    pub(crate) fn is_monitor(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    /// Tagged `policymaker` or `administrator`: may change policies.
    pub(crate) fn is_policymaker(&self) -> bool {
        self.is_admin() || self.has("policymaker")
    }

    /// 401 "Not administrator user" unless an administrator.
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        match self.is_admin() {
            true => Ok(()),
            false => Err(ApiError::not_authorised("Not administrator user")),
        }
    }

    /// 401 "Not monitor user" unless a monitor.
    pub(crate) fn require_monitor(&self) -> Result<(), ApiError> {
        match self.is_monitor() {
            true => Ok(()),
            false => Err(ApiError::not_authorised("Not monitor user")),
        }
    }

    /// Whether the user may see and use the objects of `vhost`.
    pub(crate) fn may_access(&self, broker: &Broker, vhost: &str) -> bool {
        self.is_admin() || broker.access.may_open(&self.name, vhost)
    }

    /// Whether the user sees `vhost`'s objects in node-wide listings.
    pub(crate) fn sees(&self, broker: &Broker, vhost: &str) -> bool {
        self.is_monitor() || broker.access.may_open(&self.name, vhost)
    }

    /// 404 for a vhost that does not exist, 401 for one the user may not access (RabbitMQ's order).
    pub(crate) fn require_vhost(&self, broker: &Broker, vhost: &str) -> Result<(), ApiError> {
        if !broker.has_vhost(vhost) {
            return Err(ApiError::not_found());
        }
        if !self.may_access(broker, vhost) {
            return Err(ApiError::not_authorised(
                "User not authorised to access virtual host",
            ));
        }
        Ok(())
    }

    /// The permission check an AMQP channel of this user makes for the same operation (RabbitMQ runs the API's
    /// declares, deletes, binds, publishes and gets on such a channel): `access` to the `kind` (`queue` or
    /// `exchange`) named `name`. A refusal is RabbitMQ's 401 `not_authorised` with the channel's close text.
    pub(crate) fn require_access(
        &self,
        broker: &Broker,
        vhost: &str,
        kind: &str,
        name: &str,
        access: Access,
    ) -> Result<(), ApiError> {
        broker
            .access
            .check(&self.name, vhost, kind, name, access)
            .map_err(|refused| ApiError::not_authorised(&refused.text))
    }

    /// A binding's checks, as `queue.bind` and `exchange.bind` make them: write on the destination, read on the
    /// source.
    pub(crate) fn require_binding(
        &self,
        broker: &Broker,
        vhost: &str,
        source: &str,
        destination_kind: &str,
        destination: &str,
    ) -> Result<(), ApiError> {
        self.require_access(broker, vhost, destination_kind, destination, Access::Write)?;
        self.require_access(broker, vhost, "exchange", source, Access::Read)
    }

    /// [`Caller::require_vhost`] for a policy change: also policymaker.
    pub(crate) fn require_policymaker(&self, broker: &Broker, vhost: &str) -> Result<(), ApiError> {
        if !self.is_policymaker() {
            return Err(ApiError::not_authorised("Not policymaker user"));
        }
        self.require_vhost(broker, vhost)
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::credentials_required());
        }
        let (name, password) =
            basic_credentials(parts).ok_or_else(|| ApiError::login_failed("Login failed"))?;
        let broker = &state.broker;
        let user = broker
            .access
            .user(&name)
            .filter(|user| {
                !password.is_empty()
                    && user
                        .algorithm()
                        .is_some_and(|a| verify_password(a, &user.password_hash, &password))
            })
            .ok_or_else(|| ApiError::login_failed("Login failed"))?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        if broker.config.auth.loopback_users.contains(&name)
            && !peer.is_some_and(|ip| ip.is_loopback())
        {
            return Err(ApiError::login_failed("User can only log in via localhost"));
        }
        let caller = Caller {
            name,
            tags: user.tags.clone(),
        };
        if !MANAGEMENT_TAGS.iter().any(|tag| caller.has(tag)) {
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(caller)
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}
