//! The `warren` binary: parses the command line, loads the configuration and serves AMQP until interrupted.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use warren::cli::Cli;
use warren::server::Server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("warren: {error}");
            return ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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

async fn serve(config: warren::config::Config) -> ExitCode {
    if let Err(error) = std::fs::create_dir_all(&config.data_dir) {
        tracing::error!(
            "cannot create data directory {}: {error}",
            config.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let listen = config.listen;
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!("cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => tracing::info!(
            "Warren {} started; accepting AMQP 0-9-1 connections on {addr}",
            env!("CARGO_PKG_VERSION")
        ),
        Err(error) => tracing::warn!("listening, but cannot read the local address: {error}"),
    }
    tokio::select! {
        _ = server.run() => ExitCode::SUCCESS,
        _ = shutdown_signal() => {
            tracing::info!("stopping Warren");
            ExitCode::SUCCESS
        }
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
