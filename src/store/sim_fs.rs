//! A simulated file system for crash tests. It keeps two images: what the running process sees, and what a crash
//! would leave — file bytes only up to their last `sync_data`, directory entries only as of their directory's last
//! `sync_dir`. A test can crash it at the N-th sync, restore the durable image (optionally with a torn tail or with
//! directory changes persisted eagerly), inject write or sync errors, pause syncs, and count what was written.
//! Everything is deterministic: no clocks, no randomness of its own.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::fs::{FileHandle, FileSystem};

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
}

/// What a crash left: both directory views and, per file, its synced bytes and the unsynced bytes appended after.
#[derive(Clone, Debug)]
pub struct CrashImage {
    durable: BTreeMap<PathBuf, Entry>,
    volatile: BTreeMap<PathBuf, Entry>,
    files: HashMap<usize, (Vec<u8>, Vec<u8>)>,
    /// The file whose `sync_data` was interrupted by the crash, with its unsynced tail length.
    pub torn_file: Option<(PathBuf, usize)>,
}

/// How to rebuild a file system from a [`CrashImage`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Restore {
    /// Keep every directory change, synced or not (the other extreme from losing all unsynced ones).
    pub eager_dirs: bool,
    /// Keep this many bytes of the torn file's unsynced tail; with `zero_fill`, the rest of the tail reads as zeros.
    pub tear: Option<(usize, bool)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub data_syncs: u64,
    pub dir_syncs: u64,
    pub appends: u64,
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

    /// Crash when the `n`-th sync (data or directory, counted from now, 1-based) is called: that sync fails, the
    /// durable image is taken as it was before it, and every later call fails.
    pub fn crash_at_sync(&self, n: u64) {
        let mut s = self.state();
        s.crash_at_sync = Some(s.syncs + n);
    }

    /// Crashes now (between syncs).
    pub fn crash_now(&self) {
        let mut s = self.state();
        if !s.crashed {
            s.image = Some(capture(&s, None));
            s.crashed = true;
        }
    }

    pub fn crashed(&self) -> bool {
        self.state().crashed
    }

    /// The image the crash left, if it happened.
    pub fn crash_image(&self) -> Option<CrashImage> {
        self.state().image.clone()
    }

    /// A fresh file system holding what survived the crash.
    pub fn restore(image: &CrashImage, how: Restore) -> SimFs {
        let view = if how.eager_dirs {
            &image.volatile
        } else {
            &image.durable
        };
        let fs = SimFs::new();
        let mut s = fs.state();
        let torn_ino = image
            .torn_file
            .as_ref()
            .and_then(|(p, _)| match image.volatile.get(p) {
                Some(Entry::File(i)) => Some(*i),
                _ => None,
            });
        for (path, entry) in view {
            let ancestors_ok = path
                .ancestors()
                .skip(1)
                .all(|a| view.get(a) == Some(&Entry::Dir));
            if !ancestors_ok && path != Path::new("/") {
                continue;
            }
            let entry = match entry {
                Entry::Dir => Entry::Dir,
                Entry::File(ino) => {
                    let (synced, tail) = image.files.get(ino).cloned().unwrap_or_default();
                    let mut data = synced;
                    if let (Some(t), Some((keep, zero_fill))) = (torn_ino, how.tear) {
                        if t == *ino {
                            let keep = keep.min(tail.len());
                            data.extend_from_slice(&tail[..keep]);
                            if zero_fill {
                                data.resize(data.len() + tail.len() - keep, 0);
                            }
                        }
                    }
                    s.inodes.push(Inode {
                        dirty_from: data.len(),
                        synced: data.clone(),
                        data,
                    });
                    Entry::File(s.inodes.len() - 1)
                }
            };
            s.entries.insert(path.clone(), entry);
            s.durable.insert(path.clone(), entry);
        }
        drop(s);
        fs
    }

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

    /// Make every append write at most `n` bytes (short writes).
    pub fn set_max_append(&self, n: Option<usize>) {
        self.state().max_append = n;
    }

    /// Make data syncs wait until [`SimFs::resume_syncs`].
    pub fn pause_syncs(&self) {
        self.state().paused = true;
    }

    pub fn resume_syncs(&self) {
        self.state().paused = false;
        self.inner.1.notify_all();
    }

    /// How many data syncs are waiting on a pause.
    pub fn syncs_waiting(&self) -> usize {
        self.state().waiting
    }

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
    fn begin_sync(&self, target: Option<usize>) -> io::Result<MutexGuard<'_, State>> {
        let mut s = self.live()?;
        s.syncs += 1;
        if s.fail_sync_at == Some(s.syncs) {
            return Err(io::Error::other("injected sync failure"));
        }
        if s.crash_at_sync == Some(s.syncs) {
            s.image = Some(capture(&s, target));
            s.crashed = true;
            return Err(crashed());
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

fn capture(s: &State, target: Option<usize>) -> CrashImage {
    let mut files = HashMap::new();
    for entry in s.entries.values().chain(s.durable.values()) {
        if let Entry::File(ino) = entry {
            let inode = &s.inodes[*ino];
            let clean_prefix =
                inode.dirty_from >= inode.synced.len() && inode.data.len() >= inode.synced.len();
            let tail = if clean_prefix {
                inode.data[inode.synced.len()..].to_vec()
            } else {
                Vec::new()
            };
            files.insert(*ino, (inode.synced.clone(), tail));
        }
    }
    let torn_file = target.and_then(|ino| {
        let path = s
            .entries
            .iter()
            .find(|(_, e)| **e == Entry::File(ino))
            .map(|(p, _)| p.clone())?;
        let tail = files.get(&ino).map(|(_, t)| t.len()).unwrap_or(0);
        Some((path, tail))
    });
    CrashImage {
        durable: s.durable.clone(),
        volatile: s.entries.clone(),
        files,
        torn_file,
    }
}

impl FileHandle for SimFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.fs.live()?.inodes[self.ino].data.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let s = self.fs.live()?;
        let data = &s.inodes[self.ino].data;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn append_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = self.fs.live()?;
        s.stats.appends += 1;
        if s.fail_append_at == Some(s.stats.appends) {
            return Err(io::Error::other("injected write failure"));
        }
        let mut budget = s.max_append.unwrap_or(usize::MAX);
        let inode = &mut s.inodes[self.ino];
        inode.dirty_from = inode.dirty_from.min(inode.data.len());
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(budget);
            inode.data.extend_from_slice(&b[..take]);
            n += take;
            budget -= take;
        }
        *s.written.entry(self.path.clone()).or_default() += n as u64;
        Ok(n)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.fs.begin_sync(Some(self.ino))?;
        s.stats.data_syncs += 1;
        let inode = &mut s.inodes[self.ino];
        let keep = inode.dirty_from.min(inode.synced.len());
        inode.synced.truncate(keep);
        let from = inode.synced.len();
        let tail = inode.data[from..].to_vec();
        inode.synced.extend_from_slice(&tail);
        inode.dirty_from = inode.data.len();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.live()?;
        let inode = &mut s.inodes[self.ino];
        let len = len as usize;
        inode.dirty_from = inode.dirty_from.min(len).min(inode.data.len());
        inode.data.resize(len, 0);
        Ok(())
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.live()?;
        let mut chain: Vec<&Path> = path.ancestors().collect();
        chain.reverse();
        for p in chain {
            match s.entries.get(p) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(io::Error::other("a file is in the way")),
                None => {
                    s.entries.insert(p.to_path_buf(), Entry::Dir);
                }
            }
        }
        Ok(())
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut s = self.live()?;
        if s.entries.get(&parent_of(path)) != Some(&Entry::Dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no parent directory",
            ));
        }
        let ino = match s.entries.get(path) {
            Some(Entry::File(ino)) => {
                let ino = *ino;
                let inode = &mut s.inodes[ino];
                inode.data.clear();
                inode.dirty_from = 0;
                ino
            }
            Some(Entry::Dir) => return Err(io::Error::other("a directory is in the way")),
            None => {
                s.inodes.push(Inode::default());
                let ino = s.inodes.len() - 1;
                s.entries.insert(path.to_path_buf(), Entry::File(ino));
                ino
            }
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let s = self.live()?;
        match s.entries.get(path) {
            Some(Entry::File(ino)) => Ok(Arc::new(SimFile {
                fs: self.clone(),
                ino: *ino,
                path: path.to_path_buf(),
            })),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.live()?;
        match s.entries.get(path) {
            Some(Entry::File(_)) => {
                s.entries.remove(path);
                Ok(())
            }
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.live()?;
        if s.entries.get(path) != Some(&Entry::Dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        if s.entries.keys().any(|p| p.parent() == Some(path)) {
            return Err(io::Error::other("directory not empty"));
        }
        s.entries.remove(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.live()?;
        let entry = s
            .entries
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        s.entries.insert(to.to_path_buf(), entry);
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.live()?;
        if s.entries.get(dir) != Some(&Entry::Dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        Ok(s.entries
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.begin_sync(None)?;
        s.stats.dir_syncs += 1;
        let is_child = |p: &Path| p.parent() == Some(dir);
        s.durable.retain(|p, _| !is_child(p));
        let children: Vec<(PathBuf, Entry)> = s
            .entries
            .iter()
            .filter(|(p, _)| is_child(p))
            .map(|(p, e)| (p.clone(), *e))
            .collect();
        s.durable.extend(children);
        Ok(())
    }
}
