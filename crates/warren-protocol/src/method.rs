//! Decoding and encoding method frames with amq-protocol. A method the spec does not define is told apart from a
//! known method whose arguments do not decode: the first is 540 NOT_IMPLEMENTED, the second 501 FRAME_ERROR (what
//! RabbitMQ answers: "cannot decode", naming the method).

use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, parse_class, AMQPClass};
use bytes::BytesMut;

use super::ids::{self, MethodId, ALL_METHODS, BASIC_PUBLISH, BASIC_QOS};
use super::nesting::{self, MAX_FIELD_NESTING};
use crate::error::{AmqpError, ReplyCode};

/// Reads the class and method ids at the front of a method payload.
pub(crate) fn method_ids(payload: &[u8]) -> Option<MethodId> {
    if payload.len() < 4 {
        return None;
    }
    Some((
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    ))
}

/// basic.qos's prefetch-size, which amq-protocol reads but does not keep (RabbitMQ refuses any value but 0).
pub fn qos_prefetch_size(payload: &[u8]) -> Option<u32> {
    if method_ids(payload)? != BASIC_QOS {
        return None;
    }
    let b = payload.get(4..8)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The arguments of basic.publish, borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishArgs<'a> {
    /// The exchange name; empty for the default exchange.
    pub exchange: &'a str,
    /// The routing key.
    pub routing_key: &'a str,
    /// Return the message with basic.return if no queue takes it.
    pub mandatory: bool,
    /// Refused by RabbitMQ 3 and Warren alike; read so that the refusal can be sent.
    pub immediate: bool,
}

impl<'a> PublishArgs<'a> {
    /// The arguments of a publish amq-protocol decoded, for the path where [`parse_publish`] gave up.
    pub fn of(publish: &'a basic::Publish) -> PublishArgs<'a> {
        PublishArgs {
            exchange: publish.exchange.as_str(),
            routing_key: publish.routing_key.as_str(),
            mandatory: publish.mandatory,
            immediate: publish.immediate,
        }
    }
}

/// Reads a well-formed basic.publish without allocating: the one method that arrives once per message. Anything
/// else, or a publish that is not exactly well formed, gives None, and the caller decodes it with
/// [`decode_method`], which reports the error.
pub fn parse_publish(payload: &[u8]) -> Option<PublishArgs<'_>> {
    let rest = payload.strip_prefix(&ids::wire_bytes(BASIC_PUBLISH))?;
    // reserved-1 (ticket), then exchange and routing-key as short strings, then the bits.
    let rest = rest.get(2..)?;
    let (exchange, rest) = short_str(rest)?;
    let (routing_key, rest) = short_str(rest)?;
    let [bits] = rest else {
        return None;
    };
    Some(PublishArgs {
        exchange,
        routing_key,
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
    })
}

fn short_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let (text, rest) = rest.split_at_checked(usize::from(len))?;
    Some((std::str::from_utf8(text).ok()?, rest))
}

/// Decodes a method frame's payload.
pub fn decode_method(payload: &[u8]) -> Result<AMQPClass, AmqpError> {
    let Some((class_id, method_id)) = method_ids(payload) else {
        return Err(AmqpError::new(
            ReplyCode::FrameError,
            "method frame too short",
        ));
    };
    if !ALL_METHODS.contains(&(class_id, method_id)) {
        return Err(AmqpError::new(
            ReplyCode::NotImplemented,
            format!("unknown method {class_id}.{method_id}"),
        )
        .on_method(class_id, method_id));
    }
    if nesting::check_method(payload).is_err() {
        return Err(AmqpError::new(
            ReplyCode::FrameError,
            format!(
                "cannot decode arguments of method {class_id}.{method_id}: field tables nested deeper than {MAX_FIELD_NESTING} levels"
            ),
        )
        .on_method(class_id, method_id));
    }
    match parse_class(payload) {
        Ok(([], method)) => Ok(method),
        _ => Err(AmqpError::new(
            ReplyCode::FrameError,
            format!("cannot decode arguments of method {class_id}.{method_id}"),
        )
        .on_method(class_id, method_id)),
    }
}

/// Appends a whole method frame. Encoding an owned, well-formed method into memory cannot fail except for
/// strings that break the short-string limit, which the callers keep.
pub fn put_method(out: &mut BytesMut, channel: u16, method: AMQPClass) {
    let frame = AMQPFrame::Method(channel, method);
    let encoded = gen_frame(&frame)(WriteContext::from(Vec::with_capacity(64)));
    match encoded {
        Ok(ctx) => out.extend_from_slice(&ctx.write),
        Err(error) => tracing::error!(?error, ?frame, "cannot encode method frame"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSplitter;
    use amq_protocol::protocol::{connection, queue};

    fn payload_of(method: AMQPClass) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_method(&mut out, 1, method);
        let frame = FrameSplitter::new(0).next_frame(&mut out).unwrap().unwrap();
        frame.payload.to_vec()
    }

    #[test]
    fn unknown_method_is_not_implemented() {
        let err = decode_method(&[0, 60, 0, 99]).unwrap_err();
        assert_eq!(err.reply_code(), 540);
        let err = decode_method(&[0, 11, 0, 10]).unwrap_err();
        assert_eq!(err.reply_code(), 540);
    }

    #[test]
    fn truncated_arguments_are_a_frame_error() {
        let mut bytes = payload_of(AMQPClass::Queue(queue::AMQPMethod::Declare(
            queue::Declare {
                queue: "q".into(),
                ..Default::default()
            },
        )));
        bytes.truncate(bytes.len() - 3);
        assert_eq!(decode_method(&bytes).unwrap_err().reply_code(), 501);
    }

    #[test]
    fn trailing_garbage_is_a_frame_error() {
        let mut bytes = payload_of(AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1,
            multiple: false,
        })));
        bytes.push(0);
        assert_eq!(decode_method(&bytes).unwrap_err().reply_code(), 501);
    }

    fn publish_payload(
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        immediate: bool,
    ) -> Vec<u8> {
        payload_of(AMQPClass::Basic(basic::AMQPMethod::Publish(
            basic::Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory,
                immediate,
            },
        )))
    }

    #[test]
    fn parse_publish_agrees_with_amq_protocol() {
        let long = "k".repeat(255);
        for (exchange, routing_key) in [
            ("", ""),
            ("amq.topic", "a.b.c"),
            ("x", long.as_str()),
            ("é", "ü"),
        ] {
            for bits in 0..4u8 {
                let (mandatory, immediate) = (bits & 1 != 0, bits & 2 != 0);
                let payload = publish_payload(exchange, routing_key, mandatory, immediate);
                let Ok(AMQPClass::Basic(basic::AMQPMethod::Publish(decoded))) =
                    decode_method(&payload)
                else {
                    panic!("amq-protocol did not decode the publish");
                };
                assert_eq!(parse_publish(&payload), Some(PublishArgs::of(&decoded)));
            }
        }
    }

    #[test]
    fn parse_publish_leaves_malformed_publishes_to_decode_method() {
        let good = publish_payload("ex", "key", false, false);
        let mut trailing = good.clone();
        trailing.push(0);
        let truncated = &good[..good.len() - 1];
        let mut overlong = good.clone();
        overlong[6] = 200; // exchange length beyond the payload
        let mut not_utf8 = good.clone();
        not_utf8[7] = 0xff;
        for bad in [&trailing[..], truncated, &overlong[..], &not_utf8[..]] {
            assert_eq!(parse_publish(bad), None);
            assert_eq!(decode_method(bad).unwrap_err().reply_code(), 501);
        }
        let ack = payload_of(AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1,
            multiple: false,
        })));
        assert_eq!(parse_publish(&ack), None);
    }

    #[test]
    fn connection_tune_golden_bytes() {
        let bytes = payload_of(AMQPClass::Connection(connection::AMQPMethod::Tune(
            connection::Tune {
                channel_max: 2047,
                frame_max: 131072,
                heartbeat: 60,
            },
        )));
        assert_eq!(bytes, [0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60]);
    }
}
