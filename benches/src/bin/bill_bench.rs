//! Importing a gateway's bill (SPEC §20): lines per second and peak memory
//! parsing a synthetic hmac bill streaming (`otc_gateway::bill`) and
//! matching each line (`otc_engine::recon::Matcher`), as `ImportBill` does
//! after staging the chunks to a file. Memory must not grow with the bill.
//!
//! ```sh
//! cargo run --release -p otc-benches --bin bill_bench -- 1000000
//! ```

use std::time::Instant;

use otc_engine::Timestamp;
use otc_engine::recon::{DayWindow, Matcher};
use otc_gateway::bill::{BillFormat, BillReader, synthetic_hmac_bill};

/// Peak resident memory of this process so far, KiB (Linux `VmHWM`).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn run(lines: u64) -> (u64, f64, u64) {
    let day = DayWindow {
        start: Timestamp(0),
        end: Timestamp(i64::MAX / 4),
        window_ms: 0,
    };
    let mut matcher = Matcher::new(Vec::new(), day);
    let mut reader = BillReader::new(BillFormat::Hmac, synthetic_hmac_bill(lines), u64::MAX);
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        match reader.next_row() {
            Ok(Some(row)) => {
                n += 1;
                matcher.line(&otc_api::recon::bill_line(row));
            }
            Ok(None) => break,
            Err(e) => panic!("the synthetic bill is malformed: {e}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // Every synthetic line is a payment unknown here ("missing here"): the
    // matcher keeps at most MISTAKES_PER_BILL_MAX of them; the reader holds
    // one line. (A real import would refuse such a bill.)
    let report = matcher.finish();
    (n, secs, report.mistakes.len() as u64)
}

fn main() {
    let lines: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let before = peak_kib();
    let (small, _, _) = run(lines / 100);
    let after_small = peak_kib();
    let (n, secs, mistakes) = run(lines);
    let after = peak_kib();
    println!(
        "{n} lines in {secs:.2} s = {:.0} lines/s ({mistakes} missing-here mistakes collected)",
        n as f64 / secs
    );
    println!(
        "peak memory: {before} KiB at start, {after_small} KiB after {small} lines, {after} KiB after {n} lines"
    );
}
