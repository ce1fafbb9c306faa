//! Read-only views for the shells: lookups, the book with seller records,
//! and per-user pages. Nothing here changes state.

use crate::appeal::Appeal;
use crate::book::{BookKey, UnpricedKey};
use crate::buy::BuyOrder;
use crate::engine::Engine;
use crate::ids::{BuyOrderId, ListingId, Timestamp, TradeId, UserId};
use crate::listing::Listing;
use crate::merchant::Merchant;
use crate::money::{Asset, Fiat};
use crate::record::SellerRecord;
use crate::trade::Trade;

/// A listing as a buyer browses it (SPEC §8).
#[derive(Debug, Clone)]
pub struct BookEntry<'a> {
    /// The listing.
    pub listing: &'a Listing,
    /// Its effective price now (SPEC §22).
    pub price: crate::money::Price,
    /// Its seller's 30-day record.
    pub record: SellerRecord,
}

impl Engine {
    /// A listing by id.
    pub fn listing(&self, id: ListingId) -> Option<&Listing> {
        self.state.listings.get(&id).map(|l| &**l)
    }

    /// A trade by id.
    pub fn trade(&self, id: TradeId) -> Option<&Trade> {
        self.state.trades.get(&id).map(|t| &**t)
    }

    /// The appeal on a trade.
    pub fn appeal(&self, trade: TradeId) -> Option<&Appeal> {
        self.state.appeals.get(&trade)
    }

    /// Payment anomalies after `after`, oldest first; only open ones unless
    /// `include_resolved` (SPEC §19).
    pub fn anomalies(
        &self,
        include_resolved: bool,
        after: Option<crate::ids::AnomalyId>,
    ) -> Box<dyn Iterator<Item = &crate::payment::Anomaly> + '_> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        if include_resolved {
            Box::new(
                self.state
                    .anomalies
                    .range((from, Unbounded))
                    .map(|(_, a)| a),
            )
        } else {
            Box::new(
                self.state
                    .open_anomalies
                    .range((from, Unbounded))
                    .filter_map(|id| self.state.anomalies.get(id)),
            )
        }
    }

    /// Reconciliation mistakes after `after`, oldest first; only open ones
    /// unless `include_handled` (SPEC §20).
    pub fn recon_mistakes(
        &self,
        include_handled: bool,
        after: Option<crate::ids::MistakeId>,
    ) -> Box<dyn Iterator<Item = &crate::recon::Mistake> + '_> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        if include_handled {
            Box::new(self.state.mistakes.range((from, Unbounded)).map(|(_, m)| m))
        } else {
            Box::new(
                self.state
                    .open_mistakes
                    .range((from, Unbounded))
                    .filter_map(|id| self.state.mistakes.get(id)),
            )
        }
    }

    /// A reconciliation mistake by id.
    pub fn recon_mistake(&self, id: crate::ids::MistakeId) -> Option<&crate::recon::Mistake> {
        self.state.mistakes.get(&id)
    }

    /// A payment anomaly by id.
    pub fn anomaly(&self, id: crate::ids::AnomalyId) -> Option<&crate::payment::Anomaly> {
        self.state.anomalies.get(&id)
    }

    /// A buy order by id.
    pub fn buy_order(&self, id: BuyOrderId) -> Option<&BuyOrder> {
        self.state.buy_orders.get(&id)
    }

    /// A merchant by user id.
    pub fn merchant(&self, user: UserId) -> Option<&Merchant> {
        self.state.merchants.get(&user)
    }

    /// The fund-password hash and its version, for the shell to verify a
    /// password against off the writer.
    pub fn fund_password(&self, user: UserId) -> Option<(&str, u32)> {
        let f = self.user(user)?.fund_password.as_ref()?;
        Some((f.hash.as_str(), f.version))
    }

    /// A seller's record over the configured window before `now`.
    pub fn seller_record(&self, seller: UserId, now: Timestamp) -> SellerRecord {
        let window = self.config.seller_record_window_ms;
        self.state.seller_history.get(&seller).map_or(
            SellerRecord {
                completed: 0,
                completion_rate: None,
                median_release_ms: None,
            },
            |h| h.record(now, window),
        )
    }

    /// Up to `limit` active listings of a market in matching order, after
    /// `after` (a page cursor), each with its seller's record.
    pub fn book_page(
        &self,
        asset: Asset,
        fiat: Fiat,
        after: Option<BookKey>,
        limit: usize,
        now: Timestamp,
    ) -> Vec<BookEntry<'_>> {
        let ordered = match after {
            Some((price, _)) => self.ordered_from((asset, fiat), now, price),
            None => self.ordered((asset, fiat), now),
        };
        ordered
            .filter(|key| after.is_none_or(|a| *key > a))
            .take(limit)
            .filter_map(|(price, id)| self.state.listings.get(&id).map(|l| (price, &**l)))
            .map(|(price, listing)| BookEntry {
                listing,
                price,
                record: self.seller_record(listing.seller, now),
            })
            .collect()
    }

    /// A market's floating listings that are not matching because its
    /// reference is missing or stale (the book says why, SPEC §22), after
    /// `after` (a page cursor), in premium order (their matching order once
    /// priced), each with its place in that order.
    pub fn unpriced_page(
        &self,
        asset: Asset,
        fiat: Fiat,
        after: Option<UnpricedKey>,
        limit: usize,
        now: Timestamp,
    ) -> Vec<(UnpricedKey, &Listing)> {
        if self.fresh_reference((asset, fiat), now).is_some() {
            return Vec::new();
        }
        self.state
            .book
            .floating_after((asset, fiat), after)
            .take(limit)
            .filter_map(|key| self.state.listings.get(&key.1).map(|l| (key, &**l)))
            .collect()
    }

    /// Up to `limit` of a user's trades (either side), newest first, before `before`.
    pub fn trades_of(&self, user: UserId, before: Option<TradeId>, limit: usize) -> Vec<&Trade> {
        let hi = before.unwrap_or(TradeId(u64::MAX));
        self.state
            .user_trades
            .below(user, hi)
            .rev()
            .take(limit)
            .filter_map(|id| self.state.trades.get(&id).map(|t| &**t))
            .collect()
    }

    /// Up to `limit` of a user's listings, newest first, before `before`.
    pub fn listings_of(
        &self,
        user: UserId,
        before: Option<ListingId>,
        limit: usize,
    ) -> Vec<&Listing> {
        let hi = before.unwrap_or(ListingId(u64::MAX));
        self.state
            .user_listings
            .below(user, hi)
            .rev()
            .take(limit)
            .filter_map(|id| self.state.listings.get(&id).map(|l| &**l))
            .collect()
    }

    /// Up to `limit` of a user's buy orders, newest first, before `before`.
    pub fn buy_orders_of(
        &self,
        user: UserId,
        before: Option<BuyOrderId>,
        limit: usize,
    ) -> Vec<&BuyOrder> {
        let hi = before.unwrap_or(BuyOrderId(u64::MAX));
        self.state
            .user_buy_orders
            .below(user, hi)
            .rev()
            .take(limit)
            .filter_map(|id| self.state.buy_orders.get(&id))
            .collect()
    }
}
