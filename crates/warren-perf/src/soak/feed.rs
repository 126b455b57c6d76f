//! A feeder: one connection publishing stamped messages to one queue through the default exchange at a steady
//! rate. The steady pair's producer is one; the slow and stalled consumers' queues each have one. When the broker
//! stops reading it (flow control, an alarm) the feeder stops queueing bytes past [`OUT_LIMIT`] and counts the
//! publishes it skipped instead of buffering them.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;

use super::super::body::{now_ns, Stamp, STAMP_LEN};
use super::super::client::Connection;
use super::link::{Link, OUT_LIMIT};
use super::tally::Tally;
use warren_protocol::client::put_publish;
use warren_protocol::content::{put_body_frames, put_content_header};

/// What one feeder publishes.
pub(crate) struct FeedSpec {
    pub queue: String,
    pub every: Duration,
    pub size: usize,
    /// Producer id written in the stamps.
    pub producer: u16,
    /// The counter of messages sent.
    pub sent: fn(&Tally) -> &AtomicU64,
    /// Who it is, in error texts.
    pub what: &'static str,
}

/// Publishes on `conn` (channel 1 open) until `stop`; then closes the connection.
pub(crate) async fn run(
    conn: Connection,
    spec: FeedSpec,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    let frame_max = conn.frame_max;
    let mut link = Link::new(conn, tally.clone());
    let (template, stamp_at) = message(&spec, frame_max);
    let mut tick = tokio::time::interval(spec.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = tick.tick() => {
                if link.out.len() > OUT_LIMIT {
                    Tally::bump(&tally.feed_held);
                    continue;
                }
                seq += 1;
                let at = link.out.len() + stamp_at;
                link.out.extend_from_slice(&template);
                Stamp { producer: spec.producer, seq, sent_at_ns: now_ns() }
                    .write(&mut link.out[at..at + STAMP_LEN]);
                Tally::bump((spec.sent)(&tally));
            }
            frame = link.next() => match frame {
                // Nothing comes on a publishing channel but a close.
                Ok(_) => {}
                Err(lost) => {
                    tally.error(spec.what, lost);
                    return;
                }
            },
        }
    }
    if let Err(e) = link.close(Duration::from_secs(30)).await {
        tally.error(spec.what, e);
    }
}

/// One whole publish (method, transient content header, body frames) and where in it the stamp goes: past the
/// first body frame's 7-byte header.
fn message(spec: &FeedSpec, frame_max: u32) -> (Vec<u8>, usize) {
    let mut out = BytesMut::new();
    put_publish(&mut out, 1, "", &spec.queue, false);
    // Flags with only delivery-mode set, then delivery-mode 1 (transient).
    put_content_header(&mut out, 1, spec.size as u64, &[0x10, 0x00, 1]);
    let stamp_at = out.len() + 7;
    put_body_frames(&mut out, 1, &vec![0u8; spec.size], frame_max);
    (out.to_vec(), stamp_at)
}
