//! The journal's view of the disk: the few file operations it uses, behind
//! a trait, so a simulator can put a faulty disk under it (writes lost on a
//! crash unless synced, torn writes, failing `fdatasync`, flipped bits on
//! read). [`RealDisk`] is the file system.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file open for reading and writing.
#[allow(clippy::len_without_is_empty)] // A file, not a collection.
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Writes all of `bytes` at `at` (not durable until a sync).
    ///
    /// # Errors
    /// I/O.
    fn write_at(&self, bytes: &[u8], at: u64) -> io::Result<()>;
    /// `fdatasync`: the data written so far (and the size) survive a crash.
    ///
    /// # Errors
    /// I/O. After a failure the data written may be lost whatever a later
    /// sync says: the journal never retries.
    fn sync_data(&self) -> io::Result<()>;
    /// The file's size.
    ///
    /// # Errors
    /// I/O.
    fn len(&self) -> io::Result<u64>;
}

/// A deliberate bug, one per class of fault the simulator injects: a
/// simulated disk turns one on to show that the simulator's checks catch
/// it (so they are not vacuous). The real disk never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Acknowledge a record without its `fdatasync` (lost writes).
    AckBeforeSync,
    /// Retry a failed `fdatasync` and carry on if the retry succeeds
    /// (failing `fdatasync`).
    RetryFailedSync,
    /// Take a record whose checksum fails for a good one if its header
    /// looks right (torn writes).
    SkipChecksum,
    /// Trust a single read of a segment whose end looks torn (flipped bits
    /// on read).
    TrustOneRead,
    /// Trust sled to hold every acknowledged record at a restart instead of
    /// replaying the journal into it (the derived store losing writes, as
    /// after its failpoints).
    SkipSledReplay,
}

/// The file operations of the journal.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Whether the journal should behave with `bug` (only a simulated disk
    /// ever says yes).
    fn injects(&self, bug: Bug) -> bool {
        let _ = bug;
        false
    }

    /// A fresh random number: a segment's salt, a unique file name.
    fn salt(&self) -> u64 {
        fresh_salt()
    }

    /// Creates `dir` and its parents.
    ///
    /// # Errors
    /// I/O.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths of the files in `dir`.
    ///
    /// # Errors
    /// I/O.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// The whole content of `path`.
    ///
    /// # Errors
    /// I/O.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `len` bytes of `path` from `at` (fewer at the end of the file).
    ///
    /// # Errors
    /// I/O.
    fn read_at(&self, path: &Path, at: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The size of `path`.
    ///
    /// # Errors
    /// I/O (including a missing file).
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Opens an existing file for reading and writing.
    ///
    /// # Errors
    /// I/O.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>>;
    /// Creates a new, empty file (an error if it exists).
    ///
    /// # Errors
    /// I/O.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>>;
    /// Renames `from` to `to` (replacing `to`); durable after [`Disk::sync_dir`].
    ///
    /// # Errors
    /// I/O.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes `path`; durable after [`Disk::sync_dir`].
    ///
    /// # Errors
    /// I/O.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// `fsync` of the directory: its entries (creations, renames,
    /// deletions) survive a crash.
    ///
    /// # Errors
    /// I/O.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

#[derive(Debug)]
struct RealFile(File);

impl DiskFile for RealFile {
    fn write_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        self.0.write_all_at(bytes, at)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Disk for RealDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn read_at(&self, path: &Path, at: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = File::open(path)?;
        let mut bytes = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match file.read_at(&mut bytes[got..], at + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        bytes.truncate(got);
        Ok(bytes)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(RealFile(file)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(RealFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A number no earlier call gave (in all likelihood): hashed from a counter
/// and the time with a random key.
pub fn fresh_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The disk the journal uses unless told otherwise.
pub fn real() -> Arc<dyn Disk> {
    Arc::new(RealDisk)
}
