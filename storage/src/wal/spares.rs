//! Spare segments: a segment whose records sled holds durably is *retired*
//! (renamed `dirty-…`), zeroed off the writer's thread by the background
//! flusher (then renamed `spare-…`), and reused by the next segment, its
//! blocks already allocated. A new file is zero-filled under a temporary
//! name and renamed only once durable, so a crash never leaves a short
//! segment. At open, dirty and temporary files are deleted: they hold
//! nothing sled lacks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::disk::{Disk, DiskFile};
use super::{SUFFIX, SegmentFile, Shared};
use crate::error::StorageError;

const SPARE: &str = "spare-";
const DIRTY: &str = "dirty-";
const TEMP: &str = "tmp-";

/// Clean spares kept for reuse; more retired segments are deleted.
const KEEP: usize = 2;

/// The pool of spare segment files.
#[derive(Debug)]
pub struct Spares {
    disk: Arc<dyn Disk>,
    /// The journal's segment size: what a spare made ahead of need holds.
    segment_bytes: u64,
    /// The writer's segment is past half full: a spare is wanted.
    wanted: AtomicBool,
    /// Making one ahead failed: not tried again before the next segment
    /// (a full disk would otherwise be filled and emptied ten times a
    /// second, under sled's feet).
    gave_up: AtomicBool,
    clean: Shared,
    dirty: Shared,
}

/// Writes zeros into `file` from `from` up to `to`, through the page cache
/// (one `fdatasync` after them all is quickest: for the writer's thread).
pub(super) fn zero_fill(file: &dyn DiskFile, from: u64, to: u64) -> Result<(), StorageError> {
    write_zeros(from, to, 1 << 20, |zeros, at| {
        file.write_buffered_at(zeros, at)
    })
}

/// How much of a spare one write zeroes off the writer's thread.
const ZEROS_PER_WRITE: usize = 256 * 1024;

/// Writes zeros over all of `file` (`len` bytes) a piece at a time,
/// straight to the disk where it can (the real disk), so a journal write
/// meanwhile queues behind one piece, not behind 64 MiB of the page cache
/// written back at once (groups took 8–34 ms then, against 2–3).
fn zero_gently(file: &dyn DiskFile, len: u64) -> Result<(), StorageError> {
    write_zeros(0, len, ZEROS_PER_WRITE, |zeros, at| {
        file.write_at(zeros, at)
    })
}

/// Zeros from `from` up to `to`, `piece` bytes per `write`.
fn write_zeros(
    from: u64,
    to: u64,
    piece: usize,
    write: impl Fn(&[u8], u64) -> std::io::Result<()>,
) -> Result<(), StorageError> {
    let zeros = vec![0u8; piece];
    let mut at = from;
    while at < to {
        let n = (to - at).min(piece as u64) as usize;
        write(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn lock(m: &Shared) -> Result<std::sync::MutexGuard<'_, Vec<PathBuf>>, StorageError> {
    m.lock()
        .map_err(|_| StorageError::Io("the journal's spares lock was poisoned".into()))
}

fn unique(disk: &dyn Disk, dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}{:016x}{SUFFIX}", disk.salt()))
}

impl Spares {
    /// The segments in `dir`, oldest first, and the spares (dirty and
    /// temporary files are deleted).
    pub(super) fn scan(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(Vec<SegmentFile>, Spares), StorageError> {
        let mut segments = Vec::new();
        let spares = Spares {
            disk: Arc::clone(disk),
            segment_bytes,
            wanted: AtomicBool::new(false),
            gave_up: AtomicBool::new(false),
            clean: Shared::default(),
            dirty: Shared::default(),
        };
        for path in disk.list(dir)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(DIRTY) || name.starts_with(TEMP) {
                disk.remove(&path)?;
            } else if name.starts_with(SPARE) {
                let keep = {
                    let clean = lock(&spares.clean)?;
                    clean.len() < KEEP
                };
                if keep && disk.len(&path)? >= segment_bytes {
                    lock(&spares.clean)?.push(path);
                } else {
                    disk.remove(&path)?;
                }
            } else if let Some(stem) = name.strip_suffix(SUFFIX)
                && let Ok(first_seq) = stem.parse::<u64>()
            {
                segments.push(SegmentFile { path, first_seq });
            }
        }
        segments.sort_by_key(|s| s.first_seq);
        Ok((segments, spares))
    }

    /// A zeroed file of at least `size` bytes at `path`: a clean spare
    /// renamed, or a new file made durable before it gets its name.
    pub(super) fn take_or_make(
        &self,
        dir: &Path,
        path: &Path,
        size: u64,
    ) -> Result<(Arc<dyn DiskFile>, u64), StorageError> {
        // A new segment: a spare may be made ahead for it again.
        self.gave_up.store(false, Ordering::Relaxed);
        let disk = &self.disk;
        let spare = {
            let mut clean = lock(&self.clean)?;
            let fits = clean
                .iter()
                .position(|p| disk.len(p).is_ok_and(|len| len >= size));
            fits.map(|i| clean.swap_remove(i))
        };
        let from = match spare {
            Some(p) => p,
            None => {
                let temp = unique(&**disk, dir, TEMP);
                self.make_zeroed(&temp, size, false)?;
                temp
            }
        };
        disk.rename(&from, path)?;
        disk.sync_dir(dir)?;
        let file = disk.open(path)?;
        let capacity = file.len()?;
        Ok((file, capacity))
    }

    /// Retires a segment whose records sled holds: renamed dirty. The
    /// caller syncs the directory, then hands the files to [`Spares::add_dirty`].
    pub(super) fn retire(&self, dir: &Path, path: &Path) -> Result<PathBuf, StorageError> {
        let dirty = unique(&*self.disk, dir, DIRTY);
        self.disk.rename(path, &dirty)?;
        Ok(dirty)
    }

    /// Retired files, their renames durable: the flusher may zero them.
    pub(super) fn add_dirty(&self, paths: Vec<PathBuf>) -> Result<(), StorageError> {
        lock(&self.dirty)?.extend(paths);
        Ok(())
    }

    /// Asks for a spare ahead of need (the writer's segment is past half
    /// full): [`Spares::clean_up`] makes one if none is clean.
    pub(super) fn want_one(&self) {
        if !self.wanted.load(Ordering::Relaxed) && !self.gave_up.load(Ordering::Relaxed) {
            self.wanted.store(true, Ordering::Relaxed);
        }
    }

    /// Zeroes retired segments into clean spares (at most [`KEEP`]; the rest
    /// are deleted), and makes one if the writer wants one and none is
    /// clean, so it finds a spare when its segment fills (making one there
    /// took 230 ms of the writer's time, every commit waiting). Runs on the
    /// background flusher's thread.
    ///
    /// # Errors
    /// I/O.
    pub fn clean_up(&self, dir: &Path) -> Result<(), StorageError> {
        while let Some(path) = lock(&self.dirty)?.pop() {
            if lock(&self.clean)?.len() >= KEEP {
                self.disk.remove(&path)?;
                continue;
            }
            let file = self.disk.open(&path)?;
            let len = file.len()?;
            zero_gently(&*file, len)?;
            file.sync_data()?;
            self.add_clean(dir, &path)?;
        }
        if self.wanted.swap(false, Ordering::Relaxed) && lock(&self.clean)?.is_empty() {
            // Only ahead of need: if it fails (a full disk, say), nothing
            // stops and nothing is left behind; the writer makes one when
            // its segment fills, and fails only then.
            let temp = unique(&*self.disk, dir, TEMP);
            let made = self
                .make_zeroed(&temp, self.segment_bytes, true)
                .and_then(|()| self.add_clean(dir, &temp));
            if made.is_err() {
                let _ = self.disk.remove(&temp);
                self.gave_up.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A new file of `size` zeros at `temp`, durable; written `gently` off
    /// the writer's thread (see [`zero_gently`]).
    fn make_zeroed(&self, temp: &Path, size: u64, gently: bool) -> Result<(), StorageError> {
        let file = self.disk.create_new(temp)?;
        if gently {
            zero_gently(&*file, size)?;
        } else {
            zero_fill(&*file, 0, size)?;
        }
        file.sync_data()?;
        Ok(())
    }

    /// Renames a zeroed file into the clean spares, durably (if the rename
    /// cannot be made durable, the file goes: nothing is left outside the
    /// pool).
    fn add_clean(&self, dir: &Path, zeroed: &Path) -> Result<(), StorageError> {
        let spare = unique(&*self.disk, dir, SPARE);
        self.disk.rename(zeroed, &spare)?;
        if let Err(e) = self.disk.sync_dir(dir) {
            let _ = self.disk.remove(&spare);
            return Err(e.into());
        }
        lock(&self.clean)?.push(spare);
        Ok(())
    }
}
