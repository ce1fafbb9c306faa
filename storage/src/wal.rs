//! The write-ahead journal: what makes a group durable before anyone hears
//! of it. One record per commit (the whole batch the group wrote), appended
//! to a preallocated segment file of our own and made durable on the
//! writer's thread, with no hand-off to another thread: written whole
//! blocks at a time, which the real disk takes straight (`O_DIRECT |
//! O_DSYNC`, see [`RealDisk`]), then [`Wal::sync`] (an `fdatasync` where
//! any write was buffered). sled receives the same batch right after, in
//! memory, and is flushed in the background; once sled holds a segment's
//! records durably the segment is zeroed (off the writer's thread) and
//! reused.
//!
//! A segment starts with a 16-byte header: `OTCWAL01` and a random salt,
//! new each time the file is (re)used. A record is framed as
//! `len: u32 | seq: u64 | crc: u32 | payload`, little-endian, the CRC32C
//! covering the salt, `len`, `seq` and the payload: a record of the file's
//! previous life, or bytes a user put in an attachment, never pass for one.
//!
//! Reading it back (recovery): records follow each other with consecutive
//! numbers across segments (ordered by the first number in their names).
//! The log ends at the first frame that is not the next record. Past the
//! end there are only zeros (segments are zero-filled before use), so
//! anything else there is a torn write: dropped, zeroed and reported. If a
//! good later record exists after a bad one, an acknowledged record was
//! damaged: recovery refuses to start, naming the segment and offset.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::StorageError;

#[cfg_attr(
    not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )),
    path = "wal/aio_none.rs"
)]
mod aio;
pub mod disk;
mod frame;
mod open;
mod spares;

pub use disk::{BLOCK, Bug, Disk, DiskFile, RealDisk};
pub use frame::frame;
use frame::{block_floor, frame_into, header};
pub use spares::Spares;

/// Bytes before each payload.
pub const HEADER: usize = 16;
/// Bytes of a segment's own header (magic and salt).
pub const SEGMENT_HEADER: usize = 16;
/// Default size of a segment file.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const MAGIC: &[u8; 8] = b"OTCWAL01";
const SUFFIX: &str = ".wal";
/// How far past the expected record a later one may be numbered.
const SEQ_REACH: u64 = 1 << 40;

/// A segment file on disk.
#[derive(Debug, Clone)]
struct SegmentFile {
    path: PathBuf,
    first_seq: u64,
}

/// What recovery found in the journal.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records after the checkpoint, in order: (sequence, payload).
    pub records: Vec<(u64, Vec<u8>)>,
    /// A torn last write (never acknowledged) that was dropped and zeroed:
    /// (segment file, offset).
    pub torn_tail: Option<(PathBuf, u64)>,
    /// The last sequence number in the journal (the checkpoint's if none
    /// follows it).
    pub last_seq: u64,
}

/// The journal, open for appending.
#[derive(Debug)]
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    segment_bytes: u64,
    file: Arc<dyn DiskFile>,
    path: PathBuf,
    salt: u64,
    /// Where the next record goes in `file`.
    offset: u64,
    /// The file's bytes from the block boundary at or before `offset` up
    /// to it: each record is written from that boundary to the next one
    /// after it (see [`Wal::write`]).
    tail: Vec<u8>,
    /// The file's size (preallocated).
    capacity: u64,
    next_seq: u64,
    /// Closed segments, oldest first: (path, last sequence in it).
    closed: Vec<(PathBuf, u64)>,
    spares: Arc<Spares>,
    /// A write or sync failed: nothing more is written (never retried).
    failed: Option<String>,
}

/// The smallest unit a disk writes whole.
const SECTOR: usize = 512;

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

impl Wal {
    /// A journal whose next record, `next_seq`, starts a new segment.
    fn start(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        segment_bytes: u64,
        next_seq: u64,
        closed: Vec<(PathBuf, u64)>,
        spares: Arc<Spares>,
    ) -> Result<Wal, StorageError> {
        let path = dir.join(segment_name(next_seq));
        let (file, capacity) = spares.take_or_make(dir, &path, segment_bytes)?;
        let salt = Self::write_header(&**disk, &*file)?;
        Ok(Wal {
            disk: Arc::clone(disk),
            dir: dir.to_owned(),
            segment_bytes,
            file,
            path,
            salt,
            offset: SEGMENT_HEADER as u64,
            tail: header(salt).to_vec(),
            capacity,
            next_seq,
            closed,
            spares,
            failed: None,
        })
    }

    fn write_header(disk: &dyn Disk, file: &dyn DiskFile) -> Result<u64, StorageError> {
        let salt = disk.salt();
        file.write_at(&header(salt), 0)?;
        file.sync_data()?;
        Ok(salt)
    }

    /// The shared pool of spare segments (the flusher zeroes used ones).
    pub fn spares(&self) -> Arc<Spares> {
        Arc::clone(&self.spares)
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Fails if a write or sync failed before (the journal is stopped).
    ///
    /// # Errors
    /// The earlier failure.
    pub fn check(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(e) => Err(StorageError::Stopped(format!("the journal failed: {e}"))),
            None => Ok(()),
        }
    }

    /// Stops the journal as a failed write or sync would (fault injection,
    /// or sled failing partway through applying a synced record).
    pub fn poison(&mut self, why: &str) {
        self.failed = Some(why.to_owned());
    }

    fn fail(&mut self, e: StorageError) -> StorageError {
        self.failed = Some(e.to_string());
        e
    }

    /// Writes record `next_seq()` (not yet durable: see [`Wal::sync`]),
    /// starting a new segment when this one is full.
    ///
    /// # Errors
    /// I/O, or an earlier failure: the journal writes nothing more.
    pub fn write(&mut self, payload: &[u8]) -> Result<u64, StorageError> {
        self.write_while(payload, &mut || ())
    }

    /// [`Wal::write`], calling `meanwhile` at most once: while the record
    /// goes to the disk, where the disk can do both at once (see
    /// [`DiskFile::write_at_while`]). It is not called if the write fails
    /// before it starts.
    ///
    /// # Errors
    /// As [`Wal::write`].
    pub fn write_while(
        &mut self,
        payload: &[u8],
        meanwhile: &mut dyn FnMut(),
    ) -> Result<u64, StorageError> {
        self.check()?;
        let seq = self.next_seq;
        if u32::try_from(payload.len()).is_err() {
            return Err(StorageError::Encode(
                "a journal record of 4 GiB or more".into(),
            ));
        }
        // Room first: a new segment brings its own salt.
        if let Err(e) = self.place((HEADER + payload.len()) as u64) {
            return Err(self.fail(e));
        }
        // Written from the block boundary before it to the one after it
        // (past `offset` the segment holds zeros, written again as they
        // are), so the real disk can take it straight, durable as it
        // returns (see `RealDisk`). The blocks it shares with the record
        // before hold that record's bytes again, unchanged.
        let start = self.offset - self.tail.len() as u64;
        let mut out = std::mem::take(&mut self.tail);
        out.reserve(HEADER + payload.len() + BLOCK);
        let framed = match frame_into(&mut out, self.salt, seq, payload) {
            Ok(n) => n,
            Err(e) => {
                self.tail = out;
                return Err(e);
            }
        };
        let end = (start + out.len() as u64)
            .next_multiple_of(BLOCK as u64)
            .min(self.capacity);
        out.resize(usize::try_from(end - start).unwrap_or(out.len()), 0);
        if let Err(e) = self.file.write_at_while(&out, start, meanwhile) {
            return Err(self.fail(e.into()));
        }
        self.offset += framed as u64;
        self.next_seq += 1;
        if self.offset > self.capacity / 2 {
            self.spares.want_one();
        }
        // The new tail, in a buffer of its own (`out` may be a large
        // group's). `start` is on a block edge unless the segment file was
        // shorter than its header (then the tail is empty and stays
        // consistent: `start` is where its bytes begin).
        let from = usize::try_from(block_floor(self.offset).saturating_sub(start)).unwrap_or(0);
        let to = usize::try_from(self.offset - start).unwrap_or(out.len());
        self.tail = out.get(from..to).unwrap_or_default().to_vec();
        Ok(seq)
    }

    /// Makes room for a frame of `need` bytes.
    fn place(&mut self, need: u64) -> Result<(), StorageError> {
        if self.offset + need <= self.capacity {
            return Ok(());
        }
        if self.offset == SEGMENT_HEADER as u64 {
            // Nothing in this segment yet: it grows to hold the record (a
            // file shorter than its header has the header written: it is
            // kept).
            let size = SEGMENT_HEADER as u64 + need;
            spares::zero_fill(&*self.file, self.capacity.max(self.offset), size)?;
            self.file.sync_data()?;
            self.capacity = size;
            return Ok(());
        }
        // Everything written to the full segment is durable before the
        // next takes a record: `Wal::sync` syncs only the current one (a
        // no-op when each record was synced, as commits do).
        self.file.sync_data()?;
        let path = self.dir.join(segment_name(self.next_seq));
        if path == self.path {
            return Err(StorageError::Inconsistent(format!(
                "journal segment {} would replace itself",
                path.display()
            )));
        }
        let size = self.segment_bytes.max(SEGMENT_HEADER as u64 + need);
        let (file, capacity) = self.spares.take_or_make(&self.dir, &path, size)?;
        let salt = Self::write_header(&*self.disk, &*file)?;
        let old = std::mem::replace(&mut self.path, path);
        self.closed.push((old, self.next_seq - 1));
        self.file = file;
        self.salt = salt;
        self.offset = SEGMENT_HEADER as u64;
        self.tail = header(salt).to_vec();
        self.capacity = capacity;
        Ok(())
    }

    /// `fdatasync` of the current segment (none is needed on the real disk
    /// if every write since the last went straight to it): every record
    /// written is durable.
    /// Never retried after a failure (the page cache may have dropped the
    /// data): the journal stops.
    ///
    /// # Errors
    /// I/O, or an earlier failure.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check()?;
        if self.disk.injects(Bug::AckBeforeSync) {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            if self.disk.injects(Bug::RetryFailedSync) && self.file.sync_data().is_ok() {
                return Ok(());
            }
            return Err(self.fail(e.into()));
        }
        Ok(())
    }

    /// sled holds every record up to `durable`: closed segments wholly at or
    /// below it go to the spares, to be zeroed and reused.
    ///
    /// # Errors
    /// I/O renaming a segment.
    pub fn checkpoint(&mut self, durable: u64) -> Result<(), StorageError> {
        let mut retired = Vec::new();
        while let Some((_, last)) = self.closed.first() {
            if *last > durable {
                break;
            }
            let (path, _) = self.closed.remove(0);
            retired.push(self.spares.retire(&self.dir, &path)?);
        }
        if !retired.is_empty() {
            // The renames are durable before the flusher may zero a file:
            // never a live name over zeroed content after a crash.
            self.disk.sync_dir(&self.dir)?;
            self.spares.add_dirty(retired)?;
        }
        Ok(())
    }

    /// Segment files in use (closed ones and the current one).
    pub fn segments(&self) -> usize {
        self.closed.len() + 1
    }

    /// Where the next record goes in the current segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A list of spare files shared with the flusher.
type Shared = Mutex<Vec<PathBuf>>;

#[cfg(test)]
mod block_tests;
#[cfg(test)]
mod segment_tests;
#[cfg(test)]
mod test_disk;
#[cfg(test)]
mod tests;
