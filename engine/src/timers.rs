//! Durable deadlines (SPEC §12) as plain data: a sorted set of
//! `(due, what)`. The engine exposes the earliest and fires the due ones; the
//! shell owns the real clock and a single timer on the next deadline.
//!
//! Most deadlines come at a constant delay after the command that sets them
//! (a trade's payment window, the appeal delays after payment, and "forget":
//! an ended record leaves the working set `ended_retention_ms` after it
//! ended), and time never runs backwards, so each kind arrives in order: each
//! goes to a queue of its own, which costs O(1) per add and pop instead of an
//! ordered-set insert and remove. A cancelled one (a trade paid before its
//! payment deadline) is marked dead in place, found by binary search, and
//! dropped when it reaches the front. One that does not sort after its
//! queue's last is put in place if it lands near the end (two ended in one
//! command in another order), else it goes to the sorted set, like every
//! other kind (a listing's own payment window, the retention shortened). The
//! queues and the set are merged by the same `(due, what)` order, so the
//! deadlines fire, iterate and serialize exactly as one sorted set would.

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
    /// The queue of a constant-delay kind.
    fn queue(&self) -> Option<usize> {
        match self {
            Deadline::PaymentDue(_) => Some(0),
            Deadline::AppealOpens(_) => Some(1),
            Deadline::AutoAppeal(_) => Some(2),
            Deadline::BuyOrderExpires(_) => None,
            Deadline::ForgetTrade(_) | Deadline::ForgetListing(_) | Deadline::ForgetBuyOrder(_) => {
                Some(3)
            }
        }
    }
}

type Entry = (Timestamp, Deadline);

/// How many queues (see [`Deadline::queue`]).
const QUEUES: usize = 4;
/// How far from a queue's end an out-of-order deadline is still put in
/// place (a short move) rather than in the set.
const NEAR_END: usize = 64;

/// Cancelled slots a queue keeps beyond its live ones before dropping them.
const COMPACT_AFTER: usize = 1_024;

/// A queued deadline, or a cancelled one waiting to reach the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    e: Entry,
    live: bool,
}

/// Deadlines of one kind, strictly increasing; the front, if any, live.
#[derive(Debug, Clone, Default)]
struct Queue {
    slots: VecDeque<Slot>,
    dead: usize,
}

impl Queue {
    fn find(&self, e: &Entry) -> Result<usize, usize> {
        self.slots.binary_search_by(|s| s.e.cmp(e))
    }

    fn front(&self) -> Option<&Entry> {
        self.slots.front().map(|s| &s.e)
    }

    fn live(&self) -> usize {
        self.slots.len() - self.dead
    }

    /// Drops cancelled slots at the front.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|s| !s.live) {
            self.slots.pop_front();
            self.dead -= 1;
        }
    }

    /// Revives `i` if it was cancelled.
    fn revive(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i)
            && !s.live
        {
            s.live = true;
            self.dead -= 1;
        }
    }

    /// Adds `e` if it belongs here (at or after the end, or near it);
    /// false if it must go to the set.
    fn add(&mut self, e: Entry, in_set: impl Fn(&Entry) -> bool) -> bool {
        let slot = Slot { e, live: true };
        match self.slots.back() {
            None => {
                if in_set(&e) {
                    return false;
                }
                self.slots.push_back(slot);
                true
            }
            Some(last) if e > last.e => {
                if in_set(&e) {
                    return false;
                }
                self.slots.push_back(slot);
                true
            }
            Some(_) => match self.find(&e) {
                Ok(i) => {
                    if !self.slots[i].live && in_set(&e) {
                        return false;
                    }
                    self.revive(i);
                    true
                }
                Err(i) if i + NEAR_END >= self.slots.len() => {
                    if in_set(&e) {
                        return false;
                    }
                    self.slots.insert(i, slot);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Cancels `e`; whether it was live here.
    fn cancel(&mut self, e: &Entry) -> bool {
        match self.find(e) {
            Ok(i) if self.slots[i].live => {
                self.slots[i].live = false;
                self.dead += 1;
                self.trim();
                // Cancelled slots wait for the front, which for a day-long
                // delay is a day: dropped in bulk once they outnumber the
                // live ones (order kept, so the search still works).
                if self.dead > self.live() + COMPACT_AFTER {
                    self.slots.retain(|s| s.live);
                    self.dead = 0;
                }
                true
            }
            _ => false,
        }
    }

    fn contains(&self, e: &Entry) -> bool {
        self.find(e).is_ok_and(|i| self.slots[i].live)
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter(|s| s.live).map(|s| &s.e)
    }
}

/// All pending deadlines, earliest first.
///
/// Serialized as one sorted set (the layout before the queues existed), and
/// compared by content, so how entries are split between the parts is
/// invisible outside.
#[derive(Debug, Clone, Default)]
pub struct Deadlines {
    /// Deadlines in `(due, what)` order that are not live in a queue.
    set: BTreeSet<Entry>,
    /// Constant-delay deadlines, one queue per kind ([`Deadline::queue`]).
    queues: [Queue; QUEUES],
}

impl Deadlines {
    /// Schedules `what` at `due`.
    pub fn add(&mut self, due: Timestamp, what: Deadline) {
        let e = (due, what);
        if let Some(q) = what.queue() {
            let set = &self.set;
            // The set is searched only if it could hold `e`.
            let in_set = |e: &Entry| set.last().is_some_and(|last| last >= e) && set.contains(e);
            if self.queues[q].add(e, in_set) {
                return;
            }
        }
        self.set.insert(e);
    }

    /// Drops a scheduled deadline (no-op if it is not there).
    pub fn cancel(&mut self, due: Timestamp, what: Deadline) {
        let e = (due, what);
        if let Some(q) = what.queue()
            && self.queues[q].cancel(&e)
        {
            return;
        }
        self.set.remove(&e);
    }

    /// Where the earliest pending deadline is: `None` for the set.
    fn earliest(&self) -> Option<(Option<usize>, Entry)> {
        let mut best = self.set.first().map(|e| (None, *e));
        for (i, q) in self.queues.iter().enumerate() {
            if let Some(f) = q.front()
                && best.is_none_or(|(_, b)| *f < b)
            {
                best = Some((Some(i), *f));
            }
        }
        best
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Entry> {
        self.earliest().map(|(_, e)| e)
    }

    /// Takes the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<Entry> {
        match self.earliest()? {
            (_, (due, _)) if due > now => None,
            (None, _) => self.set.pop_first(),
            (Some(i), _) => {
                let q = &mut self.queues[i];
                let s = q.slots.pop_front();
                q.trim();
                s.map(|s| s.e)
            }
        }
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.set.len() + self.queues.iter().map(Queue::live).sum::<usize>()
    }

    /// Whether none are pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this exact deadline is pending.
    pub fn contains(&self, due: Timestamp, what: Deadline) -> bool {
        let e = (due, what);
        self.set.contains(&e) || what.queue().is_some_and(|q| self.queues[q].contains(&e))
    }

    /// All pending deadlines, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        let mut parts: Vec<Box<dyn Iterator<Item = &Entry> + '_>> = vec![Box::new(self.set.iter())];
        for q in &self.queues {
            parts.push(Box::new(q.iter()));
        }
        Merged {
            parts: parts.into_iter().map(Iterator::peekable).collect(),
            left: self.len(),
        }
    }

    /// Checks the split: each queue strictly increasing, holding its kind
    /// only, its front live and its dead counted; no live queued deadline
    /// also in the set.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn check(&self) -> Result<(), String> {
        for (i, q) in self.queues.iter().enumerate() {
            let mut last: Option<&Entry> = None;
            for s in &q.slots {
                let e = &s.e;
                if e.1.queue() != Some(i) {
                    return Err(format!("deadline queue {i} holds {:?}", e.1));
                }
                if last.is_some_and(|l| l >= e) {
                    return Err(format!("deadline queue {i} out of order at {e:?}"));
                }
                if s.live && self.set.contains(e) {
                    return Err(format!("deadline {e:?} is both in a queue and the set"));
                }
                last = Some(e);
            }
            if q.slots.front().is_some_and(|s| !s.live) {
                return Err(format!("deadline queue {i} starts with a cancelled one"));
            }
            if q.slots.iter().filter(|s| !s.live).count() != q.dead {
                return Err(format!("deadline queue {i} miscounts its cancelled ones"));
            }
        }
        Ok(())
    }
}

/// The set and the queues merged in `(due, what)` order.
struct Merged<'a> {
    parts: Vec<std::iter::Peekable<Box<dyn Iterator<Item = &'a Entry> + 'a>>>,
    left: usize,
}

impl<'a> Iterator for Merged<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        let mut best: Option<(usize, &Entry)> = None;
        for (i, p) in self.parts.iter_mut().enumerate() {
            if let Some(e) = p.peek()
                && best.is_none_or(|(_, b)| *e < b)
            {
                best = Some((i, e));
            }
        }
        let (i, _) = best?;
        self.left = self.left.saturating_sub(1);
        self.parts[i].next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
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
        // In order, so every queued kind lands in its queue.
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

    #[test]
    fn cancelled_slots_do_not_wait_a_whole_delay_in_memory() {
        let mut d = Deadlines::default();
        // A day-long delay: every trade released cancels its auto-appeal.
        for i in 0..5_000 {
            d.add(t(86_400_000 + i), Deadline::AutoAppeal(TradeId(i as u64)));
        }
        for i in 1..4_900 {
            d.cancel(t(86_400_000 + i), Deadline::AutoAppeal(TradeId(i as u64)));
        }
        let q = &d.queues[Deadline::AutoAppeal(TradeId(0)).queue().unwrap_or(0)];
        assert!(
            q.slots.len() <= q.live() + COMPACT_AFTER + 1,
            "{} slots",
            q.slots.len()
        );
        assert_eq!(d.len(), 101);
        assert!(d.check().is_ok());
        let left: Vec<_> = d.iter().map(|(at, _)| at.0 - 86_400_000).collect();
        let want: Vec<_> = std::iter::once(0).chain(4_900..5_000).collect();
        assert_eq!(left, want);
        // Still one sorted set: re-adding a dropped one puts it back in order.
        d.add(t(86_400_000 + 7), Deadline::AutoAppeal(TradeId(7)));
        assert!(d.contains(t(86_400_000 + 7), Deadline::AutoAppeal(TradeId(7))));
        assert!(d.check().is_ok());
        assert_eq!(
            d.next(),
            Some((t(86_400_000), Deadline::AutoAppeal(TradeId(0))))
        );
    }

    #[test]
    fn behaves_as_one_sorted_set() {
        let mut d = Deadlines::default();
        let mut set: BTreeSet<Entry> = BTreeSet::new();
        let mut x: u64 = 5;
        let mut now = 0i64;
        let mut added: Vec<Entry> = Vec::new();
        let mut saw_dead = false;
        for _ in 0..40_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            now += (r % 3) as i64;
            let id = r % 500;
            let what = match r % 7 {
                0 => Deadline::PaymentDue(TradeId(id)),
                1 => Deadline::AppealOpens(TradeId(id)),
                2 => Deadline::AutoAppeal(TradeId(id)),
                3 => Deadline::BuyOrderExpires(BuyOrderId(id)),
                4 => Deadline::ForgetTrade(TradeId(id)),
                5 => Deadline::ForgetListing(ListingId(id)),
                _ => Deadline::ForgetBuyOrder(BuyOrderId(id)),
            };
            // Mostly a constant delay per kind; sometimes another one.
            let delay = if r.is_multiple_of(11) {
                (r % 900) as i64
            } else {
                100 * (r % 7) as i64
            };
            match (r >> 8) % 10 {
                0..=5 => {
                    let e = (t(now + delay), what);
                    d.add(e.0, e.1);
                    set.insert(e);
                    added.push(e);
                }
                6..=7 => {
                    // Cancel something added before (maybe already gone).
                    let i = (r >> 12) as usize % added.len().max(1);
                    if let Some(&(due, what)) = added.get(i) {
                        d.cancel(due, what);
                        set.remove(&(due, what));
                        saw_dead |= d.queues.iter().any(|q| q.dead > 0);
                    }
                }
                _ => {
                    while let Some(e) = d.pop_due(t(now)) {
                        assert_eq!(Some(e), set.pop_first());
                    }
                    assert!(set.first().is_none_or(|f| f.0 > t(now)));
                }
            }
            assert_eq!(d.len(), set.len());
            assert_eq!(d.next(), set.first().copied());
            if let Some(&(due, what)) = added.get((r >> 20) as usize % added.len().max(1)) {
                assert_eq!(d.contains(due, what), set.contains(&(due, what)));
            }
        }
        assert!(d.check().is_ok(), "{:?}", d.check());
        assert!(saw_dead, "cancelled ones wait in place");
        assert!(!d.set.is_empty() && d.queues.iter().all(|q| q.live() > 0));
        assert!(d.iter().copied().eq(set.iter().copied()));
        #[derive(Serialize)]
        struct Old<'a> {
            set: &'a BTreeSet<Entry>,
        }
        let old = bincode::serialize(&Old { set: &set }).unwrap_or_default();
        let new = bincode::serialize(&d).unwrap_or_default();
        assert_eq!(old, new);
        let back: Deadlines = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, d);
        assert!(back.check().is_ok());
    }
}
