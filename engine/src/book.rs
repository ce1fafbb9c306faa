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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet, btree_set};
use std::iter::Peekable;

use serde::{Deserialize, Serialize};

use crate::ids::ListingId;
use crate::listing::Listing;
use crate::money::{Asset, Fiat, Price};
use crate::pricing::{Pricing, effective_price, raw_price};

/// A market: the coin and the fiat.
pub type Market = (Asset, Fiat);

/// A position in the book: effective price, then listing (its age).
pub type BookKey = (Price, ListingId);

/// Active listings per market, indexed for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    fixed: BTreeMap<Market, BTreeSet<(Price, ListingId)>>,
    floating: BTreeMap<Market, BTreeSet<(i32, ListingId)>>,
    ceilings: BTreeMap<Market, BTreeSet<(Price, ListingId)>>,
}

impl Book {
    /// Adds an active listing.
    pub fn insert(&mut self, l: &Listing) {
        self.add(l.market(), l.id, l.pricing);
    }

    /// Adds an active listing by its parts.
    pub fn add(&mut self, m: Market, id: ListingId, pricing: Pricing) {
        let fresh = match pricing {
            Pricing::Fixed(price) => self.fixed.entry(m).or_default().insert((price, id)),
            Pricing::Floating(f) => {
                if let Some(c) = f.ceiling {
                    self.ceilings.entry(m).or_default().insert((c, id));
                }
                self.floating
                    .entry(m)
                    .or_default()
                    .insert((f.premium_bps, id))
            }
        };
        debug_assert!(fresh, "listing {id} was already in the book");
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
            Pricing::Fixed(price) => take(&mut self.fixed, m, &(price, id)),
            Pricing::Floating(f) => {
                take(&mut self.floating, m, &(f.premium_bps, id));
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
                .is_some_and(|s| s.contains(&(price, l.id))),
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
        self.fixed.values().map(BTreeSet::len).sum::<usize>() + count(&self.floating)
    }

    /// Floating listings with a ceiling, across markets (for the checks).
    pub fn ceiling_count(&self) -> usize {
        self.ceilings.values().map(BTreeSet::len).sum()
    }

    /// A market's floating listings, in premium order.
    pub fn floating_ids(&self, m: Market) -> impl Iterator<Item = ListingId> + '_ {
        self.floating
            .get(&m)
            .into_iter()
            .flatten()
            .map(|(_, id)| *id)
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.floating.is_empty()
    }

    /// Whether a market has any active listing (floating ones whatever the
    /// reference).
    pub fn has_market(&self, m: Market) -> bool {
        self.fixed.contains_key(&m) || self.floating.contains_key(&m)
    }

    /// A market's active listings in matching order with their effective
    /// prices. `reference` is `None` when the market has no fresh reference:
    /// floating listings then do not match.
    pub fn ordered<'a>(
        &'a self,
        m: Market,
        reference: Option<Price>,
        listings: &'a BTreeMap<ListingId, Box<Listing>>,
    ) -> Ordered<'a> {
        let floating = reference.and(self.floating.get(&m));
        let ceilings = reference.and(self.ceilings.get(&m));
        Ordered {
            fixed: self
                .fixed
                .get(&m)
                .map(|s| s.iter())
                .into_iter()
                .flatten()
                .peekable(),
            premium: floating.map(|s| s.iter()).into_iter().flatten().peekable(),
            ceiling: ceilings.map(|s| s.iter()).into_iter().flatten().peekable(),
            reference,
            listings,
            heap: BinaryHeap::new(),
            pulled: HashSet::new(),
        }
    }
}

type Stream<'a, K> =
    Peekable<std::iter::Flatten<std::option::IntoIter<btree_set::Iter<'a, (K, ListingId)>>>>;

/// A market's listings in matching order (see the module docs).
pub struct Ordered<'a> {
    fixed: Stream<'a, Price>,
    premium: Stream<'a, i32>,
    ceiling: Stream<'a, Price>,
    reference: Option<Price>,
    listings: &'a BTreeMap<ListingId, Box<Listing>>,
    heap: BinaryHeap<Reverse<BookKey>>,
    pulled: HashSet<ListingId>,
}

/// Which stream holds the lowest bound.
#[derive(Clone, Copy)]
enum Head {
    Fixed,
    Premium,
    Ceiling,
}

impl Ordered<'_> {
    /// The lowest bound of the three streams' heads, and which it is.
    fn lowest_head(&mut self) -> Option<(Price, Head)> {
        let mut best: Option<(Price, Head)> = None;
        let mut consider = |p: Option<Price>, h: Head| {
            if let Some(p) = p
                && best.is_none_or(|(b, _)| p < b)
            {
                best = Some((p, h));
            }
        };
        consider(self.fixed.peek().map(|(p, _)| *p), Head::Fixed);
        let raw = match (self.premium.peek(), self.reference) {
            (Some((bps, _)), Some(r)) => raw_price(r, *bps),
            _ => None,
        };
        consider(raw, Head::Premium);
        consider(self.ceiling.peek().map(|(p, _)| *p), Head::Ceiling);
        best
    }

    /// Moves the head of `h` into the heap at its effective price.
    fn pull(&mut self, h: Head) {
        let id = match h {
            Head::Fixed => self.fixed.next().map(|(_, id)| *id),
            Head::Premium => self.premium.next().map(|(_, id)| *id),
            Head::Ceiling => self.ceiling.next().map(|(_, id)| *id),
        };
        let Some(id) = id else { return };
        if !self.pulled.insert(id) {
            return;
        }
        let price = match (self.listings.get(&id).map(|l| l.pricing), self.reference) {
            (Some(Pricing::Fixed(p)), _) => Some(p),
            (Some(Pricing::Floating(f)), Some(r)) => effective_price(r, &f),
            _ => None,
        };
        if let Some(p) = price {
            self.heap.push(Reverse((p, id)));
        }
    }
}

impl Iterator for Ordered<'_> {
    type Item = BookKey;

    fn next(&mut self) -> Option<BookKey> {
        loop {
            let head = self.lowest_head();
            match (self.heap.peek(), head) {
                // Nothing left in any stream can come before the heap's best
                // (equal bounds are pulled first: an older listing may tie).
                (Some(Reverse((p, _))), Some((bound, _))) if *p < bound => {
                    return self.heap.pop().map(|Reverse(k)| k);
                }
                (Some(_), None) => return self.heap.pop().map(|Reverse(k)| k),
                (_, Some((_, h))) => self.pull(h),
                (None, None) => return None,
            }
        }
    }
}
