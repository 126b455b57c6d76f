//! Write and sync errors and a full disk: the waiting publishes get Err and the store stays failed while the fault
//! lasts (acks are still taken), then it repairs itself from its last synced state: publishes succeed again, and
//! every message confirmed before, during or after the fault survives a crash.

use std::time::{Duration, Instant};

use super::*;
use crate::sim_fs::Restore;
use crate::StoreHealth;

fn fill(store: &Store, confirms: &Confirms, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        publish(store, confirms, id, &[1]);
    }
    let _ = store.flush();
}

/// Waits (at most 10 s) until the store has repaired itself; the test config retries every 20 to 100 ms.
fn wait_healthy(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.health() != StoreHealth::Healthy {
        assert!(
            Instant::now() < deadline,
            "store did not recover: {:?}",
            store.health()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a crash would leave once the background work queued so far is done, reopened.
fn crash_and_reopen(
    store: Store,
    fs: &SimFs,
    cfg: &StoreConfig,
    queues: &[QueueId],
) -> (SimFs, Recovery) {
    store.settle();
    fs.crash_now();
    drop(store);
    let after = SimFs::restore(&fs.crash_image().unwrap(), Restore::default());
    let (_store, rec) = open(&after, cfg, queues);
    (after, rec)
}

#[test]
fn a_write_error_fails_publishes_until_the_store_repairs_itself() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=5);
    assert_eq!(store.health(), StoreHealth::Healthy);
    fs.fail_append_at(1);
    publish(&store, &confirms, 6, &[1]);
    assert!(matches!(store.flush(), Err(StoreError::Failed { .. })));
    match store.health() {
        StoreHealth::Failed { cause } => {
            assert!(cause.contains("injected write failure"), "{cause}")
        }
        StoreHealth::Healthy => panic!("a failed write must fail the store"),
    }
    wait_healthy(&store);
    fill(&store, &confirms, 7..=9);
    store.flush().expect("healthy again");
    assert_eq!(confirms.ok(), [1, 2, 3, 4, 5, 7, 8, 9].into());
    assert_eq!(confirms.err(), [6].into());
    assert_eq!(confirms.calls(), 9, "every callback exactly once");
    let stats = store.stats();
    assert_eq!((stats.failures, stats.recoveries), (1, 1));
    let (_, rec) = crash_and_reopen(store, &fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), vec![1, 2, 3, 4, 5, 7, 8, 9]);
}

#[test]
fn a_failed_fsync_is_never_trusted() {
    // After a failed fsync the simulated disk drops the pages it should have written, as Linux may: a store that
    // appended after them and trusted the next fsync would leave a hole before its next records, and recovery, which
    // stops at the hole, would lose messages confirmed after the repair.
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=5);
    fs.set_syncs_failing(true);
    fill(&store, &confirms, 6..=6);
    assert!(store.failed());
    std::thread::sleep(Duration::from_millis(150));
    assert!(store.failed(), "no repair while syncs fail");
    fill(&store, &confirms, 7..=7);
    fs.set_syncs_failing(false);
    wait_healthy(&store);
    fill(&store, &confirms, 8..=10);
    assert_eq!(confirms.err(), [6, 7].into());
    assert_eq!(confirms.ok(), [1, 2, 3, 4, 5, 8, 9, 10].into());
    let (_, rec) = crash_and_reopen(store, &fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), vec![1, 2, 3, 4, 5, 8, 9, 10]);
}

#[test]
fn a_full_disk_fails_the_store_until_space_is_back_and_acks_taken_meanwhile_are_kept() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=10);
    // Room for part of a record: the append is short, then ENOSPC, leaving a torn record in the WAL.
    fs.set_capacity(Some(fs.used_bytes() + 40));
    fill(&store, &confirms, 11..=12);
    assert!(store.failed());
    store.ack(1, vec![1, 2, 3]);
    std::thread::sleep(Duration::from_millis(250));
    assert!(store.failed(), "no repair while the disk is full");
    assert_eq!(store.stats().recoveries, 0);
    assert_eq!(
        store.read(1, 4).expect("reads work while failed"),
        message(4)
    );
    fs.set_capacity(None);
    wait_healthy(&store);
    fill(&store, &confirms, 13..=14);
    store.flush().expect("healthy again");
    assert_eq!(confirms.err(), [11, 12].into());
    let (_, rec) = crash_and_reopen(store, &fs, &cfg, &[1]);
    // The acks taken while the store was failed were written once it recovered.
    assert_eq!(ids(&rec, 1), vec![4, 5, 6, 7, 8, 9, 10, 13, 14]);
    assert_eq!(
        rec.truncated_bytes, 0,
        "the torn record was cut by the repair"
    );
}

#[test]
fn a_background_failure_keeps_its_work_and_finishes_it_after_repair() {
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
    wait_healthy(&store);
    store.settle();
    assert_eq!(store.stats().wal_files_retired, 1, "the kept retire ran");
    assert_eq!(segment_message_ids(&fs, 1), (1..=20).collect::<Vec<_>>());
    fill(&store, &confirms, 22..=23);
    assert_eq!(confirms.err(), [21].into());
    let (_, rec) = crash_and_reopen(store, &fs, &cfg, &[1]);
    let mut want: Vec<u64> = (1..=20).collect();
    want.extend([22, 23]);
    assert_eq!(ids(&rec, 1), want);
}

#[test]
fn a_store_opens_on_a_full_disk_serves_what_it_recovered_and_recovers_later() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=20);
    store.close().unwrap();
    fs.fill();
    let (store, rec) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    assert_eq!(ids(&rec, 1), (1..=20).collect::<Vec<_>>());
    assert!(
        matches!(store.health(), StoreHealth::Failed { cause } if cause.contains("No space left")),
        "the new WAL file cannot be created on a full disk"
    );
    assert_eq!(
        store.read(1, 7).expect("recovered messages are readable"),
        message(7)
    );
    store.ack(1, (1..=5).collect());
    publish(&store, &confirms, 21, &[1]);
    assert!(store.flush().is_err());
    fs.set_capacity(None);
    wait_healthy(&store);
    fill(&store, &confirms, 22..=22);
    store.settle();
    assert_eq!(confirms.ok(), [22].into());
    let (_, rec) = crash_and_reopen(store, &fs, &cfg, &[1]);
    let mut want: Vec<u64> = (6..=20).collect();
    want.push(22);
    assert_eq!(ids(&rec, 1), want);
}

#[test]
fn retry_now_repairs_at_once_and_reports_the_health() {
    let fs = SimFs::new();
    let cfg = StoreConfig {
        retry_after: Duration::from_secs(3600),
        retry_max: Duration::from_secs(3600),
        ..config(1 << 20, 1 << 20)
    };
    let (store, _) = open(&fs, &cfg, &[1]);
    let confirms = Confirms::default();
    fs.fill();
    fill(&store, &confirms, 1..=1);
    assert!(matches!(store.retry_now(), StoreHealth::Failed { .. }));
    fs.set_capacity(None);
    assert_eq!(store.retry_now(), StoreHealth::Healthy);
    fill(&store, &confirms, 2..=2);
    assert_eq!(confirms.ok(), [2].into());
}

#[test]
fn acks_taken_while_only_the_background_part_failed_are_written_once_it_recovers() {
    let fs = SimFs::new();
    let cfg = config(1 << 20, 1 << 20);
    let (store, _) = open(&fs, &cfg, &[1, 2]);
    let confirms = Confirms::default();
    fill(&store, &confirms, 1..=10);
    publish(&store, &confirms, 11, &[2]);
    // Dropping queue 2 makes the background thread sync `queues/`, which fails: only the background part fails,
    // and queue 1's messages stay in the current WAL file, where only an Ack record can remove them.
    fs.set_syncs_failing_under(Some(&Path::new(DIR).join("queues")));
    store.drop_queue(2);
    // The flush may land in a batch after the background part has already failed, and then fails too; either way,
    // once it returns, the drop record is written and its job queued (a drop's job is sent only once it is durable).
    let _ = store.flush();
    store.settle();
    assert!(store.failed());
    store.ack(1, vec![1, 2, 3]);
    fs.set_syncs_failing_under(None);
    wait_healthy(&store);
    // Nothing else is written: the writer writes the kept acks on its own.
    std::thread::sleep(Duration::from_millis(200));
    let (_, rec) = crash_and_reopen(store, &fs, &cfg, &[1]);
    assert_eq!(ids(&rec, 1), (4..=10).collect::<Vec<_>>());
}
