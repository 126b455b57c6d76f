//! The writer task: emits settled publisher confirms, takes everything queued and writes it with vectored
//! writes, one flush per drain; sends a heartbeat when nothing was written for half a heartbeat interval.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::metrics::counters::{Counter, NodeCounters};
use crate::metrics::NodeMetrics;
use crate::registry::Traffic;
use crate::session::ConnectionShared;
use warren_protocol::frame::put_heartbeat;

/// Most slices passed to one writev (Linux's IOV_MAX is 1024).
const MAX_IOV: usize = 512;

/// What the writer counts into: confirms into the node's and the vhost's counters, bytes into the connection's
/// traffic.
pub(crate) struct WriterMetrics {
    /// The node's metrics (confirms, confirm latency).
    pub(crate) node: Arc<NodeMetrics>,
    /// The connection's vhost's counters.
    pub(crate) vhost: Arc<NodeCounters>,
    /// The connection's socket traffic.
    pub(crate) traffic: Arc<Traffic>,
}

/// Writes the connection's outbound queue to `socket` until the queue is closed or a write fails or makes no
/// progress for `send_timeout` (the peer stopped reading): then the queue is closed, which ends the reader too.
pub(crate) async fn run<W: AsyncWrite + Unpin>(
    info: Arc<ConnectionShared>,
    metrics: WriterMetrics,
    mut socket: W,
    heartbeat_secs: u16,
    send_timeout: Option<Duration>,
) {
    // Heartbeats go out at half the negotiated interval when idle, as RabbitMQ sends them, so a client that
    // checks once per interval always sees traffic.
    let heartbeat =
        (heartbeat_secs > 0).then(|| Duration::from_millis(500 * u64::from(heartbeat_secs)));
    // One timer for the connection's life, re-armed only when it fires: a wait for more to write registers no
    // timer of its own (a timer-wheel insert and removal per wait, on a path taken many times a millisecond).
    let mut last_write = Instant::now();
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let heartbeat_timer =
        tokio::time::sleep_until(heartbeat.map_or(far_future, |i| last_write + i));
    tokio::pin!(heartbeat_timer);
    loop {
        // Confirms are counted per ack batch written, not per message (see `metrics::counters`).
        let mut confirmed = 0;
        for tracker in info.take_confirm_flushes() {
            let flushed = tracker.flush();
            confirmed += flushed.acked;
            if let Some(wait) = flushed.oldest_wait {
                metrics.node.confirm_latency.observe(wait, info.id);
            }
        }
        if confirmed > 0 {
            metrics
                .node
                .counters
                .add(Counter::Confirmed, confirmed, info.id);
            metrics.vhost.add(Counter::Confirmed, confirmed, info.id);
        }
        if let Some(chunks) = info.outbound.take() {
            let total: usize = chunks.iter().map(Bytes::len).sum();
            if let Err(error) = write_all(&mut socket, &chunks, send_timeout).await {
                if error.kind() == std::io::ErrorKind::TimedOut {
                    tracing::warn!(peer = %info.peer, "closing connection {}: the client has not read for {} ms (send_timeout)", info.peer, send_timeout.map_or(0, |t| t.as_millis()));
                } else {
                    tracing::debug!(%error, peer = %info.peer, "write failed");
                }
                info.outbound.close();
                break;
            }
            info.outbound.written(total);
            metrics.traffic.sent(total as u64);
            if heartbeat.is_some() {
                last_write = Instant::now();
            }
            continue;
        }
        if info.outbound.is_closed() {
            break;
        }
        let Some(interval) = heartbeat else {
            info.outbound.ready.notified().await;
            continue;
        };
        tokio::select! {
            biased;
            _ = info.outbound.ready.notified() => {}
            _ = &mut heartbeat_timer => {
                let now = Instant::now();
                if now >= last_write + interval {
                    let mut frame = BytesMut::with_capacity(8);
                    put_heartbeat(&mut frame);
                    if write_all(&mut socket, &[frame.freeze()], send_timeout)
                        .await
                        .is_err()
                    {
                        info.outbound.close();
                        break;
                    }
                    last_write = now;
                }
                heartbeat_timer.as_mut().reset(last_write + interval);
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Writes `chunks` in order; each write that makes no progress within `send_timeout` fails with `TimedOut`.
async fn write_all<W: AsyncWrite + Unpin>(
    socket: &mut W,
    chunks: &[Bytes],
    send_timeout: Option<Duration>,
) -> std::io::Result<()> {
    let mut index = 0;
    let mut offset = 0;
    while index < chunks.len() {
        let mut slices = Vec::with_capacity((chunks.len() - index).min(MAX_IOV));
        slices.push(IoSlice::new(&chunks[index][offset..]));
        for chunk in chunks[index + 1..].iter().take(MAX_IOV - 1) {
            slices.push(IoSlice::new(chunk));
        }
        let mut written = write_vectored_within(socket, &slices, send_timeout).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while index < chunks.len() && written > 0 {
            let left = chunks[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

/// One vectored write that fails with `TimedOut` when it makes no progress within `send_timeout`. The write is
/// tried first: the timer (a clock read and a timer-wheel entry) is set up only when the socket is full.
async fn write_vectored_within<W: AsyncWrite + Unpin>(
    socket: &mut W,
    slices: &[IoSlice<'_>],
    send_timeout: Option<Duration>,
) -> std::io::Result<usize> {
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = Pin::new(&mut *socket).poll_write_vectored(cx, slices) {
            return Poll::Ready(result);
        }
        let Some(limit) = send_timeout else {
            return Poll::Pending;
        };
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
