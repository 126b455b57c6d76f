//! Hand-built inputs the corpus must always hold besides captured traffic: issue 12's field tables nested about
//! 1,200 levels deep (tables, and tables alternating with arrays) in every place a client can put a table (the
//! arguments of the nine methods that carry one, a content header's headers, a SASL AMQPLAIN response), and a
//! frame stream carrying one. Built byte by byte: amq-protocol's own encoder (and drop) would overflow the stack.
//! The corpus tool writes them to `fuzz/corpus/`; `tests/deep_nesting.rs` checks each is refused.

/// The depth of issue 12's report: enough to overflow a 2 MiB stack in a recursive decoder.
pub const DEEP: usize = 1_200;

/// A field value nested `levels` deep: a table (`F`) holding the next level under key `k`, or, every other level
/// when `arrays`, an array (`A`) holding it; the innermost is an empty table.
fn nested_value(levels: usize, arrays: bool) -> Vec<u8> {
    let mut value = b"F\0\0\0\0".to_vec();
    for level in 1..levels {
        let mut outer;
        if arrays && level % 2 == 1 {
            outer = Vec::with_capacity(value.len() + 5);
            outer.push(b'A');
            outer.extend((value.len() as u32).to_be_bytes());
        } else {
            outer = Vec::with_capacity(value.len() + 7);
            outer.push(b'F');
            outer.extend(((value.len() + 2) as u32).to_be_bytes());
            outer.extend([1, b'k']);
        }
        outer.extend(&value);
        value = outer;
    }
    value
}

/// A length-prefixed field table whose entry `deep` nests `levels` below it (plus a shallow entry first, as real
/// arguments have).
pub fn nested_table(levels: usize, arrays: bool) -> Vec<u8> {
    let mut entries = b"\x05x-intI\0\0\0\x05\x04deep".to_vec();
    entries.extend(nested_value(levels, arrays));
    let mut table = (entries.len() as u32).to_be_bytes().to_vec();
    table.extend(entries);
    table
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend(s.as_bytes());
}

/// The payload of each method a client sends that carries a field table, with `table` as that table; named.
pub fn methods_with_table(table: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut m = vec![0, 10, 0, 11];
    m.extend(table);
    short_str(&mut m, "PLAIN");
    m.extend(7u32.to_be_bytes());
    m.extend(b"\0gu\0est");
    short_str(&mut m, "en_US");
    out.push(("connection-start-ok", m));
    let mut m = vec![0, 40, 0, 10, 0, 0];
    short_str(&mut m, "ex");
    short_str(&mut m, "headers");
    m.push(0b10);
    m.extend(table);
    out.push(("exchange-declare", m));
    for (name, method_id) in [("exchange-bind", 30u8), ("exchange-unbind", 40)] {
        let mut m = vec![0, 40, 0, method_id, 0, 0];
        short_str(&mut m, "dest");
        short_str(&mut m, "src");
        short_str(&mut m, "rk");
        m.push(0);
        m.extend(table);
        out.push((name, m));
    }
    let mut m = vec![0, 50, 0, 10, 0, 0];
    short_str(&mut m, "q");
    m.push(0b10);
    m.extend(table);
    out.push(("queue-declare", m));
    let mut m = vec![0, 50, 0, 20, 0, 0];
    short_str(&mut m, "q");
    short_str(&mut m, "amq.headers");
    short_str(&mut m, "");
    m.push(0);
    m.extend(table);
    out.push(("queue-bind", m));
    let mut m = vec![0, 50, 0, 50, 0, 0];
    short_str(&mut m, "q");
    short_str(&mut m, "amq.headers");
    short_str(&mut m, "");
    m.extend(table);
    out.push(("queue-unbind", m));
    let mut m = vec![0, 60, 0, 20, 0, 0];
    short_str(&mut m, "q");
    short_str(&mut m, "ctag");
    m.push(0);
    m.extend(table);
    out.push(("basic-consume", m));
    out
}

/// A content header payload (basic, body size 5) whose headers property is `table`, after a content type.
pub fn content_header_with_headers(table: &[u8]) -> Vec<u8> {
    let mut h = vec![0, 60, 0, 0];
    h.extend(5u64.to_be_bytes());
    h.extend(0b1010_0000_0000_0000u16.to_be_bytes());
    short_str(&mut h, "text/plain");
    h.extend(table);
    h
}

/// A frame-target input: default frame_max, whole-stream reads, then `payload` as a method frame on channel 1.
pub fn frame_input(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 1, 0, 1];
    f.extend((payload.len() as u32).to_be_bytes());
    f.extend(payload);
    f.push(0xCE);
    f
}

/// The deep-nesting inputs of each protocol target, named, as the corpus keeps them.
pub fn deep_nesting() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (kind, arrays) in [("tables", false), ("arrays", true)] {
        let table = nested_table(DEEP, arrays);
        for (method, payload) in methods_with_table(&table) {
            out.push(("methods", format!("deep-{kind}-{method}"), payload));
        }
        out.push((
            "content",
            format!("deep-{kind}-headers"),
            content_header_with_headers(&table),
        ));
        out.push((
            "content",
            format!("deep-{kind}-amqplain-table"),
            table.clone(),
        ));
        let declare = methods_with_table(&table).swap_remove(4).1;
        out.push((
            "frames",
            format!("deep-{kind}-queue-declare-frame"),
            frame_input(&declare),
        ));
    }
    out
}
