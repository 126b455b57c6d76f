//! One WAL batch's bytes: a buffer for record headers and small payloads plus the large bodies, in write order, so
//! the whole batch goes out in one vectored append.

use bytes::Bytes;

/// Bodies up to this size are copied into the batch buffer; larger ones are written from their own `Bytes` (one
/// iovec each). Copying a few KiB is cheaper than an iovec entry, and it keeps the count under IOV_MAX.
const INLINE_BODY: usize = 4096;

/// The bytes of one batch.
#[derive(Default)]
pub(super) struct Batch {
    buf: Vec<u8>,
    slices: Vec<Slice>,
    /// Total bytes.
    pub(super) len: u64,
}

/// A part of the batch: a range of the buffer, or a large body written from where it lies.
enum Slice {
    Buf(usize, usize),
    Body(Bytes),
}

impl Batch {
    /// Appends `bytes`, copied.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        match self.slices.last_mut() {
            Some(Slice::Buf(_, end)) if *end == start => *end = self.buf.len(),
            _ => self.slices.push(Slice::Buf(start, self.buf.len())),
        }
        self.len += bytes.len() as u64;
    }

    /// Appends a message body: copied if small, referenced if large.
    pub(super) fn push_body(&mut self, body: &Bytes) {
        if body.len() <= INLINE_BODY {
            self.push(body);
        } else {
            self.slices.push(Slice::Body(body.clone()));
            self.len += body.len() as u64;
        }
    }

    /// The batch as the slices of one vectored write.
    pub(super) fn slices(&self) -> Vec<&[u8]> {
        self.slices
            .iter()
            .map(|p| match p {
                Slice::Buf(s, e) => &self.buf[*s..*e],
                Slice::Body(b) => &b[..],
            })
            .collect()
    }
}
