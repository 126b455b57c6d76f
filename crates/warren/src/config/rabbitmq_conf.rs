//! RabbitMQ's `rabbitmq.conf` (the sysctl-like format: `key = value` lines, `#` comments) read as Warren's settings,
//! so that `warren --config /etc/rabbitmq/rabbitmq.conf` is the migration path.
//!
//! The file is translated into Warren's TOML form, line for line, and read by the TOML path: every value is checked
//! by the same code as in a TOML file, and an error names the rabbitmq.conf line it came from. A key Warren does not
//! implement is refused with its line; a key that only tunes RabbitMQ's internals (Erlang VM, Mnesia, the management
//! plugin's statistics, ...) is accepted and listed in [`ConfTranslation::ignored`] for the broker to log.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// A rabbitmq.conf as TOML, with the rabbitmq.conf line of each TOML line and the keys that were ignored.
#[derive(Debug)]
pub(super) struct ConfTranslation {
    /// The equivalent TOML document.
    pub(super) toml: String,
    /// For each line of `toml` (index = TOML line - 1), the rabbitmq.conf line it came from; 0 for lines that
    /// came from no single line (section headers).
    pub(super) lines: Vec<usize>,
    /// `file:line: key` of each key accepted but ignored, for the log.
    pub(super) ignored: Vec<String>,
}

/// Prefixes of keys that only tune RabbitMQ internals: nothing in Warren corresponds, and ignoring them changes
/// no behaviour a client or operator sees.
const IGNORED_PREFIXES: &[&str] = &[
    "background_gc_",
    "channel_operation_timeout",
    "classic_queue.",
    "collect_statistics",
    "credit_flow_default_credit",
    "definitions.hashing.",
    "deprecated_features.",
    "lazy_queue_explicit_gc_run_operation_threshold",
    "log.console",
    "log.exchange",
    "log.file",
    "log.journald",
    "log.syslog",
    "management.",
    "management_agent.",
    "memory_monitor_interval",
    "mirroring_",
    "mnesia_",
    "msg_store_",
    "num_acceptors.",
    "queue_index_",
    "queue_master_locator",
    "reverse_dns_lookups",
    "tcp_listen_options.",
    "vm_memory_calculation_strategy",
    "vm_memory_high_watermark_paging_ratio",
];

/// How a rabbitmq.conf value is written in TOML.
#[derive(Clone, Copy)]
enum Kind {
    /// A non-negative integer.
    Integer,
    /// A whole number or `infinity` (written as Warren's 0, no limit).
    Limit,
    /// A number, possibly fractional.
    Float,
    /// A string.
    Text,
    /// true or false.
    Bool,
    /// An integer of bytes, or a string with RabbitMQ's units ("2GB").
    Amount,
    /// RabbitMQ's log level names, written as Warren's (tracing) levels.
    LogLevel,
}

/// The keys Warren maps one to one: (TOML table, TOML key, value kind).
fn target(key: &str) -> Option<(&'static str, &'static str, Kind)> {
    use Kind::*;
    Some(match key {
        "heartbeat" => ("limits", "heartbeat", Integer),
        "frame_max" => ("limits", "frame_max", Integer),
        "channel_max" => ("limits", "channel_max", Integer),
        "max_message_size" => ("limits", "max_message_size", Integer),
        "consumer_timeout" => ("limits", "consumer_timeout", Integer),
        "handshake_timeout" => ("limits", "handshake_timeout_ms", Integer),
        "cluster_name" => ("server", "cluster_name", Text),
        "connection_max" => ("limits", "max_connections", Limit),
        "channel_max_per_node" => ("limits", "max_channels_per_node", Limit),
        "vm_memory_high_watermark.relative" => {
            ("alarms", "vm_memory_high_watermark.relative", Float)
        }
        "vm_memory_high_watermark.absolute" => {
            ("alarms", "vm_memory_high_watermark.absolute", Amount)
        }
        "disk_free_limit.relative" => ("alarms", "disk_free_limit.relative", Float),
        "disk_free_limit.absolute" => ("alarms", "disk_free_limit.absolute", Amount),
        "log.default.level" | "log.console.level" | "log.file.level" => ("log", "level", LogLevel),
        "default_vhost" => ("auth", "default_vhost", Text),
        "event_exchange.vhost" => ("event_exchange", "vhost", Text),
        "management.tcp.port" => ("management", "port", Integer),
        "management.tcp.ip" => ("management", "ip", Text),
        "collect_statistics_interval" => ("management", "collect_statistics_interval", Integer),
        "prometheus.tcp.port" => ("prometheus", "port", Integer),
        "prometheus.tcp.ip" => ("prometheus", "ip", Text),
        "prometheus.return_per_object_metrics" => ("prometheus", "return_per_object_metrics", Bool),
        "ssl_cert_login_from" => ("auth", "ssl_cert_login_from", Text),
        "ssl_cert_login_san_type" => ("auth", "ssl_cert_login_san_type", Text),
        "ssl_cert_login_san_index" => ("auth", "ssl_cert_login_san_index", Integer),
        "ssl_options.certfile" => ("ssl_options", "certfile", Text),
        "ssl_options.keyfile" => ("ssl_options", "keyfile", Text),
        "ssl_options.cacertfile" => ("ssl_options", "cacertfile", Text),
        "ssl_options.verify" => ("ssl_options", "verify", Text),
        "ssl_options.fail_if_no_peer_cert" => ("ssl_options", "fail_if_no_peer_cert", Bool),
        "ssl_handshake_timeout" => ("limits", "ssl_handshake_timeout_ms", Integer),
        "load_definitions" | "definitions.local.path" => ("definitions", "load_definitions", Text),
        "definitions.import_backend" => ("definitions", "import_backend", Text),
        "definitions.skip_if_unchanged" => ("definitions", "skip_if_unchanged", Bool),
        "deprecated_features.permit.global_qos" => ("deprecated_features", "global_qos", Bool),
        "deprecated_features.permit.transient_nonexcl_queues" => {
            ("deprecated_features", "transient_nonexcl_queues", Bool)
        }
        "default_user" => ("auth", "default_user", Text),
        "default_pass" => ("auth", "default_pass", Text),
        "default_permissions.configure" => ("auth", "default_permissions.configure", Text),
        "default_permissions.write" => ("auth", "default_permissions.write", Text),
        "default_permissions.read" => ("auth", "default_permissions.read", Text),
        _ => return None,
    })
}

/// Keys Warren does not implement (yet): refused with this reason rather than silently dropped.
fn refusal(key: &str) -> Option<&'static str> {
    let prefixed = |p: &str| key == p.trim_end_matches('.') || key.starts_with(p);
    if prefixed("definitions.https.") || prefixed("definitions.tls.") {
        return Some("definitions are imported from a local file only");
    }
    if prefixed("cluster_formation.") || key == "cluster_partition_handling" {
        return Some("clustering is not supported yet");
    }
    if prefixed("default_user_tags.") {
        return Some("the default user always has the administrator tag");
    }
    if prefixed("auth_backends.") {
        return Some("Warren checks its own users only (RabbitMQ's internal backend)");
    }
    None
}

/// Translates `text`, the contents of the rabbitmq.conf at `origin`.
pub(super) fn translate(text: &str, origin: &Path) -> Result<ConfTranslation, ConfigError> {
    let mut tables: BTreeMap<&'static str, Vec<(String, usize)>> = BTreeMap::new();
    let mut ignored = Vec::new();
    let mut tcp_listeners: Vec<(String, usize)> = Vec::new();
    // Lists RabbitMQ writes one numbered or named key per entry: (TOML table, TOML key) → entries in file order.
    let mut lists: BTreeMap<(&'static str, &'static str), Vec<(String, usize)>> = BTreeMap::new();
    // None: RabbitMQ's default (guest only).
    let mut loopback_users: Option<Vec<String>> = None;
    let mut loopback_line = 0;
    let unsupported = |line: usize, key: &str, reason: &str| ConfigError::InvalidValue {
        path: origin.to_owned(),
        line,
        key: key.to_owned(),
        reason: format!("not supported by Warren: {reason}"),
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let Some((key, value)) = split_setting(raw).map_err(|message| ConfigError::ConfSyntax {
            path: origin.to_owned(),
            line,
            message,
        })?
        else {
            continue;
        };
        if let Some(reason) = refusal(key) {
            return Err(unsupported(line, key, reason));
        }
        if IGNORED_PREFIXES.iter().any(|p| key.starts_with(p)) && target(key).is_none() {
            ignored.push(format!("{}:{line}: {key}", origin.display()));
            continue;
        }
        let list = if let Some(name) = key.strip_prefix("listeners.ssl.") {
            (!name.is_empty()).then_some(("listeners", "ssl", listener_address(value)))
        } else if key.starts_with("ssl_options.versions.") {
            Some(("ssl_options", "versions", value.to_owned()))
        } else if key.starts_with("auth_mechanisms.") {
            Some(("auth", "auth_mechanisms", value.to_owned()))
        } else {
            None
        };
        if let Some((table, toml_key, entry)) = list {
            lists
                .entry((table, toml_key))
                .or_default()
                .push((entry, line));
            continue;
        }
        if let Some(name) = key.strip_prefix("listeners.tcp.") {
            if name.is_empty() {
                return Err(unsupported(line, key, "a listener needs a name"));
            }
            tcp_listeners.push((listener_address(value), line));
            continue;
        }
        match key {
            "listeners.tcp" => {
                return Err(unsupported(
                    line,
                    key,
                    "Warren always serves one plain listener",
                ))
            }
            "loopback_users" if value == "none" => {
                loopback_users = Some(Vec::new());
                loopback_line = line;
                continue;
            }
            _ => {}
        }
        if let Some(user) = key.strip_prefix("loopback_users.") {
            let users = loopback_users.get_or_insert_with(|| vec!["guest".to_owned()]);
            users.retain(|u| u != user);
            match value {
                "true" => users.push(user.to_owned()),
                "false" => {}
                _ => {
                    return Err(ConfigError::InvalidValue {
                        path: origin.to_owned(),
                        line,
                        key: key.to_owned(),
                        reason: format!("`{value}` is not true or false"),
                    })
                }
            }
            loopback_line = line;
            continue;
        }
        let Some((table, toml_key, kind)) = target(key) else {
            return Err(ConfigError::InvalidValue {
                path: origin.to_owned(),
                line,
                key: key.to_owned(),
                reason: "unknown rabbitmq.conf key, or one Warren does not support".to_owned(),
            });
        };
        let toml_value = toml_value(value, kind).map_err(|reason| ConfigError::InvalidValue {
            path: origin.to_owned(),
            line,
            key: key.to_owned(),
            reason,
        })?;
        tables
            .entry(table)
            .or_default()
            .push((format!("{toml_key} = {toml_value}"), line));
    }
    match tcp_listeners.as_slice() {
        [] => {}
        [(first, line), more @ ..] => {
            // The first is Warren's `listen`; the others are further plain listeners.
            tables
                .entry("server")
                .or_default()
                .push((format!("listen = {}", quoted(first)), *line));
            for (address, line) in more {
                lists
                    .entry(("listeners", "tcp"))
                    .or_default()
                    .push((address.clone(), *line));
            }
        }
    }
    for ((table, toml_key), entries) in lists {
        let items: Vec<String> = entries.iter().map(|(e, _)| quoted(e)).collect();
        let line = entries.first().map_or(0, |(_, l)| *l);
        tables
            .entry(table)
            .or_default()
            .push((format!("{toml_key} = [{}]", items.join(", ")), line));
    }
    if let Some(users) = loopback_users {
        let list: Vec<String> = users.iter().map(|u| quoted(u)).collect();
        tables.entry("auth").or_default().push((
            format!("loopback_users = [{}]", list.join(", ")),
            loopback_line,
        ));
    }
    let mut doc = Document::default();
    for (table, entries) in &tables {
        doc.push(&format!("[{table}]"), 0);
        for (entry, line) in entries {
            doc.push(entry, *line);
        }
    }
    Ok(ConfTranslation {
        toml: doc.text,
        lines: doc.lines,
        ignored,
    })
}

/// The TOML text being built and the rabbitmq.conf line of each of its lines.
#[derive(Default)]
struct Document {
    text: String,
    lines: Vec<usize>,
}

impl Document {
    fn push(&mut self, toml_line: &str, conf_line: usize) {
        self.text.push_str(toml_line);
        self.text.push('\n');
        self.lines.push(conf_line);
    }
}

/// `key = value` of one line, None for a blank or comment line. As RabbitMQ's parser: `#` starts a comment anywhere
/// (a value cannot contain one), spaces around the key and the value do not count.
fn split_setting(raw: &str) -> Result<Option<(&str, &str)>, String> {
    let line = raw.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let Some((key, value)) = line.split_once('=') else {
        return Err(format!("expected `key = value`, found `{line}`"));
    };
    let (key, value) = (key.trim(), value.trim());
    let valid_key = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-$@".contains(c))
        });
    if !valid_key {
        return Err(format!("`{key}` is not a valid key"));
    }
    if value.is_empty() {
        return Err(format!("`{key}` has no value"));
    }
    Ok(Some((key, value)))
}

/// A listener value as Warren's `listen`: a bare port listens on every IPv4 interface (RabbitMQ also listens on
/// IPv6 then; Warren's one listener cannot), `host:port` and `[v6]:port` as given, and RabbitMQ's unbracketed IPv6
/// form (`:::5672`, `::1:5672`: the last colon separates the port) bracketed.
fn listener_address(value: &str) -> String {
    if let Ok(port) = value.parse::<u16>() {
        return format!("0.0.0.0:{port}");
    }
    match value.rsplit_once(':') {
        Some((host, port)) if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{port}")
        }
        _ => value.to_owned(),
    }
}

/// `value` written as TOML for `kind`.
fn toml_value(value: &str, kind: Kind) -> Result<String, String> {
    match kind {
        Kind::Integer => value
            .parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| format!("`{value}` is not a whole number")),
        Kind::Limit if value == "infinity" => Ok("0".to_owned()),
        Kind::Limit => match value.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n.to_string()),
            _ => Err(format!("`{value}` is not a positive whole number or `infinity`")),
        },
        Kind::Float => match value.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(format!("{f:?}")),
            _ => Err(format!("`{value}` is not a number")),
        },
        Kind::Text => Ok(quoted(value)),
        Kind::Bool => match value {
            "true" | "false" => Ok(value.to_owned()),
            _ => Err(format!("`{value}` is not true or false")),
        },
        Kind::Amount => Ok(match value.parse::<u64>() {
            Ok(n) => n.to_string(),
            Err(_) => quoted(value),
        }),
        Kind::LogLevel => match value {
            "debug" | "info" | "error" => Ok(quoted(value)),
            "warning" => Ok(quoted("warn")),
            "critical" | "alert" | "emergency" => Ok(quoted("error")),
            "notice" => Ok(quoted("info")),
            "none" => Ok(quoted("off")),
            _ => Err(format!(
                "`{value}` is not one of debug, info, notice, warning, error, critical, alert, emergency, none"
            )),
        },
    }
}

/// `text` as a TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
