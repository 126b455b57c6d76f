//! The spill store: where queues put transient messages past their memory budget, and read them back from when they
//! deliver them. One per node, shared by every queue: append-only files of message records (the store's record
//! framing and plain message blob, so a read checks a CRC32C), written by a thread of their own with one vectored
//! write per batch and never fsynced, since nothing in them outlives the process: the directory is emptied at open
//! and the files deleted at close. docs/storage-format.md describes the files.
//!
//! The parts: [`SpillStore`] (this file), the API and its thread's lifecycle; `state`, the bookkeeping of what is
//! where; `writer`, the thread that writes batches, deletes emptied files and compacts mostly dead ones.
//!
//! A message is keyed by its node-wide id and counted by holder: a message routed to several queues that all spill
//! it is written once, read by each, and its record is dead once the last one releases it.

mod state;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fs::{self, FileSystem};
use crate::record::{self, BlobLayout, Kind, MAX_PAYLOAD};
use crate::{lock, StoreError, StoredMessage};
use state::{Found, SpillState};
use writer::SpillWriter;

/// Where and how the spill store writes.
#[derive(Clone, Debug)]
pub struct SpillConfig {
    /// Its directory, e.g. `<data_dir>/spill`: emptied at open, so it must hold nothing else.
    pub dir: PathBuf,
    /// A file is sealed, and a new one started, once it reaches this size. Smaller files are deleted sooner once
    /// their messages are released, larger ones need fewer file descriptors.
    pub file_size: u64,
    /// After a failed write, how long the store refuses new messages (their queues keep them in memory) before it
    /// tries a new file.
    pub retry_after: Duration,
}

impl SpillConfig {
    /// The default file size, 16 MiB: a quarter of the message store's, since spill files are deleted (not
    /// retired) and a deep backlog that drains should give its disk space back in small steps.
    pub const DEFAULT_FILE_SIZE: u64 = 16 << 20;

    /// Defaults: 16 MiB files, a 5 s back-off after a failed write.
    pub fn new(dir: impl Into<PathBuf>) -> SpillConfig {
        SpillConfig {
            dir: dir.into(),
            file_size: Self::DEFAULT_FILE_SIZE,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// A snapshot of the spill store, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Messages held (spilled and not yet released by every holder).
    pub messages: u64,
    /// Bytes of messages put and not yet written: memory the writer still holds.
    pub pending_bytes: u64,
    /// Bytes of messages whose write failed, kept in memory until released.
    pub stranded_bytes: u64,
    /// Spill files open.
    pub files: u64,
    /// Bytes in them.
    pub file_bytes: u64,
    /// Bytes of live records in them.
    pub live_bytes: u64,
    /// Messages written.
    pub written: u64,
    /// Files deleted because every record in them was released (or moved by compaction).
    pub files_deleted: u64,
    /// Compaction passes that moved live records out of a mostly dead file.
    pub files_compacted: u64,
    /// Writes that failed.
    pub write_failures: u64,
}

/// What the API and the writer thread share.
struct SpillShared {
    config: SpillConfig,
    fs: Arc<dyn FileSystem>,
    state: Mutex<SpillState>,
    /// The writer waits on it for work.
    work: Condvar,
    /// Waiters for room or for the writer to settle wait on it.
    changed: Condvar,
    /// `SpillState::pending_bytes`, readable without the lock (the queue checks it after each run it spilled).
    pending_bytes: AtomicU64,
}

impl SpillShared {
    /// After a change to `s` (under its lock): publishes the pending bytes and wakes the waiters, if any.
    fn changed(&self, s: &SpillState) {
        self.pending_bytes.store(s.pending_bytes, Ordering::Relaxed);
        if s.waiters > 0 {
            self.changed.notify_all();
        }
    }

    fn wait<'a>(&self, s: MutexGuard<'a, SpillState>) -> MutexGuard<'a, SpillState> {
        self.changed.wait(s).unwrap_or_else(|e| e.into_inner())
    }
}

/// The spill store. Cheap to clone; all clones share one store. Dropping the last clone stops the writer thread
/// and deletes the files.
///
/// Contract: every successful [`SpillStore::put`] of an id is matched by exactly one [`SpillStore::release`] of it;
/// until then [`SpillStore::read`] returns the message. Puts and releases never wait for I/O (a mutex held for a
/// map update, never across I/O), so an async worker may call them; reads may read a file.
#[derive(Clone)]
pub struct SpillStore {
    inner: Arc<SpillHandle>,
}

struct SpillHandle {
    shared: Arc<SpillShared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SpillHandle {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
        self.shared.changed.notify_all();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
    }
}

impl SpillStore {
    /// Empties (or creates) the directory and starts the writer thread. Whatever a previous process left there is
    /// deleted: spilled messages were transient.
    pub fn open(config: SpillConfig, fs: Arc<dyn FileSystem>) -> Result<SpillStore, StoreError> {
        if config.file_size == 0 {
            return Err(StoreError::Config(
                "spill file_size must be above zero".into(),
            ));
        }
        let dir = &config.dir;
        fs.create_dir_all(dir)
            .map_err(StoreError::io("create_dir", dir))?;
        for name in fs.list(dir).map_err(StoreError::io("list", dir))? {
            let path = dir.join(&name);
            fs.remove_file(&path)
                .map_err(StoreError::io("remove", &path))?;
        }
        let mut state = SpillState::default();
        state.compaction_min = config.file_size / 4;
        let shared = Arc::new(SpillShared {
            config,
            fs,
            state: Mutex::new(state),
            work: Condvar::new(),
            changed: Condvar::new(),
            pending_bytes: AtomicU64::new(0),
        });
        let writer = SpillWriter {
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("warren-spill".into())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::Io {
                op: "spawn",
                path: PathBuf::new(),
                source,
            })?;
        Ok(SpillStore {
            inner: Arc::new(SpillHandle {
                shared,
                writer: Mutex::new(Some(thread)),
            }),
        })
    }

    fn shared(&self) -> &SpillShared {
        &self.inner.shared
    }

    /// Spills message `msg_id` for one more holder: if it is spilled already, the holder shares it (`make` is not
    /// called); otherwise `make` builds it and the writer thread will write it (until then it stays in memory and
    /// reads are served from there). Never waits for I/O. Err, and nothing held, if the store is closed, a write
    /// failed in the last `retry_after`, or the message is too large for a record: the caller keeps it in memory.
    pub fn put(&self, msg_id: u64, make: impl FnOnce() -> StoredMessage) -> Result<(), StoreError> {
        let shared = self.shared();
        let mut s = lock(&shared.state);
        if s.stopping {
            return Err(StoreError::Closed);
        }
        if s.share(msg_id) {
            return Ok(());
        }
        if s.failure.is_some() {
            s.check_available(Instant::now())?;
        }
        let msg = make();
        check_size(&msg)?;
        let wake = s.insert(msg);
        shared
            .pending_bytes
            .store(s.pending_bytes, Ordering::Relaxed);
        drop(s);
        if wake {
            shared.work.notify_one();
        }
        Ok(())
    }

    /// Drops one holder of `msg_id`; the last one's release frees its memory or its record. Unknown ids are ignored.
    /// Never waits for I/O (deleting an emptied file is the writer's job).
    pub fn release(&self, msg_id: u64) {
        self.release_all([msg_id]);
    }

    /// [`SpillStore::release`] for each id, under one lock.
    pub fn release_all(&self, msg_ids: impl IntoIterator<Item = u64>) {
        let shared = self.shared();
        let mut dropped = Vec::new();
        let mut writer_work = false;
        let mut s = lock(&shared.state);
        for msg_id in msg_ids {
            let released = s.release(msg_id);
            writer_work |= released.writer_work;
            dropped.extend(released.dropped);
        }
        shared.changed(&s);
        drop(s);
        if writer_work {
            shared.work.notify_one();
        }
        // Freed outside the lock.
        drop(dropped);
    }

    /// Reads message `msg_id` back: from memory while it waits for the writer (or if its write failed), else from
    /// its file, its CRC checked. Blocking; call it off the async workers.
    pub fn read(&self, msg_id: u64) -> Result<StoredMessage, StoreError> {
        let found = lock(&self.shared().state).find(msg_id)?;
        let (loc, handle, path) = match found {
            Found::Memory(msg) => return Ok((*msg).clone()),
            Found::File { loc, handle, path } => (loc, handle, path),
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
        if kind != Kind::Message as u8 {
            return Err(corrupt("not a message record"));
        }
        let bytes = Bytes::from(buf);
        let msg = record::decode_message(&bytes, payload, BlobLayout::Plain).map_err(corrupt)?;
        if msg.msg_id != msg_id {
            return Err(corrupt("record holds another message"));
        }
        Ok(msg)
    }

    /// Bytes of messages put and not yet written; lock-free. A caller that spills keeps this bounded with
    /// [`SpillStore::wait_for_room`].
    pub fn pending_bytes(&self) -> u64 {
        self.shared().pending_bytes.load(Ordering::Relaxed)
    }

    /// Blocks until at most `limit` bytes wait for the writer (or the store closes). Call it off the async workers.
    pub fn wait_for_room(&self, limit: u64) {
        let shared = self.shared();
        let mut s = lock(&shared.state);
        s.waiters += 1;
        while s.pending_bytes > limit && !s.stopping {
            s = shared.wait(s);
        }
        s.waiters -= 1;
    }

    /// Blocks until the writer has written what was queued and deleted or compacted what it could. For tests and
    /// tools.
    pub fn settle(&self) {
        let shared = self.shared();
        let mut s = lock(&shared.state);
        s.waiters += 1;
        while (s.busy || s.has_queued() || s.emptied || s.compaction_wanted) && !s.stopping {
            s = shared.wait(s);
        }
        s.waiters -= 1;
    }

    /// A snapshot of the store.
    pub fn stats(&self) -> SpillStats {
        let s = lock(&self.shared().state);
        let (files, file_bytes, live_bytes) = s.file_totals();
        SpillStats {
            messages: s.entries(),
            pending_bytes: s.pending_bytes,
            stranded_bytes: s.stranded_bytes,
            files,
            file_bytes,
            live_bytes,
            written: s.written,
            files_deleted: s.files_deleted,
            files_compacted: s.files_compacted,
            write_failures: s.write_failures,
        }
    }
}

/// The limits a record puts on a message (as `record::message_head` checks them), checked at `put` so the writer
/// never meets a message it cannot write.
fn check_size(msg: &StoredMessage) -> Result<(), StoreError> {
    let rejected = |reason| Err(StoreError::Rejected { reason });
    if msg.exchange.len() > usize::from(u16::MAX) || msg.routing_key.len() > usize::from(u16::MAX) {
        return rejected("exchange or routing key longer than 65535 bytes");
    }
    let total =
        64 + msg.exchange.len() + msg.routing_key.len() + msg.properties_raw.len() + msg.body.len();
    if total > (MAX_PAYLOAD as usize) / 2 {
        return rejected("message larger than the store's record limit");
    }
    Ok(())
}
