//! Message properties and payloads between AMQP and the management API's JSON, as the management plugin converts
//! them (`rabbit_mgmt_format:basic_properties`, `rabbit_mgmt_wm_exchange_publish`): RabbitMQ's property names,
//! headers as JSON tables, a payload as a string or base64, and no properties at all written as `[]`.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::broker::topology::GotMessage;
use crate::definitions::{table_from_json, table_to_json};
use crate::message::{parse_expiration, Message};
use warren_protocol::basic::AMQPProperties;
use warren_protocol::content::encode_properties;
use warren_protocol::ShortString;

/// The properties of a publish body, encoded for a [`Message`]; an unknown property is refused as RabbitMQ
/// refuses it.
fn properties_from_json(json: &Map<String, Value>) -> Result<(Bytes, Option<u64>), ApiError> {
    let mut p = AMQPProperties::default();
    let mut expiration = None;
    for (key, value) in json {
        let text = || -> Result<ShortString, ApiError> {
            let s = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ShortString::try_new(s).map_err(|_| ApiError::bad_request(format!("{key} is too long")))
        };
        let number = || {
            value
                .as_u64()
                .ok_or_else(|| ApiError::bad_request(format!("{key} must be an integer")))
        };
        p = match key.as_str() {
            "content_type" => p.with_content_type(text()?),
            "content_encoding" => p.with_content_encoding(text()?),
            "headers" => {
                let map = value
                    .as_object()
                    .ok_or_else(|| ApiError::bad_request("headers must be an object"))?;
                p.with_headers(
                    table_from_json(map)
                        .map_err(|(k, why)| ApiError::bad_request(format!("headers.{k}: {why}")))?,
                )
            }
            "delivery_mode" => p.with_delivery_mode(number()? as u8),
            "priority" => p.with_priority(number()? as u8),
            "correlation_id" => p.with_correlation_id(text()?),
            "reply_to" => p.with_reply_to(text()?),
            "expiration" => {
                let raw = text()?;
                expiration = Some(
                    parse_expiration(raw.as_str().as_bytes())
                        .map_err(|e| ApiError::bad_request(e.text))?,
                );
                p.with_expiration(raw)
            }
            "message_id" => p.with_message_id(text()?),
            "timestamp" => p.with_timestamp(number()?),
            "type" => p.with_type(text()?),
            "user_id" => p.with_user_id(text()?),
            "app_id" => p.with_app_id(text()?),
            "cluster_id" => p.with_cluster_id(text()?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "{{unknown_property,{other}}}"
                )))
            }
        };
    }
    let raw = encode_properties(&p).map_err(|e| ApiError::bad_request(e.text))?;
    Ok((raw, expiration))
}

/// The message a `POST /api/exchanges/{vhost}/{name}/publish` body describes: `routing_key`, `payload`,
/// `payload_encoding` (`string` or `base64`) and `properties` (all required, as in RabbitMQ).
pub(crate) fn message_from_publish(
    exchange: &str,
    body: &Map<String, Value>,
) -> Result<Message, ApiError> {
    super::require_keys(
        body,
        &["routing_key", "properties", "payload", "payload_encoding"],
    )?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    let payload = match text("payload_encoding") {
        "string" => Bytes::from(text("payload").to_owned()),
        "base64" => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(text("payload"))
                .map_err(|_| ApiError::bad_request("not_base64"))?,
        ),
        other => {
            return Err(ApiError::bad_request(format!(
                "{{unsupported_payload_encoding,{other}}}"
            )))
        }
    };
    let empty = Map::new();
    let properties = match body.get("properties") {
        Some(Value::Object(map)) => map,
        // RabbitMQ's forms send an empty list for no properties.
        _ => &empty,
    };
    let (raw, expiration) = properties_from_json(properties)?;
    let mut message = Message::new(exchange.into(), text("routing_key").into(), raw, payload);
    message.set_expiration(expiration);
    Ok(message)
}

/// The properties of `message` as the management API shows them; `[]` when it has none, as RabbitMQ writes an
/// empty property list.
fn properties_json(message: &Message) -> Value {
    let Ok(p) = message.properties() else {
        return Value::Array(Vec::new());
    };
    let mut out = Map::new();
    let mut text = |key: &str, value: &Option<ShortString>| {
        if let Some(v) = value {
            out.insert(key.to_owned(), Value::String(v.as_str().to_owned()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(mode) = p.delivery_mode() {
        out.insert("delivery_mode".into(), Value::from(*mode));
    }
    if let Some(priority) = p.priority() {
        out.insert("priority".into(), Value::from(*priority));
    }
    if let Some(timestamp) = p.timestamp() {
        out.insert("timestamp".into(), Value::from(*timestamp));
    }
    if let Some(headers) = p.headers() {
        out.insert("headers".into(), Value::Object(table_to_json(headers)));
    }
    if out.is_empty() {
        return Value::Array(Vec::new());
    }
    Value::Object(out)
}

/// The payload encoding a get asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PayloadEncoding {
    /// A string when the payload is UTF-8, else base64.
    Auto,
    /// Always base64.
    Base64,
}

/// One message of a `POST /api/queues/{vhost}/{name}/get` answer, its payload cut to `truncate` bytes.
pub(crate) fn got_json(
    got: &GotMessage,
    encoding: PayloadEncoding,
    truncate: Option<usize>,
) -> Value {
    let body = &got.message.body;
    let shown = &body[..truncate.map_or(body.len(), |n| n.min(body.len()))];
    let (payload, payload_encoding) = match (encoding, std::str::from_utf8(shown)) {
        (PayloadEncoding::Auto, Ok(text)) => (text.to_owned(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    serde_json::json!({
        "payload_bytes": body.len(),
        "redelivered": got.redelivered,
        "exchange": &*got.message.exchange,
        "routing_key": &*got.message.routing_key,
        "message_count": got.message_count,
        "properties": properties_json(&got.message),
        "payload": payload,
        "payload_encoding": payload_encoding,
    })
}
