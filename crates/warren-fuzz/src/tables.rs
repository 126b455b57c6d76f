//! What the protocol targets check of every field table that decodes: it nests no deeper than
//! [`MAX_FIELD_NESTING`] (measured without recursion, so a table that slipped past the bound fails the check
//! rather than overflowing the checker's stack), every value has a RabbitMQ type name, and encoding it gives bytes
//! that decode to a table that encodes to the same bytes (a fixpoint: decoding normalises key order, duplicate keys
//! and `L`/`l`, and floats may be NaN, so neither the input bytes nor `==` on values would do).

use warren_protocol::basic::AMQPProperties as BasicProperties;
use warren_protocol::content::{decode_properties, encode_properties};
use warren_protocol::field_type::rabbit_type_name;
use warren_protocol::nesting::MAX_FIELD_NESTING;
use warren_protocol::{AMQPValue, FieldTable};

/// How deeply `table` nests, the table itself counting as 1; walked with an explicit stack.
pub fn depth(table: &FieldTable) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&AMQPValue, usize)> = table.inner().values().map(|v| (v, 1)).collect();
    while let Some((value, level)) = stack.pop() {
        let _ = rabbit_type_name(value);
        match value {
            AMQPValue::FieldTable(t) => {
                deepest = deepest.max(level + 1);
                stack.extend(t.inner().values().map(|v| (v, level + 1)));
            }
            AMQPValue::FieldArray(a) => {
                deepest = deepest.max(level + 1);
                stack.extend(a.as_slice().iter().map(|v| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Asserts the nesting bound on a table that decoded.
pub fn assert_within_bound(table: &FieldTable, what: &str) {
    let depth = depth(table);
    assert!(
        depth <= MAX_FIELD_NESTING,
        "{what}: a table nested {depth} levels deep decoded (bound {MAX_FIELD_NESTING})"
    );
}

/// Asserts that encoding `properties` reaches a fixpoint after one decode; gives the encoding.
pub fn assert_properties_fixpoint(properties: &BasicProperties, what: &str) -> bytes::Bytes {
    let encoded = match encode_properties(properties) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{what}: decoded properties do not encode: {e}"),
    };
    let again = match decode_properties(&encoded) {
        Ok(p) => p,
        Err(e) => panic!("{what}: re-encoded properties do not decode: {e}"),
    };
    let twice = encode_properties(&again).ok();
    assert_eq!(
        twice.as_ref(),
        Some(&encoded),
        "{what}: encoding is not a fixpoint"
    );
    encoded
}

/// Asserts the bound and the encoding fixpoint of a decoded table (encoded as the headers of basic properties, the
/// one public encoder of a bare table).
pub fn assert_table_contract(table: &FieldTable, what: &str) {
    assert_within_bound(table, what);
    assert_properties_fixpoint(
        &BasicProperties::default().with_headers(table.clone()),
        what,
    );
}
