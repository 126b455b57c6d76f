//! The file I/O the store does, as two small traits, and their implementation on `std::fs`. Every byte the store
//! reads or writes goes through here, so tests can swap in [`super::sim_fs::SimFs`] and inject crashes, torn writes
//! and errors.
//!
//! The store only ever appends to files (and truncates a torn tail once, at recovery), so a handle has no write
//! position: [`FileHandle::append_vectored`] writes at the end, as `O_APPEND` does.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// An open file. Contract: bytes are readable by `read_at` as soon as `append_vectored` returns, and survive a crash
/// only once `sync_data` has returned Ok after them. A handle stays valid after its file is removed or renamed over
/// (POSIX semantics), so a reader holding one can finish.
pub trait FileHandle: Send + Sync + Debug {
    /// The file's current length.
    fn size(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Appends some prefix of the concatenated `bufs` at the end of the file (one `writev`), returning how many
    /// bytes were written; [`append_all`] loops until all are.
    fn append_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Makes everything appended so far, and the file's length, durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates (or extends with zeros) to `len`; durable after the next `sync_data`.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// A directory tree. Contract: a created, removed or renamed entry survives a crash only once `sync_dir` of its
/// parent directory has returned Ok after the change.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates `path` and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates an empty file at `path` (truncating one that exists), open for reading and appending.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Opens an existing file for reading and appending.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Removes the file at `path`; open handles stay usable.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to` atomically, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The names of the entries (files and directories) in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the creations, removals and renames of entries in `dir` durable (`fsync` on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof` if the file is shorter.
pub(crate) fn read_exact_at(
    file: &dyn FileHandle,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than expected",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends all of `bufs`, calling `append_vectored` again after a short write.
pub(crate) fn append_all(file: &dyn FileHandle, bufs: &[&[u8]]) -> io::Result<()> {
    let (mut idx, mut skip) = (0, 0);
    loop {
        while idx < bufs.len() && bufs[idx].len() == skip {
            idx += 1;
            skip = 0;
        }
        if idx == bufs.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = bufs[idx..]
            .iter()
            .enumerate()
            .map(|(i, b)| IoSlice::new(if i == 0 { &b[skip..] } else { b }))
            .collect();
        let mut n = match file.append_vectored(&slices) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "append wrote nothing",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 && idx < bufs.len() {
            let left = bufs[idx].len() - skip;
            if n >= left {
                n -= left;
                idx += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
}

/// The real file system.
#[derive(Debug, Default)]
pub struct StdFileSystem;

#[derive(Debug)]
struct StdFile(File);

impl FileHandle for StdFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn append_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // The file is opened with O_APPEND, so this one writev lands at the end whatever the cursor says. std caps
        // the slice count at IOV_MAX; append_all loops over the rest.
        (&self.0).write_vectored(bufs)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl FileSystem for StdFileSystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        file.set_len(0)?;
        Ok(Arc::new(StdFile(file)))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).append(true).open(path)?;
        Ok(Arc::new(StdFile(file)))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
