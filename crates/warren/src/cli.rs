//! The command line. `warren [--listen ADDR:PORT] [--data-dir DIR] [--config FILE]` starts the broker; these flags
//! are a stable contract (scripts and tests start Warren this way). Flags override the config file, which overrides
//! the defaults.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, LogConfig};

/// Warren: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
///
/// With no arguments it serves AMQP on 127.0.0.1:5672 (user guest/guest, loopback only) with data under ./data.
#[derive(Parser, Debug)]
#[command(name = "warren", version, about)]
pub struct Cli {
    /// Address to serve AMQP on, overriding `[server] listen` [default: 127.0.0.1:5672]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Address to serve the management HTTP API on, overriding `[management] listen` [default: 127.0.0.1:15672]
    #[arg(long, value_name = "ADDR:PORT")]
    pub management_listen: Option<SocketAddr>,

    /// Address of the Prometheus endpoint, overriding `[prometheus] listen` [default: 127.0.0.1:15692]
    #[arg(long, value_name = "ADDR:PORT")]
    pub prometheus_listen: Option<SocketAddr>,

    /// Directory for messages and definitions, overriding `[server] data_dir` [default: ./data]
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// TOML config file (see config/warren.toml); without it the defaults apply
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Log filter in RUST_LOG syntax, such as `debug` or `warren=debug,info`, overriding `[log] level`
    /// [default: info]
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<String>,

    #[command(subcommand)]
    /// What to run instead of the broker; `None` serves AMQP.
    pub command: Option<Command>,
}

/// What to run instead of the broker; with no subcommand Warren serves AMQP.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load generator for any AMQP 0-9-1 broker (like RabbitMQ PerfTest): publish, consume, report throughput,
    /// latency and losses
    Perf(Box<warren_perf::PerfArgs>),
    /// Soak test of any AMQP 0-9-1 broker: thousands of idle connections with heartbeats, connection and queue
    /// churn, slow and stalled consumers, for a set time; reports RSS, open files, missed heartbeats and p99
    /// latency each minute
    Soak(warren_perf::soak::SoakArgs),
    /// RabbitMQ definitions JSON (users, vhosts, permissions, policies, queues, exchanges, bindings): import into
    /// or export from the data directory (`--data-dir`, or `[server] data_dir` of `--config`) while the broker
    /// is stopped
    #[command(subcommand)]
    Definitions(DefinitionsCommand),
    /// rabbitmqctl's everyday commands (status, list_queues, add_user, set_policy, ...) with its names, arguments
    /// and exit codes, run against a node's management HTTP API; `warren ctl help` lists them (docs/ctl.md)
    #[command(disable_help_flag = true)]
    Ctl(CtlCommandLine),
}

/// `warren ctl ...`: everything after `ctl`, parsed by `warren::ctl` itself (its usage errors exit 64, as
/// rabbitmqctl's do, not clap's 2).
#[derive(Args, Debug)]
pub struct CtlCommandLine {
    /// The command and its arguments, such as `list_queues -p / name messages`
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// `warren definitions ...`.
#[derive(Subcommand, Debug)]
pub enum DefinitionsCommand {
    /// Import a definitions file (as `rabbitmqctl import_definitions`): checked whole first, every problem reported
    /// with its JSON path, then stored all at once or not at all
    Import {
        /// The definitions file; `-` reads standard input
        file: PathBuf,
    },
    /// Export the definitions as a file `rabbitmqctl import_definitions` reads
    Export {
        /// Where to write them; `-` writes to standard output
        file: PathBuf,
    },
}

impl Cli {
    /// The configuration to run with: defaults, then the `--config` file if given, then the flags on top.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.management_listen {
            config.management.listen = listen;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(listen) = self.prometheus_listen {
            config.prometheus.listen = listen;
        }
        if let Some(data_dir) = &self.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(level) = &self.log_level {
            config.log.level = level.clone();
        }
        Ok(config)
    }
}

/// Validates `--log-level` as the config file validates `[log] level`.
fn parse_log_level(level: &str) -> Result<String, String> {
    if level.is_empty() {
        return Err("must not be empty".to_owned());
    }
    LogConfig::check_level(level)?;
    Ok(level.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::Path;

    /// A config file in the temp directory, removed when dropped.
    struct TempConfig(PathBuf);

    impl TempConfig {
        fn new(name: &str, text: &str) -> TempConfig {
            let path =
                std::env::temp_dir().join(format!("warren-cli-{}-{name}.toml", std::process::id()));
            std::fs::write(&path, text).expect("write temp config");
            TempConfig(path)
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("warren").chain(args.iter().copied()))
            .expect("valid command line")
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_yields_the_defaults() {
        let cli = parse(&[]);
        assert!(cli.command.is_none());
        assert_eq!(cli.load_config().expect("defaults load"), Config::default());
    }

    #[test]
    fn flags_override_the_defaults() {
        let cli = parse(&[
            "--listen",
            "0.0.0.0:5673",
            "--data-dir",
            "/var/lib/warren",
            "--log-level",
            "warren=debug,info",
        ]);
        let config = cli.load_config().expect("config loads");
        assert_eq!(
            config.listen,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5673))
        );
        assert_eq!(config.data_dir, Path::new("/var/lib/warren"));
        assert_eq!(config.log.level, "warren=debug,info");
        assert_eq!(config.source, None);
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = TempConfig::new(
            "precedence",
            "[server]\nlisten = \"127.0.0.1:6000\"\ndata_dir = \"/srv/file\"\n[limits]\nheartbeat = 30\n",
        );
        let path = file.0.to_str().expect("utf-8 temp path");
        let config = parse(&["--config", path, "--listen", "[::1]:7000"])
            .load_config()
            .expect("config loads");
        assert_eq!(
            config.listen,
            "[::1]:7000".parse::<SocketAddr>().expect("address")
        );
        assert_eq!(config.data_dir, Path::new("/srv/file"));
        assert_eq!(config.limits.heartbeat, 30);
        assert_eq!(config.source.as_deref(), Some(file.0.as_path()));
    }

    #[test]
    fn a_bad_config_file_is_reported_with_its_path_and_line() {
        let file = TempConfig::new("bad", "[server]\nlistn = \"127.0.0.1:6000\"\n");
        let path = file.0.to_str().expect("utf-8 temp path");
        let err = parse(&["--config", path])
            .load_config()
            .expect_err("unknown key refused");
        assert_eq!(
            err.to_string(),
            format!("{path}:2: unknown key `listn` in [server]")
        );
    }

    #[test]
    fn a_missing_config_file_names_the_path() {
        let err = parse(&["--config", "/nonexistent/warren.toml"])
            .load_config()
            .expect_err("missing file refused");
        assert!(
            err.to_string()
                .starts_with("/nonexistent/warren.toml: cannot read config file: "),
            "{err}"
        );
    }

    #[test]
    fn a_bad_listen_flag_is_refused_by_the_parser() {
        for bad in ["localhost", "127.0.0.1", "127.0.0.1:99999", "nonsense:5672"] {
            assert!(
                Cli::try_parse_from(["warren", "--listen", bad]).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn a_bad_log_level_flag_is_refused_by_the_parser() {
        assert!(Cli::try_parse_from(["warren", "--log-level", "warren=loud"]).is_err());
        assert!(Cli::try_parse_from(["warren", "--log-level", ""]).is_err());
    }

    #[test]
    fn perf_subcommand_takes_its_own_options() {
        let cli = parse(&["perf", "--producers", "4", "--size", "1024", "--time", "10"]);
        let Some(Command::Perf(args)) = cli.command else {
            panic!("perf subcommand expected");
        };
        assert_eq!((args.producers, args.size, args.time), (4, 1024, Some(10)));
        assert!(Cli::try_parse_from(["warren", "perf", "--size", "8"]).is_err());
    }

    #[test]
    fn soak_subcommand_takes_its_own_options() {
        let cli = parse(&["soak", "--idle-connections", "2000", "--time", "120"]);
        let Some(Command::Soak(args)) = cli.command else {
            panic!("soak subcommand expected");
        };
        assert_eq!((args.idle_connections, args.time), (2000, 120));
        assert_eq!(args.heartbeat, 10);
        assert!(Cli::try_parse_from(["warren", "soak", "--time", "0"]).is_err());
    }

    #[test]
    fn definitions_subcommands_take_a_file_and_the_data_dir() {
        let cli = parse(&["definitions", "import", "--data-dir", "/srv/w", "defs.json"]);
        let Some(Command::Definitions(DefinitionsCommand::Import { file })) = &cli.command else {
            panic!("definitions import expected");
        };
        assert_eq!(file, Path::new("defs.json"));
        assert_eq!(
            cli.load_config().expect("config").data_dir,
            Path::new("/srv/w")
        );
        let cli = parse(&["--data-dir", "/srv/w", "definitions", "export", "-"]);
        assert!(matches!(
            cli.command,
            Some(Command::Definitions(DefinitionsCommand::Export { .. }))
        ));
        assert!(Cli::try_parse_from(["warren", "definitions", "import"]).is_err());
    }

    #[test]
    fn ctl_takes_everything_after_it_as_its_own_command_line() {
        let cli = parse(&[
            "ctl",
            "--node",
            "http://h:1",
            "list_queues",
            "-p",
            "v",
            "name",
            "-h",
        ]);
        let Some(Command::Ctl(line)) = cli.command else {
            panic!("ctl subcommand expected");
        };
        assert_eq!(
            line.args,
            [
                "--node",
                "http://h:1",
                "list_queues",
                "-p",
                "v",
                "name",
                "-h"
            ]
            .map(OsString::from)
            .to_vec()
        );
    }

    #[test]
    fn unknown_flags_are_refused() {
        assert!(Cli::try_parse_from(["warren", "--lisen", "127.0.0.1:5672"]).is_err());
    }
}
