//! Permissions: `set_permissions` and `set_topic_permissions` in a vhost (`-p`).

use serde_json::json;

use crate::ctl::api::ApiError;
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// The API answers a permission for a missing vhost or user with 400 `vhost_or_user_not_found` (RabbitMQ) or 404:
/// find which is missing and say so as rabbitmqctl does (no such vhost: exit 65; no such user: exit 67).
fn which_is_missing(ctx: &Ctx, username: &str, error: ApiError) -> CtlError {
    let missing = match &error {
        ApiError::NotFound => true,
        ApiError::Refused {
            status: 400,
            reason,
        } => reason.contains("not_found"),
        _ => false,
    };
    if !missing {
        return error.into();
    }
    if let Err(ApiError::NotFound) = ctx.api.get(&["vhosts", &ctx.vhost]) {
        return CtlError::no_such_vhost(&ctx.vhost);
    }
    if let Err(ApiError::NotFound) = ctx.api.get(&["users", username]) {
        return CtlError::no_such_user(username);
    }
    error.into()
}

/// `set_permissions [-p vhost] <username> <conf> <write> <read>`.
pub(super) fn set_permissions(
    ctx: &Ctx,
    username: &str,
    conf: &str,
    write: &str,
    read: &str,
) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Setting permissions for user \"{username}\" in vhost \"{}\" ...",
        ctx.vhost
    ));
    let body = json!({ "configure": conf, "write": write, "read": read });
    ctx.api
        .put(&["permissions", &ctx.vhost, username], &body)
        .map_err(|error| which_is_missing(ctx, username, error))
}

/// `set_topic_permissions [-p vhost] <username> <exchange> <write> <read>`.
pub(super) fn set_topic_permissions(
    ctx: &Ctx,
    username: &str,
    exchange: &str,
    write: &str,
    read: &str,
) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Setting topic permissions on \"{exchange}\" for user \"{username}\" in vhost \"{}\" ...",
        ctx.vhost
    ));
    let body = json!({ "exchange": exchange, "write": write, "read": read });
    ctx.api
        .put(&["topic-permissions", &ctx.vhost, username], &body)
        .map_err(|error| which_is_missing(ctx, username, error))
}
