//! Authentication and authorisation: SASL (PLAIN and AMQPLAIN) checked against the users of the access table
//! (`users`, hashed as RabbitMQ hashes them by `password`), EXTERNAL with TLS client certificates ([`external`]),
//! and the permissions every method is checked against (`access`).

pub(crate) mod access;
pub(crate) mod external;
pub mod limits;
pub mod password;
pub mod users;

use std::net::IpAddr;

use access::AccessControl;
use warren_protocol::{decode_field_table as parse_table, AMQPValue};

/// Why a login was refused; the text goes to the log, never to the peer (as in RabbitMQ).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// The client chose a mechanism the broker does not offer.
    #[error("unsupported authentication mechanism '{0}'")]
    Mechanism(String),
    /// The response does not decode for its mechanism.
    #[error("malformed {0} response")]
    Malformed(&'static str),
    /// Unknown user or wrong password.
    #[error("user '{0}' - invalid credentials")]
    Credentials(String),
    /// An empty password, which RabbitMQ's internal backend refuses whatever is stored.
    #[error("user '{0}' attempted to log in with a blank password, which is prohibited by the internal authN backend")]
    BlankPassword(String),
    /// A loopback-only user connected from another host.
    #[error("user '{0}' can only connect via localhost")]
    NotLoopback(String),
    /// EXTERNAL found no user name in the TLS client certificate (RabbitMQ's refusal text).
    #[error("{0}")]
    Certificate(String),
}

impl AuthError {
    /// The user name the client gave, when the refusal names one (else empty).
    pub(crate) fn user(&self) -> &str {
        match self {
            AuthError::Credentials(user)
            | AuthError::BlankPassword(user)
            | AuthError::NotLoopback(user) => user,
            AuthError::Mechanism(_) | AuthError::Malformed(_) | AuthError::Certificate(_) => "",
        }
    }
}

/// Extracts (user, password) from a SASL response.
pub(crate) fn decode_response(
    mechanism: &str,
    response: &[u8],
) -> Result<(String, String), AuthError> {
    match mechanism {
        "PLAIN" => {
            // authzid NUL authcid NUL password
            let mut parts = response.split(|b| *b == 0);
            let (Some(_authzid), Some(user), Some(pass), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(AuthError::Malformed("PLAIN"));
            };
            Ok((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ))
        }
        "AMQPLAIN" => {
            // A field table without its leading length.
            let mut framed = Vec::with_capacity(response.len() + 4);
            framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
            framed.extend_from_slice(response);
            let table = parse_table(&framed).ok_or(AuthError::Malformed("AMQPLAIN"))?;
            let text = |key: &str| match table.inner().get(key) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
                _ => None,
            };
            match (text("LOGIN"), text("PASSWORD")) {
                (Some(u), Some(p)) => Ok((u, p)),
                _ => Err(AuthError::Malformed("AMQPLAIN")),
            }
        }
        other => Err(AuthError::Mechanism(other.to_owned())),
    }
}

/// Checks credentials against the users of `access` and `loopback_users` (RabbitMQ's `loopback_users`);
/// returns the user name. The password is compared with the user's stored hash only, never kept.
pub(crate) fn authenticate(
    access: &AccessControl,
    loopback_users: &[String],
    mechanism: &str,
    response: &[u8],
    peer: IpAddr,
) -> Result<String, AuthError> {
    let (user, password) = decode_response(mechanism, response)?;
    if password.is_empty() {
        return Err(AuthError::BlankPassword(user));
    }
    if user == access::INTERNAL_USER {
        // The node's own shovels and links, from loopback, with this process's secret; nothing else.
        let secret = access.internal_secret().as_bytes();
        let matches = secret.len() == password.len()
            && secret
                .iter()
                .zip(password.as_bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
        return match matches && peer.is_loopback() {
            true => Ok(user),
            false => Err(AuthError::Credentials(user)),
        };
    }
    let Some(known) = access.user(&user) else {
        return Err(AuthError::Credentials(user));
    };
    let verified = known
        .algorithm()
        .is_some_and(|a| password::verify_password(a, &known.password_hash, &password));
    if !verified {
        return Err(AuthError::Credentials(user));
    }
    if loopback_users.contains(&user) && !peer.is_loopback() {
        return Err(AuthError::NotLoopback(user));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_splits_on_nul() {
        assert_eq!(
            decode_response("PLAIN", b"\0guest\0secret").unwrap(),
            ("guest".to_owned(), "secret".to_owned())
        );
        assert!(decode_response("PLAIN", b"guest").is_err());
    }

    #[test]
    fn amqplain_response_is_a_table_without_length() {
        let mut body = Vec::new();
        body.push(5);
        body.extend_from_slice(b"LOGIN");
        body.push(b'S');
        body.extend_from_slice(&5u32.to_be_bytes());
        body.extend_from_slice(b"guest");
        body.push(8);
        body.extend_from_slice(b"PASSWORD");
        body.push(b'S');
        body.extend_from_slice(&2u32.to_be_bytes());
        body.extend_from_slice(b"pw");
        assert_eq!(
            decode_response("AMQPLAIN", &body).unwrap(),
            ("guest".to_owned(), "pw".to_owned())
        );
    }

    #[test]
    fn loopback_users_are_refused_from_other_hosts() {
        let mut table = access::AccessTable::default();
        let guest = users::UserDefinition::with_password("guest", "guest", Vec::new());
        table
            .users
            .insert("guest".into(), std::sync::Arc::new(guest));
        let control = AccessControl::new(table);
        let loopback = vec!["guest".to_owned()];
        let check = |response: &[u8], peer: IpAddr| {
            authenticate(&control, &loopback, "PLAIN", response, peer)
        };
        let remote: IpAddr = [10, 0, 0, 1].into();
        let local: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(
            check(b"\0guest\0guest", remote),
            Err(AuthError::NotLoopback("guest".into()))
        );
        assert_eq!(check(b"\0guest\0guest", local), Ok("guest".to_owned()));
        assert_eq!(
            check(b"\0guest\0wrong", local),
            Err(AuthError::Credentials("guest".into()))
        );
        assert_eq!(
            check(b"\0guest\0", local),
            Err(AuthError::BlankPassword("guest".into()))
        );
        assert_eq!(
            check(b"\0nobody\0x", local),
            Err(AuthError::Credentials("nobody".into()))
        );
    }

    #[test]
    fn unknown_mechanism_is_refused() {
        assert_eq!(
            decode_response("EXTERNAL", b""),
            Err(AuthError::Mechanism("EXTERNAL".into()))
        );
    }
}
