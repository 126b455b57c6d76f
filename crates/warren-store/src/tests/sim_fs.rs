//! The simulated file system itself: what survives its crashes.

use std::path::{Path, PathBuf};

use crate::fs::{append_all, FileSystem};
use crate::sim_fs::{Restore, SimFs};

#[test]
fn a_crash_keeps_only_synced_bytes_and_synced_directory_entries() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/d")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let a = fs.create(Path::new("/d/a")).unwrap();
    append_all(a.as_ref(), &[b"synced"]).unwrap();
    a.sync_data().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    append_all(a.as_ref(), &[b"+lost"]).unwrap();
    let b = fs.create(Path::new("/d/b")).unwrap();
    append_all(b.as_ref(), &[b"unlisted"]).unwrap();
    b.sync_data().unwrap();
    fs.crash_now();
    assert!(a.size().is_err(), "a crashed fs refuses every call");
    let image = fs.crash_image().unwrap();
    let after = SimFs::restore(&image, Restore::default());
    assert_eq!(after.file_bytes(Path::new("/d/a")).unwrap(), b"synced");
    assert!(
        after.file_bytes(Path::new("/d/b")).is_none(),
        "entry never synced"
    );
    let eager = SimFs::restore(
        &image,
        Restore {
            eager_dirs: true,
            tear: None,
        },
    );
    assert_eq!(eager.file_bytes(Path::new("/d/b")).unwrap(), b"unlisted");
}

#[test]
fn crash_at_a_sync_keeps_the_state_before_it_and_can_tear_the_tail() {
    let fs = SimFs::new();
    let a = fs.create(Path::new("/a")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    append_all(a.as_ref(), &[b"one"]).unwrap();
    a.sync_data().unwrap();
    fs.crash_at_sync(1);
    append_all(a.as_ref(), &[b"two"]).unwrap();
    assert!(a.sync_data().is_err());
    let image = fs.crash_image().unwrap();
    assert_eq!(image.torn_file, Some((PathBuf::from("/a"), 3)));
    let torn = SimFs::restore(
        &image,
        Restore {
            eager_dirs: false,
            tear: Some((1, true)),
        },
    );
    assert_eq!(torn.file_bytes(Path::new("/a")).unwrap(), b"onet\0\0");
}
