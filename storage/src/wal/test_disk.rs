//! The real disk with a test's changes to a few of its calls: one
//! pass-through for the journal's tests, each test saying only what it
//! changes.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::{Disk, DiskFile, RealDisk};

/// What a test changes; by default nothing.
pub(super) trait Changes: Debug + Send + Sync {
    /// The bytes a whole read of `path` returns.
    fn read(&self, _path: &Path, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    /// Before a new file is made at `path`: an error refuses it.
    ///
    /// # Errors
    /// The test's.
    fn creating(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    /// A file opened or made at `path`, as the journal gets it.
    fn file(&self, _path: &Path, file: Arc<dyn DiskFile>) -> Arc<dyn DiskFile> {
        file
    }
}

/// [`RealDisk`], changed by `C`.
#[derive(Debug, Default)]
pub(super) struct RealBut<C>(pub C);

impl<C: Changes> Disk for RealBut<C> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealDisk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealDisk.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.read(path, RealDisk.read(path)?))
    }
    fn read_at(&self, path: &Path, at: u64, len: usize) -> io::Result<Vec<u8>> {
        RealDisk.read_at(path, at, len)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        Disk::len(&RealDisk, path)
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        Ok(self.0.file(path, RealDisk.open(path)?))
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        self.0.creating(path)?;
        Ok(self.0.file(path, RealDisk.create_new(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealDisk.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealDisk.sync_dir(dir)
    }
}
