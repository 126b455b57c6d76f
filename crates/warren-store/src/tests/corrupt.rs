//! Damaged files: torn or bit-flipped tails are cut at the last good record; damage inside a segment is reported for
//! that queue alone, which keeps serving what precedes the damage.

use super::*;

/// Publishes ids 1..=n to `queue` and closes cleanly.
fn store_with(fs: &SimFs, cfg: &StoreConfig, queues: &[QueueId], n: u64, settle: bool) {
    let (store, _) = open(fs, cfg, queues);
    let confirms = Confirms::default();
    for id in 1..=n {
        for q in queues {
            publish_flushing(&store, &confirms, id * 10 + q, &[*q]);
        }
    }
    store.flush().unwrap();
    if settle {
        store.settle();
    }
    store.close().unwrap();
}

fn last_file(fs: &SimFs, dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    files_in(fs, dir, suffix).pop().expect("a file")
}

fn expected(queue: QueueId, n: u64) -> Vec<u64> {
    (1..=n).map(|id| id * 10 + queue).collect()
}

#[test]
fn truncated_wal_tail_is_cut_at_the_last_good_record() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    store_with(&fs, &cfg, &[1], 10, false);
    let wal = last_file(&fs, &wal_dir(), ".wal");
    fs.damage(&wal, |d| d.truncate(d.len() - 5));
    let (store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), expected(1, 9));
    assert!(rec.truncated_bytes > 0);
    assert!(rec.corrupt_queues.is_empty());
    assert_eq!(store.read(1, 91).unwrap(), message(91));
}

#[test]
fn bit_flipped_wal_tail_is_cut() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    store_with(&fs, &cfg, &[1], 10, false);
    let wal = last_file(&fs, &wal_dir(), ".wal");
    let len = fs.file_bytes(&wal).unwrap().len();
    fs.damage(&wal, |d| d[len - 3] ^= 0x10);
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), expected(1, 9));
    let last_record = crate::record::RECORD_HEADER_LEN as u64 + 4 + 8; // at least header + queue list
    assert!(rec.truncated_bytes > last_record);
}

#[test]
fn zeroed_wal_tail_is_cut() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    store_with(&fs, &cfg, &[1], 10, false);
    let wal = last_file(&fs, &wal_dir(), ".wal");
    fs.damage(&wal, |d| d.extend_from_slice(&[0u8; 100]));
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), expected(1, 10));
    assert_eq!(rec.truncated_bytes, 100);
}

#[test]
fn truncated_segment_tail_is_cut_at_the_last_good_record() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    store_with(&fs, &cfg, &[1], 40, true);
    let seg = last_file(&fs, &queue_dir(1), ".seg");
    let in_seg = segment_message_ids(&fs, 1);
    fs.damage(&seg, |d| d.truncate(d.len() - 3));
    let (store, rec) = open(&fs, &cfg, &[1]);
    assert!(rec.truncated_bytes > 0);
    assert!(rec.corrupt_queues.is_empty());
    let got = ids(&rec, 1);
    let lost = *in_seg.last().unwrap();
    assert!(!got.contains(&lost));
    assert_eq!(got.len(), 39);
    for id in got {
        assert_eq!(store.read(1, id).unwrap(), message(id));
    }
}

#[test]
fn bit_flipped_segment_tail_is_cut() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    store_with(&fs, &cfg, &[1], 40, true);
    let seg = last_file(&fs, &queue_dir(1), ".seg");
    fs.damage(&seg, |d| {
        let n = d.len();
        d[n - 2] ^= 0x01;
    });
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert!(rec.truncated_bytes > 0);
    assert!(rec.corrupt_queues.is_empty());
    assert_eq!(ids(&rec, 1).len(), 39);
}

#[test]
fn damaged_segment_is_reported_and_other_queues_are_intact() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    store_with(&fs, &cfg, &[1, 2], 40, true);
    let seg = files_in(&fs, &queue_dir(1), ".seg").remove(0);
    let in_seg = segment_message_ids(&fs, 1);
    let len = fs.file_bytes(&seg).unwrap().len();
    fs.damage(&seg, |d| d[len / 2] ^= 0xff);
    let (store, rec) = open(&fs, &cfg, &[1, 2]);
    assert_eq!(rec.corrupt_queues.len(), 1, "{:?}", rec.corrupt_queues);
    assert_eq!(rec.corrupt_queues[0].0, 1);
    assert_eq!(ids(&rec, 2), expected(2, 40));
    let served = ids(&rec, 1);
    let served_from_seg: Vec<u64> = served
        .iter()
        .copied()
        .filter(|id| in_seg.contains(id))
        .collect();
    assert!(
        !served_from_seg.is_empty() && served_from_seg.len() < in_seg.len(),
        "served {served:?}"
    );
    assert_eq!(
        served_from_seg,
        in_seg[..served_from_seg.len()].to_vec(),
        "the records before the damage are served"
    );
    let elsewhere: Vec<u64> = expected(1, 40)
        .into_iter()
        .filter(|id| !in_seg.contains(id))
        .collect();
    assert!(
        elsewhere.iter().all(|id| served.contains(id)),
        "messages outside the damaged file are served"
    );
    for id in &served {
        assert_eq!(store.read(1, *id).unwrap(), message(*id));
    }
    assert!(
        fs.file_bytes(&seg.with_extension("corrupt")).is_some(),
        "a copy of the damaged file is kept"
    );
    store.close().unwrap();
    // The repaired queue is clean from now on.
    let (_store, again) = open(&fs, &cfg, &[1, 2]);
    assert!(again.corrupt_queues.is_empty());
    assert_eq!(ids(&again, 1), served);
}

/// Makes the first `needle` in a WAL or segment file's bytes invalid UTF-8 and recomputes the checksum of the record
/// holding it: damage a checksum cannot see (a writer bug, or bytes written by hand).
fn break_utf8_keeping_crc(d: &mut [u8], needle: &[u8]) {
    let at = d
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the file");
    d[at] = 0xFF;
    let mut rec = record::FILE_HEADER_LEN as usize;
    while rec < d.len() {
        let len = u32::from_le_bytes([d[rec], d[rec + 1], d[rec + 2], d[rec + 3]]) as usize;
        let end = rec + record::RECORD_HEADER_LEN + len;
        if (rec..end).contains(&at) {
            let crc = record::record_crc(d[rec + 8], &[&d[rec + record::RECORD_HEADER_LEN..end]]);
            d[rec + 4..rec + 8].copy_from_slice(&crc.to_le_bytes());
            return;
        }
        rec = end;
    }
    panic!("no record holds offset {at}");
}

/// Found by the store fuzz target: a record whose checksum held but whose routing key was not UTF-8 was recovered as
/// a live message that then failed every read. It is now an undecodable record like any other: the WAL is cut there.
#[test]
fn a_wal_record_with_a_routing_key_that_is_not_utf8_is_cut_not_recovered() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    store_with(&fs, &cfg, &[1], 10, false);
    let wal = last_file(&fs, &wal_dir(), ".wal");
    fs.damage(&wal, |d| break_utf8_keeping_crc(d, b"key.101"));
    let (store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), expected(1, 9));
    assert!(rec.truncated_bytes > 0);
    for id in expected(1, 9) {
        assert_eq!(store.read(1, id).unwrap(), message(id));
    }
}

/// The same in a segment: damage, reported for that queue, which serves the records before it.
#[test]
fn a_segment_record_with_a_routing_key_that_is_not_utf8_is_damage() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    store_with(&fs, &cfg, &[1], 40, true);
    let seg = files_in(&fs, &queue_dir(1), ".seg").remove(0);
    let in_seg = segment_message_ids(&fs, 1);
    let victim = in_seg[in_seg.len() / 2];
    fs.damage(&seg, |d| {
        break_utf8_keeping_crc(d, format!("key.{victim}").as_bytes())
    });
    let (store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(rec.corrupt_queues.len(), 1, "{:?}", rec.corrupt_queues);
    let served = ids(&rec, 1);
    assert!(!served.contains(&victim));
    for id in &served {
        assert_eq!(store.read(1, *id).unwrap(), message(*id));
    }
}
