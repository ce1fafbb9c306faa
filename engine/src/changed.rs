//! Which records a command changed (like raft-rs's `Ready`): marked where
//! trades, appeals, listings and buy orders are mutated, read by the shell
//! after each command to write the history of those that ended.

use crate::appeal::Appeal;
use crate::buy::BuyOrder;
use crate::engine::{Engine, invariant};
use crate::ids::{BuyOrderId, ListingId, TradeId};
use crate::listing::Listing;
use crate::trade::Trade;

/// The trades (with their appeals), listings and buy orders the last
/// applied command changed, as the engine knows them (like raft-rs's
/// `Ready`): the shell reads them with [`Engine::changed`] after each
/// command to write the final state of those that ended, without inferring
/// it from events. An id may appear more than once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Trades changed, or whose appeal changed.
    pub trades: Vec<TradeId>,
    /// Listings changed.
    pub listings: Vec<ListingId>,
    /// Buy orders changed.
    pub orders: Vec<BuyOrderId>,
}

impl Changed {
    pub(crate) fn clear(&mut self) {
        self.trades.clear();
        self.listings.clear();
        self.orders.clear();
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.trades.is_empty() && self.listings.is_empty() && self.orders.is_empty()
    }
}

impl Engine {
    /// The records the last applied command changed (see [`Changed`]).
    pub fn changed(&self) -> &Changed {
        &self.changed
    }

    /// A trade being changed (marked in [`Changed`]).
    pub(crate) fn trade_mut(&mut self, id: TradeId) -> &mut Trade {
        self.changed.trades.push(id);
        invariant(self.state.trades.get_mut(&id), "trade vanished").as_mut()
    }

    /// A trade's appeal being changed (its trade marked in [`Changed`]).
    pub(crate) fn appeal_mut(&mut self, id: TradeId) -> &mut Appeal {
        self.changed.trades.push(id);
        invariant(self.state.appeals.get_mut(&id), "appeal vanished")
    }

    /// A listing being changed (marked in [`Changed`]).
    pub(crate) fn listing_mut(&mut self, id: ListingId) -> &mut Listing {
        self.changed.listings.push(id);
        invariant(self.state.listings.get_mut(&id), "listing vanished").as_mut()
    }

    /// A buy order being changed (marked in [`Changed`]).
    pub(crate) fn order_mut(&mut self, id: BuyOrderId) -> &mut BuyOrder {
        self.changed.orders.push(id);
        invariant(self.state.buy_orders.get_mut(&id), "buy order vanished")
    }
}
