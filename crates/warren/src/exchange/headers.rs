//! Headers-exchange matching: a binding's arguments compiled into a `HeadersMatcher` (match mode plus the header
//! pairs to test), the test of a message's headers against it, and the bind-time check of `x-match`.
//!
//! Semantics follow RabbitMQ's `rabbit_exchange_type_headers`:
//! - `x-match` is `all` (the default, also used for a value RabbitMQ would have refused), `any`, `all-with-x` or
//!   `any-with-x`. The `x-match` pair itself never takes part in matching.
//! - Other pairs whose key starts with `x-` are ignored by `all`/`any` and matched by `all-with-x`/`any-with-x`.
//! - A pair whose value is void matches when the message has that header at all, whatever its value.
//! - `all` with no pairs matches every message; `any` with no pairs matches none. A message without a headers
//!   property is treated as one with an empty table.

use super::header_value::{erlang_text, string_bytes, values_equal};
use thiserror::Error;
use warren_protocol::field_type::rabbit_type_name;
use warren_protocol::types::{AMQPValue, FieldTable, ShortString};

/// The binding argument that selects the match mode.
const X_MATCH: &str = "x-match";

/// How a binding's pairs combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchMode {
    /// Every pair must match (pairs with `x-` keys ignored).
    All,
    /// At least one pair must match (pairs with `x-` keys ignored).
    Any,
    /// Every pair must match, `x-` keys included.
    AllWithX,
    /// At least one pair must match, `x-` keys included.
    AnyWithX,
}

impl MatchMode {
    fn parse(bytes: &[u8]) -> Option<MatchMode> {
        match bytes {
            b"all" => Some(MatchMode::All),
            b"any" => Some(MatchMode::Any),
            b"all-with-x" => Some(MatchMode::AllWithX),
            b"any-with-x" => Some(MatchMode::AnyWithX),
            _ => None,
        }
    }

    fn includes_x_keys(self) -> bool {
        matches!(self, MatchMode::AllWithX | MatchMode::AnyWithX)
    }
}

/// Why a headers-exchange binding was refused; the broker answers `queue.bind`/`exchange.bind` with 406
/// PRECONDITION_FAILED and this text, as RabbitMQ does.
#[derive(Debug, Clone, PartialEq, Error)]
pub(crate) enum HeadersBindingError {
    /// `x-match` is a string but not one of the four modes.
    #[error(
        "Invalid x-match field value <<\"{0}\">>; expected all, any, all-with-x, or any-with-x"
    )]
    InvalidXMatchValue(String),
    /// `x-match` is not a string. The type is named as RabbitMQ's wire parser names it (`long`, `bool`, ...) and
    /// the value printed roughly as Erlang prints it.
    #[error("Invalid x-match field type {type_name} (value {value}); expected longstr")]
    InvalidXMatchType {
        /// RabbitMQ's name for the value's type.
        type_name: &'static str,
        /// The value as text.
        value: String,
    },
}

/// Checks a headers-exchange binding's `x-match` argument, as RabbitMQ does when the binding is created. A missing
/// `x-match` is accepted (it means `all`).
pub(crate) fn validate_headers_arguments(
    arguments: &FieldTable,
) -> Result<(), HeadersBindingError> {
    match arguments.inner().get(X_MATCH) {
        None => Ok(()),
        Some(value) => match string_bytes(value) {
            Some(bytes) if MatchMode::parse(bytes).is_some() => Ok(()),
            Some(bytes) => Err(HeadersBindingError::InvalidXMatchValue(
                String::from_utf8_lossy(bytes).into_owned(),
            )),
            None => Err(HeadersBindingError::InvalidXMatchType {
                type_name: rabbit_type_name(value),
                value: erlang_text(value),
            }),
        },
    }
}

/// A headers-exchange binding's arguments, compiled once when the binding table is built.
#[derive(Clone, Debug)]
pub(crate) struct HeadersMatcher {
    mode: MatchMode,
    /// The pairs to test, without `x-match` and (unless the mode includes them) without other `x-` keys.
    pairs: Vec<(ShortString, AMQPValue)>,
}

impl HeadersMatcher {
    /// Compiles a binding's `x-match` and header arguments (already validated at bind).
    pub(crate) fn new(arguments: &FieldTable) -> HeadersMatcher {
        // An invalid x-match cannot get past `validate_headers_arguments`; should one arrive anyway (say from an
        // old definitions file) it means `all`, which is what RabbitMQ does too.
        let mode = arguments
            .inner()
            .get(X_MATCH)
            .and_then(string_bytes)
            .and_then(MatchMode::parse)
            .unwrap_or(MatchMode::All);
        let pairs = arguments
            .into_iter()
            .filter(|(key, _)| key.as_str() != X_MATCH)
            .filter(|(key, _)| mode.includes_x_keys() || !key.as_str().starts_with("x-"))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        HeadersMatcher { mode, pairs }
    }

    /// Whether a message with these headers (None: no headers property) matches the binding.
    pub(crate) fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let pair_matches = |(key, expected): &(ShortString, AMQPValue)| {
            let found = headers.and_then(|table| table.inner().get(key.as_str()));
            match (expected, found) {
                (_, None) => false,
                (AMQPValue::Void, Some(_)) => true,
                (expected, Some(actual)) => values_equal(expected, actual),
            }
        };
        match self.mode {
            MatchMode::All | MatchMode::AllWithX => self.pairs.iter().all(pair_matches),
            MatchMode::Any | MatchMode::AnyWithX => self.pairs.iter().any(pair_matches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::types::LongString;

    fn text(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut table = FieldTable::default();
        for (key, value) in pairs {
            table.insert((*key).into(), value.clone());
        }
        table
    }

    fn binding(mode: &str, pairs: &[(&str, AMQPValue)]) -> HeadersMatcher {
        let mut arguments = table(pairs);
        arguments.insert(X_MATCH.into(), text(mode));
        HeadersMatcher::new(&arguments)
    }

    #[test]
    fn headers_all_needs_every_pair() {
        let m = binding("all", &[("format", text("pdf")), ("type", text("report"))]);
        assert!(m.matches(Some(&table(&[
            ("format", text("pdf")),
            ("type", text("report")),
            ("extra", text("ignored")),
        ]))));
        assert!(!m.matches(Some(&table(&[("format", text("pdf"))]))));
        assert!(!m.matches(Some(&table(&[
            ("format", text("pdf")),
            ("type", text("log"))
        ]))));
        assert!(!m.matches(None));
    }

    #[test]
    fn headers_missing_x_match_means_all() {
        let m = HeadersMatcher::new(&table(&[("a", text("1")), ("b", text("2"))]));
        assert!(!m.matches(Some(&table(&[("a", text("1"))]))));
        assert!(m.matches(Some(&table(&[("a", text("1")), ("b", text("2"))]))));
    }

    #[test]
    fn headers_any_needs_one_pair() {
        let m = binding("any", &[("format", text("pdf")), ("type", text("report"))]);
        assert!(m.matches(Some(&table(&[("type", text("report"))]))));
        assert!(!m.matches(Some(&table(&[("type", text("log"))]))));
        assert!(!m.matches(None));
    }

    #[test]
    fn headers_all_without_pairs_matches_everything_and_any_nothing() {
        assert!(binding("all", &[]).matches(None));
        assert!(binding("all", &[]).matches(Some(&table(&[("a", text("b"))]))));
        assert!(!binding("any", &[]).matches(None));
        assert!(!binding("any", &[]).matches(Some(&table(&[("a", text("b"))]))));
    }

    #[test]
    fn headers_all_and_any_ignore_x_keys() {
        let all = binding("all", &[("x-tenant", text("t1")), ("kind", text("k"))]);
        assert!(all.matches(Some(&table(&[("kind", text("k"))]))));
        let any = binding("any", &[("x-tenant", text("t1"))]);
        // Only an x- pair: nothing left to match, so `any` matches nothing even when the header is there.
        assert!(!any.matches(Some(&table(&[("x-tenant", text("t1"))]))));
    }

    #[test]
    fn headers_all_with_x_matches_x_keys() {
        let m = binding(
            "all-with-x",
            &[("x-tenant", text("t1")), ("kind", text("k"))],
        );
        assert!(m.matches(Some(&table(&[
            ("x-tenant", text("t1")),
            ("kind", text("k"))
        ]))));
        assert!(!m.matches(Some(&table(&[("kind", text("k"))]))));
        assert!(!m.matches(Some(&table(&[
            ("x-tenant", text("t2")),
            ("kind", text("k"))
        ]))));
    }

    #[test]
    fn headers_any_with_x_matches_on_an_x_key_alone() {
        let m = binding(
            "any-with-x",
            &[("x-tenant", text("t1")), ("kind", text("k"))],
        );
        assert!(m.matches(Some(&table(&[("x-tenant", text("t1"))]))));
        assert!(m.matches(Some(&table(&[("kind", text("k"))]))));
        assert!(!m.matches(Some(&table(&[("x-tenant", text("t2"))]))));
    }

    #[test]
    fn headers_x_match_itself_is_never_a_pair() {
        // The message carrying an `x-match` header of its own changes nothing.
        let m = binding("any-with-x", &[]);
        assert!(!m.matches(Some(&table(&[(X_MATCH, text("any-with-x"))]))));
    }

    #[test]
    fn headers_void_value_matches_presence() {
        let all = binding("all", &[("trace", AMQPValue::Void)]);
        assert!(all.matches(Some(&table(&[("trace", text("anything"))]))));
        assert!(all.matches(Some(&table(&[("trace", AMQPValue::Void)]))));
        assert!(!all.matches(Some(&table(&[("other", text("x"))]))));
        let any = binding("any", &[("trace", AMQPValue::Void), ("k", text("v"))]);
        assert!(any.matches(Some(&table(&[("trace", AMQPValue::Boolean(false))]))));
        let with_x = binding("all-with-x", &[("x-trace", AMQPValue::Void)]);
        assert!(with_x.matches(Some(&table(&[("x-trace", AMQPValue::LongLongInt(1))]))));
        assert!(!with_x.matches(None));
    }

    #[test]
    fn headers_void_header_does_not_equal_a_value() {
        let m = binding("all", &[("k", text("v"))]);
        assert!(!m.matches(Some(&table(&[("k", AMQPValue::Void)]))));
    }

    #[test]
    fn headers_invalid_x_match_is_refused_at_bind_and_means_all_if_stored() {
        assert_eq!(validate_headers_arguments(&FieldTable::default()), Ok(()));
        for mode in ["all", "any", "all-with-x", "any-with-x"] {
            assert_eq!(
                validate_headers_arguments(&table(&[(X_MATCH, text(mode))])),
                Ok(())
            );
        }
        let bad_value = validate_headers_arguments(&table(&[(X_MATCH, text("some"))]));
        assert_eq!(
            bad_value.map_err(|e| e.to_string()),
            Err("Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x".into())
        );
        let bad_type = validate_headers_arguments(&table(&[(X_MATCH, AMQPValue::LongLongInt(1))]));
        assert_eq!(
            bad_type.map_err(|e| e.to_string()),
            Err("Invalid x-match field type long (value 1); expected longstr".into())
        );

        let stored = HeadersMatcher::new(&table(&[
            (X_MATCH, text("some")),
            ("a", text("1")),
            ("b", text("2")),
        ]));
        assert!(!stored.matches(Some(&table(&[("a", text("1"))]))));
    }
}
