//! What can go wrong in `warren ctl`, and the exit code each failure gives: rabbitmqctl's (sysexits) codes, so a
//! script written for rabbitmqctl reads them the same way.

use std::fmt;

/// rabbitmqctl's exit codes (`RabbitMQ.CLI.Core.ExitCodes`, from sysexits), plus 77 for refused credentials.
pub(crate) mod exit {
    /// The command line is wrong: unknown command, option or column, missing or extra arguments.
    pub(crate) const USAGE: u8 = 64;
    /// An argument is wrong or names nothing: unknown vhost, queue, policy; malformed JSON.
    pub(crate) const DATA: u8 = 65;
    /// The user named does not exist.
    pub(crate) const NO_USER: u8 = 67;
    /// The node (its management API) cannot be reached, or refused the operation.
    pub(crate) const UNAVAILABLE: u8 = 69;
    /// The node failed (an HTTP 5xx), or the operation failed in a way no other code names.
    pub(crate) const SOFTWARE: u8 = 70;
    /// The user or password was refused (HTTP 401) or the user may not do this (403). rabbitmqctl has no such code
    /// (it authenticates with the Erlang cookie); 77 is sysexits' EX_NOPERM.
    pub(crate) const NO_PERMISSION: u8 = 77;
    /// A wait ran out (`await_startup --timeout`).
    pub(crate) const TEMPFAIL: u8 = 75;
}

/// One failure of a `warren ctl` command; its `Display` is the message printed on stderr.
#[derive(Debug)]
pub(crate) enum CtlError {
    /// The command line cannot be used (exit 64).
    Usage(String),
    /// An argument is malformed or names nothing the node has (exit 65).
    Data(String),
    /// The user named does not exist (exit 67).
    NoUser(String),
    /// The management API could not be reached (exit 69).
    Unreachable {
        /// The API's base URL.
        url: String,
        /// Why, as the HTTP client reports it.
        cause: String,
    },
    /// The node refused the operation with a reason that names no missing object (exit 69, as rabbitmqctl).
    Refused(String),
    /// HTTP 401: the user or password was refused (exit 77).
    BadCredentials {
        /// The user name that was refused.
        user: String,
    },
    /// HTTP 403: the user may not do this (exit 77).
    Forbidden(String),
    /// The node answered with a server error, or something unexpected happened (exit 70).
    Software(String),
    /// A wait ran out (exit 75).
    Timeout(String),
}

impl CtlError {
    /// The process exit code for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => exit::USAGE,
            CtlError::Data(_) => exit::DATA,
            CtlError::NoUser(_) => exit::NO_USER,
            CtlError::Unreachable { .. } | CtlError::Refused(_) => exit::UNAVAILABLE,
            CtlError::BadCredentials { .. } | CtlError::Forbidden(_) => exit::NO_PERMISSION,
            CtlError::Software(_) => exit::SOFTWARE,
            CtlError::Timeout(_) => exit::TEMPFAIL,
        }
    }

    /// "no such user" for `user` (exit 67), in rabbitmqctl's words.
    pub(crate) fn no_such_user(user: &str) -> CtlError {
        CtlError::NoUser(format!("User \"{user}\" does not exist"))
    }

    /// "no such vhost" for `vhost` (exit 65), in rabbitmqctl's words.
    pub(crate) fn no_such_vhost(vhost: &str) -> CtlError {
        CtlError::Data(format!("Virtual host '{vhost}' does not exist"))
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Usage(text)
            | CtlError::Data(text)
            | CtlError::NoUser(text)
            | CtlError::Refused(text)
            | CtlError::Forbidden(text)
            | CtlError::Software(text)
            | CtlError::Timeout(text) => f.write_str(text),
            CtlError::Unreachable { url, cause } => write!(
                f,
                "unable to reach the management API at {url}: {cause}\n\
                 Is the node running with its management listener on that address? (--node URL, WARREN_CTL_URL)"
            ),
            CtlError::BadCredentials { user } => write!(
                f,
                "bad credentials: the node refused user \"{user}\" with this password (HTTP 401) \
                 (--username/--password, WARREN_CTL_USER/WARREN_CTL_PASSWORD)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_rabbitmqctls() {
        assert_eq!(CtlError::Usage(String::new()).exit_code(), 64);
        assert_eq!(CtlError::no_such_vhost("v").exit_code(), 65);
        assert_eq!(CtlError::no_such_user("u").exit_code(), 67);
        assert_eq!(CtlError::Refused(String::new()).exit_code(), 69);
        assert_eq!(CtlError::Software(String::new()).exit_code(), 70);
        assert_eq!(CtlError::Timeout(String::new()).exit_code(), 75);
        assert_eq!(
            CtlError::BadCredentials { user: "u".into() }.exit_code(),
            77
        );
    }

    #[test]
    fn messages_are_rabbitmqctls() {
        assert_eq!(
            CtlError::no_such_user("bob").to_string(),
            "User \"bob\" does not exist"
        );
        assert_eq!(
            CtlError::no_such_vhost("nosuch").to_string(),
            "Virtual host 'nosuch' does not exist"
        );
    }
}
