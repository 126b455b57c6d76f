//! The `warren` binary: parses the command line, loads the configuration and serves AMQP until interrupted.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use warren::cli::{Cli, Command, DefinitionsCommand};
use warren::registry::CloseRequest;
use warren::server::Server;

/// glibc's malloc spent a quarter of the broker's CPU at full publish rate (every message allocates a few small
/// objects on one thread and frees them on another); mimalloc's per-thread free lists cut that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    warren::install_crypto_provider();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Perf(args)) => return perf(args),
        Some(Command::Soak(args)) => return soak(args),
        Some(Command::Definitions(command)) => return definitions(&cli, command),
        Some(Command::Ctl(line)) => {
            let program = std::ffi::OsString::from("warren ctl");
            return warren::ctl::run(std::iter::once(program).chain(line.args.iter().cloned()));
        }
        None => {}
    }
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("warren: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(quiet_client_library(&config.log.level)));
    // Colours only on a terminal: logs redirected to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    for key in &config.ignored_keys {
        tracing::warn!("{key}: a RabbitMQ tuning key with no Warren equivalent; ignored");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_after_large_release)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("warren: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

/// Run by each runtime worker as it goes idle: after a large release (a big queue deleted or purged), the worker hands
/// its free pages back to the system once (`warren::memory_release` says why it is not left to the allocator).
fn collect_after_large_release() {
    thread_local! {
        static RELEASES_SEEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    RELEASES_SEEN.with(|seen| {
        let mut count = seen.get();
        if warren::memory_release::released_since(&mut count) {
            seen.set(count);
            // SAFETY: mi_collect only walks and trims the calling thread's own mimalloc heap, the global allocator.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    });
}

async fn serve(config: warren::config::Config) -> ExitCode {
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let broker = server.broker();
    match server.local_addr() {
        Ok(addr) => tracing::info!(
            "Warren {} started; accepting AMQP 0-9-1 connections on {addr}",
            env!("CARGO_PKG_VERSION")
        ),
        Err(error) => tracing::warn!("listening, but cannot read the local address: {error}"),
    }
    if let Some(addr) = server.prometheus_addr() {
        tracing::info!("Prometheus metrics on http://{addr}/metrics");
    }
    tokio::select! {
        _ = server.run() => ExitCode::SUCCESS,
        _ = shutdown_signal() => {
            // The listener went with `server.run()`: no new connections from here on.
            tracing::info!("stopping Warren");
            broker.stop_shovels();
            close_connections(&broker).await;
            broker.stop_cluster().await;
            broker.flush();
            ExitCode::SUCCESS
        }
    }
}

/// How long a shutdown waits for clients to answer connection.close; past it their sockets are dropped.
const SHUTDOWN_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Sends every connection RabbitMQ's shutdown close (320 CONNECTION_FORCED), and waits, at most
/// [`SHUTDOWN_CLOSE_WAIT`], for them to be gone: their readers enqueue what they read before and their writers send
/// the confirms still due before the close.
async fn close_connections(broker: &warren::broker::Broker) {
    let registry = broker.connections();
    let request = CloseRequest::forced("broker forced connection closure with reason 'shutdown'");
    let asked = registry.close_all(&request);
    if asked == 0 {
        return;
    }
    tracing::info!("closing {asked} client connection(s)");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_CLOSE_WAIT;
    while !registry.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `warren perf`: runs the load generator, prints its summary; exits 1 if a message was lost or duplicated or
/// an error occurred, 2 if the run could not start.
fn perf(args: &warren_perf::PerfArgs) -> ExitCode {
    let runtime = match tool_runtime("perf", args.threads) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    if args.rpc.is_some() {
        return match runtime.block_on(warren_perf::rpc::run(args)) {
            Ok(summary) if args.json => {
                println!("{}", summary.to_json());
                passed(summary.round_trips > 0)
            }
            Ok(summary) => {
                print!("{}", summary.render());
                passed(summary.round_trips > 0)
            }
            Err(error) => {
                eprintln!("warren perf --rpc: {error}");
                ExitCode::from(2)
            }
        };
    }
    let interrupt = first_interrupt("producers stop, consumers drain");
    match runtime.block_on(warren_perf::run_until(args, interrupt)) {
        Ok(summary) => {
            if args.json {
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.render());
            }
            passed(summary.passed())
        }
        Err(error) => {
            eprintln!("warren perf: {error}");
            ExitCode::from(2)
        }
    }
}

/// `warren soak`: runs the soak, prints its summary; exits 1 if an error occurred or an idle connection was lost,
/// 2 if the run could not start.
fn soak(args: &warren_perf::soak::SoakArgs) -> ExitCode {
    let runtime = match tool_runtime("soak", None) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let interrupt = first_interrupt("closing every connection");
    match runtime.block_on(warren_perf::soak::run_until(args, interrupt)) {
        Ok(summary) => {
            if args.json {
                eprint!("{}", summary.render());
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.render());
            }
            passed(summary.passed())
        }
        Err(error) => {
            eprintln!("warren soak: {error}");
            ExitCode::from(2)
        }
    }
}

/// `warren definitions import|export FILE`, offline on the configured data directory: exits 1 if the file or
/// the data directory cannot be used (every problem of a file is printed with its JSON path), 2 on a bad config.
fn definitions(cli: &Cli, command: &DefinitionsCommand) -> ExitCode {
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("warren: {error}");
            return ExitCode::from(2);
        }
    };
    let data_dir = &config.data_dir;
    let result = match command {
        DefinitionsCommand::Import { file } => warren::definitions::import_offline(data_dir, file)
            .map(|report| {
                eprintln!("{}: {report}", file.display());
            }),
        DefinitionsCommand::Export { file } => warren::definitions::export_offline(data_dir, file)
            .map(|()| {
                if file.as_os_str() != "-" {
                    eprintln!(
                        "exported the definitions of {} to {}",
                        data_dir.display(),
                        file.display()
                    );
                }
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warren definitions: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime a client tool (`perf`, `soak`) runs on, with `threads` workers if given.
fn tool_runtime(tool: &str, threads: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder.enable_all().build().map_err(|error| {
        eprintln!("warren {tool}: cannot start the runtime: {error}");
        ExitCode::FAILURE
    })
}

/// Resolves at the first Ctrl-C, saying what the tool does now; a second Ctrl-C quits at once.
async fn first_interrupt(what_now: &'static str) {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    eprintln!("\ninterrupted: {what_now} (Ctrl-C again to quit at once)");
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

/// Exit status 0 for a run that passed, 1 otherwise.
fn passed(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The log directive with lapin (the AMQP client of shovels and federation links) silenced unless it names lapin:
/// lapin logs an ERROR for every channel a broker closes, such as the expected 404 of a passive declare, and the
/// links already log their own failures (and show them in their status) with the context an operator needs.
fn quiet_client_library(level: &str) -> String {
    if level.contains("lapin") {
        level.to_owned()
    } else {
        format!("{level},lapin=off")
    }
}

#[cfg(test)]
mod tests {
    use super::quiet_client_library;

    #[test]
    fn lapin_is_silenced_unless_the_directive_names_it() {
        assert_eq!(quiet_client_library("info"), "info,lapin=off");
        assert_eq!(
            quiet_client_library("warren=debug,info"),
            "warren=debug,info,lapin=off"
        );
        assert_eq!(quiet_client_library("info,lapin=warn"), "info,lapin=warn");
        assert!(tracing_subscriber::EnvFilter::try_new(quiet_client_library("debug")).is_ok());
    }
}
