//! The TLS side of the configuration: extra listeners (`[listeners]`) and RabbitMQ's `ssl_options`. Names and
//! defaults are RabbitMQ's (`listeners.ssl.*`, `ssl_options.*`), in TOML form.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Listeners besides `listen` (RabbitMQ's `listeners.tcp.*` and `listeners.ssl.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listeners {
    /// More plain AMQP listeners, served next to `listen`. Default none.
    pub tcp: Vec<SocketAddr>,
    /// AMQP over TLS listeners (RabbitMQ's usual port is 5671); they need `[ssl_options]` certfile and keyfile.
    /// Default none.
    pub ssl: Vec<SocketAddr>,
}

/// Whether the broker asks TLS clients for a certificate (`ssl_options.verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// `verify_none`: no client certificate is asked for. The default, as in RabbitMQ.
    None,
    /// `verify_peer`: a client certificate is asked for and must chain to `cacertfile`.
    Peer,
}

/// A TLS protocol version (`ssl_options.versions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// `tlsv1.2`.
    Tls12,
    /// `tlsv1.3`.
    Tls13,
}

impl TlsVersion {
    /// RabbitMQ's name for the version.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tlsv1.2",
            TlsVersion::Tls13 => "tlsv1.3",
        }
    }
}

/// RabbitMQ's `ssl_options`, for every TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SslOptions {
    /// The server's certificate chain, PEM, leaf first. Required with TLS listeners.
    pub certfile: Option<PathBuf>,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1). Required with TLS listeners.
    pub keyfile: Option<PathBuf>,
    /// The CA certificates (PEM) client certificates must chain to. Required with `verify_peer`.
    pub cacertfile: Option<PathBuf>,
    /// Default `verify_none`.
    pub verify: Verify,
    /// With `verify_peer`: refuse a client that presents no certificate. Default false, as in RabbitMQ.
    pub fail_if_no_peer_cert: bool,
    /// The TLS versions offered. Default TLS 1.3 and 1.2.
    pub versions: Vec<TlsVersion>,
    /// How long a client has from TCP accept to a finished TLS handshake (RabbitMQ's `ssl_handshake_timeout`).
    /// Default 5 s. The AMQP `handshake_timeout` runs after it.
    pub handshake_timeout: Duration,
}

impl Default for SslOptions {
    fn default() -> Self {
        SslOptions {
            certfile: None,
            keyfile: None,
            cacertfile: None,
            verify: Verify::None,
            fail_if_no_peer_cert: false,
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            handshake_timeout: Duration::from_millis(5000),
        }
    }
}
