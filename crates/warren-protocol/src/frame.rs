//! Splitting the inbound byte stream into frames. The 7-byte frame header is checked against the negotiated
//! `frame_max` before a payload is buffered, so a peer cannot make the broker allocate more than it allowed.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{AmqpError, ReplyCode};

/// The frame type of a method frame.
pub(crate) const FRAME_METHOD: u8 = 1;
/// The frame type of a content header frame.
pub(crate) const FRAME_HEADER: u8 = 2;
/// The frame type of a content body frame.
pub const FRAME_BODY: u8 = 3;
/// The frame type of a heartbeat frame.
pub(crate) const FRAME_HEARTBEAT: u8 = 8;
/// The octet every frame ends with; anything else there means the peer lost frame sync.
pub const FRAME_END: u8 = 0xCE;
/// Frame header (type, channel, size) plus the frame-end octet.
pub(crate) const FRAME_OVERHEAD: usize = 8;
/// The largest frame a peer may send before connection.tune-ok (AMQP's frame-min-size).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// The frame types of AMQP 0-9-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A method and its arguments.
    Method,
    /// A content header: class, body size and properties.
    Header,
    /// A slice of a message body.
    Body,
    /// A heartbeat, always on channel 0.
    Heartbeat,
}

/// One frame, its payload a zero-copy slice of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The frame type.
    pub kind: FrameKind,
    /// The channel it is for; 0 for the connection itself.
    pub channel: u16,
    /// The bytes between the header and the frame-end octet.
    pub payload: Bytes,
}

/// Cuts frames off the front of a read buffer.
#[derive(Debug)]
pub struct FrameSplitter {
    frame_max: u32,
}

impl FrameSplitter {
    /// A splitter that refuses frames over `frame_max` (see [`Self::set_frame_max`]); the broker starts with
    /// [`FRAME_MIN_SIZE`] until connection.tune-ok.
    pub fn new(frame_max: u32) -> FrameSplitter {
        FrameSplitter { frame_max }
    }

    /// The largest whole frame (header, payload and end octet) the peer may send; 0 means no limit was set
    /// beyond the protocol's 32-bit size.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Takes the next complete frame off `buf`, `Ok(None)` if more bytes are needed. Errors are 501 frame errors
    /// (oversized frame, bad frame-end octet, unknown frame type), always connection-level.
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<RawFrame>, AmqpError> {
        let Some(head) = self.peek(buf)? else {
            self.reserve_partial(buf);
            return Ok(None);
        };
        let mut frame = buf.split_to(head.total());
        frame.advance(7);
        frame.truncate(head.size);
        Ok(Some(RawFrame {
            kind: head.kind,
            channel: head.channel,
            payload: frame.freeze(),
        }))
    }

    /// Finds the complete frame at the front of `buf` without taking it: the connection reader handles most frames
    /// straight from its read buffer. `Ok(None)` if more bytes are needed; errors as [`Self::next_frame`].
    pub fn peek(&self, buf: &[u8]) -> Result<Option<FrameHead>, AmqpError> {
        let Some(head) = self.header(buf)? else {
            return Ok(None);
        };
        let total = head.total();
        if buf.len() < total {
            return Ok(None);
        }
        if buf[total - 1] != FRAME_END {
            return Err(AmqpError::new(
                ReplyCode::FrameError,
                format!("invalid frame end octet {:#04x}", buf[total - 1]),
            ));
        }
        Ok(Some(head))
    }

    /// After [`Self::peek`] refused the frame at the front of `buf`: the bytes that frame takes (header, declared
    /// payload, end octet) when its header was what was refused (a payload over frame_max, an unknown frame type),
    /// so a reader can drop exactly that frame and find the next one. None when the header was fine, which means
    /// the frame-end octet was wrong: the peer lost frame sync and no later frame boundary can be trusted.
    pub fn refused_frame_len(&self, buf: &[u8]) -> Option<u64> {
        let header = buf.get(..7)?;
        if self.header(buf).is_ok() {
            return None;
        }
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        Some(u64::from(size) + FRAME_OVERHEAD as u64)
    }

    /// Makes room in `buf` for the rest of a frame whose header has arrived (checked against frame_max already).
    pub fn reserve_partial(&self, buf: &mut BytesMut) {
        if let Ok(Some(head)) = self.header(buf) {
            buf.reserve(head.total().saturating_sub(buf.len()));
        }
    }

    /// Reads and checks a frame header.
    fn header(&self, buf: &[u8]) -> Result<Option<FrameHead>, AmqpError> {
        let Some(header) = buf.get(..7) else {
            return Ok(None);
        };
        let kind = match header[0] {
            FRAME_METHOD => FrameKind::Method,
            FRAME_HEADER => FrameKind::Header,
            FRAME_BODY => FrameKind::Body,
            FRAME_HEARTBEAT => FrameKind::Heartbeat,
            other => {
                return Err(AmqpError::new(
                    ReplyCode::FrameError,
                    format!("unknown frame type {other}"),
                ))
            }
        };
        let channel = u16::from_be_bytes([header[1], header[2]]);
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        // Like RabbitMQ, a payload may reach frame_max itself (8 bytes over the whole-frame limit): many clients
        // forget the frame overhead when they cut bodies, and RabbitMQ accepts them.
        if self.frame_max != 0 && size > self.frame_max {
            // RabbitMQ's text: the frame type, no payload octets (none were read) and its `frame_too_large`
            // term with the payload size and the largest payload frame_max leaves.
            return Err(AmqpError::new(
                ReplyCode::FrameError,
                format!(
                    "type {}, all octets = <<>>: {{frame_too_large,{size},{}}}",
                    header[0],
                    u64::from(self.frame_max).saturating_sub(FRAME_OVERHEAD as u64)
                ),
            ));
        }
        Ok(Some(FrameHead {
            kind,
            channel,
            size: size as usize,
        }))
    }
}

/// A frame found in a buffer by [`FrameSplitter::peek`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// The frame type.
    pub kind: FrameKind,
    /// The channel it is for.
    pub channel: u16,
    /// Payload bytes.
    pub size: usize,
}

impl FrameHead {
    /// Header, payload and frame-end octet.
    pub fn total(&self) -> usize {
        self.size + FRAME_OVERHEAD
    }

    /// The payload, from a buffer that starts with this frame.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[7..7 + self.size]
    }
}

/// A frame payload either still in the read buffer or taken out of it.
#[derive(Clone, Debug)]
pub enum FramePayload<'a> {
    /// Still in the read buffer: the common case, handled without a copy.
    Borrowed(&'a [u8]),
    /// Taken out of the buffer (a frame that arrived in pieces).
    Owned(Bytes),
}

impl FramePayload<'_> {
    /// The payload's bytes wherever they are.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            FramePayload::Borrowed(bytes) => bytes,
            FramePayload::Owned(bytes) => bytes,
        }
    }

    /// The payload as owned bytes, copied if it is still in the read buffer.
    pub fn into_bytes(self) -> Bytes {
        match self {
            FramePayload::Borrowed(bytes) => Bytes::copy_from_slice(bytes),
            FramePayload::Owned(bytes) => bytes,
        }
    }
}

/// Writes a frame header for a payload of `size` bytes.
pub fn put_frame_header(out: &mut BytesMut, kind: u8, channel: u16, size: u32) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
}

/// Writes a heartbeat frame.
pub fn put_heartbeat(out: &mut BytesMut) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_frame_header(&mut out, kind, channel, payload.len() as u32);
        out.extend_from_slice(payload);
        out.extend_from_slice(&[FRAME_END]);
        out.to_vec()
    }

    #[test]
    fn splits_consecutive_frames_and_waits_for_partial_ones() {
        let mut bytes = frame(FRAME_METHOD, 1, b"abc");
        bytes.extend(frame(FRAME_BODY, 2, b"de"));
        let splitter = FrameSplitter::new(4096);
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        let first = splitter.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(first.kind, FrameKind::Method);
        assert_eq!(first.channel, 1);
        assert_eq!(&first.payload[..], b"abc");
        assert_eq!(splitter.next_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[FRAME_END]);
        let second = splitter.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(second.kind, FrameKind::Body);
        assert_eq!(&second.payload[..], b"de");
        assert!(buf.is_empty());
    }

    #[test]
    fn peek_finds_frames_in_place_and_agrees_with_next_frame() {
        let mut bytes = frame(FRAME_METHOD, 1, b"abc");
        bytes.extend(frame(FRAME_BODY, 2, b"de"));
        let splitter = FrameSplitter::new(4096);
        let head = splitter.peek(&bytes).unwrap().unwrap();
        assert_eq!(
            (head.kind, head.channel, head.payload(&bytes)),
            (FrameKind::Method, 1, &b"abc"[..])
        );
        let rest = &bytes[head.total()..];
        let second = splitter.peek(rest).unwrap().unwrap();
        assert_eq!(
            (second.kind, second.channel, second.payload(rest)),
            (FrameKind::Body, 2, &b"de"[..])
        );
        assert_eq!(splitter.peek(&rest[..rest.len() - 1]).unwrap(), None);
        assert_eq!(splitter.peek(&rest[..5]).unwrap(), None);
        let mut buf = BytesMut::from(&bytes[..]);
        let taken = splitter.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(&taken.payload[..], head.payload(&bytes));
    }

    #[test]
    fn oversized_frame_is_refused_before_its_payload_arrives() {
        let mut buf = BytesMut::from(&[FRAME_METHOD, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        let err = FrameSplitter::new(131072).next_frame(&mut buf).unwrap_err();
        assert_eq!(err.reply_code(), 501);
        assert!(buf.capacity() < 1 << 20);
        assert_eq!(
            FrameSplitter::new(131072)
                .peek(&buf)
                .unwrap_err()
                .reply_code(),
            501
        );
    }

    #[test]
    fn a_refused_header_tells_how_long_its_frame_is() {
        let splitter = FrameSplitter::new(131072);
        let oversized = [FRAME_METHOD, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            splitter.refused_frame_len(&oversized),
            Some(0xFFFF_FFFF + 8)
        );
        let unknown_type = [9, 0, 1, 0, 0, 0, 3, 1, 2, 3, FRAME_END];
        assert_eq!(splitter.refused_frame_len(&unknown_type), Some(11));
        let mut bad_end = frame(FRAME_METHOD, 1, b"abc");
        *bad_end.last_mut().unwrap() = 0;
        assert!(splitter.peek(&bad_end).is_err());
        assert_eq!(splitter.refused_frame_len(&bad_end), None);
        assert_eq!(splitter.refused_frame_len(&oversized[..6]), None);
    }

    #[test]
    fn bad_frame_end_is_a_frame_error() {
        let mut bytes = frame(FRAME_METHOD, 1, b"abc");
        *bytes.last_mut().unwrap() = 0;
        let err = FrameSplitter::new(4096)
            .next_frame(&mut BytesMut::from(&bytes[..]))
            .unwrap_err();
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn unknown_frame_type_is_a_frame_error() {
        let bytes = frame(7, 1, b"abc");
        let err = FrameSplitter::new(4096)
            .next_frame(&mut BytesMut::from(&bytes[..]))
            .unwrap_err();
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn heartbeat_frame_golden_bytes() {
        let mut out = BytesMut::new();
        put_heartbeat(&mut out);
        assert_eq!(&out[..], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
        let f = FrameSplitter::new(4096)
            .next_frame(&mut out)
            .unwrap()
            .unwrap();
        assert_eq!(f.kind, FrameKind::Heartbeat);
    }
}
