//! Tests of the store through its public API on the simulated file system (and once on the real one): round trips,
//! rollover and compaction, crash injection at every sync point, corrupt tails, faults, and group commit.

mod corrupt;
mod crash;
mod dedup_keys;
mod fault_crash;
mod faults;
mod group_commit;
mod metadata;
mod rollover;
mod roundtrip;
mod sim_fs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::fs::FileSystem;
use super::record::{self, Kind};
use super::scan::{Scanner, Step};
use super::sim_fs::SimFs;
use super::{
    MessageMeta, QueueId, Recovery, Store, StoreConfig, StoreError, StoredMessage, SyncMode,
};

pub(crate) const DIR: &str = "/data/msgs";

/// A config for the simulated fs with the given WAL and segment sizes.
pub(crate) fn config(wal_file_size: u64, segment_size: u64) -> StoreConfig {
    StoreConfig {
        dir: PathBuf::from(DIR),
        sync: SyncMode::Always,
        wal_file_size,
        segment_size,
        // Short, so that the fault tests see repairs without waiting seconds.
        retry_after: std::time::Duration::from_millis(20),
        retry_max: std::time::Duration::from_millis(100),
    }
}

pub(crate) fn open(fs: &SimFs, cfg: &StoreConfig, queues: &[QueueId]) -> (Store, Recovery) {
    match Store::open(cfg.clone(), Arc::new(fs.clone()), queues) {
        Ok(r) => r,
        Err(e) => panic!("store must open: {e}"),
    }
}

/// The metadata of the message with this id: none for every fourth (written as format version 1 wrote messages),
/// so every workload mixes both record layouts; a deadline for every third.
pub(crate) fn meta(id: u64) -> Option<MessageMeta> {
    (!id.is_multiple_of(4)).then(|| MessageMeta {
        published_at_ms: 1_700_000_000_000 + id,
        expires_at_ms: id.is_multiple_of(3).then_some(1_700_000_000_000 + 2 * id),
        priority: (id % 11) as u8,
    })
}

/// The message with this id: every field derived from the id, so a test can rebuild it to compare.
pub(crate) fn message(id: u64) -> StoredMessage {
    let len = (id.wrapping_mul(37) % 200) as usize;
    let body: Vec<u8> = (0..len)
        .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    StoredMessage {
        msg_id: id,
        exchange: if id.is_multiple_of(2) {
            "amq.direct".into()
        } else {
            String::new()
        },
        routing_key: format!("key.{id}"),
        properties_raw: Bytes::from(vec![0x10, 0x00, 0x02, (id % 7) as u8]),
        body: Bytes::from(body),
        meta: meta(id),
    }
}

/// Records which msg ids were confirmed (Ok) or failed (Err), and how many callbacks ran.
#[derive(Clone, Default)]
pub(crate) struct Confirms {
    pub ok: Arc<Mutex<BTreeSet<u64>>>,
    pub err: Arc<Mutex<BTreeSet<u64>>>,
    pub calls: Arc<Mutex<u64>>,
}

impl Confirms {
    pub(crate) fn callback(&self, id: u64) -> Box<dyn FnOnce(Result<(), StoreError>) + Send> {
        let me = self.clone();
        Box::new(move |r| {
            *me.calls.lock().unwrap() += 1;
            match r {
                Ok(()) => me.ok.lock().unwrap().insert(id),
                Err(_) => me.err.lock().unwrap().insert(id),
            };
        })
    }
    pub(crate) fn ok(&self) -> BTreeSet<u64> {
        self.ok.lock().unwrap().clone()
    }
    pub(crate) fn err(&self) -> BTreeSet<u64> {
        self.err.lock().unwrap().clone()
    }
    pub(crate) fn calls(&self) -> u64 {
        *self.calls.lock().unwrap()
    }
}

pub(crate) fn publish(store: &Store, confirms: &Confirms, id: u64, queues: &[QueueId]) {
    store.publish(message(id), queues.to_vec(), confirms.callback(id));
}

/// Publishes, flushing every fifth id, so that WAL files fill batch by batch and roll over as they would under
/// steady traffic (one big batch would roll only once).
pub(crate) fn publish_flushing(store: &Store, confirms: &Confirms, id: u64, queues: &[QueueId]) {
    publish(store, confirms, id, queues);
    if id.is_multiple_of(5) {
        store.flush().unwrap();
    }
}

/// The recovered ids of a queue, checked to be strictly increasing and to carry the size and metadata each message
/// was published with.
pub(crate) fn ids(rec: &Recovery, queue: QueueId) -> Vec<u64> {
    for e in rec.queues.get(&queue).into_iter().flatten() {
        let want = message(e.msg_id);
        assert_eq!(
            (e.body_size as usize, e.meta),
            (want.body.len(), want.meta),
            "queue {queue} message {}: recovered size or metadata differ",
            e.msg_id
        );
    }
    let ids: Vec<u64> = rec
        .queues
        .get(&queue)
        .map(|v| v.iter().map(|e| e.msg_id).collect())
        .unwrap_or_default();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "queue {queue} ids not strictly increasing: {ids:?}"
    );
    ids
}

pub(crate) fn wal_dir() -> PathBuf {
    Path::new(DIR).join("wal")
}

pub(crate) fn queue_dir(queue: QueueId) -> PathBuf {
    Path::new(DIR).join("queues").join(queue.to_string())
}

/// Sorted paths of the files in `dir` whose name ends with `suffix`.
pub(crate) fn files_in(fs: &SimFs, dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fs.files()
        .into_iter()
        .filter(|p| p.parent() == Some(dir) && p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// The msg ids of the Message records in a queue's segment files (live or not), in file order.
pub(crate) fn segment_message_ids(fs: &SimFs, queue: QueueId) -> Vec<u64> {
    let mut out = Vec::new();
    for path in files_in(fs, &queue_dir(queue), ".seg") {
        let handle = fs.open(&path).unwrap();
        let mut scanner = Scanner::new(handle.as_ref()).unwrap();
        while let Step::Record(r) = scanner.next_record().unwrap() {
            if let Some(layout) = Kind::from_byte(r.kind).and_then(Kind::message_layout) {
                out.push(record::blob_summary(r.payload, layout).unwrap().msg_id);
            }
        }
    }
    out
}

/// A tiny deterministic PRNG (xorshift64*), so every workload is repeatable from its seed.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
