//! Sender-selected distribution, RabbitMQ's extension: the `CC` and `BCC` headers, arrays of long strings, add
//! routing keys for the exchange a message is published to; the message reaches each queue once, and `BCC` is
//! removed before anyone sees the message (`rabbit_basic:header_routes/1`, `strip_bcc_header/1`). A `CC` or `BCC`
//! header of another type makes the message invalid (406, RabbitMQ's text); elements that are not long strings are
//! skipped.

use bytes::Bytes;

use warren_protocol::content::{decode_properties, encode_properties};
use warren_protocol::error::AmqpError;
use warren_protocol::field_type::rabbit_type_name;
use warren_protocol::{AMQPValue, FieldTable};

/// Whether a message with these properties may carry a `CC` or `BCC` header: it has headers and the bytes of one
/// of the two keys (as a table key: length, then name) appear in its table. A cheap test, so that messages without either (nearly
/// all) are neither decoded nor kept out of a channel's route cache; a false positive only costs a decode.
pub(crate) fn may_carry(properties_raw: &[u8]) -> bool {
    warren_protocol::content::headers_bytes(properties_raw)
        .is_some_and(|table| contains(table, b"\x02CC") || contains(table, b"\x03BCC"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The keys the `CC` header adds, then the `BCC` header's; 406 "invalid message" if either is not an array.
pub(crate) fn extra_keys(headers: Option<&FieldTable>) -> Result<Vec<String>, AmqpError> {
    let mut keys = Vec::new();
    let Some(headers) = headers else {
        return Ok(keys);
    };
    for name in ["CC", "BCC"] {
        match headers.inner().get(name) {
            None => {}
            Some(AMQPValue::FieldArray(values)) => {
                keys.extend(values.as_slice().iter().filter_map(|v| match v {
                    AMQPValue::LongString(s) => {
                        Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                    }
                    _ => None,
                }))
            }
            Some(other) => {
                return Err(AmqpError::precondition(format!(
                    "invalid message: {{unacceptable_type_in_header,\"{name}\",{}}}",
                    rabbit_type_name(other)
                )))
            }
        }
    }
    Ok(keys)
}

/// The properties without the `BCC` header; None when there is none (the message is delivered as published).
pub(crate) fn without_bcc(properties_raw: &[u8]) -> Result<Option<Bytes>, AmqpError> {
    let mut properties = decode_properties(properties_raw)?;
    let Some(mut headers) = properties.headers().clone() else {
        return Ok(None);
    };
    if headers.inner().get("BCC").is_none() {
        return Ok(None);
    }
    let mut kept = FieldTable::default();
    for (key, value) in headers.inner() {
        if key.as_str() != "BCC" {
            kept.insert(key.clone(), value.clone());
        }
    }
    headers = kept;
    properties = properties.with_headers(headers);
    encode_properties(&properties).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::basic::AMQPProperties;
    use warren_protocol::types::FieldArray;

    fn raw(headers: Option<FieldTable>) -> Bytes {
        let mut properties = AMQPProperties::default().with_message_id("m".into());
        if let Some(h) = headers {
            properties = properties.with_headers(h);
        }
        encode_properties(&properties).unwrap()
    }

    fn keys(values: &[&str]) -> AMQPValue {
        AMQPValue::FieldArray(FieldArray::from(
            values
                .iter()
                .map(|v| AMQPValue::LongString((*v).into()))
                .chain([AMQPValue::LongLongInt(7)])
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn cc_and_bcc_add_long_string_keys_and_bcc_is_stripped() {
        let mut h = FieldTable::default();
        h.insert("CC".into(), keys(&["a", "b"]));
        h.insert("BCC".into(), keys(&["c"]));
        h.insert("other".into(), AMQPValue::Boolean(true));
        let with = raw(Some(h.clone()));
        assert!(may_carry(&with));
        assert_eq!(extra_keys(Some(&h)).unwrap(), vec!["a", "b", "c"]);
        let stripped = without_bcc(&with).unwrap().expect("BCC removed");
        let headers = decode_properties(&stripped)
            .unwrap()
            .headers()
            .clone()
            .unwrap();
        assert!(headers.inner().get("BCC").is_none());
        assert!(headers.inner().get("CC").is_some());
        assert!(headers.inner().get("other").is_some());
        assert_eq!(without_bcc(&stripped).unwrap(), None);
    }

    #[test]
    fn messages_without_the_headers_are_not_suspected() {
        assert!(!may_carry(&raw(None)));
        let mut h = FieldTable::default();
        h.insert("x-CC".into(), AMQPValue::LongString("ACC".into()));
        assert!(!may_carry(&raw(Some(h))));
        assert!(!may_carry(b""));
    }

    #[test]
    fn a_cc_that_is_not_an_array_is_refused_as_rabbitmq_does() {
        let mut h = FieldTable::default();
        h.insert("CC".into(), AMQPValue::LongString("a".into()));
        let error = extra_keys(Some(&h)).unwrap_err();
        assert_eq!(error.reply_code(), 406);
        assert_eq!(
            error.short_text(),
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
        );
    }
}
