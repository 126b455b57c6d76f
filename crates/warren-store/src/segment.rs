//! Per-queue segment files as the background thread writes them: the current (appendable) segment of each queue,
//! rolling to a new one past `segment_size`, buffered appends, the set of files and directories to fsync before
//! a WAL file may be deleted, and, after a failure, cutting the files appended to back to their synced length.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fs::{append_all, FileHandle, FileSystem};
use super::index::{FileId, FileKind, Index, Loc};
use super::record::{self, file_header, BlobLayout, Kind, FILE_HEADER_LEN, SEGMENT_MAGIC};
use super::{lock, QueueId, StoreError};

/// Buffered segment bytes are written out past this size.
const FLUSH_AT: usize = 1 << 20;

pub(crate) fn queue_dir(queues_dir: &Path, queue: QueueId) -> PathBuf {
    queues_dir.join(queue.to_string())
}

pub(crate) fn segment_path(queues_dir: &Path, queue: QueueId, seq: u64) -> PathBuf {
    queue_dir(queues_dir, queue).join(format!("{seq:020}.seg"))
}

/// The file a compaction writes before renaming it over the segment.
pub(crate) fn compaction_path(queues_dir: &Path, queue: QueueId, seq: u64) -> PathBuf {
    queue_dir(queues_dir, queue).join(format!("{seq:020}.tmp"))
}

/// Parses `<seq>.seg`.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

struct Current {
    file: FileId,
    handle: Arc<dyn FileHandle>,
    path: PathBuf,
    /// Bytes in the file plus bytes buffered.
    len: u64,
    buf: Vec<u8>,
}

/// A file appended to since the last successful `sync`.
struct Touched {
    handle: Arc<dyn FileHandle>,
    path: PathBuf,
    /// Its length before the first of those appends: synced, so what `reset` cuts it back to.
    synced_len: u64,
}

pub(crate) struct SegmentSet {
    fs: Arc<dyn FileSystem>,
    queues_dir: PathBuf,
    segment_size: u64,
    sync: bool,
    current: HashMap<QueueId, Current>,
    next_seq: HashMap<QueueId, u64>,
    /// Queues whose directory exists.
    dirs: HashSet<QueueId>,
    /// Files appended to since the last `sync`, and directories whose entries changed.
    touched: HashMap<FileId, Touched>,
    dirty_dirs: BTreeSet<PathBuf>,
    /// Message bytes appended per file since the last `sync`, added to the index's `total_bytes` there.
    added: HashMap<FileId, u64>,
    /// Acks of segment messages appended as SegmentAck records since the last `sync` (file, msg id): handed back
    /// to the index's pending acks if those appends are cut by `reset`.
    carried: Vec<(FileId, u64)>,
}

impl SegmentSet {
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        queues_dir: PathBuf,
        segment_size: u64,
        sync: bool,
    ) -> SegmentSet {
        SegmentSet {
            fs,
            queues_dir,
            segment_size,
            sync,
            current: HashMap::new(),
            next_seq: HashMap::new(),
            dirs: HashSet::new(),
            touched: HashMap::new(),
            dirty_dirs: BTreeSet::new(),
            added: HashMap::new(),
            carried: Vec::new(),
        }
    }

    /// Recovery found a queue directory whose segments are numbered below `next_seq`.
    pub(crate) fn note_queue(&mut self, queue: QueueId, next_seq: u64) {
        self.dirs.insert(queue);
        let n = self.next_seq.entry(queue).or_insert(1);
        *n = (*n).max(next_seq);
    }

    /// Recovery found an intact last segment that can take more appends.
    pub(crate) fn set_current(
        &mut self,
        queue: QueueId,
        file: FileId,
        handle: Arc<dyn FileHandle>,
        path: PathBuf,
        len: u64,
    ) {
        self.current.insert(
            queue,
            Current {
                file,
                handle,
                path,
                len,
                buf: Vec::new(),
            },
        );
    }

    pub(crate) fn is_current(&self, file: FileId) -> bool {
        self.current.values().any(|c| c.file == file)
    }

    /// Stops appending to `file` (it is being deleted or was compacted).
    pub(crate) fn forget_file(&mut self, file: FileId) {
        self.current.retain(|_, c| c.file != file);
        self.touched.remove(&file);
        self.added.remove(&file);
    }

    /// The queue was dropped: forget its segments and directory.
    pub(crate) fn forget_queue(&mut self, queue: QueueId) {
        if let Some(c) = self.current.remove(&queue) {
            self.touched.remove(&c.file);
            self.added.remove(&c.file);
        }
        self.dirs.remove(&queue);
        self.dirty_dirs.remove(&queue_dir(&self.queues_dir, queue));
    }

    /// Starts a new segment for `queue`: creates its directory if needed, the file, and its header (in the buffer).
    fn open_new(&mut self, index: &Mutex<Index>, queue: QueueId) -> Result<(), StoreError> {
        self.flush(queue)?;
        let dir = queue_dir(&self.queues_dir, queue);
        if !self.dirs.contains(&queue) {
            self.fs
                .create_dir_all(&dir)
                .map_err(StoreError::io("create_dir", &dir))?;
            self.dirs.insert(queue);
            self.dirty_dirs.insert(self.queues_dir.clone());
        }
        let seq = self.next_seq.get(&queue).copied().unwrap_or(1);
        self.next_seq.insert(queue, seq + 1);
        let path = segment_path(&self.queues_dir, queue, seq);
        let handle = self
            .fs
            .create(&path)
            .map_err(StoreError::io("create", &path))?;
        self.dirty_dirs.insert(dir);
        let file = lock(index).add_file(
            FileKind::Segment { queue, seq },
            path.clone(),
            handle.clone(),
        );
        let buf = file_header(SEGMENT_MAGIC).to_vec();
        self.current.insert(
            queue,
            Current {
                file,
                handle,
                path,
                len: FILE_HEADER_LEN,
                buf,
            },
        );
        Ok(())
    }

    /// Appends a message record holding `blob` (laid out as `layout` says) to `queue`'s current segment and returns
    /// where it will be.
    pub(crate) fn append_message(
        &mut self,
        index: &Mutex<Index>,
        queue: QueueId,
        blob: &[u8],
        layout: BlobLayout,
    ) -> Result<Loc, StoreError> {
        let full = self.current.get(&queue).map(|c| c.len >= self.segment_size);
        if full != Some(false) {
            self.open_new(index, queue)?;
        }
        let Some(cur) = self.current.get_mut(&queue) else {
            return Err(StoreError::Failed {
                cause: "segment vanished while appending".into(),
            });
        };
        let offset = cur.len;
        let before = cur.buf.len();
        record::push_record(&mut cur.buf, layout.message_kind(), &[blob]);
        let len = (cur.buf.len() - before) as u32;
        cur.len += len as u64;
        let file = cur.file;
        *self.added.entry(file).or_default() += len as u64;
        // Everything in the file itself was synced: a sync leaves no buffer, and a new segment's header is still in
        // its buffer.
        let on_disk = cur.len - cur.buf.len() as u64;
        self.touched.entry(file).or_insert_with(|| Touched {
            handle: cur.handle.clone(),
            path: cur.path.clone(),
            synced_len: on_disk,
        });
        if cur.buf.len() >= FLUSH_AT {
            self.flush(queue)?;
        }
        Ok(Loc { file, len, offset })
    }

    /// Appends a SegmentAck record for `ids` to segment `file`.
    pub(crate) fn append_acks(
        &mut self,
        file: FileId,
        handle: Arc<dyn FileHandle>,
        path: PathBuf,
        ids: &[u64],
    ) -> Result<(), StoreError> {
        // Counted as carried first, so that whatever fails below, `reset` hands them back.
        self.carried.extend(ids.iter().map(|id| (file, *id)));
        if let std::collections::hash_map::Entry::Vacant(entry) = self.touched.entry(file) {
            let synced_len = match self.current.values().find(|c| c.file == file) {
                Some(cur) => cur.len - cur.buf.len() as u64,
                None => handle.size().map_err(StoreError::io("read", &path))?,
            };
            entry.insert(Touched {
                handle: handle.clone(),
                path: path.clone(),
                synced_len,
            });
        }
        for chunk in ids.chunks(record::MAX_IDS_PER_ACK) {
            let payload = record::ack_payload(None, chunk);
            if let Some(cur) = self.current.values_mut().find(|c| c.file == file) {
                let before = cur.buf.len();
                record::push_record(&mut cur.buf, Kind::SegmentAck, &[&payload]);
                cur.len += (cur.buf.len() - before) as u64;
            } else {
                let mut bytes = Vec::with_capacity(payload.len() + record::RECORD_HEADER_LEN);
                record::push_record(&mut bytes, Kind::SegmentAck, &[&payload]);
                append_all(handle.as_ref(), &[&bytes]).map_err(StoreError::io("append", &path))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, queue: QueueId) -> Result<(), StoreError> {
        if let Some(cur) = self.current.get_mut(&queue) {
            if !cur.buf.is_empty() {
                append_all(cur.handle.as_ref(), &[&cur.buf])
                    .map_err(StoreError::io("append", &cur.path))?;
                cur.buf.clear();
            }
        }
        Ok(())
    }

    /// Writes every buffer, fsyncs every file appended to and every directory changed since the last call, then
    /// credits the appended message bytes in the index. After Ok, everything appended so far is durable.
    pub(crate) fn sync(&mut self, index: &Mutex<Index>) -> Result<(), StoreError> {
        let queues: Vec<QueueId> = self.current.keys().copied().collect();
        for q in queues {
            self.flush(q)?;
        }
        if self.sync {
            for t in self.touched.values() {
                t.handle
                    .sync_data()
                    .map_err(StoreError::io("sync_data", &t.path))?;
            }
            // New queue directories (entries in `queues/`) and new segment files (entries in a queue directory):
            // their order does not matter, since the WAL file is deleted only after every one of these succeeded.
            for dir in &self.dirty_dirs {
                self.fs
                    .sync_dir(dir)
                    .map_err(StoreError::io("sync_dir", dir))?;
            }
        }
        self.touched.clear();
        self.dirty_dirs.clear();
        self.carried.clear();
        let mut idx = lock(index);
        for (file, n) in self.added.drain() {
            if let Some(f) = idx.files.get_mut(&file) {
                f.total_bytes += n;
            }
        }
        Ok(())
    }

    /// After a failure: cuts every file appended to since the last successful `sync` back to its length then, and
    /// makes that length durable. Nothing in the cut bytes is pointed at (the index moves to a copy only after the
    /// sync), but they may hold a torn record, or, after a failed fsync, pages Linux dropped: appending after them
    /// would leave a hole that recovery takes for damage. Buffered bytes are dropped with them, the appends'
    /// accounting is forgotten, and the acks they carried go back to the index's pending acks. A file whose cut
    /// fails stays listed for the next attempt.
    pub(crate) fn reset(&mut self, index: &Mutex<Index>) -> Result<(), StoreError> {
        let files: Vec<FileId> = self.touched.keys().copied().collect();
        for file in files {
            let Some(t) = self.touched.get(&file) else {
                continue;
            };
            t.handle
                .set_len(t.synced_len)
                .map_err(StoreError::io("set_len", &t.path))?;
            if self.sync {
                t.handle
                    .sync_data()
                    .map_err(StoreError::io("sync_data", &t.path))?;
            }
            let synced_len = t.synced_len;
            self.touched.remove(&file);
            self.added.remove(&file);
            if let Some(cur) = self.current.values_mut().find(|c| c.file == file) {
                // A new segment cut back to nothing starts again with its header.
                cur.buf = match synced_len {
                    0 => file_header(SEGMENT_MAGIC).to_vec(),
                    _ => Vec::new(),
                };
                cur.len = synced_len + cur.buf.len() as u64;
            }
        }
        let mut idx = lock(index);
        for (file, id) in self.carried.drain(..) {
            if idx.files.contains_key(&file) {
                idx.pending_acks.push((file, id));
            }
        }
        Ok(())
    }

    /// The directories of the queues that have segments.
    pub(crate) fn queue_dirs(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|q| queue_dir(&self.queues_dir, *q))
            .collect()
    }

    /// Every directory was just synced.
    pub(crate) fn clear_dirty_dirs(&mut self) {
        self.dirty_dirs.clear();
    }
}
