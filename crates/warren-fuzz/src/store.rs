//! The store recovery target: a store directory of arbitrary WAL and segment files, opened on the simulated file
//! system. Input format (docs/fuzzing.md; the corpus tool's `pack-store` writes it from a real store):
//! - one flags byte: bit 0 recomputes every record's CRC before the files are written, so mutations reach the record
//!   decoders behind the checksum; bit 1 lets the background thread retire the recovered WAL files and compact
//!   before the store closes; bit 2 makes WAL files and segments small (4 KiB) so retirement rolls segments;
//! - then files, each a slot byte, a length (u16 little-endian) and that many bytes (fewer if the input ends). A slot
//!   below 64 is WAL file `slot + 1`; 64 to 127 is segment `(slot & 7) + 1` of queue `((slot >> 3) & 7) + 1`; 128 to
//!   191 the same queue's unfinished compaction (`.tmp`); above that an unexpected name in the queue's directory.
//!   Queues 1 to 4 are durable, 5 to 8 were deleted while the broker was down.
//!
//! Contract: `Store::open` succeeds whatever the files hold (torn tails are cut, damage is quarantined per queue,
//! unreadable WAL files are dropped); what it recovers is sorted, counted and readable with the body size and
//! metadata it reported; retirement and compaction keep every message; a second open finds the same messages and
//! nothing more to cut or repair.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warren_store::sim_fs::SimFs;
use warren_store::{FileSystem, IndexEntry, QueueId, Recovery, Store, StoreConfig, StoreError};

use crate::input::Input;
use crate::Target;

/// The store recovery target.
pub const TARGET: Target = Target {
    name: "store",
    run,
    alloc_limit,
};

/// Recovery reads a file through a read-ahead buffer of at most 1 MiB or the file's size; everything else it keeps
/// is a constant factor of the records it found.
fn alloc_limit(data: &[u8]) -> usize {
    (1 << 20) + 64 * data.len()
}

/// The store's directory in the simulated file system.
pub const DIR: &str = "/data/msgs";
/// Queues the broker still has.
pub const DURABLE: [QueueId; 4] = [1, 2, 3, 4];

/// Input flag: recompute record CRCs.
pub const FIX_CRCS: u8 = 1;
/// Input flag: retire and compact before closing.
pub const SETTLE: u8 = 2;
/// Input flag: 4 KiB WAL files and segments.
pub const SMALL_FILES: u8 = 4;

/// Where the file of a slot goes.
pub fn slot_path(slot: u8) -> PathBuf {
    let queues = Path::new(DIR).join("queues");
    let queue = u64::from((slot >> 3) & 7) + 1;
    let seq = u64::from(slot & 7) + 1;
    match slot {
        0..=63 => Path::new(DIR)
            .join("wal")
            .join(format!("{:020}.wal", u64::from(slot) + 1)),
        64..=127 => queues
            .join(queue.to_string())
            .join(format!("{seq:020}.seg")),
        128..=191 => queues
            .join(queue.to_string())
            .join(format!("{seq:020}.tmp")),
        _ => queues
            .join(queue.to_string())
            .join(format!("{seq}.unexpected")),
    }
}

/// Recomputes the CRC of every record in a WAL or segment file's bytes, as far as their lengths chain.
pub fn fix_crcs(file: &mut [u8]) {
    let mut at = 16usize;
    while let Some(h) = file.get(at..at + 9) {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let end = at + 9 + len;
        if end > file.len() {
            break;
        }
        let mut crc = crc32c::crc32c(&file[at..at + 4]);
        crc = crc32c::crc32c_append(crc, &file[at + 8..end]);
        file[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

fn config(flags: u8) -> StoreConfig {
    let mut config = StoreConfig::new(DIR);
    if flags & SMALL_FILES != 0 {
        config.wal_file_size = 4096;
        config.segment_size = 4096;
    }
    config
}

/// Lays the input's files out in a fresh simulated file system.
fn lay_out(flags: u8, mut input: Input<'_>) -> SimFs {
    let fs = SimFs::new();
    for dir in ["wal", "queues"] {
        let _ = fs.create_dir_all(&Path::new(DIR).join(dir));
    }
    while !input.is_empty() {
        let slot = input.u8();
        let len = usize::from(input.u16());
        let mut bytes = input.take(len).to_vec();
        if flags & FIX_CRCS != 0 {
            fix_crcs(&mut bytes);
        }
        let path = slot_path(slot);
        if let Some(parent) = path.parent() {
            let _ = fs.create_dir_all(parent);
        }
        if fs.create(&path).is_ok() {
            fs.damage(&path, |data| *data = bytes);
        }
    }
    fs
}

type Found = BTreeMap<QueueId, Vec<IndexEntry>>;

fn open(fs: &SimFs, flags: u8) -> (Store, Recovery) {
    match Store::open(config(flags), Arc::new(fs.clone()), &DURABLE) {
        Ok(opened) => opened,
        Err(e) => panic!("recovery refused to open the store: {e}"),
    }
}

/// Checks what a recovery reports and reads every message it lists back.
fn check(store: &Store, recovery: &Recovery) -> Found {
    let found: Found = recovery
        .queues
        .iter()
        .map(|(q, e)| (*q, e.clone()))
        .collect();
    assert_eq!(
        found.keys().copied().collect::<Vec<_>>(),
        DURABLE,
        "recovery reports other queues"
    );
    let mut total = 0;
    for (queue, entries) in &found {
        assert!(
            entries.windows(2).all(|w| w[0].msg_id < w[1].msg_id),
            "queue {queue} not in id order"
        );
        total += entries.len() as u64;
        for entry in entries {
            assert!(
                entry.msg_id <= recovery.max_msg_id,
                "max_msg_id below a recovered id"
            );
            match store.read(*queue, entry.msg_id) {
                Ok(m) => {
                    assert_eq!(m.msg_id, entry.msg_id);
                    assert_eq!(m.body.len(), entry.body_size as usize, "body size");
                    assert_eq!(m.meta, entry.meta, "metadata");
                }
                Err(e @ StoreError::Corrupt { .. }) => {
                    panic!(
                        "queue {queue}: recovered message {} does not read: {e}",
                        entry.msg_id
                    )
                }
                Err(e) => panic!("queue {queue}: reading message {}: {e}", entry.msg_id),
            }
        }
    }
    assert_eq!(recovery.messages, total, "message count");
    found
}

/// Checks one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let fs = lay_out(flags, input);

    let (store, first) = open(&fs, flags);
    let found = check(&store, &first);
    if flags & SETTLE != 0 {
        store.settle();
        let after: Found = found
            .iter()
            .map(|(q, entries)| {
                for e in entries {
                    let read = store.read(*q, e.msg_id);
                    assert!(
                        read.as_ref()
                            .is_ok_and(|m| m.body.len() == e.body_size as usize),
                        "queue {q}: message {} lost by retirement or compaction: {read:?}",
                        e.msg_id
                    );
                }
                (*q, entries.clone())
            })
            .collect();
        assert_eq!(after, found);
    }
    if let Err(e) = store.close() {
        panic!("closing a recovered store: {e}");
    }

    let (store, second) = open(&fs, flags);
    assert_eq!(
        check(&store, &second),
        found,
        "a second recovery finds other messages"
    );
    assert_eq!(second.truncated_bytes, 0, "a second recovery cut more");
    assert!(
        second.corrupt_queues.is_empty(),
        "a second recovery found damage: {:?}",
        second.corrupt_queues
    );
    if let Err(e) = store.close() {
        panic!("closing the store again: {e}");
    }
}
