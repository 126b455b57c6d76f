//! The commands, one file per group: `node` (status, await_startup), `lists` (the list commands), `users`,
//! `vhosts` (vhosts, limits, tracing), `access` (permissions), `policies`, `parameters` (runtime parameters),
//! `shovels` (status, restart, delete), `federation` (status, restart), `queues` (purge, delete), `connections` (close), `definitions` (export,
//! import).

mod access;
mod connections;
mod definitions;
mod federation;
mod lists;
mod node;
mod parameters;
mod policies;
mod queues;
mod quorum;
mod shovels;
mod users;
mod vhosts;

use super::args::CtlCommand;
use super::error::CtlError;
use super::Ctx;

/// Runs `command`.
pub(crate) fn run(ctx: &Ctx, command: &CtlCommand) -> Result<(), CtlError> {
    match command {
        CtlCommand::Status => node::status(ctx),
        CtlCommand::ClusterStatus => node::cluster_status(ctx),
        CtlCommand::ForgetClusterNode { node } => node::forget_cluster_node(ctx, node),
        CtlCommand::JoinCluster { .. } => Err(CtlError::Usage(
            "join_cluster: a Warren node joins a cluster through its config file: list the members in [cluster] \
             peers, set join = true and start the node (docs/clustering.md)"
                .to_owned(),
        )),
        CtlCommand::AwaitStartup => node::await_startup(ctx),
        CtlCommand::ListQueues(columns) => lists::queues(ctx, &columns.columns),
        CtlCommand::ListExchanges(columns) => lists::exchanges(ctx, &columns.columns),
        CtlCommand::ListBindings(columns) => lists::bindings(ctx, &columns.columns),
        CtlCommand::ListConnections(columns) => lists::connections(ctx, &columns.columns),
        CtlCommand::ListChannels(columns) => lists::channels(ctx, &columns.columns),
        CtlCommand::ListConsumers(columns) => lists::consumers(ctx, &columns.columns),
        CtlCommand::ListUsers => lists::users(ctx),
        CtlCommand::ListVhosts(columns) => lists::vhosts(ctx, &columns.columns),
        CtlCommand::ListPermissions => lists::permissions(ctx),
        CtlCommand::ListPolicies => lists::policies(ctx),
        CtlCommand::ListParameters => lists::parameters(ctx),
        CtlCommand::AddUser { user, new_password } => {
            users::add_user(ctx, user, new_password.as_deref())
        }
        CtlCommand::DeleteUser { user } => users::delete_user(ctx, user),
        CtlCommand::ChangePassword { user, new_password } => {
            users::change_password(ctx, user, new_password.as_deref())
        }
        CtlCommand::SetUserTags { user, tags } => users::set_user_tags(ctx, user, tags),
        CtlCommand::SetUserLimits { user, definition } => {
            users::set_user_limits(ctx, user, definition)
        }
        CtlCommand::AddVhost {
            name,
            description,
            tags,
            default_queue_type,
        } => vhosts::add_vhost(
            ctx,
            name,
            description.as_deref(),
            tags.as_deref(),
            default_queue_type.as_deref(),
        ),
        CtlCommand::DeleteVhost { name } => vhosts::delete_vhost(ctx, name),
        CtlCommand::SetVhostLimits { definition } => vhosts::set_vhost_limits(ctx, definition),
        CtlCommand::TraceOn => vhosts::trace(ctx, true),
        CtlCommand::TraceOff => vhosts::trace(ctx, false),
        CtlCommand::SetPermissions {
            user,
            conf,
            write,
            read,
        } => access::set_permissions(ctx, user, conf, write, read),
        CtlCommand::SetTopicPermissions {
            user,
            exchange,
            write,
            read,
        } => access::set_topic_permissions(ctx, user, exchange, write, read),
        CtlCommand::SetPolicy(policy) => policies::set_policy(ctx, policy, false),
        CtlCommand::SetOperatorPolicy(policy) => policies::set_policy(ctx, policy, true),
        CtlCommand::ClearPolicy { name } => policies::clear_policy(ctx, name),
        CtlCommand::SetParameter {
            component,
            name,
            value,
        } => parameters::set_parameter(ctx, component, name, value),
        CtlCommand::ClearParameter { component, name } => {
            parameters::clear_parameter(ctx, component, name)
        }
        CtlCommand::ShovelStatus => shovels::shovel_status(ctx),
        CtlCommand::RestartShovel { name } => shovels::restart_shovel(ctx, name),
        CtlCommand::DeleteShovel { name } => shovels::delete_shovel(ctx, name),
        CtlCommand::FederationStatus { only_down } => federation::federation_status(ctx, *only_down),
        CtlCommand::RestartFederationLink { link_id } => {
            federation::restart_federation_link(ctx, link_id)
        }
        CtlCommand::AddMember { queue, member } => quorum::add_member(ctx, queue, member),
        CtlCommand::DeleteMember { queue, member } => quorum::delete_member(ctx, queue, member),
        CtlCommand::Grow { member, selector } => quorum::grow(ctx, member, selector),
        CtlCommand::Shrink { member } => quorum::shrink(ctx, member),
        CtlCommand::PurgeQueue { queue } => queues::purge_queue(ctx, queue),
        CtlCommand::DeleteQueue {
            queue,
            if_empty,
            if_unused,
        } => queues::delete_queue(ctx, queue, *if_empty, *if_unused),
        CtlCommand::CloseConnection { connection, reason } => {
            connections::close_connection(ctx, connection, reason)
        }
        CtlCommand::ExportDefinitions { file } => definitions::export(ctx, file),
        CtlCommand::ImportDefinitions { file } => definitions::import(ctx, file.as_deref()),
    }
}

/// The limits of a `set_vhost_limits`/`set_user_limits` definition as (name, value) pairs, each checked against
/// `known` and to be an integer (negative lifts the limit) before anything is changed: a data error (exit 65)
/// otherwise.
pub(super) fn limits<'a>(
    what: &str,
    definition: &'a serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> Result<Vec<(&'a str, i64)>, CtlError> {
    definition
        .iter()
        .map(|(name, value)| {
            if !known.contains(&name.as_str()) {
                return Err(CtlError::Data(format!(
                    "unknown {what} limit '{name}': the limits are {}",
                    known.join(" and ")
                )));
            }
            let value = value.as_i64().ok_or_else(|| {
                CtlError::Data(format!(
                    "{what} limit '{name}' must be an integer (got {value})"
                ))
            })?;
            Ok((name.as_str(), value))
        })
        .collect()
}

/// Parses a JSON object argument (a policy definition, limits), as a data error (exit 65) when it is not one.
pub(super) fn json_object(
    what: &str,
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, CtlError> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(CtlError::Data(format!(
            "{what} must be a JSON object, such as '{{\"max-length\": 10}}' (got {text})"
        ))),
        Err(error) => Err(CtlError::Data(format!(
            "{what} is not valid JSON: {error} (got {text})"
        ))),
    }
}
