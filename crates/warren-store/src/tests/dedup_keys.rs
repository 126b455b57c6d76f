//! Deduplication keys (`Store::remember_key`): durable on their callback, recovered alive and bounded, carried
//! forward when their WAL file is retired (only the live ones), forgotten with their owner.

use super::*;
use crate::dedup_keys::now_ms;
use crate::DedupEntry;

fn entry(key: &str, expires_at_ms: Option<u64>) -> DedupEntry {
    DedupEntry {
        key: key.as_bytes().into(),
        expires_at_ms,
        inserted_at_ms: now_ms(),
    }
}

fn remember(store: &Store, owner: QueueId, capacity: u32, entry: DedupEntry) {
    let (tx, rx) = std::sync::mpsc::channel();
    store.remember_key(owner, capacity, entry, Box::new(move |r| drop(tx.send(r))));
    assert!(
        matches!(rx.recv(), Ok(Ok(()))),
        "a key is durable on its callback"
    );
}

/// The record types of a file, in order.
fn record_kinds(fs: &SimFs, path: &Path) -> Vec<u8> {
    let Ok(handle) = fs.open(path) else {
        return Vec::new();
    };
    let Ok(mut scanner) = Scanner::new(handle.as_ref()) else {
        return Vec::new();
    };
    let mut kinds = Vec::new();
    while let Ok(Step::Record(r)) = scanner.next_record() {
        kinds.push(r.kind);
    }
    kinds
}

fn keys(rec: &Recovery, owner: QueueId) -> Vec<String> {
    rec.dedup
        .get(&owner)
        .map(|entries| {
            entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.key).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn keys_survive_a_reopen_alive_and_bounded_by_capacity() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[7]);
    remember(&store, 7, 3, entry("expired", Some(1)));
    for k in ["a", "b", "c", "d"] {
        remember(&store, 7, 3, entry(k, None));
    }
    remember(&store, 8, 3, entry("not durable", None));
    store.close().unwrap_or_else(|e| panic!("{e}"));
    let (_, rec) = open(&fs, &cfg, &[7]);
    assert_eq!(keys(&rec, 7), vec!["b", "c", "d"]);
    assert!(keys(&rec, 8).is_empty());
}

#[test]
fn live_keys_are_carried_out_of_retired_wal_files_and_dead_ones_are_not() {
    let fs = SimFs::new();
    let cfg = config(4096, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 7]);
    let confirms = Confirms::default();
    remember(&store, 7, 2, entry("kept", None));
    remember(&store, 7, 2, entry("short", Some(now_ms() + 50)));
    std::thread::sleep(std::time::Duration::from_millis(60));
    for id in 1..=200 {
        publish_flushing(&store, &confirms, id, &[1]);
    }
    store.settle();
    assert!(store.stats().wal_files_retired >= 5);
    let records = files_in(&fs, &wal_dir(), ".wal")
        .iter()
        .map(|f| {
            record_kinds(&fs, f)
                .iter()
                .filter(|kind| **kind == Kind::DedupKey as u8)
                .count()
        })
        .sum::<usize>();
    assert_eq!(records, 1, "only the live key is carried, once");
    store.close().unwrap_or_else(|e| panic!("{e}"));
    let (store, rec) = open(&fs, &cfg, &[1, 7]);
    assert_eq!(keys(&rec, 7), vec!["kept"]);
    store.drop_queue(7);
    store.flush().unwrap_or_else(|e| panic!("{e}"));
    store.close().unwrap_or_else(|e| panic!("{e}"));
    let (_, rec) = open(&fs, &cfg, &[1, 7]);
    assert!(
        keys(&rec, 7).is_empty(),
        "dropping the owner drops its keys"
    );
}
