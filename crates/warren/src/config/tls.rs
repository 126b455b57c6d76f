//! The TLS and SASL side of the configuration: extra listeners (`[listeners]`), RabbitMQ's `ssl_options`, and which
//! SASL mechanisms are offered and how EXTERNAL finds a user name in a client certificate. Names and defaults are
//! RabbitMQ's (`listeners.ssl.*`, `ssl_options.*`, `auth_mechanisms.*`, `ssl_cert_login_*`), in TOML form.

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

/// A SASL mechanism Warren implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`.
    Plain,
    /// `AMQPLAIN`.
    Amqplain,
    /// `EXTERNAL`: the user named by the client's TLS certificate (RabbitMQ's rabbitmq_auth_mechanism_ssl).
    External,
}

impl Mechanism {
    /// The mechanisms Warren implements, in the order they are offered.
    pub const ALL: [Mechanism; 3] = [Mechanism::Plain, Mechanism::Amqplain, Mechanism::External];

    /// The name sent in connection.start and chosen in start-ok.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Amqplain => "AMQPLAIN",
            Mechanism::External => "EXTERNAL",
        }
    }

    /// The mechanism called `name`, if Warren implements it.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Where EXTERNAL takes the user name from (`ssl_cert_login_from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertLoginFrom {
    /// `distinguished_name`: the subject as RabbitMQ formats it (`CN=alice,O=example,C=GB`). The default.
    DistinguishedName,
    /// `common_name`: the subject's CN (several are joined with `,`).
    CommonName,
    /// `subject_alternative_name`: one subjectAltName entry, chosen by `san_type` and `san_index`.
    SubjectAlternativeName,
}

/// The kind of subjectAltName entry EXTERNAL reads (`ssl_cert_login_san_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SanType {
    /// `dns`, the default.
    Dns,
    /// `email`.
    Email,
    /// `uri`.
    Uri,
}

/// SASL settings: the mechanisms offered and how EXTERNAL names its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslConfig {
    /// The mechanisms offered in connection.start (RabbitMQ's `auth_mechanisms`). EXTERNAL is offered only on TLS
    /// listeners with `verify_peer`. Default PLAIN and AMQPLAIN.
    pub mechanisms: Vec<Mechanism>,
    /// Default `distinguished_name`.
    pub cert_login_from: CertLoginFrom,
    /// Default `dns`.
    pub san_type: SanType,
    /// Which entry of that type, from 0 (`ssl_cert_login_san_index`). Default 0.
    pub san_index: usize,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            mechanisms: vec![Mechanism::Plain, Mechanism::Amqplain],
            cert_login_from: CertLoginFrom::DistinguishedName,
            san_type: SanType::Dns,
            san_index: 0,
        }
    }
}
