//! The spill store's bookkeeping: which messages it holds and where (in memory until the writer has written them,
//! or in a file), how many queues hold each, the files with their live accounting, and the writer's queue. One
//! mutex guards it; nobody holds that mutex across I/O. Pure data, so its rules are tested without threads.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::fs::FileHandle;
use crate::record::FILE_HEADER_LEN;
use crate::{StoreError, StoredMessage};

/// Names a spill file for the life of the process; also its file name (`<id>.spill`).
pub(super) type SpillFileId = u32;

/// Where a written message's record lives: bytes `offset..offset + len` of spill file `file`, record header included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SpillLoc {
    pub(super) file: SpillFileId,
    pub(super) len: u32,
    pub(super) offset: u64,
}

/// Where a spilled message is now.
enum Slot {
    /// Put and not yet written: the writer's batch shares it, and reads are served from it.
    Pending(Arc<StoredMessage>),
    /// Its write failed: it stays in memory until released, and reads are served from it. Nothing is lost.
    Stranded(Arc<StoredMessage>),
    /// In a spill file.
    Written(SpillLoc),
}

/// One spilled message: 32 bytes beside its 8-byte key.
struct Entry {
    /// The puts not yet released: a message routed to several queues is spilled once and held by each.
    refs: u32,
    slot: Slot,
}

/// One spill file.
pub(super) struct SpillFile {
    pub(super) path: PathBuf,
    pub(super) handle: Arc<dyn FileHandle>,
    /// Bytes appended so far, header included.
    pub(super) size: u64,
    /// Message records in it that an entry still points at.
    live: u64,
    /// Their bytes.
    live_bytes: u64,
    /// Compaction found a damaged record in it: it is not tried again (it goes once its last entry is released).
    pub(super) no_compaction: bool,
}

/// What a lookup found: the message itself (pending or stranded), or where to read it.
pub(super) enum Found {
    /// Still in memory.
    Memory(Arc<StoredMessage>),
    /// In a file: read `loc` through `handle` (which stays readable even if the file is deleted meanwhile).
    File {
        loc: SpillLoc,
        handle: Arc<dyn FileHandle>,
        path: PathBuf,
    },
}

/// What a release changed, for the caller to act on outside the lock.
#[derive(Default)]
pub(super) struct Released {
    /// The writer has a file to delete or to compact.
    pub(super) writer_work: bool,
    /// Pending bytes went down: callers waiting for room may go on.
    pub(super) room: bool,
    /// The message the store held in memory, to drop outside the lock.
    pub(super) dropped: Option<Arc<StoredMessage>>,
}

/// Whether rewriting a sealed file's live records elsewhere is worth it: they are under a quarter of its record
/// bytes (so the copy is at most a third of what it frees), and it holds at least `min` record bytes.
fn worth_compacting(file: &SpillFile, min: u64) -> bool {
    let records = file.size.saturating_sub(FILE_HEADER_LEN);
    !file.no_compaction && file.live > 0 && records >= min && file.live_bytes * 4 < records
}

/// Bytes of memory a spilled message holds until it is written: what the back-pressure limit counts.
pub(super) fn held_bytes(m: &StoredMessage) -> u64 {
    (m.body.len() + m.properties_raw.len() + m.exchange.len() + m.routing_key.len()) as u64
}

/// Below this capacity the entry table is never shrunk: small tables are not worth the rehash.
const SHRINK_ABOVE_CAPACITY: usize = 4096;

/// The whole bookkeeping, behind the spill store's mutex.
#[derive(Default)]
pub(super) struct SpillState {
    entries: HashMap<u64, Entry>,
    /// Ids put and not yet taken by the writer, in put order.
    queued: Vec<u64>,
    files: BTreeMap<SpillFileId, SpillFile>,
    /// The file the writer appends to.
    current: Option<SpillFileId>,
    next_file: SpillFileId,
    /// Bytes of messages put and not yet written (nor released).
    pub(super) pending_bytes: u64,
    /// Bytes of messages whose write failed, held in memory until released.
    pub(super) stranded_bytes: u64,
    /// After a failed write: why, and when the store takes new messages again.
    pub(super) failure: Option<(String, Instant)>,
    /// The store is closing: the writer stops, puts are refused.
    pub(super) stopping: bool,
    /// A file's last live record was released: the writer has files to delete.
    pub(super) emptied: bool,
    /// A release left a sealed file mostly dead: the writer looks for files to compact.
    pub(super) compaction_wanted: bool,
    /// Record bytes a sealed file needs before compaction is worth it (set at open).
    pub(super) compaction_min: u64,
    /// The writer is working on something it took from here (`settle` waits until it is not).
    pub(super) busy: bool,
    /// Threads waiting for room or for the writer to settle: releases and the writer wake them only if any.
    pub(super) waiters: usize,
    /// Counters, see `SpillStats`.
    pub(super) written: u64,
    pub(super) files_deleted: u64,
    pub(super) files_compacted: u64,
    pub(super) write_failures: u64,
}

impl SpillState {
    /// Adds one more holder to a message already spilled; false if it is not here.
    pub(super) fn share(&mut self, msg_id: u64) -> bool {
        match self.entries.get_mut(&msg_id) {
            Some(entry) => {
                entry.refs += 1;
                true
            }
            None => false,
        }
    }

    /// Refuses new messages while a write failure's back-off runs; clears the failure once it has.
    pub(super) fn check_available(&mut self, now: Instant) -> Result<(), StoreError> {
        match &self.failure {
            Some((cause, retry_at)) if now < *retry_at => Err(StoreError::SpillUnavailable {
                cause: cause.clone(),
            }),
            Some(_) => {
                self.failure = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Adds a message not held yet, for the writer; true if the writer's queue was empty (it may be asleep).
    pub(super) fn insert(&mut self, msg: StoredMessage) -> bool {
        let was_idle = self.queued.is_empty();
        self.pending_bytes += held_bytes(&msg);
        self.queued.push(msg.msg_id);
        self.entries.insert(
            msg.msg_id,
            Entry {
                refs: 1,
                slot: Slot::Pending(Arc::new(msg)),
            },
        );
        was_idle
    }

    /// A drained or deleted backlog leaves the table's capacity behind (tens of bytes an entry: hundreds of MiB after
    /// millions of spilled messages), which would keep the memory alarm raised after the queue is gone. Halving it
    /// once a quarter full gives that back at an amortised cost, as growing it did.
    fn shrink_when_sparse(&mut self) {
        let capacity = self.entries.capacity();
        if capacity > SHRINK_ABOVE_CAPACITY && self.entries.len() < capacity / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    /// Drops one holder of a message; the last one removes it (unknown ids are ignored).
    pub(super) fn release(&mut self, msg_id: u64) -> Released {
        let mut released = Released::default();
        let Some(entry) = self.entries.get_mut(&msg_id) else {
            return released;
        };
        entry.refs -= 1;
        if entry.refs > 0 {
            return released;
        }
        let Some(entry) = self.entries.remove(&msg_id) else {
            return released;
        };
        self.shrink_when_sparse();
        match entry.slot {
            Slot::Pending(m) => {
                self.pending_bytes -= held_bytes(&m);
                released.room = true;
                released.dropped = Some(m);
            }
            Slot::Stranded(m) => {
                self.stranded_bytes -= held_bytes(&m);
                released.dropped = Some(m);
            }
            Slot::Written(loc) => {
                if let Some(file) = self.files.get_mut(&loc.file) {
                    file.live -= 1;
                    file.live_bytes -= u64::from(loc.len);
                    if file.live == 0 {
                        self.emptied = true;
                        released.writer_work = true;
                    } else if !self.compaction_wanted
                        && self.current != Some(loc.file)
                        && worth_compacting(file, self.compaction_min)
                    {
                        self.compaction_wanted = true;
                        released.writer_work = true;
                    }
                }
            }
        }
        released
    }

    /// Where message `msg_id` is.
    pub(super) fn find(&self, msg_id: u64) -> Result<Found, StoreError> {
        let entry = self
            .entries
            .get(&msg_id)
            .ok_or(StoreError::NotSpilled { msg_id })?;
        match &entry.slot {
            Slot::Pending(m) | Slot::Stranded(m) => Ok(Found::Memory(m.clone())),
            Slot::Written(loc) => {
                let file = self
                    .files
                    .get(&loc.file)
                    .ok_or(StoreError::NotSpilled { msg_id })?;
                Ok(Found::File {
                    loc: *loc,
                    handle: file.handle.clone(),
                    path: file.path.clone(),
                })
            }
        }
    }

    /// Takes the writer's queue: the messages still pending, in put order (released ones are skipped).
    pub(super) fn take_queued(&mut self) -> Vec<Arc<StoredMessage>> {
        let ids = std::mem::take(&mut self.queued);
        ids.into_iter()
            .filter_map(|id| match self.entries.get(&id).map(|e| &e.slot) {
                Some(Slot::Pending(m)) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether the writer has messages to take.
    pub(super) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The file to append to, if there is one under `file_size` bytes: (id, handle, path, size).
    pub(super) fn current_file(
        &self,
        file_size: u64,
    ) -> Option<(SpillFileId, Arc<dyn FileHandle>, PathBuf, u64)> {
        let id = self.current?;
        let file = self.files.get(&id)?;
        (file.size < file_size).then(|| (id, file.handle.clone(), file.path.clone(), file.size))
    }

    /// The id the next file gets (its name is made from it before it is created).
    pub(super) fn next_file_id(&mut self) -> SpillFileId {
        self.next_file += 1;
        self.next_file
    }

    /// Adds a created file of `size` bytes (its header) as the one appended to; the previous one is sealed.
    pub(super) fn add_current(
        &mut self,
        id: SpillFileId,
        path: PathBuf,
        handle: Arc<dyn FileHandle>,
        size: u64,
    ) {
        self.files.insert(
            id,
            SpillFile {
                path,
                handle,
                size,
                live: 0,
                live_bytes: 0,
                no_compaction: false,
            },
        );
        self.current = Some(id);
        // The sealed file may already be empty: it is deletable now that nothing appends to it.
        self.emptied = true;
    }

    /// Records a batch appended to `file` (`appended` bytes): each message still pending as the very one written
    /// is now in the file; a message released meanwhile left dead bytes.
    pub(super) fn written(
        &mut self,
        file: SpillFileId,
        appended: u64,
        batch: Vec<(Arc<StoredMessage>, SpillLoc)>,
    ) {
        let mut live = 0;
        let mut live_bytes = 0;
        for (msg, loc) in batch {
            let Some(entry) = self.entries.get_mut(&msg.msg_id) else {
                continue;
            };
            if matches!(&entry.slot, Slot::Pending(m) if Arc::ptr_eq(m, &msg)) {
                entry.slot = Slot::Written(loc);
                self.pending_bytes -= held_bytes(&msg);
                live += 1;
                live_bytes += u64::from(loc.len);
                self.written += 1;
            }
        }
        if let Some(f) = self.files.get_mut(&file) {
            f.size += appended;
            f.live += live;
            f.live_bytes += live_bytes;
            if f.live == 0 {
                self.emptied = true;
            }
        }
    }

    /// A write of `batch` failed: its messages and any queued since stay in memory for good (nothing is lost), the
    /// file written to is sealed, and puts are refused until `retry_at`.
    pub(super) fn failed(
        &mut self,
        batch: &[Arc<StoredMessage>],
        cause: String,
        retry_at: Instant,
    ) {
        let queued = std::mem::take(&mut self.queued);
        let ids = batch.iter().map(|m| m.msg_id).chain(queued);
        for id in ids {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if let Slot::Pending(m) = &entry.slot {
                let m = m.clone();
                let bytes = held_bytes(&m);
                self.pending_bytes -= bytes;
                self.stranded_bytes += bytes;
                entry.slot = Slot::Stranded(m);
            }
        }
        // Its tail may be torn: nothing more is appended to it; it goes once its live records are released.
        self.current = None;
        self.emptied = true;
        self.failure = Some((cause, retry_at));
        self.write_failures += 1;
    }

    /// Takes the files without a live record out of the table, for the writer to delete. The current file is kept
    /// while `keep_current` (more writes are about to go to it).
    pub(super) fn take_empty_files(&mut self, keep_current: bool) -> Vec<SpillFile> {
        let mut kept = false;
        let mut empty = Vec::new();
        for (id, f) in &self.files {
            if f.live > 0 {
                continue;
            }
            if keep_current && self.current == Some(*id) {
                kept = true;
            } else {
                empty.push(*id);
            }
        }
        // A kept empty file is looked at again after the writes that were coming (they may all be released first).
        self.emptied = kept;
        let mut files = Vec::with_capacity(empty.len());
        for id in empty {
            if self.current == Some(id) {
                self.current = None;
            }
            if let Some(f) = self.files.remove(&id) {
                files.push(f);
            }
        }
        self.files_deleted += files.len() as u64;
        files
    }

    /// The sealed file most worth compacting (see [`worth_compacting`]), the emptiest first.
    pub(super) fn compaction_candidate(&self) -> Option<(SpillFileId, Arc<dyn FileHandle>)> {
        self.files
            .iter()
            .filter(|(id, f)| {
                self.current != Some(**id) && worth_compacting(f, self.compaction_min)
            })
            .min_by_key(|(_, f)| f.live_bytes * 1000 / f.size.max(1))
            .map(|(id, f)| (*id, f.handle.clone()))
    }

    /// Whether `msg_id` is live at exactly `loc` (compaction copies only such records).
    pub(super) fn is_live_at(&self, msg_id: u64, loc: SpillLoc) -> bool {
        matches!(self.entries.get(&msg_id), Some(Entry { slot: Slot::Written(l), .. }) if *l == loc)
    }

    /// Points the entries compaction copied at their copies in `to` (`appended` bytes went there); a record
    /// released or moved meanwhile leaves its copy dead.
    pub(super) fn moved(
        &mut self,
        to: SpillFileId,
        appended: u64,
        moves: Vec<(u64, SpillLoc, SpillLoc)>,
    ) {
        let mut live = 0;
        let mut live_bytes = 0;
        for (msg_id, from, new) in moves {
            let Some(entry) = self.entries.get_mut(&msg_id) else {
                continue;
            };
            if !matches!(entry.slot, Slot::Written(l) if l == from) {
                continue;
            }
            entry.slot = Slot::Written(new);
            live += 1;
            live_bytes += u64::from(new.len);
            if let Some(old) = self.files.get_mut(&from.file) {
                old.live -= 1;
                old.live_bytes -= u64::from(from.len);
                if old.live == 0 {
                    self.emptied = true;
                }
            }
        }
        if let Some(f) = self.files.get_mut(&to) {
            f.size += appended;
            f.live += live;
            f.live_bytes += live_bytes;
        }
    }

    /// Marks a file compaction must not try again.
    pub(super) fn skip_compaction(&mut self, file: SpillFileId) {
        if let Some(f) = self.files.get_mut(&file) {
            f.no_compaction = true;
        }
    }

    /// Takes every file out of the table (the store is closing: the writer deletes them).
    pub(super) fn take_all_files(&mut self) -> Vec<SpillFile> {
        self.current = None;
        std::mem::take(&mut self.files).into_values().collect()
    }

    /// Messages held (spilled and not released).
    pub(super) fn entries(&self) -> u64 {
        self.entries.len() as u64
    }

    /// (files, bytes in them, live record bytes in them).
    pub(super) fn file_totals(&self) -> (u64, u64, u64) {
        self.files.values().fold((0, 0, 0), |(n, size, live), f| {
            (n + 1, size + f.size, live + f.live_bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(id: u64, body: &'static [u8]) -> StoredMessage {
        StoredMessage {
            msg_id: id,
            exchange: String::new(),
            routing_key: "q".into(),
            properties_raw: Bytes::new(),
            body: Bytes::from_static(body),
            meta: None,
        }
    }

    fn handle() -> Arc<dyn FileHandle> {
        use crate::fs::FileSystem;
        let fs = crate::sim_fs::SimFs::new();
        let dir = std::path::Path::new("/s");
        fs.create_dir_all(dir).unwrap();
        fs.create(&dir.join("1.spill")).unwrap()
    }

    #[test]
    fn a_shared_message_goes_with_its_last_holder() {
        let mut s = SpillState::default();
        assert!(s.insert(msg(1, b"abc")));
        assert!(s.share(1));
        assert!(!s.share(2));
        assert_eq!(s.pending_bytes, 4);
        assert!(s.release(1).dropped.is_none(), "one holder left");
        assert!(matches!(s.find(1), Ok(Found::Memory(_))));
        let released = s.release(1);
        assert!(released.room && released.dropped.is_some());
        assert_eq!(s.pending_bytes, 0);
        assert!(matches!(
            s.find(1),
            Err(StoreError::NotSpilled { msg_id: 1 })
        ));
        assert!(
            s.take_queued().is_empty(),
            "a released message is not written"
        );
    }

    #[test]
    fn a_drained_table_gives_its_capacity_back() {
        let mut s = SpillState::default();
        for id in 0..100_000 {
            s.insert(msg(id, b"x"));
        }
        let full = s.entries.capacity();
        for id in 0..99_990 {
            s.release(id);
        }
        assert!(
            s.entries.capacity() <= SHRINK_ABOVE_CAPACITY,
            "capacity {} of {full} kept for 10 entries",
            s.entries.capacity()
        );
        for id in 99_990..100_000 {
            assert!(matches!(s.find(id), Ok(Found::Memory(_))));
        }
    }

    #[test]
    fn written_messages_count_as_live_until_released_and_empty_files_are_taken() {
        let mut s = SpillState::default();
        s.insert(msg(1, b"a"));
        s.insert(msg(2, b"bb"));
        let id = s.next_file_id();
        s.add_current(id, "/s/1.spill".into(), handle(), 16);
        let batch = s.take_queued();
        let locs: Vec<_> = batch
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let loc = SpillLoc {
                    file: id,
                    len: 20,
                    offset: 16 + 20 * i as u64,
                };
                (m, loc)
            })
            .collect();
        // Released while being written: its bytes are dead at once.
        s.release(2);
        s.written(id, 40, locs);
        assert_eq!(s.file_totals(), (1, 56, 20));
        assert_eq!(s.pending_bytes, 0);
        assert!(matches!(s.find(1), Ok(Found::File { .. })));
        assert!(s.take_empty_files(false).is_empty());
        assert!(s.release(1).writer_work);
        assert!(
            s.take_empty_files(true).is_empty(),
            "the current file is kept while writes come"
        );
        assert_eq!(s.take_empty_files(false).len(), 1);
        assert_eq!(s.file_totals(), (0, 0, 0));
    }

    #[test]
    fn a_failed_write_strands_pending_messages_in_memory_and_refuses_puts_for_a_while() {
        let mut s = SpillState::default();
        s.insert(msg(1, b"abc"));
        let batch = s.take_queued();
        s.insert(msg(2, b"d"));
        let now = Instant::now();
        s.failed(
            &batch,
            "disk full".into(),
            now + std::time::Duration::from_secs(5),
        );
        assert_eq!((s.pending_bytes, s.stranded_bytes), (0, 6));
        assert!(!s.has_queued());
        assert!(matches!(s.find(1), Ok(Found::Memory(_))), "still readable");
        assert!(s.check_available(now).is_err());
        assert!(s
            .check_available(now + std::time::Duration::from_secs(6))
            .is_ok());
        s.release(1);
        s.release(2);
        assert_eq!(s.stranded_bytes, 0);
    }
}
