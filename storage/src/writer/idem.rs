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

use crate::store::Batch;
use std::collections::BTreeSet;
use std::sync::Arc;

use dashmap::DashMap;

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

/// The in-memory view of one id: its outcome and reply stay on disk, in the
/// group records `i/<record>` and `r/<record>` (read only for a retry).
#[derive(Debug, Clone, Copy)]
struct Entry {
    fingerprint: u64,
    at: Timestamp,
    record: [u8; 17],
}

/// One id of the group being applied, not yet committed.
pub(crate) struct NewId {
    pub(crate) id: String,
    pub(crate) record: IdemRecord,
    pub(crate) reply: Option<Vec<u8>>,
}

/// A staged group's ids, to remember once its commit is durable.
#[must_use]
pub(crate) struct Staged(Vec<(String, Entry)>);

/// Every request id remembered, plus the current group's new ones.
#[derive(Default)]
pub(crate) struct Idempotency {
    /// Shared with [`KnownIds`]: only the writer changes it.
    ids: Arc<DashMap<String, Entry>>,
    by_time: BTreeSet<(Timestamp, String)>,
    /// Counter that keeps request-id record keys unique.
    key_next: u64,
    /// The current group's new ids (one record per group).
    pub(crate) new: Vec<NewId>,
}

/// The request ids of committed groups, readable without the writer's
/// lock (the API's first look at a request id; see
/// [`crate::Writer::known_ids`]).
#[derive(Clone)]
pub struct KnownIds(Arc<DashMap<String, Entry>>);

impl KnownIds {
    /// Whether `caller` used `id` in a group that committed. If not, the
    /// id is new as far as anything durable goes; a first use still in
    /// flight is the writer's to catch (it checks every request itself).
    pub fn contains(&self, caller: UserId, id: &str) -> bool {
        self.0.contains_key(&scoped_id(caller, id))
    }
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
    /// Loads the ids retained on disk. A reused id's newer record
    /// supersedes the older one (still on disk until its group expires).
    pub(crate) fn load(store: &Store) -> Result<Self, StorageError> {
        let mut me = Self::default();
        let mut bad_key = None;
        me.key_next = store.idempotency_records(|prefix, id, rec| {
            let Ok(record) = <[u8; 17]>::try_from(prefix) else {
                bad_key = Some(codec::show_key(prefix));
                return;
            };
            let entry = Entry {
                fingerprint: rec.fingerprint,
                at: rec.at,
                record,
            };
            me.remember(id, entry);
        })?;
        if let Some(key) = bad_key {
            return Err(StorageError::Corrupt {
                key,
                what: "not a request-id group key".into(),
            });
        }
        Ok(me)
    }

    fn remember(&mut self, id: String, entry: Entry) {
        self.by_time.insert((entry.at, id.clone()));
        if let Some(old) = self.ids.insert(id.clone(), entry)
            && old.at != entry.at
        {
            self.by_time.remove(&(old.at, id));
        }
    }

    /// What `id` was first used for (in an earlier group or earlier in this
    /// one), compared with `fingerprint`.
    pub(crate) fn earlier(
        &self,
        store: &Store,
        id: &str,
        fingerprint: u64,
    ) -> Result<Option<Earlier>, StorageError> {
        if let Some(new) = self.new.iter().rev().find(|n| n.id == id) {
            return Ok(Some(if new.record.fingerprint == fingerprint {
                Earlier::Same(new.record.outcome.clone(), new.reply.clone())
            } else {
                Earlier::Conflict
            }));
        }
        let Some(entry) = self.ids.get(id).map(|e| *e) else {
            return Ok(None);
        };
        if entry.fingerprint != fingerprint {
            return Ok(Some(Earlier::Conflict));
        }
        let record = store
            .idempotency_record(&entry.record, id)?
            .ok_or_else(|| StorageError::Corrupt {
                key: codec::show_key(&entry.record),
                what: format!("request id {id} is missing from its group record"),
            })?;
        let reply = store.idempotency_reply(&entry.record, id)?;
        Ok(Some(Earlier::Same(record.outcome, reply)))
    }

    /// Stages the group's new ids as one record (and their replies as
    /// another); call once per group, and [`Idempotency::commit`] the
    /// result once the group is durable.
    pub(crate) fn stage_group(&mut self, batch: &mut Batch) -> Result<Staged, StorageError> {
        let Some(latest) = self.new.iter().map(|n| n.record.at).max() else {
            return Ok(Staged(Vec::new()));
        };
        let key = codec::key_time(codec::kind::IDEMPOTENCY, latest.0, self.key_next);
        self.key_next += 1;
        let records: Vec<(&str, &IdemRecord)> = self
            .new
            .iter()
            .map(|n| (n.id.as_str(), &n.record))
            .collect();
        Store::stage_record(batch, &key, &records)?;
        let replies: Vec<(&str, &[u8])> = self
            .new
            .iter()
            .filter_map(|n| Some((n.id.as_str(), n.reply.as_deref()?)))
            .collect();
        if !replies.is_empty() {
            let reply_key = codec::key_time(codec::kind::REPLY, latest.0, self.key_next - 1);
            Store::stage_record(batch, &reply_key, &replies)?;
        }
        let staged = self
            .new
            .drain(..)
            .map(|n| {
                let entry = Entry {
                    fingerprint: n.record.fingerprint,
                    at: n.record.at,
                    record: key,
                };
                (n.id, entry)
            })
            .collect();
        Ok(Staged(staged))
    }

    /// Remembers a staged group's ids: only once its commit is durable, so a
    /// lookup never finds an id whose first result could still be lost.
    pub(crate) fn commit(&mut self, staged: Staged) {
        for (id, entry) in staged.0 {
            self.remember(id, entry);
        }
    }

    /// The committed ids, for lookups without the writer's lock.
    pub(crate) fn known(&self) -> KnownIds {
        KnownIds(Arc::clone(&self.ids))
    }

    /// Forgets ids first used before `cutoff` (their records are pruned on
    /// disk by the caller).
    pub(crate) fn forget_before(&mut self, cutoff: Timestamp) {
        while let Some((at, _)) = self.by_time.first()
            && *at < cutoff
        {
            if let Some((at, id)) = self.by_time.pop_first() {
                self.ids.remove_if(&id, |_, r| r.at == at);
            }
        }
    }
}
