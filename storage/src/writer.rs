//! The single writer: owns the engine and the store, applies groups of
//! requests, and makes each group durable in one atomic commit before any
//! result leaves it (group commit).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

use otc_engine::ids::{MS_PER_DAY, MS_PER_HOUR};
use otc_engine::{
    BuyOrderId, Command, Engine, EngineConfig, Event, EventKind, ListingId, Rejection,
    RejectionKind, Timestamp, TradeId,
};
use serde::{Deserialize, Serialize};

use crate::codec::{self, kind};
use crate::error::StorageError;
use crate::store::Store;

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

/// A rejection, as remembered for a repeated request id.
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

/// What a request id was first used for, and what came of it (SPEC §14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// Hash of the command: a repeat must carry the same.
    pub fingerprint: u64,
    /// When it was first applied (for pruning after the retention).
    pub at: Timestamp,
    /// The first result.
    pub outcome: StoredOutcome,
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

/// Tunables of the writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Journal entries between snapshots (bounds recovery time).
    pub snapshot_every: u64,
    /// How long request ids are remembered (SPEC §14: at least 24 h).
    pub idempotency_retention_ms: i64,
    /// How long events are kept (SPEC §13: at least 7 days).
    pub event_retention_ms: i64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            snapshot_every: 100_000,
            idempotency_retention_ms: 24 * MS_PER_HOUR,
            event_retention_ms: 7 * MS_PER_DAY,
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
    store: Store,
    options: WriterOptions,
    journal_next: u64,
    since_snapshot: u64,
    idem: HashMap<String, IdemRecord>,
    idem_by_time: BTreeSet<(Timestamp, String)>,
    /// Counter that keeps request-id record keys unique.
    idem_key_next: u64,
    stopped: Option<StorageError>,
    /// The current group's events (one record per group).
    events: Vec<Event>,
    /// The current group's new request-id records (one record per group).
    new_ids: Vec<(String, IdemRecord)>,
    /// Counters.
    pub stats: WriterStats,
}

fn fingerprint(command: &Command) -> u64 {
    let bytes = codec::serialize(command).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// History records of a group, by key: the latest version of each, in pieces.
type History = std::collections::BTreeMap<[u8; 9], Vec<codec::KeyValue>>;

/// Ids of the records a group changed, for the history records.
#[derive(Default)]
struct Touched {
    trades: BTreeSet<TradeId>,
    listings: BTreeSet<ListingId>,
    orders: BTreeSet<BuyOrderId>,
}

impl Touched {
    fn add(&mut self, e: &Event) {
        match &e.kind {
            EventKind::TradeCreated { trade, .. }
            | EventKind::TradeTransitioned { trade, .. }
            | EventKind::AppealOpened { trade, .. }
            | EventKind::EvidenceAdded { trade, .. }
            | EventKind::AppealClaimed { trade, .. }
            | EventKind::AppealUnclaimed { trade, .. }
            | EventKind::AppealResolved { trade, .. }
            | EventKind::AppealSettled { trade, .. } => {
                self.trades.insert(*trade);
            }
            EventKind::ListingChanged { listing, .. } => {
                self.listings.insert(*listing);
            }
            EventKind::BuyOrderChanged { order, .. } => {
                self.orders.insert(*order);
            }
            _ => {}
        }
    }
}

/// Records an event needs besides the group's event record: a chat message
/// (read per trade) and the per-user index of a new trade.
fn stage_event_indexes(batch: &mut sled::Batch, e: &Event) -> Result<(), StorageError> {
    match e.kind {
        EventKind::ChatPosted { trade, .. } => {
            Store::stage_record(batch, &crate::store::chat_key(trade, e.seq), e)?;
        }
        EventKind::TradeCreated {
            trade,
            seller,
            buyer,
            ..
        } => {
            for user in [seller, buyer] {
                batch.insert(
                    crate::store::user_key(kind::USER_TRADE, user, trade.0).as_slice(),
                    &[],
                );
            }
        }
        _ => {}
    }
    Ok(())
}

impl Writer {
    /// Opens the data dir and recovers the engine: the latest snapshot, then
    /// every journal entry after it. Checks record formats and checksums, the
    /// event sequence and the ledger invariants; refuses to start (naming the
    /// key or invariant) rather than serve wrong balances.
    ///
    /// # Errors
    /// Storage cannot be opened, a record is damaged, or the state is inconsistent.
    pub fn open(
        dir: &Path,
        config: EngineConfig,
        options: WriterOptions,
    ) -> Result<Self, StorageError> {
        let store = Store::open(dir)?;
        let (mut engine, journal_start) = match store.load_snapshot()? {
            Some((h, stored_config, state)) => (
                Engine::from_state(stored_config, state).map_err(StorageError::Inconsistent)?,
                h.journal_pos,
            ),
            None => (
                Engine::new(config.clone()).map_err(StorageError::Inconsistent)?,
                0,
            ),
        };
        let mut journal_next = journal_start;
        let mut scratch = Vec::new();
        loop {
            let entries = store.journal_from(journal_next, 4096)?;
            if entries.is_empty() {
                break;
            }
            for (pos, entry) in entries {
                if pos != journal_next {
                    return Err(StorageError::Corrupt {
                        key: codec::show_key(&codec::key_u64(kind::JOURNAL, journal_next)),
                        what: format!("journal jumps from {journal_next} to {pos}"),
                    });
                }
                scratch.clear();
                let applied = match entry {
                    JournalEntry::Apply { now, command } => {
                        engine.apply_into(&command, now, &mut scratch).map_err(|r| {
                            format!(
                                "journal entry {pos} ({}) no longer applies: {r}",
                                command.name()
                            )
                        })
                    }
                    JournalEntry::Configure(c) => engine
                        .set_config(c)
                        .map_err(|e| format!("journal entry {pos}: {e}")),
                };
                applied.map_err(StorageError::Inconsistent)?;
                journal_next += 1;
            }
        }
        if let Some((_, last)) = store.event_bounds()?
            && last != engine.last_seq()
        {
            return Err(StorageError::Inconsistent(format!(
                "stored events end at sequence {last} but the recovered engine is at {}",
                engine.last_seq()
            )));
        }
        engine
            .check_invariants()
            .map_err(StorageError::Inconsistent)?;
        let mut idem = HashMap::new();
        let mut idem_by_time = BTreeSet::new();
        let (records, idem_key_next) = store.idempotency_records()?;
        // Oldest group first: a reused id's newer record supersedes the
        // older one (still on disk until its whole group expires).
        for (id, rec) in records {
            idem_by_time.insert((rec.at, id.clone()));
            if let Some(old) = idem.insert(id.clone(), rec) {
                idem_by_time.remove(&(old.at, id));
            }
        }
        if journal_next == 0 || engine.config() != &config {
            let mut batch = sled::Batch::default();
            Store::stage_record(
                &mut batch,
                &codec::key_u64(kind::JOURNAL, journal_next),
                [JournalRef::Configure(&config)].as_slice(),
            )?;
            store.commit(batch)?;
            engine
                .set_config(config)
                .map_err(StorageError::Inconsistent)?;
            journal_next += 1;
        }
        Ok(Self {
            engine,
            store,
            options,
            journal_next,
            since_snapshot: journal_next - journal_start,
            idem,
            idem_by_time,
            idem_key_next,
            stopped: None,
            events: Vec::new(),
            new_ids: Vec::new(),
            stats: WriterStats::default(),
        })
    }

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

    /// Applies `requests` in order and commits them as one atomic, durable
    /// unit. Results are returned only after the commit.
    ///
    /// # Errors
    /// The commit failed: the writer stops for good (every later call
    /// returns [`StorageError::Stopped`]); none of these requests were
    /// acknowledged and the process must restart to recover from disk.
    pub fn apply_group(&mut self, requests: &[Request]) -> Result<Vec<Outcome>, StorageError> {
        if let Some(e) = &self.stopped {
            return Err(StorageError::Stopped(e.to_string()));
        }
        match self.apply_group_inner(requests) {
            Ok(outcomes) => Ok(outcomes),
            Err(e) => {
                // Any failure mid-group may leave the engine ahead of disk:
                // stop for good; a restart recovers from what is durable.
                self.stopped = Some(e.clone());
                Err(e)
            }
        }
    }

    fn apply_group_inner(&mut self, requests: &[Request]) -> Result<Vec<Outcome>, StorageError> {
        let started = Instant::now();
        let mut batch = sled::Batch::default();
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut touched_ids = Touched::default();
        let mut history = History::new();
        let mut journal = Vec::with_capacity(requests.len());
        let journal_first = self.journal_next;
        self.events.clear();
        self.new_ids.clear();
        for req in requests {
            if matches!(req.command, Command::FireDue) {
                // Firing may forget records (an hour after they ended) that
                // earlier requests of this group changed: take their final
                // state while the engine still has it.
                self.collect_history(&mut batch, &touched_ids, &mut history)?;
                touched_ids = Touched::default();
            }
            let outcome = self.apply_one(req, &mut batch, &mut touched_ids)?;
            if matches!(outcome, Outcome::Applied(_)) {
                journal.push(JournalRef::Apply {
                    now: req.now,
                    command: &req.command,
                });
            }
            outcomes.push(outcome);
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
        if let Some(latest) = self.new_ids.iter().map(|(_, r)| r.at).max() {
            let key = codec::key_time(kind::IDEMPOTENCY, latest.0, self.idem_key_next);
            self.idem_key_next += 1;
            Store::stage_record(&mut batch, &key, &self.new_ids)?;
            for (id, rec) in self.new_ids.drain(..) {
                self.idem_by_time.insert((rec.at, id.clone()));
                self.idem.insert(id, rec);
            }
        }
        self.collect_history(&mut batch, &touched_ids, &mut history)?;
        self.stage_collected_history(&mut batch, history)?;
        let applied = Instant::now();
        self.store.commit(batch)?;
        self.stats.commits += 1;
        self.stats.requests += requests.len() as u64;
        self.stats.engine_ns +=
            u64::try_from(applied.duration_since(started).as_nanos()).unwrap_or(u64::MAX);
        self.stats.commit_ns += u64::try_from(applied.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.since_snapshot >= self.options.snapshot_every {
            self.snapshot()?;
        }
        Ok(outcomes)
    }

    /// The first result of request id `id`, if it was used before (in an
    /// earlier group or earlier in this one).
    fn earlier(&self, id: &str) -> Option<&IdemRecord> {
        self.idem.get(id).or_else(|| {
            self.new_ids
                .iter()
                .rev()
                .find(|(seen, _)| seen == id)
                .map(|(_, r)| r)
        })
    }

    fn apply_one(
        &mut self,
        raw: &Request,
        batch: &mut sled::Batch,
        touched_ids: &mut Touched,
    ) -> Result<Outcome, StorageError> {
        // Request ids are scoped by the acting user: two users never collide.
        let request_id = match (&raw.request_id, raw.command.actor()) {
            (Some(id), Some(actor)) => Some(format!("{actor}/{id}")),
            (id, _) => id.clone(),
        };
        let print = request_id.as_ref().map(|_| fingerprint(&raw.command));
        if let (Some(id), Some(print)) = (&request_id, print)
            && let Some(rec) = self.earlier(id)
        {
            if rec.fingerprint != print {
                return Ok(Outcome::IdConflict);
            }
            let outcome = rec.outcome.clone();
            let events = match outcome {
                StoredOutcome::Applied {
                    first_seq,
                    last_seq,
                } if first_seq <= last_seq => self.events_range(first_seq, last_seq)?,
                _ => Vec::new(),
            };
            return Ok(Outcome::Repeated(outcome, events));
        }
        let start = self.events.len();
        let (outcome, stored) =
            match self
                .engine
                .apply_into(&raw.command, raw.now, &mut self.events)
            {
                Ok(()) => {
                    let new = &self.events[start..];
                    for e in new {
                        stage_event_indexes(batch, e)?;
                        touched_ids.add(e);
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
        if let (Some(id), Some(fingerprint)) = (request_id, print) {
            let rec = IdemRecord {
                fingerprint,
                at: raw.now,
                outcome: stored,
            };
            self.new_ids.push((id, rec));
        }
        Ok(outcome)
    }

    /// Writes the final state of every trade, listing and buy order the
    /// group ended (or changed after it ended), and every appeal it touched,
    /// so history outlives the engine's working set. Open records live in
    /// the engine (and its snapshot and journal); writing each of their
    /// steps would only be rewritten later.
    ///
    /// Versions are collected per record in `history` and staged once, at
    /// the end of the group ([`Writer::stage_collected_history`]): a record
    /// collected twice (before a `FireDue` and after) must not leave the
    /// pieces of its first version in the batch.
    fn collect_history(
        &self,
        batch: &mut sled::Batch,
        ids: &Touched,
        history: &mut History,
    ) -> Result<(), StorageError> {
        let mut keep = |prefix: [u8; 9], pieces| {
            history.insert(prefix, pieces);
        };
        for id in &ids.trades {
            if let Some(t) = self.engine.trade(*id)
                && !t.state.is_open()
            {
                let prefix = codec::key_u64(kind::TRADE, id.0);
                keep(prefix, codec::encode_pieces(&prefix, t)?);
            }
            if let Some(a) = self.engine.appeal(*id) {
                let prefix = codec::key_u64(kind::APPEAL, id.0);
                keep(prefix, codec::encode_pieces(&prefix, a)?);
            }
        }
        for id in &ids.listings {
            if let Some(l) = self.engine.listing(*id) {
                batch.insert(
                    crate::store::user_key(kind::USER_LISTING, l.seller, id.0).as_slice(),
                    &[],
                );
                if !l.state.is_live() {
                    let prefix = codec::key_u64(kind::LISTING, id.0);
                    keep(prefix, codec::encode_pieces(&prefix, l)?);
                }
            }
        }
        for id in &ids.orders {
            if let Some(o) = self.engine.buy_order(*id)
                && o.state != otc_engine::buy::BuyOrderState::Resting
            {
                let prefix = codec::key_u64(kind::BUY_ORDER, id.0);
                keep(prefix, codec::encode_pieces(&prefix, o)?);
            }
        }
        Ok(())
    }

    /// Stages the latest collected version of each history record, replacing
    /// whatever pieces it had on disk.
    fn stage_collected_history(
        &self,
        batch: &mut sled::Batch,
        history: History,
    ) -> Result<(), StorageError> {
        for (prefix, pieces) in history {
            self.store.stage_pieces_replacing(batch, &prefix, pieces)?;
        }
        Ok(())
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

    /// Writes a snapshot of the engine and drops the journal it covers.
    ///
    /// # Errors
    /// The commit fails (the writer stops).
    pub fn snapshot(&mut self) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        self.store.stage_snapshot(
            &mut batch,
            self.engine.config(),
            self.engine.state(),
            self.journal_next,
        )?;
        if let Err(e) = self.store.commit(batch) {
            self.stopped = Some(e.clone());
            return Err(e);
        }
        self.since_snapshot = 0;
        Ok(())
    }

    /// Housekeeping at `now`: forgets request ids and events past their
    /// retention. Bounded work per call.
    ///
    /// # Errors
    /// A commit fails (the writer stops).
    pub fn maintain(&mut self, now: Timestamp) -> Result<(), StorageError> {
        if let Some(e) = &self.stopped {
            return Err(StorageError::Stopped(e.to_string()));
        }
        let cutoff = now.plus_ms(-self.options.idempotency_retention_ms);
        while let Some((at, _)) = self.idem_by_time.first()
            && *at < cutoff
        {
            if let Some((at, id)) = self.idem_by_time.pop_first()
                && self.idem.get(&id).is_some_and(|r| r.at == at)
            {
                self.idem.remove(&id);
            }
        }
        let mut batch = sled::Batch::default();
        let n = match self
            .store
            .stage_idempotency_prune(&mut batch, cutoff, 100_000)
        {
            Ok(n) => n,
            Err(e) => {
                self.stopped = Some(e.clone());
                return Err(e);
            }
        };
        let result = if n > 0 {
            self.store.commit(batch)
        } else {
            Ok(())
        }
        .and_then(|()| {
            self.store
                .prune_events(now.plus_ms(-self.options.event_retention_ms), 10_000)
                .map(|_| ())
        });
        if let Err(e) = result {
            self.stopped = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// A `FireDue` request if a deadline is due at `now`: the server appends
    /// it to the group it is about to commit, so timers cost no extra commit.
    pub fn due_request(&self, now: Timestamp) -> Option<Request> {
        self.engine
            .next_deadline()
            .is_some_and(|at| at <= now)
            .then_some(Request {
                request_id: None,
                command: Command::FireDue,
                now,
            })
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
