//! Certificate reload without a restart: on SIGHUP, and when the certificate, key or CA file changes (their
//! modification times and sizes are polled, so no file-watching dependency is needed), the TLS files are read
//! again. New connections get the new certificate; open connections keep the session they have.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::tls::{file_stamp, TlsState};

/// How often the files are looked at. A few seconds: a renewed certificate is picked up soon, and a stat of three
/// files costs nothing at this rate.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Watches for SIGHUP and for changed files until the task is dropped.
pub(crate) async fn watch(state: Arc<TlsState>) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are still reloaded when they change");
            None
        }
    };
    let files = state.files();
    let mut seen = stamps(&files);
    loop {
        let signalled = tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => false,
            _ = next_hangup(&mut hangup) => true,
        };
        let now = stamps(&files);
        if !signalled && now == seen {
            continue;
        }
        // Remembered even when the reload fails: a half-written pair is retried when the other file lands, not
        // every poll.
        seen = now;
        match state.reload() {
            Ok(()) => tracing::info!(
                "TLS certificate reloaded{}: new connections use it",
                if signalled {
                    " on SIGHUP"
                } else {
                    " (files changed)"
                }
            ),
            Err(error) => {
                tracing::error!("TLS certificate not reloaded, the one in force stays: {error}")
            }
        }
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files.iter().map(|path| file_stamp(path).ok()).collect()
}

/// The next SIGHUP; never, if the signal could not be listened for.
async fn next_hangup(hangup: &mut Option<Signal>) {
    match hangup {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
