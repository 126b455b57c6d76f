//! The messages RabbitMQ's firehose tracer publishes to `amq.rabbitmq.trace` (`rabbit_trace`): for every publish
//! (`publish.<exchange>`) and every delivery or basic.get answer (`deliver.<queue>`) in a vhost with tracing on,
//! a copy of the body whose headers describe the original: `exchange_name`, `routing_keys`, `properties` (a table of
//! the properties it had), `node`, then `vhost`, `connection`, `channel`, `user` and `routed_queues` (publish) or
//! `redelivered` (deliver). Pure: the vhost publishes what this module builds.

use bytes::Bytes;

use super::{sender_selected, Message};
use warren_protocol::basic::AMQPProperties;
use warren_protocol::content::encode_properties;
use warren_protocol::error::AmqpError;
use warren_protocol::types::{FieldArray, LongString};
use warren_protocol::{AMQPValue, FieldTable};

/// The trace exchange of every vhost.
pub(crate) const TRACE_EXCHANGE: &str = "amq.rabbitmq.trace";

/// Who published or received the traced message.
pub(crate) struct TraceOrigin<'a> {
    /// The vhost.
    pub(crate) vhost: &'a str,
    /// The connection's name (`<peer> -> <local>`).
    pub(crate) connection: &'a str,
    /// The channel number.
    pub(crate) channel: u16,
    /// The user.
    pub(crate) user: &'a str,
    /// The node's name.
    pub(crate) node: &'a str,
}

/// What was traced.
pub(crate) enum TraceEvent<'a> {
    /// A publish, routed to these queues.
    Publish {
        /// The names of the queues it was routed to.
        routed_queues: &'a [String],
    },
    /// A delivery (or basic.get answer) from `queue`.
    Deliver {
        /// The queue it came from.
        queue: &'a str,
        /// Whether it was a redelivery.
        redelivered: bool,
    },
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The properties table of `rabbit_trace:msg_to_table/1`: each property the message has, named as RabbitMQ's
/// `P_basic` fields, integers as signed ints, the headers as a table, everything else as a long string.
fn properties_table(properties: &AMQPProperties) -> FieldTable {
    let mut t = FieldTable::default();
    let put_text = |t: &mut FieldTable, key: &str, value: Option<String>| {
        if let Some(v) = value {
            t.insert(key.into(), text(&v));
        }
    };
    put_text(
        &mut t,
        "content_type",
        properties.content_type().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "content_encoding",
        properties
            .content_encoding()
            .as_ref()
            .map(|s| s.to_string()),
    );
    if let Some(headers) = properties.headers() {
        t.insert("headers".into(), AMQPValue::FieldTable(headers.clone()));
    }
    if let Some(mode) = properties.delivery_mode() {
        t.insert("delivery_mode".into(), AMQPValue::LongInt(i32::from(*mode)));
    }
    if let Some(priority) = properties.priority() {
        t.insert("priority".into(), AMQPValue::LongInt(i32::from(*priority)));
    }
    put_text(
        &mut t,
        "correlation_id",
        properties.correlation_id().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "reply_to",
        properties.reply_to().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "expiration",
        properties.expiration().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "message_id",
        properties.message_id().as_ref().map(|s| s.to_string()),
    );
    if let Some(timestamp) = properties.timestamp() {
        // RabbitMQ writes every integer property as a signed 32-bit int; seconds since 1970 fit until 2038.
        let value = i32::try_from(*timestamp)
            .map(AMQPValue::LongInt)
            .unwrap_or(AMQPValue::LongLongInt(*timestamp as i64));
        t.insert("timestamp".into(), value);
    }
    put_text(
        &mut t,
        "type",
        properties.kind().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "user_id",
        properties.user_id().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "app_id",
        properties.app_id().as_ref().map(|s| s.to_string()),
    );
    put_text(
        &mut t,
        "cluster_id",
        properties.cluster_id().as_ref().map(|s| s.to_string()),
    );
    t
}

/// The routing key and properties of the trace message for `event` of `message`; None for a message that came
/// through the trace exchange itself (RabbitMQ does not trace its traces).
pub(crate) fn trace_message(
    message: &Message,
    event: &TraceEvent<'_>,
    origin: &TraceOrigin<'_>,
) -> Result<Option<(String, Bytes)>, AmqpError> {
    if *message.exchange == *TRACE_EXCHANGE {
        return Ok(None);
    }
    let properties = message.properties()?;
    let mut keys = vec![AMQPValue::LongString(message.routing_key.as_ref().into())];
    if message.may_select_keys() {
        // RabbitMQ's routing_keys carry the CC and BCC keys (BCC is stripped from the properties only).
        let extra = sender_selected::extra_keys(properties.headers().as_ref()).unwrap_or_default();
        keys.extend(extra.iter().map(|k| text(k)));
    }
    let mut headers = FieldTable::default();
    headers.insert("exchange_name".into(), text(&message.exchange));
    headers.insert(
        "routing_keys".into(),
        AMQPValue::FieldArray(FieldArray::from(keys)),
    );
    headers.insert(
        "properties".into(),
        AMQPValue::FieldTable(properties_table(&properties)),
    );
    headers.insert("node".into(), text(origin.node));
    headers.insert("vhost".into(), text(origin.vhost));
    headers.insert("connection".into(), text(origin.connection));
    headers.insert(
        "channel".into(),
        AMQPValue::LongInt(i32::from(origin.channel)),
    );
    headers.insert("user".into(), text(origin.user));
    let routing_key = match event {
        TraceEvent::Publish { routed_queues } => {
            let queues: Vec<AMQPValue> = routed_queues.iter().map(|q| text(q)).collect();
            headers.insert(
                "routed_queues".into(),
                AMQPValue::FieldArray(FieldArray::from(queues)),
            );
            format!("publish.{}", message.exchange)
        }
        TraceEvent::Deliver { queue, redelivered } => {
            headers.insert(
                "redelivered".into(),
                AMQPValue::LongInt(i32::from(*redelivered)),
            );
            format!("deliver.{queue}")
        }
    };
    let raw = encode_properties(&AMQPProperties::default().with_headers(headers))?;
    Ok(Some((routing_key, raw)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn origin() -> TraceOrigin<'static> {
        TraceOrigin {
            vhost: "/",
            connection: "127.0.0.1:1 -> 127.0.0.1:5672",
            channel: 3,
            user: "guest",
            node: "warren@host",
        }
    }

    fn message(exchange: &str) -> Message {
        let props = AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
            .with_message_id("m1".into());
        Message::new(
            Arc::from(exchange),
            Arc::from("key"),
            encode_properties(&props).unwrap(),
            Bytes::from_static(b"body"),
        )
    }

    #[test]
    fn a_publish_trace_describes_the_message_as_rabbit_trace_does() {
        let queues = vec!["q1".to_owned(), "q2".to_owned()];
        let (key, raw) = trace_message(
            &message("orders"),
            &TraceEvent::Publish {
                routed_queues: &queues,
            },
            &origin(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(key, "publish.orders");
        let decoded = warren_protocol::content::decode_properties(&raw).unwrap();
        let headers = decoded.headers().clone().unwrap();
        let h = headers.inner();
        assert_eq!(h.get("exchange_name"), Some(&text("orders")));
        assert_eq!(h.get("channel"), Some(&AMQPValue::LongInt(3)));
        assert_eq!(
            h.get("routed_queues"),
            Some(&AMQPValue::FieldArray(FieldArray::from(vec![
                text("q1"),
                text("q2")
            ])))
        );
        let Some(AMQPValue::FieldTable(props)) = h.get("properties") else {
            panic!("properties table: {h:?}");
        };
        assert_eq!(
            props.inner().get("delivery_mode"),
            Some(&AMQPValue::LongInt(2))
        );
        assert_eq!(props.inner().get("content_type"), Some(&text("text/plain")));
        assert_eq!(props.inner().get("priority"), None);
        // Transient: only the headers property is set.
        assert_eq!(decoded.delivery_mode(), &None);
    }

    #[test]
    fn deliveries_are_keyed_by_queue_and_traces_are_not_traced() {
        let (key, raw) = trace_message(
            &message(""),
            &TraceEvent::Deliver {
                queue: "q1",
                redelivered: true,
            },
            &origin(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(key, "deliver.q1");
        let headers = warren_protocol::content::decode_properties(&raw)
            .unwrap()
            .headers()
            .clone()
            .unwrap();
        assert_eq!(
            headers.inner().get("redelivered"),
            Some(&AMQPValue::LongInt(1))
        );
        let trace = message(TRACE_EXCHANGE);
        assert!(trace_message(
            &trace,
            &TraceEvent::Publish { routed_queues: &[] },
            &origin()
        )
        .unwrap()
        .is_none());
    }
}
