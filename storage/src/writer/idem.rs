//! Idempotency (SPEC §14): what each request id was first used for, and the
//! whole first reply, so a retry gets exactly what the first call got.
//!
//! The key is (caller, request id). The fingerprint is the caller's: the
//! API hashes the request as the client sent it, so server-side randomness
//! (password salts, attachment ids) never makes a retry look new. The first
//! reply is rendered by the API's [`Replier`] right after the command is
//! applied, stored in the same atomic commit, and read back for a retry,
//! even after a crash between the commit and the reply.
//!
//! In memory each id keeps only its fingerprint, outcome and the key of the
//! group record on disk; replies are read from disk on a retry (rare).

use std::collections::{BTreeSet, HashMap};

use otc_engine::{Command, Engine, Event, Rejection, RejectionKind, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::StorageError;
use crate::store::Store;

/// A rejection or success, as remembered for a repeated request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredOutcome {
    /// Applied; its events are `first_seq..=last_seq` (none if `first > last`).
    Applied {
        /// First event's sequence number.
        first_seq: u64,
        /// Last event's sequence number.
        last_seq: u64,
    },
    /// Refused.
    Rejected {
        /// The status class.
        kind: StoredKind,
        /// The message.
        message: String,
    },
}

/// [`RejectionKind`] in a stable, serializable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredKind {
    /// INVALID_ARGUMENT.
    InvalidArgument,
    /// FAILED_PRECONDITION.
    FailedPrecondition,
    /// NOT_FOUND.
    NotFound,
    /// PERMISSION_DENIED.
    PermissionDenied,
    /// RESOURCE_EXHAUSTED.
    ResourceExhausted,
    /// ALREADY_EXISTS.
    AlreadyExists,
}

impl From<RejectionKind> for StoredKind {
    fn from(k: RejectionKind) -> Self {
        match k {
            RejectionKind::InvalidArgument => StoredKind::InvalidArgument,
            RejectionKind::FailedPrecondition => StoredKind::FailedPrecondition,
            RejectionKind::NotFound => StoredKind::NotFound,
            RejectionKind::PermissionDenied => StoredKind::PermissionDenied,
            RejectionKind::ResourceExhausted => StoredKind::ResourceExhausted,
            RejectionKind::AlreadyExists => StoredKind::AlreadyExists,
        }
    }
}

/// What a request id was first used for, and what came of it, on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// Fingerprint of the request: a repeat must carry the same.
    pub fingerprint: u64,
    /// When it was first applied (for pruning after the retention).
    pub at: Timestamp,
    /// The first result.
    pub outcome: StoredOutcome,
    /// The first reply as the API rendered it (opaque bytes), if it did.
    pub reply: Option<Vec<u8>>,
}

/// Renders the reply of a client request right after its command was
/// applied (or refused), from the engine as that command left it. The API
/// installs one ([`crate::Writer::set_replier`]); storage keeps the bytes.
pub type Replier =
    Box<dyn Fn(&Engine, &Command, Result<&[Event], &Rejection>) -> Vec<u8> + Send + Sync>;

/// What a repeat of a known request id gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// Same fingerprint: the first outcome and reply.
    Same(StoredOutcome, Option<Vec<u8>>),
    /// The id was used for another request.
    Conflict,
}

/// The in-memory view of one id: the reply stays on disk.
#[derive(Debug, Clone)]
struct Entry {
    fingerprint: u64,
    at: Timestamp,
    outcome: StoredOutcome,
    /// Key of the group record holding the reply.
    record: Vec<u8>,
}

/// Every request id remembered, plus the current group's new ones.
#[derive(Default)]
pub(crate) struct Idempotency {
    ids: HashMap<String, Entry>,
    by_time: BTreeSet<(Timestamp, String)>,
    /// Counter that keeps request-id record keys unique.
    key_next: u64,
    /// The current group's new records (one record per group).
    pub(crate) new: Vec<(String, IdemRecord)>,
}

/// The storage key of request id `id` sent by `caller` (or acting for
/// `caller`, for internal requests): users never collide.
pub fn scoped_id(caller: UserId, id: &str) -> String {
    format!("{caller}/{id}")
}

/// A command's own fingerprint, for requests that come without the client's
/// (internal callers and storage tests).
pub(crate) fn command_fingerprint(command: &Command) -> u64 {
    let bytes = codec::serialize(command).unwrap_or_default();
    fnv1a(&bytes)
}

/// FNV-1a over `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Idempotency {
    /// Loads the records retained on disk. A reused id's newer record
    /// supersedes the older one (still on disk until its group expires).
    pub(crate) fn load(store: &Store) -> Result<Self, StorageError> {
        let mut me = Self::default();
        me.key_next = store.idempotency_records(|prefix, id, rec| {
            let entry = Entry {
                fingerprint: rec.fingerprint,
                at: rec.at,
                outcome: rec.outcome,
                record: prefix.to_vec(),
            };
            me.by_time.insert((entry.at, id.clone()));
            if let Some(old) = me.ids.insert(id.clone(), entry) {
                me.by_time.remove(&(old.at, id));
            }
        })?;
        Ok(me)
    }

    /// What `id` was first used for (in an earlier group or earlier in this
    /// one), compared with `fingerprint`.
    pub(crate) fn earlier(
        &self,
        store: &Store,
        id: &str,
        fingerprint: u64,
    ) -> Result<Option<Earlier>, StorageError> {
        if let Some((_, rec)) = self.new.iter().rev().find(|(seen, _)| seen == id) {
            return Ok(Some(if rec.fingerprint == fingerprint {
                Earlier::Same(rec.outcome.clone(), rec.reply.clone())
            } else {
                Earlier::Conflict
            }));
        }
        let Some(entry) = self.ids.get(id) else {
            return Ok(None);
        };
        if entry.fingerprint != fingerprint {
            return Ok(Some(Earlier::Conflict));
        }
        let reply = store.idempotency_reply(&entry.record, id)?;
        Ok(Some(Earlier::Same(entry.outcome.clone(), reply)))
    }

    /// Stages the group's new records as one record; call once per group.
    pub(crate) fn stage_group(&mut self, batch: &mut sled::Batch) -> Result<(), StorageError> {
        let Some(latest) = self.new.iter().map(|(_, r)| r.at).max() else {
            return Ok(());
        };
        let key = codec::key_time(codec::kind::IDEMPOTENCY, latest.0, self.key_next);
        self.key_next += 1;
        Store::stage_record(batch, &key, &self.new)?;
        for (id, rec) in self.new.drain(..) {
            self.by_time.insert((rec.at, id.clone()));
            let entry = Entry {
                fingerprint: rec.fingerprint,
                at: rec.at,
                outcome: rec.outcome,
                record: key.to_vec(),
            };
            self.ids.insert(id, entry);
        }
        Ok(())
    }

    /// Forgets ids first used before `cutoff` (their records are pruned on
    /// disk by the caller).
    pub(crate) fn forget_before(&mut self, cutoff: Timestamp) {
        while let Some((at, _)) = self.by_time.first()
            && *at < cutoff
        {
            if let Some((at, id)) = self.by_time.pop_first()
                && self.ids.get(&id).is_some_and(|r| r.at == at)
            {
                self.ids.remove(&id);
            }
        }
    }
}
