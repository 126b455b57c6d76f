//! The embedded message store: a node-wide write-ahead log with group commit, per-queue segment files, and the
//! recovery that rebuilds both after a crash; beside it, the node's spill store for transient messages.
//! docs/storage-format.md is the on-disk format and its guarantees.
//!
//! The parts:
//! - [`Store`] (this file): the API the broker calls, and its threads' lifecycle;
//! - `wal`: the writer thread: batch, one vectored append, one fdatasync, complete the waiters (group commit);
//! - `background`: the second thread: retires full WAL files into segments, removes dropped queues' files;
//! - `retry`: when a part that failed (a write or fsync error, a full disk) tries again to repair itself;
//! - `compaction`: deletes fully acked segments and rewrites mostly acked ones;
//! - `recovery`: reads segments and replays the WAL at open, cutting torn tails;
//! - `dedup_keys`: deduplication keys kept for the broker (`Store::remember_key`), carried forward on retire;
//!   [`dedup_table`]: the bounded key set it (and the broker's caches) use;
//! - `index`: where each live message lives (file, offset, length), about 40 bytes a message;
//! - `record` and `scan`: the framing (length, CRC32C, type) and the sequential reader;
//! - [`spill`]: the spill store, where queues put transient messages past their memory budget (not recovered);
//! - [`fs`]: the file I/O traits every byte goes through, and `sim_fs` (feature `sim`): a simulated file system for
//!   crash tests.

mod background;
mod compaction;
mod dedup_keys;
pub mod dedup_table;
mod error;
pub mod fs;
mod index;
mod record;
mod recovery;
mod retry;
mod scan;
mod segment;
mod shared;
#[cfg(any(test, feature = "sim"))]
pub mod sim_fs;
pub mod spill;
mod wal;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

pub use dedup_keys::DedupEntry;
pub use error::StoreError;
pub use fs::{FileHandle, FileSystem, StdFileSystem};
pub use spill::{SpillConfig, SpillStats, SpillStore};

use background::Background;
use shared::{Job, Op, Shared};
use wal::WalWriter;

/// A durable queue's id as the broker assigns it; never reused once the queue is dropped (see [`Store::drop_queue`]).
pub type QueueId = u64;

/// When `on_durable` fires relative to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// After the fdatasync that covers the record; every segment and directory change is fsynced too.
    Always,
    /// After the write reaches the kernel; nothing is ever fsynced. For throwaway brokers: a power loss loses data.
    Never,
}

/// How [`Store::open`] lays out and syncs the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The store's directory, e.g. `<data_dir>/msgs`; it holds `wal/` and `queues/`.
    pub dir: PathBuf,
    /// When publishes count as durable; see [`SyncMode`].
    pub sync: SyncMode,
    /// A WAL file is sealed and a new one started once it reaches this size (default 64 MiB).
    pub wal_file_size: u64,
    /// A queue's current segment file is sealed once it reaches this size (default 64 MiB).
    pub segment_size: u64,
    /// After a write or fsync error, the failed part first tries to repair itself this long after (default 1 s) ...
    pub retry_after: Duration,
    /// ... then twice as long after each failed attempt, up to this (default 10 s).
    pub retry_max: Duration,
}

impl StoreConfig {
    /// The default WAL file and segment size: large enough that sealing and retiring files is rare, small enough
    /// that compaction can free space in useful steps.
    pub const DEFAULT_FILE_SIZE: u64 = 64 << 20;
    /// The default first retry after a failure.
    pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
    /// The default longest wait between retries.
    pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

    /// Defaults: sync Always, 64 MiB WAL files and segments, retries after 1 s backing off to 10 s.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            sync: SyncMode::Always,
            wal_file_size: Self::DEFAULT_FILE_SIZE,
            segment_size: Self::DEFAULT_FILE_SIZE,
            retry_after: Self::DEFAULT_RETRY_AFTER,
            retry_max: Self::DEFAULT_RETRY_MAX,
        }
    }
}

/// Whether the store takes persistent writes ([`Store::health`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHealth {
    /// Writes and fsyncs succeed.
    Healthy,
    /// A write or fsync failed (a full disk, an I/O error) and the store has not repaired itself yet: publishes get
    /// `Err`, acks and queue drops are kept in memory to be written once it has. It retries by itself, from its
    /// last synced state, with backoff ([`StoreConfig::retry_after`]); reads keep working throughout.
    Failed {
        /// The first error of the failure, as text.
        cause: String,
    },
}

/// What the broker keeps beside a message so that a restart puts it back where it was without reading its body:
/// when it was published, its own deadline, its priority. It costs 10 bytes per record (18 with a deadline), is
/// written once however many queues the message went to, and comes back with every recovered [`IndexEntry`].
///
/// Why the deadline is here although the message's properties hold its `expiration`: recovery returns no
/// properties (they would cost memory for every message of every queue) and the broker would otherwise have to
/// read every body back at start to learn which messages expire. The store gives the fields no meaning beyond
/// keeping them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// When the message was published, in milliseconds since the Unix epoch (wall clock): TTLs count from it.
    pub published_at_ms: u64,
    /// The message's own deadline (its per-message TTL added to `published_at_ms`), in milliseconds since the
    /// epoch; None when it has none.
    pub expires_at_ms: Option<u64>,
    /// Its priority (0 when it has none).
    pub priority: u8,
}

/// A persistent message as stored and recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The broker's node-wide message id; unique across queues and restarts (see [`Recovery::max_msg_id`]).
    pub msg_id: u64,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The content header's property flags and list, exactly as the publisher sent them.
    pub properties_raw: Bytes,
    /// The message body.
    pub body: Bytes,
    /// Its metadata. A message published with None is written as format version 1 wrote messages (record types 1
    /// and 16); one read back from such a record has None.
    pub meta: Option<MessageMeta>,
}

/// A recovered message without its body, so recovering millions of messages needs little memory (48 bytes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The message's id, for [`Store::read`].
    pub msg_id: u64,
    /// The body's length, so the queue can count its bytes without reading the body.
    pub body_size: u32,
    /// The metadata it was published with; None for a message stored without (by a Warren of format version 1).
    pub meta: Option<MessageMeta>,
}

/// What `Store::open` found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Live (unacked) messages of each durable queue, in msg_id order; every queue passed to `open` has an entry.
    pub queues: HashMap<QueueId, Vec<IndexEntry>>,
    /// The highest msg id in any record read (acked ones included): the broker continues numbering above it.
    pub max_msg_id: u64,
    /// Total recovered (sum over queues).
    pub messages: u64,
    /// Torn or corrupt tail bytes cut off (and torn or unreadable WAL files removed).
    pub truncated_bytes: u64,
    /// Queues whose segments were damaged beyond a tail: they serve the records before the damage (a raw copy of the
    /// damaged file is kept as `<seq>.corrupt`); other queues are unaffected.
    pub corrupt_queues: Vec<(QueueId, String)>,
    /// The deduplication keys each durable owner kept (`Store::remember_key`) that are still alive, oldest first,
    /// at most the owner's capacity.
    pub dedup: HashMap<QueueId, Vec<DedupEntry>>,
}

/// Counters for metrics and tests (kept public, like [`Store::settle`] and [`Store::close`], for tools and crash
/// tests outside this crate, which the `sim` feature exists for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// WAL write batches (one vectored append each).
    pub batches: u64,
    /// WAL fdatasyncs (one per batch with sync Always).
    pub wal_syncs: u64,
    /// Publishes made durable.
    pub publishes: u64,
    /// Full WAL files whose records were moved into segments and which were then removed.
    pub wal_files_retired: u64,
    /// Segment files removed because every message in them was acked or dropped.
    pub segments_deleted: u64,
    /// Segment files rewritten without their acked messages.
    pub segments_compacted: u64,
    /// Body and property bytes queued for the writer and not yet taken (for back-pressure).
    pub queued_bytes: u64,
    /// Times the store went from healthy to failed.
    pub failures: u64,
    /// Times it repaired itself and became healthy again.
    pub recoveries: u64,
}

/// The message store. Cheap to clone; all clones share one store. Dropping the last clone stops its threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    threads: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
}

impl Handle {
    fn shutdown(&self) {
        self.shared.inbox.close();
        if let Some((writer, background)) = lock(&self.threads).take() {
            // The last clone may be dropped inside an on_durable callback, on the writer thread itself: then the
            // threads finish on their own (the inbox is closed) and are not joined.
            let me = std::thread::current().id();
            if writer.thread().id() != me && background.thread().id() != me {
                let _ = writer.join();
                let _ = background.join();
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Locks a mutex, ignoring poisoning: the data it guards stays consistent at every unlock point.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens or creates the store, recovers it (reading segments, replaying the WAL, truncating torn tails at the
    /// last good record, repairing damaged segments, fsyncing directories), and starts the WAL writer thread and the
    /// background thread. `durable_queues`: the queue ids that still exist; messages of others are dropped.
    ///
    /// Recovery needs no free space (it only reads, truncates and removes), so a store on a full disk opens: what
    /// needs space (the new WAL file, the repair of a damaged segment, retiring recovered WAL files) fails, the store
    /// starts [`StoreHealth::Failed`] with everything recovered readable, and it repairs itself once space is back.
    pub fn open(
        config: StoreConfig,
        fs: Arc<dyn FileSystem>,
        durable_queues: &[QueueId],
    ) -> Result<(Store, Recovery), StoreError> {
        if config.wal_file_size == 0 || config.segment_size == 0 {
            return Err(StoreError::Config(
                "wal_file_size and segment_size must be above zero".into(),
            ));
        }
        let recovered = recovery::recover(&config, &fs, durable_queues)?;
        let shared = Arc::new(Shared::new(config, fs, recovered.index, recovered.dedup));
        let writer = WalWriter::start(&shared, recovered.next_wal_seq);
        let (tx, rx) = mpsc::channel();
        for file in recovered.unrepaired {
            let _ = tx.send(Job::Repair(file));
        }
        for file in recovered.sealed_wal {
            let _ = tx.send(Job::Retire(file));
        }
        let _ = tx.send(Job::Maintain);
        shared.set_background(tx);
        let background = Background::new(shared.clone(), recovered.segments);
        let spawn_err = |e: std::io::Error| StoreError::Io {
            op: "spawn",
            path: PathBuf::new(),
            source: e,
        };
        let background = std::thread::Builder::new()
            .name("warren-store-bg".into())
            .spawn(move || background.run(rx))
            .map_err(spawn_err)?;
        let writer = match std::thread::Builder::new()
            .name("warren-wal".into())
            .spawn(move || writer.run())
        {
            Ok(w) => w,
            Err(e) => {
                shared.send_job(Job::Stop);
                let _ = background.join();
                return Err(spawn_err(e));
            }
        };
        let handle = Handle {
            shared,
            threads: Mutex::new(Some((writer, background))),
        };
        Ok((
            Store {
                inner: Arc::new(handle),
            },
            recovered.report,
        ))
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Queues one publish record (the body is stored once however many queues it goes to). `on_durable` is called
    /// exactly once: from the writer thread with Ok after the fdatasync covering the record (sync Always) or after
    /// the write (Never), or Err if the write or sync failed, the store is failed ([`StoreHealth::Failed`]), or the
    /// message is too large; from the caller's thread with `Err(Closed)` if the store was closed. Never blocks on
    /// I/O. A publish that got Err may be lost; one that got Ok survives every later failure and crash until acked.
    pub fn publish(
        &self,
        msg: StoredMessage,
        queues: Vec<QueueId>,
        on_durable: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
    ) {
        if let Some(Op::Publish { done, .. }) = self.shared().inbox.push(Op::Publish {
            msg,
            queues,
            done: on_durable,
        }) {
            done(Err(StoreError::Closed));
        }
    }

    /// Keeps deduplication key `entry` for `owner` (a durable queue id: dropping it drops its keys) until its
    /// deadline, or until `capacity` newer keys of the owner push it out; recovery reports it in
    /// [`Recovery::dedup`]. `on_durable` follows the contract of [`Store::publish`]: the key's record goes in the
    /// WAL with the same group commit, in call order, so a message published after it on the same thread is
    /// durable only if the key is. Records of live keys are carried forward when their WAL file is retired.
    pub fn remember_key(
        &self,
        owner: QueueId,
        capacity: u32,
        entry: DedupEntry,
        on_durable: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
    ) {
        let op = Op::RememberKey {
            owner,
            capacity: capacity.max(1),
            entry,
            done: on_durable,
        };
        if let Some(Op::RememberKey { done, .. }) = self.shared().inbox.push(op) {
            done(Err(StoreError::Closed));
        }
    }

    /// Records that `queue` no longer holds these messages (acked or dropped). Never waits for an fsync: a lost ack
    /// only means a redelivery after a crash. Taken while the store is failed too: the index forgets the messages at
    /// once and the ack record is written once the store has repaired itself.
    pub fn ack(&self, queue: QueueId, msg_ids: Vec<u64>) {
        if !msg_ids.is_empty() {
            self.shared().inbox.push(Op::Ack {
                queue,
                ids: msg_ids,
            });
        }
    }

    /// Reads one live message of `queue` back from disk, wherever it lives now. Blocking; callable from any thread.
    /// A message is readable once its `on_durable` has fired with Ok.
    pub fn read(&self, queue: QueueId, msg_id: u64) -> Result<StoredMessage, StoreError> {
        let (loc, handle, path) = {
            let idx = lock(&self.shared().index);
            let loc = idx.queues.get(&queue).and_then(|m| m.get(&msg_id)).copied();
            let file = loc.and_then(|l| {
                idx.files
                    .get(&l.file)
                    .map(|f| (f.handle.clone(), f.path.clone()))
            });
            match (loc, file) {
                (Some(loc), Some((handle, path))) => (loc, handle, path),
                _ => return Err(StoreError::NotFound { queue, msg_id }),
            }
        };
        let corrupt = |reason| StoreError::Corrupt {
            path: path.clone(),
            offset: loc.offset,
            reason,
        };
        let mut buf = vec![0u8; loc.len as usize];
        fs::read_exact_at(handle.as_ref(), &mut buf, loc.offset)
            .map_err(StoreError::io("read", &path))?;
        let (kind, payload) = record::check_record(&buf).map_err(corrupt)?;
        let kind = record::Kind::from_byte(kind).ok_or_else(|| corrupt("unknown record type"))?;
        let (blob_start, layout) = if let Some(layout) = kind.publish_layout() {
            let (_, blob_at) = record::parse_publish(&buf[payload.clone()]).map_err(corrupt)?;
            (payload.start + blob_at, layout)
        } else if let Some(layout) = kind.message_layout() {
            (payload.start, layout)
        } else {
            return Err(corrupt("not a message record"));
        };
        let bytes = Bytes::from(buf);
        let msg =
            record::decode_message(&bytes, blob_start..payload.end, layout).map_err(corrupt)?;
        if msg.msg_id != msg_id {
            return Err(corrupt("record holds another message"));
        }
        Ok(msg)
    }

    /// The queue was deleted: all its messages are dropped. Its files are removed once the drop record is durable.
    /// Queue ids must not be reused after this.
    pub fn drop_queue(&self, queue: QueueId) {
        self.shared().inbox.push(Op::DropQueue { queue });
    }

    /// True while the store is failed ([`StoreHealth::Failed`]): persistent publishes get `Err` until it has
    /// repaired itself. One atomic load.
    pub fn failed(&self) -> bool {
        self.shared().is_failed()
    }

    /// Healthy, or failed with the cause: a write or fsync failed and the store has not yet repaired itself.
    pub fn health(&self) -> StoreHealth {
        match self.shared().cause() {
            Some(cause) if self.failed() => StoreHealth::Failed { cause },
            _ => StoreHealth::Healthy,
        }
    }

    /// Asks each failed part of the store to try to repair itself now rather than at its next scheduled retry,
    /// waits for the attempts, and returns the health after them. For an operator who just freed space, and for
    /// tests that need repairs at chosen points.
    pub fn retry_now(&self) -> StoreHealth {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.shared().inbox.push(Op::Retry { done: tx }).is_none() {
            let _ = rx.recv();
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared().send_job(Job::Retry(tx));
        let _ = rx.recv();
        self.health()
    }

    /// Waits until everything queued so far is written and synced.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.shared().inbox.push(Op::Flush { done: tx }).is_some() {
            return Err(StoreError::Closed);
        }
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Waits until the background work queued so far (WAL retirement, compaction, queue file removal) is done, or
    /// deferred because the background part has failed. For tests and tools; the broker never needs it.
    pub fn settle(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared().send_job(Job::Settle(tx));
        let _ = rx.recv();
    }

    /// Body and property bytes queued for the writer and not yet taken: the broker stops reading publishers'
    /// sockets while this is above its budget.
    pub fn queued_bytes(&self) -> u64 {
        self.shared().inbox.queued_bytes()
    }

    /// Sets `hook`, called by the writer thread each time it takes the queued work for a batch, that is whenever
    /// [`Store::queued_bytes`] has just fallen: a caller waiting for room wakes on it instead of polling. The hook
    /// runs on the writer thread, so it must be quick and must not block. One per store: returns false (and drops
    /// `hook`) if one is set already.
    pub fn on_queue_taken(&self, hook: Box<dyn Fn() + Send + Sync>) -> bool {
        self.shared().inbox.set_on_taken(hook)
    }

    /// A snapshot of the counters; each is read on its own, so two of them may be a few operations apart.
    pub fn stats(&self) -> StoreStats {
        let c = &self.shared().counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        StoreStats {
            batches: get(&c.batches),
            wal_syncs: get(&c.wal_syncs),
            publishes: get(&c.publishes),
            wal_files_retired: get(&c.wal_files_retired),
            segments_deleted: get(&c.segments_deleted),
            segments_compacted: get(&c.segments_compacted),
            queued_bytes: self.shared().inbox.queued_bytes(),
            failures: get(&c.failures),
            recoveries: get(&c.recoveries),
        }
    }

    /// Flushes, then stops the writer and background threads. Other clones see `Closed` afterwards.
    pub fn close(self) -> Result<(), StoreError> {
        let result = self.flush();
        self.inner.shutdown();
        if self.shared().is_failed() {
            return Err(self.shared().failure());
        }
        result
    }
}
