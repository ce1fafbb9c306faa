//! The writer's housekeeping in the simulation: request ids forgotten after
//! their retention and events after theirs, run whenever time passes, as the
//! server's writer thread does, under the same faults as everything else.
//! The events the store holds are then the replay's from some point on, and
//! every one it no longer holds is past the retention.

use otc_engine::Event;

use super::{Failure, Sim};

impl Sim {
    /// `Writer::maintain` at the current time. A failure is fail-stop, as
    /// in the server: it must have a fault to explain it, and the process
    /// restarts.
    pub(super) fn maintain(&mut self) -> Result<(), Failure> {
        let now = self.now;
        // Set first: a run that fails part way may have forgotten some.
        self.events_forgotten_before = now.plus_ms(-self.config.event_retention_ms);
        let done = self.writer()?.maintain(now);
        self.report.housekeeping += 1;
        match done {
            Ok(()) => Ok(()),
            Err(e) => {
                if !self.fault_fired() {
                    return self.fail(format!("housekeeping failed with no fault injected: {e}"));
                }
                self.check_stopped()?;
                self.crash()
            }
        }
    }

    /// The store's events from `from` on against the replay's: the same
    /// events in the same order, save a run at the start that housekeeping
    /// forgot, each of which is past the retention. `None` when they agree,
    /// else the first event (1-based) that differs.
    pub(super) fn events_differ(&self, from: usize, got: &[Event]) -> Option<usize> {
        let want = &self.oracle_events[from..];
        let forgotten = want.len().saturating_sub(got.len());
        if let Some(i) = want[..forgotten]
            .iter()
            .position(|e| e.at >= self.events_forgotten_before)
        {
            return Some(from + i + 1);
        }
        let kept = &want[forgotten..];
        if got.len() > want.len() || got.iter().zip(kept).any(|(g, w)| g != w) {
            let first = got.iter().zip(kept).position(|(g, w)| g != w).unwrap_or(0);
            return Some(from + forgotten + first + 1);
        }
        None
    }
}
