//! The property tables of the handshake: the server properties Warren introduces itself with in connection.start,
//! and what it reads of the client's properties in start-ok.

use crate::broker::Broker;
use warren_protocol::{AMQPValue, FieldTable, LongString};

/// The nine capabilities RabbitMQ advertises, and whether Warren really provides each.
pub(crate) const CAPABILITIES: &[(&str, bool)] = &[
    ("publisher_confirms", true),
    ("exchange_exchange_bindings", true),
    ("basic.nack", true),
    ("consumer_cancel_notify", true),
    ("connection.blocked", true),
    ("consumer_priorities", true),
    ("authentication_failure_close", true),
    ("per_consumer_qos", true),
    ("direct_reply_to", true),
];

/// The capabilities a client turned on in its start-ok client properties.
pub(crate) fn client_capabilities(props: &FieldTable) -> Vec<String> {
    let Some(AMQPValue::FieldTable(caps)) = props.inner().get("capabilities") else {
        return Vec::new();
    };
    caps.inner()
        .iter()
        .filter(|(_, v)| matches!(v, AMQPValue::Boolean(true)))
        .map(|(k, _)| k.as_str().to_owned())
        .collect()
}

/// A text client property (`product`, `version`), as the management API shows it; None when absent or not text.
pub(crate) fn client_text(props: &FieldTable, key: &str) -> Option<String> {
    match props.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The server properties of connection.start, shaped as RabbitMQ's (some clients read `product` and the
/// capabilities table).
pub(crate) fn server_properties(broker: &Broker) -> FieldTable {
    let server = &broker.config.server;
    let mut caps = FieldTable::default();
    for (name, on) in CAPABILITIES {
        caps.insert((*name).into(), AMQPValue::Boolean(*on));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    props.insert("product".into(), text(&server.product));
    props.insert("version".into(), text(&server.version));
    props.insert("platform".into(), text(&server.platform));
    props.insert(
        "copyright".into(),
        text("Copyright (c) 2026 the Warren authors"),
    );
    props.insert(
        "information".into(),
        text("Warren, an AMQP 0-9-1 broker compatible with RabbitMQ clients. Licensed under the Apache License 2.0."),
    );
    props.insert("cluster_name".into(), text(&server.cluster_name));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props
}
