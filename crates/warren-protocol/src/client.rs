//! The hot-path frames a *client* writes and reads, for the load generator (`warren perf`): basic.publish and
//! basic.ack are encoded by hand into the outbound buffer, basic.deliver and publisher confirms are decoded without
//! allocating. The tests check each one byte for byte against amq-protocol.

use bytes::{BufMut, BytesMut};

use super::frame::{put_frame_header, FRAME_END, FRAME_METHOD};
use super::ids::{put_method_id, BASIC_ACK, BASIC_DELIVER, BASIC_NACK, BASIC_PUBLISH};

/// Appends basic.publish. Names longer than 255 bytes are cut, as the short-string type requires; callers
/// validate names before they get here.
pub fn put_publish(
    out: &mut BytesMut,
    channel: u16,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
) {
    let exchange = short(exchange);
    let routing_key = short(routing_key);
    let size = 4 + 2 + 1 + exchange.len() + 1 + routing_key.len() + 1;
    put_frame_header(out, FRAME_METHOD, channel, size as u32);
    put_method_id(out, BASIC_PUBLISH);
    out.put_u16(0); // reserved-1 (ticket)
    out.put_u8(exchange.len() as u8);
    out.extend_from_slice(exchange);
    out.put_u8(routing_key.len() as u8);
    out.extend_from_slice(routing_key);
    out.put_u8(u8::from(mandatory)); // bit 0 mandatory; bit 1 immediate is never set (RabbitMQ refuses it)
    out.put_u8(FRAME_END);
}

/// Appends a consumer's basic.ack.
pub fn put_ack(out: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool) {
    put_frame_header(out, FRAME_METHOD, channel, 13);
    put_method_id(out, BASIC_ACK);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(multiple));
    out.put_u8(FRAME_END);
}

fn short(s: &str) -> &[u8] {
    &s.as_bytes()[..s.len().min(255)]
}

/// basic.deliver's arguments, borrowed from the frame payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Deliver<'a> {
    /// The consumer it is for.
    pub consumer_tag: &'a [u8],
    /// The tag to ack it with.
    pub delivery_tag: u64,
    /// Whether the broker delivered it before.
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: &'a [u8],
    /// The routing key it was published with.
    pub routing_key: &'a [u8],
}

/// Decodes a method payload if it is basic.deliver; `None` for any other method or a truncated one.
pub fn parse_deliver(payload: &[u8]) -> Option<Deliver<'_>> {
    let mut r = Reader(payload);
    if (r.u16()?, r.u16()?) != BASIC_DELIVER {
        return None;
    }
    let consumer_tag = r.short_str()?;
    let delivery_tag = r.u64()?;
    let redelivered = r.u8()? & 1 != 0;
    let exchange = r.short_str()?;
    let routing_key = r.short_str()?;
    r.0.is_empty().then_some(Deliver {
        consumer_tag,
        delivery_tag,
        redelivered,
        exchange,
        routing_key,
    })
}

/// A publisher confirm as the broker sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// `true` for basic.ack, `false` for basic.nack.
    pub ack: bool,
    /// The publish sequence number it settles.
    pub delivery_tag: u64,
    /// Whether it settles every publish up to and including `delivery_tag`.
    pub multiple: bool,
}

/// Decodes a method payload if it is basic.ack or basic.nack; `None` for any other method or a truncated one.
pub fn parse_confirm(payload: &[u8]) -> Option<Confirm> {
    let mut r = Reader(payload);
    let ack = match (r.u16()?, r.u16()?) {
        BASIC_ACK => true,
        BASIC_NACK => false,
        _ => return None,
    };
    let delivery_tag = r.u64()?;
    let multiple = r.u8()? & 1 != 0;
    r.0.is_empty().then_some(Confirm {
        ack,
        delivery_tag,
        multiple,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }

    fn short_str(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSplitter;
    use crate::method::put_method;
    use amq_protocol::protocol::{basic, AMQPClass};

    fn reference(method: basic::AMQPMethod) -> BytesMut {
        let mut out = BytesMut::new();
        put_method(&mut out, 3, AMQPClass::Basic(method));
        out
    }

    fn payload(mut frame: BytesMut) -> Vec<u8> {
        let frame = FrameSplitter::new(0)
            .next_frame(&mut frame)
            .expect("valid frame")
            .expect("whole frame");
        frame.payload.to_vec()
    }

    #[test]
    fn publish_matches_amq_protocol() {
        for (exchange, routing_key, mandatory) in [("", "q", false), ("amq.topic", "a.b.c", true)] {
            let mut out = BytesMut::new();
            put_publish(&mut out, 3, exchange, routing_key, mandatory);
            let expected = reference(basic::AMQPMethod::Publish(basic::Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory,
                immediate: false,
            }));
            assert_eq!(&out[..], &expected[..]);
        }
    }

    #[test]
    fn ack_matches_amq_protocol() {
        for (tag, multiple) in [(1, false), (u64::MAX, true)] {
            let mut out = BytesMut::new();
            put_ack(&mut out, 3, tag, multiple);
            let expected = reference(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple,
            }));
            assert_eq!(&out[..], &expected[..]);
        }
    }

    #[test]
    fn deliver_decodes_what_amq_protocol_encodes() {
        let bytes = payload(reference(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "ctag-1".into(),
            delivery_tag: 1 << 40,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "rk.1".into(),
        })));
        assert_eq!(
            parse_deliver(&bytes),
            Some(Deliver {
                consumer_tag: b"ctag-1",
                delivery_tag: 1 << 40,
                redelivered: true,
                exchange: b"ex",
                routing_key: b"rk.1",
            })
        );
        for cut in 0..bytes.len() {
            assert_eq!(parse_deliver(&bytes[..cut]), None, "truncated at {cut}");
        }
    }

    #[test]
    fn confirms_decode_what_amq_protocol_encodes() {
        let ack = payload(reference(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 77,
            multiple: true,
        })));
        assert_eq!(
            parse_confirm(&ack),
            Some(Confirm {
                ack: true,
                delivery_tag: 77,
                multiple: true
            })
        );
        let nack = payload(reference(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 5,
            multiple: false,
            requeue: true,
        })));
        assert_eq!(
            parse_confirm(&nack),
            Some(Confirm {
                ack: false,
                delivery_tag: 5,
                multiple: false
            })
        );
        assert_eq!(parse_confirm(&ack[..ack.len() - 1]), None);
        assert_eq!(parse_deliver(&ack), None);
    }
}
