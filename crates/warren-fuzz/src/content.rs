//! The content header and field table target. Input: a content header frame's payload (class, weight, body size,
//! property flags and list), as a client sends it; the same bytes are also read as a bare field table, as the SASL
//! AMQPLAIN response is.
//!
//! Contract: `parse_content_header` refuses what is too short or nests too deep with a connection-level 501 and
//! otherwise reads the fixed fields as they are on the wire; properties either decode (then their headers nest within
//! the bound, they re-encode to a fixpoint, and the lazy readers of delivery-mode, priority and expiration, which
//! skip the decoder, read the same values) or fail with 502; a bare table decodes within the bound or not at all.

use bytes::Bytes;
use warren_protocol::content::{
    decode_properties, delivery_mode, expiration, parse_content_header, parse_content_header_ref,
    priority,
};
use warren_protocol::decode_field_table;
use warren_protocol::error::{ReplyCode, Scope};

use crate::tables;
use crate::Target;

/// The content header target.
pub const TARGET: Target = Target {
    name: "content",
    run,
    alloc_limit,
};

/// As for methods: decoded values are a constant factor of their bytes.
fn alloc_limit(data: &[u8]) -> usize {
    128 * data.len() + 65_536
}

/// Checks one input.
pub fn run(data: &[u8]) {
    check_header(data);
    check_properties(data.get(12..).unwrap_or_default());
    if let Some(table) = decode_field_table(data) {
        tables::assert_table_contract(&table, "bare field table");
    }
}

fn check_header(data: &[u8]) {
    let by_ref = parse_content_header_ref(data);
    let owned = parse_content_header(&Bytes::copy_from_slice(data));
    match (&by_ref, &owned) {
        (Ok((class_id, body_size, raw)), Ok(header)) => {
            assert_eq!(
                (*class_id, *body_size, *raw),
                (
                    header.class_id,
                    header.body_size,
                    &header.properties_raw[..]
                )
            );
            assert_eq!(*class_id, u16::from_be_bytes([data[0], data[1]]));
            let size = u64::from_be_bytes(data[4..12].try_into().unwrap_or_default());
            assert_eq!(*body_size, size);
            assert_eq!(*raw, &data[12..]);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert_eq!(
                (a.code, a.scope),
                (ReplyCode::FrameError, Scope::Connection),
                "{a}"
            );
        }
        _ => panic!(
            "parse_content_header and its by-reference form disagree: {by_ref:?} / {owned:?}"
        ),
    }
    assert!(
        data.len() >= 14 || by_ref.is_err(),
        "a header shorter than 14 bytes was accepted"
    );
}

fn check_properties(raw: &[u8]) {
    // The lazy readers run on every message, decoded or not: they must never panic.
    let lazy = (delivery_mode(raw), priority(raw), expiration(raw));
    match decode_properties(raw) {
        Ok(properties) => {
            if let Some(headers) = properties.headers() {
                tables::assert_within_bound(headers, "content headers");
            }
            tables::assert_properties_fixpoint(&properties, "content properties");
            let decoded = (
                properties.delivery_mode().as_ref().copied(),
                properties.priority().as_ref().copied(),
                properties
                    .expiration()
                    .as_ref()
                    .map(|e| e.as_str().as_bytes()),
            );
            assert_eq!(
                lazy, decoded,
                "lazy property readers disagree with the decoder"
            );
        }
        Err(e) => {
            assert_eq!(e.code, ReplyCode::SyntaxError, "{e}");
        }
    }
}
