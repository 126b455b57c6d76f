//! A stalled consumer: it starts consuming without a prefetch limit, then neither reads nor writes its socket
//! (no heartbeats either) for the stall time, as an application stuck in a long call does. Then it looks: a broker
//! that lets such consumers go has closed the connection (missed heartbeats, or a write that made no progress);
//! otherwise the connection is still open. Either way it starts over on a new connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::super::client::Connection;
use super::link::{Link, LinkLost};
use super::options::SoakPlan;
use super::tally::Tally;
use super::topology::consume;

/// How long the stalled consumer reads after its stall: a connection the broker closed ends within it (once what
/// the broker sent before closing is read), an open one does not.
const LOOK: Duration = Duration::from_secs(5);

/// Stalls consumers on `queue` until `stop`.
pub(crate) async fn run(
    plan: Arc<SoakPlan>,
    index: usize,
    queue: String,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cycle = 0usize;
    while !*stop.borrow() {
        cycle += 1;
        let opened = async {
            let mut conn = Connection::open_with(
                &plan.uri,
                &format!("warren soak stalled {index}"),
                plan.dial(index + cycle),
            )
            .await?;
            conn.open_channel(1).await?;
            consume(&mut conn, 1, &queue, 0, &format!("stalled-{index}")).await?;
            Ok::<_, super::super::PerfError>(conn)
        };
        let conn = match opened.await {
            Ok(conn) => conn,
            Err(e) => {
                tally.error("a stalled consumer", e);
                // Not in a tight loop against a broker that refuses.
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        let stalled = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => false,
            _ = tokio::time::sleep(plan.stall) => true,
        };
        // Only now: a link made before the stall would count the stall's silence as the broker's late heartbeat.
        let mut link = Link::new(conn, tally.clone());
        match still_open(&mut link).await {
            Err(_) if stalled => Tally::bump(&tally.stalls_let_go),
            Err(_) => {}
            Ok(()) => {
                if stalled {
                    Tally::bump(&tally.stalls_kept);
                }
                // It may be gone by now; a stalled connection's close is not worth an error.
                let _ = link.close(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Reads what the broker sent during the stall: `Err` if the connection ended, `Ok` if it is still open after
/// [`LOOK`].
async fn still_open(link: &mut Link) -> Result<(), LinkLost> {
    let read_all = async {
        loop {
            link.next().await?;
        }
    };
    tokio::time::timeout(LOOK, read_all).await.unwrap_or(Ok(()))
}
