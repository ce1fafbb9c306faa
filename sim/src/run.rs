//! Running a plan: the real writer (engine, journal on the simulated disk,
//! sled on a temporary directory) driven step by step, with a simulated
//! clock, crashes and restarts, and every check after every commit and
//! every recovery.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use otc_engine::{Command, Engine, EngineConfig, Event, Rejection, Timestamp};
use otc_storage::store::StoreOptions;
use otc_storage::wal::Bug;
use otc_storage::{Done, Outcome, Request, Writer, WriterOptions};

use crate::build;
use crate::disk::{DiskStats, Shared, SimDisk};
use crate::model::Model;
use crate::plan::{self, Act, Faults, Step};
use crate::rng::Rng;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The seed: the plan, the disk's tears and the storage sizes.
    pub seed: u64,
    /// Steps in the plan.
    pub steps: usize,
    /// Faults the plan may inject.
    pub faults: Faults,
    /// A deliberate bug (to show the checks catch its class).
    pub bug: Option<Bug>,
}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Commits that succeeded.
    pub commits: u64,
    /// Requests acknowledged.
    pub acked: u64,
    /// Retries answered with their first reply.
    pub retries: u64,
    /// Restarts after a crash.
    pub restarts: u64,
    /// Starts refused (a flipped bit read), then retried.
    pub refused_starts: u64,
    /// Commits that failed under an injected fault.
    pub failed_commits: u64,
    /// Trades opened.
    pub trades: u64,
    /// What the disk did.
    pub disk: DiskStats,
    /// Commands applied, by name.
    pub applied: std::collections::BTreeMap<&'static str, u64>,
    /// Commands refused, by name.
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

impl Report {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Report) {
        self.commits += other.commits;
        self.acked += other.acked;
        self.retries += other.retries;
        self.restarts += other.restarts;
        self.refused_starts += other.refused_starts;
        self.failed_commits += other.failed_commits;
        self.trades += other.trades;
        self.disk.crashes += other.disk.crashes;
        self.disk.torn += other.disk.torn;
        self.disk.lost += other.disk.lost;
        self.disk.sync_failures += other.disk.sync_failures;
        self.disk.flips += other.disk.flips;
        for (k, v) in &other.applied {
            *self.applied.entry(k).or_default() += v;
        }
        for (k, v) in &other.refused {
            *self.refused.entry(k).or_default() += v;
        }
    }
}

/// A failed check.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The index of the step it happened at.
    pub step: usize,
    /// What was wrong.
    pub what: String,
}

/// One process runs one simulation at a time: sled's failpoints are global.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A request of the group being gathered.
struct Pending {
    req: Request,
    /// A retry of the acknowledged request at this index.
    retry_of: Option<usize>,
    /// Another request under that one's id.
    reuse_of: Option<usize>,
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
    /// A fault is armed or happened that explains a failing commit.
    fault_armed: bool,
    /// sled's flush failed: the writer stops at its next commit.
    sled_failed: bool,
    n: u64,
    step: usize,
    report: Report,
    _tmp: tempfile::TempDir,
}

fn replier() -> otc_storage::Replier {
    Box::new(|_, _, result| format!("{result:?}").into_bytes())
}

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

fn replace_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    copy_dir(from, to)
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
        let hook: otc_storage::store::SledDurableHook = {
            let durable = durable.clone();
            Arc::new(move |dir: &Path| {
                if let Err(e) = replace_dir(dir, &durable) {
                    panic!("copying sled's durable state: {e}");
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
            fault_armed: false,
            sled_failed: false,
            n: 0,
            step: 0,
            report: Report::default(),
            _tmp: tmp,
        };
        sim.start()?;
        Ok(sim)
    }

    /// Opens the writer on what the disk and sled hold; a start refused
    /// after a flipped bit is retried (the flip was a bad read).
    fn start(&mut self) -> Result<(), Failure> {
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
            self.group.push(Pending {
                req: Request::new(Some(id), command, self.now),
                retry_of: None,
                reuse_of: None,
            });
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
                req,
                retry_of: Some(i),
                reuse_of: None,
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
            req,
            retry_of: None,
            reuse_of: Some(i),
        });
        Ok(())
    }

    /// Feeds one request the writer applied or refused to the oracle and
    /// the model, comparing the writer's result with the oracle's.
    fn replay_one(&mut self, req: &Request, got: Option<&Outcome>) -> Result<(), Failure> {
        let mut events = Vec::new();
        let result = self.oracle.apply_into(&req.command, req.now, &mut events);
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
            let fire = Pending {
                req: due,
                retry_of: None,
                reuse_of: None,
            };
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
                if !self.fault_armed && !self.disk.is_off() {
                    return self.fail(format!("a commit failed with no fault injected: {e}"));
                }
                self.report.failed_commits += 1;
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

    /// The process dies; the disk keeps what it keeps; it restarts.
    fn crash(&mut self) -> Result<(), Failure> {
        self.group.clear();
        drop(self.writer.take());
        sled::fail::reset();
        self.disk.crash();
        self.fault_armed = false;
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
        // A failed group may have reached the journal: then all of it.
        if let Some(group) = self.failed.take() {
            let digest = self.writer()?.engine().digest();
            if digest != self.oracle.digest() {
                for p in group
                    .iter()
                    .filter(|p| p.retry_of.is_none() && p.reuse_of.is_none())
                {
                    self.replay_one(&p.req, None)?;
                }
            }
        }
        self.check_state()?;
        // Every request acknowledged in the life that ended answers its
        // first reply.
        let from = self.life_start.max(self.acked.len().saturating_sub(300));
        for i in from..self.acked.len() {
            if self.now.0 - self.acked[i].req.now.0 < RETRY_WITHIN_MS {
                let mut req = self.acked[i].req.clone();
                req.now = self.now;
                self.group.push(Pending {
                    req,
                    retry_of: Some(i),
                    reuse_of: None,
                });
            }
        }
        self.life_start = self.acked.len();
        // As the server: every deadline due while down fires at once.
        self.commit()
    }

    fn flush(&mut self, fail: bool) -> Result<(), Failure> {
        if fail {
            sled::fail::set("buffer write", 1);
            self.fault_armed = true;
        }
        let flushed = self.writer()?.store().flush_now();
        // Only inside this flush: left armed, it would fire wherever sled's
        // own threads write next, and the run would not replay exactly.
        sled::fail::reset();
        if let Err(e) = flushed {
            if !self.fault_armed && !self.disk.is_off() {
                return self.fail(format!("sled's flush failed with no fault injected: {e}"));
            }
            self.sled_failed = true;
        }
        Ok(())
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
            }
            Step::FlushSled { fail } => {
                self.commit()?;
                self.flush(*fail)?;
            }
            Step::PowerOff(n) => {
                self.disk.power_off_after(u64::from(*n));
                self.fault_armed = true;
            }
            Step::FailSync => {
                self.disk.fail_next_sync();
                self.fault_armed = true;
            }
            Step::FlipRead => self.disk.flip_next_read(),
            Step::Crash => {
                self.commit()?;
                self.crash()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, faults: Faults) -> Result<(), Failure> {
        self.commit()?;
        if faults.crash {
            self.crash()?;
        }
        self.check_state()?;
        // And a replay of every acknowledged command from scratch.
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
        self.report.disk = self.disk.stats();
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
