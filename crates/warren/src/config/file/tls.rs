//! The config file's TLS keys: `[listeners]` and `[ssl_options]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::non_empty;
use crate::config::source::TomlSource;
use crate::config::tls::{TlsVersion, Verify};
use crate::config::{Config, ConfigError};

/// `[listeners]`: RabbitMQ's `listeners.tcp.*` and `listeners.ssl.*` as lists of `IP:PORT`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [listeners] table")]
pub(super) struct ListenersSection {
    tcp: Option<Vec<Spanned<String>>>,
    ssl: Option<Vec<Spanned<String>>>,
}

impl ListenersSection {
    pub(super) fn apply_to(
        self,
        config: &mut Config,
        source: &TomlSource<'_>,
    ) -> Result<(), ConfigError> {
        if let Some(tcp) = self.tcp {
            config.listeners.tcp = addresses(tcp, "tcp", source)?;
        }
        if let Some(ssl) = self.ssl {
            config.listeners.ssl = addresses(ssl, "ssl", source)?;
        }
        Ok(())
    }
}

fn addresses(
    list: Vec<Spanned<String>>,
    key: &str,
    source: &TomlSource<'_>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    list.into_iter()
        .map(|addr| {
            addr.get_ref().parse().map_err(|_| {
                let reason = format!(
                    "`{}` is not an IP address and port such as 127.0.0.1:5671 or [::]:5671",
                    addr.get_ref()
                );
                source.invalid(addr.span(), key, reason)
            })
        })
        .collect()
}

/// `[ssl_options]`: RabbitMQ's `ssl_options.*`. The files are read when the broker starts, so a missing one is
/// reported there, by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [ssl_options] table")]
pub(super) struct SslOptionsSection {
    certfile: Option<Spanned<String>>,
    keyfile: Option<Spanned<String>>,
    cacertfile: Option<Spanned<String>>,
    verify: Option<Spanned<String>>,
    fail_if_no_peer_cert: Option<bool>,
    versions: Option<Spanned<Vec<Spanned<String>>>>,
}

impl SslOptionsSection {
    pub(super) fn apply_to(
        self,
        config: &mut Config,
        source: &TomlSource<'_>,
    ) -> Result<(), ConfigError> {
        let ssl = &mut config.ssl;
        let path = |value: Spanned<String>, key: &str| -> Result<PathBuf, ConfigError> {
            Ok(PathBuf::from(non_empty(value, key, source)?))
        };
        if let Some(certfile) = self.certfile {
            ssl.certfile = Some(path(certfile, "certfile")?);
        }
        if let Some(keyfile) = self.keyfile {
            ssl.keyfile = Some(path(keyfile, "keyfile")?);
        }
        if let Some(cacertfile) = self.cacertfile {
            ssl.cacertfile = Some(path(cacertfile, "cacertfile")?);
        }
        if let Some(verify) = self.verify {
            ssl.verify = match verify.get_ref().as_str() {
                "verify_none" => Verify::None,
                "verify_peer" => Verify::Peer,
                other => {
                    let reason =
                        format!("`{other}` is not one of \"verify_none\", \"verify_peer\"");
                    return Err(source.invalid(verify.span(), "verify", reason));
                }
            };
        }
        if let Some(fail) = self.fail_if_no_peer_cert {
            ssl.fail_if_no_peer_cert = fail;
        }
        if let Some(versions) = self.versions {
            let span = versions.span();
            let versions = versions.into_inner();
            let mut parsed = Vec::with_capacity(versions.len());
            for version in versions {
                let v = match version.get_ref().as_str() {
                    "tlsv1.2" => TlsVersion::Tls12,
                    "tlsv1.3" => TlsVersion::Tls13,
                    other => {
                        // tlsv1 and tlsv1.1 are refused rather than ignored: rustls does not implement them.
                        let reason = format!("`{other}` is not one of \"tlsv1.2\", \"tlsv1.3\" (Warren does not offer older versions)");
                        return Err(source.invalid(version.span(), "versions", reason));
                    }
                };
                if !parsed.contains(&v) {
                    parsed.push(v);
                }
            }
            if parsed.is_empty() {
                return Err(source.invalid(span, "versions", "must name at least one version"));
            }
            ssl.versions = parsed;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::tls::{TlsVersion, Verify};
    use crate::config::{Config, ConfigError};

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("warren.toml"))
    }

    fn refusal(text: &str) -> String {
        match load(text) {
            Ok(config) => panic!("accepted {text:?} as {config:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn tls_keys_in_toml_form() {
        let config = load(
            r#"
[limits]
ssl_handshake_timeout_ms = 2500

[listeners]
tcp = ["[::1]:5672"]
ssl = ["127.0.0.1:5671", "[::]:5671"]

[ssl_options]
certfile = "/etc/warren/cert.pem"
keyfile = "/etc/warren/key.pem"
cacertfile = "/etc/warren/ca.pem"
verify = "verify_peer"
fail_if_no_peer_cert = true
versions = ["tlsv1.2"]
"#,
        )
        .expect("valid");
        assert_eq!(
            config.listeners.tcp,
            vec!["[::1]:5672".parse().expect("v6")]
        );
        assert_eq!(config.listeners.ssl.len(), 2);
        assert_eq!(config.ssl.verify, Verify::Peer);
        assert!(config.ssl.fail_if_no_peer_cert);
        assert_eq!(config.ssl.versions, vec![TlsVersion::Tls12]);
        assert_eq!(config.ssl.handshake_timeout, Duration::from_millis(2500));
        assert_eq!(
            config.ssl.cacertfile.as_deref(),
            Some(Path::new("/etc/warren/ca.pem"))
        );
    }

    #[test]
    fn defaults_are_rabbitmq_s() {
        let config = Config::default();
        assert!(config.listeners.ssl.is_empty());
        assert_eq!(config.ssl.verify, Verify::None);
        assert!(!config.ssl.fail_if_no_peer_cert);
        assert_eq!(config.ssl.handshake_timeout, Duration::from_millis(5000));
    }

    #[test]
    fn bad_tls_values_are_refused_by_key_and_line() {
        assert_eq!(
            refusal("[ssl_options]\nverify = \"verify_all\"\n"),
            "warren.toml:2: key `verify`: `verify_all` is not one of \"verify_none\", \"verify_peer\""
        );
        assert!(refusal("[ssl_options]\nversions = [\"tlsv1.1\"]\n")
            .starts_with("warren.toml:2: key `versions`"));
        assert!(refusal("[ssl_options]\nversions = []\n").contains("at least one version"));
        assert!(refusal("[listeners]\nssl = [\"localhost:5671\"]\n")
            .starts_with("warren.toml:2: key `ssl`"));
        assert!(refusal("[ssl_options]\nciphers = []\n").contains("unknown key `ciphers`"));
    }
}
