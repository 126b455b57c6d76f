//! The background thread: retires sealed WAL files (copies their still-live messages into per-queue segments,
//! writes pending segment acks, fsyncs, then deletes the WAL file), removes the files of dropped queues, and runs
//! segment maintenance (see compaction.rs).
//!
//! Why a second thread and not the WAL writer: retiring a 64 MiB WAL file reads it back and may write tens of MiB
//! with several fsyncs; on the writer thread that would stall every publish for that long. Here it overlaps with
//! publishing, and the two threads only meet on the index mutex, never held across I/O.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use super::fs::{FileHandle, FileSystem};
use super::index::{FileId, Loc};
use super::record::{self, Kind};
use super::scan::{Scanner, Step};
use super::segment::{queue_dir, SegmentSet};
use super::shared::{bump, Job, Shared};
use super::{lock, QueueId, StoreError};

/// The acks bound for one segment: its handle, its path, the msg ids.
type AckBatch = (Arc<dyn FileHandle>, PathBuf, Vec<u64>);

pub(crate) struct Background {
    pub(super) shared: Arc<Shared>,
    pub(super) segments: SegmentSet,
}

impl Background {
    pub(crate) fn new(shared: Arc<Shared>, segments: SegmentSet) -> Background {
        Background { shared, segments }
    }

    /// The thread body. After a failure it does no more I/O but still answers `Settle`.
    pub(crate) fn run(mut self, jobs: mpsc::Receiver<Job>) {
        for job in jobs {
            let result = match job {
                Job::Stop => break,
                Job::Settle(done) => {
                    let _ = done.send(());
                    Ok(())
                }
                _ if self.shared.is_failed() => Ok(()),
                Job::Retire(file) => self.retire(file),
                Job::DropQueue(queue) => self.drop_queue(queue),
                Job::Maintain => self.maintain(),
            };
            if let Err(e) = result {
                self.shared.fail(e.to_string());
            }
        }
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
    /// caller's `segments.sync`). Acks of segments deleted meanwhile are moot and dropped.
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
        for (file, (handle, path, ids)) in by_file {
            self.segments.append_acks(file, handle, path, &ids)?;
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
