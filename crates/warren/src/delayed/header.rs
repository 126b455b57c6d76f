//! The `x-delay` header as rabbitmq_delayed_message_exchange reads it (`rabbit_delayed_message_utils:get_delay/1`
//! and `rabbit_exchange_type_delayed_message:delay_message/2`), and the copy of the properties a due message is
//! routed with (`swap_delay_header/1`).

use bytes::Bytes;

use warren_protocol::content::encode_properties;
use warren_protocol::error::AmqpError;
use warren_protocol::{basic::AMQPProperties, AMQPValue, FieldTable};

/// The longest delay the plugin holds a message for: an Erlang timer's limit, 2^32 - 1 ms (about 49.7 days).
/// A longer one routes at once, as in the plugin.
pub(crate) const MAX_DELAY_MS: i64 = 4_294_967_295;

/// The delay `headers` ask for, when the plugin would hold the message: an `x-delay` of 1 ms up to
/// [`MAX_DELAY_MS`]. Integer types (unsigned byte, short, unsigned short, int, unsigned int, long) count as they
/// are; a float or double is truncated; a string holding a decimal integer is read as one. Absent, zero, negative,
/// too large, of another type (signed byte, timestamp, boolean...) or a string that is not an integer: None, and
/// the message routes at once. (The plugin crashes on a non-integer string; Warren routes it at once.)
pub(crate) fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let delay = match headers?.inner().get("x-delay")? {
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::LongLongInt(v) => *v,
        AMQPValue::Float(v) => truncate(f64::from(*v))?,
        AMQPValue::Double(v) => truncate(*v)?,
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        AMQPValue::ShortString(s) => s.as_str().parse().ok()?,
        _ => return None,
    };
    (1..=MAX_DELAY_MS)
        .contains(&delay)
        .then(|| u64::try_from(delay).ok())
        .flatten()
}

fn truncate(v: f64) -> Option<i64> {
    // Out of range or NaN cannot be a delay the plugin holds.
    (v.is_finite() && v.abs() < 9.0e15).then_some(v.trunc() as i64)
}

/// The properties a due message is routed and delivered with: `x-delay` set to minus the delay (a long), as the
/// plugin does, so that a delayed exchange further along routes it at once and consumers can tell it was
/// delayed.
pub(crate) fn due_properties(
    properties: &AMQPProperties,
    delay_ms: u64,
) -> Result<Bytes, AmqpError> {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-delay".into(),
        AMQPValue::LongLongInt(-i64::try_from(delay_ms).unwrap_or(MAX_DELAY_MS)),
    );
    encode_properties(&properties.clone().with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::content::decode_properties;
    use warren_protocol::LongString;

    fn headers(value: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert("x-delay".into(), value);
        t
    }

    #[test]
    fn integer_float_and_string_delays_are_read_as_the_plugin_reads_them() {
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::LongInt(5000)))),
            Some(5000)
        );
        assert_eq!(delay_of(Some(&headers(AMQPValue::LongLongInt(1)))), Some(1));
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::ShortShortUInt(7)))),
            Some(7)
        );
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::Double(1500.9)))),
            Some(1500)
        );
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::LongString(LongString::from(
                "250"
            ))))),
            Some(250)
        );
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::LongLongInt(MAX_DELAY_MS)))),
            Some(4_294_967_295)
        );
    }

    #[test]
    fn absent_zero_negative_too_long_or_odd_delays_route_at_once() {
        assert_eq!(delay_of(None), None);
        assert_eq!(delay_of(Some(&FieldTable::default())), None);
        for value in [
            AMQPValue::LongInt(0),
            AMQPValue::LongInt(-5000),
            AMQPValue::LongLongInt(MAX_DELAY_MS + 1),
            AMQPValue::ShortShortInt(5),
            AMQPValue::Boolean(true),
            AMQPValue::Timestamp(5000),
            AMQPValue::LongString(LongString::from("soon")),
            AMQPValue::Double(f64::NAN),
        ] {
            assert_eq!(delay_of(Some(&headers(value.clone()))), None, "{value:?}");
        }
    }

    #[test]
    fn a_due_message_carries_minus_its_delay() {
        let mut h = headers(AMQPValue::LongInt(3000));
        h.insert("other".into(), AMQPValue::Boolean(true));
        let properties = AMQPProperties::default()
            .with_headers(h)
            .with_delivery_mode(2);
        let raw = due_properties(&properties, 3000).ok();
        let decoded = raw.and_then(|raw| decode_properties(&raw).ok());
        let headers = decoded.as_ref().and_then(|p| p.headers().clone());
        let headers = headers.as_ref().map(FieldTable::inner);
        assert_eq!(
            headers.and_then(|h| h.get("x-delay")),
            Some(&AMQPValue::LongLongInt(-3000))
        );
        assert_eq!(
            headers.and_then(|h| h.get("other")),
            Some(&AMQPValue::Boolean(true))
        );
        assert_eq!(decoded.and_then(|p| *p.delivery_mode()), Some(2));
    }
}
