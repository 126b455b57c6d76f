//! Shovels, as rabbitmq_shovel's commands: `shovel_status` (every shovel of the node), and `restart_shovel` and
//! `delete_shovel` of a dynamic shovel in a vhost (`-p`), through rabbitmq_shovel_management's `/api/shovels`.

use serde_json::Value;

use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::listing;
use crate::ctl::Ctx;

/// The node's name (`/api/overview`'s `node`), which rabbitmqctl's shovel and federation lines and messages name.
pub(super) fn node_name(ctx: &Ctx) -> Result<String, CtlError> {
    let overview = ctx.api.get(&["overview"])?;
    Ok(overview
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or_else(|| ctx.api.base())
        .to_owned())
}

/// rabbitmqctl's error for a shovel it cannot find, which covers a missing vhost too (exit 65, as the other
/// missing objects).
fn no_such_shovel(ctx: &Ctx, node: &str) -> CtlError {
    CtlError::Data(format!(
        "Shovel with the given name was not found on the target node '{node}' and / or virtual host '{}'",
        ctx.vhost
    ))
}

/// `shovel_status`: every shovel the node runs, in every vhost, and its static ones.
pub(super) fn shovel_status(ctx: &Ctx) -> Result<(), CtlError> {
    let columns = listing::SHOVELS.columns(&[])?;
    let node = node_name(ctx)?;
    ctx.banner(&format!("Shovel status on node {node}"));
    let statuses = ctx.api.get(&["shovels"])?;
    ctx.print_rows(&listing::SHOVELS.rows(columns, &statuses));
    Ok(())
}

/// `restart_shovel [-p vhost] <name>`: the shovel reconnects with its definition.
pub(super) fn restart_shovel(ctx: &Ctx, name: &str) -> Result<(), CtlError> {
    let node = node_name(ctx)?;
    ctx.banner(&format!(
        "Restarting dynamic Shovel {name} in virtual host {} on node {node}",
        ctx.vhost
    ));
    ctx.api
        .delete(&["shovels", "vhost", &ctx.vhost, name, "restart"], &[], &[])
        .or_missing(|| no_such_shovel(ctx, &node))
}

/// `delete_shovel [-p vhost] <name>`: its parameter is cleared, and it stops.
pub(super) fn delete_shovel(ctx: &Ctx, name: &str) -> Result<(), CtlError> {
    ctx.banner(&format!("Deleting shovel {name} in vhost {}", ctx.vhost));
    ctx.api
        .delete(&["shovels", "vhost", &ctx.vhost, name], &[], &[])
        .or_missing(|| {
            // The node is named only in this message: asked for only when it is needed.
            let node = node_name(ctx).unwrap_or_else(|_| ctx.api.base().to_owned());
            no_such_shovel(ctx, &node)
        })
}
