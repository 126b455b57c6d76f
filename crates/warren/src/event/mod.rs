//! RabbitMQ's event exchange (the rabbitmq_event_exchange plugin), the pure half: the [`Event`]s the broker
//! reports (a queue created, a login refused, ...) and the message each becomes on `amq.rabbitmq.event`. The
//! vhost that holds the exchange publishes them (`vhost::events`); this module does no I/O.
//!
//! The plugin turns every `rabbit_event` into a message with routing key `queue.created` (the event's name, `_`
//! read as `.`), an empty body, delivery mode 2, a timestamp in seconds, and the event's properties as headers,
//! converted by `rabbit_exchange_type_event:fmt/2`: binaries as long strings, integers as 64-bit longs (`l`),
//! booleans as booleans, atoms and pids as long strings, resources as their name plus a `vhost` header, and field
//! tables (arguments, client properties) as arrays of their entries printed as Erlang terms. `timestamp_in_ms` is
//! added to every event. Checked against RabbitMQ 3.10.8 with the plugin (docs/compatibility.md).

mod erlang;
mod kinds;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use warren_protocol::basic::AMQPProperties;
use warren_protocol::content::encode_properties;
use warren_protocol::error::AmqpError;
use warren_protocol::types::{FieldArray, LongString};
use warren_protocol::{AMQPValue, FieldTable};

#[cfg(test)]
use erlang::ip_tuple;
pub(crate) use erlang::{channel_pid, connection_pid};
pub(crate) use kinds::{AuthAttempt, ConnectionCreated};

/// The event exchange's name, in the one vhost that has it.
pub(crate) const EVENT_EXCHANGE: &str = "amq.rabbitmq.event";

/// The user RabbitMQ names as `user_who_performed_action` for what the broker does by itself (an exclusive
/// queue deleted with its connection, an auto-delete queue or exchange, a definitions import at start).
pub(crate) const INTERNAL_USER: &str = "rmq-internal";

/// One event: its routing key and its properties, as the plugin publishes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// The routing key (`queue.created`, `user.authentication.failure`, ...).
    pub(crate) key: &'static str,
    /// The headers of its message, `timestamp_in_ms` aside (added when it is published).
    pub(crate) headers: FieldTable,
}

impl Event {
    /// An event `key` without properties yet.
    fn new(key: &'static str) -> Event {
        Event {
            key,
            headers: FieldTable::default(),
        }
    }

    /// Adds a long-string property.
    fn text(mut self, name: &str, value: &str) -> Event {
        self.headers.insert(name.into(), text(value));
        self
    }

    /// Adds an integer property, as the plugin writes every Erlang integer: a 64-bit long.
    fn long(mut self, name: &str, value: i64) -> Event {
        self.headers
            .insert(name.into(), AMQPValue::LongLongInt(value));
        self
    }

    /// Adds a boolean property.
    fn boolean(mut self, name: &str, value: bool) -> Event {
        self.headers.insert(name.into(), AMQPValue::Boolean(value));
        self
    }

    /// Adds a property of any type.
    fn value(mut self, name: &str, value: AMQPValue) -> Event {
        self.headers.insert(name.into(), value);
        self
    }

    /// Adds `user_who_performed_action`.
    fn by(self, user: &str) -> Event {
        self.text("user_who_performed_action", user)
    }

    /// The properties of its message at `now_ms` (ms since the epoch): persistent, the timestamp in seconds and
    /// the headers with `timestamp_in_ms`, as the plugin sends them. The body is empty.
    pub(crate) fn properties(&self, now_ms: u64) -> Result<Bytes, AmqpError> {
        let mut headers = self.headers.clone();
        headers.insert(
            "timestamp_in_ms".into(),
            AMQPValue::LongLongInt(i64::try_from(now_ms).unwrap_or(i64::MAX)),
        );
        let properties = AMQPProperties::default()
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_timestamp(now_ms / 1000);
        encode_properties(&properties)
    }
}

/// A long string.
fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// A field table as the plugin writes one it cannot map (queue, exchange, binding and consumer arguments, client
/// properties): an array of long strings, each entry printed as the Erlang term `{<<"name">>,type,value}`.
fn table_as_terms(table: &FieldTable) -> AMQPValue {
    let entries: Vec<AMQPValue> = table
        .inner()
        .iter()
        .map(|(name, value)| text(&erlang::table_entry(name.as_str(), value)))
        .collect();
    AMQPValue::FieldArray(FieldArray::from(entries))
}

/// An Erlang string (a list of code points), as the plugin writes one: an array of longs.
fn char_list(value: &str) -> AMQPValue {
    let chars: Vec<AMQPValue> = value
        .chars()
        .map(|c| AMQPValue::LongLongInt(i64::from(u32::from(c))))
        .collect();
    AMQPValue::FieldArray(FieldArray::from(chars))
}

/// A JSON value (a policy's definition) as the plugin converts the decoded term: objects as tables, arrays as
/// arrays, integers as longs, other numbers as doubles (the plugin's `float` type, 32 bits, loses precision),
/// strings as long strings, null as the atom `null`.
fn json_value(value: &serde_json::Value) -> AMQPValue {
    use serde_json::Value;
    match value {
        Value::Null => text("null"),
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => text(s),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(json_value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(json_table(map)),
    }
}

/// A JSON object as a field table.
fn json_table(map: &serde_json::Map<String, serde_json::Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in map {
        table.insert(key.as_str().into(), json_value(value));
    }
    table
}
