//! The store: our own write-ahead journal ([`crate::wal`]) ahead of one sled
//! tree. A commit writes its whole [`Batch`] as one journal record and
//! makes it durable (a direct write on the real disk, or a write and an
//! `fdatasync`: see [`crate::wal`]); while that write is at the device, it
//! applies the batch before to sled in memory (`behind.rs`: a commit
//! leaves its own aside, and a read puts it in first); a background thread
//! flushes sled and `fdatasync`s its data file, and the next commit takes
//! that as the checkpoint ("sled holds everything up to record N"): older
//! segments are retired, zeroed by the flusher and reused.
//! Every batch also sets `mwalseq` to its record's number, as its last
//! change: after a crash sled says which records it holds, and
//! [`Store::open`] replays the journal after them into sled.
//!
//! A batch goes into sled one change at a time, in order, not as a sled
//! batch. Atomicity comes from the journal: sled recovers a prefix of
//! writes made one after another (sled's own crash test checks that after
//! a process kill; the sled batches used before relied on the same prefix
//! between batches; ours never overlap: each goes in whole under one lock,
//! on the writer's thread or a reader's; a snapshot's writes, on a thread
//! of their own, touch only its own keys and journal entries below its
//! position, never read again), so if it holds `mwalseq = N` it
//! holds all of records up to N, and perhaps part of N + 1, which the
//! replay sets again, change by change, to the same values. A failure partway through stops the
//! journal, so no later `mwalseq` is ever written over a part. Readers
//! never see part of a group: they read under the lock the writer holds
//! through the commit, and once a commit failed every read is refused
//! (`otcd` checks under that lock). (A sled batch cost two hand-offs to
//! sled's I/O threads per commit: it starts a fresh log buffer and writes
//! the old one, waking all seven pool threads each time.) Snapshots go in
//! change by change too, beside commits (`snapshot.rs`): their header is
//! switched only once their chunks are durable.
//!
//! Why our own `fdatasync` of sled's `db` file: sled 0.34.7's flush uses
//! `sync_file_range`, which flushes neither the device cache nor file
//! metadata. Every value is at most 4 KiB: group records and history records
//! are stored in pieces (`codec::encode_pieces`), snapshots and attachments
//! in chunks, so no sled page crosses its blob threshold and everything
//! lives in that file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use otc_engine::Event;
use otc_engine::buy::BuyOrder;
use otc_engine::listing::Listing;
use otc_engine::trade::Trade;

use crate::codec::{self, kind};
use crate::error::StorageError;
use crate::wal::Wal;

mod batch;
mod behind;
mod blobs;
mod commit;
pub mod failed_mark;
mod ids;
mod snapshot;

pub use batch::Batch;
pub use commit::{FLUSH_EVERY, Recovered, SledDurableHook, StoreOptions};
use commit::{FlushParts, Flushed};
pub use snapshot::SnapshotHeader;

/// Largest chunk of a snapshot or attachment (see [`codec::PIECE_BYTES`]:
/// it keeps every byte in the `db` file that the commit `fdatasync`s).
pub const CHUNK_BYTES: usize = codec::PIECE_BYTES;

/// Test-only fault injection: fail the n-th commit (counting from 1) before
/// or after its write.
#[derive(Debug, Default)]
pub struct Faults {
    /// Fail the batch write of this commit.
    pub fail_write_at: AtomicU64,
    /// Fail the journal's `fdatasync` (after the record was written, before
    /// sled sees the batch) of this commit; for a snapshot, sled's flush.
    pub fail_flush_at: AtomicU64,
    /// Fail sled partway through taking this commit's group (after its
    /// first change), when the next commit or a read puts it in.
    pub fail_sled_at: AtomicU64,
    commits: AtomicU64,
}

impl Faults {
    fn check(&self, n: u64, at: &AtomicU64, what: &'static str) -> Result<(), StorageError> {
        let target = at.load(Ordering::Relaxed);
        if target != 0 && target == n {
            Err(StorageError::Injected(what))
        } else {
            Ok(())
        }
    }
}

/// The durable store.
pub struct Store {
    db: sled::Db,
    /// sled's tree, possibly a group behind the journal: read it through
    /// [`Store::tree`].
    behind: sled::Tree,
    /// sled's data file, kept open to `fdatasync` after each flush.
    data_file: File,
    dir: PathBuf,
    /// The journal; only the writer's thread appends (the lock is uncontended).
    wal: Mutex<Wal>,
    /// What the background flusher shares with commits.
    flushed: Arc<Flushed>,
    flush_parts: Arc<FlushParts>,
    flusher: Option<std::thread::JoinHandle<()>>,
    /// The last committed group, durable but not in sled yet (see
    /// [`Store::commit_then`]).
    pending: Mutex<Option<behind::Pending>>,
    /// Held through a snapshot's write: one at a time (`snapshot.rs`).
    snapshotting: Mutex<()>,
    /// What opening found in the journal.
    pub recovered: Recovered,
    /// Injected faults, shared with tests.
    pub faults: Arc<Faults>,
    /// Commits so far (for metrics).
    pub commits: AtomicU64,
}

/// Key of a per-user index entry: `kind ++ user ++ id`.
pub fn user_key(k: u8, user: otc_engine::UserId, id: u64) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[0] = k;
    key[1..17].copy_from_slice(user.0.as_bytes());
    key[17..].copy_from_slice(&id.to_be_bytes());
    key
}

/// Key of a chat message: `c ++ trade id ++ seq`, so a trade's chat is one range.
pub fn chat_key(trade: otc_engine::TradeId, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = kind::CHAT;
    k[1..9].copy_from_slice(&trade.0.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.tree()?.get(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(key, &bytes).map(Some),
        }
    }

    /// A record stored in pieces under `prefix`.
    ///
    /// # Errors
    /// A piece is missing or damaged.
    fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let start = codec::piece_key(prefix, 0, 0);
        let end = codec::piece_key(prefix, u32::MAX, u32::MAX);
        let pieces: Vec<(sled::IVec, sled::IVec)> = self
            .tree()?
            .range(start.as_slice()..=end.as_slice())
            .collect::<Result<_, _>>()?;
        if pieces.is_empty() {
            return Ok(None);
        }
        codec::decode_pieces(&pieces).map(Some)
    }

    /// Stages the pieces of a record that may already exist under `prefix`
    /// (the latest state of a trade, say): its old pieces go, so a shorter
    /// new version leaves none behind. Stage each record once per batch.
    ///
    /// # Errors
    /// Reading the old pieces fails.
    pub fn stage_pieces_replacing(
        &self,
        batch: &mut Batch,
        prefix: &[u8],
        pieces: Vec<codec::KeyValue>,
    ) -> Result<(), StorageError> {
        let start = codec::piece_key(prefix, 0, 0);
        let end = codec::piece_key(prefix, u32::MAX, u32::MAX);
        for key in self.keys_between(&start, &end)? {
            batch.remove(key);
        }
        for (key, bytes) in pieces {
            batch.insert(key, bytes);
        }
        Ok(())
    }

    /// Stages a record, split into pieces under `prefix`.
    ///
    /// # Errors
    /// The value does not encode (a bug).
    pub fn stage_record<T: serde::Serialize + ?Sized>(
        batch: &mut Batch,
        prefix: &[u8],
        value: &T,
    ) -> Result<(), StorageError> {
        for (key, bytes) in codec::encode_pieces(prefix, value)? {
            batch.insert(key, bytes);
        }
        Ok(())
    }

    /// Visits the pieced records whose keys lie in `start..end`, in key
    /// order, each as its prefix and its pieces; stops when `visit` says so.
    fn each_record(
        &self,
        start: &[u8],
        end: &[u8],
        mut visit: impl FnMut(&[u8], &[(sled::IVec, sled::IVec)]) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        let mut pieces: Vec<(sled::IVec, sled::IVec)> = Vec::new();
        let prefix_of = |key: &[u8]| -> Result<Vec<u8>, StorageError> {
            codec::split_piece_key(key)
                .map(|(p, _, _)| p.to_vec())
                .ok_or_else(|| StorageError::Corrupt {
                    key: codec::show_key(key),
                    what: "not a piece key".into(),
                })
        };
        for item in self.tree()?.range(start..end) {
            let (key, bytes) = item?;
            if let Some((first, _)) = pieces.first()
                && prefix_of(first)? != prefix_of(&key)?
            {
                let prefix = prefix_of(first)?;
                if !visit(&prefix, &pieces)? {
                    return Ok(());
                }
                pieces.clear();
            }
            pieces.push((key, bytes));
        }
        if let Some((first, _)) = pieces.first() {
            let prefix = prefix_of(first)?;
            visit(&prefix, &pieces)?;
        }
        Ok(())
    }

    /// Group records of `k` (named `k/<number of their first item>`: a
    /// journal position or an event sequence), from the one holding item
    /// `from` onwards, flattened, at most `limit` items (whole records).
    /// Records that start before `floor` are never read (the journal's
    /// below the snapshot: a crash may leave one there half removed).
    fn scan_groups<T: serde::de::DeserializeOwned>(
        &self,
        k: u8,
        floor: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, StorageError> {
        let from = from.max(floor);
        let low = codec::key_u64(k, floor);
        let at = codec::piece_key(&codec::key_u64(k, from), u32::MAX, u32::MAX);
        // The group holding `from` starts at or before it.
        let first = match self
            .tree()?
            .range(low.as_slice()..=at.as_slice())
            .next_back()
        {
            Some(item) => codec::key_n(&item?.0).unwrap_or(from),
            None => from,
        };
        let start = codec::key_u64(k, first);
        let end = [k + 1];
        let mut out = Vec::new();
        self.each_record(&start, &end, |prefix, pieces| {
            let first = codec::key_n(prefix).ok_or_else(|| StorageError::Corrupt {
                key: codec::show_key(prefix),
                what: "key is not kind + u64".into(),
            })?;
            let items: Vec<T> = codec::decode_pieces(pieces)?;
            for (i, item) in items.into_iter().enumerate() {
                let n = first + i as u64;
                if n >= from && out.len() < limit {
                    out.push((n, item));
                }
            }
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    // ---- journal, events, history --------------------------------------------

    /// Journal entries from position `from`, in order, at most `limit`;
    /// none before the snapshot's position (it holds them).
    ///
    /// # Errors
    /// A damaged entry (named).
    pub fn journal_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, crate::JournalEntry)>, StorageError> {
        let floor = self.snapshot_header()?.map_or(0, |h| h.journal_pos);
        self.scan_groups(kind::JOURNAL, floor, from, limit)
    }

    /// Events from sequence `from`, at most `limit`.
    ///
    /// # Errors
    /// A damaged record (named).
    pub fn events_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, StorageError> {
        Ok(self
            .scan_groups::<Event>(kind::EVENT, 0, from, limit)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    /// The lowest and highest retained event sequence numbers.
    ///
    /// # Errors
    /// sled fails, or a record is damaged.
    pub fn event_bounds(&self) -> Result<Option<(u64, u64)>, StorageError> {
        let start = codec::key_u64(kind::EVENT, 0);
        let end = [kind::EVENT + 1];
        let mut range = self.tree()?.range(start.as_slice()..end.as_slice());
        let Some((first_key, _)) = range.next().transpose()? else {
            return Ok(None);
        };
        let last_key = match range.next_back().transpose()? {
            Some((k, _)) => k,
            None => first_key.clone(),
        };
        let n = |k: &[u8]| codec::key_n(k).unwrap_or(0);
        // The last group's events: its pieces start at its prefix.
        let last_group = codec::key_u64(kind::EVENT, n(&last_key));
        let mut last = None;
        self.each_record(&last_group, &end, |_, pieces| {
            let events: Vec<Event> = codec::decode_pieces(pieces)?;
            last = events.last().map(|e| e.seq);
            Ok(false)
        })?;
        Ok(Some((n(&first_key), last.unwrap_or(n(&last_key)))))
    }

    /// Removes groups of events that all happened before `cutoff`, at most
    /// `limit` groups per call. Returns how many events went.
    ///
    /// # Errors
    /// Reading or committing fails.
    pub fn prune_events(
        &self,
        cutoff: otc_engine::Timestamp,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let start = codec::key_u64(kind::EVENT, 0);
        let end = [kind::EVENT + 1];
        let mut batch = Batch::default();
        let (mut n, mut groups) = (0, 0);
        self.each_record(&start, &end, |_, pieces| {
            let events: Vec<Event> = codec::decode_pieces(pieces)?;
            if events.last().is_some_and(|e| e.at >= cutoff) {
                return Ok(false);
            }
            for (key, _) in pieces {
                batch.remove(key);
            }
            n += events.len();
            groups += 1;
            Ok(groups < limit)
        })?;
        if n > 0 {
            self.commit(batch)?;
        }
        Ok(n)
    }

    /// A trade's latest recorded state (history outlives the engine's working set).
    ///
    /// # Errors
    /// The record is damaged.
    pub fn trade(&self, id: otc_engine::TradeId) -> Result<Option<Trade>, StorageError> {
        self.get_record(&codec::key_u64(kind::TRADE, id.0))
    }

    /// An appeal's latest recorded state (reason, evidence, outcome).
    ///
    /// # Errors
    /// The record is damaged.
    pub fn appeal(
        &self,
        trade: otc_engine::TradeId,
    ) -> Result<Option<otc_engine::appeal::Appeal>, StorageError> {
        self.get_record(&codec::key_u64(kind::APPEAL, trade.0))
    }

    /// A listing's latest recorded state.
    ///
    /// # Errors
    /// The record is damaged.
    pub fn listing(&self, id: otc_engine::ListingId) -> Result<Option<Listing>, StorageError> {
        self.get_record(&codec::key_u64(kind::LISTING, id.0))
    }

    /// A buy order's latest recorded state.
    ///
    /// # Errors
    /// The record is damaged.
    pub fn buy_order(&self, id: otc_engine::BuyOrderId) -> Result<Option<BuyOrder>, StorageError> {
        self.get_record(&codec::key_u64(kind::BUY_ORDER, id.0))
    }

    /// A trade's chat (as `ChatPosted` events), oldest first, after `after_seq`, at most `limit`.
    ///
    /// # Errors
    /// A damaged message (named).
    pub fn chat(
        &self,
        trade: otc_engine::TradeId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let start = chat_key(trade, after_seq.saturating_add(1));
        let end = codec::piece_key(&chat_key(trade, u64::MAX), u32::MAX, u32::MAX);
        let mut out = Vec::new();
        let mut end_incl = end.clone();
        end_incl.push(0);
        self.each_record(&start, &end_incl, |_, pieces| {
            out.push(codec::decode_pieces(pieces)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Ids from a per-user index (`kind::USER_TRADE` or `kind::USER_LISTING`),
    /// newest first, below `before`, at most `limit`.
    ///
    /// # Errors
    /// sled fails.
    pub fn user_items(
        &self,
        k: u8,
        user: otc_engine::UserId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, StorageError> {
        let start = user_key(k, user, 0);
        let end = user_key(k, user, before.unwrap_or(u64::MAX));
        let mut out = Vec::new();
        for key in self
            .tree()?
            .range(start.as_slice()..end.as_slice())
            .keys()
            .rev()
            .take(limit)
        {
            let key = key?;
            let bytes: [u8; 8] =
                key.get(17..25)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StorageError::Corrupt {
                        key: codec::show_key(&key),
                        what: "user index key is malformed".into(),
                    })?;
            out.push(u64::from_be_bytes(bytes));
        }
        Ok(out)
    }

    /// Bytes the data directory takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
