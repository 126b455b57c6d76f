//! A message's metadata (publish time, own deadline, priority) comes back with recovery wherever the message lives
//! (WAL, segment, compacted segment), after a crash, and for every queue of a fan-out; files of format version 1
//! still open, their messages without metadata.

use std::collections::BTreeMap;

use super::*;
use crate::fs::append_all;
use crate::record::{
    file_header_of, message_head, publish_head, push_record, Kind, SEGMENT_MAGIC, WAL_MAGIC,
};
use crate::sim_fs::Restore;
use crate::IndexEntry;

/// The recovered entries of `queue` by msg id.
fn entries(rec: &Recovery, queue: QueueId) -> BTreeMap<u64, IndexEntry> {
    rec.queues[&queue].iter().map(|e| (e.msg_id, *e)).collect()
}

/// A message whose metadata is set whatever its id (the shared `message` leaves every fourth without).
fn with_meta(id: u64, priority: u8, expires_at_ms: Option<u64>) -> StoredMessage {
    StoredMessage {
        meta: Some(MessageMeta {
            published_at_ms: 1_650_000_000_000 + id * 1000,
            expires_at_ms,
            priority,
        }),
        ..message(id)
    }
}

#[test]
fn index_entry_is_48_bytes() {
    // The recovery figure in docs/storage-format.md and on `IndexEntry` rests on this size.
    assert_eq!(std::mem::size_of::<IndexEntry>(), 48);
}

#[test]
fn recovered_entries_carry_the_metadata_of_their_publish_for_every_queue_of_a_fan_out() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    let published: Vec<StoredMessage> = (1..=6)
        .map(|id| with_meta(id, (id * 2) as u8, (id % 2 == 0).then_some(id * 7)))
        .collect();
    for m in &published {
        store.publish(m.clone(), vec![1, 2], confirms.callback(m.msg_id));
    }
    store.flush().unwrap();
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[1, 2]);
    for q in [1, 2] {
        let got = entries(&rec, q);
        assert_eq!(got.len(), published.len());
        for m in &published {
            assert_eq!(
                got[&m.msg_id].meta, m.meta,
                "queue {q} message {}",
                m.msg_id
            );
            assert_eq!(store.read(q, m.msg_id).unwrap(), *m);
        }
    }
}

#[test]
fn metadata_follows_messages_into_segments_and_through_compaction() {
    let fs = SimFs::new();
    // Small WAL files and segments: the messages are retired into segments, then compacted once mostly acked.
    let cfg = config(2048, 4096);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    for id in 1..=200 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    // Retired into segments before the acks: acked first, they would never be copied, and nothing would be left to
    // compact (what a loaded machine showed when the retirement ran late).
    store.settle();
    store.ack(1, (1..=200).filter(|id| id % 5 != 0).collect());
    // More traffic so the acks are carried into the segments and maintenance runs.
    for id in 201..=260 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    let stats = store.stats();
    assert!(
        stats.wal_files_retired > 0 && stats.segments_compacted > 0,
        "{stats:?}"
    );
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[1]);
    let want: Vec<u64> = (1..=260).filter(|id| *id > 200 || id % 5 == 0).collect();
    // `ids` checks each entry's size and metadata against what was published.
    assert_eq!(ids(&rec, 1), want);
    assert!(
        rec.queues[&1].iter().any(|e| e.meta.is_none())
            && rec.queues[&1].iter().any(|e| e.meta.is_some()),
        "the workload mixes both record layouts"
    );
    for id in want {
        assert_eq!(store.read(1, id).unwrap(), message(id));
    }
}

#[test]
fn metadata_of_confirmed_messages_survives_a_crash() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    for id in 1..=60 {
        store.publish(
            with_meta(id, (id % 10) as u8, Some(1_650_000_000_000 + id)),
            vec![1],
            confirms.callback(id),
        );
        if id % 7 == 0 {
            store.flush().unwrap();
        }
    }
    store.flush().unwrap();
    store.settle();
    assert!(
        store.stats().wal_files_retired > 0,
        "some copies live in segments"
    );
    fs.crash_now();
    drop(store);
    let fs = SimFs::restore(&fs.crash_image().unwrap(), Restore::default());
    let (store, rec) = open(&fs, &cfg, &[1]);
    let got = entries(&rec, 1);
    assert_eq!(got.len(), 60);
    for id in 1..=60 {
        let want = with_meta(id, (id % 10) as u8, Some(1_650_000_000_000 + id));
        assert_eq!(got[&id].meta, want.meta, "message {id}");
        assert_eq!(store.read(1, id).unwrap(), want);
    }
}

/// Writes `queue`'s files as format version 1 wrote them: a segment holding ids 1..=3 (with a SegmentAck of 2) and
/// a WAL file holding 4..=6 (6 routed to queues 1 and 2). Returns the segment's bytes.
fn write_version_1_store(fs: &SimFs, queue: QueueId) -> Vec<u8> {
    let plain = |id: u64| StoredMessage {
        meta: None,
        ..message(id)
    };
    let seg_dir = queue_dir(queue);
    fs.create_dir_all(&seg_dir).unwrap();
    let mut seg = file_header_of(SEGMENT_MAGIC, 1).to_vec();
    for id in 1..=3 {
        let m = plain(id);
        push_record(
            &mut seg,
            Kind::Message,
            &[&message_head(&m).unwrap(), &m.body],
        );
    }
    push_record(
        &mut seg,
        Kind::SegmentAck,
        &[&crate::record::ack_payload(None, &[2])],
    );
    let f = fs.create(&seg_dir.join(format!("{:020}.seg", 1))).unwrap();
    append_all(f.as_ref(), &[&seg]).unwrap();
    fs.create_dir_all(&wal_dir()).unwrap();
    let mut wal = file_header_of(WAL_MAGIC, 1).to_vec();
    for id in 4..=6 {
        let m = plain(id);
        let queues: Vec<QueueId> = if id == 6 { vec![queue, 2] } else { vec![queue] };
        let mut front = publish_head(&queues);
        front.extend_from_slice(&message_head(&m).unwrap());
        push_record(&mut wal, Kind::Publish, &[&front, &m.body]);
    }
    let f = fs
        .create(&wal_dir().join(format!("{:020}.wal", 1)))
        .unwrap();
    append_all(f.as_ref(), &[&wal]).unwrap();
    seg
}

#[test]
fn a_version_1_store_opens_and_its_messages_come_back_without_metadata() {
    let fs = SimFs::new();
    let v1_segment = write_version_1_store(&fs, 1);
    let cfg = config(1 << 20, 1 << 20);
    let (store, rec) = open(&fs, &cfg, &[1, 2]);
    assert_eq!(rec.truncated_bytes, 0);
    assert!(rec.corrupt_queues.is_empty(), "{:?}", rec.corrupt_queues);
    let old = |q| {
        rec.queues[&q]
            .iter()
            .map(|e| (e.msg_id, e.meta))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        old(1),
        vec![(1, None), (3, None), (4, None), (5, None), (6, None)]
    );
    assert_eq!(old(2), vec![(6, None)]);
    assert_eq!(rec.max_msg_id, 6);
    for id in [1, 3, 4, 5, 6] {
        assert_eq!(store.read(1, id).unwrap().meta, None);
        assert_eq!(store.read(1, id).unwrap().body, message(id).body);
    }
    // New messages carry metadata; once retired they go to a new segment, never appended to the version-1 one.
    let confirms = Confirms::default();
    for id in 7..=9 {
        publish(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[1, 2]);
    assert_eq!(
        rec.queues[&1]
            .iter()
            .map(|e| (e.msg_id, e.meta))
            .collect::<Vec<_>>(),
        vec![
            (1, None),
            (3, None),
            (4, None),
            (5, None),
            (6, None),
            (7, meta(7)),
            (8, meta(8)),
            (9, meta(9))
        ]
    );
    assert_eq!(store.read(1, 9).unwrap(), message(9));
    store.settle();
    assert_eq!(
        fs.file_bytes(&queue_dir(1).join(format!("{:020}.seg", 1))),
        Some(v1_segment),
        "nothing is appended to a version-1 segment"
    );
    let second = fs
        .file_bytes(&queue_dir(1).join(format!("{:020}.seg", 2)))
        .expect("the retired WAL files went to a new segment");
    assert_eq!(second[..16], file_header_of(SEGMENT_MAGIC, 2));
    assert!(segment_message_ids(&fs, 1).ends_with(&[4, 5, 6, 7, 8, 9]));
}
