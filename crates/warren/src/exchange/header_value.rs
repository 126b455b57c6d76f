//! Field values as RabbitMQ sees them once parsed: when a header value equals a binding value, and how a value's
//! type and text are named in error messages.

use warren_protocol::types::AMQPValue;

/// The bytes of a string value. Short strings cannot appear in a table read from the wire (`s` is a short int
/// there) but can be built in code, so they count as strings too.
pub(crate) fn string_bytes(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

/// A number as Erlang sees it once parsed: an integer or a float.
#[derive(Clone, Copy)]
enum Number {
    Integer(i128),
    Float(f64),
}

fn as_number(value: &AMQPValue) -> Option<Number> {
    Some(match *value {
        AMQPValue::ShortShortInt(n) => Number::Integer(n.into()),
        AMQPValue::ShortShortUInt(n) => Number::Integer(n.into()),
        AMQPValue::ShortInt(n) => Number::Integer(n.into()),
        AMQPValue::ShortUInt(n) => Number::Integer(n.into()),
        AMQPValue::LongInt(n) => Number::Integer(n.into()),
        AMQPValue::LongUInt(n) => Number::Integer(n.into()),
        AMQPValue::LongLongInt(n) => Number::Integer(n.into()),
        AMQPValue::Timestamp(n) => Number::Integer(n.into()),
        AMQPValue::Float(n) => Number::Float(n.into()),
        AMQPValue::Double(n) => Number::Float(n),
        _ => return None,
    })
}

/// Whether a message header value equals a binding value, the way RabbitMQ compares them: it drops both type tags
/// and compares the parsed Erlang terms with `==`. So every integer width (and a timestamp) compares by numeric
/// value, an integer equals a float of the same exact value (`1 == 1.0`), and a long string equals a byte array
/// with the same bytes. Booleans, decimals, arrays and tables only equal their own kind; inside arrays and tables
/// RabbitMQ keeps the type tags, which exact `AMQPValue` equality reproduces.
pub(crate) fn values_equal(expected: &AMQPValue, actual: &AMQPValue) -> bool {
    if let (Some(a), Some(b)) = (as_number(expected), as_number(actual)) {
        return match (a, b) {
            (Number::Integer(a), Number::Integer(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Integer(i), Number::Float(f)) | (Number::Float(f), Number::Integer(i)) => {
                integer_equals_float(i, f)
            }
        };
    }
    if let (Some(a), Some(b)) = (
        string_bytes_or_binary(expected),
        string_bytes_or_binary(actual),
    ) {
        return a == b;
    }
    match (expected, actual) {
        (AMQPValue::Boolean(a), AMQPValue::Boolean(b)) => a == b,
        (AMQPValue::DecimalValue(a), AMQPValue::DecimalValue(b)) => a == b,
        (AMQPValue::FieldArray(a), AMQPValue::FieldArray(b)) => a == b,
        (AMQPValue::FieldTable(a), AMQPValue::FieldTable(b)) => a == b,
        // A void header equals nothing but a void binding value, which matched on presence before coming here.
        _ => false,
    }
}

/// The bytes of a string or byte array: RabbitMQ holds both as Erlang binaries, so in matching they are equal when
/// their bytes are.
fn string_bytes_or_binary(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::ByteArray(bytes) => Some(bytes.as_slice()),
        other => string_bytes(other),
    }
}

/// Exact comparison of an integer and a float (Erlang's `==` never rounds an integer it cannot represent).
fn integer_equals_float(integer: i128, float: f64) -> bool {
    // Every i64 and u64 lies within +/-2^64, well inside i128, so the cast below is exact when the guard holds.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0; // 2^64
    float.is_finite() && float.fract() == 0.0 && float.abs() <= LIMIT && float as i128 == integer
}

/// A field value printed roughly as Erlang's `~tp` prints the parsed term, for error texts.
pub(crate) fn erlang_text(value: &AMQPValue) -> String {
    if let Some(number) = as_number(value) {
        return match number {
            Number::Integer(n) => n.to_string(),
            Number::Float(f) => format!("{f:?}"),
        };
    }
    match value {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::DecimalValue(d) => format!("{{{},{}}}", d.scale, d.value),
        AMQPValue::ByteArray(bytes) => {
            format!("<<\"{}\">>", String::from_utf8_lossy(bytes.as_slice()))
        }
        AMQPValue::Void => "undefined".to_owned(),
        other => format!("{other:?}"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::field_type::rabbit_type_name;
    use warren_protocol::types::{DecimalValue, FieldTable, LongString};

    fn text(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    #[test]
    fn integers_compare_by_value_across_widths() {
        let five = AMQPValue::ShortShortInt(5);
        for header in [
            AMQPValue::LongLongInt(5),
            AMQPValue::LongUInt(5),
            AMQPValue::ShortUInt(5),
            AMQPValue::Timestamp(5),
            AMQPValue::Double(5.0),
            AMQPValue::Float(5.0),
        ] {
            assert!(values_equal(&five, &header), "{header:?}");
        }
        for header in [
            AMQPValue::LongLongInt(6),
            AMQPValue::Double(5.5),
            text("5"),
            AMQPValue::Boolean(true),
            AMQPValue::Void,
        ] {
            assert!(!values_equal(&five, &header), "{header:?}");
        }
    }

    #[test]
    fn large_integers_and_floats_compare_exactly() {
        // 2^53 + 1 has no exact f64; rounding the integer would make these equal.
        let big = AMQPValue::LongLongInt(9_007_199_254_740_993);
        assert!(!values_equal(
            &big,
            &AMQPValue::Double(9_007_199_254_740_992.0)
        ));
        assert!(values_equal(
            &AMQPValue::LongLongInt(i64::MIN),
            &AMQPValue::Double(-9_223_372_036_854_775_808.0)
        ));
        assert!(!values_equal(&big, &AMQPValue::Double(f64::NAN)));
        assert!(!values_equal(&big, &AMQPValue::Double(f64::INFINITY)));
        assert!(!values_equal(
            &AMQPValue::Timestamp(u64::MAX),
            &AMQPValue::Double(1e300)
        ));
    }

    #[test]
    fn strings_and_byte_arrays_compare_by_bytes() {
        let abc = text("abc");
        assert!(values_equal(
            &abc,
            &AMQPValue::ByteArray(b"abc".to_vec().into())
        ));
        assert!(values_equal(&abc, &AMQPValue::ShortString("abc".into())));
        assert!(!values_equal(&abc, &text("ABC")));
    }

    #[test]
    fn booleans_decimals_and_tables_compare_exactly() {
        let decimal = AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 150,
        });
        let other_decimal = AMQPValue::DecimalValue(DecimalValue {
            scale: 1,
            value: 15,
        });
        assert!(values_equal(&decimal, &decimal.clone()));
        assert!(!values_equal(&decimal, &other_decimal));
        assert!(values_equal(
            &AMQPValue::Boolean(true),
            &AMQPValue::Boolean(true)
        ));
        assert!(!values_equal(
            &AMQPValue::Boolean(true),
            &AMQPValue::LongInt(1)
        ));

        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongInt(1));
        let mut inner_wider = FieldTable::default();
        inner_wider.insert("n".into(), AMQPValue::LongLongInt(1));
        let nested = AMQPValue::FieldTable(inner);
        // Nested values keep their type tags in RabbitMQ's comparison.
        assert!(values_equal(&nested, &nested.clone()));
        assert!(!values_equal(&nested, &AMQPValue::FieldTable(inner_wider)));
    }

    #[test]
    fn error_texts_name_types_and_values_as_rabbitmq_does() {
        assert_eq!(rabbit_type_name(&AMQPValue::LongLongInt(1)), "long");
        assert_eq!(
            rabbit_type_name(&AMQPValue::ByteArray(b"x".to_vec().into())),
            "binary"
        );
        assert_eq!(erlang_text(&AMQPValue::LongLongInt(-3)), "-3");
        assert_eq!(erlang_text(&AMQPValue::Double(1.0)), "1.0");
        assert_eq!(erlang_text(&AMQPValue::Boolean(true)), "true");
        assert_eq!(
            erlang_text(&AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 150
            })),
            "{2,150}"
        );
        assert_eq!(erlang_text(&AMQPValue::Void), "undefined");
    }
}
