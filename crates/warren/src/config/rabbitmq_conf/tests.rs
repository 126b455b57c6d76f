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
fn tuning_keys_are_listed_as_ignored_with_their_lines() {
    let config =
        load("collect_statistics_interval = 10000\n\nmanagement.tcp.port = 15672\nheartbeat = 5\n")
            .expect("loads");
    assert_eq!(
        config.ignored_keys,
        vec![
            "rabbitmq.conf:1: collect_statistics_interval",
            "rabbitmq.conf:3: management.tcp.port"
        ]
    );
    assert_eq!(config.limits.heartbeat, 5);
}

#[test]
fn unknown_and_unsupported_keys_are_refused_with_their_line() {
    assert_eq!(
        load("heartbeat = 5\nhaertbeat = 5\n").unwrap_err(),
        "rabbitmq.conf:2: key `haertbeat`: unknown rabbitmq.conf key, or one Warren does not support"
    );
    assert_eq!(
        load("\nssl_options.certfile = /etc/cert.pem\n").unwrap_err(),
        "rabbitmq.conf:2: key `ssl_options.certfile`: not supported by Warren: TLS listeners are not supported yet"
    );
    assert_eq!(
        load("listeners.tcp.a = 5672\nlisteners.tcp.b = 5673\n").unwrap_err(),
        "rabbitmq.conf:2: key `listeners.tcp`: not supported by Warren: Warren serves one plain listener; several are not supported yet"
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
