//! Injected faults: one failing append or sync, a disk that fills up (appends write what fits, then fail with
//! ENOSPC, as `writev` does), and syncs that keep failing. A failed data sync loses what it should have made durable,
//! as Linux may after a failed `fsync` (the dirty pages are marked clean): a later successful sync does not write
//! those bytes, so the durable image has a hole where they were. A store that appends after a failed sync and trusts
//! the next one loses data in the crash image, which is what the fault tests look for.

use std::io;
use std::path::{Path, PathBuf};

use super::{Entry, Inode, SimFs, State};

/// ENOSPC, as the kernel reports a full file system.
fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl SimFs {
    /// Fail the `n`-th append from now (1-based), once.
    pub fn fail_append_at(&self, n: u64) {
        let mut s = self.state();
        s.fail_append_at = Some(s.stats.appends + n);
    }

    /// Fail the `n`-th sync from now (data or directory, 1-based), once.
    pub fn fail_sync_at(&self, n: u64) {
        let mut s = self.state();
        s.fail_sync_at = Some(s.syncs + n);
    }

    /// Limits the bytes all files may hold together (None: unlimited). Appends past it write what fits and then
    /// fail with ENOSPC; removing or truncating files makes room again. Creating files and directories is free.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state().capacity = bytes;
    }

    /// Fills the disk: the capacity becomes what the files hold now, so the next append fails with ENOSPC.
    pub fn fill(&self) {
        let mut s = self.state();
        s.capacity = Some(s.used());
    }

    /// Bytes all linked files hold.
    pub fn used_bytes(&self) -> u64 {
        self.state().used()
    }

    /// While `failing`, every sync (data or directory) fails with ENOSPC, as writeback on a thin-provisioned or
    /// network volume reports a full disk; each failed data sync loses what it should have made durable.
    pub fn set_syncs_failing(&self, failing: bool) {
        self.state().syncs_failing = failing.then(|| PathBuf::from("/"));
    }

    /// Like [`SimFs::set_syncs_failing`], for the files and directories under `prefix` only (None: none).
    pub fn set_syncs_failing_under(&self, prefix: Option<&Path>) {
        self.state().syncs_failing = prefix.map(Path::to_path_buf);
    }
}

impl State {
    /// Bytes all linked files hold (unlinked files still open are not counted).
    pub(super) fn used(&self) -> u64 {
        self.entries
            .values()
            .filter_map(|e| match e {
                Entry::File(ino) => Some(self.inodes[*ino].data.len() as u64),
                Entry::Dir => None,
            })
            .sum()
    }

    /// How many more bytes may be written; None when unlimited.
    pub(super) fn room(&self) -> Option<u64> {
        self.capacity.map(|c| c.saturating_sub(self.used()))
    }

    /// The append about to be made (already counted) is refused, or may write at most the returned bytes.
    pub(super) fn append_fault(&self, wanted: usize) -> Result<usize, io::Error> {
        if self.fail_append_at == Some(self.stats.appends) {
            return Err(io::Error::other("injected write failure"));
        }
        match self.room() {
            Some(0) if wanted > 0 => Err(no_space()),
            Some(room) => Ok(wanted.min(room.min(usize::MAX as u64) as usize)),
            None => Ok(wanted),
        }
    }

    /// Whether a growth of a file to `len` bytes fits.
    pub(super) fn check_growth(&self, from: usize, len: usize) -> io::Result<()> {
        match self.room() {
            Some(room) if len > from && (len - from) as u64 > room => Err(no_space()),
            _ => Ok(()),
        }
    }

    /// The error the sync of `path` just counted fails with, if any.
    pub(super) fn sync_fault(&self, path: &Path) -> Option<io::Error> {
        if self.fail_sync_at == Some(self.syncs) {
            return Some(io::Error::other("injected sync failure"));
        }
        let failing = self.syncs_failing.as_deref();
        failing.is_some_and(|p| path.starts_with(p)).then(no_space)
    }
}

impl Inode {
    /// A sync of this file failed: what it should have made durable is lost, and is no longer dirty.
    pub(super) fn lose_dirty(&mut self) {
        if self.dirty_from < self.data.len() {
            self.lost.push((self.dirty_from, self.data.len()));
        }
        self.dirty_from = self.data.len();
    }

    /// A successful sync: the durable image becomes the file's bytes, except where a failed sync lost them.
    pub(super) fn sync(&mut self) {
        let mut synced = self.data.clone();
        for &(from, to) in &self.lost {
            for (i, byte) in synced
                .iter_mut()
                .enumerate()
                .take(to.min(self.data.len()))
                .skip(from)
            {
                *byte = self.synced.get(i).copied().unwrap_or(0);
            }
        }
        self.lost.clear();
        self.synced = synced;
        self.dirty_from = self.data.len();
    }

    /// The file was cut or extended to `len`: lost ranges past it are gone.
    pub(super) fn resized(&mut self, len: usize) {
        self.lost.retain_mut(|r| {
            r.1 = r.1.min(len);
            r.0 < r.1
        });
    }
}
