//! Publish, ack, reopen: exactly the live messages come back, in order, with their bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::{StdFileSystem, StoreError};

const QUEUES: [QueueId; 3] = [1, 2, 3];

/// Publishes ids 1..=n with a fan-out pattern and acks some; returns the expected live ids per queue.
fn publish_and_ack(store: &Store, confirms: &Confirms, n: u64) -> BTreeMap<QueueId, BTreeSet<u64>> {
    let mut live: BTreeMap<QueueId, BTreeSet<u64>> = BTreeMap::new();
    for id in 1..=n {
        let queues: Vec<QueueId> = if id % 3 == 0 {
            QUEUES.to_vec()
        } else {
            vec![1 + id % 3]
        };
        for q in &queues {
            live.entry(*q).or_default().insert(id);
        }
        publish_flushing(store, confirms, id, &queues);
    }
    store.flush().unwrap();
    for q in QUEUES {
        let acked: Vec<u64> = live
            .entry(q)
            .or_default()
            .iter()
            .copied()
            .filter(|id| id % 4 == q % 4)
            .collect();
        for id in &acked {
            live.get_mut(&q).unwrap().remove(id);
        }
        store.ack(q, acked);
    }
    store.flush().unwrap();
    live
}

fn assert_recovered(store: &Store, rec: &Recovery, live: &BTreeMap<QueueId, BTreeSet<u64>>) {
    for q in QUEUES {
        let want: Vec<u64> = live
            .get(&q)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(ids(rec, q), want, "queue {q}");
        for e in &rec.queues[&q] {
            assert_eq!(e.body_size as usize, message(e.msg_id).body.len());
            assert_eq!(store.read(q, e.msg_id).unwrap(), message(e.msg_id));
        }
    }
    assert_eq!(
        rec.messages,
        live.values().map(|s| s.len() as u64).sum::<u64>()
    );
}

#[test]
fn publish_ack_reopen_recovers_live_messages_in_order() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &QUEUES);
    let confirms = Confirms::default();
    let live = publish_and_ack(&store, &confirms, 90);
    assert_eq!(confirms.ok().len(), 90);
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &QUEUES);
    assert_recovered(&store, &rec, &live);
    assert_eq!(rec.max_msg_id, 90);
    assert_eq!(rec.truncated_bytes, 0);
    assert!(rec.corrupt_queues.is_empty());
}

#[test]
fn read_finds_a_message_in_the_wal_and_after_it_moved_to_a_segment() {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(2048, 1 << 20), &[1]);
    let confirms = Confirms::default();
    publish(&store, &confirms, 1, &[1]);
    store.flush().unwrap();
    assert_eq!(store.read(1, 1).unwrap(), message(1));
    for id in 2..40 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.flush().unwrap();
    store.settle();
    assert!(!store.failed(), "{:?}", store.flush());
    assert!(store.stats().wal_files_retired > 0, "{:?}", store.stats());
    assert!(segment_message_ids(&fs, 1).contains(&1));
    for id in 1..40 {
        assert_eq!(store.read(1, id).unwrap(), message(id));
    }
}

#[test]
fn read_of_acked_or_unknown_message_is_not_found() {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(1 << 20, 1 << 20), &[1]);
    let confirms = Confirms::default();
    publish(&store, &confirms, 7, &[1]);
    store.ack(1, vec![7]);
    store.flush().unwrap();
    assert!(matches!(
        store.read(1, 7),
        Err(StoreError::NotFound {
            queue: 1,
            msg_id: 7
        })
    ));
    assert!(matches!(store.read(2, 7), Err(StoreError::NotFound { .. })));
}

#[test]
fn drop_queue_removes_its_messages_and_files() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    for id in 1..=40 {
        publish_flushing(&store, &confirms, id, &[1, 2]);
    }
    store.flush().unwrap();
    store.settle();
    assert!(!files_in(&fs, &queue_dir(1), ".seg").is_empty());
    store.drop_queue(1);
    store.flush().unwrap();
    store.settle();
    assert!(
        fs.files().iter().all(|p| !p.starts_with(queue_dir(1))),
        "queue 1 files remain"
    );
    assert!(matches!(store.read(1, 1), Err(StoreError::NotFound { .. })));
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[1, 2]);
    assert!(ids(&rec, 1).is_empty());
    assert_eq!(ids(&rec, 2), (1..=40).collect::<Vec<_>>());
    assert_eq!(store.read(2, 40).unwrap(), message(40));
}

#[test]
fn queues_missing_from_the_durable_list_are_dropped_at_open() {
    let fs = SimFs::new();
    let cfg = config(2048, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    for id in 1..=40 {
        publish_flushing(&store, &confirms, id, &[1, 2]);
    }
    store.flush().unwrap();
    store.settle();
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &[2]);
    assert!(!rec.queues.contains_key(&1));
    assert_eq!(ids(&rec, 2).len(), 40);
    store.settle();
    assert!(fs.files().iter().all(|p| !p.starts_with(queue_dir(1))));
}

#[test]
fn max_msg_id_counts_acked_messages() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    for id in 1..=10 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.ack(1, (1..=10).collect());
    store.close().unwrap();
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(rec.messages, 0);
    assert_eq!(rec.max_msg_id, 10);
}

#[test]
fn oversized_message_is_rejected_alone() {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(1 << 20, 1 << 20), &[1]);
    let confirms = Confirms::default();
    let mut big = message(1);
    big.exchange = "x".repeat(70_000);
    store.publish(big, vec![1], confirms.callback(1));
    publish(&store, &confirms, 2, &[1]);
    store.flush().unwrap();
    assert_eq!(confirms.err(), BTreeSet::from([1]));
    assert_eq!(confirms.ok(), BTreeSet::from([2]));
    assert!(!store.failed());
}

#[test]
fn publish_after_close_fails_with_closed() {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(1 << 20, 1 << 20), &[1]);
    let other = store.clone();
    store.close().unwrap();
    let confirms = Confirms::default();
    publish(&other, &confirms, 1, &[1]);
    assert_eq!(confirms.err(), BTreeSet::from([1]));
    assert!(matches!(other.flush(), Err(StoreError::Closed)));
}

#[test]
fn short_writes_are_completed() {
    let fs = SimFs::new();
    fs.set_max_append(Some(7));
    let cfg = config(4096, 8192);
    let (store, _) = open(&fs, &cfg, &QUEUES);
    let confirms = Confirms::default();
    let live = publish_and_ack(&store, &confirms, 60);
    store.settle();
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &QUEUES);
    assert_recovered(&store, &rec, &live);
}

#[test]
fn round_trip_on_the_real_file_system() {
    let dir = std::env::temp_dir().join(format!("warren-store-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = StoreConfig {
        dir: dir.clone(),
        sync: SyncMode::Always,
        wal_file_size: 4096,
        segment_size: 8192,
        ..StoreConfig::new(&dir)
    };
    let (store, _) = Store::open(cfg.clone(), Arc::new(StdFileSystem), &QUEUES).unwrap();
    let confirms = Confirms::default();
    let live = publish_and_ack(&store, &confirms, 120);
    store.settle();
    assert!(store.stats().wal_files_retired > 0);
    store.close().unwrap();
    let (store, rec) = Store::open(cfg, Arc::new(StdFileSystem), &QUEUES).unwrap();
    assert_recovered(&store, &rec, &live);
    store.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sync_never_confirms_after_the_write_without_syncing() {
    let fs = SimFs::new();
    let cfg = StoreConfig {
        sync: SyncMode::Never,
        ..config(4096, 8192)
    };
    let (store, _) = open(&fs, &cfg, &QUEUES);
    let before = fs.stats();
    let confirms = Confirms::default();
    let live = publish_and_ack(&store, &confirms, 60);
    store.settle();
    assert_eq!(confirms.ok().len(), 60);
    assert!(store.stats().wal_files_retired > 0);
    let after = fs.stats();
    assert_eq!(
        (after.data_syncs, after.dir_syncs),
        (before.data_syncs, before.dir_syncs)
    );
    store.close().unwrap();
    let (store, rec) = open(&fs, &cfg, &QUEUES);
    assert_recovered(&store, &rec, &live);
}

#[test]
fn store_is_send_and_sync_and_survives_its_last_clone_dropped_in_a_callback() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Store>();
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(1 << 20, 1 << 20), &[1]);
    let (tx, rx) = std::sync::mpsc::channel();
    let inside = store.clone();
    store.publish(
        message(1),
        vec![1],
        Box::new(move |r| {
            drop(inside);
            tx.send(r.is_ok()).unwrap();
        }),
    );
    drop(store);
    assert!(rx.recv().unwrap());
}

#[test]
fn a_panicking_callback_does_not_stop_the_writer() {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(1 << 20, 1 << 20), &[1]);
    store.publish(message(1), vec![1], Box::new(|_| panic!("caller bug")));
    let confirms = Confirms::default();
    publish(&store, &confirms, 2, &[1]);
    store.flush().unwrap();
    assert_eq!(confirms.ok(), BTreeSet::from([2]));
}

#[test]
fn a_queue_dropped_before_it_had_a_segment_does_not_stop_recovery() {
    let dir = std::env::temp_dir().join(format!("warren-store-drop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = StoreConfig {
        dir: dir.clone(),
        sync: SyncMode::Always,
        wal_file_size: 1 << 20,
        segment_size: 1 << 20,
        ..StoreConfig::new(&dir)
    };
    let (store, _) = Store::open(cfg.clone(), Arc::new(StdFileSystem), &[1, 2]).unwrap();
    let confirms = Confirms::default();
    for id in 1..=5 {
        publish_flushing(&store, &confirms, id, &[1, 2]);
    }
    // The drop record lands in the WAL; queue 1 never had a segment directory.
    store.drop_queue(1);
    store.flush().unwrap();
    drop(store);
    let (store, rec) = Store::open(cfg, Arc::new(StdFileSystem), &[2]).unwrap();
    assert_eq!(ids(&rec, 2), (1..=5).collect::<Vec<_>>());
    store.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
