//! The steady pair's consumer: it acks each delivery at once and records its end-to-end latency, from the send
//! time the feeder stamped into the body to its arrival, in the run's histograms. Its producer is a plain
//! [`super::feed`] to the same queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::super::body::now_ns;
use super::super::client::Connection;
use super::delivery::Reassembly;
use super::link::Link;
use super::tally::Tally;
use warren_protocol::client::put_ack;

/// Consumes on `conn` (consumer set up on channel 1) until `stop`; then closes the connection.
pub(crate) async fn run(conn: Connection, tally: Arc<Tally>, mut stop: watch::Receiver<bool>) {
    let mut link = Link::new(conn, tally.clone());
    let mut reassembly = Reassembly::default();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            frame = link.next() => {
                let delivered = frame
                    .map_err(|lost| lost.to_string())
                    .and_then(|frame| reassembly.on_frame(&frame));
                match delivered {
                    Ok(None) => {}
                    Ok(Some(delivery)) => {
                        if let Some(stamp) = delivery.stamp {
                            tally.latency(now_ns().saturating_sub(stamp.sent_at_ns));
                        }
                        Tally::bump(&tally.steady_received);
                        put_ack(&mut link.out, 1, delivery.tag, false);
                    }
                    Err(e) => {
                        tally.error("the steady consumer", e);
                        return;
                    }
                }
            }
        }
    }
    if let Err(e) = link.close(Duration::from_secs(30)).await {
        tally.error("the steady consumer", e);
    }
}
