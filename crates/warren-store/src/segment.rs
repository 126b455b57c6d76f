//! Per-queue segment files as the background thread writes them: the current (appendable) segment of each queue,
//! rolling to a new one past `segment_size`, buffered appends, and the set of files and directories to fsync before
//! a WAL file may be deleted.

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
    touched: HashMap<FileId, (Arc<dyn FileHandle>, PathBuf)>,
    dirty_dirs: BTreeSet<PathBuf>,
    /// Message bytes appended per file since the last `sync`, added to the index's `total_bytes` there.
    added: HashMap<FileId, u64>,
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
        self.touched
            .insert(file, (cur.handle.clone(), cur.path.clone()));
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
        self.touched.insert(file, (handle, path));
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
            for (handle, path) in self.touched.values() {
                handle
                    .sync_data()
                    .map_err(StoreError::io("sync_data", path))?;
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
        let mut idx = lock(index);
        for (file, n) in self.added.drain() {
            if let Some(f) = idx.files.get_mut(&file) {
                f.total_bytes += n;
            }
        }
        Ok(())
    }
}
