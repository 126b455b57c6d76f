//! The WAL writer thread and its group commit: take everything queued, encode it into one buffer (small bodies
//! copied, large bodies referenced, never copied), write it with one vectored append, `fdatasync` once, update the
//! index, then complete every waiter. Whatever arrives meanwhile forms the next batch. Past `wal_file_size` the file
//! is sealed, a new one started, and the sealed one handed to the background thread to retire.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::fs::{append_all, FileHandle};
use super::index::{FileId, FileKind, Loc};
use super::record::{self, file_header, BlobLayout, Kind, FILE_HEADER_LEN, WAL_MAGIC};
use super::shared::{bump, Job, OnDurable, Op, Shared};
use super::{lock, QueueId, StoreError};

/// Bodies up to this size are copied into the batch buffer; larger ones are written from their own `Bytes` (one
/// iovec each). Copying a few KiB is cheaper than an iovec entry, and it keeps the count under IOV_MAX.
const INLINE_BODY: usize = 4096;

pub(crate) fn wal_path(wal_dir: &Path, seq: u64) -> PathBuf {
    wal_dir.join(format!("{seq:020}.wal"))
}

/// Parses `<seq>.wal`.
pub(crate) fn parse_wal_name(name: &str) -> Option<u64> {
    name.strip_suffix(".wal")?.parse().ok()
}

/// One batch's bytes: a buffer for headers and small payloads plus the large bodies, in write order.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    parts: Vec<Part>,
    len: u64,
}

enum Part {
    Buf(usize, usize),
    Body(Bytes),
}

impl Batch {
    fn push(&mut self, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        match self.parts.last_mut() {
            Some(Part::Buf(_, end)) if *end == start => *end = self.buf.len(),
            _ => self.parts.push(Part::Buf(start, self.buf.len())),
        }
        self.len += bytes.len() as u64;
    }

    fn push_body(&mut self, body: &Bytes) {
        if body.len() <= INLINE_BODY {
            self.push(body);
        } else {
            self.parts.push(Part::Body(body.clone()));
            self.len += body.len() as u64;
        }
    }

    fn slices(&self) -> Vec<&[u8]> {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Buf(s, e) => &self.buf[*s..*e],
                Part::Body(b) => &b[..],
            })
            .collect()
    }
}

/// What to do with each op once its batch is durable.
enum Applied {
    Publish {
        msg_id: u64,
        queues: Vec<QueueId>,
        loc: Loc,
        done: OnDurable,
    },
    Ack {
        queue: QueueId,
        ids: Vec<u64>,
    },
    DropQueue {
        queue: QueueId,
    },
    Flush {
        done: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
    },
}

pub(crate) struct WalWriter {
    shared: Arc<Shared>,
    file: Arc<dyn FileHandle>,
    file_id: FileId,
    seq: u64,
    path: PathBuf,
    len: u64,
}

impl WalWriter {
    /// Creates WAL file `seq` with its header, makes its directory entry durable, and registers it in the index.
    pub(crate) fn create(shared: &Arc<Shared>, seq: u64) -> Result<WalWriter, StoreError> {
        let dir = shared.wal_dir();
        let path = wal_path(&dir, seq);
        let file = shared
            .fs
            .create(&path)
            .map_err(StoreError::io("create", &path))?;
        append_all(file.as_ref(), &[&file_header(WAL_MAGIC)])
            .map_err(StoreError::io("append", &path))?;
        if shared.sync() {
            // The header itself becomes durable with the first batch's fdatasync.
            shared
                .fs
                .sync_dir(&dir)
                .map_err(StoreError::io("sync_dir", &dir))?;
        }
        let file_id =
            lock(&shared.index).add_file(FileKind::Wal { seq }, path.clone(), file.clone());
        Ok(WalWriter {
            shared: shared.clone(),
            file,
            file_id,
            seq,
            path,
            len: FILE_HEADER_LEN,
        })
    }

    /// The thread body: batches until the inbox is closed and drained, then stops the background thread.
    pub(crate) fn run(mut self) {
        while let Some(ops) = self.shared.inbox.take() {
            self.process(ops);
        }
        self.shared.send_job(Job::Stop);
    }

    fn process(&mut self, ops: Vec<Op>) {
        if self.shared.is_failed() {
            return self.reject(ops);
        }
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
                    let offset = self.len + batch.len;
                    let kind = BlobLayout::of(&msg).publish_kind();
                    batch.push(&record::record_header(kind, &[&front, &msg.body]));
                    batch.push(&front);
                    batch.push_body(&msg.body);
                    let len = (self.len + batch.len - offset) as u32;
                    let loc = Loc {
                        file: self.file_id,
                        len,
                        offset,
                    };
                    applied.push(Applied::Publish {
                        msg_id: msg.msg_id,
                        queues,
                        loc,
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
                Op::Flush { done } => applied.push(Applied::Flush { done }),
            }
        }
        if let Err(e) = self.write(&batch) {
            self.shared.fail(e.to_string());
            return self.complete(applied, false);
        }
        self.complete(applied, true);
    }

    /// One vectored append of the whole batch, then one fdatasync.
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.len > 0 {
            append_all(self.file.as_ref(), &batch.slices())
                .map_err(StoreError::io("append", &self.path))?;
            self.len += batch.len;
            bump(&self.shared.counters.batches, 1);
            if self.shared.sync() {
                self.file
                    .sync_data()
                    .map_err(StoreError::io("sync_data", &self.path))?;
                bump(&self.shared.counters.wal_syncs, 1);
            }
        }
        Ok(())
    }

    /// Applies a written batch to the index, rolls the file if it is full, and completes the batch's waiters; with
    /// `durable` false, publishes and flushes fail (acks and drops still apply in memory, so reads and accounting
    /// stay coherent).
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
                        loc,
                        done,
                    } => {
                        if durable {
                            for q in queues {
                                idx.insert(q, msg_id, loc);
                            }
                            publishes += 1;
                            waiters.push(Box::new(move || done(Ok(()))));
                        } else {
                            let err = self.shared.failure();
                            waiters.push(Box::new(move || done(Err(err))));
                        }
                    }
                    Applied::Ack { queue, ids } => {
                        for id in ids {
                            idx.ack(queue, id);
                        }
                    }
                    Applied::DropQueue { queue } => {
                        idx.drop_queue(queue);
                        dropped.push(queue);
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
            if self.len >= self.shared.config.wal_file_size {
                if let Err(e) = self.roll() {
                    // The batch is durable all the same; later publishes fail.
                    self.shared.fail(e.to_string());
                }
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

    /// The store has failed: nothing is written, publishes and flushes fail at once.
    fn reject(&mut self, ops: Vec<Op>) {
        let applied = ops
            .into_iter()
            .map(|op| match op {
                Op::Publish { msg, queues, done } => {
                    let loc = Loc {
                        file: self.file_id,
                        len: 0,
                        offset: 0,
                    };
                    Applied::Publish {
                        msg_id: msg.msg_id,
                        queues,
                        loc,
                        done,
                    }
                }
                Op::Ack { queue, ids } => Applied::Ack { queue, ids },
                Op::DropQueue { queue } => Applied::DropQueue { queue },
                Op::Flush { done } => Applied::Flush { done },
            })
            .collect();
        self.complete(applied, false);
    }

    /// Seals this file and continues in a new one; the background thread retires the sealed one.
    fn roll(&mut self) -> Result<(), StoreError> {
        let next = WalWriter::create(&self.shared, self.seq + 1)?;
        let sealed = std::mem::replace(self, next);
        self.shared.send_job(Job::Retire(sealed.file_id));
        Ok(())
    }
}
