//! Opening a store: read every segment (queue by queue, oldest first), then replay every WAL file in order, cutting
//! torn tails at the last good record, and rebuild the location index. docs/storage-format.md states the procedure
//! and why each step is safe.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::background::{remove_if_present, remove_queue_dir};
use super::compaction::repair;
use super::dedup_keys::{self, DedupKeys, FoundKeys};
use super::fs::{FileHandle, FileSystem};
use super::index::{FileId, FileKind, Index, Loc};
use super::record::{self, Kind, FORMAT_VERSION, SEGMENT_MAGIC, WAL_MAGIC};
use super::scan::{check_header, HeaderState, Scanner, Step};
use super::segment::{parse_segment_name, queue_dir, segment_path, SegmentSet};
use super::wal::{parse_wal_name, wal_path};
use super::{IndexEntry, MessageMeta, QueueId, Recovery, StoreConfig, StoreError, SyncMode};

/// What `Store::open` continues from.
pub(crate) struct Recovered {
    pub index: Index,
    pub segments: SegmentSet,
    /// Recovered WAL files, oldest first, for the background thread to retire.
    pub sealed_wal: Vec<FileId>,
    /// Damaged segments whose repair failed (short of space): the background thread repairs them later.
    pub unrepaired: Vec<FileId>,
    pub next_wal_seq: u64,
    pub report: Recovery,
    /// The live deduplication keys of the durable owners, with the WAL files their records are in.
    pub dedup: DedupKeys,
}

#[derive(Clone, Copy)]
struct Found {
    loc: Loc,
    body_size: u32,
    meta: Option<MessageMeta>,
}

struct Recoverer<'a> {
    fs: &'a Arc<dyn FileSystem>,
    config: &'a StoreConfig,
    durable: HashSet<QueueId>,
    index: Index,
    found: HashMap<QueueId, BTreeMap<u64, Found>>,
    segments: SegmentSet,
    report: Recovery,
    damaged: Vec<FileId>,
    dirty_dirs: BTreeSet<PathBuf>,
    keys: FoundKeys,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
    StoreError::io(op, path)
}

pub(crate) fn recover(
    config: &StoreConfig,
    fs: &Arc<dyn FileSystem>,
    durable_queues: &[QueueId],
) -> Result<Recovered, StoreError> {
    let sync = config.sync == SyncMode::Always;
    let wal_dir = config.dir.join("wal");
    let queues_dir = config.dir.join("queues");
    fs.create_dir_all(&wal_dir)
        .map_err(io_err("create_dir", &wal_dir))?;
    fs.create_dir_all(&queues_dir)
        .map_err(io_err("create_dir", &queues_dir))?;
    let mut r = Recoverer {
        fs,
        config,
        durable: durable_queues.iter().copied().collect(),
        index: Index::default(),
        found: HashMap::new(),
        segments: SegmentSet::new(fs.clone(), queues_dir.clone(), config.segment_size, sync),
        report: Recovery::default(),
        damaged: Vec::new(),
        dirty_dirs: BTreeSet::new(),
        keys: FoundKeys::default(),
    };
    // The store's directory and its ancestors, in case this open created them.
    let ancestors = config.dir.ancestors().map(|a| {
        if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        }
    });
    r.dirty_dirs.extend(ancestors.map(Path::to_path_buf));
    r.read_segments(&queues_dir)?;
    let (sealed_wal, next_wal_seq) = r.replay_wal(&wal_dir)?;
    r.build_index();
    let durable = &r.durable;
    let dedup = std::mem::take(&mut r.keys)
        .into_keys(|owner| durable.contains(&owner), dedup_keys::now_ms());
    r.report.dedup = dedup.report(dedup_keys::now_ms());
    if sync {
        for dir in &r.dirty_dirs {
            match fs.sync_dir(dir) {
                // A queue dropped before it ever had a segment has no directory: nothing to make durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other.map_err(io_err("sync_dir", dir))?,
            }
        }
    }
    let index = Mutex::new(r.index);
    let mut unrepaired = Vec::new();
    for file in std::mem::take(&mut r.damaged) {
        // A repair writes a copy and a new file: on a full disk it waits for the background thread. Meanwhile the
        // queue serves the good records, which the index points at, and nothing is appended to the damaged file but
        // acks (which the next recovery may not see: a redelivery, never a loss).
        match repair(fs.as_ref(), sync, &queues_dir, &index, file) {
            Ok(()) => {}
            // A file that cannot be read stops the open, as any unreadable file does.
            Err(error @ StoreError::Io { op: "read", .. }) => return Err(error),
            Err(error) => {
                tracing::warn!(%error, "cannot repair a damaged segment now; the store will retry");
                unrepaired.push(file);
            }
        }
    }
    let index = index.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Recovered {
        index,
        segments: r.segments,
        sealed_wal,
        unrepaired,
        next_wal_seq,
        report: r.report,
        dedup,
    })
}

impl Recoverer<'_> {
    fn read_segments(&mut self, queues_dir: &Path) -> Result<(), StoreError> {
        for name in self
            .fs
            .list(queues_dir)
            .map_err(io_err("list", queues_dir))?
        {
            let dir = queues_dir.join(&name);
            let Ok(queue) = name.parse::<QueueId>() else {
                tracing::warn!(path = %dir.display(), "ignoring unexpected entry in the queues directory");
                continue;
            };
            if !self.durable.contains(&queue) {
                remove_queue_dir(self.fs.as_ref(), &dir)?;
                self.dirty_dirs.insert(queues_dir.to_path_buf());
                continue;
            }
            let mut seqs = Vec::new();
            for f in self.fs.list(&dir).map_err(io_err("list", &dir))? {
                if let Some(seq) = parse_segment_name(&f) {
                    seqs.push(seq);
                } else if f.ends_with(".tmp") {
                    // An unfinished compaction: the segment it was rewriting is still whole.
                    let p = dir.join(&f);
                    remove_if_present(self.fs.remove_file(&p))
                        .map_err(io_err("remove_file", &p))?;
                    self.dirty_dirs.insert(dir.clone());
                }
            }
            seqs.sort_unstable();
            self.segments
                .note_queue(queue, seqs.last().map_or(1, |s| s + 1));
            let mut last = None;
            for seq in seqs {
                last = self.read_segment(queue, seq)?;
            }
            if let Some((file, handle, path, len)) = last {
                if len < self.config.segment_size {
                    self.segments.set_current(queue, file, handle, path, len);
                }
            }
        }
        Ok(())
    }

    /// Reads one segment into `found`; returns it if it is intact and can take more appends (a segment of an older
    /// format version takes none: its header would not cover the record types appended after it).
    #[allow(clippy::type_complexity)]
    fn read_segment(
        &mut self,
        queue: QueueId,
        seq: u64,
    ) -> Result<Option<(FileId, Arc<dyn FileHandle>, PathBuf, u64)>, StoreError> {
        let path = segment_path(&self.segments_dir(), queue, seq);
        let handle = self.fs.open(&path).map_err(io_err("open", &path))?;
        let len = handle.size().map_err(io_err("read", &path))?;
        let header = check_header(handle.as_ref(), SEGMENT_MAGIC).map_err(io_err("read", &path))?;
        let file = self.index.add_file(
            FileKind::Segment { queue, seq },
            path.clone(),
            handle.clone(),
        );
        let version = match header {
            HeaderState::Valid { version } => version,
            HeaderState::Torn => {
                self.index.remove_file(file);
                remove_if_present(self.fs.remove_file(&path))
                    .map_err(io_err("remove_file", &path))?;
                self.dirty_dirs
                    .insert(queue_dir(&self.segments_dir(), queue));
                self.report.truncated_bytes += len;
                return Ok(None);
            }
            HeaderState::Invalid => {
                self.damage(queue, file, &path, 0, "bad file header");
                return Ok(None);
            }
        };
        let mut scanner = Scanner::new(handle.as_ref()).map_err(io_err("read", &path))?;
        let mut total = 0u64;
        let end = loop {
            let r = match scanner.next_record().map_err(io_err("read", &path))? {
                Step::End => break len,
                Step::Bad(b) if b.at_tail => {
                    handle.set_len(b.offset).map_err(io_err("set_len", &path))?;
                    handle.sync_data().map_err(io_err("sync_data", &path))?;
                    self.report.truncated_bytes += len - b.offset;
                    break b.offset;
                }
                Step::Bad(b) => {
                    self.damage(queue, file, &path, b.offset, b.reason);
                    return Ok(None);
                }
                Step::Record(r) => r,
            };
            let (offset, rec_len) = (r.offset, r.len);
            let kind = Kind::from_byte(r.kind);
            let outcome = match (kind, kind.and_then(Kind::message_layout)) {
                (_, Some(layout)) => record::blob_summary(r.payload, layout).map(|summary| {
                    self.report.max_msg_id = self.report.max_msg_id.max(summary.msg_id);
                    total += rec_len as u64;
                    let loc = Loc {
                        file,
                        len: rec_len,
                        offset,
                    };
                    let msgs = self.found.entry(queue).or_default();
                    msgs.entry(summary.msg_id).or_insert(Found {
                        loc,
                        body_size: summary.body_size,
                        meta: summary.meta,
                    });
                }),
                (Some(Kind::SegmentAck), _) => {
                    record::parse_ack(r.payload, false).map(|(_, ids)| {
                        let msgs = self.found.entry(queue).or_default();
                        for id in ids {
                            self.report.max_msg_id = self.report.max_msg_id.max(id);
                            // An ack in a segment applies only to that segment's own copy.
                            if msgs.get(&id).is_some_and(|f| f.loc.file == file) {
                                msgs.remove(&id);
                            }
                        }
                    })
                }
                _ => Err("unexpected record type in a segment"),
            };
            if let Err(reason) = outcome {
                self.damage(queue, file, &path, offset, reason);
                return Ok(None);
            }
        };
        if let Some(f) = self.index.files.get_mut(&file) {
            f.total_bytes = total;
        }
        Ok((version == FORMAT_VERSION).then_some((file, handle, path, end)))
    }

    fn segments_dir(&self) -> PathBuf {
        self.config.dir.join("queues")
    }

    /// Damage that is not a torn tail: the good prefix is served, the file repaired after recovery.
    fn damage(&mut self, queue: QueueId, file: FileId, path: &Path, offset: u64, reason: &str) {
        let what = format!(
            "segment {} damaged at offset {offset}: {reason}",
            path.display()
        );
        tracing::error!(
            queue,
            "{what}; serving the records before it, keeping a copy as .corrupt"
        );
        self.report.corrupt_queues.push((queue, what));
        self.damaged.push(file);
    }

    /// Replays WAL files oldest first. Returns the files (to retire) and the next sequence number.
    fn replay_wal(&mut self, wal_dir: &Path) -> Result<(Vec<FileId>, u64), StoreError> {
        let mut seqs: Vec<u64> = self
            .fs
            .list(wal_dir)
            .map_err(io_err("list", wal_dir))?
            .iter()
            .filter_map(|n| parse_wal_name(n))
            .collect();
        seqs.sort_unstable();
        let next = seqs.last().map_or(1, |s| s + 1);
        let mut sealed = Vec::new();
        for seq in seqs {
            let path = wal_path(wal_dir, seq);
            let handle = self.fs.open(&path).map_err(io_err("open", &path))?;
            let len = handle.size().map_err(io_err("read", &path))?;
            let header = check_header(handle.as_ref(), WAL_MAGIC).map_err(io_err("read", &path))?;
            if !matches!(header, HeaderState::Valid { .. }) {
                if header == HeaderState::Invalid {
                    tracing::error!(path = %path.display(), "WAL file has a bad header; dropping it");
                }
                remove_if_present(self.fs.remove_file(&path))
                    .map_err(io_err("remove_file", &path))?;
                self.dirty_dirs.insert(wal_dir.to_path_buf());
                self.report.truncated_bytes += len;
                continue;
            }
            let file = self
                .index
                .add_file(FileKind::Wal { seq }, path.clone(), handle.clone());
            self.replay_wal_file(file, handle.as_ref(), &path, len)?;
            sealed.push(file);
        }
        Ok((sealed, next))
    }

    fn replay_wal_file(
        &mut self,
        file: FileId,
        handle: &dyn FileHandle,
        path: &Path,
        len: u64,
    ) -> Result<(), StoreError> {
        let mut scanner = Scanner::new(handle).map_err(io_err("read", path))?;
        loop {
            let bad_at = match scanner.next_record().map_err(io_err("read", path))? {
                Step::End => return Ok(()),
                Step::Bad(b) => b.offset,
                Step::Record(r) => {
                    let loc = Loc {
                        file,
                        len: r.len,
                        offset: r.offset,
                    };
                    match self.apply_wal_record(r.kind, r.payload, loc) {
                        Ok(()) => continue,
                        Err(_) => r.offset,
                    }
                }
            };
            // The WAL is cut at its first bad record, torn or damaged alike: what follows was never confirmed if
            // torn, and cannot be trusted if damaged. Later WAL files are still replayed.
            tracing::warn!(path = %path.display(), offset = bad_at, "truncating the WAL at its first bad record");
            handle.set_len(bad_at).map_err(io_err("set_len", path))?;
            handle.sync_data().map_err(io_err("sync_data", path))?;
            self.report.truncated_bytes += len - bad_at;
            return Ok(());
        }
    }

    fn apply_wal_record(
        &mut self,
        kind: u8,
        payload: &[u8],
        loc: Loc,
    ) -> Result<(), record::DecodeError> {
        let kind = Kind::from_byte(kind);
        match (kind, kind.and_then(Kind::publish_layout)) {
            (_, Some(layout)) => {
                let (queues, blob_at) = record::parse_publish(payload)?;
                let summary = record::blob_summary(&payload[blob_at..], layout)?;
                self.report.max_msg_id = self.report.max_msg_id.max(summary.msg_id);
                for q in queues.into_iter().filter(|q| self.durable.contains(q)) {
                    let msgs = self.found.entry(q).or_default();
                    // A copy already found in a segment wins: the WAL file was not deleted before a crash.
                    msgs.entry(summary.msg_id).or_insert(Found {
                        loc,
                        body_size: summary.body_size,
                        meta: summary.meta,
                    });
                }
            }
            (Some(Kind::Ack), _) => {
                let (queue, ids) = record::parse_ack(payload, true)?;
                for id in ids {
                    self.report.max_msg_id = self.report.max_msg_id.max(id);
                    let gone = self.found.get_mut(&queue).and_then(|m| m.remove(&id));
                    if let Some(f) = gone {
                        if self.index.is_segment(f.loc.file) {
                            self.index.pending_acks.push((f.loc.file, id));
                        }
                    }
                }
            }
            (Some(Kind::DedupKey), _) => {
                let (owner, capacity, entry) = dedup_keys::decode(payload)?;
                self.keys.record(owner, capacity, entry, loc.file);
            }
            (Some(Kind::DropQueue), _) => {
                let queue = record::parse_drop(payload)?;
                self.found.remove(&queue);
                self.keys.drop_owner(queue);
                self.drop_segments(queue);
            }
            _ => return Err("unexpected record type in the WAL"),
        }
        Ok(())
    }

    /// A drop record: the queue's segments (older than the record) are deleted now; the directory stays.
    fn drop_segments(&mut self, queue: QueueId) {
        for (_, file) in self.index.segments_of(queue) {
            if let Some(entry) = self.index.remove_file(file) {
                self.damaged.retain(|f| *f != file);
                if remove_if_present(self.fs.remove_file(&entry.path)).is_err() {
                    tracing::warn!(path = %entry.path.display(), "could not remove a dropped queue's segment");
                }
            }
        }
        self.segments.forget_queue(queue);
        self.segments.note_queue(queue, 1);
        self.dirty_dirs
            .insert(queue_dir(&self.segments_dir(), queue));
    }

    /// Moves what was found into the index (ordered, so the B-trees fill densely) and into the report.
    fn build_index(&mut self) {
        for q in &self.durable {
            self.report.queues.entry(*q).or_default();
        }
        for (queue, msgs) in std::mem::take(&mut self.found) {
            if !self.durable.contains(&queue) {
                continue;
            }
            let entries = self.report.queues.entry(queue).or_default();
            entries.reserve(msgs.len());
            for (msg_id, f) in msgs {
                self.index.insert(queue, msg_id, f.loc);
                entries.push(IndexEntry {
                    msg_id,
                    body_size: f.body_size,
                    meta: f.meta,
                });
            }
            self.report.messages += entries.len() as u64;
        }
        self.index.segment_emptied = false;
    }
}
