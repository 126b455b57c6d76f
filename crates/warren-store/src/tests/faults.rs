//! Injected write and sync errors: the waiting publishes get Err, the store stays failed (no silent retry), and a
//! restart recovers what was durable.

use super::*;

fn fill(store: &Store, confirms: &Confirms, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        publish(store, confirms, id, &[1]);
    }
    let _ = store.flush();
}

#[test]
fn write_error_fails_the_batch_and_every_later_publish() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=5);
    assert!(!store.failed());
    fs.fail_append_at(1);
    publish(&store, &confirms, 6, &[1]);
    assert!(store.flush().is_err());
    assert!(store.failed());
    // The file system works again, but the store does not retry.
    fill(&store, &confirms, 7..=8);
    assert!(store.flush().is_err());
    assert_eq!(confirms.ok(), (1..=5).collect());
    assert_eq!(confirms.err(), (6..=8).collect());
    assert_eq!(confirms.calls(), 8, "every callback exactly once");
    assert!(store.close().is_err());
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), (1..=5).collect::<Vec<_>>());
}

#[test]
fn sync_error_fails_the_batch_and_every_later_publish() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=5);
    fs.fail_sync_at(1);
    publish(&store, &confirms, 6, &[1]);
    assert!(matches!(store.flush(), Err(StoreError::Failed { .. })));
    assert!(store.failed());
    fill(&store, &confirms, 7..=7);
    assert_eq!(confirms.ok(), (1..=5).collect());
    assert_eq!(confirms.err(), (6..=7).collect());
    drop(store);
    let (_store, rec) = open(&fs, &cfg, &[1]);
    // Message 6 was written but its sync failed: it may or may not be there; 1..=5 must.
    let got = ids(&rec, 1);
    assert!((1..=5).all(|id| got.contains(&id)));
    assert!(got.iter().all(|id| (1..=6).contains(id)));
}

#[test]
fn background_write_error_fails_the_store_and_keeps_the_wal_file() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=20);
    store.close().unwrap();
    // On reopen the writer appends the new WAL file's header (append 1), then the background thread retires the
    // recovered WAL file: its first segment append (append 2) fails.
    fs.fail_append_at(2);
    let (store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1).len(), 20);
    store.settle();
    assert!(store.failed());
    publish(&store, &confirms, 21, &[1]);
    assert!(store.flush().is_err());
    assert!(confirms.err().contains(&21));
    drop(store);
    let (_store, rec) = open(&fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), (1..=20).collect::<Vec<_>>());
}
