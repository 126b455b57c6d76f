//! Segment maintenance on the background thread: delete segments no queue points into any more, and compact
//! mostly-acked ones by rewriting their live records into a new file that is renamed over the old one. The same
//! rewrite repairs a damaged segment at recovery.
//!
//! Compaction keeps the segment's name and sequence number (write `<seq>.tmp`, fsync, rename over `<seq>.seg`, fsync
//! the directory), so a crash leaves either the old file or the new one, never both: no message is duplicated.

use std::path::Path;
use std::sync::Mutex;

use super::background::{remove_if_present, Background};
use super::fs::{append_all, read_exact_at, FileSystem};
use super::index::{FileId, FileKind, Index, Loc};
use super::record::{self, file_header, Kind, SEGMENT_MAGIC};
use super::scan::{Scanner, Step};
use super::segment::{compaction_path, queue_dir};
use super::shared::bump;
use super::{lock, StoreError};

/// Rewritten bytes are written out past this size.
const FLUSH_AT: usize = 1 << 20;

/// A sealed segment is compacted once more than this share of its message bytes is acked ...
const COMPACT_DEAD_NUM: u64 = 3;
const COMPACT_DEAD_DEN: u64 = 4;

/// ... and it has at least this many message bytes (a quarter of a full segment): compacting small files buys little.
pub(crate) fn compaction_threshold(segment_size: u64) -> u64 {
    (segment_size / 4).max(1)
}

impl Background {
    /// Deletes segments with no live message and compacts sealed segments that are mostly acked.
    pub(super) fn maintain(&mut self) -> Result<(), StoreError> {
        self.segments.sync(&self.shared.index)?;
        let threshold = compaction_threshold(self.shared.config.segment_size);
        let (empty, candidates) = {
            let mut idx = lock(&self.shared.index);
            idx.segment_emptied = false;
            let mut empty = Vec::new();
            let mut candidates = Vec::new();
            for (id, f) in &idx.files {
                if !matches!(f.kind, FileKind::Segment { .. }) {
                    continue;
                }
                if f.live_count == 0 {
                    empty.push(*id);
                } else if !self.segments.is_current(*id)
                    && f.total_bytes >= threshold
                    && f.live_bytes * COMPACT_DEAD_DEN
                        < f.total_bytes * (COMPACT_DEAD_DEN - COMPACT_DEAD_NUM)
                {
                    candidates.push(*id);
                }
            }
            (empty, candidates)
        };
        let mut dirs = std::collections::BTreeSet::new();
        for file in empty {
            let Some(entry) = lock(&self.shared.index).remove_file(file) else {
                continue;
            };
            self.segments.forget_file(file);
            remove_if_present(self.shared.fs.remove_file(&entry.path))
                .map_err(StoreError::io("remove_file", &entry.path))?;
            if let Some(dir) = entry.path.parent() {
                dirs.insert(dir.to_path_buf());
            }
            bump(&self.shared.counters.segments_deleted, 1);
        }
        if self.shared.sync() {
            for dir in dirs {
                self.shared
                    .fs
                    .sync_dir(&dir)
                    .map_err(StoreError::io("sync_dir", &dir))?;
            }
        }
        for file in candidates {
            let queues_dir = self.shared.queues_dir();
            let fs = self.shared.fs.as_ref();
            if rewrite_in_place(
                fs,
                self.shared.sync(),
                &queues_dir,
                &self.shared.index,
                file,
                false,
            )? {
                bump(&self.shared.counters.segments_compacted, 1);
            } else {
                tracing::warn!(file, "segment has a damaged record; not compacted");
            }
        }
        Ok(())
    }
}

/// Rewrites segment `file` keeping only the message records the index still points at, then switches the index to
/// the new copy. With `allow_damage` false, a damaged record stops the rewrite (returns false, old file untouched);
/// with it true (repair at recovery), the rewrite keeps what precedes the damage.
pub(crate) fn rewrite_in_place(
    fs: &dyn FileSystem,
    sync: bool,
    queues_dir: &Path,
    index: &Mutex<Index>,
    file: FileId,
    allow_damage: bool,
) -> Result<bool, StoreError> {
    let (old, path, queue, seq) = {
        let idx = lock(index);
        match idx.files.get(&file) {
            Some(f) => match f.kind {
                FileKind::Segment { queue, seq } => (f.handle.clone(), f.path.clone(), queue, seq),
                FileKind::Wal { .. } => return Ok(false),
            },
            None => return Ok(false),
        }
    };
    let tmp = compaction_path(queues_dir, queue, seq);
    let new = fs.create(&tmp).map_err(StoreError::io("create", &tmp))?;
    let mut buf = file_header(SEGMENT_MAGIC).to_vec();
    let mut written = 0u64;
    let mut copied = Vec::new();
    let mut total = 0u64;
    let mut scanner = Scanner::new(old.as_ref()).map_err(StoreError::io("read", &path))?;
    loop {
        let r = match scanner
            .next_record()
            .map_err(StoreError::io("read", &path))?
        {
            Step::End => break,
            Step::Bad(_) if allow_damage => break,
            Step::Bad(_) => {
                remove_if_present(fs.remove_file(&tmp))
                    .map_err(StoreError::io("remove_file", &tmp))?;
                return Ok(false);
            }
            Step::Record(r) => r,
        };
        let Some(layout) = Kind::from_byte(r.kind).and_then(Kind::message_layout) else {
            continue;
        };
        let Ok(meta) = record::blob_summary(r.payload, layout) else {
            continue;
        };
        let from = Loc {
            file,
            len: r.len,
            offset: r.offset,
        };
        if !lock(index).is_at(queue, meta.msg_id, from) {
            continue;
        }
        let to = Loc {
            file,
            len: r.len,
            offset: written + buf.len() as u64,
        };
        record::push_record(&mut buf, layout.message_kind(), &[r.payload]);
        copied.push((meta.msg_id, from, to));
        total += r.len as u64;
        if buf.len() >= FLUSH_AT {
            append_all(new.as_ref(), &[&buf]).map_err(StoreError::io("append", &tmp))?;
            written += buf.len() as u64;
            buf.clear();
        }
    }
    append_all(new.as_ref(), &[&buf]).map_err(StoreError::io("append", &tmp))?;
    if sync {
        new.sync_data().map_err(StoreError::io("sync_data", &tmp))?;
    }
    fs.rename(&tmp, &path)
        .map_err(StoreError::io("rename", &tmp))?;
    // The path names the new file from here on, so the index follows it before the directory sync: if that sync
    // fails, the background thread's repair syncs the directory again (either file, old or new, holds every live
    // message, so a crash in between loses nothing).
    {
        let mut idx = lock(index);
        if let Some(f) = idx.files.get_mut(&file) {
            f.handle = new;
            f.total_bytes = total;
        }
        for (msg_id, from, to) in copied {
            idx.relocate(queue, msg_id, from, to);
        }
    }
    if sync {
        let dir = queue_dir(queues_dir, queue);
        fs.sync_dir(&dir)
            .map_err(StoreError::io("sync_dir", &dir))?;
    }
    Ok(true)
}

/// Keeps a raw copy of a damaged segment as `<seq>.corrupt` for the operator, then rewrites the segment with the
/// live records that precede the damage, so the queue continues from a clean file.
pub(crate) fn repair(
    fs: &dyn FileSystem,
    sync: bool,
    queues_dir: &Path,
    index: &Mutex<Index>,
    file: FileId,
) -> Result<(), StoreError> {
    let Some((handle, path)) = lock(index)
        .files
        .get(&file)
        .map(|f| (f.handle.clone(), f.path.clone()))
    else {
        return Ok(());
    };
    let copy = path.with_extension("corrupt");
    let out = fs.create(&copy).map_err(StoreError::io("create", &copy))?;
    let len = handle.size().map_err(StoreError::io("read", &path))?;
    let mut at = 0;
    let mut buf = vec![0u8; 1 << 20];
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        read_exact_at(handle.as_ref(), &mut buf[..n], at).map_err(StoreError::io("read", &path))?;
        append_all(out.as_ref(), &[&buf[..n]]).map_err(StoreError::io("append", &copy))?;
        at += n as u64;
    }
    if sync {
        out.sync_data()
            .map_err(StoreError::io("sync_data", &copy))?;
    }
    rewrite_in_place(fs, sync, queues_dir, index, file, true)?;
    Ok(())
}
