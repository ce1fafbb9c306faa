//! The shared core of the server: the bounded job queue in front of the
//! single writer thread ([`writer_thread`]), the event bus for streams, and
//! fund-password checks (argon2id, off the writer).

mod writer_thread;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use argon2::{PasswordHasher, PasswordVerifier};
use dashmap::DashMap;
use otc_engine::command::FundPasswordProof;
use otc_engine::{Command, Event, Timestamp, UserId};
use otc_storage::{Call, Done, Writer};
use tokio::sync::{RwLock, RwLockReadGuard, broadcast, oneshot};
use tonic::Status;

use crate::auth::Authenticator;
use crate::passwords::{FundPasswords, Matched};
use writer_thread::{Answers, Flags, writer_loop};

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
    /// The room reserved for the request's attachment, let go once the
    /// writer is done with the job's bytes (see [`crate::gate`]).
    hold: Option<crate::gate::Hold>,
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
        self.submit_with(request_id, command, call, None, None)
            .await
    }

    /// [`Core::submit`], with the ticket of the fund password the
    /// command's verdict came from, and keeping `hold` (the room the gate
    /// reserved for the call's attachment) until the writer is done with
    /// the job, even if the caller gives up first.
    ///
    /// # Errors
    /// As [`Core::submit`].
    pub async fn submit_with(
        &self,
        request_id: Option<String>,
        command: Command,
        call: Option<Call>,
        password: Option<Matched>,
        hold: Option<crate::gate::Hold>,
    ) -> Result<Done, Status> {
        self.check_up()?;
        let (reply, rx) = oneshot::channel();
        let name = command.name();
        let job = Job {
            request_id,
            command,
            call,
            password,
            hold,
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

#[cfg(test)]
pub(crate) mod tests {
    use std::str::FromStr;

    use otc_engine::EngineConfig;
    use otc_storage::WriterOptions;
    use otc_storage::store::Faults;
    use otc_storage::workload::workload_user;
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A deposit of 3 EB to user 1 (also for `writer_thread`'s tests).
    pub(crate) fn deposit(external_ref: &str) -> Command {
        Command::Deposit {
            user: workload_user(1),
            asset: otc_engine::Asset::new("EB").unwrap_or_else(|e| panic!("{e:?}")),
            amount: rust_decimal::Decimal::from_str("3").unwrap_or_else(|e| panic!("{e}")),
            external_ref: external_ref.into(),
        }
    }

    /// The writer thread over a store in `dir`, as `otcd` runs it.
    pub(crate) fn start(
        dir: &Path,
        options: WriterOptions,
    ) -> (Arc<Core>, std::thread::JoinHandle<()>) {
        let writer = Writer::open(dir, EngineConfig::default(), options)
            .unwrap_or_else(|e| panic!("open: {e}"));
        let passwords = crate::passwords::tests::passwords(Duration::from_secs(60));
        Core::start(writer, Authenticator::new(b"secret"), passwords, 16, None)
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
