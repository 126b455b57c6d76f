//! Drives the sans-IO [`Handshake`] over a stream: reads bytes into the connection's buffer, feeds them in, writes
//! what it returns, and holds the whole exchange (refusals included) to the configured handshake deadline.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::handshake::{
    AfterRefusal, ConnectionIdentity, Handshake, HandshakeStep, Negotiated, Refusal,
};
use super::transport::TlsPeer;
use crate::broker::Broker;

/// Runs the handshake within `limits.handshake_timeout` (`tls` is what a TLS stream established, for EXTERNAL;
/// `identity` what its events name); None if the connection is not to be served (the reason was logged and,
/// where RabbitMQ does, sent). Bytes the client sent after connection.open stay in `buf`.
#[allow(clippy::too_many_arguments)] // the stream's halves, its buffer, and who is at each end
pub(crate) async fn run<R, W>(
    broker: &Broker,
    read: &mut R,
    write: &mut W,
    buf: &mut BytesMut,
    peer: SocketAddr,
    tls: Option<TlsPeer>,
    identity: ConnectionIdentity,
) -> Option<Negotiated>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let deadline = broker.config.limits.handshake_timeout;
    let mut handshake = Handshake::new(broker, peer)
        .with_tls(tls)
        .with_identity(identity);
    match tokio::time::timeout(deadline, drive(&mut handshake, read, write, buf)).await {
        Ok(negotiated) => negotiated,
        Err(_) => {
            tracing::warn!(%peer, "closing AMQP connection {peer}: handshake_timeout - waiting for the handshake took longer than {deadline:?}");
            None
        }
    }
}

async fn drive<R, W>(
    handshake: &mut Handshake<'_>,
    read: &mut R,
    write: &mut W,
    buf: &mut BytesMut,
) -> Option<Negotiated>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        match handshake.handle_input(buf) {
            HandshakeStep::Send(bytes) => write.write_all(&bytes).await.ok()?,
            HandshakeStep::NeedMore => {
                if !read_more(read, buf).await {
                    handshake.handle_eof();
                    return None;
                }
            }
            HandshakeStep::Done(negotiated) => return Some(negotiated),
            HandshakeStep::Refused(refusal) => {
                refuse(handshake, refusal, read, write, buf).await;
                return None;
            }
            HandshakeStep::Closed => return None,
        }
    }
}

/// Writes the refusal's reply, waits as it says, then shuts the socket down.
async fn refuse<R, W>(
    handshake: &mut Handshake<'_>,
    refusal: Refusal,
    read: &mut R,
    write: &mut W,
    buf: &mut BytesMut,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if let Some(reply) = refusal.reply {
        let _ = write.write_all(&reply).await;
    }
    match refusal.then {
        AfterRefusal::Shutdown => {}
        AfterRefusal::AwaitCloseOk(wait) => {
            let close_ok = async {
                while let HandshakeStep::NeedMore = handshake.handle_input(buf) {
                    if !read_more(read, buf).await {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(wait, close_ok).await;
        }
        AfterRefusal::Linger(delay) => tokio::time::sleep(delay).await,
    }
    let _ = write.shutdown().await;
}

/// Reads what the peer sent; false at the end of the stream or on an error.
async fn read_more<R: AsyncRead + Unpin>(read: &mut R, buf: &mut BytesMut) -> bool {
    buf.reserve(4096);
    matches!(read.read_buf(buf).await, Ok(n) if n > 0)
}
