//! The journal's view of the disk: the few file operations it uses, behind
//! a trait, so a simulator can put a faulty disk under it (writes lost on a
//! crash unless synced, torn writes, failing `fdatasync`, flipped bits on
//! read). [`RealDisk`] is the file system.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
#[cfg(target_os = "linux")]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::aio::Aio;

/// The block the journal writes whole: a write that starts and ends on
/// this boundary goes straight to the real disk (see [`RealDisk`]).
pub const BLOCK: usize = 4096;

/// The largest aligned buffer a file keeps between direct writes.
const SCRATCH_KEPT: usize = 1 << 20;

/// A file open for reading and writing.
#[allow(clippy::len_without_is_empty)] // A file, not a collection.
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Writes all of `bytes` at `at` (not durable until a sync).
    ///
    /// # Errors
    /// I/O.
    fn write_at(&self, bytes: &[u8], at: u64) -> io::Result<()>;
    /// [`DiskFile::write_at`], calling `meanwhile` once: while the write is
    /// under way where the disk can do both at once (the real disk, for a
    /// write that goes straight to the device), else after it. It is called
    /// whatever comes of the write.
    ///
    /// # Errors
    /// I/O.
    fn write_at_while(&self, bytes: &[u8], at: u64, meanwhile: &mut dyn FnMut()) -> io::Result<()> {
        let written = self.write_at(bytes, at);
        meanwhile();
        written
    }
    /// [`DiskFile::write_at`], never sent straight to the disk even in
    /// whole blocks: for zeroing a file, where one `fdatasync` after many
    /// writes beats a synchronous write each.
    ///
    /// # Errors
    /// I/O.
    fn write_buffered_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        self.write_at(bytes, at)
    }
    /// `fdatasync`: the data written so far (and the size) survive a crash.
    /// The real disk may skip it when everything written through this
    /// handle since its last one went straight to the disk, durably; the
    /// first on a handle is always done (the file may hold writes of an
    /// earlier handle, or process, that only the page cache has).
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
///
/// A write of whole [`BLOCK`]s (the journal's records, see `Wal::write`)
/// goes to the disk directly and is durable when it returns (`O_DIRECT |
/// O_DSYNC`): one system call that waits for the device, skipping the page
/// cache and its writeback, about 25 µs sooner than `pwrite` and
/// `fdatasync` here (BENCHMARKS.md). Any other write is buffered and
/// durable after [`DiskFile::sync_data`], which is an `fdatasync` only if
/// such a write came since the last one, or none was done yet on this
/// handle. Where the file system refuses direct I/O, every write is
/// buffered.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

#[derive(Debug)]
struct RealFile {
    /// Reads, the size, and the writes that are not whole blocks.
    file: File,
    /// While the file system takes direct writes (one it refuses ends
    /// them): the same file opened `O_DIRECT | O_DSYNC`.
    direct: Mutex<Option<Direct>>,
    /// An `fdatasync` is owed: a buffered write came since the last one,
    /// or none was done yet on this handle.
    unsynced: AtomicBool,
}

#[derive(Debug)]
struct Direct {
    /// Writes go through native AIO, so the caller's `meanwhile` runs
    /// while the device works (`None` where the kernel refuses it: then
    /// each write is a synchronous `pwrite`). First, so it is dropped
    /// first: closing it waits for a write still in flight, which may be
    /// using `scratch`.
    aio: Option<Aio>,
    file: File,
    /// An aligned copy of the bytes a write sends (the caller's need not
    /// be aligned in memory).
    scratch: Vec<u8>,
}

impl RealFile {
    fn new(file: File, path: &Path) -> RealFile {
        let direct = open_direct(path)
            .filter(|direct| same_file(&file, direct))
            .map(|file| Direct {
                aio: Aio::new().ok(),
                file,
                scratch: Vec::new(),
            });
        RealFile {
            file,
            direct: Mutex::new(direct),
            unsynced: AtomicBool::new(true),
        }
    }

    /// Writes through the page cache (durable after an `fdatasync`).
    fn write_buffered(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        let written = self.file.write_all_at(bytes, at);
        // After the write (whatever came of it): a sync that clears the
        // flag between the two would not cover the write.
        self.unsynced.store(true, Ordering::Release);
        written
    }

    /// Writes `bytes` straight to the disk, durably, calling `meanwhile`
    /// while the device works (or after the write); `None` if they are not
    /// whole blocks or this file takes no direct writes (then nothing was
    /// written, or it is all to be written again, and `meanwhile` may or
    /// may not have run).
    fn write_direct(
        &self,
        bytes: &[u8],
        at: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> Option<io::Result<()>> {
        let whole = |n: u64| n.is_multiple_of(BLOCK as u64);
        if bytes.is_empty() || !whole(at) || !whole(bytes.len() as u64) {
            return None;
        }
        let Ok(mut direct) = self.direct.lock() else {
            return Some(Err(io::Error::other(
                "the journal's direct-write lock was poisoned",
            )));
        };
        let Direct { aio, file, scratch } = direct.as_mut()?;
        scratch.resize(bytes.len() + BLOCK, 0);
        let skip = (BLOCK - scratch.as_ptr() as usize % BLOCK) % BLOCK;
        let aligned = &mut scratch[skip..skip + bytes.len()];
        aligned.copy_from_slice(bytes);
        let written = match aio
            .as_ref()
            .map(|aio| aio.write_while(file, aligned, at, meanwhile))
        {
            Some(Ok(true)) => Ok(()),
            Some(Err(e)) => {
                // Closing the context waits for the write if the wait for
                // it is what failed: `scratch` is not reused under it.
                *aio = None;
                Err(e)
            }
            // Not taken by AIO (or no AIO): synchronously.
            Some(Ok(false)) | None => {
                let written = file.write_all_at(aligned, at);
                meanwhile();
                written
            }
        };
        if scratch.len() > SCRATCH_KEPT {
            // A large group's record: not kept for the next.
            *scratch = Vec::new();
        }
        match written {
            // Refused (a file system that opens direct files but wants
            // another alignment): buffered from now on, this write too,
            // whole, over whatever part of it may have landed.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                *direct = None;
                None
            }
            done => Some(done),
        }
    }

    #[cfg(test)]
    fn writes_direct(&self) -> bool {
        self.direct.lock().is_ok_and(|d| d.is_some())
    }
}

impl DiskFile for RealFile {
    fn write_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        self.write_at_while(bytes, at, &mut || ())
    }

    fn write_at_while(&self, bytes: &[u8], at: u64, meanwhile: &mut dyn FnMut()) -> io::Result<()> {
        // Once, even if a direct write that ran it is refused and buffered.
        let mut meanwhile = Some(meanwhile);
        let mut once = || {
            if let Some(f) = meanwhile.take() {
                f();
            }
        };
        let written = match self.write_direct(bytes, at, &mut once) {
            Some(done) => done,
            None => self.write_buffered(bytes, at),
        };
        once();
        written
    }

    fn write_buffered_at(&self, bytes: &[u8], at: u64) -> io::Result<()> {
        self.write_buffered(bytes, at)
    }

    fn sync_data(&self) -> io::Result<()> {
        if !self.unsynced.swap(false, Ordering::AcqRel) {
            // Nothing written through this handle since its last sync but
            // straight to the disk, durable already.
            return Ok(());
        }
        self.file.sync_data().inspect_err(|_| {
            self.unsynced.store(true, Ordering::Release);
        })
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

/// `path` opened for direct, synchronous writes, where the system has them.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// Whether two handles are of the same file (the second was opened by
/// name: it must not be another file put there meanwhile).
fn same_file(a: &File, b: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
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
        Ok(Arc::new(RealFile::new(file, path)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(RealFile::new(file, path)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file_in(dir: &Path) -> (PathBuf, RealFile) {
        let path = dir.join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        let real = RealFile::new(file, &path);
        (path, real)
    }

    #[test]
    fn whole_blocks_from_unaligned_memory_go_straight_to_the_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, file) = file_in(dir.path());
        assert!(
            file.unsynced.load(Ordering::Acquire),
            "a new handle owes its first fdatasync"
        );
        file.write_at(&vec![0u8; 3 * BLOCK], 0).expect("zeros");
        file.sync_data().expect("sync");
        // Bytes at an odd address: the file copies them to aligned memory.
        let bytes: Vec<u8> = (0..2 * BLOCK + 1).map(|i| (i % 251) as u8).collect();
        let odd = &bytes[1..];
        file.write_at(odd, BLOCK as u64).expect("direct");
        if file.writes_direct() {
            assert!(
                !file.unsynced.load(Ordering::Acquire),
                "durable on return: nothing left for fdatasync"
            );
        }
        file.sync_data().expect("sync");
        let back = RealDisk.read(&path).expect("read");
        assert_eq!(&back[..BLOCK], &vec![0u8; BLOCK][..]);
        assert_eq!(&back[BLOCK..], odd);
    }

    /// `meanwhile` runs exactly once beside a write: a direct one (through
    /// AIO where the kernel has it) and a buffered one.
    #[test]
    fn meanwhile_runs_once_beside_each_kind_of_write() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, file) = file_in(dir.path());
        file.write_at(&vec![0u8; 2 * BLOCK], 0).expect("zeros");
        file.sync_data().expect("sync");
        let mut runs = 0;
        let block: Vec<u8> = (0..BLOCK).map(|i| (i % 253) as u8).collect();
        file.write_at_while(&block, BLOCK as u64, &mut || runs += 1)
            .expect("direct");
        assert_eq!(runs, 1);
        file.write_at_while(b"abc", 5, &mut || runs += 1)
            .expect("buffered");
        assert_eq!(runs, 2);
        file.sync_data().expect("sync");
        let back = RealDisk.read(&path).expect("read");
        assert_eq!(&back[5..8], b"abc");
        assert_eq!(&back[BLOCK..], &block[..]);
    }

    #[test]
    fn other_writes_are_buffered_until_synced() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, file) = file_in(dir.path());
        file.write_at(b"header", 0).expect("write");
        assert!(
            file.unsynced.load(Ordering::Acquire),
            "an fdatasync is owed"
        );
        file.sync_data().expect("sync");
        assert!(!file.unsynced.load(Ordering::Acquire));
        file.write_buffered_at(&vec![0u8; BLOCK], BLOCK as u64)
            .expect("zeros");
        assert!(
            file.unsynced.load(Ordering::Acquire),
            "whole blocks asked to be buffered are"
        );
        file.sync_data().expect("sync");
        file.write_at(&vec![7u8; BLOCK], BLOCK as u64)
            .expect("block");
        file.write_at(b"!", 3).expect("byte");
        file.sync_data().expect("sync");
        let back = RealDisk.read(&path).expect("read");
        assert_eq!(&back[..7], b"hea!er\0");
        assert_eq!(&back[BLOCK..], &vec![7u8; BLOCK][..]);
        assert_eq!(file.len().expect("len"), 2 * BLOCK as u64);
    }
}
