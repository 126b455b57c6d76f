//! The event loop of one client connection: a single task that owns the socket and every producer and consumer
//! on it. Each turn it lets the handlers append frames to one output buffer, then waits for whichever comes
//! first: bytes to read (split into frames and dispatched by channel), room to write the buffer (one write for
//! many messages), a handler's timer, or a phase change. Reading never stops while writing is blocked, so a broker
//! that pushes back on a publisher while delivering to a consumer on the same connection cannot deadlock it.
//! The one exception is a slow consumer (`--consumer-rate`) that is behind its budget: the loop then stops handing
//! out frames and reading until the consumer catches up, so TCP pushes back on the broker, as it would on an
//! application that reads its socket no faster than it processes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::body::now_ns;
use super::client::Connection;
use super::consumer::Consumer;
use super::producer::Producer;
use super::stream::{ReadHalf, WriteHalf};
use super::turn::{Ctx, Phase, WRITE_BATCH};
use warren_protocol::frame::{put_heartbeat, FrameKind, FrameSplitter};
use warren_protocol::{connection, decode_method, put_method, AMQPClass, RawFrame};

/// Read buffer growth for busy connections; idle ones read in small steps to stay small.
const READ_CHUNK: usize = 64 * 1024;
const IDLE_READ_CHUNK: usize = 512;
/// How long the final connection.close waits for close-ok.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What runs on one channel.
pub(crate) enum Handler {
    Producer(Producer),
    Consumer(Consumer),
    /// An open channel that does nothing until the run ends (`--idle-connections`).
    Idle {
        done: bool,
    },
}

impl Handler {
    fn is_done(&self) -> bool {
        match self {
            Handler::Producer(p) => p.is_done(),
            Handler::Consumer(c) => c.is_done(),
            Handler::Idle { done } => *done,
        }
    }

    fn poll(&mut self, ctx: &mut Ctx<'_>, phase: Phase) -> Option<Instant> {
        match self {
            Handler::Producer(p) => p.poll(ctx, phase),
            Handler::Consumer(c) => c.poll(ctx, phase),
            Handler::Idle { done } => {
                *done = phase >= Phase::StopConsuming;
                None
            }
        }
    }

    /// `false` while the handler must not be given another frame (a slow consumer behind its budget).
    fn accepts_input(&self) -> bool {
        match self {
            Handler::Consumer(c) => c.accepts_input(),
            Handler::Producer(_) | Handler::Idle { .. } => true,
        }
    }

    fn on_frame(&mut self, frame: &RawFrame, ctx: &mut Ctx<'_>) -> Result<(), String> {
        match self {
            Handler::Producer(p) => p.on_frame(frame, ctx),
            Handler::Consumer(c) => c.on_frame(frame, ctx),
            Handler::Idle { .. } => Ok(()),
        }
    }

    /// The channel or the connection is over.
    fn end(&mut self, now: Instant) {
        match self {
            Handler::Producer(p) => p.end(now),
            Handler::Consumer(c) => c.stop(now),
            Handler::Idle { done } => *done = true,
        }
    }
}

/// What a connection leaves when it ends.
pub(crate) struct DriverOutcome {
    /// The handlers, for their reports.
    pub handlers: Vec<Handler>,
    pub errors: Vec<String>,
}

pub(crate) struct Driver {
    read: ReadHalf,
    write: WriteHalf,
    inbuf: BytesMut,
    splitter: FrameSplitter,
    early: VecDeque<RawFrame>,
    heartbeat: Option<Duration>,
    /// `handlers[i]` runs on channel `i + 1`.
    handlers: Vec<Handler>,
    phase: watch::Receiver<Phase>,
    out: BytesMut,
    errors: Vec<String>,
    read_chunk: usize,
    /// Some consumer here has `--consumer-rate`: frames are dispatched by [`Driver::dispatch_frames`] with the
    /// check for a full consumer after each one. Without it the loop is exactly the unlimited one.
    paced: bool,
    /// A paced consumer stopped taking frames: complete frames may be left in `inbuf`, and the socket is not
    /// read until they are dispatched.
    stalled: bool,
}

impl Driver {
    /// Takes over a set-up connection whose channels `1..=handlers.len()` are open.
    pub(crate) fn new(
        conn: Connection,
        handlers: Vec<Handler>,
        phase: watch::Receiver<Phase>,
    ) -> Driver {
        let idle = handlers.iter().all(|h| matches!(h, Handler::Idle { .. }));
        let paced = handlers
            .iter()
            .any(|h| matches!(h, Handler::Consumer(c) if c.is_paced()));
        Driver {
            read: conn.read,
            write: conn.write,
            inbuf: conn.inbuf,
            splitter: conn.splitter,
            early: conn.early,
            heartbeat: (conn.heartbeat > 0).then(|| Duration::from_secs(u64::from(conn.heartbeat))),
            handlers,
            phase,
            out: BytesMut::with_capacity(if idle { 64 } else { 2 * WRITE_BATCH }),
            errors: Vec::new(),
            read_chunk: if idle { IDLE_READ_CHUNK } else { READ_CHUNK },
            paced,
            stalled: false,
        }
    }

    pub(crate) async fn run(mut self) -> DriverOutcome {
        let clean = self.serve().await;
        if clean {
            self.close().await;
        } else if !self.out.is_empty() {
            // A close-ok owed to the broker, if it closed the connection; best effort.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.write.write_all(&self.out)).await;
        }
        let now = Instant::now();
        for handler in &mut self.handlers {
            handler.end(now);
        }
        DriverOutcome {
            handlers: self.handlers,
            errors: self.errors,
        }
    }

    /// Runs until every handler is done (`true`) or the connection fails (`false`).
    async fn serve(&mut self) -> bool {
        let mut last_write = Instant::now();
        let mut coordinator_gone = false;
        let mut turn = 0usize;
        while let Some(frame) = self.early.pop_front() {
            let mut ctx = Ctx {
                out: &mut self.out,
                now: Instant::now(),
                now_ns: now_ns(),
            };
            if !dispatch(&mut self.handlers, &mut self.errors, &frame, &mut ctx) {
                return false;
            }
        }
        loop {
            let phase = if coordinator_gone {
                Phase::StopConsuming
            } else {
                *self.phase.borrow_and_update()
            };
            // A slow consumer that caught up takes the frames it left in the read buffer before more are read.
            if self.stalled
                && self.handlers.iter().all(Handler::accepts_input)
                && !self.dispatch_frames::<true>()
            {
                return false;
            }
            let now = Instant::now();
            let mut ctx = Ctx {
                out: &mut self.out,
                now,
                now_ns: now_ns(),
            };
            // Rotate who fills the batch first, so producers sharing a connection share it fairly.
            let n = self.handlers.len();
            let mut wake: Option<Instant> = None;
            for i in 0..n {
                let handler = &mut self.handlers[(turn + i) % n];
                if let Some(at) = handler.poll(&mut ctx, phase) {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
            turn = turn.wrapping_add(1);
            if self.out.is_empty() && self.handlers.iter().all(Handler::is_done) {
                return true;
            }
            // A heartbeat when nothing was written for half the interval; while a write is pending the
            // connection is not idle and the timer would only spin.
            if let (Some(interval), true) = (self.heartbeat, self.out.is_empty()) {
                let due = last_write + interval / 2;
                if now >= due {
                    put_heartbeat(&mut self.out);
                } else {
                    wake = Some(wake.map_or(due, |w| w.min(due)));
                }
            }
            // Polling may have let the consumer that stalled the input catch up: dispatch its frames at once.
            if self.stalled && self.handlers.iter().all(Handler::accepts_input) {
                wake = Some(now);
            }
            if self.inbuf.capacity() - self.inbuf.len() < self.read_chunk / 4 {
                self.inbuf.reserve(self.read_chunk);
            }
            let sleep = tokio::time::sleep_until(wake.unwrap_or(now).into());
            tokio::select! {
                read = self.read.read_buf(&mut self.inbuf), if !self.stalled => match read {
                    Ok(0) => {
                        self.errors.push("the broker closed the connection".to_owned());
                        return false;
                    }
                    Ok(_) => {
                        if !self.dispatch_input() {
                            return false;
                        }
                    }
                    Err(e) => {
                        self.errors.push(format!("connection lost: {e}"));
                        return false;
                    }
                },
                written = self.write.write(&self.out), if !self.out.is_empty() => match written {
                    Ok(n) => {
                        self.out.advance(n);
                        last_write = Instant::now();
                    }
                    Err(e) => {
                        self.errors.push(format!("connection lost: {e}"));
                        return false;
                    }
                },
                _ = sleep, if wake.is_some() => {}
                changed = self.phase.changed(), if !coordinator_gone => {
                    if changed.is_err() {
                        coordinator_gone = true;
                    }
                }
            }
        }
    }

    /// Splits and dispatches every complete frame read so far; `false` if the connection is over.
    fn dispatch_input(&mut self) -> bool {
        if self.paced {
            self.dispatch_frames::<true>()
        } else {
            self.dispatch_frames::<false>()
        }
    }

    /// [`Driver::dispatch_input`], compiled twice so that the unlimited path carries no check per frame. `PACED`:
    /// stop (setting `stalled`) as soon as the handler that took a frame accepts no more, leaving the rest in
    /// `inbuf`; `false` if the connection is over.
    fn dispatch_frames<const PACED: bool>(&mut self) -> bool {
        let mut ctx = Ctx {
            out: &mut self.out,
            now: Instant::now(),
            now_ns: now_ns(),
        };
        loop {
            match self.splitter.next_frame(&mut self.inbuf) {
                Ok(Some(frame)) => {
                    if !dispatch(&mut self.handlers, &mut self.errors, &frame, &mut ctx) {
                        return false;
                    }
                    if PACED {
                        let index = usize::from(frame.channel).wrapping_sub(1);
                        if self.handlers.get(index).is_some_and(|h| !h.accepts_input()) {
                            self.stalled = true;
                            return true;
                        }
                    }
                }
                Ok(None) => {
                    self.stalled = false;
                    return true;
                }
                Err(e) => {
                    self.errors
                        .push(format!("bad frame from the broker: {}", e.text));
                    return false;
                }
            }
        }
    }

    /// Flushes what is left, sends connection.close and waits (briefly) for close-ok.
    async fn close(&mut self) {
        put_method(
            &mut self.out,
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "done".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        let closing = async {
            self.write.write_all(&self.out).await?;
            self.out.clear();
            loop {
                while let Ok(Some(frame)) = self.splitter.next_frame(&mut self.inbuf) {
                    if frame.channel == 0 && frame.kind == FrameKind::Method {
                        if let Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                            decode_method(&frame.payload)
                        {
                            return Ok(());
                        }
                    }
                }
                self.inbuf.reserve(4096);
                if self.read.read_buf(&mut self.inbuf).await? == 0 {
                    return Ok(());
                }
            }
        };
        let result: Result<std::io::Result<()>, _> =
            tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.errors.push(format!("closing the connection: {e}")),
            Err(_) => self
                .errors
                .push("the broker did not answer connection.close".to_owned()),
        }
    }
}

/// Hands one frame to its channel's handler; handles channel 0. `false` if the connection is over.
fn dispatch(
    handlers: &mut [Handler],
    errors: &mut Vec<String>,
    frame: &RawFrame,
    ctx: &mut Ctx<'_>,
) -> bool {
    if frame.channel == 0 {
        if frame.kind != FrameKind::Method {
            return true;
        }
        return match decode_method(&frame.payload) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
                put_method(
                    ctx.out,
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                errors.push(format!(
                    "connection closed by the broker: {} {}",
                    close.reply_code, close.reply_text
                ));
                false
            }
            // connection.blocked / unblocked: the broker stops reading, TCP pushes back; nothing to do.
            Ok(_) => true,
            Err(e) => {
                errors.push(format!("bad method from the broker: {}", e.text));
                false
            }
        };
    }
    let Some(handler) = handlers.get_mut(usize::from(frame.channel) - 1) else {
        errors.push(format!(
            "a frame for channel {}, which this connection never opened",
            frame.channel
        ));
        return false;
    };
    if let Err(error) = handler.on_frame(frame, ctx) {
        errors.push(error);
        handler.end(ctx.now);
    }
    true
}
