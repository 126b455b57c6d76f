//! Packing a real store directory into an input of the `store` target.

use std::path::{Path, PathBuf};

use crate::{sorted_entries, write};

/// A store file kept in a `store` input.
const MAX_STORE_FILE: usize = 16 << 10;

/// A store file cut down to at most [`MAX_STORE_FILE`] bytes: its header, the whole records that fit in half of it
/// from the front (publishes, mostly) and in the other half from the back (acks, drops, the last writes before the
/// kill), in order, and any torn bytes after the last whole record.
fn cut_store_file(file: &[u8]) -> Vec<u8> {
    let header = 16usize.min(file.len());
    let mut records = Vec::new();
    let mut at = header;
    while let Some(h) = file.get(at..at + 9) {
        let end = at + 9 + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if end > file.len() {
            break;
        }
        records.push(at..end);
        at = end;
    }
    let torn = &file[at..file.len().min(at + 1024)];
    let half = (MAX_STORE_FILE - header - torn.len()) / 2;
    let mut front = 0;
    let mut used = 0;
    while front < records.len() && used + records[front].len() <= half {
        used += records[front].len();
        front += 1;
    }
    let mut back = records.len();
    used = 0;
    while back > front && used + records[back - 1].len() <= half {
        used += records[back - 1].len();
        back -= 1;
    }
    let mut out = file[..header].to_vec();
    for r in records[..front].iter().chain(&records[back..]) {
        out.extend_from_slice(&file[r.clone()]);
    }
    out.extend_from_slice(torn);
    out
}

pub(crate) fn pack_store(dir: &Path, out: &Path, flags: u8) -> Result<(), String> {
    let mut input = vec![flags];
    let mut push = |slot: u8, path: &Path| -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let kept = cut_store_file(&bytes);
        input.push(slot);
        input.extend((kept.len() as u16).to_le_bytes());
        input.extend(&kept);
        Ok(())
    };
    let wal: Vec<PathBuf> = sorted_entries(&dir.join("wal"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    for (i, path) in wal.iter().take(4).enumerate() {
        push(i as u8, path)?;
    }
    // The first queues found become durable queues 1..4, the rest deleted queues 5..8.
    for (q, queue_dir) in sorted_entries(&dir.join("queues"))
        .iter()
        .take(8)
        .enumerate()
    {
        let segments = sorted_entries(queue_dir);
        for (seq, path) in segments
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .take(2)
            .enumerate()
        {
            push(64 + ((q as u8) << 3) + seq as u8, path)?;
        }
    }
    write(out, &input)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `n` records of `size` payload bytes each, record i's payload filled with byte i.
    fn store_file(n: usize, size: usize) -> Vec<u8> {
        let mut file = b"WRNWAL\0\0\x02\0\0\0\0\0\0\0".to_vec();
        for i in 0..n {
            file.extend((size as u32).to_le_bytes());
            file.extend([0, 0, 0, 0, 2]);
            file.extend(std::iter::repeat_n(i as u8, size));
        }
        file
    }

    #[test]
    fn store_files_keep_whole_records_from_both_ends_and_the_torn_tail() {
        let small = store_file(3, 100);
        assert_eq!(cut_store_file(&small), small);
        let mut big = store_file(100, 991); // 1,000 bytes a record
        big.extend([7, 7, 7]); // a torn tail
        let cut = cut_store_file(&big);
        assert!(cut.len() <= MAX_STORE_FILE);
        assert_eq!(&cut[..16], &big[..16]);
        assert_eq!(cut[16 + 9], 0, "the first record leads");
        assert_eq!(&cut[cut.len() - 3..], &[7, 7, 7]);
        assert_eq!(cut[cut.len() - 4], 99, "the last whole record is kept");
        assert_eq!((cut.len() - 16 - 3) % 1000, 0, "only whole records");
    }
}
