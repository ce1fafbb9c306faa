//! Per-user indexes of engine ids (each user's trades, listings, buy
//! orders), hashed by user instead of one ordered set of `(user, id)`.
//!
//! The ordered set cost a search of the whole set (hundreds of thousands of
//! pairs) per insert and remove; here a user's ids are a short sorted list
//! found by one hash lookup. Ids come from one increasing counter, so an
//! insert is almost always a push at the end. The hasher is fixed
//! ([`IdHasher`]), and no iteration order of the hash map reaches anything
//! outside: the index iterates, compares and serializes as the sorted set of
//! `(user, id)` it replaces, so snapshots and digests keep their layout.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

mod queue;
use queue::Ids;

/// A fixed, seedless hasher for engine keys (user ids): deterministic on
/// every run and build, as the engine must be. Each 8-byte word is folded
/// in (FxHash), then the result is mixed (SplitMix64's finalizer) so every
/// bit of the key reaches the low bits the table indexes by.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    fn fold(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.fold(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.fold(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.fold(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.fold(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Builds [`IdHasher`]s.
pub type IdBuild = BuildHasherDefault<IdHasher>;

/// Each user's ids of one kind: a set of `(user, id)` pairs.
#[derive(Debug, Clone)]
pub struct PerUser<I> {
    by_user: HashMap<UserId, Ids<I>, IdBuild>,
    /// Pairs held, across users.
    len: usize,
}

impl<I> Default for PerUser<I> {
    fn default() -> Self {
        Self {
            by_user: HashMap::default(),
            len: 0,
        }
    }
}

impl<I: Copy + Ord> PerUser<I> {
    /// Adds `(user, id)`; false if it was there.
    pub fn insert(&mut self, user: UserId, id: I) -> bool {
        let fresh = match self.by_user.entry(user) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().insert(id),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Ids::One(id));
                true
            }
        };
        self.len += usize::from(fresh);
        fresh
    }

    /// Removes `(user, id)`; whether it was there.
    pub fn remove(&mut self, user: UserId, id: I) -> bool {
        let Some(ids) = self.by_user.get_mut(&user) else {
            return false;
        };
        let gone = ids.remove(id);
        if gone {
            self.len -= 1;
            if matches!(ids, Ids::One(_)) || ids.len() == 0 {
                self.by_user.remove(&user);
            }
        }
        gone
    }

    /// Whether `(user, id)` is held.
    pub fn contains(&self, user: UserId, id: I) -> bool {
        self.by_user.get(&user).is_some_and(|ids| ids.contains(id))
    }

    /// A user's ids, ascending.
    pub fn of(&self, user: UserId) -> impl DoubleEndedIterator<Item = I> + '_ {
        self.by_user
            .get(&user)
            .into_iter()
            .flat_map(|ids| ids.below(None))
    }

    /// A user's ids below `hi`, ascending.
    pub fn below(&self, user: UserId, hi: I) -> impl DoubleEndedIterator<Item = I> + '_ {
        self.by_user
            .get(&user)
            .into_iter()
            .flat_map(move |ids| ids.below(Some(hi)))
    }

    /// How many pairs are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every pair, in `(user, id)` order (sorts the users: for checks and
    /// snapshots, not for commands).
    pub fn sorted(&self) -> Vec<(UserId, I)> {
        let mut users: Vec<&UserId> = self.by_user.keys().collect();
        users.sort_unstable();
        let mut out = Vec::with_capacity(self.len);
        for u in users {
            out.extend(self.of(*u).map(|id| (*u, id)));
        }
        out
    }

    /// Checks the index is well formed: each user's ids strictly
    /// ascending and non-empty, each queue sound (ascending slots, live
    /// ends, its live count right), and the count right.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn check(&self, what: &str) -> Result<(), String> {
        let mut n = 0;
        // In user order: the same user is named in every run.
        let mut users: Vec<_> = self.by_user.keys().collect();
        users.sort_unstable();
        for u in users {
            let s: Vec<I> = self.of(*u).collect();
            if s.is_empty() || s.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "the per-user {what} index of {u:?} is not ascending"
                ));
            }
            if !self.by_user.get(u).is_some_and(Ids::well_formed) {
                return Err(format!(
                    "the per-user {what} index of {u:?} has a malformed queue"
                ));
            }
            n += s.len();
        }
        if n != self.len {
            return Err(format!(
                "the per-user {what} index counts {} but holds {n}",
                self.len
            ));
        }
        Ok(())
    }
}

impl<I: Copy + Ord> PartialEq for PerUser<I> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self.by_user.len() == other.by_user.len()
            && self
                .by_user
                .iter()
                .all(|(u, ids)| ids.len() == other.of(*u).count() && other.of(*u).eq(self.of(*u)))
    }
}

impl<I: Copy + Ord> Eq for PerUser<I> {}

impl<I: Copy + Ord + Serialize> Serialize for PerUser<I> {
    /// As the sorted set of `(user, id)` it replaces.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for pair in self.sorted() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl<'de, I: Copy + Ord + Deserialize<'de>> Deserialize<'de> for PerUser<I> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(UserId, I)>::deserialize(d)?;
        let mut out = Self::default();
        for (u, id) in pairs {
            out.insert(u, id);
        }
        Ok(out)
    }
}

/// A map keyed by user, hashed ([`IdHasher`]) instead of ordered: one
/// lookup per access rather than a search among every user. It iterates in
/// hash order (for checks only: no command reads it in order) and compares
/// and serializes as the `BTreeMap` it replaces, in user order. Values are
/// boxed: a table slot stays small, so the table's growth (which leaves its
/// old generations resident) costs little per user.
#[derive(Debug, Clone)]
pub struct UserMap<V>(HashMap<UserId, Box<V>, IdBuild>);

impl<V> Default for UserMap<V> {
    fn default() -> Self {
        Self(HashMap::default())
    }
}

impl<V> UserMap<V> {
    /// The user's value.
    pub fn get(&self, user: &UserId) -> Option<&V> {
        self.0.get(user).map(|v| &**v)
    }

    /// The user's value, to change.
    pub fn get_mut(&mut self, user: &UserId) -> Option<&mut V> {
        self.0.get_mut(user).map(|v| &mut **v)
    }

    /// The user's value, created with `V::default()` on first use.
    pub fn get_or_default(&mut self, user: UserId) -> &mut V
    where
        V: Default,
    {
        self.0.entry(user).or_default()
    }

    /// Sets the user's value, returning the old one.
    pub fn insert(&mut self, user: UserId, v: V) -> Option<V> {
        self.0.insert(user, Box::new(v)).map(|old| *old)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every user and value, in no particular (but deterministic) order.
    pub fn iter(&self) -> impl Iterator<Item = (&UserId, &V)> {
        self.0.iter().map(|(u, v)| (u, &**v))
    }

    /// Every user and value in user order (sorts: for snapshots and checks).
    pub fn sorted(&self) -> Vec<(&UserId, &V)> {
        let mut all: Vec<_> = self.iter().collect();
        all.sort_unstable_by_key(|(u, _)| **u);
        all
    }
}

impl<V: PartialEq> PartialEq for UserMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<V: Eq> Eq for UserMap<V> {}

impl<V: Serialize> Serialize for UserMap<V> {
    /// As the `BTreeMap` it replaces: entries in user order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (u, v) in self.sorted() {
            map.serialize_entry(u, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UserMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        HashMap::<UserId, Box<V>, IdBuild>::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::ids::TradeId;

    fn u(n: u64) -> UserId {
        UserId(uuid::Uuid::from_u64_pair(n.rotate_right(7), n))
    }

    #[test]
    fn behaves_as_the_sorted_set_it_replaces() {
        let mut index: PerUser<TradeId> = PerUser::default();
        let mut set: BTreeSet<(UserId, TradeId)> = BTreeSet::new();
        // A small deterministic walk of inserts and removes.
        let mut x: u64 = 7;
        for _ in 0..5_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (user, id) = (u((x >> 33) % 50), TradeId((x >> 17) % 300));
            if (x >> 60) < 10 {
                assert_eq!(index.insert(user, id), set.insert((user, id)));
            } else {
                assert_eq!(index.remove(user, id), set.remove(&(user, id)));
            }
            assert_eq!(index.len(), set.len());
            assert_eq!(index.contains(user, id), set.contains(&(user, id)));
        }
        assert!(index.check("trade").is_ok());
        assert_eq!(index.sorted(), set.iter().copied().collect::<Vec<_>>());
        let old = bincode::serialize(&set).unwrap_or_default();
        let new = bincode::serialize(&index).unwrap_or_default();
        assert_eq!(old, new);
        let back: PerUser<TradeId> = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, index);
        let user = u(3);
        let want: Vec<TradeId> = set
            .range((user, TradeId(0))..=(user, TradeId(u64::MAX)))
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(index.of(user).collect::<Vec<_>>(), want);
        let below: Vec<TradeId> = want.iter().copied().filter(|id| id.0 < 150).collect();
        assert_eq!(index.below(user, TradeId(150)).collect::<Vec<_>>(), below);
    }

    #[test]
    fn a_long_queue_with_removals_from_the_middle_stays_the_sorted_set() {
        // One busy user holding hundreds: ids mostly arrive in order and
        // leave from anywhere, so dead slots are left in the middle, dropped
        // at the ends, revived by a re-insert, and swept.
        let mut index: PerUser<TradeId> = PerUser::default();
        let mut set: BTreeSet<TradeId> = BTreeSet::new();
        let user = u(1);
        let (mut next, mut removed, mut swept) = (0u64, Vec::new(), 0);
        let mut x: u64 = 11;
        for step in 0..30_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let roll = (x >> 56) % 16;
            let inserts = if set.len() < 600 { 11 } else { 5 };
            if roll < inserts || set.len() < 2 {
                // In order; now and then again an id removed lately (its
                // slot may still be there, dead) or one never held.
                let id = match roll {
                    0 if !removed.is_empty() => removed[((x >> 20) as usize) % removed.len()],
                    1 if next > 0 => TradeId((x >> 20) % next),
                    _ => {
                        next += 1;
                        TradeId(next)
                    }
                };
                assert_eq!(index.insert(user, id), set.insert(id), "insert {id:?}");
            } else {
                // Oldest, newest, or from the middle.
                let held: Vec<TradeId> = set.iter().copied().collect();
                let id = match roll % 4 {
                    0 => held[0],
                    1 => held[held.len() - 1],
                    _ => held[((x >> 24) as usize) % held.len()],
                };
                assert_eq!(index.remove(user, id), set.remove(&id), "remove {id:?}");
                assert!(!index.remove(user, id), "a second remove of {id:?}");
                removed.push(id);
                if removed.len() > 64 {
                    removed.remove(0);
                }
            }
            assert_eq!(index.len(), set.len());
            if let Some(ids) = index.by_user.get(&user) {
                assert_eq!(ids.len(), set.len(), "the queue's own count");
                let dead = ids.dead();
                assert!(
                    dead <= queue::SWEEP_MIN.max(ids.len()),
                    "dead slots are swept"
                );
                swept = swept.max(dead);
            }
            if step % 97 == 0 {
                assert!(index.check("trade").is_ok(), "well formed at step {step}");
                assert_eq!(
                    index.of(user).collect::<Vec<_>>(),
                    set.iter().copied().collect::<Vec<_>>()
                );
                let hi = TradeId((x >> 8) % (next + 2));
                let want: Vec<TradeId> = set.range(..hi).rev().copied().take(20).collect();
                let got: Vec<TradeId> = index.below(user, hi).rev().take(20).collect();
                assert_eq!(got, want, "below {hi:?}, newest first");
                for probe in [TradeId(0), hi, TradeId(next)] {
                    assert_eq!(index.contains(user, probe), set.contains(&probe));
                }
            }
        }
        assert!(set.len() > 300, "the queue grew long: {}", set.len());
        assert!(
            swept > queue::SWEEP_MIN,
            "dead slots piled up before a sweep: {swept}"
        );
        let pairs: BTreeSet<(UserId, TradeId)> = set.iter().map(|id| (user, *id)).collect();
        let bytes = bincode::serialize(&index).unwrap_or_default();
        assert_eq!(bytes, bincode::serialize(&pairs).unwrap_or_default());
        // Read back, it holds no dead slots, yet equals the one that does.
        let back: PerUser<TradeId> = bincode::deserialize(&bytes).unwrap_or_default();
        assert_eq!(back, index);
        assert!(back.by_user.get(&user).is_some_and(|ids| ids.dead() == 0));
    }

    #[test]
    fn removals_from_the_middle_are_swept_once_they_outnumber_the_live() {
        let mut index: PerUser<TradeId> = PerUser::default();
        let user = u(2);
        for id in 1..=100 {
            assert!(index.insert(user, TradeId(id)));
        }
        let dead = |index: &PerUser<TradeId>| index.by_user.get(&user).map_or(0, Ids::dead);
        // 50 removed from the middle: 50 dead beside 50 live, not yet swept.
        for id in 2..=51 {
            assert!(index.remove(user, TradeId(id)));
        }
        assert_eq!((index.len(), dead(&index)), (50, 50));
        // One more outnumbers the live: all swept at once.
        assert!(index.remove(user, TradeId(52)));
        assert_eq!((index.len(), dead(&index)), (49, 0));
        // Under the floor (32), dead ones stay even when they outnumber.
        for id in 53..=98 {
            assert!(index.remove(user, TradeId(id)));
        }
        assert_eq!(index.len(), 3);
        assert!(dead(&index) <= queue::SWEEP_MIN, "{}", dead(&index));
        // The newest and the oldest go without leaving dead ends.
        assert!(index.remove(user, TradeId(100)));
        assert!(index.remove(user, TradeId(1)));
        assert_eq!((index.len(), dead(&index)), (1, 0));
        assert_eq!(index.of(user).collect::<Vec<_>>(), vec![TradeId(99)]);
        assert!(index.check("trade").is_ok());
    }

    #[test]
    fn user_map_serializes_as_the_btree_map() {
        let mut hashed: UserMap<u32> = UserMap::default();
        let mut ordered: std::collections::BTreeMap<UserId, u32> =
            std::collections::BTreeMap::new();
        for n in 0..1_000u64 {
            let (user, v) = (u(n * 7919 % 1_000), (n % 13) as u32);
            *hashed.get_or_default(user) += v;
            *ordered.entry(user).or_default() += v;
        }
        let old = bincode::serialize(&ordered).unwrap_or_default();
        let new = bincode::serialize(&hashed).unwrap_or_default();
        assert_eq!(old, new);
        let back: UserMap<u32> = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, hashed);
        assert_eq!(back.len(), ordered.len());
    }
}
