//! The record framing shared by WAL and segment files (length, CRC32C, type, payload), the file header, and the
//! encoding of each record's payload. docs/storage-format.md describes the same bytes in prose.

use std::ops::Range;

use bytes::Bytes;

use super::{MessageMeta, QueueId, StoredMessage};

/// Every WAL and segment file starts with this many header bytes: magic (8), format version (4), reserved zero (4).
pub(crate) const FILE_HEADER_LEN: u64 = 16;
pub(crate) const WAL_MAGIC: [u8; 8] = *b"WRNWAL\0\0";
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"WRNSEG\0\0";
/// The magic of a spill file (`spill`): message records only, never recovered.
pub(crate) const SPILL_MAGIC: [u8; 8] = *b"WRNSPL\0\0";
/// The version spill files are written with. Spill files are deleted at every start, so it never needs reading
/// across versions; it is there for an operator's `xxd`.
pub(crate) const SPILL_FORMAT_VERSION: u32 = 1;
/// The version new files are written with. Version 2 added the record types that carry a message's metadata
/// (`PublishWithMeta`, `MessageWithMeta`); its other records are version 1's, byte for byte.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest version still read: a version-1 file holds only the record types it had.
pub(crate) const OLDEST_READABLE_VERSION: u32 = 1;

/// Record header: payload length (u32 LE), CRC32C (u32 LE) over the length bytes, the type byte and the payload,
/// then the type byte.
pub(crate) const RECORD_HEADER_LEN: usize = 9;
/// The largest payload accepted. AMQP bodies are capped well below this by every client in practice (RabbitMQ's
/// default is 128 MiB); a length field above it can only be damage.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 30;
/// Acks are split into records of at most this many ids, so one record stays small.
pub(crate) const MAX_IDS_PER_ACK: usize = 65_536;

/// The record types. WAL files hold types below 16, segment files the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// queue count (u32), queue ids (u64 each), then a plain message blob.
    Publish = 1,
    /// queue id (u64), id count (u32), msg ids (u64 each).
    Ack = 2,
    /// queue id (u64).
    DropQueue = 3,
    /// As `Publish`, with a message blob that carries metadata (format version 2).
    PublishWithMeta = 4,
    /// A deduplication key an owner keeps (`dedup_keys::encode`): owner (u64), capacity (u32), inserted at (u64),
    /// expires at (u64), key bytes.
    DedupKey = 5,
    /// a plain message blob (the queue is the segment's).
    Message = 16,
    /// id count (u32), msg ids (u64 each) of messages in this same segment.
    SegmentAck = 17,
    /// As `Message`, with a message blob that carries metadata (format version 2).
    MessageWithMeta = 18,
}

impl Kind {
    pub(crate) fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Publish,
            2 => Kind::Ack,
            3 => Kind::DropQueue,
            4 => Kind::PublishWithMeta,
            5 => Kind::DedupKey,
            16 => Kind::Message,
            17 => Kind::SegmentAck,
            18 => Kind::MessageWithMeta,
            _ => return None,
        })
    }

    /// For a WAL record holding a message: the layout of its blob, behind the queue list.
    pub(crate) fn publish_layout(self) -> Option<BlobLayout> {
        match self {
            Kind::Publish => Some(BlobLayout::Plain),
            Kind::PublishWithMeta => Some(BlobLayout::WithMeta),
            _ => None,
        }
    }

    /// For a segment record holding a message: the layout of its blob, the whole payload.
    pub(crate) fn message_layout(self) -> Option<BlobLayout> {
        match self {
            Kind::Message => Some(BlobLayout::Plain),
            Kind::MessageWithMeta => Some(BlobLayout::WithMeta),
            _ => None,
        }
    }
}

/// How a message blob is laid out; the record type says which. A blob is copied between records verbatim (WAL to
/// segment, segment to compacted segment), so its layout travels with it as the record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlobLayout {
    /// msg id, exchange, routing key, properties, body (format version 1's only layout).
    Plain,
    /// msg id, metadata (u8 length + fields), exchange, routing key, properties, body.
    WithMeta,
}

impl BlobLayout {
    /// The layout a message is written with: with metadata when it has some.
    pub(crate) fn of(msg: &StoredMessage) -> BlobLayout {
        match msg.meta {
            Some(_) => BlobLayout::WithMeta,
            None => BlobLayout::Plain,
        }
    }

    /// The WAL record type of a blob of this layout.
    pub(crate) fn publish_kind(self) -> Kind {
        match self {
            BlobLayout::Plain => Kind::Publish,
            BlobLayout::WithMeta => Kind::PublishWithMeta,
        }
    }

    /// The segment record type of a blob of this layout.
    pub(crate) fn message_kind(self) -> Kind {
        match self {
            BlobLayout::Plain => Kind::Message,
            BlobLayout::WithMeta => Kind::MessageWithMeta,
        }
    }
}

/// Why some bytes do not decode; the caller turns it into a truncation or a corruption report.
pub(crate) type DecodeError = &'static str;

/// The header new files get: `magic` and the current [`FORMAT_VERSION`].
pub(crate) fn file_header(magic: [u8; 8]) -> [u8; FILE_HEADER_LEN as usize] {
    file_header_of(magic, FORMAT_VERSION)
}

/// The header of a file of format `version`.
pub(crate) fn file_header_of(magic: [u8; 8], version: u32) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&version.to_le_bytes());
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

/// Bytes of the metadata fields without the expiry: published at (u64), priority (u8).
const META_BASE_LEN: usize = 9;
/// Bytes of the metadata fields with the expiry (u64) after them.
const META_WITH_EXPIRY_LEN: usize = META_BASE_LEN + 8;

/// Appends a message's metadata as a `WithMeta` blob holds it: its length (u8), then published at (u64), priority
/// (u8) and, only when the message has one, its expiry (u64). A message without its own expiry (most) costs 10
/// bytes, one with it 18.
fn push_meta(out: &mut Vec<u8>, meta: &MessageMeta) {
    let len = if meta.expires_at_ms.is_some() {
        META_WITH_EXPIRY_LEN
    } else {
        META_BASE_LEN
    };
    out.push(len as u8);
    out.extend_from_slice(&meta.published_at_ms.to_le_bytes());
    out.push(meta.priority);
    if let Some(deadline) = meta.expires_at_ms {
        out.extend_from_slice(&deadline.to_le_bytes());
    }
}

/// Reads the metadata `push_meta` wrote. Each field is present when the length covers it; bytes past the fields
/// known here are skipped, so a later version can append fields without a new record type.
fn parse_meta(c: &mut Cursor<'_>) -> Result<MessageMeta, DecodeError> {
    let len = usize::from(c.bytes(1)?[0]);
    if len < META_BASE_LEN {
        return Err("message metadata too short");
    }
    let mut m = Cursor::new(c.bytes(len)?);
    let published_at_ms = m.u64()?;
    let priority = m.bytes(1)?[0];
    let expires_at_ms = if len >= META_WITH_EXPIRY_LEN {
        Some(m.u64()?)
    } else {
        None
    };
    Ok(MessageMeta {
        published_at_ms,
        expires_at_ms,
        priority,
    })
}

/// The bytes of a message blob before its body: msg id (u64), for the `WithMeta` layout the metadata (see
/// `push_meta`), exchange (u16 length + UTF-8), routing key (u16 length + UTF-8), properties (u32 length + raw
/// bytes). The body is the rest of the payload. The layout is [`BlobLayout::of`] the message.
pub(crate) fn message_head(msg: &StoredMessage) -> Result<Vec<u8>, DecodeError> {
    let ex = msg.exchange.as_bytes();
    let rk = msg.routing_key.as_bytes();
    if ex.len() > u16::MAX as usize || rk.len() > u16::MAX as usize {
        return Err("exchange or routing key longer than 65535 bytes");
    }
    let props = &msg.properties_raw;
    let total = 8
        + 1
        + META_WITH_EXPIRY_LEN
        + 2
        + ex.len()
        + 2
        + rk.len()
        + 4
        + props.len()
        + msg.body.len();
    if total > (MAX_PAYLOAD as usize) / 2 {
        return Err("message larger than the store's record limit");
    }
    let mut out = Vec::with_capacity(34 + ex.len() + rk.len() + props.len());
    out.extend_from_slice(&msg.msg_id.to_le_bytes());
    if let Some(meta) = &msg.meta {
        push_meta(&mut out, meta);
    }
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

/// What recovery needs of a message blob: its id, body size and metadata (None in a `Plain` blob).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobSummary {
    pub msg_id: u64,
    pub body_size: u32,
    pub meta: Option<MessageMeta>,
}

/// The layout of a message blob's head; ranges index the blob.
struct Head {
    msg_id: u64,
    meta: Option<MessageMeta>,
    exchange: Range<usize>,
    routing_key: Range<usize>,
    properties: Range<usize>,
    body_start: usize,
}

fn parse_head(blob: &[u8], layout: BlobLayout) -> Result<Head, DecodeError> {
    let mut c = Cursor::new(blob);
    let msg_id = c.u64()?;
    let meta = match layout {
        BlobLayout::Plain => None,
        BlobLayout::WithMeta => Some(parse_meta(&mut c)?),
    };
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
        meta,
        exchange,
        routing_key,
        properties,
        body_start: c.position(),
    })
}

/// The decode error of an exchange name or routing key that is not UTF-8.
const NOT_UTF8: DecodeError = "exchange or routing key is not UTF-8";

/// Reads a blob's head (never its body): what recovery keeps of each message. It checks everything
/// [`decode_message`] checks (the exchange and routing key are UTF-8), so a message recovery reports can always be
/// read back: a record whose checksum holds but whose text does not is damage here, not a failed read later.
pub(crate) fn blob_summary(blob: &[u8], layout: BlobLayout) -> Result<BlobSummary, DecodeError> {
    let head = parse_head(blob, layout)?;
    for text in [head.exchange.clone(), head.routing_key.clone()] {
        std::str::from_utf8(&blob[text]).map_err(|_| NOT_UTF8)?;
    }
    let body_size = u32::try_from(blob.len() - head.body_start).map_err(|_| "body too large")?;
    Ok(BlobSummary {
        msg_id: head.msg_id,
        body_size,
        meta: head.meta,
    })
}

/// Decodes a blob held in `record` (a buffer the returned `Bytes` share, so the body is not copied).
pub(crate) fn decode_message(
    record: &Bytes,
    blob: Range<usize>,
    layout: BlobLayout,
) -> Result<StoredMessage, DecodeError> {
    let b = record.get(blob.clone()).ok_or("blob outside the record")?;
    let head = parse_head(b, layout)?;
    let text = |r: Range<usize>| {
        std::str::from_utf8(&b[r])
            .map(str::to_owned)
            .map_err(|_| NOT_UTF8)
    };
    let props = head.properties;
    Ok(StoredMessage {
        msg_id: head.msg_id,
        exchange: text(head.exchange)?,
        routing_key: text(head.routing_key)?,
        properties_raw: record.slice(blob.start + props.start..blob.start + props.end),
        body: record.slice(blob.start + head.body_start..blob.end),
        meta: head.meta,
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
    // The store never writes a queue twice into one record, but a damaged record may: read it as a set, or
    // retirement would copy the message twice into the queue's segment and settle one copy's ack against both.
    queues.sort_unstable();
    queues.dedup();
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

    fn msg(meta: Option<MessageMeta>) -> StoredMessage {
        StoredMessage {
            msg_id: 42,
            exchange: "amq.topic".into(),
            routing_key: "a.b".into(),
            properties_raw: Bytes::from_static(&[0x90, 0, 2, 5]),
            body: Bytes::from_static(b"hello"),
            meta,
        }
    }

    const META: MessageMeta = MessageMeta {
        published_at_ms: 1_700_000_000_123,
        expires_at_ms: Some(1_700_000_003_123),
        priority: 7,
    };

    #[test]
    fn publish_records_of_both_layouts_round_trip_and_their_crc_catches_a_flip() {
        for meta in [
            None,
            Some(META),
            Some(MessageMeta {
                expires_at_ms: None,
                ..META
            }),
        ] {
            let m = msg(meta);
            let layout = BlobLayout::of(&m);
            let mut front = publish_head(&[7, 9]);
            front.extend_from_slice(&message_head(&m).unwrap());
            let mut rec = Vec::new();
            push_record(&mut rec, layout.publish_kind(), &[&front, &m.body]);
            let (kind, payload) = check_record(&rec).unwrap();
            assert_eq!(
                Kind::from_byte(kind).and_then(Kind::publish_layout),
                Some(layout)
            );
            let (queues, blob_at) = parse_publish(&rec[payload.clone()]).unwrap();
            assert_eq!(queues, vec![7, 9]);
            let bytes = Bytes::from(rec.clone());
            assert_eq!(
                decode_message(&bytes, payload.start + blob_at..payload.end, layout).unwrap(),
                m
            );
            assert_eq!(
                blob_summary(&rec[payload.start + blob_at..], layout).unwrap(),
                BlobSummary {
                    msg_id: 42,
                    body_size: 5,
                    meta,
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
    }

    /// The exact bytes of both blob layouts: a plain blob is what version 1 wrote (old files must still read), and
    /// the metadata sits between the msg id and the exchange.
    #[test]
    fn blob_heads_are_laid_out_as_documented() {
        let plain = message_head(&msg(None)).unwrap();
        let mut want = 42u64.to_le_bytes().to_vec();
        want.extend_from_slice(b"\x09\x00amq.topic\x03\x00a.b\x04\x00\x00\x00\x90\x00\x02\x05");
        assert_eq!(plain, want);
        let with_meta = message_head(&msg(Some(META))).unwrap();
        let mut want = 42u64.to_le_bytes().to_vec();
        want.push(17);
        want.extend_from_slice(&1_700_000_000_123u64.to_le_bytes());
        want.push(7);
        want.extend_from_slice(&1_700_000_003_123u64.to_le_bytes());
        want.extend_from_slice(&plain[8..]);
        assert_eq!(with_meta, want);
        let without_expiry = message_head(&msg(Some(MessageMeta {
            expires_at_ms: None,
            ..META
        })))
        .unwrap();
        assert_eq!(
            without_expiry.len(),
            plain.len() + 10,
            "10 bytes of metadata without an expiry"
        );
    }

    #[test]
    fn metadata_fields_a_later_version_appends_are_skipped() {
        let mut blob = 42u64.to_le_bytes().to_vec();
        blob.push(20);
        blob.extend_from_slice(&5u64.to_le_bytes());
        blob.push(3);
        blob.extend_from_slice(&9u64.to_le_bytes());
        blob.extend_from_slice(&[0xAA, 0xBB, 0xCC]);
        blob.extend_from_slice(&message_head(&msg(None)).unwrap()[8..]);
        blob.extend_from_slice(b"hello");
        let s = blob_summary(&blob, BlobLayout::WithMeta).unwrap();
        assert_eq!(
            s.meta,
            Some(MessageMeta {
                published_at_ms: 5,
                expires_at_ms: Some(9),
                priority: 3
            })
        );
        assert_eq!(s.body_size, 5);
        // Shorter than the fields every version has: damage.
        let mut short = 42u64.to_le_bytes().to_vec();
        short.push(8);
        short.extend_from_slice(&[0; 8]);
        short.extend_from_slice(&message_head(&msg(None)).unwrap()[8..]);
        assert!(blob_summary(&short, BlobLayout::WithMeta).is_err());
    }

    /// Found by the store fuzz target: a record whose checksum holds but whose routing key is not UTF-8 was
    /// reported by recovery and then failed every read. Recovery's summary now refuses what a read refuses.
    #[test]
    fn a_blob_whose_exchange_or_routing_key_is_not_utf8_does_not_summarise() {
        for meta in [None, Some(META)] {
            let m = msg(meta);
            let layout = BlobLayout::of(&m);
            let mut blob = message_head(&m).unwrap();
            blob.extend_from_slice(&m.body);
            assert!(blob_summary(&blob, layout).is_ok());
            for field in [&b"amq.topic"[..], b"a.b"] {
                let at = blob.windows(field.len()).position(|w| w == field).unwrap();
                let mut bad = blob.clone();
                bad[at] = 0xFF;
                assert_eq!(blob_summary(&bad, layout), Err(NOT_UTF8));
                let bytes = Bytes::from(bad.clone());
                assert_eq!(decode_message(&bytes, 0..bad.len(), layout), Err(NOT_UTF8));
            }
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
    fn a_queue_repeated_in_a_publish_is_read_once() {
        let head = publish_head(&[3, 1, 3, 2, 1]);
        assert_eq!(parse_publish(&head).unwrap(), (vec![1, 2, 3], head.len()));
    }

    #[test]
    fn truncated_payloads_are_errors_not_panics() {
        for m in [msg(None), msg(Some(META))] {
            let layout = BlobLayout::of(&m);
            let head = message_head(&m).unwrap();
            for n in 0..head.len() {
                assert!(blob_summary(&head[..n], layout).is_err());
            }
        }
        assert!(parse_publish(&[255, 255, 255, 255]).is_err());
        assert!(parse_ack(&[1, 0, 0, 0], false).is_err());
    }
}
