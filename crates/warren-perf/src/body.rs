//! The 16-byte stamp at the front of every message body: who sent it, its sequence number and when, so a consumer
//! can measure end-to-end latency and check that every message arrived exactly once. The rest of the body is
//! padding.
//!
//! Layout (big-endian): producer id `u16`, sequence number `u48` (from 1), send time `u64` in nanoseconds since the
//! Unix epoch. Wall-clock time, so producers and consumers in different processes on one host can be compared.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const STAMP_LEN: usize = 16;
/// The largest sequence number the stamp carries.
pub(crate) const MAX_SEQ: u64 = (1 << 48) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub producer: u16,
    pub seq: u64,
    pub sent_at_ns: u64,
}

impl Stamp {
    /// Writes the stamp over the first 16 bytes of `body` (which must be at least that long).
    pub(crate) fn write(&self, body: &mut [u8]) {
        let seq = (self.seq & MAX_SEQ) | (u64::from(self.producer) << 48);
        body[..8].copy_from_slice(&seq.to_be_bytes());
        body[8..STAMP_LEN].copy_from_slice(&self.sent_at_ns.to_be_bytes());
    }

    /// Reads a stamp; `None` if the body is too short to hold one (a message this tool did not send).
    pub(crate) fn read(body: &[u8]) -> Option<Stamp> {
        let head: [u8; 8] = body.get(..8)?.try_into().ok()?;
        let time: [u8; 8] = body.get(8..STAMP_LEN)?.try_into().ok()?;
        let head = u64::from_be_bytes(head);
        Some(Stamp {
            producer: (head >> 48) as u16,
            seq: head & MAX_SEQ,
            sent_at_ns: u64::from_be_bytes(time),
        })
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let stamp = Stamp {
            producer: 65535,
            seq: MAX_SEQ,
            sent_at_ns: 1_700_000_000_123_456_789,
        };
        let mut body = [0xAAu8; 20];
        stamp.write(&mut body);
        assert_eq!(Stamp::read(&body), Some(stamp));
        assert_eq!(&body[16..], &[0xAA; 4], "padding untouched");
    }

    #[test]
    fn stamp_layout_is_big_endian_producer_seq_time() {
        let mut body = [0u8; 16];
        Stamp {
            producer: 2,
            seq: 3,
            sent_at_ns: 4,
        }
        .write(&mut body);
        assert_eq!(body, [0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4]);
    }

    #[test]
    fn short_bodies_carry_no_stamp() {
        assert_eq!(Stamp::read(&[0u8; 15]), None);
        assert_eq!(Stamp::read(b""), None);
    }

    #[test]
    fn the_clock_is_after_2020() {
        assert!(now_ns() > 1_577_836_800_000_000_000);
    }
}
