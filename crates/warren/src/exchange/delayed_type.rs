//! The `x-delayed-type` argument of an `x-delayed-message` exchange: the type whose routing it applies once a
//! message is due. Checked at declare as rabbitmq_delayed_message_exchange checks it
//! (`rabbit_exchange_type_delayed_message:validate/1`): a missing or non-text value, or `x-delayed-message`
//! itself, is 406 PRECONDITION_FAILED with the plugin's text; a text naming no exchange type is what
//! `rabbit_exchange:check_type/1` answers for any unknown type, 503 COMMAND_INVALID.

use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{AMQPValue, FieldTable};

use super::ExchangeKind;

/// The underlying kind `arguments` name, or the error the plugin gives at declare.
pub(crate) fn delayed_type(arguments: &FieldTable) -> Result<ExchangeKind, AmqpError> {
    // Any binary the client sent (long string, or byte array), as the plugin's `is_binary(Type)`.
    let name = match arguments.inner().get("x-delayed-type") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        Some(AMQPValue::ByteArray(b)) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        _ => {
            return Err(AmqpError::precondition(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            ))
        }
    };
    match ExchangeKind::parse(&name) {
        Some(ExchangeKind::Delayed) => Err(AmqpError::precondition(
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        )),
        Some(kind) => Ok(kind),
        None => Err(AmqpError::new(
            ReplyCode::CommandInvalid,
            format!("unknown exchange type '{name}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::LongString;

    fn with(value: Option<AMQPValue>) -> FieldTable {
        let mut table = FieldTable::default();
        if let Some(value) = value {
            table.insert("x-delayed-type".into(), value);
        }
        table
    }

    fn text(s: &str) -> Option<AMQPValue> {
        Some(AMQPValue::LongString(LongString::from(s)))
    }

    #[test]
    fn the_four_types_and_consistent_hash_are_accepted() {
        for kind in ["direct", "fanout", "topic", "headers", "x-consistent-hash"] {
            assert_eq!(
                delayed_type(&with(text(kind)))
                    .ok()
                    .map(ExchangeKind::as_str),
                Some(kind)
            );
        }
    }

    #[test]
    fn missing_or_non_text_type_is_the_plugins_406() {
        for value in [
            None,
            Some(AMQPValue::LongInt(1)),
            Some(AMQPValue::Boolean(true)),
        ] {
            let error = delayed_type(&with(value)).err();
            assert_eq!(
                error.as_ref().map(|e| e.code),
                Some(ReplyCode::PreconditionFailed)
            );
            assert_eq!(
                error.map(|e| e.text),
                Some(
                    "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
                        .into()
                )
            );
        }
    }

    #[test]
    fn itself_is_refused_and_an_unknown_type_is_503() {
        let error = delayed_type(&with(text("x-delayed-message"))).err();
        assert_eq!(
            error.map(|e| (e.code, e.text)),
            Some((
                ReplyCode::PreconditionFailed,
                "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"
                    .into()
            ))
        );
        let error = delayed_type(&with(text("x-not-valid-type"))).err();
        assert_eq!(
            error.map(|e| (e.code, e.text)),
            Some((
                ReplyCode::CommandInvalid,
                "COMMAND_INVALID - unknown exchange type 'x-not-valid-type'".into()
            ))
        );
    }
}
