//! The list commands: the API's list of objects, shown in the columns asked for (`listing` knows the keys).

use serde_json::Value;

use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::listing::{self, Listing};
use crate::ctl::Ctx;

/// Lists the objects at `/api/<path>` in `columns` of `listing`, after `banner` (its lines); a 404 means the vhost
/// is missing. The columns are checked before anything is printed.
fn list(
    ctx: &Ctx,
    listing: &Listing,
    columns: &[String],
    path: &[&str],
    banner: &[&str],
) -> Result<(), CtlError> {
    let columns = listing.columns(columns)?;
    for line in banner {
        ctx.banner(line);
    }
    let items = ctx
        .api
        .get(path)
        .or_missing(|| CtlError::no_such_vhost(&ctx.vhost))?;
    ctx.print_rows(&listing.rows(columns, &items));
    Ok(())
}

/// `list_queues [column ...]` in the vhost.
pub(super) fn queues(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    // rabbitmqctl prints its timeout before the listing line.
    let seconds = ctx.timeout.map_or(60, |timeout| timeout.as_secs());
    let timeout = format!("Timeout: {seconds}.0 seconds ...");
    let banner = format!("Listing queues for vhost {} ...", ctx.vhost);
    let path = ["queues", ctx.vhost.as_str()];
    list(ctx, &listing::QUEUES, columns, &path, &[&timeout, &banner])
}

/// `list_exchanges [column ...]` in the vhost.
pub(super) fn exchanges(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    let banner = format!("Listing exchanges for vhost {} ...", ctx.vhost);
    let path = ["exchanges", ctx.vhost.as_str()];
    list(ctx, &listing::EXCHANGES, columns, &path, &[&banner])
}

/// `list_bindings [column ...]` in the vhost.
pub(super) fn bindings(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    let banner = format!("Listing bindings for vhost {}...", ctx.vhost);
    let path = ["bindings", ctx.vhost.as_str()];
    list(ctx, &listing::BINDINGS, columns, &path, &[&banner])
}

/// `list_connections [column ...]`, every vhost.
pub(super) fn connections(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    let banner = "Listing connections ...";
    list(
        ctx,
        &listing::CONNECTIONS,
        columns,
        &["connections"],
        &[banner],
    )
}

/// `list_channels [column ...]`, every vhost.
pub(super) fn channels(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    list(
        ctx,
        &listing::CHANNELS,
        columns,
        &["channels"],
        &["Listing channels ..."],
    )
}

/// `list_consumers [column ...]` in the vhost.
pub(super) fn consumers(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    let banner = format!("Listing consumers in vhost {} ...", ctx.vhost);
    let path = ["consumers", ctx.vhost.as_str()];
    list(ctx, &listing::CONSUMERS, columns, &path, &[&banner])
}

/// `list_users`.
pub(super) fn users(ctx: &Ctx) -> Result<(), CtlError> {
    list(
        ctx,
        &listing::USERS,
        &[],
        &["users"],
        &["Listing users ..."],
    )
}

/// `list_vhosts [column ...]`.
pub(super) fn vhosts(ctx: &Ctx, columns: &[String]) -> Result<(), CtlError> {
    list(
        ctx,
        &listing::VHOSTS,
        columns,
        &["vhosts"],
        &["Listing vhosts ..."],
    )
}

/// `list_permissions` of the vhost.
pub(super) fn permissions(ctx: &Ctx) -> Result<(), CtlError> {
    let banner = format!("Listing permissions for vhost \"{}\" ...", ctx.vhost);
    let path = ["vhosts", ctx.vhost.as_str(), "permissions"];
    list(ctx, &listing::PERMISSIONS, &[], &path, &[&banner])
}

/// `list_policies` of the vhost.
pub(super) fn policies(ctx: &Ctx) -> Result<(), CtlError> {
    let banner = format!("Listing policies for vhost \"{}\" ...", ctx.vhost);
    let path = ["policies", ctx.vhost.as_str()];
    list(ctx, &listing::POLICIES, &[], &path, &[&banner])
}

/// `list_parameters` of the vhost. `/api/parameters` has every vhost's (as `/api/parameters/{component}/{vhost}`
/// has one component's): those of other vhosts are left out here. An empty list is checked for a missing vhost,
/// which rabbitmqctl refuses.
pub(super) fn parameters(ctx: &Ctx) -> Result<(), CtlError> {
    let columns = listing::PARAMETERS.columns(&[])?;
    ctx.banner(&format!(
        "Listing runtime parameters for vhost \"{}\" ...",
        ctx.vhost
    ));
    let all = ctx.api.get(&["parameters"])?;
    let in_vhost: Vec<Value> = all
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|parameter| parameter.get("vhost").and_then(Value::as_str) == Some(&ctx.vhost))
        .cloned()
        .collect();
    if in_vhost.is_empty() {
        ctx.api
            .get(&["vhosts", &ctx.vhost])
            .or_missing(|| CtlError::no_such_vhost(&ctx.vhost))?;
    }
    ctx.print_rows(&listing::PARAMETERS.rows(columns, &Value::Array(in_vhost)));
    Ok(())
}
