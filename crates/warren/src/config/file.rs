//! The config file's layout as serde structs, one per `[section]`, and the validation that turns each into the
//! public `Config`. Every key is optional (absent means the default), and unknown keys are refused.
//!
//! Adding a section: write its struct with `deny_unknown_fields` and an `apply_to`, add a field to `FileConfig`, and
//! call it from `FileConfig::apply_to`. Values that need validation are read as `toml::Spanned` so the error can
//! name their line.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod tls;

use super::source::TomlSource;
use super::{
    Compatibility, Config, ConfigError, DefaultPermissions, DefaultUser, DiskFreeLimit, LogConfig,
    MemoryWatermark, SyncPolicy, UserConfig, FRAME_MIN_SIZE, MAX_MESSAGE_SIZE_CAP,
};

/// The whole file: one field per section.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a TOML document")]
pub(super) struct FileConfig {
    server: ServerSection,
    limits: LimitsSection,
    auth: AuthSection,
    log: LogSection,
    storage: StorageSection,
    flow: FlowSection,
    alarms: AlarmsSection,
    listeners: tls::ListenersSection,
    ssl_options: tls::SslOptionsSection,
    policies: Vec<PolicySection>,
    operator_policies: Vec<PolicySection>,
    definitions: DefinitionsSection,
    deprecated_features: DeprecatedFeaturesSection,
    event_exchange: EventExchangeSection,
    management: ManagementSection,
    prometheus: PrometheusSection,
    cluster: Option<super::cluster::ClusterSection>,
    shovels: Vec<Spanned<toml::Table>>,
}

impl FileConfig {
    /// Validates every value present in the file and writes it over `config` (which holds the defaults).
    pub(super) fn apply_to(
        self,
        config: &mut Config,
        source: &TomlSource<'_>,
    ) -> Result<(), ConfigError> {
        self.server.apply_to(config, source)?;
        self.limits.apply_to(config, source)?;
        self.auth.apply_to(config, source)?;
        self.log.apply_to(config, source)?;
        self.storage.apply_to(config, source)?;
        self.flow.apply_to(config);
        self.alarms.apply_to(config, source)?;
        self.listeners.apply_to(config, source)?;
        self.ssl_options.apply_to(config, source)?;
        self.definitions.apply_to(config, source)?;
        self.deprecated_features.apply_to(config);
        self.event_exchange.apply_to(config, source)?;
        self.management.apply_to(config, source)?;
        self.prometheus.apply_to(config, source)?;
        if let Some(cluster) = self.cluster {
            cluster.apply_to(config, source)?;
        }
        for shovel in self.shovels {
            config.shovels.push(static_shovel(shovel, source)?);
        }
        for (operator, list) in [(false, self.policies), (true, self.operator_policies)] {
            for policy in list {
                config.policies.push(policy.into_config(operator, source)?);
            }
        }
        Ok(())
    }
}

/// A `[[shovels]]` table: `name`, and RabbitMQ's shovel definition keys checked as a dynamic shovel's are.
fn static_shovel(
    table: Spanned<toml::Table>,
    source: &TomlSource<'_>,
) -> Result<super::StaticShovel, ConfigError> {
    let span = table.span();
    let mut table = table.into_inner();
    let name = match table.remove("name") {
        Some(toml::Value::String(name)) if !name.is_empty() => name,
        _ => {
            return Err(source.invalid(
                span,
                "shovels",
                "each [[shovels]] table needs a non-empty name",
            ))
        }
    };
    let value = serde_json::to_value(&table).map_err(|e| {
        source.invalid(
            span.clone(),
            "shovels",
            format!("cannot be read as JSON: {e}"),
        )
    })?;
    let definition = crate::shovel::ShovelDefinition::parse(&value)
        .map_err(|e| source.invalid(span, "shovels", format!("shovel '{name}': {e}")))?;
    Ok(super::StaticShovel { name, definition })
}

/// A `[[policies]]` or `[[operator_policies]]` table: RabbitMQ's policy fields, the definition an inline table of
/// its keys (`definition = { message-ttl = 60000, dead-letter-exchange = "dlx" }`). Checked when the broker
/// starts, with RabbitMQ's refusals.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[policies]] table")]
struct PolicySection {
    vhost: Option<String>,
    name: Spanned<String>,
    pattern: String,
    #[serde(rename = "apply-to")]
    apply_to: Option<String>,
    priority: Option<i64>,
    definition: toml::Table,
}

impl PolicySection {
    fn into_config(
        self,
        operator: bool,
        source: &TomlSource<'_>,
    ) -> Result<super::PolicyConfig, ConfigError> {
        let span = self.name.span();
        let name = non_empty(self.name, "name", source)?;
        let definition = serde_json::to_value(&self.definition).map_err(|e| {
            source.invalid(span, "definition", format!("cannot be read as JSON: {e}"))
        })?;
        Ok(super::PolicyConfig {
            operator,
            vhost: self.vhost.unwrap_or_else(|| "/".to_owned()),
            name,
            pattern: self.pattern,
            apply_to: self.apply_to,
            priority: self.priority,
            definition,
        })
    }
}

/// `[server]`: where to listen, where to store, how to introduce ourselves.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [server] table")]
struct ServerSection {
    listen: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    product: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    platform: Option<Spanned<String>>,
    information: Option<Spanned<String>>,
    cluster_name: Option<Spanned<String>>,
    trace_vhosts: Option<Vec<String>>,
    compatibility: Option<Spanned<String>>,
}

impl ServerSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        // First: the profile sets defaults that the other keys and sections (applied after this) override.
        if let Some(profile) = self.compatibility {
            let compatibility: Compatibility = profile
                .get_ref()
                .parse()
                .map_err(|reason| source.invalid(profile.span(), "compatibility", reason))?;
            config.compatibility = compatibility;
            config.limits.max_message_size = compatibility.max_message_size();
            config.deprecated_features = compatibility.deprecated_features();
        }
        if let Some(listen) = self.listen {
            config.listen = listen.get_ref().parse().map_err(|_| {
                let reason = format!(
                    "`{}` is not an IP address and port such as 127.0.0.1:5672 or [::]:5672",
                    listen.get_ref()
                );
                source.invalid(listen.span(), "listen", reason)
            })?;
        }
        if let Some(data_dir) = self.data_dir {
            config.data_dir = PathBuf::from(non_empty(data_dir, "data_dir", source)?);
        }
        if let Some(vhosts) = self.trace_vhosts {
            config.trace_vhosts = vhosts;
        }
        if let Some(product) = self.product {
            config.server.product = non_empty(product, "product", source)?;
        }
        if let Some(version) = self.version {
            config.server.version = non_empty(version, "version", source)?;
        }
        if let Some(information) = self.information {
            config.server.information = non_empty(information, "information", source)?;
        }
        if let Some(platform) = self.platform {
            config.server.platform = non_empty(platform, "platform", source)?;
        }
        if let Some(cluster_name) = self.cluster_name {
            config.server.cluster_name = non_empty(cluster_name, "cluster_name", source)?;
        }
        Ok(())
    }
}

/// `[deprecated_features]`: RabbitMQ's `deprecated_features.permit.NAME`, true to permit, false to deny; absent:
/// the compatibility profile's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [deprecated_features] table")]
struct DeprecatedFeaturesSection {
    global_qos: Option<bool>,
    transient_nonexcl_queues: Option<bool>,
}

impl DeprecatedFeaturesSection {
    fn apply_to(self, config: &mut Config) {
        let features = &mut config.deprecated_features;
        if let Some(permit) = self.global_qos {
            features.global_qos = permit;
        }
        if let Some(permit) = self.transient_nonexcl_queues {
            features.transient_nonexcl_queues = permit;
        }
    }
}

/// `[limits]`: what is negotiated in `connection.tune` and enforced per connection and per node.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [limits] table")]
struct LimitsSection {
    channel_max: Option<Spanned<u16>>,
    frame_max: Option<Spanned<u32>>,
    heartbeat: Option<u16>,
    max_message_size: Option<Spanned<u32>>,
    handshake_timeout_ms: Option<Spanned<u64>>,
    ssl_handshake_timeout_ms: Option<Spanned<u64>>,
    max_connections: Option<usize>,
    max_channels_per_node: Option<usize>,
    consumer_timeout: Option<Spanned<u64>>,
    send_timeout: Option<u64>,
}

impl LimitsSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        let limits = &mut config.limits;
        if let Some(channel_max) = self.channel_max {
            limits.channel_max = at_least(channel_max, 1, "channel_max", source)?;
        }
        if let Some(frame_max) = self.frame_max {
            limits.frame_max = at_least(frame_max, FRAME_MIN_SIZE, "frame_max", source)?;
        }
        if let Some(heartbeat) = self.heartbeat {
            limits.heartbeat = heartbeat;
        }
        if let Some(size) = self.max_message_size {
            limits.max_message_size =
                between(size, 1, MAX_MESSAGE_SIZE_CAP, "max_message_size", source)?;
        }
        if let Some(timeout) = self.handshake_timeout_ms {
            // 0 would time out every client before it could say a word.
            let millis = at_least(timeout, 1, "handshake_timeout_ms", source)?;
            limits.handshake_timeout = Duration::from_millis(millis);
        }
        if let Some(timeout) = self.ssl_handshake_timeout_ms {
            let millis = at_least(timeout, 1, "ssl_handshake_timeout_ms", source)?;
            config.ssl.handshake_timeout = Duration::from_millis(millis);
        }
        if let Some(millis) = self.send_timeout {
            limits.send_timeout = (millis > 0).then(|| Duration::from_millis(millis));
        }
        if let Some(timeout) = self.consumer_timeout {
            limits.consumer_timeout = match timeout.into_inner() {
                0 => None,
                millis => Some(Duration::from_millis(millis)),
            };
        }
        if let Some(max_connections) = self.max_connections {
            limits.max_connections = max_connections;
        }
        if let Some(max_channels) = self.max_channels_per_node {
            limits.max_channels_per_node = max_channels;
        }
        Ok(())
    }
}

/// `[auth]` and its `[[auth.users]]` entries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [auth] table")]
struct AuthSection {
    default_vhost: Option<Spanned<String>>,
    default_user: Option<Spanned<String>>,
    default_pass: Option<String>,
    default_permissions: Option<PermissionsEntry>,
    loopback_users: Option<Vec<String>>,
    users: Option<Vec<UserEntry>>,
    auth_mechanisms: Option<Vec<Spanned<String>>>,
    ssl_cert_login_from: Option<Spanned<String>>,
    ssl_cert_login_san_type: Option<Spanned<String>>,
    ssl_cert_login_san_index: Option<usize>,
}

/// One `[[auth.users]]` entry. `name` and `password` are required; `vhosts` defaults to `[auth] default_vhost`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[auth.users]] table")]
struct UserEntry {
    name: Spanned<String>,
    password: String,
    vhosts: Option<Vec<Spanned<String>>>,
}

/// `[auth] default_permissions`: RabbitMQ's `default_permissions.configure`, `.write`, `.read`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of configure, write and read"
)]
struct PermissionsEntry {
    configure: Option<String>,
    write: Option<String>,
    read: Option<String>,
}

impl AuthSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        tls::SaslKeys {
            auth_mechanisms: self.auth_mechanisms,
            ssl_cert_login_from: self.ssl_cert_login_from,
            ssl_cert_login_san_type: self.ssl_cert_login_san_type,
            ssl_cert_login_san_index: self.ssl_cert_login_san_index,
        }
        .apply_to(config, source)?;
        let auth = &mut config.auth;
        if let Some(default_vhost) = self.default_vhost {
            auth.default_vhost = non_empty(default_vhost, "default_vhost", source)?;
        }
        if let Some(loopback_users) = self.loopback_users {
            auth.loopback_users = loopback_users;
        }
        if let Some(p) = self.default_permissions {
            let defaults = DefaultPermissions::default();
            auth.default_permissions = DefaultPermissions {
                configure: p.configure.unwrap_or(defaults.configure),
                write: p.write.unwrap_or(defaults.write),
                read: p.read.unwrap_or(defaults.read),
            };
        }
        // Listing users without naming a default user means no guest, as before default_user existed.
        let lists_users = self.users.is_some();
        match (self.default_user, self.default_pass) {
            (Some(name), pass) => {
                auth.default_user = Some(DefaultUser {
                    name: non_empty(name, "default_user", source)?,
                    password: pass.unwrap_or_else(|| "guest".to_owned()),
                });
            }
            (None, Some(pass)) => {
                auth.default_user = Some(DefaultUser {
                    name: "guest".to_owned(),
                    password: pass,
                });
            }
            (None, None) if lists_users => auth.default_user = None,
            (None, None) => {}
        }
        // Listing users replaces the default guest user rather than adding to it.
        if let Some(entries) = self.users {
            let mut users: Vec<UserConfig> = Vec::with_capacity(entries.len());
            for entry in entries {
                let name_span = entry.name.span();
                let name = non_empty(entry.name, "name", source)?;
                if users.iter().any(|user| user.name == name) {
                    return Err(source.invalid(
                        name_span,
                        "name",
                        format!("user `{name}` is defined twice"),
                    ));
                }
                let vhosts = match entry.vhosts {
                    Some(vhosts) => vhosts
                        .into_iter()
                        .map(|vhost| non_empty(vhost, "vhosts", source))
                        .collect::<Result<_, _>>()?,
                    None => vec![auth.default_vhost.clone()],
                };
                users.push(UserConfig {
                    name,
                    password: entry.password,
                    vhosts,
                });
            }
            auth.users = users;
        }
        Ok(())
    }
}

/// `[management]`: the management HTTP API: on or off, and its address (`listen`, or rabbitmq.conf's
/// `management.tcp.ip` and `management.tcp.port`, translated to `ip` and `port`, which override its parts).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [management] table")]
struct ManagementSection {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
    ip: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    collect_statistics_interval: Option<Spanned<i64>>,
}

impl ManagementSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        let management = &mut config.management;
        if let Some(enabled) = self.enabled {
            management.enabled = enabled;
        }
        if let Some(listen) = self.listen {
            management.listen = listen.get_ref().parse().map_err(|_| {
                source.invalid(
                    listen.span(),
                    "listen",
                    "an address such as 127.0.0.1:15672".to_owned(),
                )
            })?;
        }
        if let Some(ip) = self.ip {
            let parsed: std::net::IpAddr = ip.get_ref().parse().map_err(|_| {
                source.invalid(
                    ip.span(),
                    "ip",
                    "an IP address such as 127.0.0.1".to_owned(),
                )
            })?;
            management.listen.set_ip(parsed);
        }
        if let Some(port) = self.port {
            let parsed = u16::try_from(*port.get_ref()).map_err(|_| {
                source.invalid(port.span(), "port", "a port number (0 to 65535)".to_owned())
            })?;
            management.listen.set_port(parsed);
        }
        if let Some(interval) = self.collect_statistics_interval {
            let millis = u64::try_from(*interval.get_ref())
                .ok()
                .filter(|ms| (100..=3_600_000).contains(ms))
                .ok_or_else(|| {
                    source.invalid(
                        interval.span(),
                        "collect_statistics_interval",
                        "milliseconds from 100 to 3600000".to_owned(),
                    )
                })?;
            management.collect_statistics_interval = Duration::from_millis(millis);
        }
        Ok(())
    }
}

/// `[event_exchange]`: RabbitMQ's event exchange plugin, on or off, and its vhost.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [event_exchange] table")]
struct EventExchangeSection {
    enabled: Option<bool>,
    vhost: Option<Spanned<String>>,
}

impl EventExchangeSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        let named = self.vhost.is_some();
        if let Some(vhost) = self.vhost {
            config.event_exchange.vhost = Some(non_empty(vhost, "vhost", source)?);
        }
        // Naming the vhost turns it on (rabbitmq.conf's `event_exchange.vhost` exists only with the plugin).
        config.event_exchange.enabled = self.enabled.unwrap_or(named);
        Ok(())
    }
}

/// `[prometheus]`: the Prometheus endpoint. `ip` and `port` (rabbitmq.conf's `prometheus.tcp.ip` and
/// `prometheus.tcp.port`) replace the parts of `listen`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [prometheus] table")]
struct PrometheusSection {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
    ip: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    return_per_object_metrics: Option<bool>,
}

impl PrometheusSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        let prometheus = &mut config.prometheus;
        if let Some(enabled) = self.enabled {
            prometheus.enabled = enabled;
        }
        if let Some(listen) = self.listen {
            prometheus.listen = listen.get_ref().parse().map_err(|_| {
                source.invalid(
                    listen.span(),
                    "listen",
                    "must be an address such as \"127.0.0.1:15692\"",
                )
            })?;
        }
        if let Some(ip) = self.ip {
            let parsed: std::net::IpAddr = ip.get_ref().parse().map_err(|_| {
                source.invalid(ip.span(), "ip", "must be an IP address such as \"0.0.0.0\"")
            })?;
            prometheus.listen.set_ip(parsed);
        }
        if let Some(port) = self.port {
            let parsed = u16::try_from(*port.get_ref()).map_err(|_| {
                source.invalid(port.span(), "port", "must be a port number (0 to 65535)")
            })?;
            prometheus.listen.set_port(parsed);
        }
        if let Some(per_object) = self.return_per_object_metrics {
            prometheus.return_per_object_metrics = per_object;
        }
        Ok(())
    }
}

/// `[definitions]`: a definitions file imported at start, with RabbitMQ's key names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [definitions] table")]
struct DefinitionsSection {
    load_definitions: Option<Spanned<String>>,
    skip_if_unchanged: Option<bool>,
    /// rabbitmq.conf's `definitions.import_backend`: only the local file system.
    import_backend: Option<Spanned<String>>,
}

impl DefinitionsSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        if let Some(backend) = self.import_backend {
            let span = backend.span();
            if !matches!(
                backend.get_ref().as_str(),
                "local_filesystem" | "local" | "rabbit_definitions_import_local_filesystem"
            ) {
                return Err(source.invalid(
                    span,
                    "import_backend",
                    "Warren imports definitions from a local file only (local_filesystem)"
                        .to_owned(),
                ));
            }
        }
        if let Some(file) = self.load_definitions {
            config.definitions.load_definitions =
                Some(PathBuf::from(non_empty(file, "load_definitions", source)?));
        }
        if let Some(skip) = self.skip_if_unchanged {
            config.definitions.skip_if_unchanged = skip;
        }
        Ok(())
    }
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [log] table")]
struct LogSection {
    level: Option<Spanned<String>>,
}

impl LogSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        if let Some(level) = self.level {
            let span = level.span();
            let level = non_empty(level, "level", source)?;
            LogConfig::check_level(&level)
                .map_err(|reason| source.invalid(span, "level", reason))?;
            config.log.level = level;
        }
        Ok(())
    }
}

/// `[storage]`: the message store.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [storage] table")]
struct StorageSection {
    sync: Option<Spanned<String>>,
    wal_file_size: Option<Spanned<u64>>,
    segment_size: Option<Spanned<u64>>,
    queue_memory_budget: Option<Spanned<u64>>,
    total_queue_memory_budget: Option<Spanned<u64>>,
}

impl StorageSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        let storage = &mut config.storage;
        if let Some(sync) = self.sync {
            storage.sync = match sync.get_ref().as_str() {
                "always" => SyncPolicy::Always,
                "never" => SyncPolicy::Never,
                other => {
                    let reason = format!("`{other}` is not one of \"always\", \"never\"");
                    return Err(source.invalid(sync.span(), "sync", reason));
                }
            };
        }
        // Files smaller than a megabyte would roll over on nearly every batch.
        if let Some(size) = self.wal_file_size {
            storage.wal_file_size = at_least(size, 1 << 20, "wal_file_size", source)?;
        }
        if let Some(size) = self.segment_size {
            storage.segment_size = at_least(size, 1 << 20, "segment_size", source)?;
        }
        if let Some(budget) = self.queue_memory_budget {
            storage.queue_memory_budget = budget.into_inner();
        }
        if let Some(budget) = self.total_queue_memory_budget {
            storage.total_queue_memory_budget = budget.into_inner();
        }
        Ok(())
    }
}

/// `[flow]`: when a queue holds its publishers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [flow] table")]
struct FlowSection {
    queue_high_watermark_messages: Option<Spanned<u64>>,
    queue_high_watermark_bytes: Option<Spanned<u64>>,
}

impl FlowSection {
    fn apply_to(self, config: &mut Config) {
        let flow = &mut config.flow;
        if let Some(messages) = self.queue_high_watermark_messages {
            flow.queue_high_watermark_messages = messages.into_inner();
        }
        if let Some(bytes) = self.queue_high_watermark_bytes {
            flow.queue_high_watermark_bytes = bytes.into_inner();
        }
    }
}

/// `[alarms]`: RabbitMQ's resource alarm keys, dotted as in rabbitmq.conf (`vm_memory_high_watermark.relative =
/// 0.6`, `disk_free_limit.absolute = "2GB"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [alarms] table")]
struct AlarmsSection {
    vm_memory_high_watermark: Option<Spanned<LimitKeys>>,
    disk_free_limit: Option<Spanned<LimitKeys>>,
}

/// `relative` or `absolute`, one of them.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with `relative` or `absolute`"
)]
struct LimitKeys {
    relative: Option<Spanned<f64>>,
    absolute: Option<Spanned<Amount>>,
}

/// An amount of information: bytes, or a string with RabbitMQ's units ("50MB", "2GiB").
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a number of bytes or a string such as \"2GB\"")]
enum Amount {
    Bytes(u64),
    Text(String),
}

/// The limit `keys` set for `key`: Ok(None) when the table sets neither.
enum Limit {
    Relative(f64),
    Absolute(u64),
}

impl LimitKeys {
    fn read(
        keys: Spanned<LimitKeys>,
        key: &str,
        source: &TomlSource<'_>,
    ) -> Result<Option<Limit>, ConfigError> {
        let span = keys.span();
        let keys = keys.into_inner();
        match (keys.relative, keys.absolute) {
            (Some(_), Some(_)) => {
                Err(source.invalid(span, key, "set either `relative` or `absolute`, not both"))
            }
            (Some(relative), None) => {
                let value = *relative.get_ref();
                if !value.is_finite() || value < 0.0 {
                    return Err(source.invalid(
                        relative.span(),
                        &format!("{key}.relative"),
                        "must be a fraction of 0 or more",
                    ));
                }
                Ok(Some(Limit::Relative(value)))
            }
            (None, Some(absolute)) => {
                let span = absolute.span();
                let bytes = match absolute.into_inner() {
                    Amount::Bytes(n) => Some(n),
                    Amount::Text(text) => super::parse_bytes(&text),
                };
                let bytes = bytes.ok_or_else(|| {
                    source.invalid(
                        span,
                        &format!("{key}.absolute"),
                        "must be bytes or a number with a unit: kB, MB, GB (powers of 1000) or k, KiB, M, MiB, G, GiB (powers of 1024)",
                    )
                })?;
                Ok(Some(Limit::Absolute(bytes)))
            }
            (None, None) => Ok(None),
        }
    }
}

impl AlarmsSection {
    fn apply_to(self, config: &mut Config, source: &TomlSource<'_>) -> Result<(), ConfigError> {
        let alarms = &mut config.alarms;
        if let Some(keys) = self.vm_memory_high_watermark {
            match LimitKeys::read(keys, "vm_memory_high_watermark", source)? {
                Some(Limit::Relative(f)) => {
                    alarms.memory_high_watermark = MemoryWatermark::Relative(f)
                }
                Some(Limit::Absolute(n)) => {
                    alarms.memory_high_watermark = MemoryWatermark::Absolute(n)
                }
                None => {}
            }
        }
        if let Some(keys) = self.disk_free_limit {
            match LimitKeys::read(keys, "disk_free_limit", source)? {
                Some(Limit::Relative(f)) => alarms.disk_free_limit = DiskFreeLimit::Relative(f),
                Some(Limit::Absolute(n)) => alarms.disk_free_limit = DiskFreeLimit::Absolute(n),
                None => {}
            }
        }
        Ok(())
    }
}

/// The string in `value`, refused if empty.
fn non_empty(
    value: Spanned<String>,
    key: &str,
    source: &TomlSource<'_>,
) -> Result<String, ConfigError> {
    if value.get_ref().is_empty() {
        return Err(source.invalid(value.span(), key, "must not be empty"));
    }
    Ok(value.into_inner())
}

/// The number in `value`, refused below `min`.
fn at_least<T>(
    value: Spanned<T>,
    min: T,
    key: &str,
    source: &TomlSource<'_>,
) -> Result<T, ConfigError>
where
    T: Copy + PartialOrd + std::fmt::Display,
{
    let number = *value.get_ref();
    if number < min {
        return Err(source.invalid(value.span(), key, format!("must be at least {min}")));
    }
    Ok(number)
}

/// The number in `value`, refused outside `min..=max`.
fn between<T>(
    value: Spanned<T>,
    min: T,
    max: T,
    key: &str,
    source: &TomlSource<'_>,
) -> Result<T, ConfigError>
where
    T: Copy + PartialOrd + std::fmt::Display,
{
    let number = *value.get_ref();
    if number < min || number > max {
        return Err(source.invalid(
            value.span(),
            key,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(number)
}
