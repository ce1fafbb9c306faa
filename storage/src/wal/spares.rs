//! Spare segments: a segment whose records sled holds durably is *retired*
//! (renamed `dirty-…`), zeroed off the writer's thread by the background
//! flusher (then renamed `spare-…`), and reused by the next segment, its
//! blocks already allocated. A new file is zero-filled under a temporary
//! name and renamed only once durable, so a crash never leaves a short
//! segment. At open, dirty and temporary files are deleted: they hold
//! nothing sled lacks.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{SUFFIX, SegmentFile, Shared, fresh_salt, sync_dir};
use crate::error::StorageError;

const SPARE: &str = "spare-";
const DIRTY: &str = "dirty-";
const TEMP: &str = "tmp-";

/// Clean spares kept for reuse; more retired segments are deleted.
const KEEP: usize = 2;

/// The pool of spare segment files.
#[derive(Debug, Default)]
pub struct Spares {
    clean: Shared,
    dirty: Shared,
}

/// Writes zeros into `file` from `from` up to `to`.
pub(super) fn zero_fill(file: &File, from: u64, to: u64) -> Result<(), StorageError> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn lock(m: &Shared) -> Result<std::sync::MutexGuard<'_, Vec<PathBuf>>, StorageError> {
    m.lock()
        .map_err(|_| StorageError::Io("the journal's spares lock was poisoned".into()))
}

fn unique(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}{:016x}{SUFFIX}", fresh_salt()))
}

impl Spares {
    /// The segments in `dir`, oldest first, and the spares (dirty and
    /// temporary files are deleted).
    pub(super) fn scan(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(Vec<SegmentFile>, Spares), StorageError> {
        let mut segments = Vec::new();
        let spares = Spares::default();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(DIRTY) || name.starts_with(TEMP) {
                std::fs::remove_file(&path)?;
            } else if name.starts_with(SPARE) {
                let keep = {
                    let clean = lock(&spares.clean)?;
                    clean.len() < KEEP
                };
                if keep && std::fs::metadata(&path)?.len() >= segment_bytes {
                    lock(&spares.clean)?.push(path);
                } else {
                    std::fs::remove_file(&path)?;
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
    ) -> Result<(File, u64), StorageError> {
        let spare = {
            let mut clean = lock(&self.clean)?;
            let fits = clean
                .iter()
                .position(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= size));
            fits.map(|i| clean.swap_remove(i))
        };
        let from = match spare {
            Some(p) => p,
            None => {
                let temp = unique(dir, TEMP);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&temp)?;
                zero_fill(&file, 0, size)?;
                file.sync_all()?;
                temp
            }
        };
        std::fs::rename(&from, path)?;
        sync_dir(dir)?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let capacity = file.metadata()?.len();
        Ok((file, capacity))
    }

    /// Retires a segment whose records sled holds: renamed dirty. The
    /// caller syncs the directory, then hands the files to [`Spares::add_dirty`].
    pub(super) fn retire(&self, dir: &Path, path: &Path) -> Result<PathBuf, StorageError> {
        let dirty = unique(dir, DIRTY);
        std::fs::rename(path, &dirty)?;
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
                std::fs::remove_file(&path)?;
                continue;
            }
            let file = OpenOptions::new().write(true).open(&path)?;
            let len = file.metadata()?.len();
            zero_fill(&file, 0, len)?;
            file.sync_data()?;
            let spare = unique(dir, SPARE);
            std::fs::rename(&path, &spare)?;
            sync_dir(dir)?;
            lock(&self.clean)?.push(spare);
        }
    }
}
