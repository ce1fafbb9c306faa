//! Listings (SPEC §7); their book is `book.rs`.

use serde::{Deserialize, Serialize};

use crate::ids::{ListingId, MethodId, Timestamp, UserId};
use crate::money::{Asset, CoinAmount, Fiat, FiatAmount};
use crate::pricing::Pricing;

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
    /// Fixed, or floating over the market's reference (SPEC §22).
    pub pricing: Pricing,
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

impl Listing {
    /// The market it trades in.
    pub fn market(&self) -> (Asset, Fiat) {
        (self.asset, self.fiat)
    }
}
