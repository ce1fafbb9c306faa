//! The single writer: owns the engine and the store, applies groups of
//! requests, and makes each group durable in one atomic commit before any
//! result leaves it (group commit).

use crate::store::Batch;
use std::time::Instant;

use otc_engine::ids::MS_PER_HOUR;
use otc_engine::{
    Command, Engine, EngineConfig, Event, Rejection, RejectionKind, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

use crate::codec::{self, kind};
use crate::error::StorageError;
use crate::store::Store;

mod history;
pub mod idem;
mod recovery;
mod snapshots;

pub use history::refusal_on_forgotten;
use history::{GroupChanges, History, stage_event_indexes};
pub use idem::{Earlier, IdemRecord, KnownIds, Replier, StoredKind, StoredOutcome};
use idem::{Idempotency, command_fingerprint};

/// One journal entry, replayed in order at recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JournalEntry {
    /// An applied command and the time it was applied at.
    Apply {
        /// The time.
        now: Timestamp,
        /// The command.
        command: Command,
    },
    /// The configuration in force from here on (written on first open and
    /// whenever a restart brings other settings), so replay uses the rules
    /// each command was applied under.
    Configure(EngineConfig),
}

/// [`JournalEntry`] by reference: the same bytes, written without cloning
/// the commands of a group.
#[derive(Serialize)]
enum JournalRef<'a> {
    Apply {
        now: Timestamp,
        command: &'a Command,
    },
    Configure(&'a EngineConfig),
}

/// What the API adds to a client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Who sent it: request ids are scoped by the caller (SPEC §14).
    pub caller: UserId,
    /// Fingerprint of the request as the client sent it.
    pub fingerprint: u64,
    /// The bytes of the attachment the command references (its
    /// `AttachmentRef`), written in the same commit only if the command is
    /// applied.
    pub attachment: Option<Vec<u8>>,
}

/// A request to the writer.
#[derive(Debug, Clone)]
pub struct Request {
    /// The client's request id (SPEC §14); `None` for internal commands.
    pub request_id: Option<String>,
    /// What to do.
    pub command: Command,
    /// When.
    pub now: Timestamp,
    /// The client's part, for requests from the API; `None` scopes the id
    /// by the command's actor and fingerprints the command itself.
    pub call: Option<Call>,
}

impl Request {
    /// An internal request (or a test's): no client fingerprint or file.
    pub fn new(request_id: Option<String>, command: Command, now: Timestamp) -> Self {
        Self {
            request_id,
            command,
            now,
            call: None,
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and durable.
    Applied(Vec<Event>),
    /// Refused; nothing changed.
    Rejected(Rejection),
    /// A repeat of an earlier request: its first result (events still
    /// retained are included).
    Repeated(StoredOutcome, Vec<Event>),
    /// The request id was used before with other parameters.
    IdConflict,
}

/// An outcome with the reply the [`Replier`] rendered for it (the stored
/// first reply, for a repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// What became of the request.
    pub outcome: Outcome,
    /// The reply bytes, when a replier is installed and the request had an id.
    pub reply: Option<Vec<u8>>,
}

/// Tunables of the writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Journal entries between snapshots (bounds recovery time).
    pub snapshot_every: u64,
    /// Write the snapshots that fall due on a thread of their own, beside
    /// the commits that follow, instead of before them (`otcd` does; the
    /// simulator does not: its runs must repeat exactly).
    pub snapshot_in_background: bool,
    /// How long request ids are remembered (SPEC §14: at least 24 h).
    pub idempotency_retention_ms: i64,
    /// The journal's segments and sled's background flush.
    pub store: crate::store::StoreOptions,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            snapshot_every: 100_000,
            snapshot_in_background: false,
            idempotency_retention_ms: 24 * MS_PER_HOUR,
            store: crate::store::StoreOptions::default(),
        }
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    /// Groups committed.
    pub commits: u64,
    /// Requests handled.
    pub requests: u64,
    /// Nanoseconds spent applying groups: the engine, plus encoding and staging their records (everything before the commit).
    pub engine_ns: u64,
    /// Nanoseconds spent committing (write + flush + fdatasync).
    pub commit_ns: u64,
}

/// The engine plus its durable store. All writes go through [`Writer::apply_group`].
pub struct Writer {
    engine: Engine,
    /// Shared with a snapshot being written in the background.
    store: std::sync::Arc<Store>,
    options: WriterOptions,
    journal_next: u64,
    since_snapshot: u64,
    /// The snapshot being written in the background, if any.
    snapshotting: Option<snapshots::InFlight>,
    idem: Idempotency,
    replier: Option<Replier>,
    stopped: Option<StorageError>,
    /// The current group's events (one record per group).
    events: Vec<Event>,
    /// Counters.
    pub stats: WriterStats,
}

/// The file a command references, if any.
fn attached(command: &Command) -> Option<&otc_engine::command::AttachmentRef> {
    match command {
        Command::AddEvidence { attachment, .. } | Command::PostChat { attachment, .. } => {
            attachment.as_ref()
        }
        _ => None,
    }
}

/// Checks that file bytes sent with a command are the file it references
/// (before the engine applies it: a mismatch refuses that request alone).
fn check_attachment(command: &Command, bytes: &[u8]) -> Result<(), Rejection> {
    match attached(command) {
        Some(file) if file.size_bytes == bytes.len() as u64 => Ok(()),
        Some(_) => Err(Rejection::field(
            "attachment.data",
            "does not match the attachment it was sent with",
        )),
        None => Err(Rejection::field(
            "attachment",
            "file bytes came with a command that references no file",
        )),
    }
}

impl Writer {
    /// The engine (read-only; the writer is its only mutator).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The store (for reads of history, events and attachments).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The failure that stopped the writer, if any.
    pub fn stopped(&self) -> Option<&StorageError> {
        self.stopped.as_ref()
    }

    /// Installs the renderer of client replies (SPEC §14: the whole first
    /// response is stored with the commit).
    pub fn set_replier(&mut self, replier: Replier) {
        self.replier = Some(replier);
    }

    /// The request ids of committed groups, readable without this
    /// writer's lock.
    pub fn known_ids(&self) -> KnownIds {
        self.idem.known()
    }

    /// What request id `id` of `caller` was first used for, if it is
    /// remembered: the API asks before any other work for a request whose
    /// id [`KnownIds`] knows.
    ///
    /// # Errors
    /// The writer stopped (what it holds may not be durable), or reading
    /// the stored reply fails.
    pub fn earlier(
        &self,
        caller: UserId,
        id: &str,
        fingerprint: u64,
    ) -> Result<Option<Earlier>, StorageError> {
        self.running()?;
        self.idem
            .earlier(&self.store, &idem::scoped_id(caller, id), fingerprint)
    }

    /// Applies `requests` in order and commits them as one atomic, durable
    /// unit. Results are returned only after the commit.
    ///
    /// # Errors
    /// The group failed: the writer stops for good (every later call
    /// returns [`StorageError::Stopped`]) and the process must restart to
    /// recover from disk. The group may or may not be durable (a failure
    /// can come after its journal record was synced, in sled or a snapshot):
    /// the restart decides, and a retry under the same request id learns
    /// which.
    pub fn apply_group(&mut self, requests: &[Request]) -> Result<Vec<Outcome>, StorageError> {
        Ok(self
            .apply_group_replies(requests)?
            .into_iter()
            .map(|d| d.outcome)
            .collect())
    }

    /// [`Writer::apply_group`], with each request's reply.
    ///
    /// # Errors
    /// As [`Writer::apply_group`].
    pub fn apply_group_replies(&mut self, requests: &[Request]) -> Result<Vec<Done>, StorageError> {
        let mut out = Vec::new();
        self.apply_group_then(requests, &mut |done| out = done)?;
        Ok(out)
    }

    /// [`Writer::apply_group_replies`], handing the results to `durable` as
    /// soon as the group is durable, before a snapshot that falls due (see
    /// [`Store::commit_then`]). `durable` is not called if the group is not
    /// durable.
    ///
    /// # Errors
    /// As [`Writer::apply_group`]; an error may come after `durable` ran
    /// (sled or the snapshot failing): the group is durable all the same,
    /// and the writer stops.
    pub fn apply_group_then(
        &mut self,
        requests: &[Request],
        durable: &mut dyn FnMut(Vec<Done>),
    ) -> Result<(), StorageError> {
        self.running()?;
        let applied = self.apply_group_inner(requests, durable);
        self.stop_on(applied)
    }

    /// Refused once the writer stopped.
    fn running(&self) -> Result<(), StorageError> {
        match &self.stopped {
            Some(e) => Err(StorageError::Stopped(e.to_string())),
            None => Ok(()),
        }
    }

    /// Any storage failure stops the writer for good: the engine may be
    /// ahead of disk; a restart recovers from what is durable.
    fn stop_on<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result {
            self.stopped = Some(e.clone());
        }
        result
    }

    fn apply_group_inner(
        &mut self,
        requests: &[Request],
        durable: &mut dyn FnMut(Vec<Done>),
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let mut batch = Batch::default();
        let mut done = Vec::with_capacity(requests.len());
        // Records the group changed, as the engine reports them.
        let mut changed = GroupChanges::default();
        let mut history = History::new();
        let mut journal = Vec::with_capacity(requests.len());
        let journal_first = self.journal_next;
        self.events.clear();
        self.idem.new.clear();
        for req in requests {
            if matches!(req.command, Command::FireDue) {
                // Firing may forget records (an hour after they ended) that
                // earlier requests of this group changed: take their final
                // state while the engine still has it.
                self.collect_history(&mut batch, &changed, &mut history)?;
                changed = GroupChanges::default();
            }
            let one = self.apply_one(req, &mut batch)?;
            if matches!(one.outcome, Outcome::Applied(_)) {
                changed.add(self.engine.changed());
            }
            if matches!(one.outcome, Outcome::Applied(_)) {
                journal.push(JournalRef::Apply {
                    now: req.now,
                    command: &req.command,
                });
            }
            done.push(one);
        }
        // One record each for the group's journal entries, events and
        // request ids: the commit's cost follows groups, not commands.
        if !journal.is_empty() {
            Store::stage_record(
                &mut batch,
                &codec::key_u64(kind::JOURNAL, journal_first),
                &journal,
            )?;
            self.journal_next += journal.len() as u64;
            self.since_snapshot += journal.len() as u64;
        }
        if let Some(first) = self.events.first() {
            Store::stage_record(
                &mut batch,
                &codec::key_u64(kind::EVENT, first.seq),
                &self.events,
            )?;
        }
        let ids = self.idem.stage_group(&mut batch)?;
        self.collect_history(&mut batch, &changed, &mut history)?;
        self.stage_collected_history(&mut batch, history)?;
        let applied = Instant::now();
        let mut done = Some(done);
        self.store.commit_then(batch, || {
            if let Some(done) = done.take() {
                durable(done);
            }
        })?;
        self.idem.commit(ids);
        self.stats.commits += 1;
        self.stats.requests += requests.len() as u64;
        self.stats.engine_ns +=
            u64::try_from(applied.duration_since(started).as_nanos()).unwrap_or(u64::MAX);
        self.stats.commit_ns += u64::try_from(applied.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.since_snapshot >= self.options.snapshot_every {
            self.snapshot_due()?;
        }
        Ok(())
    }

    fn apply_one(&mut self, raw: &Request, batch: &mut Batch) -> Result<Done, StorageError> {
        // Request ids are scoped by the caller (or, for internal requests,
        // the acting user): two users never collide.
        let scope = raw
            .call
            .as_ref()
            .map(|c| c.caller)
            .or_else(|| raw.command.actor());
        let request_id = match (&raw.request_id, scope) {
            (Some(id), Some(user)) => Some(idem::scoped_id(user, id)),
            (id, _) => id.clone(),
        };
        let print = raw
            .call
            .as_ref()
            .map_or_else(|| command_fingerprint(&raw.command), |c| c.fingerprint);
        if let Some(id) = &request_id {
            match self.idem.earlier(&self.store, id, print)? {
                Some(Earlier::Conflict) => {
                    return Ok(Done {
                        outcome: Outcome::IdConflict,
                        reply: None,
                    });
                }
                Some(Earlier::Same(outcome, reply)) => {
                    // The stored reply is the first result; without one (no
                    // replier) the events it caused stand for it.
                    let events = match outcome {
                        StoredOutcome::Applied {
                            first_seq,
                            last_seq,
                        } if first_seq <= last_seq && reply.is_none() => {
                            self.events_range(first_seq, last_seq)?
                        }
                        _ => Vec::new(),
                    };
                    return Ok(Done {
                        outcome: Outcome::Repeated(outcome, events),
                        reply,
                    });
                }
                None => {}
            }
        }
        let start = self.events.len();
        let attachment = raw.call.as_ref().and_then(|c| c.attachment.as_deref());
        let applied = match attachment.map(|bytes| check_attachment(&raw.command, bytes)) {
            Some(Err(r)) => Err(r),
            _ => self
                .engine
                .apply_into(&raw.command, raw.now, &mut self.events),
        };
        let applied = match applied {
            Err(r) if r.kind() == RejectionKind::NotFound => {
                // History's record of it, when the engine forgot it.
                let (engine, store) = (&self.engine, &self.store);
                Err(refusal_on_forgotten(
                    engine,
                    store,
                    &raw.command,
                    r,
                    raw.now,
                )?)
            }
            other => other,
        };
        let reply = match (&self.replier, &request_id) {
            (Some(render), Some(_)) => Some(render(
                &self.engine,
                &raw.command,
                applied.as_ref().map(|()| &self.events[start..]),
            )),
            _ => None,
        };
        let (outcome, stored) = match applied {
            Ok(()) => {
                let new = &self.events[start..];
                for e in new {
                    stage_event_indexes(batch, e)?;
                }
                if let (Some(bytes), Some(file)) = (attachment, attached(&raw.command)) {
                    Store::stage_blob(batch, &file.blob_id, bytes)?;
                }
                let (first_seq, last_seq) = match (new.first(), new.last()) {
                    (Some(f), Some(l)) => (f.seq, l.seq),
                    _ => (self.engine.last_seq() + 1, self.engine.last_seq()),
                };
                (
                    Outcome::Applied(new.to_vec()),
                    StoredOutcome::Applied {
                        first_seq,
                        last_seq,
                    },
                )
            }
            Err(r) => {
                let stored = StoredOutcome::Rejected {
                    kind: r.kind().into(),
                    message: r.to_string(),
                };
                (Outcome::Rejected(r), stored)
            }
        };
        if let Some(id) = request_id {
            let record = IdemRecord {
                fingerprint: print,
                at: raw.now,
                outcome: stored,
            };
            self.idem.new.push(idem::NewId {
                id,
                record,
                reply: reply.clone(),
            });
        }
        Ok(Done { outcome, reply })
    }

    /// Events `first..=last` still retained.
    fn events_range(&self, first: u64, last: u64) -> Result<Vec<Event>, StorageError> {
        // A repeat within the same group: its events are not stored yet.
        if self.events.first().is_some_and(|e| e.seq <= first) {
            return Ok(self
                .events
                .iter()
                .filter(|e| (first..=last).contains(&e.seq))
                .cloned()
                .collect());
        }
        let n = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let mut events = self.store.events_from(first, n)?;
        events.retain(|e| e.seq <= last);
        Ok(events)
    }

    /// A `FireDue` request if a deadline is due at `now`: the server appends
    /// it to the group it is about to commit, so timers cost no extra commit.
    pub fn due_request(&self, now: Timestamp) -> Option<Request> {
        self.engine
            .next_deadline()
            .is_some_and(|at| at <= now)
            .then(|| Request::new(None, Command::FireDue, now))
    }

    /// Fires every deadline due at `now` (durably). Call at start, before
    /// serving, and whenever [`Engine::next_deadline`] passes.
    ///
    /// # Errors
    /// The commit fails (the writer stops).
    pub fn fire_due(&mut self, now: Timestamp) -> Result<Vec<Event>, StorageError> {
        let Some(req) = self.due_request(now) else {
            return Ok(Vec::new());
        };
        let mut out = self.apply_group(std::slice::from_ref(&req))?;
        Ok(match out.pop() {
            Some(Outcome::Applied(events)) => events,
            _ => Vec::new(),
        })
    }

    /// The first retained event sequence number (for OUT_OF_RANGE decisions).
    ///
    /// # Errors
    /// sled fails.
    pub fn first_retained_seq(&self) -> Result<u64, StorageError> {
        Ok(self
            .store
            .event_bounds()?
            .map_or(self.engine.last_seq() + 1, |(first, _)| first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_refs_encode_as_journal_entries() {
        let command = Command::FireDue;
        let config = EngineConfig::default();
        let refs = [
            JournalRef::Apply {
                now: Timestamp(7),
                command: &command,
            },
            JournalRef::Configure(&config),
        ];
        let bytes = codec::encode(refs.as_slice()).unwrap();
        let back: Vec<JournalEntry> = codec::decode(b"j", &bytes).unwrap();
        assert!(matches!(
            back.as_slice(),
            [
                JournalEntry::Apply { now: Timestamp(7), command: Command::FireDue },
                JournalEntry::Configure(c),
            ] if *c == config
        ));
    }
}
