//! Runs a fixed number of rounds of the engine mix: for instruction counts
//! under callgrind, which repeat exactly whatever else the machine is doing.
//!
//! ```sh
//! cargo build --release -p otc-benches --bin engine_rounds
//! valgrind --tool=callgrind --toggle-collect='*measured_round*' \
//!     target/release/engine_rounds 10000 20000 [1: half floating]
//! ```
//! Instructions per command = the collected total / (rounds × 9).

use otc_benches::mix::{COMMANDS_PER_ROUND, Mix};

/// The `n`-th argument as a count, or `default` when absent.
fn arg(n: usize, default: usize) -> usize {
    match std::env::args().nth(n).map(|a| a.parse::<usize>()) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("usage: engine_rounds [live listings] [rounds]: {e}");
            std::process::exit(2)
        }
    }
}

fn main() {
    let (live, rounds) = (arg(1, 10_000), arg(2, 20_000));
    // A third argument of 1: half the listings float (SPEC §22).
    let mut mix = Mix::with_floating(live, arg(3, 0) == 1);
    // Warm into steady state (past the first payment timeouts), as the bench does.
    mix.warm();
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        mix.measured_round();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{rounds} rounds ({} commands) with {live} live listings in {secs:.3} s: {:.0} commands/s; last seq {}",
        rounds as u64 * COMMANDS_PER_ROUND,
        (rounds as u64 * COMMANDS_PER_ROUND) as f64 / secs,
        mix.e.last_seq()
    );
}
