//! Spare segments: a segment whose records sled holds durably is *retired*
//! (renamed `dirty-…`), zeroed off the writer's thread by the background
//! flusher (then renamed `spare-…`), and reused by the next segment, its
//! blocks already allocated. A new file is zero-filled under a temporary
//! name and renamed only once durable, so a crash never leaves a short
//! segment. At open, dirty and temporary files are deleted: they hold
//! nothing sled lacks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    clean: Shared,
    dirty: Shared,
}

/// Writes zeros into `file` from `from` up to `to`.
pub(super) fn zero_fill(file: &dyn DiskFile, from: u64, to: u64) -> Result<(), StorageError> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_buffered_at(&zeros[..n], at)?;
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
                let file = disk.create_new(&temp)?;
                zero_fill(&*file, 0, size)?;
                file.sync_data()?;
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

    /// Zeroes retired segments into clean spares (at most [`KEEP`]; the rest
    /// are deleted). Runs on the background flusher's thread.
    ///
    /// # Errors
    /// I/O.
    pub fn clean_up(&self, dir: &Path) -> Result<(), StorageError> {
        loop {
            let Some(path) = lock(&self.dirty)?.pop() else {
                return Ok(());
            };
            if lock(&self.clean)?.len() >= KEEP {
                self.disk.remove(&path)?;
                continue;
            }
            let file = self.disk.open(&path)?;
            let len = file.len()?;
            zero_fill(&*file, 0, len)?;
            file.sync_data()?;
            let spare = unique(&*self.disk, dir, SPARE);
            self.disk.rename(&path, &spare)?;
            self.disk.sync_dir(dir)?;
            lock(&self.clean)?.push(spare);
        }
    }
}
