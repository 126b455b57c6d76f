//! Connection churn: at a steady rate, a connection is opened (from the next loopback source address), a
//! channel opened on it, and the connection closed again. At most [`CHURN_IN_FLIGHT`] are under way at once; a
//! tick that finds them all busy is skipped and counted, so a slow broker shows as skipped churn, not as a pile
//! of connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::super::client::Connection;
use super::options::SoakPlan;
use super::tally::Tally;

/// Churned connections under way at once, at most.
pub(crate) const CHURN_IN_FLIGHT: usize = 64;

/// Churns connections until `stop`, then waits for those under way.
pub(crate) async fn run(plan: Arc<SoakPlan>, tally: Arc<Tally>, mut stop: watch::Receiver<bool>) {
    let Some(every) = plan.connection_churn else {
        return;
    };
    let permits = Arc::new(Semaphore::new(CHURN_IN_FLIGHT));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = JoinSet::new();
    // Offset from the idle connections', so churn spreads over the source addresses too.
    let mut n = plan.idle_connections;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = tick.tick() => {}
        }
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            Tally::bump(&tally.churn_skipped);
            continue;
        };
        let (plan, tally) = (plan.clone(), tally.clone());
        n += 1;
        tasks.spawn(async move {
            match churn_once(&plan, n).await {
                Ok(()) => Tally::bump(&tally.churned_connections),
                Err(e) => tally.error("connection churn", e),
            }
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(35), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

async fn churn_once(plan: &SoakPlan, n: usize) -> Result<(), super::super::PerfError> {
    let mut conn =
        Connection::open_with(&plan.uri, &format!("warren soak churn {n}"), plan.dial(n)).await?;
    conn.open_channel(1).await?;
    conn.close().await
}
