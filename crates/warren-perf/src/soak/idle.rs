//! The idle connections: opened at the start, a few dozen at a time, each from the next loopback source address,
//! each with one channel, then held doing nothing but heartbeats until the run ends. One that the broker closes
//! or loses is not reopened: it is a missed heartbeat, counted in [`Tally::idle_lost`] with the reason.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::super::client::Connection;
use super::link::Link;
use super::options::SoakPlan;
use super::tally::Tally;

/// How long an idle connection waits for close-ok at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Opens the plan's idle connections and holds each in its own task until `stop`. Returns once every open was
/// tried, with the tasks; `progress` hears of each attempt (`true` if it opened).
pub(crate) async fn open_all(
    plan: &SoakPlan,
    tally: &Arc<Tally>,
    stop: &watch::Receiver<bool>,
    mut progress: impl FnMut(usize, usize),
) -> JoinSet<()> {
    let permits = Arc::new(Semaphore::new(plan.open_concurrency));
    let (opened_tx, mut opened) = mpsc::unbounded_channel::<()>();
    let mut tasks = JoinSet::new();
    for n in 0..plan.idle_connections {
        let permits = permits.clone();
        let uri = plan.uri.clone();
        let dial = plan.dial(n);
        let tally = tally.clone();
        let stop = stop.clone();
        let opened_tx = opened_tx.clone();
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            let conn = open(&uri, n, dial).await;
            drop(permit);
            match conn {
                Ok(conn) => {
                    Tally::bump(&tally.idle_opened);
                    Tally::bump(&tally.idle_open);
                    let _ = opened_tx.send(());
                    hold(Link::new(conn, tally.clone()), &tally, stop).await;
                }
                Err(e) => {
                    Tally::bump(&tally.idle_failed);
                    tally.error("opening an idle connection", e);
                    let _ = opened_tx.send(());
                }
            }
        });
    }
    drop(opened_tx);
    let mut tried = 0;
    while tried < plan.idle_connections && opened.recv().await.is_some() {
        tried += 1;
        if tried.is_multiple_of(500) || tried == plan.idle_connections {
            progress(tried, plan.idle_connections);
        }
    }
    tasks
}

async fn open(
    uri: &super::super::uri::AmqpUri,
    n: usize,
    dial: super::super::client::Dial,
) -> Result<Connection, super::super::PerfError> {
    let mut conn = Connection::open_with(uri, &format!("warren soak idle {n}"), dial).await?;
    conn.open_channel(1).await?;
    Ok(conn)
}

/// Holds `link` until `stop`, then closes it. Frames from the broker other than heartbeats are dropped.
async fn hold(mut link: Link, tally: &Tally, mut stop: watch::Receiver<bool>) {
    let lost = loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break None,
            frame = link.next() => match frame {
                Ok(_) => {}
                Err(lost) => break Some(lost),
            },
        }
    };
    match lost {
        Some(lost) => tally.idle_lost(lost),
        None => {
            tally
                .idle_open
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = link.close(CLOSE_WAIT).await {
                tally.error("closing an idle connection", e);
            }
        }
    }
}
