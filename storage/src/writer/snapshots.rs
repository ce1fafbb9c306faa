//! Snapshots of the engine: written before the next group, or on a thread
//! of their own beside the groups that follow
//! ([`super::WriterOptions::snapshot_in_background`]).
//!
//! In the background the writer only copies the engine's state (20 ms on
//! the load generator's, where encoding it and putting it in sled took
//! 190 ms, every commit waiting); the thread encodes and writes it
//! (`Store::write_snapshot`, safe beside commits) at a lower priority.
//! (sled's I/O pool, when it grows, starts its threads from whichever
//! thread asked: one started from this thread keeps its priority.) One
//! snapshot at a time: one that falls due while another is written waits
//! for the next group after it ends. A failure, or a panic, is kept by the
//! store, so the next commit is refused, and the writer stops when it
//! next looks.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::Writer;
use crate::error::StorageError;

/// A snapshot being written in the background.
pub(super) type InFlight = JoinHandle<Result<(), StorageError>>;

/// How much less of the core the snapshot thread asks for than the writer
/// and the API's threads (a nice value): it yields to them under load.
#[cfg(target_os = "linux")]
const SNAPSHOT_NICE: libc::c_int = 10;

impl Writer {
    /// Writes a snapshot of the engine now, after any being written in the
    /// background (none if that one covers every journal entry so far),
    /// and drops the journal it covers.
    ///
    /// # Errors
    /// The snapshot (this one or the one in the background) fails: the
    /// writer stops.
    pub fn snapshot(&mut self) -> Result<(), StorageError> {
        // A stopped writer's engine may be ahead of disk: never snapshot it.
        self.running()?;
        self.finish_snapshot()?;
        if self.since_snapshot == 0 {
            // Nothing new; a failure recorded meanwhile is still reported.
            return self.store.failure().map_or(Ok(()), Err);
        }
        let written =
            self.store
                .write_snapshot(self.engine.config(), self.engine.state(), self.journal_next);
        self.stop_on(written)?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// A snapshot fell due after a group: written now, or started in the
    /// background unless one is being written there.
    pub(super) fn snapshot_due(&mut self) -> Result<(), StorageError> {
        if !self.options.snapshot_in_background {
            return self.snapshot();
        }
        if self.snapshotting.as_ref().is_some_and(|s| !s.is_finished()) {
            return Ok(());
        }
        self.finish_snapshot()?;
        let config = self.engine.config().clone();
        let state = self.engine.state().clone();
        let store = Arc::clone(&self.store);
        let journal_pos = self.journal_next;
        let started = std::thread::Builder::new()
            .name("otc-snapshot".into())
            .spawn(move || {
                yield_to_the_writer();
                // A panic inside is caught and recorded by the store.
                store.write_snapshot(&config, &state, journal_pos)
            });
        match started {
            Ok(thread) => {
                self.snapshotting = Some(thread);
                self.since_snapshot = 0;
                Ok(())
            }
            // No thread to be had: write it here.
            Err(_) => self.snapshot(),
        }
    }

    /// Waits for the snapshot being written in the background, if any.
    ///
    /// # Errors
    /// It failed: the writer stops.
    pub(super) fn finish_snapshot(&mut self) -> Result<(), StorageError> {
        let Some(thread) = self.snapshotting.take() else {
            return Ok(());
        };
        let written = thread
            .join()
            .unwrap_or_else(|_| Err(StorageError::Io("the snapshot thread panicked".into())));
        self.stop_on(written)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The store closes after the snapshot using it.
        let _ = self.finish_snapshot();
    }
}

/// Lowers the calling thread's priority (Linux: its own nice value).
fn yield_to_the_writer() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread's own id; no memory passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        if let Ok(tid) = libc::id_t::try_from(tid) {
            libc::setpriority(libc::PRIO_PROCESS, tid, SNAPSHOT_NICE);
        }
    }
}
