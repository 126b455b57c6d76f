//! AMQP exceptions: the reply code, the method that caused them and whether they close the channel or the
//! connection. Every refusal the broker sends to a peer is one of these.

use std::fmt;

use crate::ids::MethodId;

/// Soft errors close the channel; hard errors close the connection (AMQP 0-9-1 section 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Answered with channel.close; the connection and its other channels go on.
    Channel,
    /// Answered with connection.close; every channel on the connection ends.
    Connection,
}

/// AMQP reply codes Warren sends, with RabbitMQ's names (used as the prefix of the reply text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyCode {
    /// 311: the message body is larger than the broker accepts.
    ContentTooLarge = 311,
    /// 312: a mandatory message matched no queue (sent with basic.return, not a close).
    NoRoute = 312,
    /// 403: the user may not do this (vhost, configure, write or read permission, exclusive queue).
    AccessRefused = 403,
    /// 404: the named exchange or queue does not exist.
    NotFound = 404,
    /// 405: the queue is exclusive to another connection.
    ResourceLocked = 405,
    /// 406: a redeclare disagrees with the existing object, or an argument is refused.
    PreconditionFailed = 406,
    /// 320: the broker is closing the connection (shutdown or an operator's request).
    ConnectionForced = 320,
    /// 501: a malformed frame, or method arguments that do not decode.
    FrameError = 501,
    /// 502: a field value that breaks the spec's rules.
    SyntaxError = 502,
    /// 503: a method not allowed in this state (for example a second confirm or tx select).
    CommandInvalid = 503,
    /// 504: a method on a channel that is not open, or reopening one that is.
    ChannelError = 504,
    /// 505: a frame of the wrong type for where the peer is (content without a publish, a method mid-content).
    UnexpectedFrame = 505,
    /// 506: the broker is out of a resource (channels over channel_max).
    ResourceError = 506,
    /// 530: the peer may not do this at all (for example delete a default exchange, open an unknown vhost).
    NotAllowed = 530,
    /// 540: a method or feature Warren does not implement.
    NotImplemented = 540,
    /// 541: a broker fault; the peer did nothing wrong.
    InternalError = 541,
}

impl ReplyCode {
    /// The code numbered `code`, if Warren sends it.
    pub fn from_u16(code: u16) -> Option<ReplyCode> {
        const ALL: [ReplyCode; 16] = [
            ReplyCode::ContentTooLarge,
            ReplyCode::NoRoute,
            ReplyCode::AccessRefused,
            ReplyCode::NotFound,
            ReplyCode::ResourceLocked,
            ReplyCode::PreconditionFailed,
            ReplyCode::ConnectionForced,
            ReplyCode::FrameError,
            ReplyCode::SyntaxError,
            ReplyCode::CommandInvalid,
            ReplyCode::ChannelError,
            ReplyCode::UnexpectedFrame,
            ReplyCode::ResourceError,
            ReplyCode::NotAllowed,
            ReplyCode::NotImplemented,
            ReplyCode::InternalError,
        ];
        ALL.into_iter().find(|c| *c as u16 == code)
    }

    /// RabbitMQ's name for the code, the prefix of every reply text so clients' messages read as RabbitMQ's.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The scope RabbitMQ gives this code when it is raised by a channel method.
    pub fn scope(self) -> Scope {
        match self {
            ReplyCode::ContentTooLarge
            | ReplyCode::NoRoute
            | ReplyCode::AccessRefused
            | ReplyCode::NotFound
            | ReplyCode::ResourceLocked
            | ReplyCode::PreconditionFailed => Scope::Channel,
            _ => Scope::Connection,
        }
    }
}

/// An exception to report to the peer with channel.close or connection.close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    /// The reply code sent.
    pub code: ReplyCode,
    /// The full reply text, starting with the code's name as RabbitMQ writes it ("NOT_FOUND - no queue 'x' ...").
    pub text: String,
    /// The class of the method that caused it; 0 when no method did (a frame error).
    pub class_id: u16,
    /// The method that caused it; 0 when no method did.
    pub method_id: u16,
    /// Whether the channel or the whole connection closes.
    pub scope: Scope,
}

impl AmqpError {
    /// An error with the scope its code implies; `detail` follows the code name in the reply text.
    pub fn new(code: ReplyCode, detail: impl fmt::Display) -> AmqpError {
        AmqpError {
            code,
            text: format!("{} - {}", code.name(), detail),
            class_id: 0,
            method_id: 0,
            scope: code.scope(),
        }
    }

    /// Names the method that caused the error (filled in by the dispatcher when the handler did not).
    pub fn on_method(mut self, class_id: u16, method_id: u16) -> AmqpError {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// [`Self::on_method`] for a method named by its [`ids`](crate::ids) constant: `error.on(ids::BASIC_PUBLISH)`.
    #[inline]
    pub fn on(self, (class_id, method_id): MethodId) -> AmqpError {
        self.on_method(class_id, method_id)
    }

    /// 404 in RabbitMQ's words: "no queue 'x' in vhost '/'".
    pub fn not_found(kind: &str, name: &str, vhost: &str) -> AmqpError {
        AmqpError::new(
            ReplyCode::NotFound,
            format!("no {kind} '{name}' in vhost '{vhost}'"),
        )
    }

    /// 406 PRECONDITION_FAILED with `detail`.
    pub fn precondition(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::PreconditionFailed, detail)
    }

    /// 403 ACCESS_REFUSED with `detail`.
    pub fn access_refused(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::AccessRefused, detail)
    }

    /// 540 NOT_IMPLEMENTED with `detail`.
    pub fn not_implemented(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotImplemented, detail)
    }

    /// The numeric code, as channel.close and connection.close carry it.
    pub fn reply_code(&self) -> u16 {
        self.code as u16
    }

    /// The reply text as it fits a short string (255 bytes), cut as RabbitMQ cuts it
    /// (`rabbit_binary_generator:amqp_exception_explanation/2`): a longer text keeps its first 252 bytes and ends
    /// in "...". Warren cuts on a char boundary, so the text stays UTF-8 (RabbitMQ cuts bytes).
    pub fn short_text(&self) -> String {
        if self.text.len() <= 255 {
            return self.text.clone();
        }
        let mut end = 252;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &self.text[..end])
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}.{})", self.text, self.class_id, self.method_id)
    }
}

impl std::error::Error for AmqpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_text_names_the_object_like_rabbitmq() {
        let e = AmqpError::not_found("queue", "x", "/");
        assert_eq!(e.text, "NOT_FOUND - no queue 'x' in vhost '/'");
        assert_eq!(e.reply_code(), 404);
        assert_eq!(e.scope, Scope::Channel);
    }

    #[test]
    fn hard_codes_close_the_connection() {
        assert_eq!(AmqpError::not_implemented("x").scope, Scope::Connection);
        assert_eq!(
            AmqpError::new(ReplyCode::NotAllowed, "x").scope,
            Scope::Connection
        );
    }

    #[test]
    fn short_text_is_cut_on_a_char_boundary() {
        let e = AmqpError::precondition("é".repeat(200));
        assert!(e.short_text().len() <= 255);
        assert!(e.short_text().ends_with("é..."));
    }

    #[test]
    fn a_long_text_keeps_252_bytes_and_ends_in_dots_as_rabbitmq_cuts_it() {
        let fits = AmqpError::precondition("a".repeat(255 - "PRECONDITION_FAILED - ".len()));
        assert_eq!(fits.short_text(), fits.text);
        let long = AmqpError::precondition("a".repeat(300));
        assert_eq!(long.short_text().len(), 255);
        assert_eq!(long.short_text(), format!("{}...", &long.text[..252]));
    }
}
