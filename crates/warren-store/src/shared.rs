//! State shared by the API, the WAL writer thread and the background thread: the index, the writer's inbox, the
//! failure flag and the counters.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};

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
    Flush {
        done: mpsc::SyncSender<Result<(), StoreError>>,
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
    /// Reply once every job queued before this one is done.
    Settle(mpsc::SyncSender<()>),
    Stop,
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

    /// Blocks until something is queued and takes all of it; `None` once closed and drained.
    pub(crate) fn take(&self) -> Option<Vec<Op>> {
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
                return Some(ops);
            }
            if s.1 {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
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
}

pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) struct Shared {
    pub config: StoreConfig,
    pub fs: Arc<dyn FileSystem>,
    pub index: Mutex<Index>,
    pub inbox: Inbox,
    pub counters: Counters,
    failed: AtomicBool,
    cause: Mutex<Option<String>>,
    background: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Shared {
    pub(crate) fn new(config: StoreConfig, fs: Arc<dyn FileSystem>, index: Index) -> Shared {
        Shared {
            config,
            fs,
            index: Mutex::new(index),
            inbox: Inbox::default(),
            counters: Counters::default(),
            failed: AtomicBool::new(false),
            cause: Mutex::new(None),
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

    /// Marks the store failed; the first cause is kept for every later error.
    pub(crate) fn fail(&self, cause: String) {
        let mut c = lock(&self.cause);
        if c.is_none() {
            tracing::error!(%cause, "message store failed; persistent publishes are refused until restart");
            *c = Some(cause);
        }
        self.failed.store(true, Ordering::Release);
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn failure(&self) -> StoreError {
        let cause = lock(&self.cause)
            .clone()
            .unwrap_or_else(|| "unknown".into());
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
