//! The writer task: emits settled publisher confirms, takes everything queued and writes it with vectored
//! writes, one flush per drain; sends a heartbeat when nothing was written for half a heartbeat interval.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::session::ConnectionShared;
use warren_protocol::frame::put_heartbeat;

/// Most slices passed to one writev (Linux's IOV_MAX is 1024).
const MAX_IOV: usize = 512;

/// Writes the connection's outbound queue to `socket` until the queue is closed or a write fails or makes no
/// progress for `send_timeout` (the peer stopped reading): then the queue is closed, which ends the reader too.
pub(crate) async fn run<W: AsyncWrite + Unpin>(
    info: Arc<ConnectionShared>,
    mut socket: W,
    heartbeat_secs: u16,
    send_timeout: Option<Duration>,
) {
    // Heartbeats go out at half the negotiated interval when idle, as RabbitMQ sends them, so a client that
    // checks once per interval always sees traffic.
    let heartbeat =
        (heartbeat_secs > 0).then(|| Duration::from_millis(500 * u64::from(heartbeat_secs)));
    loop {
        for tracker in info.take_confirm_flushes() {
            tracker.flush();
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
            continue;
        }
        if info.outbound.is_closed() {
            break;
        }
        match heartbeat {
            None => info.outbound.ready.notified().await,
            Some(interval) => {
                if tokio::time::timeout(interval, info.outbound.ready.notified())
                    .await
                    .is_err()
                {
                    let mut frame = BytesMut::with_capacity(8);
                    put_heartbeat(&mut frame);
                    if write_all(&mut socket, &[frame.freeze()], send_timeout)
                        .await
                        .is_err()
                    {
                        info.outbound.close();
                        break;
                    }
                }
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
        let write = socket.write_vectored(&slices);
        let mut written = match send_timeout {
            Some(limit) => tokio::time::timeout(limit, write)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??,
            None => write.await?,
        };
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
