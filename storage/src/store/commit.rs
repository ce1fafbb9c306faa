//! The commit path: the journal first, then sled in memory; sled's
//! background flush (the checkpoint); opening, with the journal replayed
//! into sled (see the module above for the whole picture).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::behind::Pending;
use super::{Batch, Store, failed_mark};
use crate::error::StorageError;
use crate::wal::{self, Disk, Wal};

/// What [`Store::open`] found in the journal.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Records replayed into sled (written and acknowledged, not yet in sled).
    pub replayed: usize,
    /// The last run stopped after a storage failure (why, as it said): the
    /// store was read back from the device, not the page cache (see
    /// [`super::failed_mark`]).
    pub after_failure: Option<String>,
    /// A torn last record (never acknowledged) that was dropped: segment
    /// file and offset.
    pub torn_tail: Option<(PathBuf, u64)>,
}

/// The background flusher's side of the checkpoint.
#[derive(Debug, Default)]
pub(super) struct Flushed {
    /// The last journal record applied to sled.
    pub(super) applied: AtomicU64,
    /// The last journal record sled holds durably.
    durable: AtomicU64,
    stop: AtomicBool,
    /// Why the flusher stopped, if it failed.
    failed: Mutex<Option<String>>,
}

/// The largest group a commit leaves aside for the next (see
/// [`Store::commit_then`]), in changes and in bytes; a larger one goes into
/// sled right after its answers.
const ASIDE_CHANGES_MAX: usize = 1024;
const ASIDE_BYTES_MAX: usize = 1 << 20;

/// How often the background flusher makes sled durable.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Called each time sled has been made durable (flushed and `fdatasync`ed),
/// before anything relies on it: a simulator copies sled's files here, to
/// put back what a crash would leave. The flusher and a snapshot written in
/// the background may both call it, one at a time.
pub type SledDurableHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// How the store journals and flushes.
#[derive(Clone)]
pub struct StoreOptions {
    /// Size of a journal segment file (preallocated).
    pub segment_bytes: u64,
    /// How often sled is flushed and `fdatasync`ed in the background;
    /// `None` when snapshots or [`Store::flush_now`] do it (tests, the
    /// simulator).
    pub flush_every: Option<Duration>,
    /// The disk under the journal (a simulated, faulty one in the simulator).
    pub disk: Arc<dyn Disk>,
    /// See [`SledDurableHook`].
    pub on_sled_durable: Option<SledDurableHook>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("segment_bytes", &self.segment_bytes)
            .field("flush_every", &self.flush_every)
            .field("disk", &self.disk)
            .field("on_sled_durable", &self.on_sled_durable.is_some())
            .finish()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            segment_bytes: wal::SEGMENT_BYTES,
            flush_every: Some(FLUSH_EVERY),
            disk: wal::disk::real(),
            on_sled_durable: None,
        }
    }
}

/// What the flusher needs, shared with [`Store::flush_now`].
pub(super) struct FlushParts {
    db: sled::Db,
    file: File,
    dir: PathBuf,
    wal_dir: PathBuf,
    spares: Arc<wal::Spares>,
    hook: Option<SledDurableHook>,
    /// The flusher and a snapshot may both flush: one at a time (and the
    /// hook runs for one at a time).
    turn: Mutex<()>,
}

impl FlushParts {
    /// One flush: sled flushed and its data file `fdatasync`ed; then
    /// everything applied before it began is durable in sled; retired
    /// segments are zeroed for reuse.
    fn flush(&self, flushed: &Flushed) -> Result<(), String> {
        let applied = flushed.applied.load(Ordering::Acquire);
        if applied <= flushed.durable.load(Ordering::Acquire) {
            return Ok(());
        }
        self.flush_sled(flushed)?;
        // Segments retired at earlier checkpoints: zeroed for reuse here,
        // off the writer's thread.
        self.spares
            .clean_up(&self.wal_dir)
            .map_err(|e| e.to_string())
    }

    /// sled flushed and its data file `fdatasync`ed, whatever was applied:
    /// everything put in sled before it began is durable afterwards (a
    /// snapshot's steps wait for this; so does the background flush).
    ///
    /// The flusher and a snapshot take turns, and after a failure recorded
    /// by either, neither syncs again: a second `fdatasync` after a failed
    /// one can succeed though the data the first lost never reached the
    /// disk (Linux reports a write-back error once).
    pub(super) fn flush_sled(&self, flushed: &Flushed) -> Result<(), String> {
        let _turn = self
            .turn
            .lock()
            .map_err(|_| "the flush lock was poisoned")?;
        let earlier = match flushed.failed.lock() {
            Ok(failed) => failed.clone(),
            Err(_) => Some("the failure record's lock was poisoned".into()),
        };
        if let Some(why) = earlier {
            return Err(format!("not flushed again after a failure: {why}"));
        }
        let applied = flushed.applied.load(Ordering::Acquire);
        let synced = self
            .db
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|_| self.file.sync_data().map_err(|e| e.to_string()));
        if let Err(e) = synced {
            // Recorded before the turn passes: the other flusher sees it.
            record_failure(
                flushed,
                Some(&self.dir),
                format!("sled's flush or fdatasync failed: {e}"),
            );
            return Err(e);
        }
        if let Some(hook) = &self.hook {
            hook(&self.dir);
        }
        flushed.durable.fetch_max(applied, Ordering::AcqRel);
        Ok(())
    }
}

/// The last journal record this sled state holds (set by every batch).
const META_WAL_SEQ: &[u8] = b"mwalseq";

/// Opens sled in `dir`. sled releases its file lock on its own threads a
/// moment after the last handle is dropped, so a reopen in the same process
/// (tests, an embedding) retries for a while before giving up.
fn open_sled(dir: &Path) -> Result<sled::Db, StorageError> {
    let started = std::time::Instant::now();
    loop {
        // sled flushes when our flusher says (and the flush is followed by
        // an fdatasync, which sled's own timer would not do).
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Records why a flush (or a snapshot) failed: the next commit fails (the
/// writer stops, as for any storage failure); the data dir `mark` names, if
/// any (a write that failed, not a value that could not be encoded), gets
/// the failure's mark.
pub(super) fn record_failure(flushed: &Flushed, mark: Option<&Path>, e: String) {
    if let Some(dir) = mark {
        failed_mark::leave(dir, &e);
    }
    if let Ok(mut failed) = flushed.failed.lock() {
        failed.get_or_insert(e);
    }
}

/// The background flusher: a flush every `every`; on failure it records
/// why and stops.
fn flush_loop(parts: &FlushParts, flushed: &Flushed, every: Duration) {
    while !flushed.stop.load(Ordering::Acquire) {
        std::thread::park_timeout(every);
        if let Err(e) = parts.flush(flushed) {
            record_failure(
                flushed,
                Some(&parts.dir),
                format!("the background flush of sled failed: {e}"),
            );
            return;
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.flushed.stop.store(true, Ordering::Release);
        if let Some(t) = self.flusher.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // sled with writes pending finishes them on its I/O threads after
        // the handle is dropped, holding its file lock meanwhile: flush now,
        // so a reopen in this process finds the lock free (and sled durable,
        // unless the writer stopped: then nothing more is written).
        if self.failure().is_none() && self.wal().is_ok_and(|w| w.check().is_ok()) {
            let closed = self.settle().and_then(|()| {
                self.db.flush()?;
                Ok(self.data_file.sync_data()?)
            });
            if let Err(e) = closed {
                failed_mark::leave(&self.dir, &format!("closing the store failed: {e}"));
            }
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// The directory or sled cannot be opened.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, &StoreOptions::default())
    }

    /// [`Store::open`] with other journal and flush settings.
    ///
    /// # Errors
    /// As [`Store::open`]; also a damaged journal record before its end
    /// (named by segment and offset).
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        // A new data directory's own entry is durable too (where its parent
        // can be read at all).
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(parent) = File::open(parent)
        {
            parent.sync_all()?;
        }
        // After a failure, what the page cache holds may never have reached
        // the device: read the device.
        let after_failure = failed_mark::read_from_device_if_marked(dir)?;
        let db = open_sled(dir)?;
        let tree = db.open_tree("otc")?;
        let data_file = File::open(dir.join("db"))?;
        // The directory entry of a new data file must be durable too.
        File::open(dir)?.sync_all()?;
        let checkpoint = match tree.get(META_WAL_SEQ)? {
            Some(v) => {
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                    key: "mwalseq".into(),
                    what: "not 8 bytes".into(),
                })?)
            }
            None => 0,
        };
        let wal_dir = dir.join("wal");
        let (wal, replay, spares) = Self::replay_into_sled(
            dir,
            options,
            (&db, &tree, &data_file),
            checkpoint,
            after_failure.is_some(),
        )
        .inspect_err(|e| {
            // Its writes failed (not a damaged record): as for a failure
            // while serving, the next open must read the device.
            if failed_mark::is_failure_to_store(e) {
                failed_mark::leave(dir, &format!("opening the store failed: {e}"));
            }
        })?;
        let flushed = Arc::new(Flushed::default());
        flushed.applied.store(replay.last_seq, Ordering::Relaxed);
        flushed.durable.store(replay.last_seq, Ordering::Relaxed);
        let parts = Arc::new(FlushParts {
            db: db.clone(),
            file: File::open(dir.join("db"))?,
            dir: dir.to_owned(),
            wal_dir,
            spares,
            hook: options.on_sled_durable.clone(),
            turn: Mutex::new(()),
        });
        let flusher = match options.flush_every {
            Some(every) => {
                let flushed = Arc::clone(&flushed);
                let parts = Arc::clone(&parts);
                Some(
                    std::thread::Builder::new()
                        .name("otc-sled-flush".into())
                        .spawn(move || flush_loop(&parts, &flushed, every))?,
                )
            }
            None => None,
        };
        Ok(Self {
            db,
            behind: tree,
            data_file,
            dir: dir.to_owned(),
            wal: Mutex::new(wal),
            flushed,
            flush_parts: parts,
            flusher,
            pending: Mutex::new(None),
            snapshotting: Mutex::new(()),
            recovered: Recovered {
                replayed: replay.records.len(),
                after_failure,
                torn_tail: replay.torn_tail,
            },
            faults: Arc::default(),
            commits: AtomicU64::new(0),
        })
    }

    /// The journal opened after sled's `checkpoint`, its records put into
    /// sled, sled made durable (always: what it read back may have been
    /// only in the page cache) before any segment is reused; a failure's
    /// mark cleared once sled is durable.
    fn replay_into_sled(
        dir: &Path,
        options: &StoreOptions,
        (db, tree, data_file): (&sled::Db, &sled::Tree, &File),
        checkpoint: u64,
        marked: bool,
    ) -> Result<(Wal, wal::Replay, Arc<wal::Spares>), StorageError> {
        let wal_dir = dir.join("wal");
        let (mut wal, replay) =
            Wal::open_on(&options.disk, &wal_dir, checkpoint, options.segment_bytes)?;
        // Acknowledged records sled had not made durable: into sled.
        if !options.disk.injects(wal::Bug::SkipSledReplay) {
            for (_, payload) in &replay.records {
                Batch::decode(payload)?.apply_in_order(tree)?;
            }
        }
        db.flush()?;
        data_file.sync_data()?;
        // Before the hook, so a copy of sled taken from here on (the
        // simulator's) has no mark.
        if marked {
            failed_mark::clear(dir)?;
        }
        if let Some(hook) = &options.on_sled_durable {
            hook(dir);
        }
        wal.checkpoint(replay.last_seq)?;
        let spares = wal.spares();
        spares.clean_up(&wal_dir)?;
        Ok((wal, replay, spares))
    }

    fn wal(&self) -> Result<std::sync::MutexGuard<'_, Wal>, StorageError> {
        self.wal
            .lock()
            .map_err(|_| StorageError::Io("the journal's lock was poisoned".into()))
    }

    /// Makes `batch` durable, then visible: one journal record written and
    /// `fdatasync`ed on this thread; sled gets the batch in memory (flushed
    /// in the background) at the next commit, while that one's record goes
    /// to the disk, or before the next read, whichever comes first. Returns
    /// only once the batch would survive power loss.
    ///
    /// # Errors
    /// Any write or sync failure (or an injected fault), or a failed
    /// background flush. A failed `fdatasync` is never retried: the caller
    /// stops for good.
    pub fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        self.commit_then(batch, || ())
    }

    /// [`Store::commit`], calling `durable` as soon as the batch is durable
    /// (its journal record `fdatasync`ed): `otcd` answers its clients from
    /// there. sled gets the group before this one while this one's record
    /// goes to the disk (the writer's thread waits for the device anyway),
    /// and this one is left for the next commit, or for the next read
    /// (unless it is large: then it goes in right after `durable`).
    ///
    /// # Errors
    /// As [`Store::commit`]. An error may also come after `durable` ran
    /// (sled failing to take the group before, which stops the journal, or
    /// retiring segments at the checkpoint): the batch is durable all the
    /// same, and the caller stops.
    pub fn commit_then(&self, batch: Batch, durable: impl FnOnce()) -> Result<(), StorageError> {
        self.commit_inner(batch, durable).inspect_err(|e| {
            if failed_mark::is_failure_to_store(e) {
                failed_mark::leave(&self.dir, &e.to_string());
            }
        })
    }

    fn commit_inner(&self, mut batch: Batch, durable: impl FnOnce()) -> Result<(), StorageError> {
        let (n, mut wal) = self.begin()?;
        let seq = wal.next_seq();
        batch.insert(META_WAL_SEQ, seq.to_be_bytes());
        let mut pending = self.pending()?;
        let mut caught_up = Ok(());
        let record = batch.encode();
        // A large group goes into sled at once, after its answers: it would
        // hold its memory (attachments) until the next commit, and staging
        // looks through the group aside key by key.
        let aside = batch.len() <= ASIDE_CHANGES_MAX && record.len() <= ASIDE_BYTES_MAX;
        let written = wal.write_while(&record, &mut || {
            caught_up = self.catch_up(&mut pending);
        });
        drop(record);
        if pending.is_some() && caught_up.is_ok() {
            // The write failed before it began.
            caught_up = self.catch_up(&mut pending);
        }
        written?;
        if let Err(e) = self
            .faults
            .check(n, &self.faults.fail_flush_at, "flush failed")
        {
            // As a failed fdatasync would: the journal stops.
            wal.poison("injected: flush failed");
            return Err(e);
        }
        wal.sync()?;
        if caught_up.is_ok() {
            *pending = Some(Pending {
                seq,
                commit: n,
                batch,
            });
        }
        // Let go before the answers: a read from `durable` would wait for it.
        drop(pending);
        durable();
        if caught_up.is_ok() && !aside {
            caught_up = self.settle();
        }
        if let Err(e) = caught_up {
            // sled may hold part of the record before, under an older
            // `mwalseq`: nothing more may be written over it (a later
            // `mwalseq` would claim the missing part); a restart replays it.
            wal.poison(&format!("sled failed mid-record: {e}"));
            return Err(e);
        }
        wal.checkpoint(self.flushed.durable.load(Ordering::Acquire))?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Flushes sled now, as the background flusher does (for a store opened
    /// without one: the simulator decides when sled becomes durable). A
    /// failure is kept: the next commit fails.
    ///
    /// # Errors
    /// The flush or its `fdatasync` failed.
    pub fn flush_now(&self) -> Result<(), StorageError> {
        self.flush_parts.flush(&self.flushed).map_err(|e| {
            let e = format!("the flush of sled failed: {e}");
            record_failure(&self.flushed, Some(&self.dir), e.clone());
            StorageError::Io(e)
        })
    }

    /// The start of every commit: its number (for injected faults), no
    /// failed background flush, and the journal.
    fn begin(&self) -> Result<(u64, std::sync::MutexGuard<'_, Wal>), StorageError> {
        let n = self.faults.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.faults
            .check(n, &self.faults.fail_write_at, "write failed")?;
        Ok((n, self.wal()?))
    }

    /// The failure recorded by a flush or a snapshot, if any: every commit
    /// and read is refused after one (`Stopped`: whoever recorded it left
    /// the mark, or not).
    pub fn failure(&self) -> Option<StorageError> {
        let failed = self.flushed.failed.lock().ok()?;
        failed.as_ref().map(|e| StorageError::Stopped(e.clone()))
    }
}

#[cfg(test)]
mod tests;
