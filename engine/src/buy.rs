//! Resting buy orders (SPEC §8): a buy that no listing could fill, waiting in
//! the book until a fitting listing appears or it expires.

use serde::{Deserialize, Serialize};

use crate::ids::{BuyOrderId, Timestamp, TradeId, UserId};
use crate::money::{Asset, Fiat, FiatAmount, Price};
use crate::users::MethodKind;

/// What is left to buy, in the unit the buyer asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remaining {
    /// Coin still wanted.
    Coin(crate::money::CoinAmount),
    /// Fiat still to spend.
    Fiat(FiatAmount),
}

impl Remaining {
    /// The value, for events and views.
    pub fn value(self) -> rust_decimal::Decimal {
        match self {
            Remaining::Coin(c) => c.value(),
            Remaining::Fiat(f) => f.value(),
        }
    }
}

/// A resting buy's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuyOrderState {
    /// Waiting in the book.
    Resting,
    /// Fully filled.
    Filled,
    /// Its time ran out.
    Expired,
    /// The buyer withdrew it.
    Cancelled,
}

/// A buy waiting in the book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyOrder {
    /// Its id; lower is older, and older fills first.
    pub id: BuyOrderId,
    /// Who buys.
    pub buyer: UserId,
    /// The coin.
    pub asset: Asset,
    /// The fiat.
    pub fiat: Fiat,
    /// What is still wanted.
    pub remaining: Remaining,
    /// Highest acceptable price.
    pub max_price: Option<Price>,
    /// Accepted payment kinds; empty means any.
    pub methods: Vec<MethodKind>,
    /// When it was placed.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Its state.
    pub state: BuyOrderState,
    /// Trades that filled it so far.
    pub fills: Vec<TradeId>,
}
