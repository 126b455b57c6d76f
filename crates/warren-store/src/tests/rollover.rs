//! WAL rollover into segments, acks carried into segments, deletion of acked segments, and compaction.

use super::*;

#[test]
fn rollover_moves_live_messages_to_segments_and_deletes_wal_files() {
    let fs = SimFs::new();
    let cfg = config(4096, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    for id in 1..=200 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    let stats = store.stats();
    assert!(stats.wal_files_retired >= 5, "{stats:?}");
    let wal_files = files_in(&fs, &wal_dir(), ".wal");
    assert!(
        wal_files.len() <= 2,
        "retired WAL files remain: {wal_files:?}"
    );
    let in_segments = segment_message_ids(&fs, 1);
    let in_segments_set: BTreeSet<u64> = in_segments.iter().copied().collect();
    assert_eq!(
        in_segments.len(),
        in_segments_set.len(),
        "a message was copied twice"
    );
    assert!(
        in_segments.len() > 150,
        "only {} messages moved",
        in_segments.len()
    );
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), (1..=200).collect::<Vec<_>>());
    assert_eq!(store.read(1, 1).unwrap(), message(1));
}

#[test]
fn messages_acked_before_rollover_are_never_copied() {
    let fs = SimFs::new();
    let cfg = config(4096, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    for id in 1..=300 {
        // Queue 1's consumer acks each message right after its confirm; queue 2 has no consumer.
        publish(&store, &confirms, id, &[1, 2]);
        store.flush().unwrap();
        store.ack(1, vec![id]);
        store.flush().unwrap();
    }
    store.settle();
    let retired = store.stats().wal_files_retired;
    assert!(retired >= 5);
    // A WAL file rolls right after the batch that fills it, before the next batch can ack that batch's message: at
    // most that one message per retired file can still be live for queue 1 when it is copied. Every other queue 1
    // message was acked before its rollover and must never be written again.
    let copied_1 = segment_message_ids(&fs, 1);
    assert!(
        copied_1.len() as u64 <= retired,
        "queue 1 kept up, yet {} messages were copied",
        copied_1.len()
    );
    let copied_2: BTreeSet<u64> = segment_message_ids(&fs, 2).into_iter().collect();
    assert!(copied_2.len() > 250);
    // What queue 1 may have written: per retired file, one message copied into a segment of its own (a header, the
    // Message record) and the SegmentAck that later deletes it. Queue 2 wrote every message.
    let largest_record = (1..=300)
        .map(|id| {
            let m = message(id);
            record::RECORD_HEADER_LEN + record::message_head(&m).unwrap().len() + m.body.len()
        })
        .max()
        .unwrap_or(0) as u64;
    let per_copy = record::FILE_HEADER_LEN + largest_record + record::RECORD_HEADER_LEN as u64 + 12;
    let written_1 = fs.bytes_written_under(&queue_dir(1));
    assert!(
        written_1 <= retired * per_copy,
        "queue 1 kept up, yet {written_1} bytes went to its segments"
    );
    assert!(written_1 < fs.bytes_written_under(&queue_dir(2)) / 8);
    store.close().unwrap();
    let (_store, rec) = open(&fs, &cfg, &[1, 2]);
    assert!(ids(&rec, 1).is_empty());
    assert_eq!(ids(&rec, 2), (1..=300).collect::<Vec<_>>());
}

#[test]
fn acks_of_segment_messages_survive_the_deletion_of_their_wal_file() {
    let fs = SimFs::new();
    let cfg = config(4096, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    for id in 1..=100 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    store.ack(1, (1..=100).filter(|id| id % 2 == 0).collect());
    // Enough traffic on another queue to retire the WAL file holding those acks.
    for id in 101..=300 {
        publish_flushing(&store, &confirms, id, &[2]);
    }
    store.flush().unwrap();
    store.settle();
    store.close().unwrap();
    let (_store, rec) = open(&fs, &cfg, &[1, 2]);
    assert_eq!(
        ids(&rec, 1),
        (1..=100).filter(|id| id % 2 == 1).collect::<Vec<_>>()
    );
    assert_eq!(ids(&rec, 2).len(), 200);
}

#[test]
fn fully_acked_segments_are_deleted() {
    let fs = SimFs::new();
    let cfg = config(4096, 4096);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    for id in 1..=200 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    assert!(files_in(&fs, &queue_dir(1), ".seg").len() >= 3);
    store.ack(1, (1..=200).collect());
    store.flush().unwrap();
    store.settle();
    assert!(store.stats().segments_deleted >= 3);
    assert!(
        files_in(&fs, &queue_dir(1), ".seg").is_empty(),
        "{:?}",
        fs.files()
    );
    store.close().unwrap();
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert!(ids(&rec, 1).is_empty());
}

#[test]
fn mostly_acked_segments_are_compacted_and_keep_the_live_set() {
    let fs = SimFs::new();
    let cfg = config(4096, 8192);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    for id in 1..=300 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    let keep: Vec<u64> = (1..=300).filter(|id| id % 10 == 0).collect();
    store.ack(1, (1..=300).filter(|id| id % 10 != 0).collect());
    // Traffic elsewhere triggers rollovers, whose maintenance pass compacts.
    for id in 301..=400 {
        publish_flushing(&store, &confirms, id, &[2]);
    }
    store.flush().unwrap();
    store.settle();
    assert!(store.stats().segments_compacted > 0, "{:?}", store.stats());
    let in_segments: BTreeSet<u64> = segment_message_ids(&fs, 1).into_iter().collect();
    assert!(
        in_segments.len() < 150,
        "compaction left {} records",
        in_segments.len()
    );
    for id in &keep {
        assert_eq!(store.read(1, *id).unwrap(), message(*id));
    }
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[1, 2]);
    assert_eq!(ids(&rec, 1), keep);
    assert_eq!(ids(&rec, 2), (301..=400).collect::<Vec<_>>());
    for id in &keep {
        assert_eq!(store.read(1, *id).unwrap(), message(*id));
    }
}
