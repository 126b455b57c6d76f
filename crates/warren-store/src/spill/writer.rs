//! The spill writer thread. It takes every message queued since its last batch, appends them to the current spill
//! file with one vectored write and records where each went; it never fsyncs (nothing in a spill file outlives the
//! process). Between batches it deletes files whose records were all released and compacts sealed files that are
//! mostly dead. A failed write leaves the batch in memory (see `SpillState::failed`): nothing is lost.

use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use super::state::{SpillFileId, SpillLoc, SpillState};
use super::SpillShared;
use crate::fs::{append_all, FileHandle};
use crate::record::{
    self, file_header_of, Kind, FILE_HEADER_LEN, RECORD_HEADER_LEN, SPILL_FORMAT_VERSION,
    SPILL_MAGIC,
};
use crate::scan::{Scanner, Step};
use crate::{lock, StoreError, StoredMessage};

/// Bytes of copied records compaction gathers before it appends them.
const COMPACTION_CHUNK: usize = 4 << 20;

/// What the writer does next.
enum Work {
    /// Append these messages, in order.
    Batch(Vec<Arc<StoredMessage>>),
    /// Delete emptied files, compact mostly dead ones.
    Tidy,
    /// The store is closing.
    Stop,
}

/// The writer thread's state: only the shared part; the files are in `SpillState`.
pub(super) struct SpillWriter {
    pub(super) shared: Arc<SpillShared>,
}

impl SpillWriter {
    /// The thread's body: until the store closes, write what is queued and tidy up after it. On close, the files
    /// are deleted.
    pub(super) fn run(self) {
        loop {
            match self.next_work() {
                Work::Stop => {
                    self.delete_all();
                    return;
                }
                Work::Batch(batch) => {
                    self.write_batch(batch);
                    self.tidy();
                }
                Work::Tidy => self.tidy(),
            }
            let mut s = lock(&self.shared.state);
            s.busy = false;
            self.shared.changed(&s);
        }
    }

    /// Waits for something to do and marks the writer busy with it.
    fn next_work(&self) -> Work {
        let mut s = lock(&self.shared.state);
        loop {
            if s.stopping {
                return Work::Stop;
            }
            if s.has_queued() {
                s.busy = true;
                return Work::Batch(s.take_queued());
            }
            if s.emptied || s.compaction_wanted {
                s.busy = true;
                return Work::Tidy;
            }
            s = self.shared.work.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The file to append to: the current one while under the size, else a new one.
    fn append_target(
        &self,
    ) -> Result<(SpillFileId, Arc<dyn FileHandle>, std::path::PathBuf, u64), StoreError> {
        let file_size = self.shared.config.file_size;
        if let Some(current) = lock(&self.shared.state).current_file(file_size) {
            return Ok(current);
        }
        let id = lock(&self.shared.state).next_file_id();
        let path = self.shared.config.dir.join(format!("{id:010}.spill"));
        let fs = &self.shared.fs;
        let handle = fs.create(&path).map_err(StoreError::io("create", &path))?;
        let header = file_header_of(SPILL_MAGIC, SPILL_FORMAT_VERSION);
        append_all(handle.as_ref(), &[&header]).map_err(StoreError::io("append", &path))?;
        lock(&self.shared.state).add_current(id, path.clone(), handle.clone(), FILE_HEADER_LEN);
        Ok((id, handle, path, FILE_HEADER_LEN))
    }

    /// Appends `batch` in order, one vectored write per file it goes to (a file is sealed once past its size, so
    /// a large batch is split), and records where each message went.
    fn write_batch(&self, batch: Vec<Arc<StoredMessage>>) {
        let mut rest = &batch[..];
        while !rest.is_empty() {
            match self.write_some(rest) {
                Ok(n) => rest = &rest[n..],
                Err(error) => return self.fail(rest, error),
            }
        }
    }

    /// Appends a prefix of `batch` (at least one message) to the file appended to, as much as fits under its size,
    /// in one vectored write; returns how many it wrote.
    fn write_some(&self, batch: &[Arc<StoredMessage>]) -> Result<usize, StoreError> {
        let (file, handle, path, size) = self.append_target()?;
        let mut heads = Vec::new();
        let mut offset = size;
        for msg in batch {
            if !heads.is_empty() && offset >= self.shared.config.file_size {
                break;
            }
            // `put` checked the same limits: a message that cannot be encoded is a bug; it stays in memory.
            let head =
                record::message_head(msg).map_err(|reason| StoreError::Rejected { reason })?;
            let header = record::record_header(Kind::Message, &[&head, &msg.body]);
            let len = (RECORD_HEADER_LEN + head.len() + msg.body.len()) as u32;
            heads.push((header, head, SpillLoc { file, len, offset }));
            offset += u64::from(len);
        }
        let mut slices: Vec<&[u8]> = Vec::with_capacity(3 * heads.len());
        for ((header, head, _), msg) in heads.iter().zip(batch) {
            slices.push(header);
            slices.push(head);
            slices.push(&msg.body);
        }
        append_all(handle.as_ref(), &slices).map_err(StoreError::io("append", &path))?;
        let written: Vec<_> = heads
            .iter()
            .zip(batch)
            .map(|((_, _, loc), msg)| (msg.clone(), *loc))
            .collect();
        let n = written.len();
        let mut s = lock(&self.shared.state);
        s.written(file, offset - size, written);
        self.shared.changed(&s);
        Ok(n)
    }

    /// A write failed: the messages stay in memory, puts are refused for a while, and the operator hears of it.
    fn fail(&self, batch: &[Arc<StoredMessage>], error: StoreError) {
        let retry_after = self.shared.config.retry_after;
        tracing::error!(
            %error,
            "spill write failed: transient messages past their queue's memory budget stay in memory; spilling \
             resumes in {} s",
            retry_after.as_secs()
        );
        let mut s = lock(&self.shared.state);
        s.failed(batch, error.to_string(), Instant::now() + retry_after);
        self.shared.changed(&s);
    }

    /// Deletes the files without a live record, then compacts mostly dead ones until a batch is waiting.
    fn tidy(&self) {
        self.delete_empty();
        loop {
            let candidate = {
                let mut s = lock(&self.shared.state);
                s.compaction_wanted = false;
                if s.has_queued() || s.stopping {
                    None
                } else {
                    s.compaction_candidate()
                }
            };
            let Some((file, handle)) = candidate else {
                break;
            };
            match self.compact(file, handle.as_ref()) {
                Ok(()) => lock(&self.shared.state).files_compacted += 1,
                Err(error) => {
                    tracing::warn!(%error, file, "spill file compaction failed; the file stays until released");
                    lock(&self.shared.state).skip_compaction(file);
                }
            }
            self.delete_empty();
        }
    }

    /// Removes the files the state says are empty.
    fn delete_empty(&self) {
        let files = {
            let mut s = lock(&self.shared.state);
            if !s.emptied {
                return;
            }
            let keep_current = s.has_queued();
            s.take_empty_files(keep_current)
        };
        for file in files {
            if let Err(error) = self.shared.fs.remove_file(&file.path) {
                tracing::warn!(%error, path = %file.path.display(), "cannot delete a spill file");
            }
        }
    }

    /// Copies the live records of sealed file `file` to the file appended to, in chunks, and points their entries
    /// at the copies; the file is then empty and deleted. A damaged record stops the copy there.
    fn compact(&self, file: SpillFileId, handle: &dyn FileHandle) -> Result<(), StoreError> {
        let path = self.shared.config.dir.join(format!("{file:010}.spill"));
        let mut scanner = Scanner::new(handle).map_err(StoreError::io("read", &path))?;
        let mut chunk: Vec<u8> = Vec::new();
        let mut moves: Vec<(u64, SpillLoc, u32)> = Vec::new();
        loop {
            let step = scanner
                .next_record()
                .map_err(StoreError::io("read", &path))?;
            let record = match step {
                Step::Record(record) => record,
                Step::End => break,
                Step::Bad(bad) => {
                    tracing::warn!(path = %path.display(), offset = bad.offset, reason = bad.reason,
                        "damaged spill record; compaction stops there");
                    lock(&self.shared.state).skip_compaction(file);
                    break;
                }
            };
            let Some(id_bytes) = record.payload.get(..8) else {
                continue;
            };
            let mut id = [0u8; 8];
            id.copy_from_slice(id_bytes);
            let msg_id = u64::from_le_bytes(id);
            let from = SpillLoc {
                file,
                len: record.len,
                offset: record.offset,
            };
            if record.kind != Kind::Message as u8
                || !lock(&self.shared.state).is_live_at(msg_id, from)
            {
                continue;
            }
            let at = chunk.len() as u32;
            record::push_record(&mut chunk, Kind::Message, &[record.payload]);
            moves.push((msg_id, from, at));
            if chunk.len() >= COMPACTION_CHUNK {
                self.append_copies(&mut chunk, &mut moves)?;
            }
        }
        self.append_copies(&mut chunk, &mut moves)
    }

    /// Appends the copies gathered in `chunk` and repoints their entries (`moves`: id, old place, offset in chunk).
    fn append_copies(
        &self,
        chunk: &mut Vec<u8>,
        moves: &mut Vec<(u64, SpillLoc, u32)>,
    ) -> Result<(), StoreError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let (to, handle, path, size) = self.append_target()?;
        append_all(handle.as_ref(), &[chunk]).map_err(StoreError::io("append", &path))?;
        let moved = moves
            .drain(..)
            .map(|(msg_id, from, at)| {
                let new = SpillLoc {
                    file: to,
                    len: from.len,
                    offset: size + u64::from(at),
                };
                (msg_id, from, new)
            })
            .collect();
        let mut s: MutexGuard<'_, SpillState> = lock(&self.shared.state);
        s.moved(to, chunk.len() as u64, moved);
        chunk.clear();
        Ok(())
    }

    /// The store is closing: its files go (a reader still holding a handle finishes its read).
    fn delete_all(&self) {
        let files = lock(&self.shared.state).take_all_files();
        for file in files {
            let _ = self.shared.fs.remove_file(&file.path);
        }
    }
}
