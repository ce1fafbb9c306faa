//! Records keyed by an engine id, in a slab indexed by the id: the engine
//! hands ids out from one increasing counter, so the records that exist
//! (trades, say: new ones at the back, ended ones forgotten an hour later
//! from the front) sit in a window of ids, found by one subtraction instead
//! of a search of an ordered map.
//!
//! The window is a queue of slots (`None` for an id that is not, or no
//! longer, a record of this kind: ids are shared by listings, trades, buy
//! orders...). Empty slots at the front are dropped as they appear. A record
//! that stays while those after it go (a trade held by an appeal) would pin
//! the window and let it grow; when the window is much longer than the
//! records it holds, the records at its front move to a map of old ones
//! below the window, hashed by id with the engine's fixed hasher (listings
//! stay for weeks while ids run on). So memory stays proportional to the
//! records, and every lookup is O(1).
//!
//! It iterates, compares and serializes as the `BTreeMap` it replaces
//! (entries in id order: the old ones, then the window), so snapshots and
//! digests keep their layout; how records are split is invisible outside.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::ids::{ListingId, TradeId};
use crate::per_user::IdBuild;

/// An engine id that is a plain counter value.
pub trait DenseId: Copy + Ord + Hash {
    /// The counter value.
    fn index(self) -> u64;
    /// The id of a counter value.
    fn from_index(i: u64) -> Self;
}

impl DenseId for TradeId {
    fn index(self) -> u64 {
        self.0
    }
    fn from_index(i: u64) -> Self {
        Self(i)
    }
}

impl DenseId for ListingId {
    fn index(self) -> u64 {
        self.0
    }
    fn from_index(i: u64) -> Self {
        Self(i)
    }
}

/// Empty slots the window may hold beyond [`WINDOW_PER_RECORD`] per record
/// before records at its front move to the old map.
const WINDOW_SLACK: usize = 4_096;
/// Slots (8 bytes each with boxed values) per record the window may hold.
const WINDOW_PER_RECORD: usize = 4;

/// See the module docs.
#[derive(Clone)]
pub struct IdSlab<K, V> {
    /// Records below the window (`< base`), hashed: iterating them sorts.
    old: HashMap<K, V, IdBuild>,
    /// The id of `window[0]`.
    base: u64,
    /// Slots for ids `base..base + window.len()`; the first, if any, is
    /// held.
    window: VecDeque<Option<V>>,
    /// Held slots in the window.
    held: usize,
}

impl<K, V> Default for IdSlab<K, V> {
    fn default() -> Self {
        Self {
            old: HashMap::default(),
            base: 0,
            window: VecDeque::new(),
            held: 0,
        }
    }
}

impl<K: DenseId, V> IdSlab<K, V> {
    /// The record of `id`.
    #[inline]
    pub fn get(&self, id: &K) -> Option<&V> {
        let i = id.index();
        match i.checked_sub(self.base) {
            Some(off) => self.window.get(off as usize).and_then(Option::as_ref),
            None => self.old.get(id),
        }
    }

    /// The record of `id`, to change.
    #[inline]
    pub fn get_mut(&mut self, id: &K) -> Option<&mut V> {
        let i = id.index();
        match i.checked_sub(self.base) {
            Some(off) => self.window.get_mut(off as usize).and_then(Option::as_mut),
            None => self.old.get_mut(id),
        }
    }

    /// Whether `id` has a record.
    pub fn contains_key(&self, id: &K) -> bool {
        self.get(id).is_some()
    }

    /// Most slots the window may have for `held` records.
    fn room(held: usize) -> usize {
        held.saturating_mul(WINDOW_PER_RECORD)
            .saturating_add(WINDOW_SLACK)
    }

    /// Moves the window's first slot out (its record, if any, to `old`).
    fn shift(&mut self) {
        if let Some(slot) = self.window.pop_front() {
            if let Some(v) = slot {
                self.held -= 1;
                self.old.insert(K::from_index(self.base), v);
            }
            self.base += 1;
        }
    }

    /// Drops empty slots at the front; then, while the window is much
    /// longer than its records, moves its front out.
    fn trim(&mut self) {
        loop {
            match self.window.front() {
                Some(None) => {
                    self.window.pop_front();
                    self.base += 1;
                }
                Some(Some(_)) if self.window.len() > Self::room(self.held) => self.shift(),
                _ => break,
            }
        }
    }

    /// Sets the record of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: K, v: V) -> Option<V> {
        let i = id.index();
        if i < self.base {
            return self.old.insert(id, v);
        }
        if self.window.is_empty() {
            self.base = i;
        }
        let mut off = (i - self.base) as usize;
        if off < self.window.len() {
            let old = self.window[off].replace(v);
            self.held += usize::from(old.is_none());
            return old;
        }
        // Past the end: empty slots up to it, unless the window would grow
        // far beyond its records; then its front moves out first.
        while !self.window.is_empty() && off >= Self::room(self.held + 1) {
            self.shift();
            self.trim();
            off = match i.checked_sub(self.base) {
                Some(off) if !self.window.is_empty() => off as usize,
                _ => 0,
            };
        }
        if self.window.is_empty() {
            self.base = i;
        }
        self.window.resize_with(off, || None);
        self.window.push_back(Some(v));
        self.held += 1;
        None
    }

    /// Removes the record of `id`, returning it.
    pub fn remove(&mut self, id: &K) -> Option<V> {
        let i = id.index();
        let Some(off) = i.checked_sub(self.base) else {
            return self.old.remove(id);
        };
        let v = self.window.get_mut(off as usize)?.take()?;
        self.held -= 1;
        self.trim();
        Some(v)
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.old.len() + self.held
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every record in id order (sorts the old ones: for checks,
    /// snapshots and tests, not for commands).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (K, &V)> + '_ {
        let base = self.base;
        let mut old: Vec<(K, &V)> = self.old.iter().map(|(k, v)| (*k, v)).collect();
        old.sort_unstable_by_key(|(k, _)| *k);
        old.into_iter().chain(
            self.window
                .iter()
                .enumerate()
                .filter_map(move |(off, slot)| {
                    slot.as_ref().map(|v| (K::from_index(base + off as u64), v))
                }),
        )
    }

    /// Every id in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Every record in id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Checks the split: old ids below the window, the window's first slot
    /// held, the count right.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn check(&self, what: &str) -> Result<(), String> {
        if self.old.keys().any(|k| k.index() >= self.base) {
            return Err(format!("an old {what} is inside the window"));
        }
        if matches!(self.window.front(), Some(None)) {
            return Err(format!("the {what} window starts with an empty slot"));
        }
        if self.window.iter().filter(|s| s.is_some()).count() != self.held {
            return Err(format!("the {what} window miscounts its records"));
        }
        Ok(())
    }
}

impl<K: DenseId + fmt::Debug, V: fmt::Debug> fmt::Debug for IdSlab<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: DenseId, V: PartialEq> PartialEq for IdSlab<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: DenseId, V: Eq> Eq for IdSlab<K, V> {}

impl<K: DenseId + Serialize, V: Serialize> Serialize for IdSlab<K, V> {
    /// As the `BTreeMap` it replaces: entries in id order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(&k, v)?;
        }
        map.end()
    }
}

impl<'de, K: DenseId + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for IdSlab<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all = BTreeMap::<K, V>::deserialize(d)?;
        let mut out = Self::default();
        // In id order, so each lands at the window's end (or moves out).
        for (k, v) in all {
            out.insert(k, v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_and_serializes_as_the_btree_map() {
        let mut slab: IdSlab<TradeId, Box<u32>> = IdSlab::default();
        let mut map: BTreeMap<TradeId, Box<u32>> = BTreeMap::new();
        // Ids mostly increasing, with gaps; most records removed some time
        // later, a few held for long (pinning the window), a few far jumps.
        let mut x: u64 = 11;
        let mut next = 1u64;
        for step in 0..60_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            match r % 10 {
                0..=4 => {
                    next += 1 + r % 3;
                    if r.is_multiple_of(997) {
                        next += 50_000;
                    }
                    let id = TradeId(next);
                    assert_eq!(
                        slab.insert(id, Box::new(step as u32)),
                        map.insert(id, Box::new(step as u32))
                    );
                }
                5..=8 => {
                    // Something a while back; keep every 50th id for long.
                    let back = 1 + (r >> 4) % 3_000;
                    let id = TradeId(next.saturating_sub(back));
                    if !id.0.is_multiple_of(50) || r.is_multiple_of(5) {
                        assert_eq!(slab.remove(&id), map.remove(&id));
                    }
                }
                _ => {
                    // A change (or insert) below the window, now and then.
                    let id = TradeId((r >> 3) % next.max(1));
                    if let Some(v) = slab.get_mut(&id) {
                        **v += 1;
                    }
                    if let Some(v) = map.get_mut(&id) {
                        **v += 1;
                    }
                    if r.is_multiple_of(7) {
                        assert_eq!(slab.insert(id, Box::new(7)), map.insert(id, Box::new(7)));
                    }
                }
            }
            assert_eq!(slab.len(), map.len());
            let probe = TradeId(r % (next + 2));
            assert_eq!(slab.get(&probe), map.get(&probe));
        }
        assert!(slab.check("trade").is_ok());
        assert!(!slab.old.is_empty(), "the test pins the window");
        assert!(slab.window.len() <= IdSlab::<TradeId, Box<u32>>::room(slab.held));
        let want: Vec<_> = map.iter().map(|(k, v)| (*k, v)).collect();
        assert_eq!(slab.iter().collect::<Vec<_>>(), want);
        assert_eq!(
            slab.values().rev().collect::<Vec<_>>(),
            map.values().rev().collect::<Vec<_>>()
        );
        let old = bincode::serialize(&map).unwrap_or_default();
        let new = bincode::serialize(&slab).unwrap_or_default();
        assert_eq!(old, new);
        let back: IdSlab<TradeId, Box<u32>> = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, slab);
        assert!(back.check("trade").is_ok());
        while let Some((k, _)) = map.pop_first() {
            assert!(slab.remove(&k).is_some());
        }
        assert!(slab.is_empty() && slab.window.is_empty());
    }
}
