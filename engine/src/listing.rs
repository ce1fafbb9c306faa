//! Listings (SPEC §7) and the in-memory book of active ones (SPEC §8).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{ListingId, MethodId, Timestamp, UserId};
use crate::money::{Asset, CoinAmount, Fiat, FiatAmount, Price};

/// Why a listing closed by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// Every coin was matched.
    FullyTraded,
    /// What was left was worth less than the per-trade minimum; it went back
    /// to the seller's `available`.
    BelowMinimum,
}

/// A listing's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListingState {
    /// In the book, matchable.
    Active,
    /// Out of the book; the remainder stays escrowed.
    Paused,
    /// Closed by itself; coin from a cancelled trade reopens it.
    Closed(CloseReason),
    /// Cancelled by the seller; final.
    Cancelled,
}

impl ListingState {
    /// The state's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            ListingState::Active => "ACTIVE",
            ListingState::Paused => "PAUSED",
            ListingState::Closed(_) => "CLOSED",
            ListingState::Cancelled => "CANCELLED",
        }
    }

    /// Active or paused: its remainder is escrowed (SPEC §4 L2).
    pub fn is_live(self) -> bool {
        matches!(self, ListingState::Active | ListingState::Paused)
    }
}

/// A seller's standing offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Its id; also its age (lower is older).
    pub id: ListingId,
    /// Who sells.
    pub seller: UserId,
    /// The coin.
    pub asset: Asset,
    /// The fiat.
    pub fiat: Fiat,
    /// Fiat per coin.
    pub price: Price,
    /// Coin escrowed at publication.
    pub total: CoinAmount,
    /// Coin not yet matched; escrowed while the listing is live.
    pub remaining: CoinAmount,
    /// Smallest trade, fiat.
    pub min_fiat: FiatAmount,
    /// Largest trade, fiat.
    pub max_fiat: FiatAmount,
    /// Accepted methods (the seller's bound ones).
    pub methods: Vec<MethodId>,
    /// Payment window of its trades.
    pub payment_window_ms: i64,
    /// Free text for buyers.
    pub terms: String,
    /// Its trades on a channel release when the channel proves payment.
    pub release_on_verified: bool,
    /// When it was published.
    pub created_at: Timestamp,
    /// Its state.
    pub state: ListingState,
    /// Open trades from it (for display; escrow is on each trade).
    pub open_trades: u32,
}

/// The book key: lowest price first, then oldest (lowest id).
pub type BookKey = (Price, ListingId);

/// Active listings per (asset, fiat), ordered for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    sides: BTreeMap<(Asset, Fiat), BTreeSet<BookKey>>,
}

impl Listing {
    /// The market it trades in.
    pub fn market(&self) -> (Asset, Fiat) {
        (self.asset, self.fiat)
    }

    /// Its place in the book.
    pub fn book_key(&self) -> BookKey {
        (self.price, self.id)
    }
}

impl Book {
    /// Adds an active listing.
    pub fn insert(&mut self, market: (Asset, Fiat), key: BookKey) {
        let fresh = self.sides.entry(market).or_default().insert(key);
        debug_assert!(fresh, "listing {} was already in the book", key.1);
    }

    /// Removes a listing (no-op if absent).
    pub fn remove(&mut self, market: (Asset, Fiat), key: BookKey) {
        if let Some(side) = self.sides.get_mut(&market) {
            side.remove(&key);
            if side.is_empty() {
                self.sides.remove(&market);
            }
        }
    }

    /// Active listings of a market in matching order.
    pub fn side(&self, asset: Asset, fiat: Fiat) -> impl Iterator<Item = &BookKey> {
        self.sides.get(&(asset, fiat)).into_iter().flatten()
    }

    /// Active listings of a market starting after `after` (for paging).
    pub fn side_after(
        &self,
        asset: Asset,
        fiat: Fiat,
        after: Option<BookKey>,
    ) -> impl Iterator<Item = &BookKey> {
        use std::ops::Bound::{Excluded, Unbounded};
        let lower = after.map_or(Unbounded, Excluded);
        self.sides
            .get(&(asset, fiat))
            .into_iter()
            .flat_map(move |s| s.range((lower, Unbounded)))
    }

    /// Whether the listing is in the book.
    pub fn contains(&self, listing: &Listing) -> bool {
        self.sides
            .get(&(listing.asset, listing.fiat))
            .is_some_and(|s| s.contains(&(listing.price, listing.id)))
    }

    /// How many listings are in the book, across markets.
    pub fn len(&self) -> usize {
        self.sides.values().map(BTreeSet::len).sum()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.sides.is_empty()
    }
}
