//! The byte stream a connection runs over, split into the half its reader task reads and the half its writer task
//! writes. TCP splits without a lock; any other stream (rustls's `TlsStream`, an in-memory duplex in tests) plugs in
//! through [`SharedStream`] without touching the reader, the writer or the channels.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A connection's byte stream, as `serve` takes it.
pub(crate) trait Transport: Send + 'static {
    /// The half the reader task owns.
    type Reader: TransportRead;
    /// The half the writer task owns.
    type Writer: AsyncWrite + Unpin + Send + 'static;

    /// Splits the stream so that reading and writing run on separate tasks.
    fn split(self) -> (Self::Reader, Self::Writer);

    /// The broker's end of the connection, which names it in listings; None if the stream has no address.
    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// What TLS established, for SASL EXTERNAL; None on a plain stream.
    fn tls_peer(&self) -> Option<TlsPeer> {
        None
    }
}

/// What the TLS handshake of a connection established about the client.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsPeer {
    /// The client's certificate (DER), if it presented one; it was verified against `cacertfile`.
    pub(crate) certificate: Option<Vec<u8>>,
}

/// The read half of a [`Transport`].
pub(crate) trait TransportRead: AsyncRead + Unpin + Send + 'static {
    /// Ready when a read would find bytes (or the end of the stream, or an error). The reader reserves its read
    /// buffer only after this, so an idle connection holds no read buffer. The default is always ready: the reader
    /// then waits in the read itself, holding the space it reserved.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// TCP's owned halves read and write at the same instant: no lock between the reader and the writer.
impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        TcpStream::local_addr(self).ok()
    }
}

impl TransportRead for OwnedReadHalf {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

/// A TLS connection of a TLS listener. Its halves share a lock (rustls keeps one session state for both
/// directions) and, having no readiness probe, an idle connection keeps its read buffer.
impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    type Reader = tokio::io::ReadHalf<Self>;
    type Writer = tokio::io::WriteHalf<Self>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.get_ref().0.local_addr().ok()
    }

    fn tls_peer(&self) -> Option<TlsPeer> {
        let certificate = self
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.to_vec());
        Some(TlsPeer { certificate })
    }
}

/// Any other stream, split with `tokio::io::split`. Its halves share a lock, so a read and a write never overlap,
/// and it has no readiness probe, so an idle connection keeps its read buffer: fine for TLS, whose records are
/// decrypted in one place anyway.
// Unused outside the tests: TLS listeners serve through their own `Transport` impl above.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct SharedStream<S>(pub(crate) S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for SharedStream<S> {
    type Reader = tokio::io::ReadHalf<S>;
    type Writer = tokio::io::WriteHalf<S>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self.0)
    }
}

impl<S: AsyncRead + Unpin + Send + 'static> TransportRead for tokio::io::ReadHalf<S> {}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::SharedStream;
    use crate::broker::Broker;
    use crate::config::Config;

    /// Reads one frame's bytes and returns (type, channel, class id, method id).
    async fn read_method(client: &mut tokio::io::DuplexStream) -> (u8, u16, u16, u16) {
        let mut head = [0u8; 7];
        client.read_exact(&mut head).await.expect("frame header");
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut rest = vec![0u8; size + 1];
        client.read_exact(&mut rest).await.expect("frame payload");
        let ids = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
        (
            head[0],
            u16::from_be_bytes([head[1], head[2]]),
            ids(0),
            ids(2),
        )
    }

    fn frame(channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out.push(0xCE);
        out
    }

    #[tokio::test]
    async fn a_connection_is_served_over_an_in_memory_stream() {
        let data_dir =
            std::env::temp_dir().join(format!("warren-transport-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let broker = Broker::open(Config {
            data_dir,
            ..Config::default()
        })
        .expect("broker opens");
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        let served = tokio::spawn(super::super::serve(broker, SharedStream(server), peer));

        client
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("header");
        assert_eq!(read_method(&mut client).await, (1, 0, 10, 10));
        let mut start_ok = vec![0, 10, 0, 11, 0, 0, 0, 0, 5];
        start_ok.extend_from_slice(b"PLAIN");
        start_ok.extend_from_slice(&12u32.to_be_bytes());
        start_ok.extend_from_slice(b"\0guest\0guest");
        start_ok.extend_from_slice(&[5, b'e', b'n', b'_', b'U', b'S']);
        client
            .write_all(&frame(0, &start_ok))
            .await
            .expect("start-ok");
        assert_eq!(read_method(&mut client).await, (1, 0, 10, 30));
        let tune_ok = [0, 10, 0, 31, 0x07, 0xFF, 0, 2, 0, 0, 0, 0];
        let mut input = frame(0, &tune_ok);
        input.extend_from_slice(&frame(0, &[0, 10, 0, 40, 1, b'/', 0, 0]));
        input.extend_from_slice(&frame(1, &[0, 20, 0, 10, 0]));
        client
            .write_all(&input)
            .await
            .expect("tune-ok, open, channel.open");
        assert_eq!(read_method(&mut client).await, (1, 0, 10, 41));
        assert_eq!(read_method(&mut client).await, (1, 1, 20, 11));

        // connection.close 200, then close-ok and the end of the stream.
        let close = [0, 10, 0, 50, 0, 200, 0, 0, 0, 0, 0];
        client.write_all(&frame(0, &close)).await.expect("close");
        assert_eq!(read_method(&mut client).await, (1, 0, 10, 51));
        served.await.expect("serve ends after close");
    }
}
