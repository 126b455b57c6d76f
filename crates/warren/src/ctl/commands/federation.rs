//! Federation links, as rabbitmq_federation's commands: `federation_status [--only-down]` (every link of the node)
//! and `restart_federation_link <id>`, through rabbitmq_federation_management's `/api/federation-links`.

use serde_json::Value;

use super::shovels::node_name;
use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::listing;
use crate::ctl::Ctx;

/// `federation_status`: every link of the node, or with `--only-down` those not `running` (starting or failed), as
/// rabbitmqctl filters them.
pub(super) fn federation_status(ctx: &Ctx, only_down: bool) -> Result<(), CtlError> {
    let columns = listing::FEDERATION_LINKS.columns(&[])?;
    let node = node_name(ctx)?;
    ctx.banner(&if only_down {
        format!("Listing federation links which are down on node {node}...")
    } else {
        format!("Listing federation links on node {node}...")
    });
    let mut links = ctx.api.get(&["federation-links"])?;
    if only_down {
        if let Value::Array(all) = &mut links {
            all.retain(|link| link.get("status").and_then(Value::as_str) != Some("running"));
        }
    }
    ctx.print_rows(&listing::FEDERATION_LINKS.rows(columns, &links));
    Ok(())
}

/// `restart_federation_link <id>`: the link with that ID, in whichever vhost it is, reconnects. rabbitmqctl names no
/// vhost for it; the API's restart path does, so the link is looked up first.
pub(super) fn restart_federation_link(ctx: &Ctx, id: &str) -> Result<(), CtlError> {
    let node = node_name(ctx)?;
    ctx.banner(&format!("Restarting federation link {id} on node {node}"));
    // rabbitmqctl's words and exit code (69) for an ID no link has.
    let not_found = || CtlError::Refused("Link with the given ID was not found".to_owned());
    let links = ctx.api.get(&["federation-links"])?;
    let link = links
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|link| link.get("id").and_then(Value::as_str) == Some(id))
        })
        .ok_or_else(not_found)?;
    let text = |key: &str| link.get(key).and_then(Value::as_str).unwrap_or_default();
    let (vhost, link_node) = (text("vhost"), text("node"));
    ctx.api
        .delete(
            &["federation-links", "vhost", vhost, id, link_node, "restart"],
            &[],
            &[],
        )
        .or_missing(not_found)
}
