//! Queue, exchange and binding arguments between a definitions file's JSON and AMQP field tables, the way
//! RabbitMQ converts them (`rabbit_misc:to_amqp_table/1` on import, `rabbit_misc:amqp_table/1` on export):
//! integers become signed 64-bit `l`, other numbers doubles, strings long strings, booleans `t`, lists arrays
//! and objects tables; `null` is refused.

use base64::Engine;
use serde_json::{Map, Number, Value};
use warren_protocol::types::{AMQPValue, FieldArray, LongString, ShortString};
use warren_protocol::FieldTable;

/// Converts the JSON object `arguments` to a field table; Err names the (dotted) key at fault below it, and why.
pub(crate) fn table_from_json(
    arguments: &Map<String, Value>,
) -> Result<FieldTable, (String, String)> {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        let name = ShortString::try_new(key.as_str())
            .map_err(|_| (key.clone(), "a key longer than 255 bytes".to_owned()))?;
        let value = value_from_json(value).map_err(|(below, why)| (join(key, &below), why))?;
        table.insert(name, value);
    }
    Ok(table)
}

/// `key.below`, or `key` when nothing is below.
fn join(key: &str, below: &str) -> String {
    if below.is_empty() {
        key.to_owned()
    } else {
        format!("{key}.{below}")
    }
}

fn value_from_json(value: &Value) -> Result<AMQPValue, (String, String)> {
    Ok(match value {
        Value::Null => return Err((String::new(), "null is not allowed".to_owned())),
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => AMQPValue::LongLongInt(i),
            // Beyond i64 (RabbitMQ would write a bignum that does not fit `l` and fail): refused.
            (None, _) if n.is_u64() => {
                return Err((
                    String::new(),
                    format!("{n} does not fit a signed 64-bit integer"),
                ))
            }
            (None, Some(f)) => AMQPValue::Double(f),
            (None, None) => {
                return Err((String::new(), format!("{n} is not a number AMQP can carry")))
            }
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => {
            let mut array = FieldArray::default();
            for (i, item) in items.iter().enumerate() {
                let v = value_from_json(item)
                    .map_err(|(below, why)| (join(&format!("[{i}]"), &below), why))?;
                array.push(v);
            }
            AMQPValue::FieldArray(array)
        }
        Value::Object(map) => AMQPValue::FieldTable(table_from_json(map)?),
    })
}

/// The JSON object RabbitMQ exports for a field table.
pub(crate) fn table_to_json(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
        .collect()
}

fn value_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::Float(f) => float(f64::from(*f)),
        AMQPValue::Double(f) => float(*f),
        // RabbitMQ prints `Before.After` of the raw {scale, value} pair; the value / 10^scale is what was meant.
        AMQPValue::DecimalValue(d) => float(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => utf8_safe(s.as_bytes()),
        AMQPValue::ByteArray(b) => utf8_safe(b.as_slice()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(table_to_json(t)),
        AMQPValue::Void => Value::Null,
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The text of `bytes`, or RabbitMQ's `utf8_safe` replacement for bytes that are not UTF-8.
fn utf8_safe(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::String(format!(
            "Invalid UTF-8, base64 is: {}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(v: Value) -> Result<FieldTable, (String, String)> {
        match v {
            Value::Object(map) => table_from_json(&map),
            _ => panic!("an object"),
        }
    }

    #[test]
    fn json_types_become_rabbitmqs_field_types() {
        let t = table(json!({
            "x-max-length": 10, "neg": -7, "f": 1.5, "s": "text", "b": true,
            "list": [1, "a", false], "nested": {"k": "v"}
        }))
        .unwrap();
        let get = |k: &str| t.inner().get(k).cloned().unwrap();
        assert_eq!(get("x-max-length"), AMQPValue::LongLongInt(10));
        assert_eq!(get("neg"), AMQPValue::LongLongInt(-7));
        assert_eq!(get("f"), AMQPValue::Double(1.5));
        assert_eq!(get("s"), AMQPValue::LongString("text".into()));
        assert_eq!(get("b"), AMQPValue::Boolean(true));
        let AMQPValue::FieldArray(list) = get("list") else {
            panic!("array")
        };
        assert_eq!(list.as_slice()[1], AMQPValue::LongString("a".into()));
        let AMQPValue::FieldTable(nested) = get("nested") else {
            panic!("table")
        };
        assert_eq!(
            nested.inner().get("k"),
            Some(&AMQPValue::LongString("v".into()))
        );
    }

    #[test]
    fn conversion_round_trips_through_json() {
        let original = json!({"a": 1, "b": [true, {"c": "d"}], "e": 2.25, "f": "g"});
        let t = table(original.clone()).unwrap();
        assert_eq!(Value::Object(table_to_json(&t)), original);
    }

    #[test]
    fn null_and_huge_numbers_are_refused_with_their_key() {
        assert_eq!(
            table(json!({"x": {"y": [1, null]}})).unwrap_err(),
            ("x.y.[1]".to_owned(), "null is not allowed".to_owned())
        );
        assert_eq!(
            table(json!({"big": 18446744073709551615u64}))
                .unwrap_err()
                .0,
            "big"
        );
    }

    #[test]
    fn wire_types_export_as_rabbitmq_exports_them() {
        let mut t = FieldTable::default();
        t.insert("i".into(), AMQPValue::LongInt(5));
        t.insert(
            "bin".into(),
            AMQPValue::LongString(LongString::from(vec![0xff, 0xfe])),
        );
        let json = table_to_json(&t);
        assert_eq!(json["i"], json!(5));
        assert_eq!(json["bin"], json!("Invalid UTF-8, base64 is: //4="));
    }
}
