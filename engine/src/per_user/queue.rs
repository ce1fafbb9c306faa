//! One user's ids of one kind, ascending: inline when there is one, else
//! a queue whose removals from the middle leave dead slots ([`Queue`]).

use std::collections::VecDeque;

/// One user's ids, ascending: one inline (most users hold one), or a
/// queue, boxed so a table slot stays small.
#[derive(Debug, Clone)]
pub(super) enum Ids<I> {
    One(I),
    Many(Box<Queue<I>>),
}

/// A user's many ids, ascending. A busy seller's trades mostly end oldest
/// first, but some end from the middle of hundreds (a quarter of them in
/// the benchmark's mix): those are marked dead in place (a binary search,
/// no shifting), dropped when an end reaches them, and swept out together
/// once they outnumber the live ones and number more than [`SWEEP_MIN`].
/// So a queue holds at most `max(SWEEP_MIN, live)` dead ids, and each id is
/// moved a bounded number of times on average.
#[derive(Debug, Clone)]
pub(super) struct Queue<I> {
    /// Ascending; both ends are live.
    slots: VecDeque<Slot<I>>,
    /// Slots not dead.
    live: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot<I> {
    id: I,
    live: bool,
}

impl<I> Slot<I> {
    fn live(id: I) -> Self {
        Self { id, live: true }
    }
}

/// Dead slots swept only past this many, so a small queue never sweeps.
pub(super) const SWEEP_MIN: usize = 32;

impl<I: Copy + Ord> Queue<I> {
    fn pair(a: I, b: I) -> Self {
        let mut slots = VecDeque::with_capacity(4);
        slots.extend([Slot::live(a), Slot::live(b)]);
        Self { slots, live: 2 }
    }

    fn find(&self, id: I) -> Result<usize, usize> {
        self.slots.binary_search_by(|s| s.id.cmp(&id))
    }

    fn contains(&self, id: I) -> bool {
        self.find(id).is_ok_and(|i| self.slots[i].live)
    }

    fn insert(&mut self, id: I) -> bool {
        match self.slots.back() {
            Some(last) if last.id < id => self.slots.push_back(Slot::live(id)),
            _ => match self.find(id) {
                Ok(i) if self.slots[i].live => return false,
                Ok(i) => self.slots[i].live = true,
                Err(i) => self.slots.insert(i, Slot::live(id)),
            },
        }
        self.live += 1;
        true
    }

    fn remove(&mut self, id: I) -> bool {
        // The oldest or the newest, most often: no search for those.
        let at = if self.slots.front().is_some_and(|s| s.id == id) {
            Ok(0)
        } else if self.slots.back().is_some_and(|s| s.id == id) {
            Ok(self.slots.len() - 1)
        } else {
            self.find(id)
        };
        let Ok(i) = at else {
            return false;
        };
        if !self.slots[i].live {
            return false;
        }
        self.slots[i].live = false;
        self.live -= 1;
        while self.slots.front().is_some_and(|s| !s.live) {
            self.slots.pop_front();
        }
        while self.slots.back().is_some_and(|s| !s.live) {
            self.slots.pop_back();
        }
        let dead = self.slots.len() - self.live;
        if dead > SWEEP_MIN && dead > self.live {
            self.slots.retain(|s| s.live);
        }
        true
    }

    /// Its live ids below `hi`, or all of them with no bound, ascending.
    fn below(&self, hi: Option<I>) -> impl DoubleEndedIterator<Item = I> + '_ {
        let n = hi.map_or(self.slots.len(), |hi| {
            self.slots.partition_point(|s| s.id < hi)
        });
        self.slots.range(..n).filter(|s| s.live).map(|s| s.id)
    }

    /// Well formed: ascending, both ends live, `live` right.
    fn check(&self) -> bool {
        let ascending = self
            .slots
            .iter()
            .zip(self.slots.iter().skip(1))
            .all(|(a, b)| a.id < b.id);
        let ends =
            self.slots.front().is_none_or(|s| s.live) && self.slots.back().is_none_or(|s| s.live);
        ascending && ends && self.slots.iter().filter(|s| s.live).count() == self.live
    }
}

impl<I: Copy + Ord> Ids<I> {
    pub(super) fn len(&self) -> usize {
        match self {
            Ids::One(_) => 1,
            Ids::Many(q) => q.live,
        }
    }

    /// Its ids below `hi` (all of them with no bound), ascending.
    pub(super) fn below(&self, hi: Option<I>) -> impl DoubleEndedIterator<Item = I> + '_ {
        let (one, many) = match self {
            Ids::One(id) => (hi.is_none_or(|hi| *id < hi).then_some(*id), None),
            Ids::Many(q) => (None, Some(q.below(hi))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub(super) fn contains(&self, id: I) -> bool {
        match self {
            Ids::One(only) => *only == id,
            Ids::Many(q) => q.contains(id),
        }
    }

    /// Adds `id` in order; false if it was there.
    pub(super) fn insert(&mut self, id: I) -> bool {
        match self {
            Ids::One(first) if *first == id => false,
            Ids::One(first) => {
                let pair = if *first < id {
                    Queue::pair(*first, id)
                } else {
                    Queue::pair(id, *first)
                };
                *self = Ids::Many(Box::new(pair));
                true
            }
            Ids::Many(q) => q.insert(id),
        }
    }

    /// Removes `id`; whether it was there. Leaves `Many` possibly empty.
    pub(super) fn remove(&mut self, id: I) -> bool {
        match self {
            Ids::One(only) => *only == id,
            Ids::Many(q) => q.remove(id),
        }
    }

    /// Dead slots held (none inline).
    #[cfg(test)]
    pub(super) fn dead(&self) -> usize {
        match self {
            Ids::One(_) => 0,
            Ids::Many(q) => q.slots.len() - q.live,
        }
    }

    /// Well formed: ascending, both ends live, the live count right.
    pub(super) fn well_formed(&self) -> bool {
        match self {
            Ids::One(_) => true,
            Ids::Many(q) => q.check(),
        }
    }
}
