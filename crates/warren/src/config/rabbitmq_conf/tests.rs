use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, DiskFreeLimit, MemoryWatermark};

fn load(text: &str) -> Result<Config, String> {
    Config::from_rabbitmq_conf_str(text, Path::new("rabbitmq.conf")).map_err(|e| e.to_string())
}

#[test]
fn the_common_keys_set_warrens_settings() {
    let config = load(
        "# a typical rabbitmq.conf\n\
         listeners.tcp.default = 127.0.0.1:5673\n\
         heartbeat = 30\n\
         frame_max = 65536\n\
         channel_max = 128\n\
         max_message_size = 1048576\n\
         consumer_timeout = 900000   # 15 minutes\n\
         handshake_timeout = 5000\n\
         vm_memory_high_watermark.relative = 0.4\n\
         disk_free_limit.absolute = 2GB\n\
         log.console.level = warning\n\
         cluster_name = prod\n\
         connection_max = 500\n\
         channel_max_per_node = infinity\n\
         default_vhost = apps\n\
         default_user = admin\n\
         default_pass = s3cret\n\
         default_permissions.configure = ^app-\n\
         loopback_users.guest = false\n",
    )
    .expect("loads");
    assert_eq!(
        config.listen,
        "127.0.0.1:5673".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.limits.heartbeat, 30);
    assert_eq!(config.limits.frame_max, 65536);
    assert_eq!(config.limits.channel_max, 128);
    assert_eq!(config.limits.max_connections, 500);
    assert_eq!(config.limits.max_channels_per_node, 0);
    assert_eq!(config.limits.max_message_size, 1_048_576);
    assert_eq!(
        config.limits.consumer_timeout,
        Some(Duration::from_secs(900))
    );
    assert_eq!(config.limits.handshake_timeout, Duration::from_secs(5));
    assert_eq!(
        config.alarms.memory_high_watermark,
        MemoryWatermark::Relative(0.4)
    );
    assert_eq!(
        config.alarms.disk_free_limit,
        DiskFreeLimit::Absolute(2_000_000_000)
    );
    assert_eq!(config.log.level, "warn");
    assert_eq!(config.server.cluster_name, "prod");
    assert_eq!(config.auth.default_vhost, "apps");
    let user = config.auth.default_user.as_ref().expect("a default user");
    assert_eq!(
        (user.name.as_str(), user.password.as_str()),
        ("admin", "s3cret")
    );
    assert_eq!(config.auth.default_permissions.configure, "^app-");
    assert_eq!(config.auth.default_permissions.read, ".*");
    assert!(config.auth.loopback_users.is_empty());
}

#[test]
fn a_bare_port_listens_on_every_interface() {
    let config = load("listeners.tcp.default = 5672\n").expect("loads");
    assert_eq!(config.listen, "0.0.0.0:5672".parse::<SocketAddr>().unwrap());
}

#[test]
fn without_default_user_keys_guest_stays_loopback_only() {
    let config = load("heartbeat = 10\n").expect("loads");
    assert_eq!(config.auth, Config::default().auth);
    let config = load("loopback_users = none\n").expect("loads");
    assert!(config.auth.loopback_users.is_empty());
}

#[test]
fn the_management_listener_keys_set_its_address() {
    let config = load("management.tcp.port = 15999\nmanagement.tcp.ip = 0.0.0.0\n").expect("loads");
    assert_eq!(
        config.management.listen,
        "0.0.0.0:15999".parse::<SocketAddr>().unwrap()
    );
    assert!(config.management.enabled);
    assert!(config.ignored_keys.is_empty());
    assert!(load("management.tcp.port = 70000\n").is_err());
}

#[test]
fn tuning_keys_are_listed_as_ignored_with_their_lines() {
    let config = load(
        "collect_statistics_interval = 10000\n\nmanagement.rates_mode = none\nheartbeat = 5\n",
    )
    .expect("loads");
    assert_eq!(
        config.ignored_keys,
        vec!["rabbitmq.conf:3: management.rates_mode"]
    );
    // Applied: the management API samples its rates that often.
    assert_eq!(
        config.management.collect_statistics_interval,
        std::time::Duration::from_secs(10)
    );
    assert!(load("collect_statistics_interval = 5\n").is_err());
    assert_eq!(config.limits.heartbeat, 5);
}

#[test]
fn unknown_and_unsupported_keys_are_refused_with_their_line() {
    assert_eq!(
        load("heartbeat = 5\nhaertbeat = 5\n").unwrap_err(),
        "rabbitmq.conf:2: key `haertbeat`: unknown rabbitmq.conf key, or one Warren does not support"
    );
    assert_eq!(
        load("\ncluster_formation.peer_discovery_backend = classic_config\n").unwrap_err(),
        "rabbitmq.conf:2: key `cluster_formation.peer_discovery_backend`: not supported by Warren: clustering is not supported yet"
    );
}

#[test]
fn values_are_checked_by_the_same_rules_as_toml_and_named_by_their_line() {
    // frame_max below the protocol's minimum: the TOML path's check, reported at the rabbitmq.conf line.
    let error = load("heartbeat = 5\nframe_max = 100\n").unwrap_err();
    assert!(
        error.starts_with("rabbitmq.conf:2: key `frame_max`"),
        "{error}"
    );
    assert_eq!(
        load("heartbeat = soon\n").unwrap_err(),
        "rabbitmq.conf:1: key `heartbeat`: `soon` is not a whole number"
    );
    assert_eq!(
        load("log.console.level = loud\n").unwrap_err(),
        "rabbitmq.conf:1: key `log.console.level`: `loud` is not one of debug, info, notice, warning, error, critical, alert, emergency, none"
    );
    let error = load("disk_free_limit.absolute = lots\n").unwrap_err();
    assert!(
        error.starts_with("rabbitmq.conf:1: key `disk_free_limit.absolute`"),
        "{error}"
    );
}

#[test]
fn lines_that_are_not_settings_are_syntax_errors() {
    assert_eq!(
        load("heartbeat 5\n").unwrap_err(),
        "rabbitmq.conf:1: invalid rabbitmq.conf line: expected `key = value`, found `heartbeat 5`"
    );
}

#[test]
fn tls_listeners_options_and_mechanisms_map_to_their_settings() {
    let config = load(
        "listeners.tcp.default = 127.0.0.1:5672\n\
         listeners.tcp.other = [::1]:5673\n\
         listeners.ssl.default = 5671\n\
         ssl_options.cacertfile = /etc/rabbitmq/ca.pem\n\
         ssl_options.certfile = /etc/rabbitmq/cert.pem\n\
         ssl_options.keyfile = /etc/rabbitmq/key.pem\n\
         ssl_options.verify = verify_peer\n\
         ssl_options.fail_if_no_peer_cert = true\n\
         ssl_options.versions.1 = tlsv1.3\n\
         ssl_handshake_timeout = 7000\n\
         auth_mechanisms.1 = EXTERNAL\n\
         auth_mechanisms.2 = PLAIN\n\
         ssl_cert_login_from = common_name\n",
    )
    .expect("loads");
    assert_eq!(
        config.listen,
        "127.0.0.1:5672".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.listeners.tcp,
        vec!["[::1]:5673".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        config.listeners.ssl,
        vec!["0.0.0.0:5671".parse::<SocketAddr>().unwrap()]
    );
    let toml = Config::from_toml_str(
        "[listeners]\nssl = [\"0.0.0.0:5671\"]\n\
         [ssl_options]\ncacertfile = \"/etc/rabbitmq/ca.pem\"\ncertfile = \"/etc/rabbitmq/cert.pem\"\n\
         keyfile = \"/etc/rabbitmq/key.pem\"\nverify = \"verify_peer\"\nfail_if_no_peer_cert = true\n\
         versions = [\"tlsv1.3\"]\n\
         [limits]\nssl_handshake_timeout_ms = 7000\n\
         [auth]\nauth_mechanisms = [\"EXTERNAL\", \"PLAIN\"]\nssl_cert_login_from = \"common_name\"\n",
        Path::new("warren.toml"),
    )
    .expect("the TOML form");
    assert_eq!(config.ssl, toml.ssl);
    assert_eq!(config.sasl, toml.sasl);
    assert_eq!(config.limits, toml.limits);
}

#[test]
fn load_definitions_and_the_definitions_keys_set_the_import_at_start() {
    let config = load("load_definitions = /etc/rabbitmq/definitions.json\n").expect("loads");
    assert_eq!(
        config.definitions.load_definitions.as_deref(),
        Some(Path::new("/etc/rabbitmq/definitions.json"))
    );
    assert!(!config.definitions.skip_if_unchanged);
    let config = load(
        "definitions.import_backend = local_filesystem\n\
         definitions.local.path = /srv/defs.json\n\
         definitions.skip_if_unchanged = true\n\
         definitions.hashing.algorithm = SHA256\n",
    )
    .expect("loads");
    assert_eq!(
        config.definitions.load_definitions.as_deref(),
        Some(Path::new("/srv/defs.json"))
    );
    assert!(config.definitions.skip_if_unchanged);
    let err = load("definitions.import_backend = https\n").expect_err("refused");
    assert!(err.contains("local file only"), "{err}");
    let err = load("definitions.https.url = https://example.com/defs.json\n").expect_err("refused");
    assert!(err.contains("rabbitmq.conf:1"), "{err}");
}

#[test]
fn unbracketed_ipv6_listeners_are_read_as_rabbitmq_writes_them() {
    let config =
        load("listeners.tcp.1 = :::5673\nlisteners.tcp.2 = 127.0.0.1:5674\n").expect("loads");
    assert_eq!(config.listen, "[::]:5673".parse::<SocketAddr>().unwrap());
    let config = load("listeners.tcp.default = ::1:5675\n").expect("loads");
    assert_eq!(config.listen, "[::1]:5675".parse::<SocketAddr>().unwrap());
}

#[test]
fn deprecated_feature_permits_are_read() {
    let config = load(
        "deprecated_features.permit.global_qos = false\n\
         deprecated_features.permit.transient_nonexcl_queues = false\n",
    )
    .unwrap();
    assert!(!config.deprecated_features.global_qos);
    assert!(!config.deprecated_features.transient_nonexcl_queues);
}

#[test]
fn event_exchange_vhost_turns_the_event_exchange_on_in_that_vhost() {
    let config = load("event_exchange.vhost = events\n").expect("loads");
    assert_eq!(config.event_exchange_vhost(), Some("events"));
}

#[test]
fn prometheus_keys_set_the_endpoint() {
    let config = load(
        "prometheus.tcp.port = 15800\nprometheus.tcp.ip = 0.0.0.0\nprometheus.return_per_object_metrics = true\n",
    )
    .expect("valid");
    assert_eq!(
        config.prometheus.listen,
        "0.0.0.0:15800".parse().expect("address")
    );
    assert!(config.prometheus.return_per_object_metrics);
}
