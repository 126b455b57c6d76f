//! State shared by the API, the WAL writer thread and the background thread: the index, the writer's inbox, the
//! failure state and the counters.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use super::dedup_keys::{DedupEntry, DedupKeys};
use super::fs::FileSystem;
use super::index::{FileId, Index};
use super::{lock, QueueId, StoreConfig, StoreError, StoredMessage};

/// A completion callback of `Store::publish`.
pub(crate) type OnDurable = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Work for the WAL writer thread, in the order callers queued it.
pub(crate) enum Op {
    Publish {
        msg: StoredMessage,
        queues: Vec<QueueId>,
        done: OnDurable,
    },
    Ack {
        queue: QueueId,
        ids: Vec<u64>,
    },
    DropQueue {
        queue: QueueId,
    },
    /// A deduplication key of `owner` (`Store::remember_key`), durable when `done` gets Ok.
    RememberKey {
        owner: QueueId,
        capacity: u32,
        entry: DedupEntry,
        done: OnDurable,
    },
    /// Live keys whose records are in a WAL file being retired, written again (by the background thread).
    CarryKeys {
        keys: Vec<(QueueId, u32, DedupEntry)>,
        done: mpsc::SyncSender<Result<(), StoreError>>,
    },
    Flush {
        done: mpsc::SyncSender<Result<(), StoreError>>,
    },
    /// Try a due-or-not repair now if failed (`Store::retry_now`), then reply.
    Retry {
        done: mpsc::SyncSender<()>,
    },
}

impl Op {
    fn bytes(&self) -> u64 {
        match self {
            Op::Publish { msg, .. } => (msg.body.len() + msg.properties_raw.len()) as u64,
            _ => 0,
        }
    }
}

/// Work for the background thread.
pub(crate) enum Job {
    /// Copy the live messages of this sealed WAL file into segments, then delete it.
    Retire(FileId),
    /// Remove the files of a dropped queue (its drop record is durable).
    DropQueue(QueueId),
    /// Delete fully acked segments and compact mostly acked ones.
    Maintain,
    /// Keep a copy of this damaged segment and rewrite it with its good records (recovery could not, short of
    /// space).
    Repair(FileId),
    /// Reply once every job queued before this one is done (at once while the background part has failed).
    Settle(mpsc::SyncSender<()>),
    /// Try a repair now if failed (`Store::retry_now`), then reply.
    Retry(mpsc::SyncSender<()>),
    Stop,
}

/// What [`Inbox::take`] found.
pub(crate) enum Taken {
    /// Everything queued.
    Ops(Vec<Op>),
    /// Nothing came before the deadline.
    TimedOut,
    /// The inbox is closed and drained.
    Closed,
}

/// The writer's inbox: callers push, the writer takes everything at once (that is the group commit).
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<(Vec<Op>, bool)>,
    ready: Condvar,
    bytes: AtomicU64,
    /// Called after each take, outside the lock (see `Store::on_queue_taken`).
    on_taken: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Inbox {
    /// Queues `op`, or hands it back if the writer has stopped.
    pub(crate) fn push(&self, op: Op) -> Option<Op> {
        let mut s = lock(&self.state);
        if s.1 {
            return Some(op);
        }
        self.bytes.fetch_add(op.bytes(), Ordering::Relaxed);
        s.0.push(op);
        drop(s);
        self.ready.notify_one();
        None
    }

    /// Blocks until something is queued and takes all of it, or until `deadline` passes with nothing queued.
    pub(crate) fn take(&self, deadline: Option<Instant>) -> Taken {
        let mut s = lock(&self.state);
        loop {
            if !s.0.is_empty() {
                let ops = std::mem::take(&mut s.0);
                let n: u64 = ops.iter().map(Op::bytes).sum();
                self.bytes.fetch_sub(n, Ordering::Relaxed);
                drop(s);
                if let Some(hook) = self.on_taken.get() {
                    hook();
                }
                return Taken::Ops(ops);
            }
            if s.1 {
                return Taken::Closed;
            }
            s = match deadline {
                None => self.ready.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return Taken::TimedOut;
                    };
                    self.ready
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    pub(crate) fn close(&self) {
        lock(&self.state).1 = true;
        self.ready.notify_all();
    }

    pub(crate) fn queued_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Sets the hook called after each take; false if one is set already.
    pub(crate) fn set_on_taken(&self, hook: Box<dyn Fn() + Send + Sync>) -> bool {
        self.on_taken.set(hook).is_ok()
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub batches: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub publishes: AtomicU64,
    pub wal_files_retired: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub segments_compacted: AtomicU64,
    pub failures: AtomicU64,
    pub recoveries: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The part of the store whose work failed: each of the two threads repairs its own (see `wal.rs` and
/// `background.rs`), and the store is healthy again once neither has a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The WAL writer: an append, an fdatasync, or creating the next WAL file.
    Wal,
    /// The background thread: retiring a WAL file, writing segments, compacting, removing files.
    Background,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Wal => "write-ahead log",
            Part::Background => "segment files",
        }
    }
}

/// The cause of each part's current failure.
#[derive(Default)]
struct Faults {
    wal: Option<String>,
    background: Option<String>,
}

impl Faults {
    fn slot(&mut self, part: Part) -> &mut Option<String> {
        match part {
            Part::Wal => &mut self.wal,
            Part::Background => &mut self.background,
        }
    }

    fn cause(&self) -> Option<String> {
        self.wal.clone().or_else(|| self.background.clone())
    }
}

pub(crate) struct Shared {
    pub config: StoreConfig,
    pub fs: Arc<dyn FileSystem>,
    pub index: Mutex<Index>,
    pub inbox: Inbox,
    pub counters: Counters,
    /// Which deduplication key records are live, and in which WAL file (`dedup_keys`).
    pub dedup: Mutex<DedupKeys>,
    /// True while either part has failed; read on every batch and by the broker.
    failed: AtomicBool,
    /// Why; changed only under this lock, together with `failed`.
    faults: Mutex<Faults>,
    background: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Shared {
    pub(crate) fn new(
        config: StoreConfig,
        fs: Arc<dyn FileSystem>,
        index: Index,
        dedup: DedupKeys,
    ) -> Shared {
        Shared {
            config,
            fs,
            index: Mutex::new(index),
            dedup: Mutex::new(dedup),
            inbox: Inbox::default(),
            counters: Counters::default(),
            failed: AtomicBool::new(false),
            faults: Mutex::new(Faults::default()),
            background: Mutex::new(None),
        }
    }

    pub(crate) fn wal_dir(&self) -> PathBuf {
        self.config.dir.join("wal")
    }

    pub(crate) fn queues_dir(&self) -> PathBuf {
        self.config.dir.join("queues")
    }

    pub(crate) fn sync(&self) -> bool {
        self.config.sync == super::SyncMode::Always
    }

    /// Marks `part` failed; its first cause is kept, for every error it causes, until the part heals.
    pub(crate) fn fail(&self, part: Part, cause: String) {
        let mut faults = lock(&self.faults);
        let slot = faults.slot(part);
        if slot.is_some() {
            return;
        }
        tracing::error!(
            %cause,
            "message store failed ({}); persistent publishes are refused until it recovers (retrying from the last synced state in {:?})",
            part.name(),
            self.config.retry_after
        );
        *slot = Some(cause);
        if !self.failed.swap(true, Ordering::AcqRel) {
            bump(&self.counters.failures, 1);
        }
    }

    /// `part` repaired itself; the store is healthy again if the other part is too.
    pub(crate) fn heal(&self, part: Part) {
        let mut faults = lock(&self.faults);
        if faults.slot(part).take().is_none() {
            return;
        }
        tracing::warn!("message store: {} recovered", part.name());
        if faults.cause().is_none() && self.failed.swap(false, Ordering::AcqRel) {
            bump(&self.counters.recoveries, 1);
            tracing::warn!("message store recovered; persistent publishes are accepted again");
        }
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The cause of the current failure (the WAL writer's first), None when healthy.
    pub(crate) fn cause(&self) -> Option<String> {
        lock(&self.faults).cause()
    }

    pub(crate) fn failure(&self) -> StoreError {
        let cause = self.cause().unwrap_or_else(|| "unknown".into());
        StoreError::Failed { cause }
    }

    pub(crate) fn set_background(&self, tx: mpsc::Sender<Job>) {
        *lock(&self.background) = Some(tx);
    }

    /// Queues a job for the background thread (dropped if it has stopped).
    pub(crate) fn send_job(&self, job: Job) {
        if let Some(tx) = lock(&self.background).as_ref() {
            let _ = tx.send(job);
        }
    }
}
