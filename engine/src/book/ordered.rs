//! [`Ordered`]: a market's listings merged lazily in matching order, from
//! the book's fixed, premium, floor and ceiling streams (see the parent
//! module's docs for why the merge is exact), from the best price or from a
//! page's place.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet, btree_set};
use std::iter::Peekable;

use super::{Book, BookKey, LevelIter, Market};
use crate::ids::ListingId;
use crate::listing::Listing;
use crate::money::Price;
use crate::per_user::IdBuild;
use crate::pricing::{Pricing, effective_price, raw_price};
use crate::slab::IdSlab;

impl Book {
    /// A market's active listings in matching order with their effective
    /// prices. `reference` is `None` when the market has no fresh reference:
    /// floating listings then do not match.
    ///
    /// With `from`, it starts there: no listing whose effective price is
    /// below `from` comes out, and each stream is entered at the first key
    /// that may hold one at or above it (a page of the book costs its page,
    /// not the book before it).
    pub fn ordered<'a>(
        &'a self,
        m: Market,
        reference: Option<Price>,
        listings: &'a IdSlab<ListingId, Box<Listing>>,
        with_fixed: bool,
        from: Option<Price>,
    ) -> Ordered<'a> {
        debug_assert!(
            reference.is_none() || reference == self.sorted_at.get(&m).copied(),
            "the book's floors are sorted at another reference"
        );
        let floating = reference.and(self.free.get(&m));
        let floored = reference.and(self.floored.get(&m));
        let ceilings = reference.and(self.ceilings.get(&m));
        // A free listing's effective price is at most its raw price, which
        // rises with the premium; a floored one's is its floor, a capped
        // one's at most its ceiling.
        let premium_from = match (from, reference) {
            (Some(p), Some(r)) => floating.map_or(0, |s| first_premium_at(s, r, p)),
            _ => i32::MIN,
        };
        let by_price = |s: &'a BTreeSet<(Price, ListingId)>| match from {
            Some(p) => s.range((p, ListingId(0))..),
            None => s.range(..),
        };
        Ordered {
            only_fixed: floating.is_none() && floored.is_none() && ceilings.is_none(),
            fixed: LevelIter::new(self.fixed.get(&m).filter(|_| with_fixed), from).peekable(),
            premium: floating
                .map(|s| s.range((premium_from, ListingId(0))..))
                .into_iter()
                .flatten()
                .peekable(),
            floored: floored.map(by_price).into_iter().flatten().peekable(),
            ceiling: ceilings.map(by_price).into_iter().flatten().peekable(),
            reference,
            listings,
            floating_set: floating,
            heap: BinaryHeap::new(),
            pulled: HashSet::default(),
        }
    }
}

type Stream<'a, K> =
    Peekable<std::iter::Flatten<std::option::IntoIter<btree_set::Range<'a, (K, ListingId)>>>>;

/// The lowest premium in `set` whose raw price at `reference` is at least
/// `p` (raw prices rise with the premium): a binary search over premiums,
/// past the last one when none is.
fn first_premium_at(set: &BTreeSet<(i32, ListingId)>, reference: Price, p: Price) -> i32 {
    let (Some(&(first, _)), Some(&(last, _))) = (set.first(), set.last()) else {
        return i32::MAX;
    };
    let (mut lo, mut hi) = (i64::from(first), i64::from(last) + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let bps = i32::try_from(mid).unwrap_or(i32::MAX);
        // No raw price (an overflow) is past any page.
        if raw_price(reference, bps).is_none_or(|raw| raw >= p) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    i32::try_from(lo).unwrap_or(i32::MAX)
}

/// A market's listings in matching order (see the module docs).
pub struct Ordered<'a> {
    /// No floating stream: the fixed one is in matching order by itself,
    /// with no heap between.
    only_fixed: bool,
    fixed: Peekable<LevelIter<'a>>,
    premium: Stream<'a, i32>,
    floored: Stream<'a, Price>,
    ceiling: Stream<'a, Price>,
    reference: Option<Price>,
    listings: &'a IdSlab<ListingId, Box<Listing>>,
    /// The premium index itself, to look past the head's premium.
    floating_set: Option<&'a BTreeSet<(i32, ListingId)>>,
    heap: BinaryHeap<Reverse<BookKey>>,
    pulled: HashSet<ListingId, IdBuild>,
}

/// Which stream holds the lowest bound.
#[derive(Clone, Copy)]
enum Head {
    Fixed,
    Premium,
    Floored,
    Ceiling,
}

impl Ordered<'_> {
    /// The lowest bound (a whole key) of the three streams' heads, and
    /// which stream it is.
    fn lowest_head(&mut self) -> Option<(BookKey, Head)> {
        let mut best: Option<(BookKey, Head)> = None;
        let mut consider = |k: Option<BookKey>, h: Head| {
            if let Some(k) = k
                && best.is_none_or(|(b, _)| k < b)
            {
                best = Some((k, h));
            }
        };
        consider(self.fixed.peek().copied(), Head::Fixed);
        let premium = match (self.premium.peek(), self.reference) {
            (Some(&&(bps, id)), Some(r)) => raw_price(r, bps).map(|raw| {
                // Later listings of this premium are younger; a later premium
                // may round to the same raw price with any id.
                let next_same = self
                    .floating_set
                    .and_then(|s| s.range((bps + 1, ListingId(0))..).next())
                    .and_then(|(b, _)| raw_price(r, *b))
                    .is_some_and(|next| next == raw);
                (raw, if next_same { ListingId(0) } else { id })
            }),
            _ => None,
        };
        consider(premium, Head::Premium);
        // A floored listing trades at its floor (never above its ceiling).
        consider(self.floored.peek().map(|(p, id)| (*p, *id)), Head::Floored);
        consider(self.ceiling.peek().map(|(p, id)| (*p, *id)), Head::Ceiling);
        best
    }

    /// Moves the head of `h` into the heap at its effective price.
    fn pull(&mut self, h: Head) {
        let id = match h {
            Head::Fixed => self.fixed.next().map(|(_, id)| id),
            Head::Premium => self.premium.next().map(|(_, id)| *id),
            Head::Floored => self.floored.next().map(|(_, id)| *id),
            Head::Ceiling => self.ceiling.next().map(|(_, id)| *id),
        };
        let Some(id) = id else { return };
        // A fixed listing is in no other stream, so it cannot come twice;
        // a floating one may come from the premium, floor and ceiling ones.
        if !matches!(h, Head::Fixed) && !self.pulled.insert(id) {
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
        if self.only_fixed {
            // As `pull` would: at the listing's own price, skipping none
            // that the heap would keep.
            for (_, id) in self.fixed.by_ref() {
                if let Some(Pricing::Fixed(p)) = self.listings.get(&id).map(|l| l.pricing) {
                    return Some((p, id));
                }
            }
            return None;
        }
        loop {
            let head = self.lowest_head();
            match (self.heap.peek(), head) {
                // Nothing left in any stream can come before the heap's best.
                (Some(Reverse(top)), Some((bound, _))) if *top < bound => {
                    return self.heap.pop().map(|Reverse(k)| k);
                }
                (Some(_), None) => return self.heap.pop().map(|Reverse(k)| k),
                (_, Some((_, h))) => self.pull(h),
                (None, None) => return None,
            }
        }
    }
}
