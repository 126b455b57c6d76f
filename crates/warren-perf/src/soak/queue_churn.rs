//! Queue churn: on one connection, at a steady rate, a queue is declared and deleted again; every other one is
//! durable, so the broker's definitions store is written too. A failure is counted and the connection opened
//! anew at the next tick.

use std::sync::Arc;

use tokio::sync::watch;

use super::super::client::Connection;
use super::options::SoakPlan;
use super::tally::Tally;
use super::topology::{declare_queue, delete_queue};

/// Churns queues until `stop`.
pub(crate) async fn run(plan: Arc<SoakPlan>, tally: Arc<Tally>, mut stop: watch::Receiver<bool>) {
    let Some(every) = plan.queue_churn else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut conn: Option<Connection> = None;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = tick.tick() => {}
        }
        n += 1;
        let step = async {
            let mut c = match conn.take() {
                Some(c) => c,
                None => {
                    let mut c = Connection::open_with(
                        &plan.uri,
                        "warren soak queue churn",
                        plan.dial(n as usize),
                    )
                    .await?;
                    c.open_channel(1).await?;
                    c
                }
            };
            let name = format!("{}-churn-{n}", plan.prefix);
            declare_queue(&mut c, 1, &name, n.is_multiple_of(2)).await?;
            delete_queue(&mut c, 1, &name).await?;
            Ok::<_, super::super::PerfError>(c)
        };
        // Stopping in the middle of a step would leave its queue behind: a step always finishes.
        match step.await {
            Ok(c) => {
                conn = Some(c);
                Tally::bump(&tally.churned_queues);
            }
            Err(e) => tally.error("queue churn", e),
        }
    }
    if let Some(mut c) = conn {
        if let Err(e) = c.close().await {
            tally.error("queue churn", e);
        }
    }
}
