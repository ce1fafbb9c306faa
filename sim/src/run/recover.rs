//! Crashes and what must hold after them: the writer stops for good after a
//! failed commit; a restart keeps every acknowledged request (state, events,
//! first replies); a failed group is all there or not at all, and its
//! requests, sent again, say which.

use std::path::Path;

use otc_engine::{Command, Engine};
use otc_storage::{Request, StorageError, Writer};

use super::{Failure, Pending, RETRY_WITHIN_MS, Sim, replier};
use crate::build;
use crate::plan::Faults;

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `to` becomes a copy of `from`.
pub(super) fn replace_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    copy_dir(from, to)
}

fn stopped<T: std::fmt::Debug>(what: &str, r: &Result<T, StorageError>) -> Option<String> {
    match r {
        Err(StorageError::Stopped(_)) => None,
        other => Some(format!(
            "after a failed commit the writer still served {what}: {other:?}"
        )),
    }
}

impl Sim {
    /// Opens the writer on what the disk and sled hold; a start refused
    /// after a flipped bit is retried (the flip was a bad read).
    pub(super) fn start(&mut self) -> Result<(), Failure> {
        loop {
            let flips = self.disk.stats().flips;
            match Writer::open(&self.data, self.config.clone(), self.options.clone()) {
                Ok(mut w) => {
                    w.set_replier(replier());
                    self.writer = Some(w);
                    return Ok(());
                }
                Err(e) if self.disk.stats().flips > flips => {
                    let what = e.to_string();
                    if !what.contains(".wal") {
                        return self.fail(format!(
                            "a start refused after a flipped bit does not name the segment: {what}"
                        ));
                    }
                    self.report.refused_starts += 1;
                }
                Err(e) => return self.fail(format!("the restart was refused: {e}")),
            }
        }
    }

    /// Fail-stop: after a failed commit the writer refuses everything (its
    /// engine may be ahead of the disk).
    pub(super) fn check_stopped(&mut self) -> Result<(), Failure> {
        let now = self.now;
        let probe = Request::new(
            Some("after-a-failure".into()),
            Command::Deposit {
                user: build::user(0),
                asset: build::market().0,
                amount: rust_decimal::Decimal::ONE,
                external_ref: "after-a-failure".into(),
            },
            now,
        );
        let w = self.writer()?;
        let problems = [
            stopped("a group", &w.apply_group_replies(&[probe])),
            stopped(
                "a request-id lookup",
                &w.earlier(build::user(0), "after-a-failure", 0),
            ),
            stopped("a snapshot", &w.snapshot()),
            stopped("housekeeping", &w.maintain(now)),
        ];
        match problems.into_iter().flatten().next() {
            Some(p) => self.fail(p),
            None => Ok(()),
        }
    }

    /// The events the store holds since the last check (and a margin
    /// before it) equal the oracle's: none lost, none extra.
    fn check_events(&mut self) -> Result<(), Failure> {
        let from = self.events_checked.saturating_sub(200);
        let got = match self
            .writer()?
            .store()
            .events_from(from as u64 + 1, usize::MAX)
        {
            Ok(got) => got,
            Err(e) => return self.fail(format!("reading the events back: {e}")),
        };
        if let Some(first) = self.events_differ(from, &got) {
            return self.fail(format!(
                "the store's events differ from the acknowledged ones from event {first} (it holds {} after {from}, the replay {})",
                got.len(),
                self.oracle_events.len() - from
            ));
        }
        self.events_checked = self.oracle_events.len();
        Ok(())
    }

    /// The process dies; the disk keeps what it keeps; it restarts.
    pub(super) fn crash(&mut self) -> Result<(), Failure> {
        self.group.clear();
        drop(self.writer.take());
        sled::fail::reset();
        self.disk.crash();
        // sled as of its last flush, or (as if its own writes had reached
        // the disk) as it is: flushed when the writer dropped it, unless
        // the writer had stopped (then what sled wrote on its own threads
        // depends on timing, and the run would not replay exactly).
        let stopped = self.failed.is_some() || self.sled_failed;
        self.sled_failed = false;
        if stopped || self.rng.below(3) != 0 {
            let durable = self.data.with_file_name("sled-durable");
            if let Err(e) = replace_dir(&durable, &self.data) {
                return self.fail(format!("restoring sled's durable state: {e}"));
            }
        }
        self.start()?;
        self.report.restarts += 1;
        self.sync_failures_seen = self.disk.stats().sync_failures;
        // A failed group may have reached the journal: then all of it.
        let mut resend = Vec::new();
        if let Some(group) = self.failed.take() {
            let digest = self.writer()?.engine().digest();
            let survived = digest != self.oracle.digest();
            for p in group
                .into_iter()
                .filter(|p| p.retry_of.is_none() && p.reuse_of.is_none())
            {
                if survived {
                    self.replay_one(&p.req, None)?;
                }
                // Its clients heard nothing and send it again.
                if p.req.request_id.is_some() {
                    let mut req = p.req;
                    req.now = self.now;
                    resend.push(Pending {
                        resend: Some(survived),
                        ..Pending::new(req)
                    });
                }
            }
        }
        self.check_state()?;
        self.check_events()?;
        // Every request acknowledged in the life that ended answers its
        // first reply.
        let from = self.life_start.max(self.acked.len().saturating_sub(300));
        for i in from..self.acked.len() {
            if self.now.0 - self.acked[i].req.now.0 < RETRY_WITHIN_MS {
                let mut req = self.acked[i].req.clone();
                req.now = self.now;
                self.group.push(Pending {
                    retry_of: Some(i),
                    ..Pending::new(req)
                });
            }
        }
        self.group.extend(resend);
        self.life_start = self.acked.len();
        // As the server: every deadline due while down fires at once.
        self.commit()
    }

    /// The end of a run: a last crash, then everything checked once more,
    /// and a replay of every acknowledged command from scratch.
    pub(super) fn finish(&mut self, faults: Faults) -> Result<(), Failure> {
        self.commit()?;
        if faults.crash {
            self.crash()?;
        }
        self.check_state()?;
        self.check_events()?;
        let mut fresh = match Engine::new(self.config.clone()) {
            Ok(e) => e,
            Err(e) => return self.fail(format!("the default configuration: {e}")),
        };
        for (now, command) in &self.applied {
            if let Err(r) = fresh.apply(command, *now) {
                return self.fail(format!(
                    "{command:?} at {}: applied once, refused by a fresh replay: {r:?}",
                    now.0
                ));
            }
        }
        if fresh.digest() != self.writer()?.engine().digest() {
            return self.fail("the state differs from a fresh replay of the acknowledged commands");
        }
        self.report.digest = self.writer()?.engine().digest();
        self.report.events_forgotten = match self.writer()?.store().events_from(1, usize::MAX) {
            Ok(kept) => (self.oracle_events.len() - kept.len()) as u64,
            Err(e) => return self.fail(format!("reading the events back: {e}")),
        };
        self.report.disk = self.disk.stats();
        Ok(())
    }
}
