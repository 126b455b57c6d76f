//! JSON values printed as RabbitMQ prints the Erlang term its JSON decoder makes of them (`~tp`), so that a
//! refused policy is explained in RabbitMQ's words: strings are binaries (`<<"abc">>`), objects are maps, `null`
//! is an atom.

use serde_json::Value;

/// `value` as Erlang's `~tp` prints the term `rabbit_json:decode` makes of it.
pub(crate) fn erlang_term(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => erlang_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => binary(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(erlang_term).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            // Erlang prints map keys in term order; binaries compare bytewise, as `BTreeMap` orders strings.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{} => {}", binary(k), erlang_term(v)))
                .collect();
            format!("#{{{}}}", entries.join(","))
        }
    }
}

/// A proplist of a policy definition's entries, as `~tp` prints `[{<<"k">>,V}]`.
pub(crate) fn erlang_proplist<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) -> String {
    let entries: Vec<String> = entries
        .map(|(k, v)| format!("{{{},{}}}", binary(k), erlang_term(v)))
        .collect();
    format!("[{}]", entries.join(","))
}

/// A binary as `~tp` prints it: `<<"text">>`, with `"` and `\` escaped, and `/utf8` when it is not latin1.
fn binary(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    if s.chars().all(|c| u32::from(c) < 0x100) {
        format!("<<\"{escaped}\">>")
    } else {
        format!("<<\"{escaped}\"/utf8>>")
    }
}

/// A float as Erlang prints it: always with a fraction (`100.0`), exponents as `1.0e20`.
fn erlang_float(f: f64) -> String {
    let text = format!("{f:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => format!("{mantissa}.0e{exponent}"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terms_print_as_erlang_prints_decoded_json() {
        assert_eq!(erlang_term(&json!("abc")), "<<\"abc\">>");
        assert_eq!(erlang_term(&json!(-5)), "-5");
        assert_eq!(erlang_term(&json!(1.5)), "1.5");
        assert_eq!(erlang_term(&json!(1e20)), "1.0e20");
        assert_eq!(erlang_term(&json!(null)), "null");
        assert_eq!(erlang_term(&json!([1, "a"])), "[1,<<\"a\">>]");
        assert_eq!(
            erlang_term(&json!({"b": 1, "a": true})),
            "#{<<\"a\">> => true,<<\"b\">> => 1}"
        );
        assert_eq!(erlang_term(&json!("é€")), "<<\"é€\"/utf8>>");
    }
}
