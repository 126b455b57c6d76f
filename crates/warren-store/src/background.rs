//! The background thread: retires sealed WAL files (copies their still-live messages into per-queue segments,
//! writes pending segment acks, fsyncs, then deletes the WAL file), removes the files of dropped queues, and runs
//! segment maintenance (see compaction.rs).
//!
//! Why a second thread and not the WAL writer: retiring a 64 MiB WAL file reads it back and may write tens of MiB
//! with several fsyncs; on the writer thread that would stall every publish for that long. Here it overlaps with
//! publishing, and the two threads only meet on the index mutex, never held across I/O.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use super::compaction::repair;
use super::dedup_keys;
use super::fs::{FileHandle, FileSystem};
use super::index::{FileId, Loc};
use super::record::{self, Kind};
use super::retry::Backoff;
use super::scan::{Scanner, Step};
use super::segment::{queue_dir, SegmentSet};
use super::shared::{bump, Job, Op, Part, Shared};
use super::{lock, QueueId, StoreError};

/// The acks bound for one segment: its handle, its path, the msg ids.
type AckBatch = (Arc<dyn FileHandle>, PathBuf, Vec<u64>);

/// A job that can run again after a failure (`Settle` and `Stop` are answered at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Retire(FileId),
    DropQueue(QueueId),
    Maintain,
    Repair(FileId),
}

/// This part's failure: when to retry, and the work to run again then, oldest first.
struct Fault {
    backoff: Backoff,
    kept: VecDeque<Work>,
}

pub(crate) struct Background {
    pub(super) shared: Arc<Shared>,
    pub(super) segments: SegmentSet,
    /// Set while this part is failed.
    fault: Option<Fault>,
}

impl Background {
    pub(crate) fn new(shared: Arc<Shared>, segments: SegmentSet) -> Background {
        Background {
            shared,
            segments,
            fault: None,
        }
    }

    /// The thread body. While failed it keeps the jobs that come (answering `Settle` at once) and wakes when a
    /// retry is due.
    pub(crate) fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            let job = match self.fault.as_ref().map(|f| f.backoff.due()) {
                None => match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                },
                Some(due) => {
                    let left = due.saturating_duration_since(Instant::now());
                    match jobs.recv_timeout(left) {
                        Ok(job) => Some(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            let work = match job {
                Some(Job::Stop) => return,
                Some(Job::Settle(done)) => {
                    let _ = done.send(());
                    None
                }
                Some(Job::Retry(done)) => {
                    if self.fault.is_some() {
                        self.retry();
                    }
                    let _ = done.send(());
                    None
                }
                Some(Job::Retire(file)) => Some(Work::Retire(file)),
                Some(Job::DropQueue(queue)) => Some(Work::DropQueue(queue)),
                Some(Job::Maintain) => Some(Work::Maintain),
                Some(Job::Repair(file)) => Some(Work::Repair(file)),
                None => None,
            };
            match (work, self.fault.as_mut()) {
                (Some(work), Some(fault)) => keep(&mut fault.kept, work),
                (Some(work), None) => match self.work(work) {
                    // The store is closing and its WAL writer has stopped, so keys could not be carried: the WAL
                    // file stays, the next open replays it. Not a failure of the store.
                    Ok(()) | Err(StoreError::Closed) => {}
                    Err(e) => self.fail(e, VecDeque::from([work])),
                },
                (None, _) => {}
            }
            if self
                .fault
                .as_ref()
                .is_some_and(|f| f.backoff.due() <= Instant::now())
            {
                self.retry();
            }
        }
    }

    fn work(&mut self, work: Work) -> Result<(), StoreError> {
        match work {
            Work::Retire(file) => self.retire(file),
            Work::DropQueue(queue) => self.drop_queue(queue),
            Work::Maintain => self.maintain(),
            Work::Repair(file) => {
                let queues_dir = self.shared.queues_dir();
                let (fs, sync) = (self.shared.fs.as_ref(), self.shared.sync());
                repair(fs, sync, &queues_dir, &self.shared.index, file)
            }
        }
    }

    /// `kept` failed (its first job with `error`): this part fails and keeps them for the retry.
    fn fail(&mut self, error: StoreError, kept: VecDeque<Work>) {
        self.shared.fail(Part::Background, error.to_string());
        match self.fault.as_mut() {
            Some(fault) => {
                fault.kept = kept;
                fault.backoff.again();
            }
            None => {
                let config = &self.shared.config;
                self.fault = Some(Fault {
                    backoff: Backoff::start(config.retry_after, config.retry_max),
                    kept,
                });
            }
        }
    }

    /// A retry is due: repair the segment state, then run the kept jobs in order; healthy once all succeed.
    fn retry(&mut self) {
        let Some(fault) = self.fault.as_mut() else {
            return;
        };
        let mut kept = std::mem::take(&mut fault.kept);
        if let Err(error) = self.heal() {
            tracing::info!(%error, "message store: the segment files cannot be repaired yet; retrying");
            return self.fail(error, kept);
        }
        while let Some(work) = kept.pop_front() {
            if let Err(error) = self.work(work) {
                tracing::info!(%error, "message store: background work still fails; retrying");
                kept.push_front(work);
                return self.fail(error, kept);
            }
        }
        self.fault = None;
        self.shared.heal(Part::Background);
    }

    /// Brings the files back to a state every job can continue from: every segment appended to since the last
    /// successful sync is cut back to its length then (its tail may be torn, or its pages dropped by a failed
    /// fsync), the acks carried into those appends are handed back to be carried again, and every directory the
    /// store writes in is synced (an entry created, renamed or removed when the failure struck may not be durable).
    fn heal(&mut self) -> Result<(), StoreError> {
        self.segments.reset(&self.shared.index)?;
        if self.shared.sync() {
            let mut dirs = vec![self.shared.wal_dir(), self.shared.queues_dir()];
            dirs.extend(self.segments.queue_dirs());
            for dir in dirs {
                match self.shared.fs.sync_dir(&dir) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    other => other.map_err(StoreError::io("sync_dir", &dir))?,
                }
            }
        }
        self.segments.clear_dirty_dirs();
        Ok(())
    }

    /// Moves the live messages of sealed WAL file `file` into segments and deletes it. Order: write the pending
    /// segment acks and the copies, fsync every segment and directory touched, switch the index to the copies, then
    /// delete the WAL file and fsync the WAL directory. A crash anywhere leaves either the WAL file or durable copies
    /// (or both: recovery prefers the segment copy).
    fn retire(&mut self, file: FileId) -> Result<(), StoreError> {
        self.carry_acks()?;
        let Some((handle, path)) = self.file(file) else {
            return Ok(());
        };
        let moved = self.copy_live(file, handle.as_ref(), &path)?;
        self.segments.sync(&self.shared.index)?;
        self.carry_keys(file)?;
        {
            let mut idx = lock(&self.shared.index);
            for (queue, msg_id, from, to) in moved {
                idx.relocate(queue, msg_id, from, to);
            }
            idx.remove_file(file);
        }
        remove_if_present(self.shared.fs.remove_file(&path))
            .map_err(StoreError::io("remove_file", &path))?;
        if self.shared.sync() {
            let dir = self.shared.wal_dir();
            self.shared
                .fs
                .sync_dir(&dir)
                .map_err(StoreError::io("sync_dir", &dir))?;
        }
        bump(&self.shared.counters.wal_files_retired, 1);
        self.maintain()
    }

    /// Writes the live deduplication keys whose records are in WAL file `file` again, through the WAL writer, and
    /// waits until they are durable: only then may `file` go. Bounded by the owners' capacities, expired and
    /// evicted keys are never carried. Fails (and the retire is kept for later) while the writer has failed.
    fn carry_keys(&self, file: FileId) -> Result<(), StoreError> {
        let keys = lock(&self.shared.dedup).live_in(file, dedup_keys::now_ms());
        if keys.is_empty() {
            return Ok(());
        }
        let (done, durable) = mpsc::sync_channel(1);
        if self
            .shared
            .inbox
            .push(Op::CarryKeys { keys, done })
            .is_some()
        {
            return Err(StoreError::Closed);
        }
        durable.recv().unwrap_or(Err(StoreError::Closed))
    }

    fn file(&self, file: FileId) -> Option<(Arc<dyn FileHandle>, PathBuf)> {
        lock(&self.shared.index)
            .files
            .get(&file)
            .map(|f| (f.handle.clone(), f.path.clone()))
    }

    /// Appends a copy of every message of the WAL file that some queue still points at to that queue's segment.
    /// Returns (queue, msg id, old location, new location) for each copy.
    fn copy_live(
        &mut self,
        file: FileId,
        handle: &dyn FileHandle,
        path: &std::path::Path,
    ) -> Result<Vec<(QueueId, u64, Loc, Loc)>, StoreError> {
        let corrupt = |offset, reason| StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        let mut moved = Vec::new();
        let mut scanner = Scanner::new(handle).map_err(StoreError::io("read", path))?;
        loop {
            let r = match scanner
                .next_record()
                .map_err(StoreError::io("read", path))?
            {
                Step::End => break,
                // A sealed file was written whole (and recovered files were cut at their last good record): damage
                // here is new, so keep the file rather than lose what follows.
                Step::Bad(b) => return Err(corrupt(b.offset, b.reason)),
                Step::Record(r) => r,
            };
            let Some(layout) = Kind::from_byte(r.kind).and_then(Kind::publish_layout) else {
                continue;
            };
            let (queues, blob_at) =
                record::parse_publish(r.payload).map_err(|e| corrupt(r.offset, e))?;
            let blob = &r.payload[blob_at..];
            let msg_id = record::blob_summary(blob, layout)
                .map_err(|e| corrupt(r.offset, e))?
                .msg_id;
            let from = Loc {
                file,
                len: r.len,
                offset: r.offset,
            };
            let live: Vec<QueueId> = {
                let idx = lock(&self.shared.index);
                queues
                    .into_iter()
                    .filter(|q| idx.is_at(*q, msg_id, from))
                    .collect()
            };
            for queue in live {
                let to = self
                    .segments
                    .append_message(&self.shared.index, queue, blob, layout)?;
                moved.push((queue, msg_id, from, to));
            }
        }
        Ok(moved)
    }

    /// Appends the pending acks of segment messages to their segments as SegmentAck records (made durable by the
    /// caller's `segments.sync`). Acks of segments deleted meanwhile are moot and dropped. If an append fails, the
    /// acks not yet appended go back to the pending list (those appended are handed back by `SegmentSet::reset`).
    pub(super) fn carry_acks(&mut self) -> Result<(), StoreError> {
        let mut by_file: HashMap<FileId, AckBatch> = HashMap::new();
        {
            let mut idx = lock(&self.shared.index);
            let pending = std::mem::take(&mut idx.pending_acks);
            for (file, msg_id) in pending {
                if let Some(f) = idx.files.get(&file) {
                    by_file
                        .entry(file)
                        .or_insert_with(|| (f.handle.clone(), f.path.clone(), Vec::new()))
                        .2
                        .push(msg_id);
                }
            }
        }
        let mut batches = by_file.into_iter();
        while let Some((file, (handle, path, ids))) = batches.next() {
            if let Err(e) = self.segments.append_acks(file, handle, path, &ids) {
                let mut idx = lock(&self.shared.index);
                for (file, (_, _, ids)) in batches {
                    idx.pending_acks
                        .extend(ids.into_iter().map(|id| (file, id)));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes every file of a dropped queue and its directory. The drop record is already durable in the WAL.
    fn drop_queue(&mut self, queue: QueueId) -> Result<(), StoreError> {
        self.segments.sync(&self.shared.index)?;
        {
            let mut idx = lock(&self.shared.index);
            for (_, file) in idx.segments_of(queue) {
                idx.remove_file(file);
            }
        }
        self.segments.forget_queue(queue);
        let queues_dir = self.shared.queues_dir();
        remove_queue_dir(self.shared.fs.as_ref(), &queue_dir(&queues_dir, queue))?;
        if self.shared.sync() {
            self.shared
                .fs
                .sync_dir(&queues_dir)
                .map_err(StoreError::io("sync_dir", &queues_dir))?;
        }
        Ok(())
    }
}

/// Adds `work` to the jobs kept for the retry; one maintenance pass at the end covers any number asked for.
fn keep(kept: &mut VecDeque<Work>, work: Work) {
    if work == Work::Maintain {
        kept.retain(|w| *w != Work::Maintain);
    }
    kept.push_back(work);
}

/// Removes a queue directory and everything in it (no sync; the caller syncs the parent).
pub(crate) fn remove_queue_dir(
    fs: &dyn FileSystem,
    dir: &std::path::Path,
) -> Result<(), StoreError> {
    let names = match fs.list(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list", dir)(e)),
    };
    for name in names {
        let p = dir.join(name);
        remove_if_present(fs.remove_file(&p)).map_err(StoreError::io("remove_file", &p))?;
    }
    remove_if_present(fs.remove_dir(dir)).map_err(StoreError::io("remove_dir", dir))
}

/// Treats "already gone" as success.
pub(crate) fn remove_if_present(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
