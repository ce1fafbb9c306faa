//! After a storage failure, the next start reads the device, not the page
//! cache.
//!
//! When a write-back fails, Linux marks the pages clean and keeps them in
//! the page cache, and reports the error once, to the caller that failed.
//! A restart without a reboot would then read sled's newer bytes from the
//! cache (its journal position included), sync them "successfully" and
//! retire the journal segments that were the only durable copy: a power cut
//! later loses acknowledged groups. So the first failure to write or sync
//! (a flush of sled, a snapshot, the journal's write or `fdatasync`, the
//! store's close, the writes of an open once sled is open) leaves a mark in
//! the data dir, and an open that finds it first syncs every file of the
//! store (a failure refuses the start) and drops their cached pages, so
//! what it reads is what the device holds: sled as of its last good flush,
//! the journal replayed after it. The mark goes once sled is durable again.
//! A mark already there keeps the first failure's reason.
//!
//! The mark is best effort: a device that fails every write may refuse it
//! too (the failure is then in the log of the run that hit it).

use std::fs::File;
use std::io::Write;
#[cfg(target_os = "linux")]
use std::num::NonZeroU64;
use std::path::Path;

use crate::error::StorageError;

/// The mark's name in the data dir; it holds why the run stopped.
pub const MARK: &str = "storage-failed";

/// Whether `e` is a failure to write or sync (or one a test injected as
/// such), after which the page cache may hold what the device does not;
/// not a damaged record, nor a value that could not be encoded, nor an
/// earlier failure's `Stopped` (whoever recorded it decided).
pub(super) fn is_failure_to_store(e: &StorageError) -> bool {
    matches!(e, StorageError::Io(_) | StorageError::Injected(_))
}

/// Leaves the mark saying `why`, as far as the device lets it; a mark
/// already there keeps its reason (the first failure's).
pub(super) fn leave(dir: &Path, why: &str) {
    let _ = write_mark(dir, why);
}

fn write_mark(dir: &Path, why: &str) -> std::io::Result<()> {
    // One already there (an open that failed after it) keeps its reason.
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(MARK))
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        f => f?,
    };
    f.write_all(why.as_bytes())?;
    f.sync_all()?;
    File::open(dir)?.sync_all()
}

/// If the mark is there: every file under `dir` synced and its cached pages
/// dropped; returns what the mark says.
///
/// # Errors
/// A file that cannot be read, synced or dropped from the cache (the device
/// may still be failing): the start is refused, the mark kept.
pub(super) fn read_from_device_if_marked(dir: &Path) -> Result<Option<String>, StorageError> {
    let why = match std::fs::read(dir.join(MARK)) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::Io(format!(
                "{}: {e}",
                dir.join(MARK).display()
            )));
        }
    };
    drop_cached(dir)?;
    Ok(Some(why))
}

/// Removes the mark once the open it caused is durable.
///
/// # Errors
/// The mark cannot be removed, or the directory synced.
pub(super) fn clear(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(MARK);
    std::fs::remove_file(&path).map_err(|e| at(&path, &e))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Whether an entry of the data dir is the store's: sled's files (`db`,
/// `conf`, `snap.*`, `blobs/`) and the journal (`wal/`). Anything else an
/// operator keeps there (`lost+found` at a mount's root) is not read.
fn is_the_stores(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    matches!(name.as_ref(), "db" | "conf" | "blobs" | "wal") || name.starts_with("snap.")
}

/// Every file of the store in `dir` synced and dropped from the cache.
fn drop_cached(dir: &Path) -> Result<(), StorageError> {
    for entry in std::fs::read_dir(dir).map_err(|e| at(dir, &e))? {
        let entry = entry.map_err(|e| at(dir, &e))?;
        if is_the_stores(&entry.file_name()) {
            drop_cached_under(&entry.path())?;
        }
    }
    Ok(())
}

/// `path` synced and dropped from the cache, and all under it if it is a
/// directory.
fn drop_cached_under(path: &Path) -> Result<(), StorageError> {
    // Through links: the journal may live on another device.
    let kind = std::fs::metadata(path)
        .map_err(|e| at(path, &e))?
        .file_type();
    if kind.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| at(path, &e))? {
            drop_cached_under(&entry.map_err(|e| at(path, &e))?.path())?;
        }
    } else if kind.is_file() {
        let file = File::open(path).map_err(|e| at(path, &e))?;
        // Dirty pages a killed process left are good data: written first,
        // or the drop below would keep them.
        file.sync_all().map_err(|e| at(path, &e))?;
        drop_pages(&file).map_err(|e| at(path, &e))?;
    }
    Ok(())
}

/// Drops `file`'s clean pages from the page cache.
#[cfg(target_os = "linux")]
fn drop_pages(file: &File) -> std::io::Result<()> {
    let Some(len) = NonZeroU64::new(file.metadata()?.len()) else {
        return Ok(());
    };
    match rustix::fs::fadvise(file, 0, Some(len), rustix::fs::Advice::DontNeed) {
        // A file system without a page cache to drop holds nothing stale.
        Ok(()) | Err(rustix::io::Errno::NOSYS | rustix::io::Errno::SPIPE) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere the files are synced only (the failure this guards against
/// is how Linux reports a failed write-back).
#[cfg(not(target_os = "linux"))]
fn drop_pages(_file: &File) -> std::io::Result<()> {
    Ok(())
}

fn at(path: &Path, e: &std::io::Error) -> StorageError {
    StorageError::Io(format!(
        "after the last run's storage failure, {}: {e}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::behind::tests::get;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use super::super::{Batch, Store, StoreOptions};
    use super::*;

    fn open(dir: &Path) -> Store {
        let options = StoreOptions {
            flush_every: None,
            ..StoreOptions::default()
        };
        Store::open_with(dir, &options).unwrap_or_else(|e| panic!("{e}"))
    }

    fn commit(store: &Store, key: &[u8]) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.insert(key, b"v");
        store.commit(batch)
    }

    /// A commit whose `fdatasync` fails leaves the mark; the next open
    /// reads the device (everything committed before is there), says so,
    /// and clears the mark; the open after that is an ordinary one.
    #[test]
    fn a_failed_commit_leaves_the_mark_and_the_next_open_reads_the_device_then_clears_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mark = dir.path().join(MARK);
        let store = open(dir.path());
        commit(&store, b"before").unwrap_or_else(|e| panic!("{e}"));
        assert!(!mark.exists(), "no failure, no mark");
        let next = store.faults.commits.load(Ordering::Relaxed) + 1;
        store.faults.fail_flush_at.store(next, Ordering::Relaxed);
        let e = commit(&store, b"failed").expect_err("injected");
        let said = std::fs::read_to_string(&mark).unwrap_or_else(|e| panic!("the mark: {e}"));
        assert_eq!(said, e.to_string());
        // Refused from then on; the mark says the first failure.
        assert!(commit(&store, b"after").is_err());
        assert_eq!(
            std::fs::read_to_string(&mark).unwrap_or_else(|e| panic!("{e}")),
            said
        );
        drop(store);

        // sled's first durable point of that open (the simulator copies
        // sled there) has no mark.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_hook = Arc::clone(&seen);
        let options = StoreOptions {
            flush_every: None,
            on_sled_durable: Some(Arc::new(move |d: &Path| {
                if let Ok(mut seen) = seen_by_hook.lock() {
                    seen.push(d.join(MARK).exists());
                }
            })),
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*seen.lock().unwrap_or_else(|e| panic!("{e}")), vec![false]);
        assert_eq!(
            store.recovered.after_failure.as_deref(),
            Some(said.as_str())
        );
        assert!(!mark.exists(), "cleared once the open is durable");
        assert_eq!(get(&store, b"before").as_deref(), Some(&b"v"[..]));
        commit(&store, b"again").unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.recovered.after_failure, None);
        assert_eq!(get(&store, b"again").as_deref(), Some(&b"v"[..]));
    }

    /// A failure recorded without the mark (a snapshot that could not be
    /// encoded) stops the commits after it, which leave none either; a
    /// mark already there keeps the first failure's reason.
    #[test]
    fn an_earlier_failure_leaves_no_mark_and_a_mark_keeps_its_first_reason() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(dir.path());
        super::super::commit::record_failure(
            &store.flushed,
            None,
            "a snapshot failed: could not encode a record".into(),
        );
        let e = commit(&store, b"after").expect_err("stopped");
        assert!(matches!(e, StorageError::Stopped(_)), "{e}");
        assert!(!dir.path().join(MARK).exists(), "{e}");
        leave(dir.path(), "first");
        leave(dir.path(), "second");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(MARK))
                .ok()
                .as_deref(),
            Some("first")
        );
    }

    /// A failed flush of sled (or a snapshot) leaves the mark too.
    #[test]
    fn a_failed_flush_of_sled_leaves_the_mark() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(dir.path());
        super::super::commit::record_failure(
            &store.flushed,
            Some(&store.dir),
            "sled's flush or fdatasync failed: EIO".into(),
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(MARK))
                .ok()
                .as_deref(),
            Some("sled's flush or fdatasync failed: EIO")
        );
    }

    /// Pages of `path` in the page cache (`mmap` + `mincore`).
    #[cfg(target_os = "linux")]
    fn resident_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let file = File::open(path).unwrap_or_else(|e| panic!("{e}"));
        let len = usize::try_from(file.metadata().map_or(0, |m| m.len())).unwrap_or(0);
        assert!(len > 0);
        // SAFETY: a private read-only mapping of a file this test owns,
        // unmapped before it returns; `mincore` writes one byte per page
        // into a vector of that many bytes.
        unsafe {
            let at = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(at, libc::MAP_FAILED);
            let pages = len.div_ceil(4096);
            let mut resident = vec![0u8; pages];
            assert_eq!(libc::mincore(at, len, resident.as_mut_ptr()), 0);
            libc::munmap(at, len);
            resident.iter().filter(|b| **b & 1 == 1).count()
        }
    }

    /// Whether the file system under `dir` keeps written pages in the page
    /// cache and lets `fadvise(DONTNEED)` drop them once synced (not tmpfs,
    /// nor ZFS with its own cache).
    #[cfg(target_os = "linux")]
    fn drops_pages(dir: &Path) -> bool {
        let probe = dir.join("probe");
        let written = std::fs::write(&probe, vec![3u8; 1 << 16]).is_ok();
        let cached = written && resident_pages(&probe) > 0;
        let dropped = cached
            && File::open(&probe).is_ok_and(|f| f.sync_all().is_ok() && drop_pages(&f).is_ok())
            && resident_pages(&probe) == 0;
        let _ = std::fs::remove_file(&probe);
        dropped
    }

    /// Every file of the store, nested ones included, is synced and its
    /// cached pages dropped, and nothing else in the data dir is (where the
    /// file system keeps a cache it can drop: the test runs beside the
    /// crate, not in a tmpfs `/tmp`; elsewhere only the bytes are checked).
    #[cfg(target_os = "linux")]
    #[test]
    fn every_file_of_the_store_is_dropped_from_the_cache() {
        let dir =
            tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap_or_else(|e| panic!("{e}"));
        let residency = drops_pages(dir.path());
        if !residency {
            eprintln!("this file system keeps no page cache fadvise drops: bytes checked only");
        }
        let resident_pages = |p: &Path| if residency { resident_pages(p) } else { 1 };
        let dropped = |p: &Path| !residency || resident_pages(p) == 0;
        drop(open(dir.path()));
        let nested = dir.path().join("blobs").join("x");
        std::fs::create_dir_all(dir.path().join("blobs")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&nested, vec![7u8; 1 << 20]).unwrap_or_else(|e| panic!("{e}"));
        let sled_file = dir.path().join("db");
        let _ = std::fs::read(&sled_file);
        // Not the store's: left alone.
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, vec![1u8; 1 << 16]).unwrap_or_else(|e| panic!("{e}"));
        assert!(resident_pages(&nested) > 0, "just written: cached");
        assert!(resident_pages(&sled_file) > 0, "just read: cached");
        // No mark: nothing is dropped.
        assert_eq!(read_from_device_if_marked(dir.path()).ok(), Some(None));
        assert!(resident_pages(&nested) > 0);
        std::fs::write(dir.path().join(MARK), "why").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read_from_device_if_marked(dir.path()).ok(),
            Some(Some("why".to_owned()))
        );
        assert!(dropped(&nested), "a nested file, dirty before");
        assert!(dropped(&sled_file), "sled's file");
        assert!(resident_pages(&other) > 0, "not the store's file");
        assert_eq!(
            std::fs::read(&nested).unwrap_or_else(|e| panic!("{e}")),
            vec![7u8; 1 << 20],
            "its bytes were written before the drop"
        );
    }
}
