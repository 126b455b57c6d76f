//! The byte stream a load-generator connection runs over: TCP's owned halves, or the halves of a TLS stream
//! (`amqps://`, rustls, trusting the CA of `--ca-cert`). The hot path reads and writes either the same way; the
//! soak's readiness-driven links run over TCP only.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The half of a connection its reader owns.
pub(crate) enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS over TCP.
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The half of a connection its writer owns.
pub(crate) enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

/// Splits a TCP stream.
pub(crate) fn plain(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    let (read, write) = stream.into_split();
    (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
}

/// Runs a TLS handshake over `stream` with `host` (a name or an IP address, as the certificate names it), trusting
/// the CA certificates in `ca_file`, and splits the result.
pub(crate) async fn tls(
    stream: TcpStream,
    host: &str,
    ca_file: &Path,
) -> io::Result<(ReadHalf, WriteHalf)> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| invalid(format!("--ca-cert {}: {e}", ca_file.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| invalid(format!("--ca-cert {}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("--ca-cert {}: {e}", ca_file.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|e| invalid(format!("{host}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    let (read, write) = tokio::io::split(stream);
    Ok((ReadHalf::Tls(read), WriteHalf::Tls(write)))
}

fn tcp_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "readiness-driven I/O runs over plain TCP only",
    )
}

impl ReadHalf {
    /// Waits until a read would not block (TCP only).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            ReadHalf::Tcp(read) => read.readable().await,
            ReadHalf::Tls(_) => Err(tcp_only()),
        }
    }

    /// Reads what is there without waiting (TCP only).
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(read) => read.try_read_buf(buf),
            ReadHalf::Tls(_) => Err(tcp_only()),
        }
    }
}

impl WriteHalf {
    /// Waits until a write would not block (TCP only).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            WriteHalf::Tcp(write) => write.writable().await,
            WriteHalf::Tls(_) => Err(tcp_only()),
        }
    }

    /// Writes what fits without waiting (TCP only).
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Tcp(write) => write.try_write(bytes),
            WriteHalf::Tls(_) => Err(tcp_only()),
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(read) => Pin::new(read).poll_read(cx, buf),
            ReadHalf::Tls(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_write(cx, bytes),
            WriteHalf::Tls(write) => Pin::new(write).poll_write(cx, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_flush(cx),
            WriteHalf::Tls(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_shutdown(cx),
            WriteHalf::Tls(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}
