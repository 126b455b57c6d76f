//! How deeply field tables and arrays may nest, checked without recursion before amq-protocol's recursive decoder
//! sees the bytes. Without this bound one method frame of some 7 KB (a table nested ~1,200 levels deep) overflows a
//! tokio worker's stack and aborts the whole broker; real clients nest three levels at most (`x-death`: headers,
//! array, table).
//!
//! The walk follows the decoder's order exactly, so a structure that is malformed before it gets too deep is left
//! to the decoder, which then fails at that same shallow point and reports it as it always has.

use crate::ids::{
    BASIC_CONSUME, CONNECTION_START, CONNECTION_START_OK, EXCHANGE_BIND, EXCHANGE_DECLARE,
    EXCHANGE_UNBIND, QUEUE_BIND, QUEUE_DECLARE, QUEUE_UNBIND,
};

/// The deepest nesting of tables and arrays accepted, the outermost table counting as 1.
pub const MAX_FIELD_NESTING: usize = 32;

/// A table or array nested deeper than [`MAX_FIELD_NESTING`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooDeep;

/// The smallest number of bytes one nesting level can take: an array element is its type byte and a 4-byte length
/// (a table entry also needs a key). A table shorter than this times the limit cannot be too deep, so typical
/// headers skip the walk entirely.
const MIN_BYTES_PER_LEVEL: usize = 5;

/// Checks the length-prefixed field table at the front of `bytes`. On success, gives how many bytes the table
/// takes, or None when it is malformed before it gets too deep (the decoder will refuse it).
pub(crate) fn check_table(bytes: &[u8]) -> Result<Option<usize>, TooDeep> {
    let Some(len) = read_u32(bytes, 0) else {
        return Ok(None);
    };
    let end = 4 + len;
    if len < MAX_FIELD_NESTING * MIN_BYTES_PER_LEVEL {
        return Ok((end <= bytes.len()).then_some(end));
    }
    walk(bytes, end)
}

/// Whether an open container holds key/value pairs or bare values.
#[derive(Clone, Copy)]
enum Container {
    Table,
    Array,
}

/// Walks the table whose 4-byte length is at offset 0 and whose contents end at `end`, with an explicit stack of
/// open containers.
fn walk(bytes: &[u8], end: usize) -> Result<Option<usize>, TooDeep> {
    if end > bytes.len() {
        return Ok(None);
    }
    let mut open: Vec<(Container, usize)> = vec![(Container::Table, end)];
    let mut at = 4;
    while let Some(&(container, container_end)) = open.last() {
        if at == container_end {
            open.pop();
            continue;
        }
        if let Container::Table = container {
            let Some(&key_len) = bytes.get(at) else {
                return Ok(None);
            };
            at += 1 + usize::from(key_len);
        }
        let Some(&kind) = bytes.get(at) else {
            return Ok(None);
        };
        at += 1;
        let size = match kind {
            b'V' => 0,
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'S' | b'x' => match read_u32(bytes, at) {
                Some(len) => 4 + len,
                None => return Ok(None),
            },
            b'F' | b'A' => {
                let Some(len) = read_u32(bytes, at) else {
                    return Ok(None);
                };
                let inner_end = at + 4 + len;
                if inner_end > container_end {
                    return Ok(None);
                }
                if open.len() == MAX_FIELD_NESTING {
                    return Err(TooDeep);
                }
                let inner = if kind == b'F' {
                    Container::Table
                } else {
                    Container::Array
                };
                open.push((inner, inner_end));
                at += 4;
                continue;
            }
            _ => return Ok(None),
        };
        at += size;
        if at > container_end {
            return Ok(None);
        }
    }
    Ok(Some(end))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// An argument a method carries before its field table.
#[derive(Clone, Copy)]
enum Arg {
    Octet,
    Short,
    ShortStr,
    /// One or more consecutive bits, packed into one octet.
    Bits,
    Table,
}

/// The arguments, up to and including every field table, of the methods a peer can send that carry one.
fn table_layout(class_id: u16, method_id: u16) -> &'static [Arg] {
    use Arg::*;
    match (class_id, method_id) {
        CONNECTION_START => &[Octet, Octet, Table],
        CONNECTION_START_OK => &[Table],
        EXCHANGE_DECLARE => &[Short, ShortStr, ShortStr, Bits, Table],
        EXCHANGE_BIND | EXCHANGE_UNBIND => &[Short, ShortStr, ShortStr, ShortStr, Bits, Table],
        QUEUE_DECLARE => &[Short, ShortStr, Bits, Table],
        QUEUE_BIND => &[Short, ShortStr, ShortStr, ShortStr, Bits, Table],
        QUEUE_UNBIND => &[Short, ShortStr, ShortStr, ShortStr, Table],
        BASIC_CONSUME => &[Short, ShortStr, ShortStr, Bits, Table],
        _ => &[],
    }
}

/// Checks every field table in a method frame's payload (class and method ids first).
pub(crate) fn check_method(payload: &[u8]) -> Result<(), TooDeep> {
    let Some(ids) = payload.get(..4) else {
        return Ok(());
    };
    let class_id = u16::from_be_bytes([ids[0], ids[1]]);
    let method_id = u16::from_be_bytes([ids[2], ids[3]]);
    let mut at = 4;
    for arg in table_layout(class_id, method_id) {
        let size = match arg {
            Arg::Octet | Arg::Bits => 1,
            Arg::Short => 2,
            Arg::ShortStr => match payload.get(at) {
                Some(&len) => 1 + usize::from(len),
                None => return Ok(()),
            },
            Arg::Table => match check_table(payload.get(at..).unwrap_or_default())? {
                Some(len) => len,
                None => return Ok(()),
            },
        };
        at += size;
    }
    Ok(())
}

/// Checks the headers table of basic properties (property flags first), the one property that nests.
pub(crate) fn check_properties(raw: &[u8]) -> Result<(), TooDeep> {
    let Some(flags) = raw.get(..2) else {
        return Ok(());
    };
    let flags = u16::from_be_bytes([flags[0], flags[1]]);
    if flags & (1 << 13) == 0 {
        return Ok(());
    }
    // content-type and content-encoding, short strings, precede the headers when present.
    let mut at = 2usize;
    for bit in [15u16, 14] {
        if flags & (1 << bit) != 0 {
            match raw.get(at) {
                Some(&len) => at += 1 + usize::from(len),
                None => return Ok(()),
            }
        }
    }
    check_table(raw.get(at..).unwrap_or_default()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::WriteContext;
    use amq_protocol::types::generation::gen_field_table;
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};

    /// A table nested `depth` levels deep (the outermost counts), alternating tables and arrays when `arrays`.
    fn nested(depth: usize, arrays: bool) -> FieldTable {
        let mut value = AMQPValue::LongString("bottom".into());
        for level in 1..depth {
            value = if arrays && level % 2 == 0 {
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(true), value]))
            } else {
                let mut t = FieldTable::default();
                t.insert("k".into(), value);
                AMQPValue::FieldTable(t)
            };
        }
        let mut top = FieldTable::default();
        top.insert("x-int".into(), AMQPValue::LongInt(5));
        top.insert("deep".into(), value);
        top
    }

    fn encode(table: &FieldTable) -> Vec<u8> {
        gen_field_table(table)(WriteContext::from(Vec::new()))
            .map(|c| c.write)
            .unwrap_or_default()
    }

    #[test]
    fn tables_up_to_the_limit_pass_and_give_their_length() {
        for arrays in [false, true] {
            let bytes = encode(&nested(MAX_FIELD_NESTING, arrays));
            assert_eq!(check_table(&bytes), Ok(Some(bytes.len())));
        }
    }

    #[test]
    fn one_level_past_the_limit_is_too_deep() {
        for arrays in [false, true] {
            let bytes = encode(&nested(MAX_FIELD_NESTING + 1, arrays));
            assert_eq!(check_table(&bytes), Err(TooDeep));
        }
    }

    /// Tables nested `depth` deep, built by hand: amq-protocol's own encoder (and drop) would overflow the stack.
    fn nested_bytes(depth: usize) -> Vec<u8> {
        let mut table = vec![0, 0, 0, 0];
        for _ in 0..depth {
            let mut outer = Vec::with_capacity(table.len() + 7);
            outer.extend(((table.len() + 2) as u32).to_be_bytes());
            outer.extend([0, b'F']);
            outer.extend(&table);
            table = outer;
        }
        table
    }

    #[test]
    fn thousands_of_levels_are_refused_without_recursion() {
        assert_eq!(check_table(&nested_bytes(5_000)), Err(TooDeep));
        // The SASL AMQPLAIN response is a field table too.
        assert_eq!(crate::decode_field_table(&nested_bytes(5_000)), None);
        let ok = nested_bytes(MAX_FIELD_NESTING - 1);
        assert_eq!(check_table(&ok), Ok(Some(ok.len())));
    }

    #[test]
    fn malformed_tables_are_left_to_the_decoder() {
        let mut bytes = encode(&nested(10, false));
        bytes.truncate(bytes.len() - 3);
        assert_eq!(check_table(&bytes), Ok(None));
        // Long enough to be walked: a 200-byte string, then a value of no known type.
        let mut unknown_type = vec![0, 0, 0, 211, 1, b'k', b'S', 0, 0, 0, 200];
        unknown_type.extend([b'.'; 200]);
        unknown_type.extend([1, b'k', b'?']);
        assert_eq!(check_table(&unknown_type), Ok(None));
    }

    #[test]
    fn every_table_in_a_method_is_found() {
        let deep = nested(MAX_FIELD_NESTING + 1, false);
        let ok = nested(3, true);
        for (table, expect) in [(&deep, Err(TooDeep)), (&ok, Ok(()))] {
            let mut consume = vec![0, 60, 0, 20, 0, 0, 1, b'q', 0, 0b10];
            consume.extend(encode(table));
            assert_eq!(check_method(&consume), expect);
            let mut start_ok = vec![0, 10, 0, 11];
            start_ok.extend(encode(table));
            start_ok.extend([5, b'P', b'L', b'A', b'I', b'N']);
            assert_eq!(check_method(&start_ok), expect);
        }
    }

    #[test]
    fn headers_are_found_after_content_type_and_encoding() {
        let mut raw = vec![0b1110_0000, 0, 4, b't', b'e', b'x', b't', 0];
        raw.extend(encode(&nested(MAX_FIELD_NESTING + 1, true)));
        assert_eq!(check_properties(&raw), Err(TooDeep));
        let mut raw = vec![0b0010_0000, 0];
        raw.extend(encode(&nested(MAX_FIELD_NESTING, true)));
        assert_eq!(check_properties(&raw), Ok(()));
    }
}
