//! A simulated file system for crash tests. It keeps two images: what the running process sees, and what a crash
//! would leave — file bytes only up to their last `sync_data`, directory entries only as of their directory's last
//! `sync_dir`. A test can crash it at the N-th sync, restore the durable image (optionally with a torn tail or with
//! directory changes persisted eagerly), inject write or sync errors (`faults`: one failing call, a full disk, syncs
//! that fail and lose what they should have made durable), pause syncs, and count what was written. Everything is
//! deterministic: no clocks, no randomness of its own.

mod crash;
mod faults;
mod io_impl;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

pub use crash::{CrashImage, Restore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(usize),
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    /// Lowest offset changed since the last sync (`data.len()` or more when clean).
    dirty_from: usize,
    /// Byte ranges a failed sync should have made durable. Linux may drop such pages (marking them clean), so a
    /// later successful sync does not write them: the durable image keeps what it had there (zeros past its end).
    lost: Vec<(usize, usize)>,
}

/// What the store asked of the simulated disk, so a test can assert on group commit and sync counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// `sync_data` calls.
    pub data_syncs: u64,
    /// `sync_dir` calls.
    pub dir_syncs: u64,
    /// `append_vectored` calls.
    pub appends: u64,
    /// Syncs (data or directory) that failed by an injected fault; with the two above, every sync point.
    pub failed_syncs: u64,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    entries: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    crashed: bool,
    image: Option<CrashImage>,
    /// Crash when the sync counter reaches this.
    crash_at_sync: Option<u64>,
    syncs: u64,
    stats: SimStats,
    fail_append_at: Option<u64>,
    fail_sync_at: Option<u64>,
    /// Bytes all linked files may hold together; an append past it writes what fits, then fails with ENOSPC.
    capacity: Option<u64>,
    /// While set, every sync of a file or directory under this path fails with ENOSPC (and loses what it should
    /// have made durable).
    syncs_failing: Option<PathBuf>,
    max_append: Option<usize>,
    paused: bool,
    waiting: usize,
    written: BTreeMap<PathBuf, u64>,
}

/// The simulated file system; clones share one tree.
#[derive(Clone, Debug)]
pub struct SimFs {
    inner: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: usize,
    path: PathBuf,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the file system is gone")
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty file system holding only the root directory `/`.
    pub fn new() -> SimFs {
        let mut state = State::default();
        state.entries.insert(PathBuf::from("/"), Entry::Dir);
        state.durable.insert(PathBuf::from("/"), Entry::Dir);
        SimFs {
            inner: Arc::new((Mutex::new(state), Condvar::new())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = self.state();
        if s.crashed {
            return Err(crashed());
        }
        Ok(s)
    }

    /// Make every append write at most `n` bytes (short writes).
    pub fn set_max_append(&self, n: Option<usize>) {
        self.state().max_append = n;
    }

    /// Make data syncs wait until [`SimFs::resume_syncs`].
    pub fn pause_syncs(&self) {
        self.state().paused = true;
    }

    /// Lets paused data syncs (and later ones) proceed.
    pub fn resume_syncs(&self) {
        self.state().paused = false;
        self.inner.1.notify_all();
    }

    /// How many data syncs are waiting on a pause.
    pub fn syncs_waiting(&self) -> usize {
        self.state().waiting
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.state().stats
    }

    /// Bytes ever appended to files under `prefix`, including files since removed.
    pub fn bytes_written_under(&self, prefix: &Path) -> u64 {
        self.state()
            .written
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// The current bytes of a file, for inspection (works after a crash too).
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state();
        match s.entries.get(path) {
            Some(Entry::File(ino)) => Some(s.inodes[*ino].data.clone()),
            _ => None,
        }
    }

    /// Changes a file's bytes in place, synced and unsynced alike: media damage, not a write.
    pub fn damage(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
        let mut s = self.state();
        if let Some(Entry::File(ino)) = s.entries.get(path).copied() {
            let inode = &mut s.inodes[ino];
            f(&mut inode.data);
            inode.synced = inode.data.clone();
            inode.dirty_from = inode.data.len();
            inode.lost.clear();
        }
    }

    /// Paths of all files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let s = self.state();
        s.entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Counts a sync, applies injected failures, crashes and pauses. Returns the state to apply the sync with.
    fn begin_sync(&self, target: Option<usize>, path: &Path) -> io::Result<MutexGuard<'_, State>> {
        let mut s = self.live()?;
        s.syncs += 1;
        if s.crash_at_sync == Some(s.syncs) {
            s.image = Some(crash::capture(&s, target));
            s.crashed = true;
            return Err(crashed());
        }
        if let Some(error) = s.sync_fault(path) {
            s.stats.failed_syncs += 1;
            if let Some(ino) = target {
                s.inodes[ino].lose_dirty();
            }
            return Err(error);
        }
        if target.is_some() {
            while s.paused {
                s.waiting += 1;
                s = self.inner.1.wait(s).unwrap_or_else(|e| e.into_inner());
                s.waiting -= 1;
            }
            if s.crashed {
                return Err(crashed());
            }
        }
        Ok(s)
    }
}
