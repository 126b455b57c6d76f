//! Content (header and body frames) and the hot-path frames the broker writes per message: basic.deliver,
//! basic.get-ok, basic.return and publisher-confirm acks. These are encoded by hand into the outbound buffer
//! (no intermediate allocation); the tests check them byte for byte against amq-protocol's encoder.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPProperties};
use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{put_frame_header, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD};
use super::nesting::{self, MAX_FIELD_NESTING};
use crate::error::{AmqpError, ReplyCode};
use crate::ids::{put_method_id, BASIC_ACK, BASIC_DELIVER, BASIC_GET_OK, BASIC_NACK, BASIC_RETURN};

/// The class of every content header (re-exported here, where the broker checks it).
pub use crate::ids::CLASS_BASIC;

/// The fixed part of a content header frame and the raw property bytes, kept undecoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentHeader {
    /// The content class; only basic (60) is valid.
    pub class_id: u16,
    /// How many body bytes the frames after it carry in all.
    pub body_size: u64,
    /// Property flags and property list exactly as the publisher sent them.
    pub properties_raw: Bytes,
}

/// Parses a content header frame's payload (class, weight, body size, then raw properties).
pub fn parse_content_header(payload: &Bytes) -> Result<ContentHeader, AmqpError> {
    let (class_id, body_size, _) = parse_content_header_ref(payload)?;
    Ok(ContentHeader {
        class_id,
        body_size,
        properties_raw: payload.slice(12..),
    })
}

/// [`parse_content_header`] without taking the properties out of the frame: (class id, body size, raw
/// properties).
pub fn parse_content_header_ref(payload: &[u8]) -> Result<(u16, u64, &[u8]), AmqpError> {
    if payload.len() < 14 {
        return Err(AmqpError::new(
            ReplyCode::FrameError,
            "content header frame too short",
        ));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let body_size = u64::from_be_bytes([
        payload[4],
        payload[5],
        payload[6],
        payload[7],
        payload[8],
        payload[9],
        payload[10],
        payload[11],
    ]);
    let properties = &payload[12..];
    // Checked on receipt, not only where the headers are decoded, so no message in a queue or the store can
    // overflow the decoder later (a headers exchange, dead-lettering, the management API).
    if nesting::check_properties(properties).is_err() {
        return Err(AmqpError::new(
            ReplyCode::FrameError,
            format!("cannot decode content header: field tables nested deeper than {MAX_FIELD_NESTING} levels"),
        ));
    }
    Ok((class_id, body_size, properties))
}

/// Decodes raw basic properties; used lazily, only where a property is needed.
pub fn decode_properties(raw: &[u8]) -> Result<AMQPProperties, AmqpError> {
    if nesting::check_properties(raw).is_err() {
        return Err(AmqpError::new(
            ReplyCode::SyntaxError,
            "cannot decode content header properties",
        ));
    }
    match parse_properties(raw) {
        Ok((_, props)) => Ok(props),
        Err(_) => Err(AmqpError::new(
            ReplyCode::SyntaxError,
            "cannot decode content header properties",
        )),
    }
}

/// Encodes basic properties as a content header carries them: property flags, then the properties present. The
/// broker publishes a message it rewrote (a dead-lettered copy) with these bytes. Field tables come out in key order
/// (amq-protocol keeps them in a `BTreeMap`), the order RabbitMQ gives a header table it rewrote.
///
/// Encoding into memory fails only for a short string over 255 bytes, which decoded properties cannot hold.
pub fn encode_properties(properties: &AMQPProperties) -> Result<Bytes, AmqpError> {
    match gen_properties(properties)(WriteContext::from(Vec::with_capacity(64))) {
        Ok(ctx) => Ok(Bytes::from(ctx.write)),
        Err(_) => Err(AmqpError::new(
            ReplyCode::InternalError,
            "cannot encode content header properties",
        )),
    }
}

/// Where the property of flag `bit` starts in raw basic properties, found without decoding the others: None when
/// the flags say it is absent or the list is too short to hold what precedes it. Properties are laid out in flag
/// order, from bit 15 down: short strings but for headers (a table with a 4-byte length) and delivery-mode and
/// priority (one octet each).
fn property_at(raw: &[u8], bit: u16) -> Option<usize> {
    let flags = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]);
    if flags & (1 << bit) == 0 {
        return None;
    }
    let mut at = 2usize;
    for earlier in (bit + 1..=15).rev() {
        if flags & (1 << earlier) == 0 {
            continue;
        }
        at += match earlier {
            13 => {
                let len = u32::from_be_bytes([
                    *raw.get(at)?,
                    *raw.get(at + 1)?,
                    *raw.get(at + 2)?,
                    *raw.get(at + 3)?,
                ]);
                4 + len as usize
            }
            11 | 12 => 1,
            _ => 1 + *raw.get(at)? as usize,
        };
    }
    Some(at)
}

/// Reads only the delivery-mode property without decoding the others.
pub fn delivery_mode(raw: &[u8]) -> Option<u8> {
    raw.get(property_at(raw, 12)?).copied()
}

/// Reads only the priority property (an octet) without decoding the others.
pub fn priority(raw: &[u8]) -> Option<u8> {
    raw.get(property_at(raw, 11)?).copied()
}

/// Reads only the expiration property (a short string) without decoding the others: None when the flags say it
/// is absent (the common case, one test), or when the property list is too short to hold it.
pub fn expiration(raw: &[u8]) -> Option<&[u8]> {
    short_string_property(raw, 8)
}

/// Reads only the reply-to property (a short string) without decoding the others.
pub fn reply_to(raw: &[u8]) -> Option<&[u8]> {
    short_string_property(raw, 9)
}

/// Reads only the headers property's encoded table (its field bytes, after the 4-byte length) without decoding it.
pub fn headers_bytes(raw: &[u8]) -> Option<&[u8]> {
    let at = property_at(raw, 13)?;
    let len = u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?) as usize;
    raw.get(at + 4..(at + 4).checked_add(len)?)
}

fn short_string_property(raw: &[u8], bit: u16) -> Option<&[u8]> {
    let at = property_at(raw, bit)?;
    let len = *raw.get(at)? as usize;
    raw.get(at + 1..at + 1 + len)
}

fn put_short_str(out: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(255)];
    out.put_u8(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn short_str_len(s: &str) -> usize {
    1 + s.len().min(255)
}

/// basic.deliver's arguments.
pub struct DeliverArgs<'a> {
    /// The consumer the message goes to.
    pub consumer_tag: &'a str,
    /// The channel's tag for this delivery, which the client acks.
    pub delivery_tag: u64,
    /// Whether the message was delivered before (and requeued).
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: &'a str,
    /// The routing key it was published with.
    pub routing_key: &'a str,
}

/// Appends basic.deliver.
pub fn put_deliver(out: &mut BytesMut, channel: u16, args: &DeliverArgs<'_>) {
    let size = 4
        + short_str_len(args.consumer_tag)
        + 8
        + 1
        + short_str_len(args.exchange)
        + short_str_len(args.routing_key);
    put_frame_header(out, FRAME_METHOD, channel, size as u32);
    put_method_id(out, BASIC_DELIVER);
    put_short_str(out, args.consumer_tag);
    out.put_u64(args.delivery_tag);
    out.put_u8(u8::from(args.redelivered));
    put_short_str(out, args.exchange);
    put_short_str(out, args.routing_key);
    out.put_u8(FRAME_END);
}

/// Appends basic.get-ok.
pub fn put_get_ok(
    out: &mut BytesMut,
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    message_count: u32,
) {
    let size = 4 + 8 + 1 + short_str_len(exchange) + short_str_len(routing_key) + 4;
    put_frame_header(out, FRAME_METHOD, channel, size as u32);
    put_method_id(out, BASIC_GET_OK);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    out.put_u32(message_count);
    out.put_u8(FRAME_END);
}

/// Appends basic.return.
pub fn put_return(
    out: &mut BytesMut,
    channel: u16,
    reply_code: u16,
    reply_text: &str,
    exchange: &str,
    routing_key: &str,
) {
    let size =
        4 + 2 + short_str_len(reply_text) + short_str_len(exchange) + short_str_len(routing_key);
    put_frame_header(out, FRAME_METHOD, channel, size as u32);
    put_method_id(out, BASIC_RETURN);
    out.put_u16(reply_code);
    put_short_str(out, reply_text);
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    out.put_u8(FRAME_END);
}

/// Appends a publisher-confirm basic.ack or basic.nack (requeue=false, as RabbitMQ sends it).
pub fn put_confirm(out: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool, ack: bool) {
    if ack {
        put_frame_header(out, FRAME_METHOD, channel, 13);
        put_method_id(out, BASIC_ACK);
        out.put_u64(delivery_tag);
        out.put_u8(u8::from(multiple));
    } else {
        put_frame_header(out, FRAME_METHOD, channel, 13);
        put_method_id(out, BASIC_NACK);
        out.put_u64(delivery_tag);
        out.put_u8(u8::from(multiple));
    }
    out.put_u8(FRAME_END);
}

/// Appends the content header frame.
pub fn put_content_header(out: &mut BytesMut, channel: u16, body_size: u64, properties_raw: &[u8]) {
    put_frame_header(
        out,
        FRAME_HEADER,
        channel,
        (12 + properties_raw.len()) as u32,
    );
    out.put_u16(CLASS_BASIC);
    out.put_u16(0);
    out.put_u64(body_size);
    out.extend_from_slice(properties_raw);
    out.put_u8(FRAME_END);
}

/// Largest body slice per body frame for a negotiated frame_max (0 = no limit beyond the 32-bit size).
pub fn body_chunk_size(frame_max: u32) -> usize {
    if frame_max == 0 {
        u32::MAX as usize - 8
    } else {
        (frame_max as usize).saturating_sub(8).max(1)
    }
}

/// Appends the body frames of `body` by copying; for large bodies the writer uses [`body_frame_prefix`] and
/// zero-copy slices instead.
pub fn put_body_frames(out: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    for chunk in body.chunks(body_chunk_size(frame_max)) {
        put_frame_header(out, FRAME_BODY, channel, chunk.len() as u32);
        out.extend_from_slice(chunk);
        out.put_u8(FRAME_END);
    }
}

/// The 7-byte header of a body frame carrying `len` bytes.
pub fn body_frame_prefix(channel: u16, len: usize) -> [u8; 7] {
    let c = channel.to_be_bytes();
    let l = (len as u32).to_be_bytes();
    [FRAME_BODY, c[0], c[1], l[0], l[1], l[2], l[3]]
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiration_is_read_past_the_properties_before_it() {
        let flags: u16 = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 9) | (1 << 8) | (1 << 4);
        let mut raw = flags.to_be_bytes().to_vec();
        raw.extend([1, b'a']); // content-type
        raw.extend([0, 0, 0, 3, 1, b'k', b'V']); // headers: 3 bytes of table
        raw.push(2); // delivery-mode
        raw.extend([2, b'r', b'q']); // reply-to
        raw.extend([3, b'5', b'0', b'0']); // expiration
        raw.extend([1, b'u']); // user-id
        assert_eq!(super::expiration(&raw), Some(&b"500"[..]));
        assert_eq!(super::priority(&raw), None);
        let flags: u16 = (1 << 13) | (1 << 12) | (1 << 11);
        let mut with_priority = flags.to_be_bytes().to_vec();
        with_priority.extend([0, 0, 0, 0, 2, 7]);
        assert_eq!(super::priority(&with_priority), Some(7));
        assert_eq!(super::expiration(&[0, 0]), None);
        assert_eq!(super::expiration(&(1u16 << 8).to_be_bytes()), None);
    }

    use super::*;
    use crate::method::put_method;
    use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
    use amq_protocol::protocol::{basic, AMQPClass};
    use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

    fn reference(method: basic::AMQPMethod) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_method(&mut out, 3, AMQPClass::Basic(method));
        out.to_vec()
    }

    #[test]
    fn deliver_matches_amq_protocol() {
        let mut out = BytesMut::new();
        put_deliver(
            &mut out,
            3,
            &DeliverArgs {
                consumer_tag: "ctag",
                delivery_tag: 77,
                redelivered: true,
                exchange: "ex",
                routing_key: "rk",
            },
        );
        let expected = reference(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 77,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "rk".into(),
        }));
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn get_ok_matches_amq_protocol() {
        let mut out = BytesMut::new();
        put_get_ok(&mut out, 3, 5, false, "", "q", 9);
        let expected = reference(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 5,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 9,
        }));
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn return_matches_amq_protocol() {
        let mut out = BytesMut::new();
        put_return(&mut out, 3, 312, "NO_ROUTE", "x", "k");
        let expected = reference(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "x".into(),
            routing_key: "k".into(),
        }));
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn confirms_match_amq_protocol() {
        let mut out = BytesMut::new();
        put_confirm(&mut out, 3, 1000, true, true);
        assert_eq!(
            &out[..],
            &reference(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 1000,
                multiple: true
            }))[..]
        );
        let mut out = BytesMut::new();
        put_confirm(&mut out, 3, 4, false, false);
        assert_eq!(
            &out[..],
            &reference(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: 4,
                multiple: false,
                requeue: false
            }))[..]
        );
    }

    fn rich_properties() -> AMQPProperties {
        let mut headers = FieldTable::default();
        headers.insert("s".into(), AMQPValue::LongString("v".into()));
        headers.insert("i".into(), AMQPValue::LongInt(-5));
        AMQPProperties::default()
            .with_content_type(ShortString::from("text/plain"))
            .with_content_encoding("gzip".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(3)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_expiration("60000".into())
            .with_message_id("m".into())
            .with_timestamp(1234)
            .with_type("t".into())
            .with_user_id("guest".into())
            .with_app_id("a".into())
            .with_cluster_id("cl".into())
    }

    #[test]
    fn content_header_round_trips_raw_properties_byte_for_byte() {
        let properties = rich_properties();
        let frame = AMQPFrame::Header(
            3,
            AMQPContentHeader {
                class_id: 60,
                body_size: 42,
                properties: properties.clone(),
            },
        );
        let ctx = gen_frame(&frame)(WriteContext::from(Vec::new())).unwrap();
        let encoded = ctx.write;
        let payload = Bytes::copy_from_slice(&encoded[7..encoded.len() - 1]);
        let header = parse_content_header(&payload).unwrap();
        assert_eq!(header.class_id, 60);
        assert_eq!(header.body_size, 42);
        assert_eq!(
            decode_properties(&header.properties_raw).unwrap(),
            properties
        );
        assert_eq!(delivery_mode(&header.properties_raw), Some(2));
        let mut out = BytesMut::new();
        put_content_header(&mut out, 3, 42, &header.properties_raw);
        assert_eq!(&out[..], &encoded[..]);
    }

    #[test]
    fn encoded_properties_decode_to_the_same_properties() {
        let properties = rich_properties();
        let raw = encode_properties(&properties).unwrap();
        assert_eq!(decode_properties(&raw).unwrap(), properties);
        assert_eq!(delivery_mode(&raw), Some(2));
        let none = encode_properties(&AMQPProperties::default()).unwrap();
        assert_eq!(&none[..], &[0, 0]);
    }

    #[test]
    fn encoded_properties_match_what_a_client_sends() {
        let properties = rich_properties();
        let frame = AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: 0,
                properties: properties.clone(),
            },
        );
        let encoded = gen_frame(&frame)(WriteContext::from(Vec::new()))
            .unwrap()
            .write;
        assert_eq!(
            &encode_properties(&properties).unwrap()[..],
            &encoded[7 + 12..encoded.len() - 1]
        );
    }

    #[test]
    fn delivery_mode_absent_and_truncated() {
        assert_eq!(delivery_mode(&[0, 0]), None);
        assert_eq!(delivery_mode(&[0x10]), None);
        assert_eq!(delivery_mode(&[0x90, 0, 5, b'a']), None);
        assert_eq!(delivery_mode(&[0x10, 0, 1]), Some(1));
    }

    #[test]
    fn body_frames_split_at_frame_max() {
        let mut out = BytesMut::new();
        put_body_frames(&mut out, 1, &[7u8; 10], 12);
        assert_eq!(out.len(), 3 * 8 + 10);
        assert_eq!(&out[..7], &body_frame_prefix(1, 4));
    }
}
