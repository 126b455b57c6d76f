//! RabbitMQ's "inequivalent arg" checks for redeclaring an existing queue or exchange with other properties.

use warren_protocol::error::AmqpError;
use warren_protocol::{AMQPValue, FieldTable};

/// Queue arguments RabbitMQ compares on redeclare; other arguments are not compared (as in RabbitMQ).
const QUEUE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-queue-master-locator",
    "x-queue-leader-locator",
    "x-delivery-limit",
];

/// Exchange arguments compared on redeclare.
const EXCHANGE_ARGS: &[&str] = &["alternate-exchange"];

/// 406 unless a redeclared flag (`arg`) matches the existing object's.
pub(crate) fn flag(
    kind: &str,
    name: &str,
    vhost: &str,
    arg: &str,
    received: bool,
    current: bool,
) -> Result<(), AmqpError> {
    if received == current {
        return Ok(());
    }
    Err(AmqpError::precondition(format!(
        "inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
    )))
}

/// 406 unless a queue's redeclared arguments match, for the arguments RabbitMQ compares.
pub(crate) fn queue_arguments(
    name: &str,
    vhost: &str,
    received: &FieldTable,
    current: &FieldTable,
) -> Result<(), AmqpError> {
    arguments("queue", QUEUE_ARGS, name, vhost, received, current)
}

/// 406 unless an exchange's redeclared arguments match (`alternate-exchange`).
pub(crate) fn exchange_arguments(
    name: &str,
    vhost: &str,
    received: &FieldTable,
    current: &FieldTable,
) -> Result<(), AmqpError> {
    arguments("exchange", EXCHANGE_ARGS, name, vhost, received, current)
}

fn arguments(
    kind: &str,
    keys: &[&str],
    name: &str,
    vhost: &str,
    received: &FieldTable,
    current: &FieldTable,
) -> Result<(), AmqpError> {
    for key in keys {
        let r = received.inner().get(*key);
        let c = current.inner().get(*key);
        if !same_value(r, c) {
            return Err(AmqpError::precondition(format!(
                "inequivalent arg '{key}' for {kind} '{name}' in vhost '{vhost}': received {} but current is {}",
                describe(r),
                describe(c)
            )));
        }
    }
    Ok(())
}

/// Integers of different widths compare by value, as RabbitMQ's clients send TTLs in whatever width they like.
fn same_value(a: Option<&AMQPValue>, b: Option<&AMQPValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (as_int(a), as_int(b)) {
            (Some(x), Some(y)) => x == y,
            _ => match (as_text(a), as_text(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            },
        },
        _ => false,
    }
}

/// An AMQP integer of any width as one type, so `5` as a byte and as a long compare equal.
pub(crate) fn as_int(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(x) => i128::from(*x),
        AMQPValue::ShortShortUInt(x) => i128::from(*x),
        AMQPValue::ShortInt(x) => i128::from(*x),
        AMQPValue::ShortUInt(x) => i128::from(*x),
        AMQPValue::LongInt(x) => i128::from(*x),
        AMQPValue::LongUInt(x) => i128::from(*x),
        AMQPValue::LongLongInt(x) => i128::from(*x),
        AMQPValue::Timestamp(x) => i128::from(*x),
        _ => return None,
    })
}

fn as_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn describe(v: Option<&AMQPValue>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => match (as_int(v), as_text(v)) {
            (Some(i), _) => format!("the value '{i}' of type 'long'"),
            (_, Some(s)) => format!("the value '{s}' of type 'longstr'"),
            _ => format!("the value '{v:?}'"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_widths_are_equivalent_and_text_names_the_arg() {
        let mut a = FieldTable::default();
        a.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
        let mut b = FieldTable::default();
        b.insert("x-message-ttl".into(), AMQPValue::LongLongInt(1000));
        assert!(queue_arguments("q", "/", &a, &b).is_ok());
        let err = queue_arguments("q", "/", &a, &FieldTable::default()).unwrap_err();
        assert_eq!(err.reply_code(), 406);
        assert!(err.text.starts_with(
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/'"
        ));
    }

    #[test]
    fn unknown_arguments_are_not_compared() {
        let mut a = FieldTable::default();
        a.insert("x-custom".into(), AMQPValue::LongInt(1));
        assert!(queue_arguments("q", "/", &a, &FieldTable::default()).is_ok());
    }
}
