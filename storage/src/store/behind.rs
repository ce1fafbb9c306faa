//! The one group sled may lack: a commit leaves its own group out of sled
//! and puts the one before in while its journal record goes to the disk
//! (see [`Store::commit_then`]); every read of sled puts it in first, so no
//! reader misses an acknowledged group, and none sees one before it is
//! durable (a group is left here only once its record is).

use std::sync::atomic::Ordering;

use super::commit::record_failure;
use super::{Batch, Store};
use crate::error::StorageError;

/// A group durable in the journal that sled does not hold yet: each commit
/// leaves its own here and puts the one before into sled while its journal
/// record goes to the disk; a read puts it in first.
pub(super) struct Pending {
    /// Its journal record.
    pub(super) seq: u64,
    /// Its commit's number (for injected faults).
    pub(super) commit: u64,
    pub(super) batch: Batch,
}

impl Store {
    pub(super) fn pending(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<Pending>>, StorageError> {
        self.pending
            .lock()
            .map_err(|_| StorageError::Io("the lock of the group sled lacks was poisoned".into()))
    }

    /// Puts the group in `slot` into sled, change by change, `mwalseq`
    /// last. On a failure sled may hold part of it: the failure is recorded,
    /// so every later read and commit is refused (a restart replays the
    /// group from the journal).
    pub(super) fn catch_up(&self, slot: &mut Option<Pending>) -> Result<(), StorageError> {
        let Some(group) = slot.as_ref() else {
            return Ok(());
        };
        let injected = self
            .faults
            .check(group.commit, &self.faults.fail_sled_at, "sled failed");
        let applied = match injected {
            // As sled failing partway: the first change only.
            Err(e) => group.batch.apply_prefix(&self.behind, 1).and(Err(e)),
            Ok(()) => group.batch.apply_in_order(&self.behind),
        };
        if let Err(e) = applied {
            record_failure(
                &self.flushed,
                Some(&self.dir),
                format!("sled failed to take journal record {}: {e}", group.seq),
            );
            return Err(e);
        }
        self.flushed.applied.store(group.seq, Ordering::Release);
        *slot = None;
        Ok(())
    }

    /// Puts into sled the last commit's group if it is not there yet:
    /// every read of sled does this first (see [`Store::tree`]), so it never
    /// misses a group that was acknowledged.
    ///
    /// # Errors
    /// sled failed (the next commit fails too).
    pub(super) fn settle(&self) -> Result<(), StorageError> {
        let mut pending = self.pending()?;
        // After a failure sled may hold part of a group, or lack one the
        // failed commit acknowledged: nothing more is read from it.
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.catch_up(&mut pending)
    }

    /// The keys from `start` to `end` (inclusive) that sled holds or the
    /// group it lacks sets, without putting that group in first: a commit
    /// staging removals keeps it for its own record's write to the disk.
    ///
    /// # Errors
    /// sled failed.
    pub(super) fn keys_between(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        // Held throughout, so no reader puts the group in between the two.
        let pending = self.pending()?;
        let mut keys = Vec::new();
        for key in self.behind.range(start..=end).keys() {
            keys.push(key?.to_vec());
        }
        if let Some(group) = pending.as_ref() {
            keys.extend(group.batch.set_between(start, end).map(<[u8]>::to_vec));
            keys.sort_unstable();
            keys.dedup();
        }
        Ok(keys)
    }

    /// sled's tree for reading, holding every committed group.
    ///
    /// # Errors
    /// As [`Store::settle`].
    pub(super) fn tree(&self) -> Result<&sled::Tree, StorageError> {
        self.settle()?;
        Ok(&self.behind)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;

    use super::super::StoreOptions;
    use super::*;

    /// `key` as a reader sees it.
    pub(in crate::store) fn get(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
        store
            .tree()
            .and_then(|tree| Ok(tree.get(key)?))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|v| v.to_vec())
    }

    /// `key` as sled holds it, without the group it lacks.
    fn in_sled(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
        store
            .behind
            .get(key)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|v| v.to_vec())
    }

    pub(in crate::store) fn no_flusher() -> StoreOptions {
        StoreOptions {
            flush_every: None,
            ..StoreOptions::default()
        }
    }

    pub(in crate::store) fn one(key: &[u8], value: &[u8]) -> Batch {
        let mut batch = Batch::default();
        batch.insert(key, value);
        batch
    }

    pub(in crate::store) fn ok<T>(r: Result<T, StorageError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A commit leaves its group out of sled; the next commit puts it in
    /// (while its own record is written), and a read puts it in first.
    #[test]
    fn sled_gets_a_group_at_the_next_commit_or_the_next_read() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        ok(store.commit(one(b"a", b"1")));
        assert_eq!(in_sled(&store, b"a"), None, "left for the next commit");
        ok(store.commit(one(b"b", b"2")));
        assert_eq!(in_sled(&store, b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!(in_sled(&store, b"b"), None);
        assert_eq!(store.flushed.applied.load(Ordering::Acquire), 1);
        // A reader sees the last group all the same.
        assert_eq!(get(&store, b"b").as_deref(), Some(&b"2"[..]));
        assert_eq!(in_sled(&store, b"b").as_deref(), Some(&b"2"[..]));
        assert_eq!(store.flushed.applied.load(Ordering::Acquire), 2);
    }

    /// A snapshot written while a group is aside: a crash copy afterwards
    /// has both (the group from sled or from its replay).
    #[test]
    fn a_snapshot_beside_a_group_aside_loses_neither() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        ok(store.commit(one(b"a", b"1")));
        let config = otc_engine::EngineConfig::default();
        ok(store.write_snapshot(&config, &otc_engine::State::default(), 7));
        let (_copy, store) = reopen_after_a_crash(store, dir.path());
        assert_eq!(get(&store, b"a").as_deref(), Some(&b"1"[..]));
        let loaded = ok(store.load_snapshot()).map(|(h, _, _)| h.journal_pos);
        assert_eq!(loaded, Some(7));
    }

    /// The store in `dir` reopened from a copy of its files, as a crash
    /// leaves them (`store` is forgotten, not closed: no flush at its drop).
    pub(in crate::store) fn reopen_after_a_crash(
        store: Store,
        dir: &Path,
    ) -> (tempfile::TempDir, Store) {
        std::mem::forget(store);
        // sled's lock is held by the forgotten handle's threads: a copy.
        let copy = ok(tempfile::tempdir().map_err(StorageError::from));
        copy_dir(dir, copy.path());
        let store = ok(Store::open_with(copy.path(), &no_flusher()));
        (copy, store)
    }

    fn copy_dir(from: &Path, to: &Path) {
        for entry in ok(std::fs::read_dir(from).map_err(StorageError::from)) {
            let entry = ok(entry.map_err(StorageError::from));
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                ok(std::fs::create_dir_all(&target).map_err(StorageError::from));
                copy_dir(&entry.path(), &target);
            } else {
                ok(std::fs::copy(entry.path(), &target).map_err(StorageError::from));
            }
        }
    }

    /// A clean close puts the group sled lacks in and flushes: the next
    /// start replays nothing.
    #[test]
    fn a_clean_close_leaves_nothing_to_replay() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        {
            let store = ok(Store::open_with(dir.path(), &no_flusher()));
            ok(store.commit(one(b"a", b"1")));
        }
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        assert_eq!(store.recovered.replayed, 0);
        assert_eq!(get(&store, b"a").as_deref(), Some(&b"1"[..]));
    }

    /// A group left out of sled and a restart without a clean close: the
    /// journal's record puts it back.
    #[test]
    fn a_group_sled_lacks_at_a_crash_is_replayed() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        ok(store.commit(one(b"a", b"1")));
        ok(store.commit(one(b"b", b"2")));
        ok(store.flush_now());
        assert_eq!(in_sled(&store, b"b"), None);
        let (_copy, store) = reopen_after_a_crash(store, dir.path());
        assert_eq!(store.recovered.replayed, 1);
        assert_eq!(get(&store, b"b").as_deref(), Some(&b"2"[..]));
    }

    /// Replacing a record's pieces while the group that wrote them is not
    /// in sled yet: its pieces are found there, and none is left behind.
    #[test]
    fn replacing_pieces_sees_the_group_sled_lacks() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        let prefix = b"r-record";
        let pieces = |n: u32, tag: u8| -> Vec<crate::codec::KeyValue> {
            (0..n)
                .map(|i| (crate::codec::piece_key(prefix, i, n), vec![tag; 3]))
                .collect()
        };
        let mut first = Batch::default();
        ok(store.stage_pieces_replacing(&mut first, prefix, pieces(3, 1)));
        ok(store.commit(first));
        let mut second = Batch::default();
        ok(store.stage_pieces_replacing(&mut second, prefix, pieces(1, 2)));
        assert_eq!(
            in_sled(&store, &crate::codec::piece_key(prefix, 0, 3)),
            None
        );
        ok(store.commit(second));
        let start = crate::codec::piece_key(prefix, 0, 0);
        let end = crate::codec::piece_key(prefix, u32::MAX, u32::MAX);
        let left: Vec<Vec<u8>> = ok(store.tree())
            .range(start.as_slice()..=end.as_slice())
            .keys()
            .map(|k| k.map(|k| k.to_vec()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(left, vec![crate::codec::piece_key(prefix, 0, 1)]);
    }

    /// A store whose one group (`a`, then `a2`) is aside, and sled set to
    /// fail after the first of its changes when it is put in.
    fn sled_to_fail_on_a_group_of_two(dir: &Path) -> Store {
        let store = ok(Store::open_with(dir, &no_flusher()));
        let mut first = one(b"a", b"1");
        first.insert(b"a2", b"1");
        ok(store.commit(first));
        store.faults.fail_sled_at.store(1, Ordering::Relaxed);
        store
    }

    /// sled failing partway through the group before, as the next commit
    /// puts it in: that commit's group is durable and answered all the
    /// same, then the store refuses every read and commit; a restart
    /// replays both groups from the journal.
    #[test]
    fn sled_failing_at_the_next_commit_stops_the_store_and_loses_nothing() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        {
            let store = sled_to_fail_on_a_group_of_two(dir.path());
            let mut answered = false;
            assert!(
                store
                    .commit_then(one(b"b", b"2"), || answered = true)
                    .is_err()
            );
            assert!(answered, "durable, so answered");
            assert!(store.tree().is_err(), "a read is refused");
            assert!(store.commit(one(b"c", b"3")).is_err(), "so is a commit");
            assert_eq!(in_sled(&store, b"a").as_deref(), Some(&b"1"[..]));
            assert_eq!(in_sled(&store, b"a2"), None, "sled holds part of it");
        }
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        assert_eq!(store.recovered.replayed, 2);
        assert_eq!(get(&store, b"a2").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, b"b").as_deref(), Some(&b"2"[..]));
        assert_eq!(get(&store, b"c"), None);
    }

    /// sled failing as a read puts the group in: that read and every later
    /// one fail, and so does the next commit; the group comes back at a
    /// restart.
    #[test]
    fn sled_failing_at_a_read_refuses_later_reads_and_commits() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        {
            let store = sled_to_fail_on_a_group_of_two(dir.path());
            assert!(store.tree().is_err());
            store.faults.fail_sled_at.store(0, Ordering::Relaxed);
            assert!(store.tree().is_err(), "not tried again over a part");
            assert!(store.commit(one(b"b", b"2")).is_err());
            assert_eq!(in_sled(&store, b"a2"), None);
        }
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        assert_eq!(get(&store, b"a2").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, b"b"), None);
    }

    /// A group too large to keep aside goes into sled right after its
    /// answers.
    #[test]
    fn a_large_group_goes_into_sled_at_once() {
        let dir = ok(tempfile::tempdir().map_err(StorageError::from));
        let store = ok(Store::open_with(dir.path(), &no_flusher()));
        let mut large = Batch::default();
        for i in 0..1100u32 {
            large.insert(i.to_be_bytes(), b"v");
        }
        ok(store.commit(large));
        assert_eq!(
            in_sled(&store, &1099u32.to_be_bytes()).as_deref(),
            Some(&b"v"[..])
        );
        ok(store.commit(one(b"small", b"s")));
        assert_eq!(in_sled(&store, b"small"), None, "a small one waits");
    }
}
