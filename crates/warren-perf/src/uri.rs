//! `amqp://user:pass@host:port/vhost` as RabbitMQ's URI spec reads it: user, password and vhost percent-decoded,
//! no path meaning the vhost "/", port 5672 by default. `amqps://` is AMQP over TLS, port 5671 by default; the CA
//! to trust comes from `--ca-cert`.

use super::PerfError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AmqpUri {
    pub user: String,
    pub password: String,
    /// `host:port`, as `TcpStream::connect` takes it (IPv6 hosts keep their brackets).
    pub address: String,
    pub vhost: String,
    /// `amqps://`: AMQP over TLS.
    pub tls: bool,
    /// The host as the URI names it (what the server's certificate must name, with TLS).
    pub host: String,
    /// The CA certificates (PEM) a TLS server's certificate must chain to; set from `--ca-cert`.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl AmqpUri {
    pub(crate) fn parse(uri: &str) -> Result<AmqpUri, PerfError> {
        let invalid = |why: &str| PerfError::InvalidOptions(format!("--uri {uri}: {why}"));
        let (tls, rest) = match uri.split_once("://") {
            Some(("amqp", rest)) => (false, rest),
            Some(("amqps", rest)) => (true, rest),
            _ => return Err(invalid("expected amqp://user:pass@host:port/vhost")),
        };
        let rest = rest.split_once('?').map_or(rest, |(r, _query)| r);
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => ("guest".to_owned(), "guest".to_owned()),
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                (
                    percent_decode(user)
                        .ok_or_else(|| invalid("bad percent-encoding in the user"))?,
                    percent_decode(password)
                        .ok_or_else(|| invalid("bad percent-encoding in the password"))?,
                )
            }
        };
        let default_port = if tls { 5671 } else { 5672 };
        let (host, port) =
            split_host_port(hostport, default_port).ok_or_else(|| invalid("bad host:port"))?;
        let host = if host.is_empty() { "localhost" } else { host };
        let vhost = match path {
            None => "/".to_owned(),
            Some(path) => {
                percent_decode(path).ok_or_else(|| invalid("bad percent-encoding in the vhost"))?
            }
        };
        Ok(AmqpUri {
            user,
            password,
            address: format!("{host}:{port}"),
            vhost,
            tls,
            host: host.to_owned(),
            ca_cert: None,
        })
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to `default_port`.
fn split_host_port(hostport: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        let (host, after) = hostport.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok()?,
    };
    Some((host, port))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> AmqpUri {
        AmqpUri::parse(uri).expect("valid uri")
    }

    #[test]
    fn the_default_uri_is_guest_on_the_root_vhost() {
        let uri = parse("amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(uri.user, "guest");
        assert_eq!(uri.password, "guest");
        assert_eq!(uri.address, "127.0.0.1:5672");
        assert_eq!(uri.vhost, "/");
    }

    #[test]
    fn missing_parts_take_rabbitmq_defaults() {
        let uri = parse("amqp://broker");
        assert_eq!(
            (uri.user.as_str(), uri.address.as_str(), uri.vhost.as_str()),
            ("guest", "broker:5672", "/")
        );
        assert_eq!(parse("amqp://broker/").vhost, "");
        assert_eq!(
            parse("amqp://u:p%40ss@[::1]:5673/prod?heartbeat=10").password,
            "p@ss"
        );
        assert_eq!(parse("amqp://u:p@[::1]:5673/prod").address, "[::1]:5673");
        assert_eq!(parse("amqp://u:p@[::1]/prod").address, "[::1]:5672");
    }

    #[test]
    fn amqps_is_tls_on_5671() {
        let uri = parse("amqps://u:p@broker.example/%2f");
        assert!(uri.tls);
        assert_eq!(uri.address, "broker.example:5671");
        assert_eq!(uri.host, "broker.example");
        assert!(!parse("amqp://broker").tls);
    }

    #[test]
    fn bad_uris_are_refused() {
        for bad in [
            "http://localhost",
            "localhost:5672",
            "amqp://host:port",
            "amqp://host/%zz",
            "amqp://[::1/x",
        ] {
            assert!(AmqpUri::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
