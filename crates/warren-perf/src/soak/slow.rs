//! A slow consumer: it works on one delivery at a time for a fixed delay and acks it when done, so it holds its
//! prefetch's worth of unacked deliveries all the time and its queue grows behind it (on Warren until flow
//! control holds the queue's feeder).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::super::client::Connection;
use super::delivery::Reassembly;
use super::link::Link;
use super::tally::Tally;
use warren_protocol::client::put_ack;

/// Consumes on `conn` (consumer set up on channel 1), `delay` per delivery, until `stop`; then closes the
/// connection, leaving what it holds to be requeued.
pub(crate) async fn run(
    conn: Connection,
    delay: Duration,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    let mut link = Link::new(conn, tally.clone());
    let mut reassembly = Reassembly::default();
    let mut held: VecDeque<u64> = VecDeque::new();
    // When the delivery at the front of `held` is done.
    let mut done_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = sleep_until(done_at) => {
                if let Some(tag) = held.pop_front() {
                    put_ack(&mut link.out, 1, tag, false);
                    Tally::bump(&tally.slow_acked);
                }
                done_at = (!held.is_empty()).then(|| Instant::now() + delay);
            }
            frame = link.next() => {
                let delivered = frame
                    .map_err(|lost| lost.to_string())
                    .and_then(|frame| reassembly.on_frame(&frame));
                match delivered {
                    Ok(None) => {}
                    Ok(Some(delivery)) => {
                        held.push_back(delivery.tag);
                        done_at.get_or_insert_with(|| Instant::now() + delay);
                    }
                    Err(e) => {
                        tally.error("a slow consumer", e);
                        return;
                    }
                }
            }
        }
    }
    if let Err(e) = link.close(Duration::from_secs(30)).await {
        tally.error("a slow consumer", e);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
