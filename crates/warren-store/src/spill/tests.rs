//! The spill store through its API on the simulated file system: round trips from memory and from files, shared
//! messages, release and file deletion, compaction, a failed write, and the directory emptied at open and close.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{SpillConfig, SpillStore};
use crate::fs::FileSystem;
use crate::sim_fs::SimFs;
use crate::{StoreError, StoredMessage};

const DIR: &str = "/data/spill";

/// A message whose every field is derived from its id, `size` bytes of body.
fn message(id: u64, size: usize) -> StoredMessage {
    StoredMessage {
        msg_id: id,
        exchange: if id.is_multiple_of(2) {
            "amq.direct".into()
        } else {
            String::new()
        },
        routing_key: format!("key.{id}"),
        properties_raw: Bytes::from(vec![0x10, 0x00, 0x01, (id % 7) as u8]),
        body: Bytes::from(
            (0..size)
                .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8))
                .collect::<Vec<u8>>(),
        ),
        meta: None,
    }
}

fn open_with(fs: &SimFs, file_size: u64) -> SpillStore {
    let config = SpillConfig {
        file_size,
        retry_after: Duration::ZERO,
        ..SpillConfig::new(DIR)
    };
    match SpillStore::open(config, Arc::new(fs.clone())) {
        Ok(store) => store,
        Err(e) => panic!("spill store must open: {e}"),
    }
}

fn put(store: &SpillStore, id: u64, size: usize) {
    store
        .put(id, || message(id, size))
        .expect("put is accepted");
}

fn spill_files(fs: &SimFs) -> Vec<PathBuf> {
    fs.files()
        .into_iter()
        .filter(|p| p.starts_with(DIR))
        .collect()
}

#[test]
fn messages_read_back_intact_from_memory_and_then_from_their_file() {
    let fs = SimFs::new();
    let store = open_with(&fs, 1 << 20);
    for id in 1..=50 {
        put(&store, id, id as usize * 10);
        // Right after the put it may still be waiting for the writer: served from memory.
        assert_eq!(
            store.read(id).expect("readable at once"),
            message(id, id as usize * 10)
        );
    }
    store.settle();
    let stats = store.stats();
    assert_eq!(
        (stats.messages, stats.written, stats.pending_bytes),
        (50, 50, 0)
    );
    assert_eq!(stats.files, 1);
    assert_eq!(spill_files(&fs).len(), 1);
    for id in 1..=50 {
        assert_eq!(
            store.read(id).expect("readable from the file"),
            message(id, id as usize * 10)
        );
    }
    assert!(matches!(
        store.read(51),
        Err(StoreError::NotSpilled { msg_id: 51 })
    ));
}

#[test]
fn released_messages_free_their_files_and_a_drained_store_has_none() {
    let fs = SimFs::new();
    // Files of about 4 KiB: the 40 messages fill several.
    let store = open_with(&fs, 4096);
    for id in 1..=40 {
        put(&store, id, 500);
    }
    store.settle();
    let files = store.stats().files;
    assert!(files >= 4, "{files} files");
    // The oldest half goes: the files holding only them are deleted, the others stay.
    store.release_all(1..=20);
    store.settle();
    let stats = store.stats();
    assert!(stats.files < files && stats.files > 0, "{stats:?}");
    assert_eq!(stats.files_deleted, files - stats.files);
    assert_eq!(spill_files(&fs).len() as u64, stats.files);
    for id in 21..=40 {
        assert_eq!(store.read(id).expect("still there"), message(id, 500));
    }
    store.release_all(21..=40);
    store.settle();
    assert_eq!(store.stats().files, 0);
    assert!(spill_files(&fs).is_empty(), "{:?}", spill_files(&fs));
}

#[test]
fn a_message_held_by_several_queues_is_written_once_and_goes_with_its_last_holder() {
    let fs = SimFs::new();
    let store = open_with(&fs, 1 << 20);
    put(&store, 7, 100);
    store
        .put(7, || panic!("a shared message is not built again"))
        .expect("shared");
    store.settle();
    put(&store, 7, 100);
    assert_eq!(store.stats().written, 1);
    store.release(7);
    store.release(7);
    assert_eq!(store.read(7).expect("one holder left"), message(7, 100));
    store.release(7);
    assert!(store.read(7).is_err());
    store.settle();
    assert!(spill_files(&fs).is_empty());
}

#[test]
fn a_message_released_before_it_is_written_is_never_written() {
    let fs = SimFs::new();
    let store = open_with(&fs, 1 << 20);
    for id in 1..=100 {
        put(&store, id, 1000);
        store.release(id);
    }
    store.settle();
    let stats = store.stats();
    assert_eq!(
        (stats.messages, stats.pending_bytes, stats.files),
        (0, 0, 0)
    );
}

#[test]
fn a_mostly_dead_sealed_file_is_compacted_and_its_survivors_stay_readable() {
    let fs = SimFs::new();
    // 64 KiB files; compaction considers sealed files with at least 16 KiB of records.
    let store = open_with(&fs, 64 << 10);
    // Two "queues" interleaved: odd ids drain, every tenth even id stays.
    for id in 1..=400 {
        put(&store, id, 1000);
    }
    store.settle();
    let before = store.stats();
    assert!(before.files >= 5, "{before:?}");
    let gone: Vec<u64> = (1..=400u64).filter(|id| !id.is_multiple_of(20)).collect();
    store.release_all(gone);
    store.settle();
    let after = store.stats();
    assert!(after.files_compacted > 0, "{after:?}");
    assert!(
        after.file_bytes * 4 < before.file_bytes,
        "compaction gave the space back: {before:?} -> {after:?}"
    );
    for id in (20..=400).step_by(20) {
        assert_eq!(
            store.read(id).expect("survivor readable"),
            message(id, 1000)
        );
    }
    store.release_all((20..=400).step_by(20));
    store.settle();
    assert!(spill_files(&fs).is_empty());
}

#[test]
fn a_failed_write_keeps_the_messages_in_memory_and_spilling_resumes_later() {
    let fs = SimFs::new();
    let config = SpillConfig {
        file_size: 1 << 20,
        retry_after: Duration::from_secs(3600),
        ..SpillConfig::new(DIR)
    };
    let store = SpillStore::open(config, Arc::new(fs.clone())).expect("opens");
    put(&store, 1, 100);
    store.settle();
    // The next append (the second batch) fails.
    fs.fail_append_at(1);
    put(&store, 2, 100);
    store.settle();
    let stats = store.stats();
    assert_eq!(stats.write_failures, 1);
    assert!(stats.stranded_bytes > 0);
    assert_eq!(store.read(1).expect("written before"), message(1, 100));
    assert_eq!(store.read(2).expect("kept in memory"), message(2, 100));
    assert!(matches!(
        store.put(3, || message(3, 100)),
        Err(StoreError::SpillUnavailable { .. })
    ));
    // A message already held can still gain a holder.
    put(&store, 2, 100);
    store.release_all([1, 2, 2]);
    store.settle();
    assert_eq!(store.stats().stranded_bytes, 0);

    // With no back-off, the next put after a failure goes to a new file.
    let fs = SimFs::new();
    let store = open_with(&fs, 1 << 20);
    fs.fail_append_at(2);
    put(&store, 1, 100);
    store.settle();
    assert_eq!(store.stats().write_failures, 1);
    put(&store, 2, 100);
    store.settle();
    assert_eq!(store.stats().written, 1);
    assert_eq!(store.read(2).expect("written"), message(2, 100));
}

#[test]
fn a_damaged_record_is_reported_not_returned() {
    let fs = SimFs::new();
    let store = open_with(&fs, 1 << 20);
    put(&store, 1, 100);
    store.settle();
    let path = spill_files(&fs).pop().expect("one file");
    fs.damage(&path, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
    });
    assert!(matches!(store.read(1), Err(StoreError::Corrupt { .. })));
}

#[test]
fn the_directory_is_emptied_at_open_and_the_files_deleted_at_close() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new(DIR)).expect("mkdir");
    fs.create(&Path::new(DIR).join("0000000001.spill"))
        .expect("a leftover file");
    let store = open_with(&fs, 1 << 20);
    assert!(spill_files(&fs).is_empty());
    put(&store, 1, 100);
    store.settle();
    assert_eq!(spill_files(&fs).len(), 1);
    drop(store);
    assert!(spill_files(&fs).is_empty());
}

#[test]
fn wait_for_room_returns_once_the_writer_has_caught_up() {
    let fs = SimFs::new();
    let store = open_with(&fs, 1 << 20);
    for id in 1..=200 {
        put(&store, id, 4000);
    }
    store.wait_for_room(0);
    assert_eq!(store.pending_bytes(), 0);
    assert_eq!(store.stats().written, 200);
}

#[test]
fn the_real_file_system_round_trips() {
    let dir = std::env::temp_dir().join(format!("warren-spill-test-{}", std::process::id()));
    let config = SpillConfig::new(&dir);
    let store = SpillStore::open(config, Arc::new(crate::StdFileSystem)).expect("opens");
    put(&store, 1, 70_000);
    store.settle();
    assert_eq!(store.read(1).expect("read back"), message(1, 70_000));
    store.release(1);
    store.settle();
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
