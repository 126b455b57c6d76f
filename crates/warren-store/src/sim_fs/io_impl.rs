//! The simulated file system behind the `FileSystem` and `FileHandle` traits.

use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{parent_of, Entry, Inode, SimFile, SimFs};
use crate::fs::{FileHandle, FileSystem};

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
        let wanted = bufs.iter().map(|b| b.len()).sum();
        let mut budget = s
            .append_fault(wanted)?
            .min(s.max_append.unwrap_or(usize::MAX));
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
        let mut s = self.fs.begin_sync(Some(self.ino), &self.path)?;
        s.stats.data_syncs += 1;
        s.inodes[self.ino].sync();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.live()?;
        let len = len as usize;
        s.check_growth(s.inodes[self.ino].data.len(), len)?;
        let inode = &mut s.inodes[self.ino];
        inode.dirty_from = inode.dirty_from.min(len).min(inode.data.len());
        inode.data.resize(len, 0);
        inode.resized(len);
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
                inode.lost.clear();
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
        let mut s = self.begin_sync(None, dir)?;
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
