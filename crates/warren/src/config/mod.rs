//! The broker's configuration: the settings the rest of Warren reads, their defaults, and loading them from a TOML
//! file (`config/warren.toml`) with every key validated and every error pointing at a file, a line and a key.
//!
//! Precedence is command line > file > the defaults below; the command line is applied in `crate::cli`.
//! The defaults are RabbitMQ's, so a client tuned against RabbitMQ sees the same negotiated limits here.
//!
//! Reading a file goes in three steps, each in its own module: `source` parses the TOML and keeps the positions of
//! its keys, `file` mirrors the file's layout as serde structs (one per `[section]`, unknown keys refused) and
//! `file::FileConfig::apply_to` validates each value and writes it over the defaults.

mod cluster;
mod compatibility;
mod error;
mod file;
mod rabbitmq_conf;
mod source;
#[cfg(test)]
mod tests;
mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cluster::{ClusterConfig, ClusterPeer, ClusterTls};
pub use compatibility::{Compatibility, DeprecatedFeatures};
pub use error::{ConfigError, Section};
pub use tls::{
    CertLoginFrom, Listeners, Mechanism, SanType, SaslConfig, SslOptions, TlsVersion, Verify,
};

/// The smallest `frame_max` AMQP 0-9-1 allows (the spec's `frame-min-size`); RabbitMQ refuses anything smaller too.
pub const FRAME_MIN_SIZE: u32 = 4096;

/// The largest `max_message_size` RabbitMQ accepts (512 MiB); Warren keeps the same ceiling.
pub const MAX_MESSAGE_SIZE_CAP: u32 = 536_870_912;

/// Everything the broker is configured with. `Config::default()` is what runs with no file and no flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The AMQP listener address. Default `127.0.0.1:5672` (loopback only, so a fresh broker is not exposed).
    pub listen: SocketAddr,
    /// Where messages and definitions are stored. Default `./data`.
    pub data_dir: PathBuf,
    /// Connection limits negotiated in `connection.tune` and enforced by the server.
    pub limits: Limits,
    /// Users, their virtual hosts, and who may log in only from loopback.
    pub auth: AuthConfig,
    /// How the server introduces itself in `connection.start`.
    pub server: ServerIdentity,
    /// Logging.
    pub log: LogConfig,
    /// The message store: durability and memory.
    pub storage: StorageConfig,
    /// Flow control: when a queue holds its publishers.
    pub flow: FlowConfig,
    /// Resource alarms: the memory high watermark and the free disk limit.
    pub alarms: AlarmsConfig,
    /// Listeners besides `listen`: more plain ones and the TLS ones (`[listeners]`).
    pub listeners: Listeners,
    /// TLS settings shared by every TLS listener (`[ssl_options]`).
    pub ssl: SslOptions,
    /// The SASL mechanisms offered and how EXTERNAL names its user (`[auth]`'s SASL keys).
    pub sasl: SaslConfig,
    /// Policies and operator policies set at start (`[[policies]]`, `[[operator_policies]]`), over any stored
    /// ones of the same name.
    pub policies: Vec<PolicyConfig>,
    /// The vhosts with firehose tracing on at start (`[server] trace_vhosts`, RabbitMQ's `trace_vhosts`);
    /// `Broker::set_tracing` turns it on and off at run time. Default none.
    pub trace_vhosts: Vec<String>,
    /// Definitions imported at start (`[definitions]`, rabbitmq.conf's `load_definitions`).
    pub definitions: DefinitionsConfig,
    /// The RabbitMQ series whose defaults apply (`[server] compatibility`). Default 3.13.
    pub compatibility: Compatibility,
    /// RabbitMQ's deprecated features and whether each is permitted (`[deprecated_features]`); the profile's
    /// unless set.
    pub deprecated_features: DeprecatedFeatures,
    /// The event exchange `amq.rabbitmq.event` (`[event_exchange]`, RabbitMQ's rabbitmq_event_exchange plugin).
    pub event_exchange: EventExchangeConfig,
    /// The management HTTP API (`[management]`, RabbitMQ's management plugin).
    pub management: ManagementConfig,
    /// The Prometheus endpoint (`[prometheus]`, RabbitMQ's rabbitmq_prometheus plugin).
    pub prometheus: PrometheusConfig,
    /// The cluster this node belongs to (`[cluster]`); None: a single node.
    pub cluster: Option<ClusterConfig>,
    /// Static shovels (`[[shovels]]`), started with the broker.
    pub shovels: Vec<StaticShovel>,
    /// The config file these settings were read from; `None` when built from defaults or from a string.
    pub source: Option<PathBuf>,
    /// Keys of a rabbitmq.conf that only tune RabbitMQ's internals, accepted and not applied (`file:line: key`),
    /// for the broker to log at start.
    pub ignored_keys: Vec<String>,
}

/// A RabbitMQ definitions file imported at every start (RabbitMQ's `load_definitions`), before the stored
/// definitions are loaded. The import keeps existing queues and exchanges as they are (and their messages), so
/// importing the same file at every start changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefinitionsConfig {
    /// The file; None (the default) imports nothing.
    pub load_definitions: Option<PathBuf>,
    /// Skip the import when the file is byte for byte the one last imported at start (RabbitMQ's
    /// `definitions.skip_if_unchanged`), so that users or policies changed since are not set back. Default false.
    pub skip_if_unchanged: bool,
}

/// The event exchange (RabbitMQ's rabbitmq_event_exchange plugin): `amq.rabbitmq.event` in one vhost, where the
/// broker publishes an event for each queue, exchange, binding, connection, channel, consumer, login, policy,
/// vhost, user and permission change. Off by default, as the plugin is; then the exchange does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventExchangeConfig {
    /// Declare the exchange and publish events to it. Default false; setting `vhost` turns it on unless
    /// `enabled = false` is written (rabbitmq.conf's `event_exchange.vhost` exists only with the plugin on).
    pub enabled: bool,
    /// The vhost of the exchange (the plugin's `event_exchange.vhost`); None: `[auth] default_vhost`.
    pub vhost: Option<String>,
}

/// The management HTTP API (RabbitMQ's management plugin, always on there once enabled): where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementConfig {
    /// Serve the API. Default true.
    pub enabled: bool,
    /// Where it listens (rabbitmq.conf's `management.tcp.ip` and `management.tcp.port`). Default 127.0.0.1:15672:
    /// loopback only, like Warren's AMQP listener, unlike RabbitMQ's all-interfaces default.
    pub listen: SocketAddr,
    /// How often message rates are sampled (rabbitmq.conf's `collect_statistics_interval`, in milliseconds).
    /// Default 5 s, as RabbitMQ's; a rate is the change between the last two samples.
    pub collect_statistics_interval: Duration,
}

impl Default for ManagementConfig {
    fn default() -> ManagementConfig {
        ManagementConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 15672)),
            collect_statistics_interval: Duration::from_secs(5),
        }
    }
}

/// The Prometheus endpoint (RabbitMQ's rabbitmq_prometheus plugin): `/metrics`, `/metrics/per-object` and
/// `/metrics/detailed` over plain HTTP. On by default, on loopback only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// Serve the endpoint. Default true.
    pub enabled: bool,
    /// Where (`prometheus.tcp.ip` and `prometheus.tcp.port`). Default `127.0.0.1:15692`, RabbitMQ's port.
    pub listen: SocketAddr,
    /// `/metrics` answers with a series per queue, as `/metrics/per-object` does
    /// (`prometheus.return_per_object_metrics`). Default false.
    pub return_per_object_metrics: bool,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 15692)),
            return_per_object_metrics: false,
        }
    }
}

impl Config {
    /// The vhost holding `amq.rabbitmq.event` when the event exchange is on; None when it is off.
    pub fn event_exchange_vhost(&self) -> Option<&str> {
        let events = &self.event_exchange;
        events
            .enabled
            .then(|| events.vhost.as_deref().unwrap_or(&self.auth.default_vhost))
    }
}

/// When the resource alarms go off (RabbitMQ's `vm_memory_high_watermark` and `disk_free_limit`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmsConfig {
    /// Memory use at which publishers are blocked. Default 0.6 of the machine's (or cgroup's) memory.
    pub memory_high_watermark: MemoryWatermark,
    /// Free disk space under the data directory below which publishers are blocked. Default 50 MB.
    pub disk_free_limit: DiskFreeLimit,
}

impl Eq for AlarmsConfig {}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            memory_high_watermark: MemoryWatermark::Relative(0.6),
            disk_free_limit: DiskFreeLimit::Absolute(50_000_000),
        }
    }
}

/// The memory high watermark.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryWatermark {
    /// A fraction of the memory available (`vm_memory_high_watermark.relative`).
    Relative(f64),
    /// Bytes (`vm_memory_high_watermark.absolute`).
    Absolute(u64),
}

/// The free disk limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DiskFreeLimit {
    /// Bytes (`disk_free_limit.absolute`).
    Absolute(u64),
    /// A multiple of the memory available (`disk_free_limit.relative`).
    Relative(f64),
}

/// Reads an amount of information as RabbitMQ's config does: a number of bytes, or a number with a unit: `kB`,
/// `MB`, `GB`, `TB` are powers of 1000; `k`, `kiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB` (any case of k) are powers
/// of 1024. None if it is neither.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "k" | "K" | "kiB" | "KiB" => 1024,
        "M" | "MiB" => 1024_u64.pow(2),
        "G" | "GiB" => 1024_u64.pow(3),
        "T" | "TiB" => 1024_u64.pow(4),
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A static shovel of the config file: a `[[shovels]]` table with `name` and the keys of RabbitMQ's shovel
/// definition (`src-uri`, `src-queue`, `dest-uri`, ...), checked when the file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticShovel {
    /// Its name.
    pub name: String,
    /// Its definition.
    pub definition: crate::shovel::ShovelDefinition,
}

/// A policy of the config file: RabbitMQ's policy fields (`rabbitmqctl set_policy`, the management API's JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// An operator policy (`[[operator_policies]]`) rather than a policy.
    pub operator: bool,
    /// Its vhost. Default `/`.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// The regular expression searched in queue and exchange names.
    pub pattern: String,
    /// `all` (the default), `queues`, `classic_queues`, `quorum_queues`, `streams` or `exchanges`.
    pub apply_to: Option<String>,
    /// The higher applies when several match. Default 0.
    pub priority: Option<i64>,
    /// The settings by RabbitMQ's keys (`message-ttl`, `dead-letter-exchange`, ...), checked when the broker starts.
    pub definition: serde_json::Value,
}

/// Per-connection and per-node limits. Defaults are RabbitMQ 3.13's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How many channels a connection may have open at once, offered in connection.tune (as RabbitMQ, any channel
    /// number may be used; a channel the server is closing counts until its close-ok). Default 2047.
    pub channel_max: u16,
    /// The largest frame, in bytes, header and end octet included. Default 131072; at least `FRAME_MIN_SIZE`.
    pub frame_max: u32,
    /// The heartbeat interval proposed to clients, in seconds; 0 disables heartbeats. Default 60.
    pub heartbeat: u16,
    /// The largest message body a client may publish, in bytes. Default 128 MiB; at most `MAX_MESSAGE_SIZE_CAP`.
    pub max_message_size: u32,
    /// How long a client has from TCP accept to `connection.open`. Default 10 s.
    pub handshake_timeout: Duration,
    /// The most client connections open at once (RabbitMQ's `connection_max`): one more is refused at
    /// connection.open with 530; 0 means unlimited. Default 0.
    pub max_connections: usize,
    /// The most channels open at once across all connections (RabbitMQ's `channel_max_per_node`): one more is
    /// refused at channel.open with 530; 0 means unlimited. Default 0.
    pub max_channels_per_node: usize,
    /// How long a delivery may stay unacknowledged before its channel is closed with 406 (RabbitMQ's
    /// `consumer_timeout`); `None` never. Default 30 minutes, as RabbitMQ.
    pub consumer_timeout: Option<Duration>,
    /// How long a write to a client socket may make no progress before the connection is closed (RabbitMQ's
    /// `tcp_listen_options.send_timeout`): a consumer that stops reading its socket is let go. `None` never.
    /// Default 30 s.
    pub send_timeout: Option<Duration>,
}

/// Users and virtual hosts as the config file gives them. They seed the definitions store at the first start
/// (an empty store), as RabbitMQ's `default_user` and definitions do; later starts use what is stored, changed at
/// run time through the broker's admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The virtual host created at the first start. Default `/`.
    pub default_vhost: String,
    /// The user created at the first start with `default_permissions` on `default_vhost` and the
    /// `administrator` tag (RabbitMQ's `default_user`/`default_pass`). Default guest/guest; None when the file
    /// lists `[[auth.users]]` without setting `default_user`. `RABBITMQ_DEFAULT_USER`/`RABBITMQ_DEFAULT_PASS`
    /// override it.
    pub default_user: Option<DefaultUser>,
    /// The default user's permissions on the default vhost. Default `.*` for all three.
    pub default_permissions: DefaultPermissions,
    /// Further users created at the first start, each with `.*` permissions on its vhosts.
    pub users: Vec<UserConfig>,
    /// Users allowed to connect only from a loopback address (RabbitMQ's `loopback_users`). Default `["guest"]`.
    pub loopback_users: Vec<String>,
}

/// RabbitMQ's `default_user` and `default_pass`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultUser {
    /// The login name.
    pub name: String,
    /// The password, hashed when the user is created and never stored in plain text.
    pub password: String,
}

/// RabbitMQ's `default_permissions.configure`, `.write` and `.read`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultPermissions {
    /// Configure regex. Default `.*`.
    pub configure: String,
    /// Write regex. Default `.*`.
    pub write: String,
    /// Read regex. Default `.*`.
    pub read: String,
}

impl Default for DefaultPermissions {
    fn default() -> Self {
        DefaultPermissions {
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        }
    }
}

/// One user from the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserConfig {
    /// The login name; never empty.
    pub name: String,
    /// The password, as written in the file; hashed when the user is created.
    pub password: String,
    /// The virtual hosts this user gets `.*` permissions on.
    pub vhosts: Vec<String>,
}

/// Server properties sent in `connection.start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The `product` server property. Default `Warren`. Some clients branch on it; an operator may set `RabbitMQ`.
    pub product: String,
    /// The `version` server property. Default Warren's own version. Clients that branch on `product` often compare
    /// this too (an operator who sets `RabbitMQ` may set `3.13.7`).
    pub version: String,
    /// The `platform` server property. Default `Rust (tokio) on <OS>` (RabbitMQ sends `Erlang/OTP <release>`).
    pub platform: String,
    /// The `information` server property. Default a line naming Warren and its licence (RabbitMQ sends its
    /// licence and website).
    pub information: String,
    /// The `cluster_name` server property. Default `warren@<hostname>` (`warren@localhost` if unknown).
    pub cluster_name: String,
}

/// When a confirmed message is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fdatasync before a persistent message is confirmed (grouped across publishers). The default.
    Always,
    /// Confirm once written, without fsync: a power loss can lose confirmed messages. For throwaway brokers.
    Never,
}

/// The message store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    /// Default `Always`.
    pub sync: SyncPolicy,
    /// The write-ahead log rolls to a new file past this many bytes. Default 64 MiB.
    pub wal_file_size: u64,
    /// Per-queue segment files roll past this many bytes. Default 64 MiB.
    pub segment_size: u64,
    /// Ready message bodies one queue keeps in memory, in bytes; messages past it are kept only on disk (a
    /// persistent message of a durable queue in the message store, any other in the spill store) and read back
    /// when delivered. Default 64 MiB.
    pub queue_memory_budget: u64,
    /// Ready message bodies all queues together keep in memory, in bytes: past it, every queue keeps its new
    /// messages on disk until the total is back under. Checked by each queue once per round, so it may be passed
    /// by a round's worth of messages per queue. Default 1 GiB.
    pub total_queue_memory_budget: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            sync: SyncPolicy::Always,
            wal_file_size: 64 << 20,
            segment_size: 64 << 20,
            queue_memory_budget: 64 << 20,
            total_queue_memory_budget: 1 << 30,
        }
    }
}

/// Flow control: when a queue whose consumers are not keeping up holds its publishers (their connections stop
/// being read until it drains). A limit of 0 disables that test; both 0 never holds, as RabbitMQ never holds for a
/// queue whose consumers limit themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Ready messages at which a queue with consumers holds its publishers; they are released at half. Default
    /// 10000.
    pub queue_high_watermark_messages: u64,
    /// Ready body bytes in memory at which a queue with consumers holds its publishers; released at half. Default
    /// 16 MiB.
    pub queue_high_watermark_bytes: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            queue_high_watermark_messages: 10_000,
            queue_high_watermark_bytes: 16 << 20,
        }
    }
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` `EnvFilter` directive, as in `RUST_LOG`: `info`, `warren=debug,info`, ... Default `info`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5672)),
            data_dir: PathBuf::from("./data"),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            server: ServerIdentity::default(),
            log: LogConfig::default(),
            storage: StorageConfig::default(),
            flow: FlowConfig::default(),
            alarms: AlarmsConfig::default(),
            listeners: Listeners::default(),
            ssl: SslOptions::default(),
            sasl: SaslConfig::default(),
            policies: Vec::new(),
            trace_vhosts: Vec::new(),
            definitions: DefinitionsConfig::default(),
            compatibility: Compatibility::default(),
            deprecated_features: DeprecatedFeatures::default(),
            event_exchange: EventExchangeConfig::default(),
            management: ManagementConfig::default(),
            prometheus: PrometheusConfig::default(),
            cluster: None,
            shovels: Vec::new(),
            source: None,
            ignored_keys: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
            max_message_size: Compatibility::default().max_message_size(),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 0,
            max_channels_per_node: 0,
            consumer_timeout: Some(Duration::from_millis(1_800_000)),
            send_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            default_vhost: "/".to_owned(),
            default_user: Some(DefaultUser {
                name: "guest".to_owned(),
                password: "guest".to_owned(),
            }),
            default_permissions: DefaultPermissions::default(),
            users: Vec::new(),
            loopback_users: vec!["guest".to_owned()],
        }
    }
}

impl Default for ServerIdentity {
    fn default() -> Self {
        let host = local_hostname().unwrap_or_else(|| "localhost".to_owned());
        ServerIdentity {
            product: "Warren".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            platform: format!("Rust (tokio) on {}", std::env::consts::OS),
            information:
                "Warren, an AMQP 0-9-1 broker compatible with RabbitMQ clients. Licensed under the \
                          Apache License 2.0."
                    .to_owned(),
            cluster_name: format!("warren@{host}"),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
        }
    }
}

impl LogConfig {
    /// Checks that `level` is a `tracing` `EnvFilter` directive (the `RUST_LOG` syntax); the error says why not.
    /// Used for `[log] level` and `--log-level`. A bare word is a valid directive (it names a log target), so a
    /// misspelt level such as `inf` passes and only filters everything out; a bad level after `=` is caught.
    pub fn check_level(level: &str) -> Result<(), String> {
        tracing_subscriber::EnvFilter::try_new(level)
            .map(drop)
            .map_err(|err| {
                format!(
                    "`{level}` is not a log filter such as `info` or `warren=debug,info`: {err}"
                )
            })
    }
}

impl Config {
    /// Reads and validates a TOML file. Unknown keys and bad values are errors naming the file, the line and the key.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config = if path.extension().is_some_and(|e| e == "conf") {
            Config::from_rabbitmq_conf_str(&text, path)?
        } else {
            Config::from_toml_str(&text, path)?
        };
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Same as `from_file` for a RabbitMQ `rabbitmq.conf` text (see `rabbitmq_conf`): errors name its lines.
    pub fn from_rabbitmq_conf_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let translation = rabbitmq_conf::translate(text, origin)?;
        let mut config = Config::from_toml_str(&translation.toml, origin)
            .map_err(|error| error.at_lines(&translation.lines))?;
        config.ignored_keys = translation.ignored;
        Ok(config)
    }

    /// Same as `from_file`, from a string; `origin` is what error messages name as the file. The result's `source`
    /// is `None`, since no file was read.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let source = source::TomlSource::parse(text, origin)?;
        let file = source.deserialize::<file::FileConfig>()?;
        let mut config = Config::default();
        file.apply_to(&mut config, &source)?;
        Ok(config)
    }

    /// The virtual hosts named by any user, plus `default_vhost`, without duplicates (default vhost first, then in
    /// the order users name them).
    pub fn vhosts(&self) -> Vec<String> {
        let mut vhosts = vec![self.auth.default_vhost.clone()];
        for vhost in self.auth.users.iter().flat_map(|user| &user.vhosts) {
            if !vhosts.contains(vhost) {
                vhosts.push(vhost.clone());
            }
        }
        vhosts
    }
}

/// The machine's host name, for the default `cluster_name`. Read without a dependency: Linux exposes it under
/// `/proc`, other systems usually export `HOSTNAME` (or `COMPUTERNAME` on Windows).
fn local_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}
