//! One broker a shovel (or, later, a federation link) connects to: RabbitMQ's AMQP URI
//! (`amqp[s]://user:pass@host:port/vhost?options`) read with its defaults and query options, and the connection
//! made from it with lapin.
//!
//! The URI is parsed here rather than by lapin because RabbitMQ's has options lapin's parser drops (the TLS files)
//! and lapin's takes a numeric host for none (an IP address becomes `localhost`).
//!
//! A URI with no host (`amqp://`, `amqp:///vhost`) is RabbitMQ's direct connection to the local node: here a
//! loopback connection to this node's own listener as its internal user (`auth::access::INTERNAL_USER`).

use std::path::PathBuf;
use std::time::Duration;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{
    AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism,
};
use lapin::{Connection, ConnectionProperties};

/// How long a connection attempt may take when the URI does not say (`connection_timeout`, milliseconds).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// This node, as its own shovels and links reach it: its AMQP listener and its internal user's password.
#[derive(Clone, Debug)]
pub struct LocalNode {
    /// The node's AMQP listener (a loopback address when it listens on every interface).
    pub addr: std::net::SocketAddr,
    /// The internal user's password.
    pub secret: String,
}

/// A broker to connect to, as its URI gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    uri: AMQPUri,
    /// No host: this node (RabbitMQ's direct connection).
    local: bool,
    /// `cacertfile`: the CA certificates (PEM) that verify the server.
    ca_file: Option<PathBuf>,
    /// `certfile` and `keyfile`: the client's certificate and key (PEM).
    client_identity: Option<(PathBuf, PathBuf)>,
    /// The URI without its password, for statuses and headers.
    display: String,
}

impl Endpoint {
    /// Reads a URI, refusing what Warren cannot honour rather than ignoring it.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(text).map_err(|e| e.to_string())?;
        let scheme = match url.scheme() {
            "amqp" => AMQPScheme::AMQP,
            "amqps" => AMQPScheme::AMQPS,
            other => return Err(format!("unknown scheme '{other}' (amqp or amqps)")),
        };
        let (host, local) = match url.host_str() {
            None | Some("") => (String::new(), true),
            // IPv6 literals come bracketed; the socket address wants them bare.
            Some(h) => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                false,
            ),
        };
        if local && scheme == AMQPScheme::AMQPS {
            return Err("amqps:// needs a host (a URI without one is the local node)".to_owned());
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|e| e.to_string())
        };
        let username = match url.username() {
            "" => "guest".to_owned(),
            user => decode(user)?,
        };
        let password = match url.password() {
            None => "guest".to_owned(),
            Some(p) => decode(p)?,
        };
        // As RabbitMQ: no path is the vhost "/", "/" alone is the vhost "".
        let vhost = match url.path() {
            "" => "/".to_owned(),
            path => decode(&path[1..])?,
        };
        let mut query = AMQPQueryString::default();
        let mut ca_file = None;
        let (mut cert_file, mut key_file) = (None, None);
        for (key, value) in url.query_pairs() {
            let number = |what: &str| -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{what} should be a number, actually was '{value}'"))
            };
            match key.as_ref() {
                "heartbeat" => query.heartbeat = Some(narrow(number("heartbeat")?, "heartbeat")?),
                "connection_timeout" => query.connection_timeout = Some(number("connection_timeout")?),
                "channel_max" => {
                    query.channel_max = Some(narrow(number("channel_max")?, "channel_max")?)
                }
                "frame_max" => query.frame_max = Some(narrow(number("frame_max")?, "frame_max")?),
                "auth_mechanism" => {
                    query.auth_mechanism = Some(match value.to_ascii_lowercase().as_str() {
                        "plain" => SASLMechanism::Plain,
                        "amqplain" => SASLMechanism::AMQPlain,
                        "external" => SASLMechanism::External,
                        other => return Err(format!("auth_mechanism '{other}' is not supported (plain, amqplain, external)")),
                    })
                }
                "cacertfile" => ca_file = Some(PathBuf::from(value.as_ref())),
                "certfile" => cert_file = Some(PathBuf::from(value.as_ref())),
                "keyfile" => key_file = Some(PathBuf::from(value.as_ref())),
                // Warren's client always verifies the server against `cacertfile` (or the system's roots).
                "verify" if value == "verify_peer" => {}
                "server_name_indication" if value == host => {}
                "verify" | "server_name_indication" | "fail_if_no_peer_cert" | "password" | "depth" => {
                    return Err(format!(
                        "the TLS option {key}={value} is not supported by Warren's client (it verifies the server's certificate for the URI's host)"
                    ))
                }
                other => return Err(format!("unknown URI option '{other}'")),
            }
        }
        let client_identity = match (cert_file, key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => return Err("certfile and keyfile go together".to_owned()),
        };
        if scheme == AMQPScheme::AMQP && (ca_file.is_some() || client_identity.is_some()) {
            return Err("TLS options need an amqps:// URI".to_owned());
        }
        let port = url.port().unwrap_or(match scheme {
            AMQPScheme::AMQP => 5672,
            AMQPScheme::AMQPS => 5671,
        });
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(None);
        }
        Ok(Endpoint {
            uri: AMQPUri {
                scheme,
                authority: AMQPAuthority {
                    userinfo: AMQPUserInfo { username, password },
                    host,
                    port,
                },
                vhost,
                query,
            },
            local,
            ca_file,
            client_identity,
            display: shown.to_string(),
        })
    }

    /// The URI without its password.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Where it connects: host, port, and whether over TLS (a hostless URI: `local`).
    pub fn address(&self, local: &LocalNode) -> (String, u16, bool) {
        match self.local {
            true => (local.addr.ip().to_string(), local.addr.port(), false),
            false => (
                self.uri.authority.host.clone(),
                self.uri.authority.port,
                self.uri.scheme == AMQPScheme::AMQPS,
            ),
        }
    }

    /// The vhost it names.
    pub fn vhost(&self) -> &str {
        &self.uri.vhost
    }

    /// Whether it is this node (no host).
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Connects, naming the connection `name` (shown in the other broker's connection list), within the URI's
    /// `connection_timeout`; a hostless URI reaches `local`.
    pub async fn connect(&self, name: &str, local: &LocalNode) -> Result<Connection, String> {
        let mut uri = self.uri.clone();
        if self.local {
            uri.authority = AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: crate::auth::access::INTERNAL_USER.to_owned(),
                    password: local.secret.clone(),
                },
                host: local.addr.ip().to_string(),
                port: local.addr.port(),
            };
        }
        let tls = OwnedTLSConfig {
            identity: match &self.client_identity {
                None => None,
                Some((cert, key)) => Some(OwnedIdentity::PKCS8 {
                    pem: read(cert)?,
                    key: read(key)?,
                }),
            },
            cert_chain: match &self.ca_file {
                None => None,
                Some(ca) => Some(
                    String::from_utf8(read(ca)?)
                        .map_err(|_| format!("cacertfile {} is not PEM text", ca.display()))?,
                ),
            },
        };
        let properties =
            ConnectionProperties::default().with_connection_name(name.to_owned().into());
        let timeout = self
            .uri
            .query
            .connection_timeout
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let connecting = Connection::connect_uri_with_config(
            uri,
            properties,
            tls,
            lapin::runtime::default_runtime().map_err(|e| e.to_string())?,
        );
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(format!("{}: {e}", self.display)),
            Err(_) => Err(format!(
                "{}: no connection within {} ms",
                self.display,
                timeout.as_millis()
            )),
        }
    }
}

fn narrow<T: TryFrom<u64>>(value: u64, what: &str) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("{what} is out of range: {value}"))
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
