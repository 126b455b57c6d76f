//! The frame splitter target. Input: one byte choosing `frame_max`, one byte seeding how the stream is cut into
//! reads, then the byte stream a client sent after the protocol header.
//!
//! Contract: fed in any chunking, `FrameSplitter` yields exactly the frames and the error of an obviously correct
//! reference split of the whole stream; every frame's payload is at most `frame_max` and re-encodes to the bytes it
//! came from; `peek` agrees with `next_frame`; every error is a connection-level 501; a frame whose header declares
//! more than `frame_max` is refused as soon as its header is in, without buffering its payload.

use bytes::BytesMut;
use warren_protocol::error::{ReplyCode, Scope};
use warren_protocol::frame::{put_frame_header, FrameKind, FRAME_END, FRAME_MIN_SIZE};
use warren_protocol::{FrameSplitter, RawFrame};

use crate::input::Input;
use crate::Target;

/// The frame splitter target.
pub const TARGET: Target = Target {
    name: "frames",
    run,
    alloc_limit,
};

/// RabbitMQ's and Warren's default `frame_max`.
const DEFAULT_FRAME_MAX: u32 = 131_072;

/// The `frame_max` an input chooses with its first byte: the default, the pre-tune minimum, or a value between the
/// minimum and about 2 MiB (the configurable range starts at the minimum).
fn frame_max(choice: u8) -> u32 {
    match choice {
        0..=127 => DEFAULT_FRAME_MAX,
        128..=191 => FRAME_MIN_SIZE,
        _ => FRAME_MIN_SIZE + u32::from(choice - 192) * 32_768,
    }
}

/// The largest allocation an input may cause: a frame of at most `frame_max` (buffers may double), the stream
/// itself, and the reference model's list of frames.
fn alloc_limit(data: &[u8]) -> usize {
    let frame_max = frame_max(data.first().copied().unwrap_or(0)) as usize;
    2 * (frame_max + 8) + 32 * data.len() + 4096
}

/// What splitting a stream gives: the frames, then an error (its reply text) or the end of complete frames.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    frames: Vec<RawFrame>,
    error: Option<String>,
}

/// The reference: AMQP 0-9-1's frame layout read straight off the whole stream.
fn reference(stream: &[u8], frame_max: u32) -> Split {
    let mut frames = Vec::new();
    let mut at = 0usize;
    let error = loop {
        let Some(h) = stream.get(at..at + 7) else {
            break None;
        };
        let kind = match h[0] {
            1 => FrameKind::Method,
            2 => FrameKind::Header,
            3 => FrameKind::Body,
            8 => FrameKind::Heartbeat,
            other => break Some(format!("FRAME_ERROR - unknown frame type {other}")),
        };
        let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
        if size > frame_max {
            // RabbitMQ's text: the type, no octets read, the payload size and the largest payload allowed.
            break Some(format!(
                "FRAME_ERROR - type {}, all octets = <<>>: {{frame_too_large,{size},{}}}",
                h[0],
                u64::from(frame_max).saturating_sub(8)
            ));
        }
        let end = at + 7 + size as usize;
        let Some(&last) = stream.get(end) else {
            break None;
        };
        if last != FRAME_END {
            break Some(format!("FRAME_ERROR - invalid frame end octet {last:#04x}"));
        }
        frames.push(RawFrame {
            kind,
            channel: u16::from_be_bytes([h[1], h[2]]),
            payload: bytes::Bytes::copy_from_slice(&stream[at + 7..end]),
        });
        at = end + 1;
    };
    Split { frames, error }
}

/// Read sizes from a seed: all at once, byte by byte, or pseudo-random sizes up to a bound.
fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let bound = match seed % 5 {
        0 => return vec![len],
        1 => 1,
        2 => 7,
        3 => 64,
        _ => 4096,
    };
    let mut state = u32::from(seed) | 0x100;
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((state >> 16) as usize % bound + 1).min(left);
        sizes.push(n);
        left -= n;
    }
    sizes
}

/// Checks one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let frame_max = frame_max(input.u8());
    let seed = input.u8();
    let stream = input.rest();
    let expected = reference(stream, frame_max);

    let splitter = FrameSplitter::new(frame_max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut error = None;
    let mut consumed = 0usize;
    'reads: for n in chunk_sizes(seed, stream.len()) {
        let start = consumed + buf.len();
        buf.extend_from_slice(&stream[start..start + n]);
        loop {
            let peeked = splitter.peek(&buf);
            match splitter.next_frame(&mut buf) {
                Ok(Some(frame)) => {
                    let head = match peeked {
                        Ok(Some(head)) => head,
                        other => panic!("next_frame found a frame where peek gave {other:?}"),
                    };
                    assert_eq!(
                        (head.kind, head.channel, head.size),
                        (frame.kind, frame.channel, frame.payload.len())
                    );
                    assert!(
                        frame.payload.len() <= frame_max as usize,
                        "frame over frame_max {frame_max}"
                    );
                    let mut again = BytesMut::new();
                    let kind = stream[consumed];
                    put_frame_header(&mut again, kind, frame.channel, frame.payload.len() as u32);
                    again.extend_from_slice(&frame.payload);
                    again.extend_from_slice(&[FRAME_END]);
                    assert_eq!(
                        &again[..],
                        &stream[consumed..consumed + again.len()],
                        "frame does not re-encode"
                    );
                    consumed += again.len();
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(
                        matches!(peeked, Ok(None)),
                        "peek gave {peeked:?} where next_frame waits"
                    );
                    break;
                }
                Err(e) => {
                    assert_eq!(
                        peeked.err().as_ref(),
                        Some(&e),
                        "peek and next_frame disagree"
                    );
                    assert_eq!(
                        (e.code, e.scope),
                        (ReplyCode::FrameError, Scope::Connection)
                    );
                    assert_eq!((e.class_id, e.method_id), (0, 0));
                    if e.text.contains("frame_too_large") {
                        // Refused on its header: nothing of the oversized payload was buffered beyond this read.
                        assert!(buf.capacity() <= 2 * (frame_max as usize + 8 + stream.len()));
                    }
                    error = Some(e.text);
                    break 'reads;
                }
            }
        }
    }
    assert_eq!(
        Split { frames, error },
        expected,
        "frame_max {frame_max}, chunk seed {seed}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_4_gib_frame_is_refused_on_its_header() {
        run(&[0, 1, 1, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
        let split = reference(&[1, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF], DEFAULT_FRAME_MAX);
        assert!(split.error.is_some_and(|e| e.contains("frame_too_large")));
    }

    #[test]
    fn chunkings_cover_the_stream() {
        for seed in 0..=255 {
            assert_eq!(chunk_sizes(seed, 1000).iter().sum::<usize>(), 1000);
        }
    }
}
