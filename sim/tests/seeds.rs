//! The simulation in CI: a fixed set of seeds with every fault, and, for
//! each class of fault, a deliberately injected bug of that class that the
//! checks must catch (so they are not vacuous). Longer runs: `otcsim`.

use otc_sim::plan::{self, Faults};
use otc_sim::shrink::shrink;
use otc_sim::{Config, Failure, run, run_plan};
use otc_storage::wal::Bug;

fn config(seed: u64, steps: usize, faults: Faults, bug: Option<Bug>) -> Config {
    Config {
        seed,
        steps,
        faults,
        bug,
    }
}

/// CI's seeds: every fault, 1,500 steps each.
#[test]
fn fixed_seeds_pass_with_every_fault() {
    let mut totals = (0, 0, 0, 0, 0);
    let mut forgotten = 0;
    for seed in 0..40 {
        match run(&config(seed, 1_500, Faults::ALL, None)) {
            Ok(r) => {
                forgotten += r.events_forgotten;
                totals.0 += r.acked;
                totals.1 += r.restarts;
                totals.2 += r.disk.torn;
                totals.3 += r.disk.sync_failures;
                totals.4 += r.refused_starts;
            }
            Err(f) => panic!(
                "seed {seed} failed at step {}: {}\n  reproduce: cargo run --release -p otc-sim --bin otcsim -- --seed {seed} --steps 1500",
                f.step, f.what
            ),
        }
    }
    let (acked, restarts, torn, sync_failures, refused) = totals;
    assert!(
        acked > 10_000,
        "the seeds did real work: {acked} acknowledged"
    );
    assert!(restarts > 300, "crashes happened: {restarts}");
    assert!(torn > 0, "writes were torn: {torn}");
    assert!(sync_failures > 0, "fdatasync failed: {sync_failures}");
    assert!(refused > 0, "flipped bits refused starts: {refused}");
    assert!(
        forgotten > 0,
        "housekeeping forgot events past their retention: {forgotten}"
    );
}

/// Every fault off: the workload alone, long, on a few seeds.
#[test]
fn long_runs_without_faults_pass() {
    for seed in 100..103 {
        let r = run(&config(seed, 6_000, Faults::NONE, None))
            .unwrap_or_else(|f| panic!("seed {seed} failed at step {}: {}", f.step, f.what));
        assert!(r.trades > 100, "trades were opened: {}", r.trades);
        assert!(r.retries > 50, "retries were answered: {}", r.retries);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let cfg = config(7, 1_500, Faults::ALL, None);
    let a = run(&cfg).expect("seed 7");
    let b = run(&cfg).expect("seed 7 again");
    // The counters and the final state's digest.
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let other = run(&config(8, 1_500, Faults::ALL, None)).expect("seed 8");
    assert_ne!(a.digest, other.digest, "another seed, another state");
}

/// The first seed (of 60) whose run fails with `bug` injected under
/// `faults`, failing one of the checks named in `by`.
fn caught(bug: Bug, faults: Faults, by: &[&str]) -> (u64, Failure) {
    for seed in 0..60 {
        if let Err(f) = run(&config(seed, 2_000, faults, Some(bug))) {
            assert!(
                by.iter().any(|b| f.what.contains(b)),
                "{bug:?} at seed {seed} failed an unexpected check: {}",
                f.what
            );
            return (seed, f);
        }
    }
    panic!("{bug:?} went unnoticed over 60 seeds: the checks are vacuous");
}

/// What losing an acknowledged write looks like to the checks.
const LOST: &[&str] = &[
    "differs from a replay",
    "a retry of request",
    "the restart was refused",
    "events differ",
];

#[test]
fn lost_unsynced_writes_catch_acknowledging_before_fdatasync() {
    let faults = Faults {
        crash: true,
        ..Faults::NONE
    };
    let (seed, f) = caught(Bug::AckBeforeSync, faults, LOST);
    eprintln!(
        "acknowledging before fdatasync caught at seed {seed}: {}",
        f.what
    );
    // The same seed passes without the bug.
    run(&config(seed, 2_000, faults, None)).expect("the seed without the bug");
}

#[test]
fn failing_fdatasync_catches_a_retried_sync() {
    let faults = Faults {
        crash: true,
        sync: true,
        ..Faults::NONE
    };
    let (seed, f) = caught(Bug::RetryFailedSync, faults, LOST);
    eprintln!("retried sync caught at seed {seed}: {}", f.what);
    run(&config(seed, 2_000, faults, None)).expect("the seed without the bug");
}

#[test]
fn torn_writes_catch_a_skipped_checksum() {
    let faults = Faults {
        crash: true,
        power: true,
        ..Faults::NONE
    };
    let (seed, f) = caught(
        Bug::SkipChecksum,
        faults,
        &[
            "differs from a replay",
            "the restart was refused",
            "a commit failed",
            "a start refused",
        ],
    );
    eprintln!("skipped checksum caught at seed {seed}: {}", f.what);
    run(&config(seed, 2_000, faults, None)).expect("the seed without the bug");
}

#[test]
fn flipped_reads_catch_trusting_one_read() {
    let faults = Faults {
        crash: true,
        flip: true,
        ..Faults::NONE
    };
    let (seed, f) = caught(Bug::TrustOneRead, faults, LOST);
    eprintln!("one read trusted caught at seed {seed}: {}", f.what);
    run(&config(seed, 2_000, faults, None)).expect("the seed without the bug");
}

#[test]
fn sled_failures_catch_a_skipped_replay_into_sled() {
    let faults = Faults {
        crash: true,
        sled: true,
        ..Faults::NONE
    };
    let (seed, f) = caught(Bug::SkipSledReplay, faults, LOST);
    eprintln!("skipped replay caught at seed {seed}: {}", f.what);
    run(&config(seed, 2_000, faults, None)).expect("the seed without the bug");
}

#[test]
fn a_failing_plan_shrinks_and_the_shrunk_plan_still_fails() {
    let faults = Faults {
        crash: true,
        ..Faults::NONE
    };
    let (seed, first) = caught(Bug::AckBeforeSync, faults, LOST);
    let cfg = config(seed, 2_000, faults, Some(Bug::AckBeforeSync));
    let full = plan::generate(seed, 2_000, faults);
    let (kept, last) = shrink(&cfg, &full, &first, 200);
    assert!(
        kept.len() < full.len() / 2,
        "shrunk from {} to {} steps",
        full.len(),
        kept.len()
    );
    let steps: Vec<_> = kept.iter().map(|&i| full[i].clone()).collect();
    let again = run_plan(&cfg, &steps).expect_err("the shrunk plan fails");
    assert_eq!(again.what, last.what, "and fails the same way");
}
