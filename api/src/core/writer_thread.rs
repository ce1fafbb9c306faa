//! The writer thread: takes whatever queued (up to a group), applies and
//! commits it with the deadlines due as one unit, answers and publishes as
//! soon as the group is durable, and leaves a snapshot when it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use otc_engine::{Command, Event, EventKind};
use otc_storage::{Done, Outcome, Request, Writer};
use tokio::sync::{RwLock, broadcast};

use super::{
    Failpoint, GROUP_FILE_BYTES_MAX, GROUP_REQUESTS_MAX, Job, MAINTAIN_EVERY, WRITER_IDLE_MS_MAX,
    clock_now,
};
use crate::passwords::FundPasswords;

/// The writer thread: takes whatever queued (up to a group), applies and
/// commits it as one unit with the deadlines due, and answers and publishes
/// as soon as the group is durable, still holding the lock.
pub(super) fn writer_loop(
    writer: &RwLock<Writer>,
    rx: &Receiver<Job>,
    answers: &Answers,
    flags: &Flags,
) {
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
        // The room the gate reserved for the group's attachments, given
        // back once the writer is done with their bytes (not with the
        // answers, which go out from inside the commit).
        let holds: Vec<_> = jobs.iter_mut().filter_map(|j| j.hold.take()).collect();
        let started = Instant::now();
        let mut w = writer.blocking_write();
        // Declared after the guard, so dropped before it if this thread
        // panics: answers may already be out, so readers must be refused.
        let _on_panic = FailOnPanic(failed);
        // Due deadlines ride in the same group: one commit, one fdatasync.
        // Last, not first: every request is judged at the one `now` taken
        // after the queue drained, so a gateway's proof of a payment made in
        // time, queued before the window closed, must come before the
        // timeout that would cancel the trade (SPEC §19: paid in time,
        // notified late, before the timer ran: paid).
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
        // The group's bytes are in the store (or the group failed): their
        // room goes back before housekeeping.
        drop(requests);
        drop(holds);
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
pub(super) struct Flags {
    /// Storage failed: refuse everything.
    pub(super) failed: Arc<AtomicBool>,
    /// Shutdown is done waiting: exit.
    pub(super) stop: Arc<AtomicBool>,
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
pub(super) struct Answers {
    /// Every committed event, for live streams.
    pub(super) bus: broadcast::Sender<Arc<Event>>,
    /// Forgets a user's remembered password when it is set again, and
    /// remembers one an applied command was verified with.
    pub(super) passwords: Arc<FundPasswords>,
    pub(super) failpoint: Option<Failpoint>,
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
    use otc_engine::UserId;
    use otc_engine::command::FundPasswordProof;
    use tokio::sync::oneshot;

    use super::super::tests::deposit;
    use super::*;

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
                hold: None,
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
}
