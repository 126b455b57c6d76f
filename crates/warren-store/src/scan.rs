//! Reads a WAL or segment file front to back, record by record, through a read-ahead buffer, and says where and how
//! a file stops being valid: a torn tail (cut off by a crash mid-write) or damage with good-looking bytes after it.

use std::io;

use super::fs::{read_exact_at, FileHandle};
use super::record::{
    file_header_of, record_crc, FILE_HEADER_LEN, FORMAT_VERSION, MAX_PAYLOAD,
    OLDEST_READABLE_VERSION, RECORD_HEADER_LEN,
};

/// Read-ahead size: big enough that scanning a 64 MiB file costs a few dozen reads.
const CHUNK: usize = 1 << 20;

/// One record as scanned; `payload` borrows the scanner's buffer.
pub(crate) struct Scanned<'s> {
    /// File offset of the record header.
    pub offset: u64,
    /// Header plus payload length.
    pub len: u32,
    pub kind: u8,
    pub payload: &'s [u8],
}

/// Where a file stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BadRecord {
    pub offset: u64,
    pub reason: &'static str,
    /// True when nothing valid can follow: the record runs past the end of the file, is the last one, or only zeros
    /// follow (a crash mid-write). False when more bytes follow a record that fails its checksum: damage, not a tear.
    pub at_tail: bool,
}

pub(crate) enum Step<'s> {
    Record(Scanned<'s>),
    End,
    Bad(BadRecord),
}

pub(crate) struct Scanner<'f> {
    file: &'f dyn FileHandle,
    file_len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

/// How a file's 16-byte header reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderState {
    /// The expected magic and a format version this store reads.
    Valid { version: u32 },
    /// Shorter than a header and what is there is a prefix of a header this store reads, or zeros: a file created
    /// just before a crash. It holds no records.
    Torn,
    /// Wrong magic, or a version this store does not read (newer than it, or older than the oldest it reads).
    Invalid,
}

/// Reads a file's header: `magic` with any version from [`OLDEST_READABLE_VERSION`] to [`FORMAT_VERSION`].
pub(crate) fn check_header(file: &dyn FileHandle, magic: [u8; 8]) -> io::Result<HeaderState> {
    let len = file.size()?;
    let n = len.min(FILE_HEADER_LEN) as usize;
    let mut got = vec![0u8; n];
    read_exact_at(file, &mut got, 0)?;
    let readable =
        (OLDEST_READABLE_VERSION..=FORMAT_VERSION).map(|v| (v, file_header_of(magic, v)));
    for (version, expected) in readable {
        if n == FILE_HEADER_LEN as usize && got[..] == expected[..] {
            return Ok(HeaderState::Valid { version });
        }
        if n < FILE_HEADER_LEN as usize && got[..] == expected[..n] {
            return Ok(HeaderState::Torn);
        }
    }
    if n < FILE_HEADER_LEN as usize && got.iter().all(|b| *b == 0) {
        Ok(HeaderState::Torn)
    } else {
        Ok(HeaderState::Invalid)
    }
}

impl<'f> Scanner<'f> {
    /// Starts scanning records right after the file header.
    pub(crate) fn new(file: &'f dyn FileHandle) -> io::Result<Scanner<'f>> {
        let file_len = file.size()?;
        Ok(Scanner {
            file,
            file_len,
            pos: FILE_HEADER_LEN,
            buf: Vec::new(),
            buf_start: 0,
        })
    }

    /// Makes `buf` hold `[start, start + need)`, reading ahead; the caller has checked that the range is in the file.
    fn fill(&mut self, start: u64, need: usize) -> io::Result<()> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if start >= self.buf_start && start + need as u64 <= buf_end {
            return Ok(());
        }
        let want = need.max(CHUNK).min((self.file_len - start) as usize);
        self.buf.resize(want, 0);
        self.buf_start = start;
        read_exact_at(self.file, &mut self.buf, start)
    }

    fn window(&self, start: u64, len: usize) -> &[u8] {
        let from = (start - self.buf_start) as usize;
        &self.buf[from..from + len]
    }

    /// The next record, the clean end of the file, or where it goes bad. After `End` or `Bad` the scan is over.
    pub(crate) fn next_record(&mut self) -> io::Result<Step<'_>> {
        let offset = self.pos;
        let remaining = self.file_len.saturating_sub(offset);
        if remaining == 0 {
            return Ok(Step::End);
        }
        if remaining < RECORD_HEADER_LEN as u64 {
            return Ok(Step::Bad(BadRecord {
                offset,
                reason: "partial record header",
                at_tail: true,
            }));
        }
        self.fill(offset, RECORD_HEADER_LEN)?;
        let h = self.window(offset, RECORD_HEADER_LEN);
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let kind = h[8];
        let total = RECORD_HEADER_LEN as u64 + len as u64;
        if total > remaining {
            return Ok(Step::Bad(BadRecord {
                offset,
                reason: "record runs past the end of the file",
                at_tail: true,
            }));
        }
        if len > MAX_PAYLOAD {
            let at_tail = self.only_zeros_from(offset)?;
            return Ok(Step::Bad(BadRecord {
                offset,
                reason: "record length out of range",
                at_tail,
            }));
        }
        self.fill(offset, total as usize)?;
        let payload_start = offset + RECORD_HEADER_LEN as u64;
        if record_crc(kind, &[self.window(payload_start, len as usize)]) != crc {
            let at_tail = total == remaining || self.only_zeros_from(offset)?;
            return Ok(Step::Bad(BadRecord {
                offset,
                reason: "record checksum mismatch",
                at_tail,
            }));
        }
        self.pos = offset + total;
        Ok(Step::Record(Scanned {
            offset,
            len: total as u32,
            kind,
            payload: self.window(payload_start, len as usize),
        }))
    }

    /// True if every byte from `offset` to the end of the file is zero (a file extended by a crash before its data
    /// reached the disk).
    fn only_zeros_from(&mut self, offset: u64) -> io::Result<bool> {
        let mut at = offset;
        while at < self.file_len {
            let n = (self.file_len - at).min(CHUNK as u64) as usize;
            self.fill(at, n)?;
            if self.window(at, n).iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{append_all, FileSystem};
    use crate::record::{file_header, file_header_of, push_record, Kind, WAL_MAGIC};
    use crate::sim_fs::SimFs;
    use std::path::Path;

    /// A file with a header and three Ack records, as bytes.
    fn three_records() -> (Vec<u8>, Vec<u64>) {
        let mut bytes = file_header(WAL_MAGIC).to_vec();
        let mut offsets = Vec::new();
        for i in 0..3u64 {
            offsets.push(bytes.len() as u64);
            push_record(&mut bytes, Kind::DropQueue, &[&i.to_le_bytes()]);
        }
        (bytes, offsets)
    }

    fn scan(bytes: &[u8]) -> (usize, Option<BadRecord>) {
        let fs = SimFs::new();
        let f = fs.create(Path::new("/f")).unwrap();
        append_all(f.as_ref(), &[bytes]).unwrap();
        let mut s = Scanner::new(f.as_ref()).unwrap();
        let mut n = 0;
        loop {
            match s.next_record().unwrap() {
                Step::Record(_) => n += 1,
                Step::End => return (n, None),
                Step::Bad(b) => return (n, Some(b)),
            }
        }
    }

    #[test]
    fn clean_file_scans_to_the_end() {
        assert_eq!(scan(&three_records().0), (3, None));
    }

    #[test]
    fn a_cut_anywhere_in_the_last_record_is_a_torn_tail() {
        let (bytes, offsets) = three_records();
        for cut in offsets[2] as usize..bytes.len() {
            let (n, bad) = scan(&bytes[..cut]);
            if cut == offsets[2] as usize {
                assert_eq!((n, bad), (2, None));
            } else {
                assert_eq!(n, 2);
                let bad = bad.unwrap();
                assert!(
                    bad.at_tail && bad.offset == offsets[2],
                    "cut at {cut}: {bad:?}"
                );
            }
        }
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let (mut bytes, _) = three_records();
        let end = bytes.len() as u64;
        bytes.extend_from_slice(&[0u8; 300]);
        let (n, bad) = scan(&bytes);
        assert_eq!(n, 3);
        assert_eq!(
            bad,
            Some(BadRecord {
                offset: end,
                reason: "record checksum mismatch",
                at_tail: true
            })
        );
    }

    #[test]
    fn a_flip_before_good_records_is_damage_not_a_tail() {
        let (mut bytes, offsets) = three_records();
        bytes[offsets[1] as usize + 10] ^= 1;
        let (n, bad) = scan(&bytes);
        assert_eq!(n, 1);
        let bad = bad.unwrap();
        assert!(!bad.at_tail && bad.offset == offsets[1]);
    }

    #[test]
    fn headers_are_classified() {
        let fs = SimFs::new();
        let current = file_header(WAL_MAGIC);
        let version_1 = file_header_of(WAL_MAGIC, 1);
        for (bytes, state) in [
            (current.to_vec(), HeaderState::Valid { version: 2 }),
            (version_1.to_vec(), HeaderState::Valid { version: 1 }),
            (current[..5].to_vec(), HeaderState::Torn),
            (current[..9].to_vec(), HeaderState::Torn),
            (version_1[..9].to_vec(), HeaderState::Torn),
            (vec![0u8; 9], HeaderState::Torn),
            (Vec::new(), HeaderState::Torn),
            (
                b"WRNSEG\0\0\x01\0\0\0\0\0\0\0".to_vec(),
                HeaderState::Invalid,
            ),
            (file_header_of(WAL_MAGIC, 3).to_vec(), HeaderState::Invalid),
            (file_header_of(WAL_MAGIC, 0).to_vec(), HeaderState::Invalid),
            (
                file_header_of(WAL_MAGIC, 3)[..9].to_vec(),
                HeaderState::Invalid,
            ),
        ] {
            let f = fs.create(Path::new("/h")).unwrap();
            append_all(f.as_ref(), &[&bytes]).unwrap();
            assert_eq!(
                check_header(f.as_ref(), WAL_MAGIC).unwrap(),
                state,
                "{bytes:?}"
            );
        }
    }
}
