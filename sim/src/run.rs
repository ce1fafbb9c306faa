//! Running a plan: the real writer (engine, journal on the simulated disk,
//! sled on a temporary directory) driven step by step, with a simulated
//! clock, crashes and restarts, and every check after every commit and
//! every recovery.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use otc_engine::{Command, Engine, EngineConfig, Event, Rejection, RejectionKind, Timestamp};
use otc_storage::store::StoreOptions;
use otc_storage::{Done, Outcome, Request, Writer, WriterOptions};

use crate::build;
use crate::disk::{Shared, SimDisk};
use crate::model::Model;

mod housekeeping;
mod recover;
use crate::plan::{self, Act, Step};
use crate::rng::Rng;

pub use crate::report::{Config, Failure, Report};

/// One process runs one simulation at a time: sled's failpoints are global.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A request of the group being gathered.
struct Pending {
    req: Request,
    /// A retry of the acknowledged request at this index.
    retry_of: Option<usize>,
    /// Another request under that one's id.
    reuse_of: Option<usize>,
    /// A request of a group whose commit failed, sent again after the
    /// restart (as its client would): whether the group survived.
    resend: Option<bool>,
}

impl Pending {
    fn new(req: Request) -> Pending {
        Pending {
            req,
            retry_of: None,
            reuse_of: None,
            resend: None,
        }
    }
}

/// An acknowledged request and its reply.
struct Acked {
    req: Request,
    reply: Vec<u8>,
}

/// How long the sim trusts a request id to be remembered (SPEC §14 says at
/// least 24 h; retries stay well inside it).
const RETRY_WITHIN_MS: i64 = 20 * 3_600_000;

struct Sim {
    seed: u64,
    rng: Rng,
    data: PathBuf,
    disk: Arc<SimDisk>,
    options: WriterOptions,
    config: EngineConfig,
    writer: Option<Writer>,
    now: Timestamp,
    group: Vec<Pending>,
    acked: Vec<Acked>,
    /// `acked` from here on were acknowledged since the last restart.
    life_start: usize,
    /// A fresh engine fed every command the writer applied or refused, in
    /// order: a replay of the acknowledged commands.
    oracle: Engine,
    /// Every command the oracle applied, in order, with its time.
    applied: Vec<(Timestamp, Command)>,
    model: Model,
    /// A group whose commit failed: durable or not, recovery decides.
    failed: Option<Vec<Pending>>,
    /// Failed `fdatasync`s seen so far (a new one explains a failure).
    sync_failures_seen: u64,
    /// sled's flush failed: the writer stops at its next commit.
    sled_failed: bool,
    /// Every event the oracle emitted, in order.
    oracle_events: Vec<Event>,
    /// Events up to here were compared with the store's after a restart.
    events_checked: usize,
    /// Housekeeping may have forgotten the events before this time.
    events_forgotten_before: Timestamp,
    /// Copying sled's durable state failed (the hook cannot return it).
    hook_error: Arc<Mutex<Option<String>>>,
    n: u64,
    step: usize,
    report: Report,
    _tmp: tempfile::TempDir,
}

fn replier() -> otc_storage::Replier {
    Box::new(|_, _, result| format!("{result:?}").into_bytes())
}

impl Sim {
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, Failure> {
        // The same words for the same failure, wherever the run's files were.
        let what = what.into().replace(&*self.data.to_string_lossy(), "<data>");
        Err(Failure {
            step: self.step,
            what,
        })
    }

    fn new(cfg: &Config) -> Result<Sim, Failure> {
        let io = |e: std::io::Error| Failure {
            step: 0,
            what: format!("the simulator's own files: {e}"),
        };
        // sled's files on a RAM disk where there is one: its fsyncs cost
        // nothing there, and its durability is simulated anyway.
        let shm = Path::new("/dev/shm");
        let tmp = shm
            .is_dir()
            .then(|| {
                tempfile::Builder::new()
                    .prefix("otcsim-")
                    .tempdir_in(shm)
                    .ok()
            })
            .flatten()
            .map_or_else(|| tempfile::Builder::new().prefix("otcsim-").tempdir(), Ok)
            .map_err(io)?;
        let data = tmp.path().join("data");
        let durable = tmp.path().join("sled-durable");
        let disk = SimDisk::new(cfg.seed);
        disk.inject(cfg.bug);
        let mut rng = Rng::new(cfg.seed ^ 0x5eed_51a0);
        // sled's state as of its last flush: what a crash leaves of it.
        let hook_error: Arc<Mutex<Option<String>>> = Arc::default();
        let hook: otc_storage::store::SledDurableHook = {
            let (durable, error) = (durable.clone(), Arc::clone(&hook_error));
            Arc::new(move |dir: &Path| {
                if let Err(e) = recover::replace_dir(dir, &durable)
                    && let Ok(mut slot) = error.lock()
                {
                    slot.get_or_insert(format!("copying sled's durable state: {e}"));
                }
            })
        };
        let options = WriterOptions {
            snapshot_every: 20 + rng.below(300),
            store: StoreOptions {
                segment_bytes: 4_096 << rng.below(5),
                flush_every: None,
                disk: Arc::new(Shared(Arc::clone(&disk))),
                on_sled_durable: Some(hook),
            },
            ..WriterOptions::default()
        };
        let config = EngineConfig::default();
        let oracle = Engine::new(config.clone()).map_err(|e| Failure {
            step: 0,
            what: format!("the default configuration: {e}"),
        })?;
        let model = Model::new(&config);
        let mut sim = Sim {
            seed: cfg.seed,
            rng,
            data,
            disk,
            options,
            config,
            writer: None,
            now: Timestamp(1_767_225_600_000),
            group: Vec::new(),
            acked: Vec::new(),
            life_start: 0,
            oracle,
            applied: Vec::new(),
            model,
            failed: None,
            sync_failures_seen: 0,
            sled_failed: false,
            oracle_events: Vec::new(),
            events_checked: 0,
            events_forgotten_before: Timestamp(i64::MIN),
            hook_error,
            n: 0,
            step: 0,
            report: Report::default(),
            _tmp: tmp,
        };
        sim.start()?;
        Ok(sim)
    }

    fn writer(&mut self) -> Result<&mut Writer, Failure> {
        let step = self.step;
        self.writer.as_mut().ok_or_else(|| Failure {
            step,
            what: "no writer (a bug in the simulator)".into(),
        })
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("sim{}-{}", self.seed, self.n)
    }

    fn request(&mut self, user: u16, act: &Act) -> Result<(), Failure> {
        let me = build::user(user);
        let n = self.n;
        let commands = match act {
            Act::BecomeMerchant => vec![
                build::register(me),
                build::command(self.writer()?.engine(), me, act, n),
                Command::SetMerchantOnline {
                    merchant: me,
                    online: true,
                },
            ],
            Act::BindChannel => vec![
                build::assign_channel(me),
                build::command(self.writer()?.engine(), me, act, n),
            ],
            _ => vec![build::command(self.writer()?.engine(), me, act, n)],
        };
        for command in commands {
            let id = self.next_id();
            self.group
                .push(Pending::new(Request::new(Some(id), command, self.now)));
        }
        Ok(())
    }

    /// An acknowledged request still inside its id's retention, by `k`.
    fn recent_acked(&self, k: u32) -> Option<usize> {
        let recent: Vec<usize> = (0..self.acked.len())
            .rev()
            .take(500)
            .filter(|&i| self.now.0 - self.acked[i].req.now.0 < RETRY_WITHIN_MS)
            .collect();
        (!recent.is_empty()).then(|| recent[k as usize % recent.len()])
    }

    fn retry(&mut self, k: u32) {
        if let Some(i) = self.recent_acked(k) {
            let mut req = self.acked[i].req.clone();
            req.now = self.now;
            self.group.push(Pending {
                retry_of: Some(i),
                ..Pending::new(req)
            });
        }
    }

    fn reuse(&mut self, k: u32) -> Result<(), Failure> {
        let Some(i) = self.recent_acked(k) else {
            return Ok(());
        };
        let first = &self.acked[i].req;
        let Some(actor) = first.command.actor() else {
            return Ok(());
        };
        // A different command by the same caller under the same id.
        let command = Command::Deposit {
            user: actor,
            asset: build::market().0,
            amount: rust_decimal::Decimal::from(7),
            external_ref: format!("reuse-{}", self.n),
        };
        if command == first.command {
            return Ok(());
        }
        let req = Request::new(first.request_id.clone(), command, self.now);
        self.group.push(Pending {
            reuse_of: Some(i),
            ..Pending::new(req)
        });
        Ok(())
    }

    /// The oracle's refusal of a command on a record it does not hold:
    /// decided as the writer decides it, from the writer's history.
    fn on_forgotten(
        &self,
        cmd: &Command,
        refused: Rejection,
        now: Timestamp,
    ) -> Result<Rejection, Failure> {
        let Some(w) = self.writer.as_ref() else {
            return Ok(refused);
        };
        otc_storage::writer::refusal_on_forgotten(&self.oracle, w.store(), cmd, refused, now)
            .or_else(|e| self.fail(format!("reading {}'s history: {e}", cmd.name())))
    }

    /// Feeds one request the writer applied or refused to the oracle and
    /// the model, comparing the writer's result with the oracle's.
    fn replay_one(&mut self, req: &Request, got: Option<&Outcome>) -> Result<(), Failure> {
        let mut events = Vec::new();
        let result = self.oracle.apply_into(&req.command, req.now, &mut events);
        let result = match result {
            Err(r) if r.kind() == RejectionKind::NotFound => {
                Err(self.on_forgotten(&req.command, r, req.now)?)
            }
            other => other,
        };
        let result: Result<&[Event], &Rejection> = match &result {
            Ok(()) => Ok(&events),
            Err(r) => Err(r),
        };
        match (got, result) {
            (None, _) => {}
            (Some(Outcome::Applied(e)), Ok(o)) if e.as_slice() == o => {}
            (Some(Outcome::Rejected(r)), Err(o)) if r == o => {}
            (Some(got), want) => {
                return self.fail(format!(
                    "{:?} at {}: the writer answered {got:?}, a replay of the acknowledged commands {want:?}",
                    req.command, req.now.0
                ));
            }
        }
        let name = req.command.name();
        let counts = if result.is_ok() {
            &mut self.report.applied
        } else {
            &mut self.report.refused
        };
        *counts.entry(name).or_default() += 1;
        if let Ok(events) = result {
            self.oracle_events.extend_from_slice(events);
            self.applied.push((req.now, req.command.clone()));
            self.report.trades += events
                .iter()
                .filter(|e| matches!(e.kind, otc_engine::EventKind::TradeCreated { .. }))
                .count() as u64;
        }
        if let Err(e) = self.model.step(req.now, &req.command, result) {
            return self.fail(format!("the reference model disagrees: {e}"));
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Failure> {
        let mut group = std::mem::take(&mut self.group);
        let now = self.now;
        if let Some(due) = self.writer()?.due_request(now) {
            // A due timer and the clicks of the same moment race: it goes
            // first or last (the server appends it last).
            let fire = Pending::new(due);
            if group.len() % 2 == 1 {
                group.insert(0, fire);
            } else {
                group.push(fire);
            }
        }
        if group.is_empty() {
            return Ok(());
        }
        let reqs: Vec<Request> = group.iter().map(|p| p.req.clone()).collect();
        let result = self.writer()?.apply_group_replies(&reqs);
        let dones = match result {
            Ok(dones) => dones,
            Err(e) => {
                if !self.fault_fired() {
                    return self.fail(format!("a commit failed with no fault injected: {e}"));
                }
                self.report.failed_commits += 1;
                self.check_stopped()?;
                self.failed = Some(group);
                return self.crash();
            }
        };
        self.report.commits += 1;
        for (p, done) in group.into_iter().zip(dones) {
            self.check_done(p, done)?;
        }
        self.check_state()
    }

    fn check_done(&mut self, p: Pending, done: Done) -> Result<(), Failure> {
        let reply = done.reply.unwrap_or_default();
        if let Some(i) = p.retry_of {
            if !matches!(done.outcome, Outcome::Repeated(..)) || reply != self.acked[i].reply {
                return self.fail(format!(
                    "a retry of request {:?} answered {:?} (reply {:?}), not its first reply {:?}",
                    p.req.request_id,
                    done.outcome,
                    String::from_utf8_lossy(&reply),
                    String::from_utf8_lossy(&self.acked[i].reply)
                ));
            }
            self.report.retries += 1;
            return Ok(());
        }
        if let Some(survived) = p.resend {
            match &done.outcome {
                Outcome::Repeated(..) if survived => return Ok(()),
                // It survived without changing the state: refused, or
                // applied with no event (a claim one already held).
                Outcome::Repeated(otc_storage::StoredOutcome::Rejected { .. }, _) => {
                    return Ok(());
                }
                Outcome::Repeated(
                    otc_storage::StoredOutcome::Applied {
                        first_seq,
                        last_seq,
                    },
                    _,
                ) if first_seq > last_seq => return Ok(()),
                Outcome::Repeated(..) | Outcome::IdConflict => {
                    return self.fail(format!(
                        "request {:?} of a failed group answered {:?} when sent again, yet the restarted state showed no sign of it",
                        p.req.request_id, done.outcome
                    ));
                }
                _ if survived => {
                    return self.fail(format!(
                        "request {:?} of a failed group that survived the crash was applied again: {:?}",
                        p.req.request_id, done.outcome
                    ));
                }
                _ => {}
            }
        }
        if p.reuse_of.is_some() {
            if done.outcome != Outcome::IdConflict {
                return self.fail(format!(
                    "request id {:?} reused for another command answered {:?}, not a conflict",
                    p.req.request_id, done.outcome
                ));
            }
            return Ok(());
        }
        if matches!(done.outcome, Outcome::Repeated(..) | Outcome::IdConflict) {
            return self.fail(format!(
                "a new request id {:?} was taken for a repeat: {:?}",
                p.req.request_id, done.outcome
            ));
        }
        self.replay_one(&p.req, Some(&done.outcome))?;
        if p.req.request_id.is_some() {
            self.report.acked += 1;
            self.acked.push(Acked { req: p.req, reply });
        }
        Ok(())
    }

    /// L1, L2 and one state per trade (the engine's own checks), and the
    /// writer's state equal to the replay's.
    fn check_state(&mut self) -> Result<(), Failure> {
        if let Some(e) = self.hook_error.lock().ok().and_then(|mut e| e.take()) {
            return self.fail(e);
        }
        let w = self.writer()?;
        let (checked, digest) = (w.engine().check_invariants(), w.engine().digest());
        if let Err(e) = checked {
            return self.fail(format!("an invariant broke: {e}"));
        }
        if digest != self.oracle.digest() {
            return self.fail(
                "the writer's state differs from a replay of the acknowledged commands (an acknowledged request lost, or one that was never acknowledged kept)",
            );
        }
        // Each open trade in the one state the model has it in.
        use otc_engine::trade::TradeStateKind as K;
        let mut open = (0, 0, 0);
        for t in self.writer()?.engine().state().trades.values() {
            match t.state.kind() {
                K::AwaitingPayment => open.0 += 1,
                K::Paid => open.1 += 1,
                K::Appealed => open.2 += 1,
                K::Released | K::Cancelled => {}
            }
        }
        let m = self.model.counts();
        if open != (m.awaiting_payment, m.paid, m.appealed) {
            return self.fail(format!(
                "open trades (awaiting payment, paid, appealed): the engine has {open:?}, the reference model {:?}",
                (m.awaiting_payment, m.paid, m.appealed)
            ));
        }
        Ok(())
    }

    fn flush(&mut self, fail: bool) -> Result<(), Failure> {
        if fail {
            sled::fail::set("buffer write", 1);
        }
        let flushed = self.writer()?.store().flush_now();
        // Only inside this flush: left armed, it would fire wherever sled's
        // own threads write next, and the run would not replay exactly.
        sled::fail::reset();
        if let Err(e) = flushed {
            if !fail && !self.fault_fired() {
                return self.fail(format!("sled's flush failed with no fault injected: {e}"));
            }
            self.sled_failed = true;
        }
        Ok(())
    }

    /// Whether an injected fault has fired since the last restart: the
    /// power went off, an `fdatasync` failed, or sled's flush did.
    fn fault_fired(&self) -> bool {
        self.disk.is_off()
            || self.disk.stats().sync_failures > self.sync_failures_seen
            || self.sled_failed
    }

    fn run_step(&mut self, step: &Step) -> Result<(), Failure> {
        match step {
            Step::Request { user, act } => self.request(*user, act)?,
            Step::Retry(k) => self.retry(*k),
            Step::Reuse(k) => self.reuse(*k)?,
            Step::Commit => self.commit()?,
            Step::Advance(ms) => {
                self.commit()?;
                self.now = self.now.plus_ms(*ms);
                self.maintain()?;
            }
            Step::FlushSled { fail } => {
                self.commit()?;
                self.flush(*fail)?;
            }
            Step::PowerOff(n) => self.disk.power_off_after(u64::from(*n)),
            Step::FailSync => self.disk.fail_next_sync(),
            Step::FlipRead => self.disk.flip_next_read(),
            Step::Crash => {
                self.commit()?;
                self.crash()?;
            }
        }
        Ok(())
    }
}

/// Runs seed `cfg.seed`'s plan.
///
/// # Errors
/// The first failed check.
pub fn run(cfg: &Config) -> Result<Report, Failure> {
    let plan = plan::generate(cfg.seed, cfg.steps, cfg.faults);
    run_plan(cfg, &plan)
}

/// Runs `plan` (a seed's plan, or a shrunk one) with `cfg`'s seed for the
/// disk and the storage sizes.
///
/// # Errors
/// The first failed check.
pub fn run_plan(cfg: &Config, plan: &[Step]) -> Result<Report, Failure> {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sled::fail::reset();
    let mut sim = Sim::new(cfg)?;
    for (i, step) in plan.iter().enumerate() {
        sim.step = i;
        sim.run_step(step)?;
    }
    sim.step = plan.len();
    sim.finish(cfg.faults)?;
    Ok(sim.report)
}
