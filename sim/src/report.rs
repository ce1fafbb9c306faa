//! What a run is given and what it gives back: its configuration, the
//! report of a passing run, and the failure of one that did not pass.

use otc_storage::wal::Bug;

use crate::disk::DiskStats;
use crate::plan::Faults;

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
    /// Housekeeping runs (one each time the clock moved).
    pub housekeeping: u64,
    /// Events housekeeping had forgotten by the end (past their retention).
    pub events_forgotten: u64,
    /// The engine's state digest at the end: one seed, one digest.
    pub digest: u64,
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
        self.housekeeping += other.housekeeping;
        self.events_forgotten += other.events_forgotten;
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
