//! The WAL writer thread and its group commit: take everything queued, encode it into one buffer (small bodies
//! copied, large bodies referenced, never copied), write it with one vectored append, `fdatasync` once, update the
//! index, then complete every waiter. Whatever arrives meanwhile forms the next batch. Past `wal_file_size` the file
//! is sealed, a new one started, and the sealed one handed to the background thread to retire.
//!
//! A failed append, fdatasync or file creation fails this part of the store; `repair` is how it comes back.

mod batch;
mod repair;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::dedup_keys::{self, DedupEntry};
use super::fs::{append_all, FileHandle};
use super::index::{FileId, FileKind, Loc};
use super::record::{self, file_header, BlobLayout, Kind, FILE_HEADER_LEN, WAL_MAGIC};
use super::retry::Backoff;
use super::shared::{bump, Job, OnDurable, Op, Part, Shared, Taken};
use super::{lock, QueueId, StoreError};
use batch::Batch;

pub(crate) fn wal_path(wal_dir: &Path, seq: u64) -> PathBuf {
    wal_dir.join(format!("{seq:020}.wal"))
}

/// Parses `<seq>.wal`.
pub(crate) fn parse_wal_name(name: &str) -> Option<u64> {
    name.strip_suffix(".wal")?.parse().ok()
}

/// What to do with each op once its batch is durable (or has failed).
enum Applied {
    Publish {
        msg_id: u64,
        queues: Vec<QueueId>,
        /// Where the record is; None when it was never written (the store had failed).
        loc: Option<Loc>,
        done: OnDurable,
    },
    Ack {
        queue: QueueId,
        ids: Vec<u64>,
    },
    DropQueue {
        queue: QueueId,
    },
    /// Deduplication key records, in WAL file `file` (None when never written).
    Keys {
        keys: Vec<(QueueId, u32, DedupEntry)>,
        file: Option<FileId>,
        done: KeysDone,
    },
    Flush {
        done: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
    },
}

/// Who waits for deduplication key records.
enum KeysDone {
    /// A broker's `Store::remember_key`: the key is new, and its record the newest.
    Remember(OnDurable),
    /// The background thread carrying live keys out of a WAL file it retires.
    Carry(std::sync::mpsc::SyncSender<Result<(), StoreError>>),
}

/// The WAL file being appended to.
struct WalFile {
    handle: Arc<dyn FileHandle>,
    id: FileId,
    seq: u64,
    path: PathBuf,
    /// Bytes appended, header included.
    len: u64,
    /// Bytes known durable: the end of the last batch whose fdatasync (with sync Never: whose write) succeeded.
    /// After a failure nothing past it is trusted: repair cuts the file back to it.
    durable: u64,
}

impl WalFile {
    /// Creates WAL file `seq` with its header, makes its directory entry durable, and registers it in the index.
    /// With `probe`, the header is fdatasynced too: a repair proves that the disk takes writes again. Otherwise the
    /// header becomes durable with the first batch's fdatasync.
    fn create(shared: &Shared, seq: u64, probe: bool) -> Result<WalFile, StoreError> {
        let dir = shared.wal_dir();
        let path = wal_path(&dir, seq);
        let handle = shared
            .fs
            .create(&path)
            .map_err(StoreError::io("create", &path))?;
        append_all(handle.as_ref(), &[&file_header(WAL_MAGIC)])
            .map_err(StoreError::io("append", &path))?;
        if shared.sync() {
            if probe {
                handle
                    .sync_data()
                    .map_err(StoreError::io("sync_data", &path))?;
            }
            shared
                .fs
                .sync_dir(&dir)
                .map_err(StoreError::io("sync_dir", &dir))?;
        }
        let id = lock(&shared.index).add_file(FileKind::Wal { seq }, path.clone(), handle.clone());
        Ok(WalFile {
            handle,
            id,
            seq,
            path,
            len: FILE_HEADER_LEN,
            // Even when the header is not synced yet: a file cut back to its header holds no record, and recovery
            // removes one whose header did not reach the disk.
            durable: FILE_HEADER_LEN,
        })
    }
}

pub(crate) struct WalWriter {
    shared: Arc<Shared>,
    /// The file being appended to; None when creating one failed (a start on a full disk, a failed roll after
    /// which repair cut and retired the old one).
    file: Option<WalFile>,
    /// The sequence number the next WAL file gets.
    next_seq: u64,
    /// Set while this part is failed: when it next tries to repair itself.
    fault: Option<Backoff>,
    /// Acks and queue drops taken while the store was failed, or in a batch that failed: already applied to the
    /// index, their records are written first in the next batch that is written.
    deferred: Vec<Op>,
}

impl WalWriter {
    /// The writer for a store whose next WAL file is `seq`: it creates that file, or, if it cannot (a full disk),
    /// starts failed and creates it when it repairs itself.
    pub(crate) fn start(shared: &Arc<Shared>, seq: u64) -> WalWriter {
        let mut writer = WalWriter {
            shared: shared.clone(),
            file: None,
            next_seq: seq,
            fault: None,
            deferred: Vec::new(),
        };
        match WalFile::create(shared, seq, false) {
            Ok(file) => {
                writer.file = Some(file);
                writer.next_seq += 1;
            }
            Err(e) => writer.fail(e),
        }
        writer
    }

    /// The thread body: batches until the inbox is closed and drained, then stops the background thread. While
    /// failed it wakes when a repair is due, even if nothing is queued; while it holds deferred records because the
    /// other part is failed, it wakes every `retry_after` to write them once the store is healthy.
    pub(crate) fn run(mut self) {
        loop {
            let deadline = match &self.fault {
                Some(fault) => Some(fault.due()),
                None if !self.deferred.is_empty() => {
                    Some(Instant::now() + self.shared.config.retry_after)
                }
                None => None,
            };
            let mut asked = Vec::new();
            match self.shared.inbox.take(deadline) {
                Taken::Ops(mut ops) => {
                    ops.retain_mut(|op| match op {
                        Op::Retry { done } => {
                            asked.push(done.clone());
                            false
                        }
                        _ => true,
                    });
                    self.process(ops);
                }
                Taken::TimedOut if self.fault.is_none() && !self.shared.is_failed() => {
                    self.process(Vec::new());
                }
                Taken::TimedOut => {}
                Taken::Closed => break,
            }
            let due = self
                .fault
                .as_ref()
                .is_some_and(|f| f.due() <= Instant::now());
            if self.fault.is_some() && (due || !asked.is_empty()) {
                self.retry();
            }
            for done in asked {
                let _ = done.send(());
            }
        }
        self.shared.send_job(Job::Stop);
    }

    /// This part failed: publishes are refused from now on and a repair is scheduled.
    fn fail(&mut self, error: StoreError) {
        self.shared.fail(Part::Wal, error.to_string());
        if self.fault.is_none() {
            let config = &self.shared.config;
            self.fault = Some(Backoff::start(config.retry_after, config.retry_max));
        }
    }

    fn process(&mut self, ops: Vec<Op>) {
        if self.fault.is_some() || self.shared.is_failed() {
            return self.reject(ops);
        }
        let Some(file) = self.file.as_ref() else {
            return self.reject(ops);
        };
        let ops = if self.deferred.is_empty() {
            ops
        } else {
            let mut all = std::mem::take(&mut self.deferred);
            all.extend(ops);
            all
        };
        let (base, file_id) = (file.len, file.id);
        let ops = self.without_dropped_owners(ops);
        let (batch, applied) = encode(ops, base, file_id);
        match self.write(&batch) {
            Ok(()) => self.complete(applied, true),
            Err(e) => {
                self.fail(e);
                self.complete(applied, false);
            }
        }
    }

    /// Keys carried out of a retired file are a snapshot the background thread took: an owner dropped since (in an
    /// earlier batch, or earlier in this one) must not get them back, or a recovery would find them after its drop
    /// record.
    fn without_dropped_owners(&self, mut ops: Vec<Op>) -> Vec<Op> {
        if !ops.iter().any(|op| matches!(op, Op::CarryKeys { .. })) {
            return ops;
        }
        let mirror = lock(&self.shared.dedup);
        let mut dropped = Vec::new();
        for op in &mut ops {
            match op {
                Op::DropQueue { queue } => dropped.push(*queue),
                Op::CarryKeys { keys, .. } => keys
                    .retain(|(owner, _, _)| mirror.has_owner(*owner) && !dropped.contains(owner)),
                _ => {}
            }
        }
        ops
    }

    /// One vectored append of the whole batch, then one fdatasync.
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let Some(file) = self.file.as_mut() else {
            return Err(self.shared.failure());
        };
        if batch.len > 0 {
            append_all(file.handle.as_ref(), &batch.slices())
                .map_err(StoreError::io("append", &file.path))?;
            file.len += batch.len;
            bump(&self.shared.counters.batches, 1);
            if self.shared.sync() {
                file.handle
                    .sync_data()
                    .map_err(StoreError::io("sync_data", &file.path))?;
                bump(&self.shared.counters.wal_syncs, 1);
            }
            file.durable = file.len;
        }
        Ok(())
    }

    /// Applies a batch to the index, rolls the file if it is full, and completes the batch's waiters. With
    /// `durable` false (the batch failed, or the store had failed and nothing was written), publishes and flushes
    /// fail; acks and drops still apply to the index, so reads and accounting stay coherent, and their records are
    /// kept to be written after the repair.
    ///
    /// The order matters: the index must hold the batch's locations before a roll hands the file to the background
    /// thread (which copies only what the index points at), and the roll and the other jobs are queued before the
    /// waiters run, so that a caller whose flush returned knows the jobs are queued (`settle` relies on it).
    fn complete(&mut self, applied: Vec<Applied>, durable: bool) {
        let mut publishes = 0;
        let mut dropped = Vec::new();
        let mut waiters: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        let emptied = {
            let mut idx = lock(&self.shared.index);
            for a in applied {
                match a {
                    Applied::Publish {
                        msg_id,
                        queues,
                        loc: Some(loc),
                        done,
                    } if durable => {
                        for q in queues {
                            idx.insert(q, msg_id, loc);
                        }
                        publishes += 1;
                        waiters.push(Box::new(move || done(Ok(()))));
                    }
                    Applied::Publish { done, .. } => {
                        let err = self.shared.failure();
                        waiters.push(Box::new(move || done(Err(err))));
                    }
                    Applied::Ack { queue, ids } => {
                        for id in &ids {
                            idx.ack(queue, *id);
                        }
                        if !durable {
                            self.deferred.push(Op::Ack { queue, ids });
                        }
                    }
                    Applied::DropQueue { queue } => {
                        idx.drop_queue(queue);
                        lock(&self.shared.dedup).drop_owner(queue);
                        match durable {
                            true => dropped.push(queue),
                            false => self.deferred.push(Op::DropQueue { queue }),
                        }
                    }
                    Applied::Keys { keys, file, done } => {
                        let written = file.filter(|_| durable);
                        if let Some(file) = written {
                            let mut mirror = lock(&self.shared.dedup);
                            for (owner, capacity, entry) in &keys {
                                match &done {
                                    KeysDone::Remember(_) => {
                                        mirror.put(*owner, *capacity, entry, file)
                                    }
                                    KeysDone::Carry(_) => mirror.carried(*owner, entry, file),
                                }
                            }
                        }
                        let r = match written {
                            Some(_) => Ok(()),
                            None => Err(self.shared.failure()),
                        };
                        waiters.push(match done {
                            KeysDone::Remember(done) => Box::new(move || done(r)),
                            KeysDone::Carry(done) => Box::new(move || {
                                let _ = done.send(r);
                            }),
                        });
                    }
                    Applied::Flush { done } => {
                        let r = if durable {
                            Ok(())
                        } else {
                            Err(self.shared.failure())
                        };
                        waiters.push(Box::new(move || {
                            let _ = done.send(r);
                        }));
                    }
                }
            }
            std::mem::take(&mut idx.segment_emptied)
        };
        bump(&self.shared.counters.publishes, publishes);
        if durable {
            // Before a roll: a dropped queue's files go before the WAL file holding its drop record is retired.
            for queue in dropped {
                self.shared.send_job(Job::DropQueue(queue));
            }
            if self
                .file
                .as_ref()
                .is_some_and(|f| f.len >= self.shared.config.wal_file_size)
            {
                self.roll();
            }
        }
        if emptied {
            self.shared.send_job(Job::Maintain);
        }
        for w in waiters {
            // A panicking callback is the caller's bug; it must not take the writer (and every later publish) down.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(w)).is_err() {
                tracing::error!("an on_durable callback panicked");
            }
        }
    }

    /// The store has failed: nothing is written, publishes and flushes fail at once, acks and drops are deferred.
    fn reject(&mut self, ops: Vec<Op>) {
        let applied = ops
            .into_iter()
            .filter_map(|op| match op {
                Op::Publish { msg, queues, done } => Some(Applied::Publish {
                    msg_id: msg.msg_id,
                    queues,
                    loc: None,
                    done,
                }),
                Op::Ack { queue, ids } => Some(Applied::Ack { queue, ids }),
                Op::DropQueue { queue } => Some(Applied::DropQueue { queue }),
                Op::RememberKey {
                    owner,
                    capacity,
                    entry,
                    done,
                } => Some(Applied::Keys {
                    keys: vec![(owner, capacity, entry)],
                    file: None,
                    done: KeysDone::Remember(done),
                }),
                Op::CarryKeys { keys, done } => Some(Applied::Keys {
                    keys,
                    file: None,
                    done: KeysDone::Carry(done),
                }),
                Op::Flush { done } => Some(Applied::Flush { done }),
                Op::Retry { done } => {
                    let _ = done.send(());
                    None
                }
            })
            .collect();
        self.complete(applied, false);
    }

    /// Seals this file and continues in a new one; the background thread retires the sealed one. If the new file
    /// cannot be created, the batch just written is durable all the same; this part fails and its repair creates
    /// the file.
    fn roll(&mut self) {
        match WalFile::create(&self.shared, self.next_seq, false) {
            Ok(next) => {
                self.next_seq += 1;
                if let Some(sealed) = self.file.replace(next) {
                    self.shared.send_job(Job::Retire(sealed.id));
                }
            }
            Err(e) => self.fail(e),
        }
    }
}

/// Encodes `ops` as one batch to be appended at offset `base` of WAL file `file_id`: the bytes, and what to apply
/// once they are durable. A message too large for a record is refused at once.
fn encode(ops: Vec<Op>, base: u64, file_id: FileId) -> (Batch, Vec<Applied>) {
    let mut batch = Batch::default();
    let mut applied = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Publish {
                msg,
                mut queues,
                done,
            } => {
                queues.sort_unstable();
                queues.dedup();
                let head = match record::message_head(&msg) {
                    Ok(h) => h,
                    Err(reason) => {
                        done(Err(StoreError::Rejected { reason }));
                        continue;
                    }
                };
                let mut front = record::publish_head(&queues);
                front.extend_from_slice(&head);
                let offset = base + batch.len;
                let kind = BlobLayout::of(&msg).publish_kind();
                batch.push(&record::record_header(kind, &[&front, &msg.body]));
                batch.push(&front);
                batch.push_body(&msg.body);
                let len = (base + batch.len - offset) as u32;
                let loc = Loc {
                    file: file_id,
                    len,
                    offset,
                };
                applied.push(Applied::Publish {
                    msg_id: msg.msg_id,
                    queues,
                    loc: Some(loc),
                    done,
                });
            }
            Op::Ack { queue, ids } => {
                for chunk in ids.chunks(record::MAX_IDS_PER_ACK) {
                    let payload = record::ack_payload(Some(queue), chunk);
                    batch.push(&record::record_header(Kind::Ack, &[&payload]));
                    batch.push(&payload);
                }
                applied.push(Applied::Ack { queue, ids });
            }
            Op::DropQueue { queue } => {
                let payload = queue.to_le_bytes();
                batch.push(&record::record_header(Kind::DropQueue, &[&payload]));
                batch.push(&payload);
                applied.push(Applied::DropQueue { queue });
            }
            Op::RememberKey {
                owner,
                capacity,
                entry,
                done,
            } => applied.push(push_keys(
                &mut batch,
                vec![(owner, capacity, entry)],
                KeysDone::Remember(done),
                file_id,
            )),
            Op::CarryKeys { keys, done } => {
                applied.push(push_keys(&mut batch, keys, KeysDone::Carry(done), file_id))
            }
            Op::Flush { done } => applied.push(Applied::Flush { done }),
            Op::Retry { done } => {
                let _ = done.send(());
            }
        }
    }
    (batch, applied)
}

/// Appends a DedupKey record for each of `keys` to `batch`.
fn push_keys(
    batch: &mut Batch,
    keys: Vec<(QueueId, u32, DedupEntry)>,
    done: KeysDone,
    file: FileId,
) -> Applied {
    for (owner, capacity, entry) in &keys {
        let payload = dedup_keys::encode(*owner, *capacity, entry);
        batch.push(&record::record_header(Kind::DedupKey, &[&payload]));
        batch.push(&payload);
    }
    Applied::Keys {
        keys,
        file: Some(file),
        done,
    }
}
