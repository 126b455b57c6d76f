//! Tests of loading and validating config files: defaults, the shipped example, a full file, and the exact text of
//! every error an operator can meet.

use super::*;

const ORIGIN: &str = "config/warren.toml";

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new(ORIGIN))
}

/// The error's text, for a file that must be refused.
fn refusal(text: &str) -> String {
    match load(text) {
        Ok(config) => panic!("accepted {text:?} as {config:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn default_user_keys_are_rabbitmq_keys() {
    let config = load(
        "[auth]\ndefault_user = \"admin\"\ndefault_pass = \"pw\"\n\
         default_permissions = { configure = \"^admin-\", read = \"\" }\n",
    )
    .expect("loads");
    assert_eq!(
        config.auth.default_user,
        Some(DefaultUser {
            name: "admin".into(),
            password: "pw".into(),
        })
    );
    assert_eq!(
        config.auth.default_permissions,
        DefaultPermissions {
            configure: "^admin-".into(),
            write: ".*".into(),
            read: "".into(),
        }
    );
    // A default user alongside listed users.
    let config =
        load("[auth]\ndefault_user = \"root\"\n[[auth.users]]\nname = \"a\"\npassword = \"a\"\n")
            .expect("loads");
    assert_eq!(
        config.auth.default_user.map(|u| (u.name, u.password)),
        Some(("root".to_owned(), "guest".to_owned()))
    );
    assert_eq!(
        refusal("[auth]\ndefault_user = \"\"\n"),
        "config/warren.toml:2: key `default_user`: must not be empty"
    );
}

#[test]
fn defaults_are_rabbitmq_defaults() {
    let config = Config::default();
    assert_eq!(
        config.listen,
        "127.0.0.1:5672".parse::<SocketAddr>().expect("address")
    );
    assert_eq!(config.data_dir, Path::new("./data"));
    assert_eq!(config.limits.channel_max, 2047);
    assert_eq!(config.limits.frame_max, 131_072);
    assert_eq!(config.limits.heartbeat, 60);
    assert_eq!(config.limits.max_message_size, 128 * 1024 * 1024);
    assert_eq!(config.limits.handshake_timeout, Duration::from_secs(10));
    assert_eq!(config.limits.max_connections, 0);
    assert_eq!(config.auth.default_vhost, "/");
    assert_eq!(
        config.auth.default_user,
        Some(DefaultUser {
            name: "guest".into(),
            password: "guest".into(),
        })
    );
    assert_eq!(config.auth.default_permissions.configure, ".*");
    assert!(config.auth.users.is_empty());
    assert_eq!(config.auth.loopback_users, vec!["guest".to_owned()]);
    assert_eq!(config.server.product, "Warren");
    assert_eq!(config.server.version, env!("CARGO_PKG_VERSION"));
    assert!(
        config.server.platform.starts_with("Rust (tokio) on "),
        "{}",
        config.server.platform
    );
    assert!(config.server.cluster_name.starts_with("warren@"));
    assert!(config.server.cluster_name.len() > "warren@".len());
    assert_eq!(config.log.level, "info");
    assert_eq!(config.source, None);
}

#[test]
fn empty_file_yields_the_defaults() {
    assert_eq!(load("").expect("empty file loads"), Config::default());
    assert_eq!(
        load("[server]\n[limits]\n[auth]\n[log]\n").expect("empty sections load"),
        Config::default()
    );
}

#[test]
fn shipped_example_file_yields_the_defaults() {
    let shipped =
        load(include_str!("../../../../config/warren.toml")).expect("config/warren.toml loads");
    let defaults = Config::default();
    assert_eq!(shipped.listen, defaults.listen);
    assert_eq!(shipped.data_dir, defaults.data_dir);
    assert_eq!(shipped.limits, defaults.limits);
    assert_eq!(shipped.auth, defaults.auth);
    assert_eq!(shipped.server, defaults.server);
    assert_eq!(shipped.log, defaults.log);
    assert_eq!(shipped.alarms, defaults.alarms);
    assert_eq!(shipped.source, None);
}

#[test]
fn from_file_reads_the_file_and_records_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/warren.toml");
    let config = Config::from_file(&path).expect("config/warren.toml loads");
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
    assert_eq!(
        Config {
            source: None,
            ..config
        },
        Config::default()
    );
}

#[test]
fn full_file_sets_every_key() {
    let config = load(
        r#"
[server]
listen = "[::]:5673"
data_dir = "/var/lib/warren"
product = "RabbitMQ"
version = "3.13.7"
platform = "Erlang/OTP 26.2.5"
information = "Licensed under the MPL 2.0. Website: https://rabbitmq.com"
cluster_name = "prod"

[limits]
channel_max = 128
frame_max = 4096
heartbeat = 0
max_message_size = 536870912
handshake_timeout_ms = 2500
max_connections = 1000
max_channels_per_node = 5000
consumer_timeout = 0
send_timeout = 15000

[auth]
default_vhost = "main"
loopback_users = []

[[auth.users]]
name = "admin"
password = "s3cret"
vhosts = ["main", "/", "audit"]

[[auth.users]]
name = "app"
password = "app"

[log]
level = "warren=debug,info"
"#,
    )
    .expect("full file loads");
    assert_eq!(
        config.listen,
        "[::]:5673".parse::<SocketAddr>().expect("address")
    );
    assert_eq!(config.data_dir, Path::new("/var/lib/warren"));
    assert_eq!(config.server.product, "RabbitMQ");
    assert_eq!(config.server.version, "3.13.7");
    assert_eq!(config.server.platform, "Erlang/OTP 26.2.5");
    assert_eq!(
        config.server.information,
        "Licensed under the MPL 2.0. Website: https://rabbitmq.com"
    );
    assert_eq!(config.server.cluster_name, "prod");
    assert_eq!(
        config.limits,
        Limits {
            channel_max: 128,
            frame_max: 4096,
            heartbeat: 0,
            max_message_size: MAX_MESSAGE_SIZE_CAP,
            handshake_timeout: Duration::from_millis(2500),
            max_connections: 1000,
            max_channels_per_node: 5000,
            consumer_timeout: None,
            send_timeout: Some(Duration::from_millis(15000)),
        }
    );
    assert_eq!(config.auth.default_vhost, "main");
    assert!(config.auth.loopback_users.is_empty());
    // Users listed and no default_user: no guest.
    assert_eq!(config.auth.default_user, None);
    assert_eq!(
        config.auth.users,
        vec![
            UserConfig {
                name: "admin".into(),
                password: "s3cret".into(),
                vhosts: vec!["main".into(), "/".into(), "audit".into()],
            },
            // No vhosts listed: the default vhost.
            UserConfig {
                name: "app".into(),
                password: "app".into(),
                vhosts: vec!["main".into()],
            },
        ]
    );
    assert_eq!(config.log.level, "warren=debug,info");
    assert_eq!(
        config.vhosts(),
        vec!["main".to_owned(), "/".to_owned(), "audit".to_owned()]
    );
}

#[test]
fn a_partial_section_keeps_the_other_defaults() {
    let config = load("[limits]\nheartbeat = 15\n").expect("loads");
    assert_eq!(
        config.limits,
        Limits {
            heartbeat: 15,
            ..Limits::default()
        }
    );
    assert_eq!(config.auth, AuthConfig::default());
}

#[test]
fn inline_tables_and_dotted_keys_are_accepted() {
    let config =
        load("limits = { heartbeat = 5 }\nserver.product = \"RabbitMQ\"\n").expect("loads");
    assert_eq!(config.limits.heartbeat, 5);
    assert_eq!(config.server.product, "RabbitMQ");
}

#[test]
fn vhosts_are_deduplicated_with_the_default_first() {
    let config = load(
        "[[auth.users]]\nname = \"a\"\npassword = \"a\"\nvhosts = [\"x\", \"/\"]\n\
         [[auth.users]]\nname = \"b\"\npassword = \"b\"\nvhosts = [\"x\", \"y\"]\n",
    )
    .expect("loads");
    assert_eq!(
        config.vhosts(),
        vec!["/".to_owned(), "x".to_owned(), "y".to_owned()]
    );
    assert_eq!(Config::default().vhosts(), vec!["/".to_owned()]);
}

#[test]
fn unknown_key_at_top_level_is_refused() {
    assert_eq!(
        refusal("verbose = true\n"),
        "config/warren.toml:1: unknown key `verbose` at top level"
    );
}

#[test]
fn unknown_key_in_a_section_is_refused() {
    assert_eq!(
        refusal("[server]\nlisten = \"127.0.0.1:5672\"\nlistn = \"0.0.0.0:5672\"\n"),
        "config/warren.toml:3: unknown key `listn` in [server]"
    );
    assert_eq!(
        refusal("\n\n[limits]\nframe_max = 131072\n\n\n\n# comment\nheart_beat = 60\n"),
        "config/warren.toml:9: unknown key `heart_beat` in [limits]"
    );
}

#[test]
fn unknown_section_is_refused() {
    assert_eq!(
        refusal("[server]\n\n[storrage]\nsync = \"never\"\n"),
        "config/warren.toml:3: unknown key `storrage` at top level"
    );
}

#[test]
fn unknown_key_in_a_user_entry_is_refused() {
    assert_eq!(
        refusal(
            "[[auth.users]]\nname = \"a\"\npassword = \"a\"\n\n\
             [[auth.users]]\nname = \"b\"\npassword = \"b\"\nvhost = \"/\"\n"
        ),
        "config/warren.toml:8: unknown key `vhost` in [[auth.users]]"
    );
}

#[test]
fn unknown_key_in_an_inline_or_dotted_table_is_refused() {
    assert_eq!(
        refusal("log = { level = \"info\", colour = true }\n"),
        "config/warren.toml:1: unknown key `colour` in [log]"
    );
    assert_eq!(
        refusal("\nauth.users_file = \"x\"\n"),
        "config/warren.toml:2: unknown key `users_file` in [auth]"
    );
}

#[test]
fn user_without_name_or_password_is_refused() {
    assert_eq!(
        refusal(
            "[[auth.users]]\nname = \"a\"\npassword = \"a\"\n\n[[auth.users]]\npassword = \"b\"\n"
        ),
        "config/warren.toml:5: missing key `name` in [[auth.users]]"
    );
    assert_eq!(
        refusal("[[auth.users]]\nname = \"a\"\n"),
        "config/warren.toml:1: missing key `password` in [[auth.users]]"
    );
}

#[test]
fn user_with_empty_name_is_refused() {
    assert_eq!(
        refusal("[[auth.users]]\nname = \"\"\npassword = \"a\"\n"),
        "config/warren.toml:2: key `name`: must not be empty"
    );
}

#[test]
fn user_defined_twice_is_refused() {
    assert_eq!(
        refusal("[[auth.users]]\nname = \"a\"\npassword = \"a\"\n[[auth.users]]\nname = \"a\"\npassword = \"b\"\n"),
        "config/warren.toml:5: key `name`: user `a` is defined twice"
    );
}

#[test]
fn empty_vhost_name_is_refused() {
    assert_eq!(
        refusal("[[auth.users]]\nname = \"a\"\npassword = \"a\"\nvhosts = [\"/\", \"\"]\n"),
        "config/warren.toml:4: key `vhosts`: must not be empty"
    );
    assert_eq!(
        refusal("[auth]\ndefault_vhost = \"\"\n"),
        "config/warren.toml:2: key `default_vhost`: must not be empty"
    );
}

#[test]
fn frame_max_below_the_amqp_minimum_is_refused() {
    assert_eq!(
        refusal("[limits]\n\nframe_max = 4095\n"),
        "config/warren.toml:3: key `frame_max`: must be at least 4096"
    );
}

#[test]
fn channel_max_zero_is_refused() {
    assert_eq!(
        refusal("[limits]\nchannel_max = 0\n"),
        "config/warren.toml:2: key `channel_max`: must be at least 1"
    );
}

#[test]
fn max_message_size_outside_rabbitmq_bounds_is_refused() {
    let expected = "config/warren.toml:2: key `max_message_size`: must be between 1 and 536870912";
    assert_eq!(refusal("[limits]\nmax_message_size = 0\n"), expected);
    assert_eq!(
        refusal("[limits]\nmax_message_size = 536870913\n"),
        expected
    );
}

#[test]
fn zero_handshake_timeout_is_refused() {
    assert_eq!(
        refusal("[limits]\nhandshake_timeout_ms = 0\n"),
        "config/warren.toml:2: key `handshake_timeout_ms`: must be at least 1"
    );
}

#[test]
fn bad_listen_address_is_refused() {
    assert_eq!(
        refusal("[server]\nlisten = \"localhost:5672\"\n"),
        "config/warren.toml:2: key `listen`: `localhost:5672` is not an IP address and port such as 127.0.0.1:5672 \
         or [::]:5672"
    );
    for bad in ["127.0.0.1", "127.0.0.1:65536", "::1:5672", ""] {
        let text = format!("[server]\nlisten = \"{bad}\"\n");
        assert!(
            refusal(&text).starts_with("config/warren.toml:2: key `listen`: "),
            "{bad}"
        );
    }
}

#[test]
fn empty_strings_are_refused() {
    for key in [
        "data_dir",
        "product",
        "version",
        "platform",
        "information",
        "cluster_name",
    ] {
        assert_eq!(
            refusal(&format!("[server]\n{key} = \"\"\n")),
            format!("config/warren.toml:2: key `{key}`: must not be empty")
        );
    }
    assert_eq!(
        refusal("[log]\nlevel = \"\"\n"),
        "config/warren.toml:2: key `level`: must not be empty"
    );
}

#[test]
fn bad_log_level_is_refused() {
    let message = refusal("[log]\nlevel = \"warren=loud\"\n");
    assert!(
        message.starts_with("config/warren.toml:2: key `level`: `warren=loud` is not a log filter"),
        "{message}"
    );
}

#[test]
fn value_of_the_wrong_type_names_the_key() {
    assert_eq!(
        refusal("[limits]\nframe_max = \"big\"\n"),
        "config/warren.toml:2: key `frame_max`: invalid type: string \"big\", expected u32"
    );
    assert_eq!(
        refusal("[limits]\nheartbeat = 70000\n"),
        "config/warren.toml:2: key `heartbeat`: invalid value: integer `70000`, expected u16"
    );
    assert_eq!(
        refusal("[limits]\nmax_connections = -1\n"),
        "config/warren.toml:2: key `max_connections`: invalid value: integer `-1`, expected usize"
    );
    assert_eq!(
        refusal("[[auth.users]]\nname = \"a\"\npassword = \"a\"\nvhosts = [\"/\", 3]\n"),
        "config/warren.toml:4: key `vhosts`: invalid type: integer `3`, expected a string"
    );
    assert_eq!(
        refusal("[[auth.users]]\nname = 5\npassword = \"a\"\n"),
        "config/warren.toml:2: key `name`: invalid type: integer `5`, expected a string"
    );
    assert_eq!(
        refusal("[auth]\nusers = [1]\n"),
        "config/warren.toml:2: key `users`: invalid type: integer `1`, expected an [[auth.users]] table"
    );
    assert_eq!(
        refusal("server = 5\n"),
        "config/warren.toml:1: key `server`: invalid type: integer `5`, expected a [server] table"
    );
}

#[test]
fn invalid_toml_is_refused_with_its_line() {
    assert_eq!(
        refusal("[server]\nlisten = \n"),
        "config/warren.toml:2: invalid TOML: string values must be quoted, expected literal string"
    );
    assert!(refusal("[limits\n").starts_with("config/warren.toml:1: invalid TOML: "));
    assert_eq!(
        refusal("[limits]\nheartbeat = 1\nheartbeat = 2\n"),
        "config/warren.toml:3: invalid TOML: duplicate key"
    );
}

#[test]
fn missing_file_names_the_path() {
    let err =
        Config::from_file(Path::new("/nonexistent/warren.toml")).expect_err("missing file refused");
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/warren.toml: cannot read config file: "),
        "{err}"
    );
}

#[test]
fn storage_section_sets_sync_and_sizes() {
    let config = Config::from_toml_str(
        "[storage]\nsync = \"never\"\nwal_file_size = 2097152\nqueue_memory_budget = 1024\n\
         total_queue_memory_budget = 4096\n",
        Path::new("config/warren.toml"),
    )
    .unwrap();
    assert_eq!(config.storage.sync, super::SyncPolicy::Never);
    assert_eq!(config.storage.wal_file_size, 2 << 20);
    assert_eq!(config.storage.queue_memory_budget, 1024);
    assert_eq!(config.storage.total_queue_memory_budget, 4096);
    assert_eq!(
        refusal("[storage]\nsync = \"sometimes\"\n"),
        "config/warren.toml:2: key `sync`: `sometimes` is not one of \"always\", \"never\""
    );
}

#[test]
fn flow_section_sets_the_queue_watermarks_and_zero_turns_a_test_off() {
    let defaults = Config::default();
    assert_eq!(defaults.flow.queue_high_watermark_messages, 10_000);
    assert_eq!(defaults.flow.queue_high_watermark_bytes, 16 << 20);
    let config = Config::from_toml_str(
        "[flow]\nqueue_high_watermark_messages = 0\nqueue_high_watermark_bytes = 1048576\n",
        Path::new("config/warren.toml"),
    )
    .unwrap();
    assert_eq!(config.flow.queue_high_watermark_messages, 0);
    assert_eq!(config.flow.queue_high_watermark_bytes, 1 << 20);
    assert_eq!(
        refusal("[flow]\nqueue_watermark = 3\n"),
        "config/warren.toml:2: unknown key `queue_watermark` in [flow]"
    );
}

#[test]
fn policies_and_operator_policies_are_read_with_rabbitmqs_field_names() {
    let config = load(
        r#"
[[policies]]
name = "retry"
pattern = "^retry\\."
apply-to = "queues"
priority = 5
definition = { message-ttl = 5000, dead-letter-exchange = "" }

[[operator_policies]]
vhost = "/"
name = "ceiling"
pattern = ".*"
definition = { max-length = 100000 }
"#,
    )
    .expect("loads");
    assert_eq!(
        config.policies,
        vec![
            crate::config::PolicyConfig {
                operator: false,
                vhost: "/".into(),
                name: "retry".into(),
                pattern: "^retry\\.".into(),
                apply_to: Some("queues".into()),
                priority: Some(5),
                definition: serde_json::json!({"message-ttl": 5000, "dead-letter-exchange": ""}),
            },
            crate::config::PolicyConfig {
                operator: true,
                vhost: "/".into(),
                name: "ceiling".into(),
                pattern: ".*".into(),
                apply_to: None,
                priority: None,
                definition: serde_json::json!({"max-length": 100000}),
            },
        ]
    );
    assert!(
        refusal("[[policies]]\nname = \"p\"\npattern = \".\"\ndefinition = {}\ncolour = 1\n")
            .contains("colour")
    );
}

#[test]
fn alarm_limits_take_rabbitmqs_keys_and_units() {
    use crate::config::{DiskFreeLimit, MemoryWatermark};
    let config = load(
        "[alarms]\nvm_memory_high_watermark.absolute = \"2GB\"\ndisk_free_limit.relative = 1.5\n",
    )
    .expect("loads");
    assert_eq!(
        config.alarms.memory_high_watermark,
        MemoryWatermark::Absolute(2_000_000_000)
    );
    assert_eq!(config.alarms.disk_free_limit, DiskFreeLimit::Relative(1.5));
    let config = load("[alarms]\nvm_memory_high_watermark.relative = 0.4\ndisk_free_limit.absolute = 1073741824\n")
        .expect("loads");
    assert_eq!(
        config.alarms.memory_high_watermark,
        MemoryWatermark::Relative(0.4)
    );
    assert_eq!(
        config.alarms.disk_free_limit,
        DiskFreeLimit::Absolute(1 << 30)
    );
    assert_eq!(crate::config::parse_bytes("512MiB"), Some(512 << 20));
    assert_eq!(crate::config::parse_bytes("50MB"), Some(50_000_000));
    assert!(refusal("[alarms]\ndisk_free_limit.absolute = \"lots\"\n")
        .contains("disk_free_limit.absolute"));
    assert!(
        refusal("[alarms]\nvm_memory_high_watermark = { relative = 0.5, absolute = 1 }\n")
            .contains("not both")
    );
    assert!(
        refusal("[alarms]\nvm_memory_high_watermark.relative = -1.0\n")
            .contains("vm_memory_high_watermark.relative")
    );
}

#[test]
fn the_4x_profile_sets_rabbitmq_4s_defaults_and_explicit_keys_win() {
    let config = load("[server]\ncompatibility = \"4.x\"\n").unwrap();
    assert_eq!(config.compatibility, Compatibility::RabbitMq4);
    assert_eq!(config.limits.max_message_size, 16 << 20);
    assert!(!config.deprecated_features.global_qos);
    assert!(!config.deprecated_features.transient_nonexcl_queues);

    let config = load(
        "[server]\ncompatibility = \"4.x\"\n[limits]\nmax_message_size = 1048576\n\
         [deprecated_features]\nglobal_qos = true\n",
    )
    .unwrap();
    assert_eq!(config.limits.max_message_size, 1 << 20);
    assert!(config.deprecated_features.global_qos);
    assert!(!config.deprecated_features.transient_nonexcl_queues);

    let config = load("[deprecated_features]\ntransient_nonexcl_queues = false\n").unwrap();
    assert_eq!(config.compatibility, Compatibility::RabbitMq3_13);
    assert_eq!(config.limits.max_message_size, 128 << 20);
    assert!(config.deprecated_features.global_qos);
    assert!(!config.deprecated_features.transient_nonexcl_queues);
}

#[test]
fn an_unknown_profile_is_refused() {
    assert_eq!(
        refusal("[server]\ncompatibility = \"3.12\"\n"),
        "config/warren.toml:2: key `compatibility`: `3.12` is not a profile; use \"3.13\" or \"4.x\""
    );
}

#[test]
fn the_event_exchange_is_off_by_default_and_naming_its_vhost_turns_it_on() {
    let config = load("").expect("loads");
    assert_eq!(config.event_exchange_vhost(), None);
    let config = load("[event_exchange]\nenabled = true\n").expect("loads");
    assert_eq!(config.event_exchange_vhost(), Some("/"));
    let config =
        load("[auth]\ndefault_vhost = \"d\"\n[event_exchange]\nenabled = true\n").expect("loads");
    assert_eq!(config.event_exchange_vhost(), Some("d"));
    let config = load("[event_exchange]\nvhost = \"events\"\n").expect("loads");
    assert_eq!(config.event_exchange_vhost(), Some("events"));
    let config = load("[event_exchange]\nvhost = \"events\"\nenabled = false\n").expect("loads");
    assert_eq!(config.event_exchange_vhost(), None);
    assert!(refusal("[event_exchange]\nvhost = \"\"\n").contains("vhost"));
}

#[test]
fn prometheus_section_sets_the_endpoint_and_refuses_a_bad_port() {
    let config = load(
        "[prometheus]\nlisten = \"0.0.0.0:9999\"\nport = 15700\nreturn_per_object_metrics = true\n",
    )
    .expect("valid");
    assert!(config.prometheus.enabled);
    assert_eq!(
        config.prometheus.listen,
        "0.0.0.0:15700".parse().expect("address")
    );
    assert!(config.prometheus.return_per_object_metrics);
    assert!(
        !load("[prometheus]\nenabled = false\n")
            .expect("valid")
            .prometheus
            .enabled
    );
    let error = refusal("[prometheus]\nport = 70000\n");
    assert!(error.contains("port"), "{error}");
}

#[test]
fn a_cluster_table_names_this_node_its_address_its_peers_and_the_secret() {
    let config = load(
        "[cluster]\nname = \"n1\"\nlisten = \"127.0.0.1:25672\"\n\
         peers = [\"n2@127.0.0.1:25673\", \"n3@127.0.0.2:25674\"]\nsecret = \"a shared secret\"\n",
    )
    .expect("loads");
    let cluster = config.cluster.expect("a cluster");
    assert_eq!(cluster.name, "n1");
    assert_eq!(cluster.listen, SocketAddr::from(([127, 0, 0, 1], 25672)));
    assert_eq!(
        cluster.peers,
        vec![
            ClusterPeer {
                name: "n2".into(),
                addr: SocketAddr::from(([127, 0, 0, 1], 25673)),
            },
            ClusterPeer {
                name: "n3".into(),
                addr: SocketAddr::from(([127, 0, 0, 2], 25674)),
            },
        ]
    );
    // The secret stays out of debug output (and so out of logs).
    assert!(!format!("{cluster:?}").contains("shared"));
    assert!(load("").expect("loads").cluster.is_none());
}

#[test]
fn a_bad_cluster_table_is_refused_with_the_key_at_fault() {
    let base = |peers: &str, secret: &str| {
        format!(
            "[cluster]\nname = \"n1\"\nlisten = \"127.0.0.1:25672\"\npeers = [{peers}]\nsecret = \"{secret}\"\n"
        )
    };
    for peers in [
        "\"n2\"",
        "\"n2@nowhere\"",
        "\"n1@127.0.0.1:1\"",
        "\"n2@127.0.0.1:1\", \"n2@127.0.0.1:2\"",
        "\"bad name@127.0.0.1:1\"",
    ] {
        let text = refusal(&base(peers, "long enough secret"));
        assert!(text.contains("cluster.peers"), "{peers}: {text}");
    }
    let text = refusal(&base("", "short"));
    assert!(text.contains("cluster.secret"), "{text}");
    let text = refusal("[cluster]\nname = \"n1\"\nlisten = \"127.0.0.1:25672\"\n");
    assert!(text.contains("secret"), "{text}");
    let text = refusal(
        "[cluster]\nname = \"n1\"\nlisten = \"127.0.0.1:25672\"\nsecret = \"long enough\"\nnodes = []\n",
    );
    assert!(text.contains("nodes"), "{text}");
    // Inter-node TLS takes its three files together.
    let text = refusal(&format!(
        "{}tls_certfile = \"n1.pem\"\ntls_keyfile = \"n1.key\"\n",
        base("", "long enough secret")
    ));
    assert!(text.contains("cluster.tls_certfile"), "{text}");
    let config = load(&format!(
        "{}tls_certfile = \"n1.pem\"\ntls_keyfile = \"n1.key\"\ntls_cacertfile = \"ca.pem\"\n",
        base("", "long enough secret")
    ))
    .expect("loads");
    let tls = config.cluster.and_then(|c| c.tls).expect("inter-node TLS");
    assert_eq!(tls.cacertfile, std::path::PathBuf::from("ca.pem"));
}

#[test]
fn static_shovels_are_read_with_rabbitmqs_keys_and_checked_with_its_refusals() {
    let config = load(
        r#"
[[shovels]]
name = "to-dr"
src-uri = "amqp://"
src-queue = "orders"
dest-uri = ["amqp://dr1.example", "amqp://dr2.example"]
dest-queue = "orders"
ack-mode = "on-publish"
"#,
    )
    .expect("loads");
    assert_eq!(config.shovels.len(), 1);
    assert_eq!(config.shovels[0].name, "to-dr");
    let definition = &config.shovels[0].definition;
    assert_eq!(
        definition.ack_mode,
        crate::shovel::definition::AckMode::OnPublish
    );
    assert_eq!(definition.destination.uris.len(), 2);
    let refused =
        refusal("\n[[shovels]]\nname = \"bad\"\nsrc-uri = \"amqp://\"\ndest-uri = \"amqp://\"\n");
    assert!(
        refused.starts_with("config/warren.toml:2: key `shovels`"),
        "{refused}"
    );
    assert!(
        refused.contains("shovel 'bad': Must specify 'src-exchange' or 'src-queue'"),
        "{refused}"
    );
    assert!(refusal("[[shovels]]\nsrc-uri = \"amqp://\"\n").contains("needs a non-empty name"));
}
