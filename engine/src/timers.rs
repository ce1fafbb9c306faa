//! Durable deadlines (SPEC §12) as plain data: a sorted set of
//! `(due, what)`. The engine exposes the earliest and fires the due ones; the
//! shell owns the real clock and a single timer on the next deadline.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{BuyOrderId, ListingId, Timestamp, TradeId};

/// Something that happens at a time unless the state moved on first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Deadline {
    /// The payment window of a trade ends (cancel, or re-dispatch for fast match).
    PaymentDue(TradeId),
    /// A paid trade becomes appealable (notifies both parties).
    AppealOpens(TradeId),
    /// A paid trade is still unreleased: the system appeals it.
    AutoAppeal(TradeId),
    /// A resting buy expires.
    BuyOrderExpires(BuyOrderId),
    /// An ended trade leaves the working set (storage keeps its history).
    ForgetTrade(TradeId),
    /// An ended listing with no open trades leaves the working set.
    ForgetListing(ListingId),
    /// An ended buy order leaves the working set.
    ForgetBuyOrder(BuyOrderId),
}

/// All pending deadlines, earliest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    set: BTreeSet<(Timestamp, Deadline)>,
}

impl Deadlines {
    /// Schedules `what` at `due`.
    pub fn add(&mut self, due: Timestamp, what: Deadline) {
        self.set.insert((due, what));
    }

    /// Drops a scheduled deadline (no-op if it is not there).
    pub fn cancel(&mut self, due: Timestamp, what: Deadline) {
        self.set.remove(&(due, what));
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<(Timestamp, Deadline)> {
        self.set.first().copied()
    }

    /// Takes the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, Deadline)> {
        match self.set.first() {
            Some(&(due, _)) if due <= now => self.set.pop_first(),
            _ => None,
        }
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none are pending.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether this exact deadline is pending.
    pub fn contains(&self, due: Timestamp, what: Deadline) -> bool {
        self.set.contains(&(due, what))
    }

    /// All pending deadlines, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = &(Timestamp, Deadline)> {
        self.set.iter()
    }
}
