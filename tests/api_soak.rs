//! kill -9 soak over gRPC (SPEC §4, §10–§14): rounds against the real
//! `otcd` on one data dir. Each round, desks (a seller and a buyer each)
//! trade through full lifecycles — buy, pay, release, cancel, chat, appeal
//! with evidence — while customer service works the appeal queue and the
//! back office deposits and withdraws; every mutating call carries a fresh
//! request id and every answered one is recorded (caller, request, reply).
//! After a seeded 50–400 ms, `otcd` is killed with SIGKILL mid-flight and
//! restarted on the same data dir. Then every call answered in the round,
//! and a seeded sample of those of earlier rounds, is sent again (same
//! caller, request id and body): each must come back marked
//! `otc-replayed` with the first reply (message or refusal) exactly. L1 is
//! checked over the API every round (the statement is balanced; Σ of every
//! user's balances is its total), and L1, L2 and the indexes in-process on
//! the data dir every `check_every` rounds and at the end, with the ledger's
//! deposits and withdrawals between what was acknowledged and what was sent.
//!
//! `kill9_soak` (ignored; run on purpose, in release):
//! `OTC_SOAK_ROUNDS=1000 OTC_SOAK_SEED=… cargo test --release --test api_soak -- --ignored kill9_soak --nocapture`.
//! `kill9_soak_quick` runs 3 rounds of the same code (checks and a fresh
//! data dir included) for CI.

mod harness;
mod soak;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::Server;
use rust_decimal::Decimal;
use soak::actors::{self, Ctx, Desk, Ended};
use soak::checks::{conservation, dec, dir_size};
use soak::{Acked, Call, Clients, Ids, Log, Rng, replay_one};
use uuid::Uuid;

/// Rounds of `kill9_soak` unless `OTC_SOAK_ROUNDS` says otherwise.
const ROUNDS_DEFAULT: u32 = 1_000;
/// Calls of earlier rounds re-sent each round.
const EARLIER_SAMPLE: usize = 200;
/// The kill comes this long after the clients start, at random.
const KILL_AFTER_MS_MIN: u64 = 50;
const KILL_AFTER_MS_MAX: u64 = 400;
/// Desks (a seller and a buyer each); with customer service and the back
/// office, 8 concurrent clients.
const DESKS: usize = 6;
/// Users the back office deposits to and withdraws from (besides buyers).
const WALLETS: usize = 3;

/// `otcd`'s flags beyond the harness's short windows: appeals allowed
/// 300 ms after paid (so a round can pay, wait and appeal), and no daily
/// limit on a buyer's cancels (timeouts of trades a kill orphaned count).
/// Request ids are remembered for the default 24 h (SPEC §14): far longer
/// than any run, so every earlier round's id must still answer.
const FLAGS: &[&str] = &[
    "--appeal-after",
    "300ms",
    "--buyer-cancels-per-day",
    "1000000",
];

/// How a soak runs.
struct Plan {
    rounds: u32,
    seed: u64,
    /// In-process L1/L2 check on the data dir every this many rounds.
    check_every: u32,
    /// A fresh data dir every this many rounds. Each round adds a few
    /// thousand records (replies are kept for retries, ended trades for
    /// history): starting over keeps the data dir, and the time a restart
    /// takes to recover it, bounded. Earlier-round samples come from the
    /// current data dir's rounds.
    fresh_every: u32,
    /// Once per data dir (mid-way), leave the server idle past
    /// `MAINTAIN_EVERY` so its housekeeping prunes request ids and events
    /// past their retention, then re-send every call of the data dir's
    /// rounds: pruning must keep ids younger than 24 h. Off in the quick
    /// variant (it waits a minute).
    housekeeping: bool,
}

impl Plan {
    /// A plan with the seed from `OTC_SOAK_SEED` (hex), or a new one.
    fn new(rounds: u32, check_every: u32, fresh_every: u32, housekeeping: bool) -> Plan {
        let seed = std::env::var("OTC_SOAK_SEED").ok().map_or_else(
            || {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970");
                soak::mix(t.as_nanos() as u64)
            },
            |v| {
                let v = v.trim_start_matches("0x");
                u64::from_str_radix(v, 16).expect("OTC_SOAK_SEED is hex")
            },
        );
        Plan {
            rounds,
            seed,
            check_every,
            fresh_every,
            housekeeping,
        }
    }
}

/// One data dir's life: its server, its users, and the calls answered in
/// its earlier rounds.
struct Epoch {
    n: u32,
    dir: tempfile::TempDir,
    server: Server,
    desks: Vec<Desk>,
    wallets: Vec<Uuid>,
    agent: Uuid,
    history: Vec<Acked>,
    sent_deposits: Decimal,
    sent_withdrawals: Decimal,
    set_up: bool,
}

impl Epoch {
    async fn start(seed: u64, n: u32) -> Epoch {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start_in(dir.path(), FLAGS).await;
        let mut rng = Rng::new(&[seed, u64::from(n), 9]);
        let desks = (0..DESKS).map(|i| Desk::new(i, &mut rng)).collect();
        let wallets = (0..WALLETS).map(|_| rng.uuid()).collect();
        let agent = rng.uuid();
        Epoch {
            n,
            dir,
            server,
            desks,
            wallets,
            agent,
            history: Vec::new(),
            sent_deposits: Decimal::ZERO,
            sent_withdrawals: Decimal::ZERO,
            set_up: false,
        }
    }

    /// Everyone who can hold coin.
    fn users(&self) -> Vec<Uuid> {
        let mut u: Vec<Uuid> = self
            .desks
            .iter()
            .flat_map(|d| [d.seller, d.buyer])
            .collect();
        u.extend(&self.wallets);
        u
    }

    fn buyers(&self) -> Vec<Uuid> {
        self.desks.iter().map(|d| d.buyer).collect()
    }
}

/// The run's counts.
#[derive(Default)]
struct Totals {
    acked: u64,
    refused: u64,
    compared: u64,
    compared_earlier: u64,
    trades: u64,
    mismatches: u64,
    stopped_while_up: u64,
    dir_checks: u64,
    /// Acknowledged calls per RPC: (answered with a message, refused).
    per_rpc: std::collections::BTreeMap<&'static str, (u64, u64)>,
    /// Refusals by RPC, code and message (digits and ids blanked), counted.
    refusals: std::collections::BTreeMap<String, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long soak: run on purpose, in release (see the module docs)"]
async fn kill9_soak() {
    let rounds = std::env::var("OTC_SOAK_ROUNDS")
        .ok()
        .map_or(ROUNDS_DEFAULT, |v| {
            v.parse().expect("OTC_SOAK_ROUNDS is a number of rounds")
        });
    soak_run(Plan::new(rounds, 50, 250, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_soak_quick() {
    // The same code on a small scale: the data dir checked after the
    // second round, a fresh data dir for the third, checked at the end.
    soak_run(Plan::new(3, 2, 2, false)).await;
}

async fn soak_run(plan: Plan) {
    let started = Instant::now();
    println!(
        "soak: seed {:#x} (OTC_SOAK_SEED={:x}), {} rounds, {DESKS} desks + customer service + back office, \
         dir check every {}, fresh data dir every {}",
        plan.seed, plan.seed, plan.rounds, plan.check_every, plan.fresh_every
    );
    let mut t = Totals::default();
    let mut ep = Epoch::start(plan.seed, 0).await;
    for round in 0..plan.rounds {
        let r0 = Instant::now();
        let line = one_round(&plan, &mut ep, round, &mut t).await;
        let last = round + 1 == plan.rounds;
        let epoch_end = (round + 1) % plan.fresh_every == 0;
        let mut notes: Vec<String> = Vec::new();
        if plan.housekeeping && (round + 1) % plan.fresh_every == plan.fresh_every / 2 {
            notes.push(housekeeping(&mut ep, &mut t).await);
        }
        if last || epoch_end {
            notes.push(check_dir(&mut ep, false).await);
            t.dir_checks += 1;
            if !last {
                let n = ep.n + 1;
                ep = Epoch::start(plan.seed, n).await;
                notes.push(format!("fresh data dir (epoch {n})"));
            }
        } else if (round + 1) % plan.check_every == 0 {
            notes.push(check_dir(&mut ep, true).await);
            t.dir_checks += 1;
        }
        println!(
            "round {round:4}: {line} | {:.2}s{}",
            r0.elapsed().as_secs_f64(),
            notes.iter().map(|n| format!(" | {n}")).collect::<String>()
        );
    }
    println!(
        "soak summary: seed {:#x}, rounds {}, acknowledged {} ({} refusals), re-sent and compared {} \
         ({} of earlier rounds), trades {}, mismatches {}, clients stopped while the server was up {}, \
         data dir checks {}, wall {:.1}s",
        plan.seed,
        plan.rounds,
        t.acked,
        t.refused,
        t.compared,
        t.compared_earlier,
        t.trades,
        t.mismatches,
        t.stopped_while_up,
        t.dir_checks,
        started.elapsed().as_secs_f64()
    );
    let per_rpc: Vec<String> = t
        .per_rpc
        .iter()
        .map(|(name, (ok, refused))| format!("{name} {ok}/{refused}"))
        .collect();
    println!(
        "soak calls acknowledged (answered/refused): {}",
        per_rpc.join(", ")
    );
    for (what, n) in &t.refusals {
        println!("soak refusals: {n:6} × {what}");
    }
    assert_eq!(t.mismatches, 0, "no acknowledged reply lost or changed");
    assert_eq!(
        t.stopped_while_up, 0,
        "no client lost the server before the kill"
    );
}

/// One round (see the module docs); its line of the report.
async fn one_round(plan: &Plan, ep: &mut Epoch, round: u32, t: &mut Totals) -> String {
    let mut logs: Vec<Log> = Vec::new();
    if !ep.set_up {
        logs.push(setup(plan.seed, ep, round).await);
        ep.set_up = true;
    }
    let ctx = Ctx {
        seed: plan.seed,
        epoch: ep.n,
        round,
        url: ep.server.url.clone(),
        killed: Arc::new(AtomicBool::new(false)),
    };
    let desks: Vec<_> = std::mem::take(&mut ep.desks)
        .into_iter()
        .map(|d| tokio::spawn(d.run(ctx.clone())))
        .collect();
    let others = vec![
        tokio::spawn(actors::agent(ep.agent, ctx.clone())),
        tokio::spawn(actors::back_office(
            ep.wallets.clone(),
            ep.buyers_of(&[]),
            ctx.clone(),
        )),
    ];
    let kill_after = Rng::new(&[plan.seed, u64::from(ep.n), u64::from(round), 7])
        .range(KILL_AFTER_MS_MIN, KILL_AFTER_MS_MAX);
    tokio::time::sleep(Duration::from_millis(kill_after)).await;
    ctx.killed.store(true, Ordering::SeqCst);
    ep.server.kill9().await;

    let mut ended: Vec<Ended> = Vec::new();
    for d in desks {
        let (desk, e) = d.await.expect("a desk's task");
        ep.desks.push(desk);
        ended.push(e);
    }
    for o in others {
        ended.push(o.await.expect("an actor's task"));
    }
    let mut trades = 0;
    for e in ended {
        if let Some(why) = &e.while_up {
            println!("round {round}: a client lost the server before the kill: {why}");
            t.stopped_while_up += 1;
        }
        trades += e.trades;
        logs.push(e.log);
    }
    t.trades += trades;

    ep.server.restart().await;
    let mut acked: Vec<Acked> = Vec::new();
    for log in logs {
        ep.sent_deposits += log.sent_deposits;
        ep.sent_withdrawals += log.sent_withdrawals;
        acked.extend(log.acked);
    }
    let refused = acked.iter().filter(|a| a.call.refused()).count() as u64;
    for a in &acked {
        let e = t.per_rpc.entry(a.call.name()).or_default();
        if let Some((code, msg)) = a.call.refusal() {
            e.1 += 1;
            let key = format!("{} {code:?}: {}", a.call.name(), blank(msg));
            *t.refusals.entry(key).or_default() += 1;
        } else {
            e.0 += 1;
        }
    }
    let mut c = Clients::connect(&ep.server.url)
        .await
        .expect("connect after restart");
    let mut mismatches = Vec::new();
    for a in &acked {
        if let Err(e) = replay_one(&mut c, a.who, &a.call).await {
            mismatches.push(describe(a, &e));
        }
    }
    let earlier = sample(
        &mut Rng::new(&[plan.seed, u64::from(ep.n), u64::from(round), 8]),
        ep.history.len(),
    );
    for &i in &earlier {
        let a = &ep.history[i];
        if let Err(e) = replay_one(&mut c, a.who, &a.call).await {
            mismatches.push(describe(a, &e));
        }
    }
    let ledger = conservation(&mut c, &ep.users()).await;
    t.acked += acked.len() as u64;
    t.refused += refused;
    t.compared += (acked.len() + earlier.len()) as u64;
    t.compared_earlier += earlier.len() as u64;
    t.mismatches += mismatches.len() as u64;
    if !mismatches.is_empty() || ledger.is_err() {
        for m in mismatches.iter().take(20) {
            println!("MISMATCH {m}");
        }
        if let Err(e) = &ledger {
            println!("CONSERVATION {e}");
        }
        ep.dir.disable_cleanup(true);
        panic!(
            "round {round} (seed {:#x}, epoch {}, kill after {kill_after} ms): {} of {} replays differ{}; \
             data dir kept at {}",
            plan.seed,
            ep.n,
            mismatches.len(),
            acked.len() + earlier.len(),
            ledger.err().map(|e| format!("; {e}")).unwrap_or_default(),
            ep.dir.path().display()
        );
    }
    let line = format!(
        "kill after {kill_after:3} ms, acknowledged {:4} ({refused:3} refusals), replayed {:4} + {:3} earlier, \
         trades {trades:3}, {}",
        acked.len(),
        acked.len(),
        earlier.len(),
        ledger.unwrap_or_default()
    );
    ep.history.extend(acked);
    line
}

impl Epoch {
    /// The desks' buyers except those of `skip`.
    fn buyers_of(&self, skip: &[usize]) -> Vec<Uuid> {
        self.buyers()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .map(|(_, b)| b)
            .collect()
    }
}

/// The first round of a data dir, before its load: every desk set up (each
/// seller blocks the other desks' buyers).
async fn setup(seed: u64, ep: &mut Epoch, round: u32) -> Log {
    let mut c = Clients::connect(&ep.server.url)
        .await
        .expect("connect for setup");
    let mut log = Log::new(round);
    let mut ids = Ids::new(seed, ep.n, round, "setup");
    for i in 0..ep.desks.len() {
        let others = ep.buyers_of(&[i]);
        ep.desks[i].setup(&mut c, &mut log, &mut ids, &others).await;
    }
    log
}

/// A refusal's text with the parts that vary (numbers, ids) blanked, so
/// refusals of one kind count together.
fn blank(msg: &str) -> String {
    let mut out = String::new();
    for w in msg.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        if w.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(w);
        }
    }
    out
}

fn describe(a: &Acked, e: &str) -> String {
    format!(
        "round {} {} request_id {} as {:?}: {e}",
        a.round,
        a.call.name(),
        a.call.request_id(),
        a.who
    )
}

/// Up to [`EARLIER_SAMPLE`] distinct indexes below `len`, in order.
fn sample(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len <= EARLIER_SAMPLE {
        return (0..len).collect();
    }
    let mut picked = BTreeSet::new();
    while picked.len() < EARLIER_SAMPLE {
        picked.insert(rng.below(len as u64) as usize);
    }
    picked.into_iter().collect()
}

/// Waits out the server's housekeeping interval with the server idle, then
/// re-sends every call of the data dir's rounds (see [`Plan::housekeeping`]).
async fn housekeeping(ep: &mut Epoch, t: &mut Totals) -> String {
    let idle = otc_api::core::MAINTAIN_EVERY + Duration::from_secs(3);
    tokio::time::sleep(idle).await;
    let mut c = Clients::connect(&ep.server.url)
        .await
        .expect("connect after the idle minute");
    let mut mismatches = Vec::new();
    for a in &ep.history {
        if let Err(e) = replay_one(&mut c, a.who, &a.call).await {
            mismatches.push(describe(a, &e));
        }
    }
    t.compared += ep.history.len() as u64;
    t.compared_earlier += ep.history.len() as u64;
    t.mismatches += mismatches.len() as u64;
    if !mismatches.is_empty() {
        for m in mismatches.iter().take(20) {
            println!("MISMATCH after housekeeping: {m}");
        }
        ep.dir.disable_cleanup(true);
        panic!(
            "after {}s idle (housekeeping), {} of {} earlier calls replay differently; data dir kept at {}",
            idle.as_secs(),
            mismatches.len(),
            ep.history.len(),
            ep.dir.path().display()
        );
    }
    format!(
        "idle {}s (housekeeping ran), then all {} calls of this data dir re-sent: identical",
        idle.as_secs(),
        ep.history.len()
    )
}

/// Stops the server (SIGTERM: exit 0), opens its data dir in-process with
/// the server's own settings, checks L1, L2 and the indexes, and that the
/// ledger's deposits and withdrawals lie between what was acknowledged and
/// what was sent; then starts it again when `restart`.
async fn check_dir(ep: &mut Epoch, restart: bool) -> String {
    let status = ep.server.terminate().await;
    assert!(status.success(), "otcd exits 0 on SIGTERM, got {status}");
    let cfg = ep.server.config();
    let (deposited, withdrawn) = {
        let w = otc_storage::Writer::open(
            ep.dir.path(),
            cfg.engine_config().expect("engine config"),
            cfg.writer_options().expect("writer options"),
        )
        .expect("reopen the data dir in-process");
        w.engine()
            .check_invariants()
            .expect("L1, L2 and the indexes hold on the data dir");
        let eb = otc_engine::Asset::new("EB").expect("asset EB");
        let totals = w
            .engine()
            .state()
            .totals
            .get(&eb)
            .copied()
            .unwrap_or_default();
        (totals.deposited.value(), totals.withdrawn.value())
    };
    let (mut acked_dep, mut acked_wd) = (Decimal::ZERO, Decimal::ZERO);
    for a in &ep.history {
        match &a.call {
            Call::Deposit(r, Ok(_)) => acked_dep += dec(&r.amount).expect("amount"),
            Call::Withdraw(r, Ok(_)) => acked_wd += dec(&r.amount).expect("amount"),
            _ => {}
        }
    }
    assert!(
        acked_dep <= deposited && deposited <= ep.sent_deposits,
        "deposited {deposited}: at least the acknowledged {acked_dep}, at most the sent {}",
        ep.sent_deposits
    );
    assert!(
        acked_wd <= withdrawn && withdrawn <= ep.sent_withdrawals,
        "withdrawn {withdrawn}: at least the acknowledged {acked_wd}, at most the sent {}",
        ep.sent_withdrawals
    );
    let size = dir_size(ep.dir.path());
    if restart {
        ep.server.restart().await;
    }
    format!(
        "data dir checked: L1/L2 hold, deposited {deposited} (acked {acked_dep}), withdrawn {withdrawn} \
         (acked {acked_wd}), {:.1} MiB",
        size as f64 / f64::from(1 << 20)
    )
}
