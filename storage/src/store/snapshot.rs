//! Snapshots of the engine in sled, written beside commits.
//!
//! A snapshot is the engine's state as of a journal position, in chunks
//! under `s/<n>`, and a header (`msnapshot`) naming the chunks, their
//! length and checksum. It is written change by change, never as one sled
//! batch (a batch holds sled's write lock throughout: 4,700 changes took
//! 128 ms, and every commit waited), so it can run on a thread of its own
//! while the writer commits:
//!
//! 1. the chunks go to whichever of two places (chunk numbers from 0, or
//!    from 2^40) the current snapshot does not use, over the snapshot
//!    before it: the snapshot a restart would load is never touched, and
//!    sled's keys are written over in place, as a batch over the same keys
//!    did (new keys each time, the old removed, left sled's `db` 7% larger
//!    on 1M trades);
//! 2. sled is flushed: the chunks are durable (sled's recovery of a prefix
//!    of its writes would already keep them ahead of the header; this
//!    does not lean on it);
//! 3. the header is switched to them, and sled flushed again;
//! 4. then chunks in neither snapshot (past the new one's end, or left by
//!    an attempt a crash cut short), and the engine's journal entries the
//!    snapshot covers are removed, one
//!    key at a time (made durable by a later flush: the flusher's after
//!    the next commit, or a clean close).
//!
//! A crash anywhere leaves a header whose chunks are all there, and the
//! engine's journal after its position. Below that position a crash may
//! leave a journal record half removed: reading the journal starts at the
//! snapshot's position (`Store::journal_from`), so it is never read, and
//! the next snapshot removes the rest. Nothing here touches `mwalseq` or
//! the journal of our own: a snapshot claims nothing about them. It reads
//! sled as it is, without putting the group a commit left aside in first
//! (`behind.rs`): no snapshot key is ever in a group, and a journal entry
//! below the position that is still aside is removed by the next snapshot.
//! These writes interleave with the commits' changes, and touch only `s/`,
//! `msnapshot`, which no commit writes, and `j/` below the position, which
//! is never read.

use otc_engine::{EngineConfig, State};
use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

use super::commit::record_failure;
use super::failed_mark;
use super::{CHUNK_BYTES, Store};
use crate::codec::{self, kind};
use crate::error::StorageError;

const META_SNAPSHOT: &[u8] = b"msnapshot";

/// Where the second of the two places for a snapshot's chunks starts (the
/// first starts at chunk 0): far past any snapshot's length.
const SECOND_PLACE: u64 = 1 << 40;

/// Where the latest snapshot is and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// Journal entries before this position are in the snapshot.
    pub journal_pos: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Total bytes.
    pub len: u64,
    /// crc32 of the whole state bytes.
    pub crc: u32,
    /// The number of the first chunk (`s/<first>`): 0 or [`SECOND_PLACE`]
    /// (a data dir from this change's first version may hold another).
    pub first: u64,
}

/// The header as stored before it named its first chunk (its chunks
/// start at 0).
#[derive(Deserialize)]
struct HeaderFromZero {
    journal_pos: u64,
    chunks: u64,
    len: u64,
    crc: u32,
}

impl SnapshotHeader {
    /// The numbers of its chunks.
    pub fn chunk_numbers(&self) -> std::ops::Range<u64> {
        self.first..self.first + self.chunks
    }
}

/// The keys of the engine's journal below `pos`, as a range.
fn journal_below(pos: u64) -> ([u8; 9], [u8; 9]) {
    (
        codec::key_u64(kind::JOURNAL, 0),
        codec::key_u64(kind::JOURNAL, pos),
    )
}

/// The snapshot header `tree` holds.
fn header_in(tree: &sled::Tree) -> Result<Option<SnapshotHeader>, StorageError> {
    let Some(bytes) = tree.get(META_SNAPSHOT)? else {
        return Ok(None);
    };
    // The two layouts differ in length, and decoding refuses bytes left
    // over or missing, so at most one of them reads.
    match codec::decode::<SnapshotHeader>(META_SNAPSHOT, &bytes) {
        Ok(h) => Ok(Some(h)),
        Err(e) => match codec::decode::<HeaderFromZero>(META_SNAPSHOT, &bytes) {
            Ok(h) => Ok(Some(SnapshotHeader {
                journal_pos: h.journal_pos,
                chunks: h.chunks,
                len: h.len,
                crc: h.crc,
                first: 0,
            })),
            Err(_) => Err(e),
        },
    }
}

impl Store {
    /// The latest snapshot's header.
    ///
    /// # Errors
    /// The header is damaged.
    pub fn snapshot_header(&self) -> Result<Option<SnapshotHeader>, StorageError> {
        header_in(self.tree()?)
    }

    /// Writes a snapshot of `state` (with the `config` it runs under),
    /// covering the engine's journal entries before `journal_pos`, in the
    /// steps of the module doc; safe beside commits and reads on other
    /// threads, one snapshot at a time. A failure is kept, as a failed
    /// flush is: every later commit and read is refused.
    ///
    /// # Errors
    /// The state does not encode, or sled or its flush fails.
    pub fn write_snapshot(
        &self,
        config: &EngineConfig,
        state: &State,
        journal_pos: u64,
    ) -> Result<(), StorageError> {
        let _one_at_a_time = self
            .snapshotting
            .lock()
            .map_err(|_| StorageError::Io("the snapshot lock was poisoned".into()))?;
        let n = self.faults.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let steps = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.write_snapshot_steps(n, config, state, journal_pos)
        }));
        // A write that failed marks the data dir; a panic does not.
        let (result, failed_to_store) = match steps {
            Ok(r) => {
                let failed = r.as_ref().is_err_and(failed_mark::is_failure_to_store);
                (r, failed)
            }
            Err(_) => (Err(StorageError::Io("a snapshot panicked".into())), false),
        };
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let mark = failed_to_store.then_some(self.dir.as_path());
                record_failure(&self.flushed, mark, format!("a snapshot failed: {e}"));
                Err(e)
            }
        }
    }

    fn write_snapshot_steps(
        &self,
        n: u64,
        config: &EngineConfig,
        state: &State,
        journal_pos: u64,
    ) -> Result<(), StorageError> {
        let bytes = codec::serialize(&(config, state))?;
        let tree = &self.behind;
        let current = header_in(tree)?;
        if let Some(h) = current
            && journal_pos < h.journal_pos
        {
            return Err(StorageError::Inconsistent(format!(
                "a snapshot at journal position {journal_pos} would replace one at {}, whose journal before it is gone",
                h.journal_pos
            )));
        }
        let first = match current {
            Some(h) if h.first < SECOND_PLACE => SECOND_PLACE,
            _ => 0,
        };
        let needed = bytes.len().div_ceil(CHUNK_BYTES) as u64;
        if let Some(h) = current
            && first < h.chunk_numbers().end
            && h.first < first + needed
        {
            return Err(StorageError::Inconsistent(format!(
                "a snapshot's chunks {first}..{} would overlap the current one's {}..{}",
                first + needed,
                h.first,
                h.first + h.chunks
            )));
        }
        let mut chunks = 0;
        for chunk in bytes.chunks(CHUNK_BYTES) {
            tree.insert(
                codec::key_u64(kind::SNAPSHOT, first + chunks),
                codec::frame(chunk),
            )?;
            chunks += 1;
        }
        self.faults
            .check(n, &self.faults.fail_flush_at, "flush failed")?;
        self.flush_parts
            .flush_sled(&self.flushed)
            .map_err(StorageError::Io)?;
        let header = SnapshotHeader {
            journal_pos,
            chunks,
            len: bytes.len() as u64,
            crc: crc32fast::hash(&bytes),
            first,
        };
        tree.insert(META_SNAPSHOT, codec::encode(&header)?)?;
        self.flush_parts
            .flush_sled(&self.flushed)
            .map_err(StorageError::Io)?;
        // Chunks in neither place's snapshot (the one just replaced stays, to
        // be written over by the next), and the journal covered.
        let live = |n: u64| {
            (first..first + chunks).contains(&n)
                || current.is_some_and(|h| h.chunk_numbers().contains(&n))
        };
        let mut stale = Vec::new();
        for key in tree.scan_prefix([kind::SNAPSHOT]).keys() {
            let key = key?;
            if !codec::key_n(&key).is_some_and(live) {
                stale.push(key);
            }
        }
        let (start, end) = journal_below(journal_pos);
        for key in tree.range(start..end).keys() {
            stale.push(key?);
        }
        for key in stale {
            tree.remove(key)?;
        }
        Ok(())
    }

    /// How many pieces of the engine's journal sled holds below `pos`
    /// (for tests: reading the journal never shows them).
    ///
    /// # Errors
    /// sled fails.
    #[doc(hidden)]
    pub fn journal_pieces_below(&self, pos: u64) -> Result<usize, StorageError> {
        let (start, end) = journal_below(pos);
        Ok(self.tree()?.range(start..end).count())
    }

    /// Loads the latest snapshot, checking every chunk and the whole.
    ///
    /// # Errors
    /// A chunk is missing or damaged, or the state does not decode.
    pub fn load_snapshot(
        &self,
    ) -> Result<Option<(SnapshotHeader, EngineConfig, State)>, StorageError> {
        let Some(h) = self.snapshot_header()? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(usize::try_from(h.len).unwrap_or(0));
        let tree = self.tree()?;
        for (i, n) in h.chunk_numbers().enumerate() {
            let key = codec::key_u64(kind::SNAPSHOT, n);
            let raw = tree.get(key)?.ok_or_else(|| StorageError::Corrupt {
                key: codec::show_key(&key),
                what: format!("snapshot chunk {i} of {} is missing", h.chunks),
            })?;
            bytes.extend_from_slice(codec::unframe(&key, &raw)?);
        }
        let corrupt = |what: String| StorageError::Corrupt {
            key: "m/snapshot".into(),
            what,
        };
        if bytes.len() as u64 != h.len || crc32fast::hash(&bytes) != h.crc {
            return Err(corrupt(
                "snapshot bytes do not match the header's length and checksum".into(),
            ));
        }
        let (config, state) = codec::deserialize(&bytes)
            .map_err(|e| corrupt(format!("snapshot does not decode: {e}")))?;
        Ok(Some((h, config, state)))
    }
}

#[cfg(test)]
mod tests;
