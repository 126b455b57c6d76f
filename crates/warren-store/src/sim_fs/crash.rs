//! Crashing the simulated file system and rebuilding one from what the crash left.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{Entry, Inode, SimFs, State};

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

impl SimFs {
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

    /// True once a crash has happened: every call fails from then on.
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
                        lost: Vec::new(),
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
}

pub(super) fn capture(s: &State, target: Option<usize>) -> CrashImage {
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
