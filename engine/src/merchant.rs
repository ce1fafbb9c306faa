//! Partner merchants (合作商家) and fast-match selection (SPEC §9).

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, UserId};
use crate::money::{Asset, Fiat, FiatAmount, Price};
use crate::users::MethodKind;

/// A validated price quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The coin.
    pub asset: Asset,
    /// The fiat.
    pub fiat: Fiat,
    /// Fiat per coin the merchant pays.
    pub bid: Price,
    /// Smallest trade, fiat.
    pub min_fiat: FiatAmount,
    /// Largest trade, fiat.
    pub max_fiat: FiatAmount,
}

/// A validated capacity declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Bids per coin.
    pub quotes: Vec<Quote>,
    /// Payment kinds the merchant pays with.
    pub methods: Vec<MethodKind>,
    /// Most fiat owed across open trades.
    pub max_outstanding_fiat: FiatAmount,
}

/// A registered merchant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    /// Declared capacity, once set.
    pub capacity: Option<Capacity>,
    /// Takes fast sells only while online.
    pub online: bool,
    /// Fiat owed across its open fast-match trades.
    pub outstanding_fiat: FiatAmount,
    /// When it was last given a trade (`None`: never, the longest idle).
    pub last_assigned_at: Option<Timestamp>,
}

/// The order merchants are picked in: highest bid, then least outstanding,
/// then longest idle, then user id (so the choice is deterministic).
pub type SelectionKey = (
    std::cmp::Reverse<Price>,
    FiatAmount,
    Option<Timestamp>,
    UserId,
);

impl Merchant {
    /// The quote that fits a sale of `fiat_for(bid)` in this market, if any.
    pub fn quote_for(&self, asset: Asset, fiat: Fiat) -> Option<&Quote> {
        self.capacity
            .as_ref()?
            .quotes
            .iter()
            .find(|q| q.asset == asset && q.fiat == fiat)
    }
}
