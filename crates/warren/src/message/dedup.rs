//! The headers rabbitmq-message-deduplication reads from a message (`RabbitMQMessageDeduplication.Common.
//! message_header/2`): `x-deduplication-header`, the value that names a message for deduplication, and
//! `x-cache-ttl`, how long a deduplicating exchange remembers it. Pure; read only for a queue or exchange that
//! deduplicates.

use bytes::Bytes;

use warren_protocol::field_type::integer;
use warren_protocol::{AMQPValue, FieldTable};

/// The header whose value identifies a message for deduplication.
pub(crate) const DEDUP_HEADER: &str = "x-deduplication-header";

/// The per-message header that overrides a deduplicating exchange's `x-cache-ttl`.
pub(crate) const CACHE_TTL_HEADER: &str = "x-cache-ttl";

/// A message's deduplication value as the plugin compares it (an Erlang term in a Mnesia set): a string and a byte
/// array holding the same bytes are one value, every integer width and a timestamp are one integer, a float is
/// compared exactly (and never equals an integer), void is a value of its own. The bytes are a tag and the value,
/// so they also serve as the key stored in the message store's dedup records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DedupKey(Box<[u8]>);

impl DedupKey {
    /// The key's bytes: a tag byte (`S` text, `l` integer, `d` float, `t` boolean, `V` void) and the value.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A key from bytes [`DedupKey::as_bytes`] gave.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: &[u8]) -> DedupKey {
        DedupKey(bytes.into())
    }

    fn tagged(tag: u8, value: &[u8]) -> DedupKey {
        let mut bytes = Vec::with_capacity(1 + value.len());
        bytes.push(tag);
        bytes.extend_from_slice(value);
        DedupKey(bytes.into())
    }
}

/// Whether properties may carry `x-deduplication-header`: the bytes of its table key appear in the headers. A cheap
/// test so that a deduplicating queue or exchange decodes only the messages that may have one.
pub(crate) fn may_carry_key(properties_raw: &[u8]) -> bool {
    const KEY: &[u8] = b"\x16x-deduplication-header";
    warren_protocol::content::headers_bytes(properties_raw)
        .is_some_and(|table| table.windows(KEY.len()).any(|w| w == KEY))
}

/// The message's deduplication key, read from its raw properties; None without the header (the message is not
/// checked, as in the plugin).
pub(crate) fn key_of(properties_raw: &Bytes) -> Option<DedupKey> {
    if !may_carry_key(properties_raw) {
        return None;
    }
    let properties = warren_protocol::content::decode_properties(properties_raw).ok()?;
    dedup_key(properties.headers().as_ref())
}

/// The deduplication key in `headers`. An array, a table or a decimal has none: the plugin fails such a publish
/// (its header reader has no clause for them); Warren does not check the message.
pub(crate) fn dedup_key(headers: Option<&FieldTable>) -> Option<DedupKey> {
    let value = headers?.inner().get(DEDUP_HEADER)?;
    if let Some(n) = integer(value) {
        return Some(DedupKey::tagged(b'l', &n.to_be_bytes()));
    }
    match value {
        AMQPValue::LongString(s) => Some(DedupKey::tagged(b'S', s.as_bytes())),
        AMQPValue::ShortString(s) => Some(DedupKey::tagged(b'S', s.as_str().as_bytes())),
        AMQPValue::ByteArray(b) => Some(DedupKey::tagged(b'S', b.as_slice())),
        AMQPValue::Timestamp(v) => Some(DedupKey::tagged(
            b'l',
            &i64::try_from(*v).unwrap_or(i64::MAX).to_be_bytes(),
        )),
        AMQPValue::Float(v) => Some(DedupKey::tagged(
            b'd',
            &f64::from(*v).to_bits().to_be_bytes(),
        )),
        AMQPValue::Double(v) => Some(DedupKey::tagged(b'd', &v.to_bits().to_be_bytes())),
        AMQPValue::Boolean(v) => Some(DedupKey::tagged(b't', &[u8::from(*v)])),
        AMQPValue::Void => Some(DedupKey::tagged(b'V', &[])),
        _ => None,
    }
}

/// The message's own `x-cache-ttl` in milliseconds: an integer of any width, a float truncated. Another type is
/// ignored (the exchange's TTL applies; the plugin fails such a publish). Zero or negative: remembered for no time.
pub(crate) fn cache_ttl(headers: Option<&FieldTable>) -> Option<i64> {
    let value = headers?.inner().get(CACHE_TTL_HEADER)?;
    Some(match value {
        AMQPValue::Float(v) if v.is_finite() => f64::from(*v) as i64,
        AMQPValue::Double(v) if v.is_finite() => *v as i64,
        other => integer(other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::basic::AMQPProperties;
    use warren_protocol::content::encode_properties;
    use warren_protocol::types::ByteArray;
    use warren_protocol::LongString;

    fn headers(name: &str, value: AMQPValue) -> FieldTable {
        let mut table = FieldTable::default();
        table.insert(name.into(), value);
        table
    }

    fn key(value: AMQPValue) -> Option<DedupKey> {
        dedup_key(Some(&headers(DEDUP_HEADER, value)))
    }

    #[test]
    fn values_compare_as_the_plugins_erlang_terms() {
        assert_eq!(
            key(AMQPValue::LongString(LongString::from("a"))),
            key(AMQPValue::ByteArray(ByteArray::from(&b"a"[..])))
        );
        assert_eq!(key(AMQPValue::LongInt(42)), key(AMQPValue::LongLongInt(42)));
        assert_eq!(
            key(AMQPValue::ShortShortUInt(42)),
            key(AMQPValue::Timestamp(42))
        );
        assert_ne!(key(AMQPValue::LongInt(42)), key(AMQPValue::Double(42.0)));
        assert_ne!(
            key(AMQPValue::LongInt(42)),
            key(AMQPValue::LongString(LongString::from("42")))
        );
        assert_eq!(key(AMQPValue::Void), key(AMQPValue::Void));
        assert_eq!(key(AMQPValue::FieldTable(FieldTable::default())), None);
        assert_eq!(dedup_key(None), None);
    }

    #[test]
    fn the_key_is_read_from_raw_properties_only_when_the_header_may_be_there() {
        let with = |table: FieldTable| {
            encode_properties(&AMQPProperties::default().with_headers(table)).unwrap_or_default()
        };
        let raw = with(headers(DEDUP_HEADER, AMQPValue::LongString("m-1".into())));
        assert!(may_carry_key(&raw));
        assert_eq!(
            key_of(&raw).map(|k| k.as_bytes().to_vec()),
            Some(b"Sm-1".to_vec())
        );
        let other = with(headers("x-other", AMQPValue::LongString("m-1".into())));
        assert!(!may_carry_key(&other));
        assert_eq!(key_of(&other), None);
        assert_eq!(key_of(&Bytes::new()), None);
    }

    #[test]
    fn the_message_ttl_header_takes_integers_and_truncated_floats() {
        let ttl = |v| cache_ttl(Some(&headers(CACHE_TTL_HEADER, v)));
        assert_eq!(ttl(AMQPValue::LongInt(500)), Some(500));
        assert_eq!(ttl(AMQPValue::Double(1.9)), Some(1));
        assert_eq!(ttl(AMQPValue::LongLongInt(-5)), Some(-5));
        assert_eq!(ttl(AMQPValue::LongString("500".into())), None);
    }
}
