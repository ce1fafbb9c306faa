//! Durable deadlines (SPEC §12) as plain data: a sorted set of
//! `(due, what)`. The engine exposes the earliest and fires the due ones; the
//! shell owns the real clock and a single timer on the next deadline.
//!
//! Most deadlines are "forget" ones (an ended record leaves the working set
//! `ended_retention_ms` after it ended). Their delay is constant and time
//! never runs backwards, so they arrive in order: they go to a FIFO, which
//! costs O(1) per add and pop instead of an ordered-set insert and remove.
//! One that does not sort after the FIFO's last (the retention shortened, or
//! two ended in one command in another order) goes to the sorted set, like
//! every other kind. The two are merged by the same `(due, what)` order, so
//! the deadlines fire, iterate and serialize exactly as one sorted set would.

use std::collections::{BTreeSet, VecDeque};

use serde::de::Deserializer;
use serde::ser::{SerializeStruct, Serializer};
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

impl Deadline {
    /// A constant-delay deadline that is never cancelled: FIFO material.
    fn is_forget(&self) -> bool {
        matches!(
            self,
            Deadline::ForgetTrade(_) | Deadline::ForgetListing(_) | Deadline::ForgetBuyOrder(_)
        )
    }
}

type Entry = (Timestamp, Deadline);

/// All pending deadlines, earliest first.
///
/// Serialized as one sorted set (the layout before the FIFO existed), and
/// compared by content, so how entries are split between the two parts is
/// invisible outside.
#[derive(Debug, Clone, Default)]
pub struct Deadlines {
    /// Deadlines in `(due, what)` order that are not in `fifo`.
    set: BTreeSet<Entry>,
    /// Forget deadlines, strictly increasing; none of them is in `set`.
    fifo: VecDeque<Entry>,
}

impl Deadlines {
    /// Schedules `what` at `due`.
    pub fn add(&mut self, due: Timestamp, what: Deadline) {
        let e = (due, what);
        if what.is_forget() {
            match self.fifo.back() {
                None => return self.fifo.push_back(e),
                Some(last) if e > *last => return self.fifo.push_back(e),
                Some(_) if self.fifo.binary_search(&e).is_ok() => return,
                Some(_) => {}
            }
        }
        self.set.insert(e);
    }

    /// Drops a scheduled deadline (no-op if it is not there). The engine
    /// never cancels a forget deadline; if something did and then added
    /// one already held in the set, it could sit in both (`check` says so).
    pub fn cancel(&mut self, due: Timestamp, what: Deadline) {
        let e = (due, what);
        if !self.set.remove(&e)
            && what.is_forget()
            && let Ok(i) = self.fifo.binary_search(&e)
        {
            // Not done by the engine today (forget deadlines are never
            // cancelled); kept correct for completeness.
            self.fifo.remove(i);
        }
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Entry> {
        match (self.set.first(), self.fifo.front()) {
            (Some(s), Some(f)) => Some(*s.min(f)),
            (s, f) => s.or(f).copied(),
        }
    }

    /// Takes the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<Entry> {
        let from_fifo = match (self.set.first(), self.fifo.front()) {
            (Some(s), Some(f)) => f < s,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if from_fifo {
            match self.fifo.front() {
                Some(&(due, _)) if due <= now => self.fifo.pop_front(),
                _ => None,
            }
        } else {
            match self.set.first() {
                Some(&(due, _)) if due <= now => self.set.pop_first(),
                _ => None,
            }
        }
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.set.len() + self.fifo.len()
    }

    /// Whether none are pending.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.fifo.is_empty()
    }

    /// Whether this exact deadline is pending.
    pub fn contains(&self, due: Timestamp, what: Deadline) -> bool {
        let e = (due, what);
        self.set.contains(&e) || (what.is_forget() && self.fifo.binary_search(&e).is_ok())
    }

    /// All pending deadlines, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        Merged {
            set: self.set.iter().peekable(),
            fifo: self.fifo.iter().peekable(),
        }
    }

    /// Checks the split: the FIFO strictly increasing, only forget
    /// deadlines in it, and none of them also in the set.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let mut last: Option<&Entry> = None;
        for e in &self.fifo {
            if !e.1.is_forget() {
                return Err(format!("deadline FIFO holds {:?}, not a forget", e.1));
            }
            if last.is_some_and(|l| l >= e) {
                return Err(format!("deadline FIFO out of order at {:?}", e));
            }
            if self.set.contains(e) {
                return Err(format!("deadline {:?} is both in the FIFO and the set", e));
            }
            last = Some(e);
        }
        Ok(())
    }
}

/// The set and the FIFO merged in `(due, what)` order.
struct Merged<'a> {
    set: std::iter::Peekable<std::collections::btree_set::Iter<'a, Entry>>,
    fifo: std::iter::Peekable<std::collections::vec_deque::Iter<'a, Entry>>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        match (self.set.peek(), self.fifo.peek()) {
            (Some(s), Some(f)) if f < s => self.fifo.next(),
            (Some(_), _) => self.set.next(),
            (None, _) => self.fifo.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.set.len() + self.fifo.len();
        (n, Some(n))
    }
}

impl PartialEq for Deadlines {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Deadlines {}

/// Everything in one sorted sequence, as the single set serialized.
struct AllSorted<'a>(&'a Deadlines);

impl Serialize for AllSorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0.iter() {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl Serialize for Deadlines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Deadlines", 1)?;
        st.serialize_field("set", &AllSorted(self))?;
        st.end()
    }
}

/// The serialized layout: one sorted set.
#[derive(Deserialize)]
#[serde(rename = "Deadlines")]
struct Stored {
    set: BTreeSet<Entry>,
}

impl<'de> Deserialize<'de> for Deadlines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        let mut out = Deadlines::default();
        // In order, so every forget deadline lands in the FIFO.
        for (due, what) in stored.set {
            out.add(due, what);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn merges_fifo_and_set_in_one_order() {
        let mut d = Deadlines::default();
        d.add(t(10), Deadline::ForgetTrade(TradeId(2)));
        d.add(t(10), Deadline::ForgetTrade(TradeId(2))); // repeat: no-op
        d.add(t(10), Deadline::ForgetTrade(TradeId(1))); // out of order: set
        d.add(t(5), Deadline::PaymentDue(TradeId(3)));
        d.add(t(20), Deadline::ForgetListing(ListingId(4)));
        d.add(t(10), Deadline::ForgetTrade(TradeId(1))); // repeat in the set
        d.add(t(10), Deadline::ForgetTrade(TradeId(2))); // repeat, not last
        assert!(d.check().is_ok());
        let all: Vec<_> = d.iter().copied().collect();
        let mut want: Vec<_> = vec![
            (t(10), Deadline::ForgetTrade(TradeId(2))),
            (t(10), Deadline::ForgetTrade(TradeId(1))),
            (t(5), Deadline::PaymentDue(TradeId(3))),
            (t(20), Deadline::ForgetListing(ListingId(4))),
        ];
        want.sort();
        assert_eq!(all, want);
        assert_eq!(d.len(), 4);
        assert!(d.contains(t(10), Deadline::ForgetTrade(TradeId(2))));
        assert!(d.contains(t(10), Deadline::ForgetTrade(TradeId(1))));
        assert!(!d.contains(t(11), Deadline::ForgetTrade(TradeId(1))));
        assert_eq!(d.next(), Some(want[0]));
        // Serialized exactly as the one sorted set it replaces.
        let as_set: BTreeSet<_> = want.iter().copied().collect();
        #[derive(Serialize)]
        struct Old {
            set: BTreeSet<Entry>,
        }
        let old = bincode::serialize(&Old { set: as_set }).unwrap_or_default();
        let new = bincode::serialize(&d).unwrap_or_default();
        assert_eq!(old, new);
        let back: Deadlines = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, d);
        assert!(back.check().is_ok());
        let mut popped = Vec::new();
        while let Some(e) = d.pop_due(t(10)) {
            popped.push(e);
        }
        assert_eq!(popped, want[..3].to_vec());
        assert_eq!(d.next(), Some(want[3]));
        d.cancel(t(20), Deadline::ForgetListing(ListingId(4)));
        assert!(d.is_empty());
    }
}
