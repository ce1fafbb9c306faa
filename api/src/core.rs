//! The shared core of the server: the single writer thread, the bounded job
//! queue in front of it, the event bus for streams, and fund-password
//! checks (argon2id, off the writer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use argon2::{PasswordHasher, PasswordVerifier};
use dashmap::DashMap;
use otc_engine::command::FundPasswordProof;
use otc_engine::{Command, Event, EventKind, Timestamp, UserId};
use otc_storage::{Call, Done, Outcome, Request, Writer};
use tokio::sync::{RwLock, RwLockReadGuard, broadcast, oneshot};
use tonic::Status;

use crate::auth::Authenticator;
use crate::passwords::{FundPasswords, Matched};

/// Requests one group commit takes at most.
pub const GROUP_REQUESTS_MAX: usize = 4_096;
/// Attachment bytes past which a group takes no more requests.
pub const GROUP_FILE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest the writer sleeps without checking deadlines and housekeeping.
pub const WRITER_IDLE_MS_MAX: u64 = 1_000;
/// Housekeeping (pruning ids and events) interval.
pub const MAINTAIN_EVERY: Duration = Duration::from_secs(60);

/// The wall clock, in engine time.
pub fn clock_now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_millis())
}

/// A test-only fault the server can be started with (`--failpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// The process dies (abort, like a kill -9) after a group holding a
    /// client request is durable and before any reply is sent.
    CrashAfterCommit,
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "crash-after-commit" => Ok(Failpoint::CrashAfterCommit),
            other => Err(format!(
                "unknown failpoint {other:?}; the only one is crash-after-commit"
            )),
        }
    }
}

struct Job {
    request_id: Option<String>,
    command: Command,
    call: Option<Call>,
    /// Remembered if the command is applied (see [`crate::passwords`]).
    password: Option<Matched>,
    reply: oneshot::Sender<Result<Done, String>>,
}

impl Job {
    fn file_bytes(&self) -> usize {
        self.call
            .as_ref()
            .and_then(|c| c.attachment.as_ref())
            .map_or(0, Vec::len)
    }
}

/// A fund-password verdict for a command, and the ticket that remembers
/// the password once that command is applied (argon2 matched it).
pub struct Checked {
    /// The verdict, for the command.
    pub proof: FundPasswordProof,
    /// For [`crate::pipeline::Prepared::with_password`].
    pub matched: Option<Matched>,
}

/// What the handlers share.
pub struct Core {
    /// The writer: handlers read the engine and store through it; only the
    /// writer thread takes it for writing, across apply *and* commit, so no
    /// reader ever sees a change before it is durable.
    pub writer: Arc<RwLock<Writer>>,
    jobs: SyncSender<Job>,
    /// Every committed event, in sequence order, for live streams.
    pub bus: broadcast::Sender<Arc<Event>>,
    /// Token verification.
    pub auth: Authenticator,
    /// Request ids of committed groups: a request whose id is not among
    /// them skips the lookup under the writer's lock.
    pub known_ids: otc_storage::KnownIds,
    /// Fund-password hashing and the passwords verified lately.
    pub passwords: Arc<FundPasswords>,
    /// Open event streams per user.
    pub subscribers: DashMap<UserId, usize>,
    /// Most event streams one user may hold open (SPEC §18).
    pub subscribers_max: usize,
    /// Set when storage failed: every call answers UNAVAILABLE.
    pub failed: Arc<AtomicBool>,
    /// Turns true at shutdown: open streams end so in-flight calls can finish.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Set when shutdown is done waiting for connections: the writer
    /// finishes its group, leaves a snapshot and exits, though connections
    /// (a client that stopped reading) still hold the core.
    stop: Arc<AtomicBool>,
}

impl Core {
    /// Starts the writer thread over `writer`, with a queue of `queue_len`.
    pub fn start(
        mut writer: Writer,
        auth: Authenticator,
        passwords: FundPasswords,
        queue_len: usize,
        failpoint: Option<Failpoint>,
    ) -> (Arc<Core>, std::thread::JoinHandle<()>) {
        writer.set_replier(Box::new(crate::views::render));
        let subscribers_max = writer.engine().config().subscribers_per_user_max as usize;
        let known_ids = writer.known_ids();
        let writer = Arc::new(RwLock::new(writer));
        let (jobs, rx) = std::sync::mpsc::sync_channel(queue_len);
        let (bus, _) = broadcast::channel(65_536);
        let failed = Arc::new(AtomicBool::new(false));
        let passwords = Arc::new(passwords);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (writer, bus, failed) = (Arc::clone(&writer), bus.clone(), Arc::clone(&failed));
            let flags = Flags {
                failed,
                stop: Arc::clone(&stop),
            };
            let passwords = Arc::clone(&passwords);
            let answers = Answers {
                bus,
                passwords,
                failpoint,
            };
            std::thread::Builder::new()
                .name("otc-writer".into())
                .spawn(move || writer_loop(&writer, &rx, &answers, &flags))
                .unwrap_or_else(|e| panic!("cannot start the writer thread: {e}"))
        };
        let (closing, _) = tokio::sync::watch::channel(false);
        let core = Core {
            writer,
            jobs,
            bus,
            auth,
            known_ids,
            passwords,
            subscribers: DashMap::new(),
            subscribers_max,
            failed,
            closing,
            stop,
        };
        (Arc::new(core), thread)
    }

    /// Stops the writer at its next turn (within [`WRITER_IDLE_MS_MAX`]),
    /// however many hold the core: what it took is committed and answered,
    /// what is still queued is not applied (its callers hear UNAVAILABLE).
    pub fn stop_writer(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Refuses every call once storage failed.
    ///
    /// # Errors
    /// UNAVAILABLE after a storage failure.
    pub fn check_up(&self) -> Result<(), Status> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(Status::unavailable(
                "storage failed; the server stopped accepting requests until it is restarted",
            ));
        }
        Ok(())
    }

    /// The writer, read-locked; refused (UNAVAILABLE) once storage failed,
    /// checked under the lock: what a failed group left in memory or
    /// partly in sled is never served. Every read goes through here.
    ///
    /// # Errors
    /// UNAVAILABLE after a storage failure.
    pub async fn read(&self) -> Result<RwLockReadGuard<'_, Writer>, Status> {
        let w = self.writer.read().await;
        self.check_up()?;
        Ok(w)
    }

    /// Queues a command for the writer and waits for its durable outcome.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the queue is full; UNAVAILABLE when storage failed.
    pub async fn submit(
        &self,
        request_id: Option<String>,
        command: Command,
        call: Option<Call>,
    ) -> Result<Done, Status> {
        self.submit_with(request_id, command, call, None).await
    }

    /// [`Core::submit`], with the ticket of the fund password the
    /// command's verdict came from.
    ///
    /// # Errors
    /// As [`Core::submit`].
    pub async fn submit_with(
        &self,
        request_id: Option<String>,
        command: Command,
        call: Option<Call>,
        password: Option<Matched>,
    ) -> Result<Done, Status> {
        self.check_up()?;
        let (reply, rx) = oneshot::channel();
        let name = command.name();
        let job = Job {
            request_id,
            command,
            call,
            password,
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                metrics::counter!("otc_queue_full_total").increment(1);
                Status::resource_exhausted(
                    "the server is busy (write queue full); retry shortly with the same request_id",
                )
            }
            TrySendError::Disconnected(_) => Status::unavailable("the server is shutting down"),
        })?;
        let out = rx
            .await
            .map_err(|_| {
                Status::unavailable(
                    "the writer stopped before answering; retry with the same request_id",
                )
            })?
            .map_err(|e| Status::unavailable(format!("storage failed: {e}")))?;
        metrics::counter!("otc_commands_total", "command" => name).increment(1);
        Ok(out)
    }

    /// Hashes `user`'s new fund password (argon2id, on a blocking thread,
    /// in turn: see [`crate::argon2_turns`]).
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when argon2 is busy; INTERNAL if hashing fails.
    pub async fn hash_password(&self, user: UserId, password: String) -> Result<String, Status> {
        let argon = self.passwords.argon2()?;
        let turn = self.passwords.turn(user).await?;
        metrics::counter!("otc_fund_password_hashes_total").increment(1);
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Status::internal(format!("hashing failed: {e}")))
        })
        .await
        .map_err(|e| Status::internal(format!("hashing task failed: {e}")))?
    }

    /// Checks `password` against `user`'s fund-password hash off the writer
    /// (argon2id on a blocking thread, unless the user's password matched
    /// lately: see [`crate::passwords`]) and returns the verdict for the
    /// engine, which holds every rule about it (SPEC §6): set or not,
    /// locked, stale, and counting a wrong one toward the lockout.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when argon2 is busy (see [`crate::argon2_turns`]);
    /// INTERNAL if the verification task fails.
    pub async fn check_password(&self, user: UserId, password: &str) -> Result<Checked, Status> {
        if let Some(proof) = self.passwords.recall(user, password, Instant::now()) {
            metrics::counter!("otc_fund_password_checks_total", "by" => "remembered").increment(1);
            return Ok(Checked {
                proof,
                matched: None,
            });
        }
        let stored = {
            let w = self.read().await?;
            let e = w.engine();
            let locked = e.user(user).and_then(|u| u.lock_at(clock_now())).is_some();
            e.fund_password(user)
                .map(|(hash, version)| (hash.to_owned(), version, locked))
        };
        let unremembered = |proof| Checked {
            proof,
            matched: None,
        };
        let Some((hash, version, locked)) = stored else {
            // No password set: the engine says so.
            return Ok(unremembered(FundPasswordProof::wrong(0)));
        };
        if locked {
            // The engine refuses a locked user anyway: spend no argon2 on it.
            return Ok(unremembered(FundPasswordProof::unchecked(version)));
        }
        let argon = self.passwords.argon2()?;
        let turn = self.passwords.turn(user).await?;
        let passwords = Arc::clone(&self.passwords);
        let password = password.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let matched = argon
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok();
            // The ticket's HMAC either way: a match takes no longer.
            let ticket = passwords.pend(user, version, &password, Instant::now());
            matched.then_some(ticket)
        })
        .await
        .map_err(|e| Status::internal(format!("verification task failed: {e}")))?;
        metrics::counter!("otc_fund_password_checks_total", "by" => "argon2").increment(1);
        Ok(match matched {
            Some(ticket) => Checked {
                proof: FundPasswordProof::matched(version),
                matched: ticket,
            },
            None => unremembered(FundPasswordProof::wrong(version)),
        })
    }
}

/// The writer thread: takes whatever queued (up to a group), applies and
/// commits it as one unit with the deadlines due, and answers and publishes
/// as soon as the group is durable, still holding the lock.
fn writer_loop(writer: &RwLock<Writer>, rx: &Receiver<Job>, answers: &Answers, flags: &Flags) {
    let (failed, stop) = (&*flags.failed, &*flags.stop);
    let mut last_maintain = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            // What is still queued is dropped with the queue when this
            // thread ends: each caller hears "retry with the same request_id".
            break;
        }
        // After a failure no deadline fires: wait for requests only (to
        // refuse them), never spinning on a deadline that stays due.
        let wait_ms = if failed.load(Ordering::Relaxed) {
            WRITER_IDLE_MS_MAX
        } else {
            let w = writer.blocking_read();
            let now = clock_now();
            w.engine().next_deadline().map_or(WRITER_IDLE_MS_MAX, |at| {
                u64::try_from(at.ms_since(now))
                    .unwrap_or(0)
                    .min(WRITER_IDLE_MS_MAX)
            })
        };
        let mut jobs = Vec::new();
        match rx.recv_timeout(Duration::from_millis(wait_ms)) {
            Ok(job) => jobs.push(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // A group is bounded in requests and in file bytes (one journal
        // record and one fdatasync carry them all).
        let mut file_bytes: usize = jobs.iter().map(Job::file_bytes).sum();
        while jobs.len() < GROUP_REQUESTS_MAX && file_bytes < GROUP_FILE_BYTES_MAX {
            match rx.try_recv() {
                Ok(job) => {
                    file_bytes += job.file_bytes();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if failed.load(Ordering::Relaxed) {
            for job in jobs {
                let _ = job.reply.send(Err("storage failed earlier".into()));
            }
            continue;
        }
        let now = clock_now();
        let from_clients = jobs.iter().any(|j| j.call.is_some());
        let mut requests: Vec<Request> = jobs
            .iter_mut()
            .map(|j| Request {
                request_id: j.request_id.take(),
                command: std::mem::replace(&mut j.command, Command::FireDue),
                now,
                call: j.call.take(),
            })
            .collect();
        let started = Instant::now();
        let mut w = writer.blocking_write();
        // Declared after the guard, so dropped before it if this thread
        // panics: answers may already be out, so readers must be refused.
        let _on_panic = FailOnPanic(failed);
        // Due deadlines ride in the same group: one commit, one fdatasync.
        requests.extend(w.due_request(now));
        let before = w.stats;
        let group = jobs.len();
        // Answered as soon as the group is durable: readers still wait for
        // this lock, and a read puts the group into sled first if the
        // commit left it aside (see `Store::commit_then`).
        let mut unanswered = Some(jobs);
        let result = if requests.is_empty() {
            Ok(())
        } else {
            w.apply_group_then(&requests, &mut |outcomes| {
                if let Some(jobs) = unanswered.take() {
                    if answers.failpoint == Some(Failpoint::CrashAfterCommit) && from_clients {
                        tracing::warn!("failpoint crash-after-commit: aborting before the replies");
                        std::process::abort();
                    }
                    answers.answer(jobs, outcomes);
                    // Let the woken tasks send their answers now: with every
                    // thread on one core, the scheduler would otherwise keep
                    // this thread on it through the rest of the commit.
                    std::thread::yield_now();
                }
            })
        };
        let after = w.stats;
        // Where the time goes: engine work vs write + flush + fdatasync.
        metrics::counter!("otc_commits_total").increment(after.commits - before.commits);
        metrics::counter!("otc_committed_requests_total")
            .increment(after.requests - before.requests);
        metrics::counter!("otc_engine_nanoseconds_total")
            .increment(after.engine_ns - before.engine_ns);
        metrics::counter!("otc_commit_nanoseconds_total")
            .increment(after.commit_ns - before.commit_ns);
        if last_maintain.elapsed() >= MAINTAIN_EVERY {
            last_maintain = Instant::now();
            if let Err(e) = w.maintain(now) {
                tracing::error!(error = %e, "housekeeping failed; stopping writes");
                failed.store(true, Ordering::Relaxed);
            }
        }
        if let Err(e) = &result {
            // Before the lock is let go: no reader that checks `failed`
            // after taking it sees what the failed group left behind.
            failed.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "storage failed in a group commit; the server stops accepting requests");
        }
        drop(w);
        metrics::histogram!("otc_group_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("otc_group_requests").record(group as f64);
        // Not answered: the group never became durable (a failure after it
        // did, in sled or a snapshot, leaves the answers already given).
        if let Some(jobs) = unanswered {
            let why = match &result {
                Err(e) => e.to_string(),
                // Not reached: a group that commits is answered.
                Ok(()) => "internal: the group committed without outcomes".to_owned(),
            };
            for job in jobs {
                let _ = job.reply.send(Err(why.clone()));
            }
        }
    }
    // Queue closed or stopped (shutdown): leave a snapshot so the next
    // start is quick.
    if !failed.load(Ordering::Relaxed)
        && let Err(e) = writer.blocking_write().snapshot()
    {
        tracing::error!(error = %e, "final snapshot failed");
    }
}

/// What the writer thread watches besides its queue.
struct Flags {
    /// Storage failed: refuse everything.
    failed: Arc<AtomicBool>,
    /// Shutdown is done waiting: exit.
    stop: Arc<AtomicBool>,
}

/// Marks storage failed if the writer thread unwinds while it holds the
/// lock (see `writer_loop`).
struct FailOnPanic<'a>(&'a AtomicBool);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// What the writer thread needs to answer a durable group.
struct Answers {
    /// Every committed event, for live streams.
    bus: broadcast::Sender<Arc<Event>>,
    /// Forgets a user's remembered password when it is set again, and
    /// remembers one an applied command was verified with.
    passwords: Arc<FundPasswords>,
    failpoint: Option<Failpoint>,
}

impl Answers {
    /// Sends each job its outcome, and every applied event to the live
    /// streams; outcomes past the jobs' are the due deadlines' (events
    /// only). A password set is forgotten before any answer goes out; the
    /// password a job's applied command was verified with is remembered.
    fn answer(&self, jobs: Vec<Job>, mut outcomes: Vec<Done>) {
        let mut set_here = Vec::new();
        for done in &outcomes {
            if let Outcome::Applied(events) = &done.outcome {
                for e in events {
                    if let EventKind::FundPasswordSet { user } = e.kind {
                        self.passwords.forget(user);
                        set_here.push(user);
                    }
                }
            }
        }
        let now = Instant::now();
        let fired = outcomes.split_off(jobs.len().min(outcomes.len()));
        for (job, done) in jobs.into_iter().zip(outcomes) {
            if let Outcome::Applied(events) = &done.outcome {
                // Applied: its verdict was about the current hash, unless a
                // later command of this group set the password.
                if let Some(matched) = job.password
                    && !set_here.contains(&matched.user())
                {
                    self.passwords.confirm(matched, now);
                }
                for e in events {
                    let _ = self.bus.send(Arc::new(e.clone()));
                }
            }
            let _ = job.reply.send(Ok(done));
        }
        for done in fired {
            if let Outcome::Applied(events) = done.outcome {
                for e in events {
                    let _ = self.bus.send(Arc::new(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use otc_engine::EngineConfig;
    use otc_storage::WriterOptions;
    use otc_storage::store::Faults;
    use otc_storage::workload::workload_user;
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn deposit(external_ref: &str) -> Command {
        Command::Deposit {
            user: workload_user(1),
            asset: otc_engine::Asset::new("EB").unwrap_or_else(|e| panic!("{e:?}")),
            amount: rust_decimal::Decimal::from_str("3").unwrap_or_else(|e| panic!("{e}")),
            external_ref: external_ref.into(),
        }
    }

    /// The writer thread over a store in `dir`, as `otcd` runs it.
    fn start(dir: &Path, options: WriterOptions) -> (Arc<Core>, std::thread::JoinHandle<()>) {
        let writer = Writer::open(dir, EngineConfig::default(), options)
            .unwrap_or_else(|e| panic!("open: {e}"));
        let passwords = crate::passwords::tests::passwords(Duration::from_secs(60));
        Core::start(writer, Authenticator::new(b"secret"), passwords, 16, None)
    }

    /// The answer step remembers a job's password only when that job's own
    /// command was applied, and not for a user whose password the same
    /// group set.
    #[test]
    fn only_an_applied_jobs_ticket_is_remembered() {
        let passwords = Arc::new(crate::passwords::tests::passwords(Duration::from_secs(60)));
        let answers = Answers {
            bus: broadcast::channel(16).0,
            passwords: Arc::clone(&passwords),
            failpoint: None,
        };
        let user = |n: u8| UserId(uuid::Uuid::from_bytes([n; 16]));
        let now = Instant::now();
        let mut replies = Vec::new();
        let mut job = |ticket_for: Option<u8>| {
            let (reply, rx) = oneshot::channel();
            replies.push(rx);
            Job {
                request_id: None,
                command: deposit("any"),
                call: None,
                password: ticket_for.and_then(|n| passwords.pend(user(n), 1, "secret", now)),
                reply,
            }
        };
        // Users 1 to 4 each with a ticket, then user 4's password set.
        let jobs = vec![
            job(Some(1)),
            job(Some(2)),
            job(Some(3)),
            job(Some(4)),
            job(None),
        ];
        let done = |outcome| Done {
            outcome,
            reply: None,
        };
        let set = Event {
            seq: 1,
            at: clock_now(),
            kind: EventKind::FundPasswordSet { user: user(4) },
        };
        let first = otc_storage::StoredOutcome::Applied {
            first_seq: 1,
            last_seq: 0,
        };
        answers.answer(
            jobs,
            vec![
                done(Outcome::Applied(Vec::new())),
                done(Outcome::Repeated(first, Vec::new())),
                done(Outcome::Rejected(otc_engine::Rejection::NoFundPassword)),
                done(Outcome::Applied(Vec::new())),
                done(Outcome::Applied(vec![set])),
            ],
        );
        let remembered = |n: u8| passwords.recall(user(n), "secret", now);
        assert_eq!(remembered(1), Some(FundPasswordProof::matched(1)));
        assert_eq!(remembered(2), None, "a retry's ticket");
        assert_eq!(remembered(3), None, "a refused command's ticket");
        assert_eq!(remembered(4), None, "set in the same group");
        assert_eq!(replies.len(), 5);
        for rx in &mut replies {
            assert!(rx.try_recv().is_ok(), "every job is answered");
        }
    }

    /// Sets a fault `commits_ahead` commits from now (the next is 1).
    async fn fail_in(core: &Core, commits_ahead: u64, at: fn(&Faults) -> &AtomicU64) {
        let w = core.read().await.unwrap_or_else(|e| panic!("{e}"));
        let n = w.store().commits.load(Ordering::Relaxed) + commits_ahead;
        at(&w.store().faults).store(n, Ordering::Relaxed);
    }

    async fn assert_reads_refused(core: &Core) {
        match core.read().await {
            Ok(_) => panic!("a read was served after storage failed"),
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_a_commit_failed_no_read_is_served() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (core, thread) = start(dir.path(), WriterOptions::default());
        let done = core.submit(None, deposit("first"), None).await;
        assert!(done.is_ok(), "{done:?}");
        assert!(core.read().await.is_ok());
        fail_in(&core, 1, |f| &f.fail_write_at).await;
        let failed = core.submit(None, deposit("second"), None).await;
        assert!(failed.is_err(), "the injected failure: {failed:?}");
        assert_reads_refused(&core).await;
        drop(core);
        let _ = thread.join();
    }

    /// A group is answered once durable, before sled and a snapshot due
    /// after it: a snapshot failing then stops the writer, the answer
    /// stands, and the group is there after a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_after_the_group_is_durable_keeps_its_answer() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = || WriterOptions {
            snapshot_every: 1,
            ..WriterOptions::default()
        };
        let (core, thread) = start(dir.path(), options());
        let first = core.submit(None, deposit("first"), None).await;
        assert!(first.is_ok(), "{first:?}");
        // The group's commit, then its snapshot: the snapshot fails.
        fail_in(&core, 2, |f| &f.fail_flush_at).await;
        let second = core.submit(None, deposit("second"), None).await;
        assert!(second.is_ok(), "answered once durable: {second:?}");
        assert_reads_refused(&core).await;
        drop(core);
        let _ = thread.join();
        let reopened = Writer::open(dir.path(), EngineConfig::default(), options())
            .unwrap_or_else(|e| panic!("reopen: {e}"));
        let eb = otc_engine::Asset::new("EB").unwrap_or_else(|e| panic!("{e:?}"));
        let held = reopened.engine().balance(workload_user(1), eb).available;
        assert_eq!(
            held.value(),
            rust_decimal::Decimal::from(6),
            "both deposits"
        );
    }
}
