//! The command line of `warren ctl`: rabbitmqctl's command names, argument order and options, parsed by clap.
//! Anything clap refuses (an unknown command, option or a missing argument) is a usage error, exit 64.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::output::Formatter;

/// The default management API URL (RabbitMQ's and Warren's management port).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:15672";

/// `warren ctl`: rabbitmqctl's everyday commands, run against a node's management HTTP API.
#[derive(Parser, Debug)]
#[command(
    name = "warren ctl",
    about = "rabbitmqctl's everyday commands (same names, arguments and exit codes), through the management HTTP API \
             of Warren or RabbitMQ",
    disable_version_flag = true
)]
pub(crate) struct CtlArgs {
    /// The node's management API
    #[arg(
        short = 'n',
        long = "node",
        env = "WARREN_CTL_URL",
        default_value = DEFAULT_URL,
        global = true,
        value_name = "URL"
    )]
    pub(crate) node: String,
    /// The user to authenticate as
    #[arg(long, env = "WARREN_CTL_USER", default_value = "guest", global = true)]
    pub(crate) username: String,
    /// Its password
    #[arg(
        long,
        env = "WARREN_CTL_PASSWORD",
        default_value = "guest",
        global = true,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub(crate) password: String,
    /// Output format: tab-separated `table` (rabbitmqctl's default), aligned `pretty_table`, or `json`
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub(crate) formatter: Formatter,
    /// The virtual host, for the commands that act in one [default: /]
    #[arg(short = 'p', long, global = true, value_name = "VHOST")]
    pub(crate) vhost: Option<String>,
    /// Do not print the informational line ("Listing queues for vhost / ...")
    #[arg(short = 'q', long, global = true)]
    pub(crate) quiet: bool,
    /// Leave out the header row of tables
    #[arg(long = "no-table-headers", global = true)]
    pub(crate) no_table_headers: bool,
    /// Seconds to wait for the node: per request, or for `await_startup` the whole wait [default: 60; await_startup: 300]
    #[arg(short = 't', long, global = true, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,
    /// What to do
    #[command(subcommand)]
    pub(crate) command: CtlCommand,
}

/// Columns of a list command (rabbitmqctl's info keys); none gives the command's default columns.
#[derive(Args, Debug, Default, PartialEq)]
pub(crate) struct Columns {
    /// Info keys to show, in order
    #[arg(value_name = "COLUMN")]
    pub(crate) columns: Vec<String>,
}

/// A policy as `set_policy` and `set_operator_policy` take it.
#[derive(Args, Debug, PartialEq)]
pub(crate) struct PolicyArgs {
    /// Priority: among policies matching an object, the highest applies
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) priority: i32,
    /// What the policy applies to: queues, classic_queues, quorum_queues, streams, exchanges or all
    #[arg(long = "apply-to", default_value = "all")]
    pub(crate) apply_to: String,
    /// The policy's name
    pub(crate) name: String,
    /// The regular expression that queue or exchange names must match
    pub(crate) pattern: String,
    /// The definition, a JSON object such as '{"max-length": 10}'
    pub(crate) definition: String,
}

/// The commands, with rabbitmqctl's names and argument order.
#[derive(Subcommand, Debug, PartialEq)]
pub(crate) enum CtlCommand {
    /// Displays the node's status (version, uptime, memory, disk, alarms, listeners)
    #[command(name = "status")]
    Status,
    /// Displays the cluster's nodes and its leader as this node sees them
    #[command(name = "cluster_status")]
    ClusterStatus,
    /// Removes a node from the cluster (run against another member; the node should be stopped)
    #[command(name = "forget_cluster_node")]
    ForgetClusterNode {
        /// The node's name, as its [cluster] name
        #[arg(value_name = "NODE")]
        node: String,
    },
    /// Refused: a Warren node joins a cluster through its config ([cluster] join = true), see docs/clustering.md
    #[command(name = "join_cluster")]
    JoinCluster {
        /// The node to join (not used: see above)
        #[arg(value_name = "NODE")]
        node: String,
    },
    /// Waits until the node's management API answers (--timeout seconds, 300 by default)
    #[command(name = "await_startup")]
    AwaitStartup,
    /// Lists queues and their properties [default columns: name messages]
    #[command(name = "list_queues")]
    ListQueues(Columns),
    /// Lists exchanges [default columns: name type]
    #[command(name = "list_exchanges")]
    ListExchanges(Columns),
    /// Lists bindings [default: all columns]
    #[command(name = "list_bindings")]
    ListBindings(Columns),
    /// Lists AMQP connections [default columns: user peer_host peer_port state]
    #[command(name = "list_connections")]
    ListConnections(Columns),
    /// Lists channels [default columns: pid user consumer_count messages_unacknowledged]
    #[command(name = "list_channels")]
    ListChannels(Columns),
    /// Lists the consumers of a vhost
    #[command(name = "list_consumers")]
    ListConsumers(Columns),
    /// Lists users and their tags
    #[command(name = "list_users")]
    ListUsers,
    /// Lists virtual hosts [default column: name]
    #[command(name = "list_vhosts")]
    ListVhosts(Columns),
    /// Lists the user permissions of a vhost
    #[command(name = "list_permissions")]
    ListPermissions,
    /// Lists the policies of a vhost
    #[command(name = "list_policies")]
    ListPolicies,
    /// Lists the runtime parameters of a vhost (shovels, federation upstreams, vhost limits)
    #[command(name = "list_parameters")]
    ListParameters,
    /// Creates a user (the password is read from standard input when not given)
    #[command(name = "add_user")]
    AddUser {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
        /// The password
        #[arg(value_name = "PASSWORD")]
        new_password: Option<String>,
    },
    /// Deletes a user
    #[command(name = "delete_user")]
    DeleteUser {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Changes a user's password (read from standard input when not given)
    #[command(name = "change_password")]
    ChangePassword {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
        /// The new password
        #[arg(value_name = "PASSWORD")]
        new_password: Option<String>,
    },
    /// Sets a user's tags, replacing the ones it had (none clears them)
    #[command(name = "set_user_tags")]
    SetUserTags {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
        /// The tags, such as administrator, monitoring, policymaker, management
        tags: Vec<String>,
    },
    /// Creates a virtual host
    #[command(name = "add_vhost")]
    AddVhost {
        /// The vhost's name
        #[arg(value_name = "VHOST")]
        name: String,
        /// A description
        #[arg(long)]
        description: Option<String>,
        /// Tags, comma-separated
        #[arg(long)]
        tags: Option<String>,
        /// The default queue type: classic, quorum or stream
        #[arg(long = "default-queue-type")]
        default_queue_type: Option<String>,
    },
    /// Deletes a virtual host and everything in it
    #[command(name = "delete_vhost")]
    DeleteVhost {
        /// The vhost's name
        #[arg(value_name = "VHOST")]
        name: String,
    },
    /// Sets a user's permissions in a vhost (-p)
    #[command(name = "set_permissions")]
    SetPermissions {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
        /// Configure permission regex
        conf: String,
        /// Write permission regex
        write: String,
        /// Read permission regex
        read: String,
    },
    /// Sets a user's topic permissions for an exchange in a vhost (-p)
    #[command(name = "set_topic_permissions")]
    SetTopicPermissions {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
        /// The topic exchange
        exchange: String,
        /// Regex of routing keys the user may publish with
        write: String,
        /// Regex of routing keys the user may bind with
        read: String,
    },
    /// Sets or updates a policy in a vhost (-p)
    #[command(name = "set_policy")]
    SetPolicy(PolicyArgs),
    /// Clears (removes) a policy of a vhost (-p)
    #[command(name = "clear_policy")]
    ClearPolicy {
        /// The policy's name
        name: String,
    },
    /// Sets an operator policy in a vhost (-p)
    #[command(name = "set_operator_policy")]
    SetOperatorPolicy(PolicyArgs),
    /// Sets a runtime parameter in a vhost (-p), such as a dynamic shovel
    #[command(name = "set_parameter")]
    SetParameter {
        /// The component, such as shovel or federation-upstream
        #[arg(value_name = "COMPONENT_NAME")]
        component: String,
        /// The parameter's name
        name: String,
        /// The value, JSON such as '{"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "dest-queue": "b"}'
        value: String,
    },
    /// Clears (removes) a runtime parameter of a vhost (-p)
    #[command(name = "clear_parameter")]
    ClearParameter {
        /// The component, such as shovel
        #[arg(value_name = "COMPONENT_NAME")]
        component: String,
        /// The parameter's name
        name: String,
    },
    /// Displays the status of the node's shovels, dynamic and static
    #[command(name = "shovel_status")]
    ShovelStatus,
    /// Restarts a dynamic shovel of a vhost (-p)
    #[command(name = "restart_shovel")]
    RestartShovel {
        /// The shovel's name
        name: String,
    },
    /// Deletes a dynamic shovel of a vhost (-p): its parameter is cleared and it stops
    #[command(name = "delete_shovel")]
    DeleteShovel {
        /// The shovel's name
        name: String,
    },
    /// Displays the status of the node's federation links
    #[command(name = "federation_status")]
    FederationStatus {
        /// Only the links that failed or are not currently connected
        #[arg(long = "only-down")]
        only_down: bool,
    },
    /// Restarts a federation link, named by its ID (federation_status's `id`)
    #[command(name = "restart_federation_link")]
    RestartFederationLink {
        /// The link's ID
        link_id: String,
    },
    /// Adds a voting member to a quorum queue of a vhost (-p), as rabbitmq-queues add_member
    #[command(name = "add_member")]
    AddMember {
        /// The queue
        queue: String,
        /// The cluster node that becomes a member
        #[arg(value_name = "NODE")]
        member: String,
    },
    /// Removes a voting member of a quorum queue of a vhost (-p), as rabbitmq-queues delete_member
    #[command(name = "delete_member")]
    DeleteMember {
        /// The queue
        queue: String,
        /// The member node that stops voting
        #[arg(value_name = "NODE")]
        member: String,
    },
    /// Adds a node to every quorum queue (all) or to those with an even number of members (even)
    #[command(name = "grow")]
    Grow {
        /// The cluster node
        #[arg(value_name = "NODE")]
        member: String,
        /// all or even
        selector: String,
    },
    /// Removes a node from every quorum queue it is a member of
    #[command(name = "shrink")]
    Shrink {
        /// The node
        #[arg(value_name = "NODE")]
        member: String,
    },
    /// Sets vhost limits (-p), a JSON object such as '{"max-connections": 100, "max-queues": 10}'
    #[command(name = "set_vhost_limits")]
    SetVhostLimits {
        /// The limits; -1 removes a limit
        definition: String,
    },
    /// Sets user limits, a JSON object such as '{"max-connections": 10, "max-channels": 100}'
    #[command(name = "set_user_limits")]
    SetUserLimits {
        /// The user's name
        #[arg(value_name = "USERNAME")]
        user: String,
        /// The limits; -1 removes a limit
        definition: String,
    },
    /// Purges a queue in a vhost (-p): removes its ready messages
    #[command(name = "purge_queue")]
    PurgeQueue {
        /// The queue's name
        queue: String,
    },
    /// Deletes a queue in a vhost (-p)
    #[command(name = "delete_queue")]
    DeleteQueue {
        /// The queue's name
        queue: String,
        /// Delete only if the queue is empty
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        /// Delete only if the queue has no consumers
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
    },
    /// Closes a connection, named as list_connections shows it, with a reason sent to the client
    #[command(name = "close_connection")]
    CloseConnection {
        /// The connection's name (rabbitmqctl takes its Erlang pid)
        connection: String,
        /// The reason
        reason: String,
    },
    /// Exports the definitions (users, vhosts, permissions, policies, queues, exchanges, bindings) as JSON
    #[command(name = "export_definitions")]
    ExportDefinitions {
        /// The file to write; `-` writes to standard output
        file: PathBuf,
    },
    /// Imports definitions JSON into the running node
    #[command(name = "import_definitions")]
    ImportDefinitions {
        /// The file to read; `-` or none reads standard input
        file: Option<PathBuf>,
    },
    /// Turns the firehose tracer on for a vhost (-p)
    #[command(name = "trace_on")]
    TraceOn,
    /// Turns the firehose tracer off for a vhost (-p)
    #[command(name = "trace_off")]
    TraceOff,
}

impl CtlCommand {
    /// Whether the command acts in one vhost (`-p`); the others refuse `-p` rather than ignore it.
    pub(crate) fn takes_vhost(&self) -> bool {
        !matches!(
            self,
            CtlCommand::Status
                | CtlCommand::ClusterStatus
                | CtlCommand::ForgetClusterNode { .. }
                | CtlCommand::JoinCluster { .. }
                | CtlCommand::AwaitStartup
                | CtlCommand::ListConnections(_)
                | CtlCommand::ListChannels(_)
                | CtlCommand::ListUsers
                | CtlCommand::ListVhosts(_)
                | CtlCommand::ShovelStatus
                | CtlCommand::FederationStatus { .. }
                | CtlCommand::RestartFederationLink { .. }
                | CtlCommand::Grow { .. }
                | CtlCommand::Shrink { .. }
                | CtlCommand::AddUser { .. }
                | CtlCommand::DeleteUser { .. }
                | CtlCommand::ChangePassword { .. }
                | CtlCommand::SetUserTags { .. }
                | CtlCommand::AddVhost { .. }
                | CtlCommand::DeleteVhost { .. }
                | CtlCommand::SetUserLimits { .. }
                | CtlCommand::CloseConnection { .. }
                | CtlCommand::ExportDefinitions { .. }
                | CtlCommand::ImportDefinitions { .. }
        )
    }

    /// The command's rabbitmqctl name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            CtlCommand::Status => "status",
            CtlCommand::ClusterStatus => "cluster_status",
            CtlCommand::ForgetClusterNode { .. } => "forget_cluster_node",
            CtlCommand::JoinCluster { .. } => "join_cluster",
            CtlCommand::AwaitStartup => "await_startup",
            CtlCommand::ListQueues(_) => "list_queues",
            CtlCommand::ListExchanges(_) => "list_exchanges",
            CtlCommand::ListBindings(_) => "list_bindings",
            CtlCommand::ListConnections(_) => "list_connections",
            CtlCommand::ListChannels(_) => "list_channels",
            CtlCommand::ListConsumers(_) => "list_consumers",
            CtlCommand::ListUsers => "list_users",
            CtlCommand::ListVhosts(_) => "list_vhosts",
            CtlCommand::ListPermissions => "list_permissions",
            CtlCommand::ListPolicies => "list_policies",
            CtlCommand::ListParameters => "list_parameters",
            CtlCommand::AddUser { .. } => "add_user",
            CtlCommand::DeleteUser { .. } => "delete_user",
            CtlCommand::ChangePassword { .. } => "change_password",
            CtlCommand::SetUserTags { .. } => "set_user_tags",
            CtlCommand::AddVhost { .. } => "add_vhost",
            CtlCommand::DeleteVhost { .. } => "delete_vhost",
            CtlCommand::SetPermissions { .. } => "set_permissions",
            CtlCommand::SetTopicPermissions { .. } => "set_topic_permissions",
            CtlCommand::SetPolicy(_) => "set_policy",
            CtlCommand::ClearPolicy { .. } => "clear_policy",
            CtlCommand::SetOperatorPolicy(_) => "set_operator_policy",
            CtlCommand::SetParameter { .. } => "set_parameter",
            CtlCommand::ClearParameter { .. } => "clear_parameter",
            CtlCommand::ShovelStatus => "shovel_status",
            CtlCommand::RestartShovel { .. } => "restart_shovel",
            CtlCommand::DeleteShovel { .. } => "delete_shovel",
            CtlCommand::FederationStatus { .. } => "federation_status",
            CtlCommand::RestartFederationLink { .. } => "restart_federation_link",
            CtlCommand::AddMember { .. } => "add_member",
            CtlCommand::DeleteMember { .. } => "delete_member",
            CtlCommand::Grow { .. } => "grow",
            CtlCommand::Shrink { .. } => "shrink",
            CtlCommand::SetVhostLimits { .. } => "set_vhost_limits",
            CtlCommand::SetUserLimits { .. } => "set_user_limits",
            CtlCommand::PurgeQueue { .. } => "purge_queue",
            CtlCommand::DeleteQueue { .. } => "delete_queue",
            CtlCommand::CloseConnection { .. } => "close_connection",
            CtlCommand::ExportDefinitions { .. } => "export_definitions",
            CtlCommand::ImportDefinitions { .. } => "import_definitions",
            CtlCommand::TraceOn => "trace_on",
            CtlCommand::TraceOff => "trace_off",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CtlArgs, clap::Error> {
        CtlArgs::try_parse_from(std::iter::once("warren ctl").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        CtlArgs::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_local_node_as_guest() {
        let args = parse(&["list_users"]).expect("parses");
        // The environment may set WARREN_CTL_URL in a test run against a live node.
        if std::env::var_os("WARREN_CTL_URL").is_none() {
            assert_eq!(args.node, DEFAULT_URL);
        }
        assert_eq!(args.formatter, Formatter::Table);
        assert_eq!(args.vhost, None);
        assert_eq!(args.command, CtlCommand::ListUsers);
    }

    #[test]
    fn set_permissions_takes_rabbitmqctls_order_and_the_vhost_anywhere() {
        for line in [
            &["set_permissions", "-p", "v1", "alice", ".*", "^w", "^r"][..],
            &["-p", "v1", "set_permissions", "alice", ".*", "^w", "^r"][..],
            &[
                "set_permissions",
                "alice",
                ".*",
                "^w",
                "^r",
                "--vhost",
                "v1",
            ][..],
        ] {
            let args = parse(line).expect("parses");
            assert_eq!(args.vhost.as_deref(), Some("v1"));
            assert_eq!(
                args.command,
                CtlCommand::SetPermissions {
                    user: "alice".into(),
                    conf: ".*".into(),
                    write: "^w".into(),
                    read: "^r".into(),
                }
            );
        }
    }

    #[test]
    fn set_policy_takes_priority_and_apply_to_before_its_arguments() {
        let args = parse(&[
            "set_policy",
            "-p",
            "v1",
            "--priority",
            "-1",
            "--apply-to",
            "queues",
            "p1",
            "^q",
            r#"{"max-length":10}"#,
        ])
        .expect("parses");
        assert_eq!(
            args.command,
            CtlCommand::SetPolicy(PolicyArgs {
                priority: -1,
                apply_to: "queues".into(),
                name: "p1".into(),
                pattern: "^q".into(),
                definition: r#"{"max-length":10}"#.into(),
            })
        );
    }

    #[test]
    fn set_parameter_takes_component_name_and_value_in_rabbitmqctls_order() {
        let value =
            r#"{"src-uri":"amqp://","src-queue":"a","dest-uri":"amqp://","dest-queue":"b"}"#;
        let args = parse(&["set_parameter", "-p", "v1", "shovel", "s1", value]).expect("parses");
        assert_eq!(args.vhost.as_deref(), Some("v1"));
        assert_eq!(
            args.command,
            CtlCommand::SetParameter {
                component: "shovel".into(),
                name: "s1".into(),
                value: value.into(),
            }
        );
        assert!(args.command.takes_vhost());
        assert!(parse(&["set_parameter", "shovel", "s1"]).is_err());
        assert!(parse(&["clear_parameter", "shovel"]).is_err());
        assert!(parse(&["restart_shovel"]).is_err());
    }

    #[test]
    fn quorum_membership_commands_take_their_node_apart_from_the_global_node_option() {
        let args = parse(&[
            "-n",
            "http://127.0.0.1:15672",
            "add_member",
            "-p",
            "v",
            "q",
            "n2",
        ])
        .expect("parses");
        assert_eq!(
            args.command,
            CtlCommand::AddMember {
                queue: "q".into(),
                member: "n2".into()
            }
        );
        assert!(args.command.takes_vhost());
        let args = parse(&["grow", "n3", "even"]).expect("parses");
        assert_eq!(args.command.name(), "grow");
        assert!(!args.command.takes_vhost());
        assert!(parse(&["shrink"]).is_err());
    }

    #[test]
    fn federation_status_takes_only_down_and_a_restart_needs_the_link_id() {
        let args = parse(&["federation_status", "--only-down"]).expect("parses");
        assert!(matches!(
            args.command,
            CtlCommand::FederationStatus { only_down: true }
        ));
        let args = parse(&["federation_status"]).expect("parses");
        assert!(matches!(
            args.command,
            CtlCommand::FederationStatus { only_down: false }
        ));
        let args = parse(&["restart_federation_link", "a1b2c3d4"]).expect("parses");
        assert_eq!(args.command.name(), "restart_federation_link");
        assert!(parse(&["restart_federation_link"]).is_err());
    }

    #[test]
    fn shovel_status_is_node_wide_and_the_other_shovel_commands_act_in_a_vhost() {
        let args = parse(&["shovel_status"]).expect("parses");
        assert_eq!(args.command.name(), "shovel_status");
        assert!(!args.command.takes_vhost());
        let args = parse(&["delete_shovel", "-p", "v1", "s1"]).expect("parses");
        assert_eq!(args.command, CtlCommand::DeleteShovel { name: "s1".into() });
        assert!(args.command.takes_vhost());
        let args = parse(&["restart_shovel", "s1"]).expect("parses");
        assert_eq!(args.command.name(), "restart_shovel");
        assert!(args.command.takes_vhost());
    }

    #[test]
    fn list_commands_take_columns_and_global_options() {
        let args = parse(&[
            "-n",
            "http://h:1",
            "--formatter",
            "json",
            "list_queues",
            "name",
            "messages_ready",
            "-q",
        ])
        .expect("parses");
        assert_eq!(args.node, "http://h:1");
        assert_eq!(args.formatter, Formatter::Json);
        assert!(args.quiet);
        assert_eq!(
            args.command,
            CtlCommand::ListQueues(Columns {
                columns: vec!["name".into(), "messages_ready".into()]
            })
        );
    }

    #[test]
    fn unknown_commands_options_and_missing_arguments_are_refused() {
        for line in [
            &["frobnicate"][..],
            &["list_users", "--bogus"][..],
            &["set_permissions", "alice", ".*", ".*"][..],
            &["add_user"][..],
            &["--formatter", "xml", "list_users"][..],
            &["list_users", "extra"][..],
            &[][..],
        ] {
            assert!(parse(line).is_err(), "{line:?} accepted");
        }
    }

    #[test]
    fn positional_arguments_do_not_set_the_global_options_of_the_same_meaning() {
        // Without distinct ids, clap would fill the global --username, --password and --vhost from them.
        let args = parse(&["add_user", "alice", "s3cret"]).expect("parses");
        assert_eq!(
            (args.username.as_str(), args.vhost.as_deref()),
            ("guest", None)
        );
        if std::env::var_os("WARREN_CTL_PASSWORD").is_none() {
            assert_eq!(args.password, "guest");
        }
        let args = parse(&["add_vhost", "v1"]).expect("parses");
        assert_eq!(args.vhost, None);
        assert_eq!(
            args.command,
            CtlCommand::AddVhost {
                name: "v1".into(),
                description: None,
                tags: None,
                default_queue_type: None
            }
        );
    }

    #[test]
    fn commands_know_their_rabbitmqctl_name_and_whether_they_take_a_vhost() {
        let args = parse(&["purge_queue", "q"]).expect("parses");
        assert_eq!(args.command.name(), "purge_queue");
        assert!(args.command.takes_vhost());
        let args = parse(&["list_users"]).expect("parses");
        assert_eq!(args.command.name(), "list_users");
        assert!(!args.command.takes_vhost());
    }
}
