//! The order book: active listings per market, in matching order (SPEC §8,
//! §22): best effective price, then oldest.
//!
//! Fixed listings are kept by price. Floating listings share the market's
//! reference, so among themselves their raw prices are in premium order:
//! they are kept by premium, and those with a ceiling also by ceiling. A new
//! reference therefore changes no index (O(1)); [`Ordered`] merges the
//! streams lazily. Why that is exact: a floating listing's effective price
//! is `min(max(raw, floor), ceiling) ≥ min(raw, ceiling)`, so the heads of
//! the premium and ceiling streams bound every listing not yet pulled from
//! them; candidates pulled wait in a small heap by their actual effective
//! price, and one leaves it only when no stream can still hold a better one.
//! Bounds are whole keys (price, id), so listings at one price come out
//! oldest first without pulling every listing at that price: within a
//! stream, equal keys are in id order; the premium stream bounds ids only
//! when the next premium gives a higher raw price (rounding can make two
//! premiums equal).

use std::collections::{BTreeMap, BTreeSet, btree_map};
use std::ops::Bound;

mod ordered;
pub use ordered::Ordered;

use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::ids::ListingId;
use crate::listing::Listing;
use crate::money::{Asset, Fiat, Price};
use crate::slab::IdSlab;
use rust_decimal::Decimal;

use crate::pricing::{BPS_PER_ONE, Floating, Pricing, raw_price};

/// A market: the coin and the fiat.
pub type Market = (Asset, Fiat);

/// A position in the book: effective price, then listing (its age).
pub type BookKey = (Price, ListingId);
/// A floating listing's place in its premium order (basis points, id).
pub type UnpricedKey = (i32, ListingId);

/// Active listings per market, indexed for matching.
///
/// Floating listings whose floor binds at the market's latest reference
/// (their raw price is below it, so they trade at the floor) are kept by
/// floor instead of in the premium stream: otherwise every walk of the book
/// would pull all of them. Which ones bind changes only when the reference
/// crosses a listing's switch point, `(floor − 0.005) / (1 + premium)`;
/// [`Book::rebalance`] moves just the listings whose switch point lies
/// between the old and the new reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    fixed: BTreeMap<Market, Levels>,
    /// Every floating listing, by premium.
    floating: BTreeMap<Market, BTreeSet<(i32, ListingId)>>,
    /// Floating listings whose floor does not bind, by premium.
    free: BTreeMap<Market, BTreeSet<(i32, ListingId)>>,
    /// Floating listings whose floor binds, by floor.
    floored: BTreeMap<Market, BTreeSet<(Price, ListingId)>>,
    /// Floating listings with a floor, by switch point.
    switches: BTreeMap<Market, BTreeSet<(Decimal, ListingId)>>,
    /// The reference the floors were last sorted at.
    sorted_at: BTreeMap<Market, Price>,
    ceilings: BTreeMap<Market, BTreeSet<(Price, ListingId)>>,
}

/// A market's fixed listings by price level, then id: a search among the
/// few distinct prices, then among one level's ids (integers), instead of
/// comparing prices all the way down one set of `(price, id)`. Each entry
/// keeps its listing's own price (the level's key is the first price of
/// that value), so it iterates, compares and serializes exactly as the
/// `BTreeSet<(Price, ListingId)>` it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    levels: BTreeMap<Price, BTreeMap<ListingId, Price>>,
    len: usize,
}

impl Levels {
    /// Adds `(price, id)`; false if it was there.
    pub fn insert(&mut self, price: Price, id: ListingId) -> bool {
        let level = self.levels.entry(price).or_default();
        match level.entry(id) {
            btree_map::Entry::Occupied(_) => false,
            btree_map::Entry::Vacant(e) => {
                e.insert(price);
                self.len += 1;
                true
            }
        }
    }

    /// Removes `(price, id)`; whether it was there.
    pub fn remove(&mut self, price: Price, id: ListingId) -> bool {
        let Some(level) = self.levels.get_mut(&price) else {
            return false;
        };
        let gone = level.remove(&id).is_some();
        if gone {
            self.len -= 1;
            if level.is_empty() {
                self.levels.remove(&price);
            }
        }
        gone
    }

    /// Whether `(price, id)` is held.
    pub fn contains(&self, price: Price, id: ListingId) -> bool {
        self.levels
            .get(&price)
            .and_then(|level| level.get(&id))
            .is_some_and(|p| *p == price)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every `(price, id)` in order.
    pub fn iter(&self) -> LevelIter<'_> {
        LevelIter::new(Some(self), None)
    }
}

/// [`Levels`] in `(price, id)` order.
pub struct LevelIter<'a> {
    outer: Option<btree_map::Range<'a, Price, BTreeMap<ListingId, Price>>>,
    inner: Option<btree_map::Iter<'a, ListingId, Price>>,
}

impl<'a> LevelIter<'a> {
    /// From the level of `from` (the first), or from the lowest.
    fn new(levels: Option<&'a Levels>, from: Option<Price>) -> Self {
        let start = from.map_or(Bound::Unbounded, Bound::Included);
        Self {
            outer: levels.map(|l| l.levels.range((start, Bound::Unbounded))),
            inner: None,
        }
    }
}

impl Iterator for LevelIter<'_> {
    type Item = (Price, ListingId);

    fn next(&mut self) -> Option<(Price, ListingId)> {
        loop {
            if let Some((id, p)) = self.inner.as_mut().and_then(Iterator::next) {
                return Some((*p, *id));
            }
            self.inner = Some(self.outer.as_mut()?.next()?.1.iter());
        }
    }
}

impl Serialize for Levels {
    /// As the `BTreeSet<(Price, ListingId)>` it replaces.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for e in self.iter() {
            seq.serialize_element(&e)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Levels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all = BTreeSet::<(Price, ListingId)>::deserialize(d)?;
        let mut out = Self::default();
        for (p, id) in all {
            out.insert(p, id);
        }
        Ok(out)
    }
}

/// Margin around switch points: candidates are re-checked exactly.
const SWITCH_MARGIN: Decimal = Decimal::from_parts(1, 0, 0, false, 4);

/// The reference below which `f`'s floor binds.
fn switch_point(f: &Floating) -> Option<Decimal> {
    let floor = f.floor?.value();
    let half_cent = Decimal::new(5, 3);
    let factor = Decimal::from(BPS_PER_ONE + i64::from(f.premium_bps)) / Decimal::from(BPS_PER_ONE);
    (floor - half_cent).checked_div(factor)
}

/// Whether `f`'s floor binds at `reference`: its raw price is below it.
fn floor_binds(f: &Floating, reference: Option<Price>) -> bool {
    match (f.floor, reference) {
        (Some(floor), Some(r)) => raw_price(r, f.premium_bps).is_none_or(|raw| raw < floor),
        _ => false,
    }
}

impl Book {
    /// Adds an active listing.
    pub fn insert(&mut self, l: &Listing) {
        self.add(l.market(), l.id, l.pricing);
    }

    /// Adds an active listing by its parts.
    pub fn add(&mut self, m: Market, id: ListingId, pricing: Pricing) {
        let fresh = match pricing {
            Pricing::Fixed(price) => self.fixed.entry(m).or_default().insert(price, id),
            Pricing::Floating(f) => {
                if let Some(c) = f.ceiling {
                    self.ceilings.entry(m).or_default().insert((c, id));
                }
                if let Some(s) = switch_point(&f) {
                    self.switches.entry(m).or_default().insert((s, id));
                }
                self.place(m, id, &f);
                self.floating
                    .entry(m)
                    .or_default()
                    .insert((f.premium_bps, id))
            }
        };
        debug_assert!(fresh, "listing {id} was already in the book");
    }

    /// Puts a floating listing in the floored or the free index, by whether
    /// its floor binds at the reference the book is sorted at.
    fn place(&mut self, m: Market, id: ListingId, f: &Floating) {
        match f.floor {
            Some(floor) if floor_binds(f, self.sorted_at.get(&m).copied()) => {
                if let Some(s) = self.free.get_mut(&m) {
                    s.remove(&(f.premium_bps, id));
                }
                self.floored.entry(m).or_default().insert((floor, id));
            }
            _ => {
                if let (Some(floor), Some(s)) = (f.floor, self.floored.get_mut(&m)) {
                    s.remove(&(floor, id));
                }
                self.free.entry(m).or_default().insert((f.premium_bps, id));
            }
        }
    }

    /// Re-sorts floors for a new reference of `m`: only listings whose
    /// switch point lies between the old and the new reference can move.
    pub fn rebalance(
        &mut self,
        m: Market,
        reference: Price,
        listings: &IdSlab<ListingId, Box<Listing>>,
    ) {
        let old = self.sorted_at.insert(m, reference);
        let new = reference.value();
        let (lo, hi) = match old.map(Price::value) {
            Some(old) if old <= new => (old, new),
            Some(old) => (new, old),
            // Sorted at no reference: nothing bound; those above `new` may.
            None => (new, Decimal::MAX),
        };
        let lo = lo.saturating_sub(SWITCH_MARGIN);
        let hi = hi.saturating_add(SWITCH_MARGIN);
        let movers: Vec<ListingId> = self
            .switches
            .get(&m)
            .map(|s| {
                s.range((lo, ListingId(0))..=(hi, ListingId(u64::MAX)))
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for id in movers {
            if let Some(Pricing::Floating(f)) = listings.get(&id).map(|l| l.pricing) {
                self.place(m, id, &f);
            }
        }
    }

    /// Removes a listing (no-op if absent).
    pub fn remove(&mut self, l: &Listing) {
        self.take(l.market(), l.id, l.pricing);
    }

    /// Removes a listing by its parts (no-op if absent).
    pub fn take(&mut self, m: Market, id: ListingId, pricing: Pricing) {
        fn take<K: Ord>(map: &mut BTreeMap<Market, BTreeSet<K>>, m: Market, key: &K) {
            if let Some(side) = map.get_mut(&m) {
                side.remove(key);
                if side.is_empty() {
                    map.remove(&m);
                }
            }
        }
        match pricing {
            Pricing::Fixed(price) => {
                if let Some(side) = self.fixed.get_mut(&m) {
                    side.remove(price, id);
                    if side.is_empty() {
                        self.fixed.remove(&m);
                    }
                }
            }
            Pricing::Floating(f) => {
                take(&mut self.floating, m, &(f.premium_bps, id));
                take(&mut self.free, m, &(f.premium_bps, id));
                if let Some(floor) = f.floor {
                    take(&mut self.floored, m, &(floor, id));
                }
                if let Some(s) = switch_point(&f) {
                    take(&mut self.switches, m, &(s, id));
                }
                if let Some(c) = f.ceiling {
                    take(&mut self.ceilings, m, &(c, id));
                }
            }
        }
    }

    /// Whether the listing is in the book.
    pub fn contains(&self, l: &Listing) -> bool {
        match l.pricing {
            Pricing::Fixed(price) => self
                .fixed
                .get(&l.market())
                .is_some_and(|s| s.contains(price, l.id)),
            Pricing::Floating(f) => {
                let by_premium = self
                    .floating
                    .get(&l.market())
                    .is_some_and(|s| s.contains(&(f.premium_bps, l.id)));
                let by_ceiling = f.ceiling.is_none_or(|c| {
                    self.ceilings
                        .get(&l.market())
                        .is_some_and(|s| s.contains(&(c, l.id)))
                });
                by_premium && by_ceiling
            }
        }
    }

    /// How many listings are in the book, across markets.
    pub fn len(&self) -> usize {
        let count =
            |m: &BTreeMap<Market, BTreeSet<_>>| m.values().map(BTreeSet::len).sum::<usize>();
        self.fixed.values().map(Levels::len).sum::<usize>() + count(&self.floating)
    }

    /// A market's floating listings in premium order, after `after` (a
    /// page cursor: a place in that order, good after its listing left).
    pub fn floating_after(
        &self,
        m: Market,
        after: Option<UnpricedKey>,
    ) -> impl Iterator<Item = UnpricedKey> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.floating
            .get(&m)
            .into_iter()
            .flat_map(move |set| set.range((from, Unbounded)))
            .copied()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.floating.is_empty()
    }

    /// Checks the floating indexes agree: each floating listing is free or
    /// floored (not both), as its floor binds at the sorted reference.
    pub fn check_floating(&self) -> Result<(), String> {
        let count =
            |m: &BTreeMap<Market, BTreeSet<_>>| m.values().map(BTreeSet::len).sum::<usize>();
        let (all, free) = (count(&self.floating), count(&self.free));
        let floored: usize = self.floored.values().map(BTreeSet::len).sum();
        if all != free + floored {
            return Err(format!(
                "book: {all} floating listings but {free} free and {floored} floored"
            ));
        }
        Ok(())
    }

    /// Whether a market has any active listing (floating ones whatever the
    /// reference).
    pub fn has_market(&self, m: Market) -> bool {
        self.fixed.contains_key(&m) || self.floating.contains_key(&m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_behave_and_serialize_as_the_btree_set() {
        let mut levels = Levels::default();
        let mut set: BTreeSet<(Price, ListingId)> = BTreeSet::new();
        let mut x: u64 = 3;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            // Few distinct values, some written with another scale (7.5 and
            // 7.50 are one level, each entry keeping its own).
            let cents = 700 + (r % 40) as i64;
            let p = if r.is_multiple_of(5) && cents % 10 == 0 {
                Price::computed(Decimal::new(cents / 10, 1))
            } else {
                Price::computed(Decimal::new(cents, 2))
            };
            let id = ListingId((r >> 8) % 2_000);
            if (r >> 20) % 3 < 2 {
                // One price per listing, as in the book.
                if !set.iter().any(|(_, i)| *i == id) {
                    assert_eq!(levels.insert(p, id), set.insert((p, id)));
                }
            } else if let Some(&(q, i)) = set.iter().find(|(_, i)| *i == id) {
                assert_eq!(levels.remove(q, i), set.remove(&(q, i)));
            } else {
                assert!(!levels.remove(p, id));
            }
            assert_eq!(levels.len(), set.len());
            assert_eq!(levels.contains(p, id), set.contains(&(p, id)));
        }
        let want: Vec<_> = set.iter().copied().collect();
        assert_eq!(levels.iter().collect::<Vec<_>>(), want);
        let old = bincode::serialize(&set).unwrap_or_default();
        let new = bincode::serialize(&levels).unwrap_or_default();
        assert_eq!(old, new);
        let back: Levels = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, levels);
        assert_eq!(bincode::serialize(&back).unwrap_or_default(), old);
    }
}
