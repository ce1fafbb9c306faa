//! `otcsim`: runs seeds of the deterministic simulation.
//!
//! ```text
//! otcsim --seeds 0..1000                 # a thousand seeds, all faults
//! otcsim --seed 42 --steps 5000          # one seed, longer
//! otcsim --seed 42 --keep 0-80,112       # a shrunk plan, as printed
//! ```
//!
//! A failing seed prints what failed, shrinks its plan, and prints one
//! command line that reproduces the shrunk failure exactly.

use std::process::ExitCode;
use std::time::Instant;

use otc_sim::plan::{self, Faults};
use otc_sim::shrink::{self, parse_ranges, ranges};
use otc_sim::{Config, run_plan};
use otc_storage::wal::Bug;

const USAGE: &str = "usage: otcsim [--seed N | --seeds A..B] [--steps N] [--faults all|none|crash,power,sync,flip,sled] [--bug ack-before-sync|retry-failed-sync|skip-checksum|trust-one-read|skip-sled-replay] [--keep RANGES] [--no-shrink]";

struct Args {
    seeds: std::ops::Range<u64>,
    steps: usize,
    faults: Faults,
    bug: Option<Bug>,
    keep: Option<Vec<usize>>,
    shrink: bool,
}

fn bug_named(s: &str) -> Result<Bug, String> {
    Ok(match s {
        "ack-before-sync" => Bug::AckBeforeSync,
        "retry-failed-sync" => Bug::RetryFailedSync,
        "skip-checksum" => Bug::SkipChecksum,
        "trust-one-read" => Bug::TrustOneRead,
        "skip-sled-replay" => Bug::SkipSledReplay,
        other => return Err(format!("--bug: unknown bug {other:?}\n{USAGE}")),
    })
}

fn bug_name(b: Bug) -> &'static str {
    match b {
        Bug::AckBeforeSync => "ack-before-sync",
        Bug::RetryFailedSync => "retry-failed-sync",
        Bug::SkipChecksum => "skip-checksum",
        Bug::TrustOneRead => "trust-one-read",
        Bug::SkipSledReplay => "skip-sled-replay",
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a number\n{USAGE}"))
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seeds: 0..100,
        steps: 2_000,
        faults: Faults::ALL,
        bug: None,
        keep: None,
        shrink: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seed" => {
                let s: u64 = number("--seed", it.next())?;
                a.seeds = s..s.saturating_add(1);
            }
            "--seeds" => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("--seeds needs A..B\n{USAGE}"))?;
                let (from, to) = v
                    .split_once("..")
                    .ok_or_else(|| format!("--seeds: {v:?} is not A..B\n{USAGE}"))?;
                a.seeds =
                    number("--seeds", Some(from.into()))?..number("--seeds", Some(to.into()))?;
            }
            "--steps" => a.steps = number("--steps", it.next())?,
            "--faults" => {
                a.faults = Faults::parse(&it.next().unwrap_or_default())?;
            }
            "--bug" => a.bug = Some(bug_named(&it.next().unwrap_or_default())?),
            "--keep" => a.keep = Some(parse_ranges(&it.next().unwrap_or_default())?),
            "--no-shrink" => a.shrink = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn command_line(a: &Args, seed: u64, keep: Option<&[usize]>) -> String {
    let mut s = format!(
        "cargo run --release -p otc-sim --bin otcsim -- --seed {seed} --steps {} --faults {}",
        a.steps,
        a.faults.name()
    );
    if let Some(b) = a.bug {
        s.push_str(&format!(" --bug {}", bug_name(b)));
    }
    if let Some(k) = keep {
        s.push_str(&format!(" --keep {}", ranges(k)));
    }
    s
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut total = otc_sim::Report::default();
    for seed in a.seeds.clone() {
        let done = seed - a.seeds.start;
        if done > 0 && done.is_multiple_of(500) {
            eprintln!(
                "{done} seeds run ({failed} failed) in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        let cfg = Config {
            seed,
            steps: a.steps,
            faults: a.faults,
            bug: a.bug,
        };
        let full = plan::generate(seed, a.steps, a.faults);
        let plan: Vec<_> = match &a.keep {
            Some(k) => k.iter().filter_map(|&i| full.get(i).cloned()).collect(),
            None => full.clone(),
        };
        match run_plan(&cfg, &plan) {
            Ok(r) => {
                passed += 1;
                total.add(&r);
            }
            Err(f) => {
                failed += 1;
                println!("seed {seed} FAILED at step {}: {}", f.step, f.what);
                println!("  reproduce: {}", command_line(&a, seed, a.keep.as_deref()));
                if a.shrink && a.keep.is_none() {
                    let (kept, last) = shrink::shrink(&cfg, &full, &f, 400);
                    println!(
                        "  shrunk to {} of {} steps, failing at step {}: {}",
                        kept.len(),
                        full.len(),
                        last.step,
                        last.what
                    );
                    println!(
                        "  reproduce shrunk: {}",
                        command_line(&a, seed, Some(&kept))
                    );
                }
            }
        }
    }
    println!(
        "{passed} seeds passed, {failed} failed in {:.1} s; {} commits, {} requests acknowledged, {} retries answered first replies, {} trades, {} restarts ({} refused after a flipped bit), {} commits failed under faults; disk: {} writes torn, {} lost, {} fdatasync failures, {} flipped reads",
        started.elapsed().as_secs_f64(),
        total.commits,
        total.acked,
        total.retries,
        total.trades,
        total.restarts,
        total.refused_starts,
        total.failed_commits,
        total.disk.torn,
        total.disk.lost,
        total.disk.sync_failures,
        total.disk.flips
    );
    let show = |m: &std::collections::BTreeMap<&str, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "housekeeping: {} runs, {} events forgotten past their retention",
        total.housekeeping, total.events_forgotten
    );
    println!("applied: {}", show(&total.applied));
    println!("refused: {}", show(&total.refused));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
