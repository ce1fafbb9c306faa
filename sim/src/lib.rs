//! # otc-sim
//!
//! Deterministic simulation of the writer (VOPR-style): one seed makes a
//! whole run — simulated users doing what SPEC allows and much it refuses,
//! a clock that jumps seconds to days, crashes at random points, and a
//! faulty disk under the journal — and replays it exactly.
//!
//! - [`plan`]: the steps a seed generates (abstract, so they shrink).
//! - [`build`]: a step's request as a real command, against the engine.
//! - [`disk`]: the simulated disk: lost and torn writes, failing
//!   `fdatasync`, flipped bits on read.
//! - [`run`]: the run and its checks, after every commit and recovery.
//! - [`report`]: a run's configuration, report and failure.
//! - [`model`]: a naive reference model of SPEC §10–§12 run side by side.
//! - [`shrink`]: a failing plan made smaller while it still fails.

#![deny(missing_docs)]

pub mod build;
pub mod disk;
pub mod model;
pub mod plan;
pub mod report;
pub mod run;
pub mod shrink;

/// The seeded generator (the storage crate's workload one).
pub mod rng {
    pub use otc_storage::workload::Rng;
}

pub use plan::Faults;
pub use run::{Config, Failure, Report, run, run_plan};
