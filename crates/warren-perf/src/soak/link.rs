//! A set-up connection as a soak task drives it: [`Link::next`] returns the broker's next frame while it writes
//! what the task queued and keeps heartbeats going both ways. Every step is a non-blocking read or write after a
//! readiness wait, so `next` can lose a `select!` at any point without tearing a frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::time::{interval_at, Interval, MissedTickBehavior};

use super::super::client::Connection;
use super::tally::Tally;
use warren_protocol::frame::{put_heartbeat, FrameKind};
use warren_protocol::{connection, decode_method, put_method, AMQPClass, RawFrame};

/// How a link ended other than by our own close.
#[derive(Debug)]
pub(crate) enum LinkLost {
    /// The broker sent connection.close (answered with close-ok).
    Closed { code: u16, text: String },
    /// The socket ended or failed without a close.
    Socket(String),
    /// The broker sent bytes that are not AMQP frames.
    Protocol(String),
}

impl std::fmt::Display for LinkLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkLost::Closed { code, text } => write!(f, "the broker closed it: {code} {text}"),
            LinkLost::Socket(why) => write!(f, "{why}"),
            LinkLost::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// Bytes a task may queue before it should stop producing more (the broker is not reading).
pub(crate) const OUT_LIMIT: usize = 1 << 20;

/// A connection past setup.
pub(crate) struct Link {
    conn: Connection,
    /// What the task queued; written as the socket takes it.
    pub out: BytesMut,
    /// Sends our heartbeat every half interval, as client libraries do; `None` without heartbeats.
    beat: Option<Interval>,
    heartbeat: Duration,
    last_rx: Instant,
    /// The current silence of the broker was already counted as late.
    late_counted: bool,
    /// Where late heartbeats are counted.
    tally: Arc<Tally>,
}

impl Link {
    /// Takes over a connection whose setup is done.
    pub(crate) fn new(conn: Connection, tally: Arc<Tally>) -> Link {
        let heartbeat = Duration::from_secs(u64::from(conn.heartbeat));
        let beat = (conn.heartbeat > 0).then(|| {
            let half = heartbeat / 2;
            let mut beat = interval_at(tokio::time::Instant::now() + half, half);
            beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
            beat
        });
        Link {
            conn,
            out: BytesMut::new(),
            beat,
            heartbeat,
            last_rx: Instant::now(),
            late_counted: false,
            tally,
        }
    }

    /// The broker's next frame other than a heartbeat. Answers connection.close with close-ok and reports it as
    /// [`LinkLost::Closed`]. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<RawFrame, LinkLost> {
        loop {
            if let Some(frame) = self.conn.early.pop_front() {
                return Ok(frame);
            }
            match self.conn.splitter.next_frame(&mut self.conn.inbuf) {
                Ok(Some(frame)) if frame.kind == FrameKind::Heartbeat => continue,
                Ok(Some(frame)) => return self.screen(frame),
                Ok(None) => {}
                Err(e) => return Err(LinkLost::Protocol(e.text)),
            }
            tokio::select! {
                ready = self.conn.read.readable() => {
                    ready.map_err(|e| LinkLost::Socket(format!("read: {e}")))?;
                    self.conn.inbuf.reserve(4096);
                    match self.conn.read.try_read_buf(&mut self.conn.inbuf) {
                        Ok(0) => return Err(LinkLost::Socket("the broker closed the socket".to_owned())),
                        Ok(_) => {
                            self.last_rx = Instant::now();
                            self.late_counted = false;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(LinkLost::Socket(format!("read: {e}"))),
                    }
                }
                ready = self.conn.write.writable(), if !self.out.is_empty() => {
                    ready.map_err(|e| LinkLost::Socket(format!("write: {e}")))?;
                    match self.conn.write.try_write(&self.out) {
                        Ok(n) => self.out.advance(n),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(LinkLost::Socket(format!("write: {e}"))),
                    }
                }
                _ = tick(&mut self.beat) => {
                    put_heartbeat(&mut self.out);
                    if !self.late_counted && self.last_rx.elapsed() > 2 * self.heartbeat {
                        // The broker said nothing for two intervals: its heartbeats are late or missing.
                        self.late_counted = true;
                        Tally::bump(&self.tally.late_heartbeats);
                    }
                }
            }
        }
    }

    /// Passes `frame` on, unless it is the broker closing the connection.
    fn screen(&mut self, frame: RawFrame) -> Result<RawFrame, LinkLost> {
        if frame.channel == 0 && frame.kind == FrameKind::Method {
            if let Ok(AMQPClass::Connection(connection::AMQPMethod::Close(close))) =
                decode_method(&frame.payload)
            {
                put_method(
                    &mut self.out,
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                // Best effort: the broker closes the socket once it has the close-ok, or soon anyway.
                let _ = self.conn.write.try_write(&self.out);
                return Err(LinkLost::Closed {
                    code: close.reply_code,
                    text: close.reply_text.to_string(),
                });
            }
        }
        Ok(frame)
    }

    /// Closes the connection as a client does: connection.close, then frames are read (and dropped) until
    /// close-ok, for at most `wait`.
    pub(crate) async fn close(mut self, wait: Duration) -> Result<(), LinkLost> {
        put_method(
            &mut self.out,
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "soak done".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        let close_ok = async {
            loop {
                let frame = self.next().await?;
                if frame.channel == 0
                    && matches!(
                        decode_method(&frame.payload),
                        Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))
                    )
                {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(wait, close_ok)
            .await
            .map_err(|_| LinkLost::Socket(format!("no close-ok within {wait:?}")))?
    }
}

/// The next tick of `beat`, or never.
async fn tick(beat: &mut Option<Interval>) {
    match beat {
        Some(beat) => {
            beat.tick().await;
        }
        None => std::future::pending().await,
    }
}
