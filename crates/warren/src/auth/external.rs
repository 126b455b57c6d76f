//! SASL EXTERNAL with TLS client certificates (RabbitMQ's rabbitmq_auth_mechanism_ssl): which mechanisms a
//! connection is offered, and the user a verified client certificate names (`ssl_cert_login_from`). The user must
//! exist; no password is checked, the certificate is the credential.

mod certificate;
mod distinguished_name;

use std::net::IpAddr;

use super::access::AccessControl;
use super::AuthError;
use crate::config::{CertLoginFrom, Mechanism, SanType, SaslConfig, Verify};
use certificate::AltName;

/// The mechanisms offered on a connection, space-separated for connection.start: those configured, EXTERNAL only
/// on a TLS connection whose listener verifies peers (a certificate is then the credential, and no other
/// connection has one).
pub(crate) fn offered(sasl: &SaslConfig, verify: Verify, tls: bool) -> Vec<Mechanism> {
    sasl.mechanisms
        .iter()
        .copied()
        .filter(|m| *m != Mechanism::External || (tls && verify == Verify::Peer))
        .collect()
}

/// The user named by the client's certificate, checked against the users of the access table and
/// `loopback_users`. `certificate` is None when the client presented none (a listener without
/// `fail_if_no_peer_cert`).
pub(crate) fn authenticate(
    access: &AccessControl,
    loopback_users: &[String],
    sasl: &SaslConfig,
    certificate: Option<&[u8]>,
    peer: IpAddr,
) -> Result<String, AuthError> {
    let certificate = certificate.ok_or(AuthError::Certificate(
        "connection peer presented no TLS (x.509) certificate".to_owned(),
    ))?;
    let user = user_name(sasl, certificate)?;
    if access.user(&user).is_none() {
        return Err(AuthError::Credentials(user));
    }
    if loopback_users.contains(&user) && !peer.is_loopback() {
        return Err(AuthError::NotLoopback(user));
    }
    Ok(user)
}

/// The user name `ssl_cert_login_from` takes from a DER certificate.
fn user_name(sasl: &SaslConfig, der: &[u8]) -> Result<String, AuthError> {
    let names = certificate::read(der).ok_or(AuthError::Certificate(
        "the peer certificate could not be read".to_owned(),
    ))?;
    let not_found = || AuthError::Certificate("no name found".to_owned());
    match sasl.cert_login_from {
        CertLoginFrom::DistinguishedName => Ok(distinguished_name::format(&names.subject)),
        CertLoginFrom::CommonName => {
            // Several CNs are joined with ",", as RabbitMQ does (unescaped: DN mode is for exact names).
            let cns: Vec<String> = names
                .subject
                .iter()
                .flatten()
                .filter(|a| a.oid == distinguished_name::COMMON_NAME)
                .map(|a| String::from_utf8_lossy(&distinguished_name::value_bytes(a)).into_owned())
                .collect();
            if cns.is_empty() {
                return Err(not_found());
            }
            Ok(cns.join(","))
        }
        CertLoginFrom::SubjectAlternativeName => names
            .alt_names
            .into_iter()
            .filter_map(|name| match (name, sasl.san_type) {
                (AltName::Dns(n), SanType::Dns)
                | (AltName::Email(n), SanType::Email)
                | (AltName::Uri(n), SanType::Uri) => Some(n),
                _ => None,
            })
            .nth(sasl.san_index)
            .ok_or_else(not_found),
    }
}

#[cfg(test)]
mod tests;
