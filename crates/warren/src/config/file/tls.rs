//! The config file's TLS and SASL keys: `[listeners]`, `[ssl_options]`, and the SASL keys of `[auth]`
//! (`auth_mechanisms`, `ssl_cert_login_from`, `ssl_cert_login_san_type`, `ssl_cert_login_san_index`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::non_empty;
use crate::config::source::TomlSource;
use crate::config::tls::{CertLoginFrom, Mechanism, SanType, TlsVersion, Verify};
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

/// The SASL keys of `[auth]`, read by `AuthSection`.
pub(super) struct SaslKeys {
    pub(super) auth_mechanisms: Option<Vec<Spanned<String>>>,
    pub(super) ssl_cert_login_from: Option<Spanned<String>>,
    pub(super) ssl_cert_login_san_type: Option<Spanned<String>>,
    pub(super) ssl_cert_login_san_index: Option<usize>,
}

impl SaslKeys {
    pub(super) fn apply_to(
        self,
        config: &mut Config,
        source: &TomlSource<'_>,
    ) -> Result<(), ConfigError> {
        let sasl = &mut config.sasl;
        if let Some(names) = self.auth_mechanisms {
            let mut mechanisms = Vec::with_capacity(names.len());
            for name in names {
                let Some(mechanism) = Mechanism::from_name(name.get_ref()) else {
                    let reason = format!(
                        "`{}` is not one of \"PLAIN\", \"AMQPLAIN\", \"EXTERNAL\"",
                        name.get_ref()
                    );
                    return Err(source.invalid(name.span(), "auth_mechanisms", reason));
                };
                if !mechanisms.contains(&mechanism) {
                    mechanisms.push(mechanism);
                }
            }
            sasl.mechanisms = mechanisms;
        }
        if let Some(from) = self.ssl_cert_login_from {
            sasl.cert_login_from = match from.get_ref().as_str() {
                "distinguished_name" => CertLoginFrom::DistinguishedName,
                "common_name" => CertLoginFrom::CommonName,
                // RabbitMQ takes both spellings.
                "subject_alternative_name" | "subject_alt_name" => {
                    CertLoginFrom::SubjectAlternativeName
                }
                other => {
                    let reason = format!("`{other}` is not one of \"distinguished_name\", \"common_name\", \"subject_alternative_name\"");
                    return Err(source.invalid(from.span(), "ssl_cert_login_from", reason));
                }
            };
        }
        if let Some(san_type) = self.ssl_cert_login_san_type {
            sasl.san_type = match san_type.get_ref().as_str() {
                "dns" => SanType::Dns,
                "email" => SanType::Email,
                "uri" => SanType::Uri,
                other => {
                    let reason = format!("`{other}` is not one of \"dns\", \"email\", \"uri\" (Warren does not read ip or other_name entries)");
                    return Err(source.invalid(san_type.span(), "ssl_cert_login_san_type", reason));
                }
            };
        }
        if let Some(index) = self.ssl_cert_login_san_index {
            sasl.san_index = index;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::tls::{CertLoginFrom, Mechanism, SanType, TlsVersion, Verify};
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

[auth]
auth_mechanisms = ["PLAIN", "EXTERNAL"]
ssl_cert_login_from = "subject_alternative_name"
ssl_cert_login_san_type = "email"
ssl_cert_login_san_index = 1

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
        assert_eq!(
            config.sasl.mechanisms,
            vec![Mechanism::Plain, Mechanism::External]
        );
        assert_eq!(
            config.sasl.cert_login_from,
            CertLoginFrom::SubjectAlternativeName
        );
        assert_eq!(config.sasl.san_type, SanType::Email);
        assert_eq!(config.sasl.san_index, 1);
    }

    #[test]
    fn defaults_are_rabbitmq_s() {
        let config = Config::default();
        assert!(config.listeners.ssl.is_empty());
        assert_eq!(config.ssl.verify, Verify::None);
        assert!(!config.ssl.fail_if_no_peer_cert);
        assert_eq!(config.ssl.handshake_timeout, Duration::from_millis(5000));
        assert_eq!(
            config.sasl.mechanisms,
            vec![Mechanism::Plain, Mechanism::Amqplain]
        );
        assert_eq!(
            config.sasl.cert_login_from,
            CertLoginFrom::DistinguishedName
        );
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
        assert!(refusal("[auth]\nauth_mechanisms = [\"CRAM-MD5\"]\n").contains("auth_mechanisms"));
        assert!(refusal("[auth]\nssl_cert_login_san_type = \"ip\"\n")
            .contains("ssl_cert_login_san_type"));
        assert!(refusal("[ssl_options]\nciphers = []\n").contains("unknown key `ciphers`"));
    }
}
