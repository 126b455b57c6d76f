//! Connections: `close_connection`.

use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// `close_connection <name> <reason>`: the node closes it with 320 CONNECTION_FORCED and the reason. The
/// connection is named as `list_connections name` shows it ("127.0.0.1:53120 -> 127.0.0.1:5672"); rabbitmqctl
/// takes its Erlang pid, which the API does not expose.
pub(super) fn close_connection(ctx: &Ctx, name: &str, reason: &str) -> Result<(), CtlError> {
    ctx.banner(&format!("Closing connection {name}, reason: {reason}..."));
    // The management API takes the reason in the X-Reason header.
    ctx.api
        .delete(&["connections", name], &[], &[("X-Reason", reason)])
        .or_missing(|| {
            CtlError::Data(format!(
                "no such connection: \"{name}\" (see `warren ctl list_connections name`)"
            ))
        })
}
