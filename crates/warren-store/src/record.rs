//! The record framing shared by WAL and segment files (length, CRC32C, type, payload), the file header, and the
//! encoding of each record's payload. docs/storage-format.md describes the same bytes in prose.

use std::ops::Range;

use bytes::Bytes;

use super::{QueueId, StoredMessage};

/// Every WAL and segment file starts with this many header bytes: magic (8), format version (4), reserved zero (4).
pub(crate) const FILE_HEADER_LEN: u64 = 16;
pub(crate) const WAL_MAGIC: [u8; 8] = *b"WRNWAL\0\0";
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"WRNSEG\0\0";
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Record header: payload length (u32 LE), CRC32C (u32 LE) over the length bytes, the type byte and the payload,
/// then the type byte.
pub(crate) const RECORD_HEADER_LEN: usize = 9;
/// The largest payload accepted. AMQP bodies are capped well below this by every client in practice (RabbitMQ's
/// default is 128 MiB); a length field above it can only be damage.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 30;
/// Acks are split into records of at most this many ids, so one record stays small.
pub(crate) const MAX_IDS_PER_ACK: usize = 65_536;

/// The record types. WAL files hold the first three, segment files the last two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// queue count (u32), queue ids (u64 each), then a message blob.
    Publish = 1,
    /// queue id (u64), id count (u32), msg ids (u64 each).
    Ack = 2,
    /// queue id (u64).
    DropQueue = 3,
    /// a message blob (the queue is the segment's).
    Message = 16,
    /// id count (u32), msg ids (u64 each) of messages in this same segment.
    SegmentAck = 17,
}

impl Kind {
    pub(crate) fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Publish,
            2 => Kind::Ack,
            3 => Kind::DropQueue,
            16 => Kind::Message,
            17 => Kind::SegmentAck,
            _ => return None,
        })
    }
}

/// Why some bytes do not decode; the caller turns it into a truncation or a corruption report.
pub(crate) type DecodeError = &'static str;

pub(crate) fn file_header(magic: [u8; 8]) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// The CRC of a record whose payload is the concatenation of `parts`.
pub(crate) fn record_crc(kind: u8, parts: &[&[u8]]) -> u32 {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut crc = crc32c::crc32c(&(len as u32).to_le_bytes());
    crc = crc32c::crc32c_append(crc, &[kind]);
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    crc
}

/// The 9 header bytes of a record whose payload is the concatenation of `parts`.
pub(crate) fn record_header(kind: Kind, parts: &[&[u8]]) -> [u8; RECORD_HEADER_LEN] {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[4..8].copy_from_slice(&record_crc(kind as u8, parts).to_le_bytes());
    h[8] = kind as u8;
    h
}

/// Appends a whole record (header and payload) to `out`.
pub(crate) fn push_record(out: &mut Vec<u8>, kind: Kind, parts: &[&[u8]]) {
    out.extend_from_slice(&record_header(kind, parts));
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Checks a whole record read back from `bytes` (header included) and returns its kind and payload range.
pub(crate) fn check_record(bytes: &[u8]) -> Result<(u8, Range<usize>), DecodeError> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err("record shorter than its header");
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len + RECORD_HEADER_LEN != bytes.len() {
        return Err("record length does not match");
    }
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let kind = bytes[8];
    if record_crc(kind, &[&bytes[RECORD_HEADER_LEN..]]) != crc {
        return Err("record checksum mismatch");
    }
    Ok((kind, RECORD_HEADER_LEN..bytes.len()))
}

/// The bytes of a message blob before its body: msg id (u64), exchange (u16 length + UTF-8), routing key (u16 length
/// + UTF-8), properties (u32 length + raw bytes). The body is the rest of the payload.
pub(crate) fn message_head(msg: &StoredMessage) -> Result<Vec<u8>, DecodeError> {
    let ex = msg.exchange.as_bytes();
    let rk = msg.routing_key.as_bytes();
    if ex.len() > u16::MAX as usize || rk.len() > u16::MAX as usize {
        return Err("exchange or routing key longer than 65535 bytes");
    }
    let props = &msg.properties_raw;
    let total = 8 + 2 + ex.len() + 2 + rk.len() + 4 + props.len() + msg.body.len();
    if total > (MAX_PAYLOAD as usize) / 2 {
        return Err("message larger than the store's record limit");
    }
    let mut out = Vec::with_capacity(16 + ex.len() + rk.len() + props.len());
    out.extend_from_slice(&msg.msg_id.to_le_bytes());
    out.extend_from_slice(&(ex.len() as u16).to_le_bytes());
    out.extend_from_slice(ex);
    out.extend_from_slice(&(rk.len() as u16).to_le_bytes());
    out.extend_from_slice(rk);
    out.extend_from_slice(&(props.len() as u32).to_le_bytes());
    out.extend_from_slice(props);
    Ok(out)
}

/// A little-endian reader over a payload; every read is bounds-checked.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or("field runs past the record")?;
        self.pos = end;
        Ok(out)
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err("trailing bytes in record")
        }
    }
}

/// What recovery needs of a message blob: its id and body size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MessageMeta {
    pub msg_id: u64,
    pub body_size: u32,
}

/// The layout of a message blob's head; ranges index the blob.
struct Head {
    msg_id: u64,
    exchange: Range<usize>,
    routing_key: Range<usize>,
    properties: Range<usize>,
    body_start: usize,
}

fn parse_head(blob: &[u8]) -> Result<Head, DecodeError> {
    let mut c = Cursor::new(blob);
    let msg_id = c.u64()?;
    let field = |c: &mut Cursor<'_>, len: usize| -> Result<Range<usize>, DecodeError> {
        let start = c.position();
        c.bytes(len)?;
        Ok(start..start + len)
    };
    let ex_len = c.u16()? as usize;
    let exchange = field(&mut c, ex_len)?;
    let rk_len = c.u16()? as usize;
    let routing_key = field(&mut c, rk_len)?;
    let props_len = c.u32()? as usize;
    let properties = field(&mut c, props_len)?;
    Ok(Head {
        msg_id,
        exchange,
        routing_key,
        properties,
        body_start: c.position(),
    })
}

pub(crate) fn message_meta(blob: &[u8]) -> Result<MessageMeta, DecodeError> {
    let head = parse_head(blob)?;
    let body_size = u32::try_from(blob.len() - head.body_start).map_err(|_| "body too large")?;
    Ok(MessageMeta {
        msg_id: head.msg_id,
        body_size,
    })
}

/// Decodes a blob held in `record` (a buffer the returned `Bytes` share, so the body is not copied).
pub(crate) fn decode_message(
    record: &Bytes,
    blob: Range<usize>,
) -> Result<StoredMessage, DecodeError> {
    let b = record.get(blob.clone()).ok_or("blob outside the record")?;
    let head = parse_head(b)?;
    let text = |r: Range<usize>| {
        std::str::from_utf8(&b[r])
            .map(str::to_owned)
            .map_err(|_| "exchange or routing key is not UTF-8")
    };
    let props = head.properties;
    Ok(StoredMessage {
        msg_id: head.msg_id,
        exchange: text(head.exchange)?,
        routing_key: text(head.routing_key)?,
        properties_raw: record.slice(blob.start + props.start..blob.start + props.end),
        body: record.slice(blob.start + head.body_start..blob.end),
    })
}

/// The head of a Publish payload (queue count and ids); the message blob follows it.
pub(crate) fn publish_head(queues: &[QueueId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * queues.len());
    out.extend_from_slice(&(queues.len() as u32).to_le_bytes());
    for q in queues {
        out.extend_from_slice(&q.to_le_bytes());
    }
    out
}

/// Splits a Publish payload into its queue ids and the offset of its message blob.
pub(crate) fn parse_publish(payload: &[u8]) -> Result<(Vec<QueueId>, usize), DecodeError> {
    let mut c = Cursor::new(payload);
    let n = c.u32()? as usize;
    if n.saturating_mul(8) > payload.len() {
        return Err("queue count runs past the record");
    }
    let mut queues = Vec::with_capacity(n);
    for _ in 0..n {
        queues.push(c.u64()?);
    }
    Ok((queues, c.position()))
}

/// An Ack payload (with the queue id, for the WAL) or a SegmentAck payload (without).
pub(crate) fn ack_payload(queue: Option<QueueId>, ids: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 8 * ids.len());
    if let Some(q) = queue {
        out.extend_from_slice(&q.to_le_bytes());
    }
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// Parses an Ack (`with_queue`) or SegmentAck payload.
pub(crate) fn parse_ack(
    payload: &[u8],
    with_queue: bool,
) -> Result<(QueueId, Vec<u64>), DecodeError> {
    let mut c = Cursor::new(payload);
    let queue = if with_queue { c.u64()? } else { 0 };
    let n = c.u32()? as usize;
    if n.saturating_mul(8) > payload.len() {
        return Err("id count runs past the record");
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(c.u64()?);
    }
    c.finish()?;
    Ok((queue, ids))
}

pub(crate) fn parse_drop(payload: &[u8]) -> Result<QueueId, DecodeError> {
    let mut c = Cursor::new(payload);
    let q = c.u64()?;
    c.finish()?;
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> StoredMessage {
        StoredMessage {
            msg_id: 42,
            exchange: "amq.topic".into(),
            routing_key: "a.b".into(),
            properties_raw: Bytes::from_static(&[0x90, 0, 2, 5]),
            body: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn publish_record_round_trips_and_its_crc_catches_a_flip() {
        let m = msg();
        let mut front = publish_head(&[7, 9]);
        front.extend_from_slice(&message_head(&m).unwrap());
        let mut rec = Vec::new();
        push_record(&mut rec, Kind::Publish, &[&front, &m.body]);
        let (kind, payload) = check_record(&rec).unwrap();
        assert_eq!(kind, Kind::Publish as u8);
        let (queues, blob_at) = parse_publish(&rec[payload.clone()]).unwrap();
        assert_eq!(queues, vec![7, 9]);
        let bytes = Bytes::from(rec.clone());
        assert_eq!(
            decode_message(&bytes, payload.start + blob_at..payload.end).unwrap(),
            m
        );
        assert_eq!(
            message_meta(&rec[payload.start + blob_at..]).unwrap(),
            MessageMeta {
                msg_id: 42,
                body_size: 5
            }
        );
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x04;
            assert!(
                check_record(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn ack_and_drop_payloads_round_trip() {
        let p = ack_payload(Some(3), &[1, 2, 99]);
        assert_eq!(parse_ack(&p, true).unwrap(), (3, vec![1, 2, 99]));
        let p = ack_payload(None, &[5]);
        assert_eq!(parse_ack(&p, false).unwrap(), (0, vec![5]));
        assert_eq!(parse_drop(&8u64.to_le_bytes()).unwrap(), 8);
    }

    #[test]
    fn truncated_payloads_are_errors_not_panics() {
        let m = msg();
        let head = message_head(&m).unwrap();
        for n in 0..head.len() {
            assert!(message_meta(&head[..n]).is_err());
        }
        assert!(parse_publish(&[255, 255, 255, 255]).is_err());
        assert!(parse_ack(&[1, 0, 0, 0], false).is_err());
    }
}
