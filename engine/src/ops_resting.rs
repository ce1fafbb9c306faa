//! Resting buys (SPEC §8): placed, offered the book in matching order (at
//! once, when a listing comes or grows, at a new reference for floating
//! listings, and when a buyer's open trades drop below the bound), filled by
//! several trades, expired and cancelled.

use crate::book::BookKey;
use crate::buy::{BuyOrder, BuyOrderState, Remaining};
use crate::engine::{Engine, invariant};
use crate::event::EventKind;
use crate::ids::{BuyOrderId, ListingId, Timestamp, UserId};
use crate::listing::ListingState;
use crate::money::FiatAmount;
use crate::ops_buy::{BuyTerms, FIRST_PASS};
use crate::rejection::Rejection;
use crate::timers::Deadline;

impl Engine {
    /// Places a resting buy: fills what the book can give now, rests the rest.
    pub(crate) fn rest_buy(
        &mut self,
        buyer: UserId,
        terms: BuyTerms,
        want: Remaining,
        rest_ms: i64,
        now: Timestamp,
    ) {
        let id = BuyOrderId(self.next_id());
        let order = BuyOrder {
            id,
            buyer,
            asset: terms.asset,
            fiat: terms.fiat,
            remaining: want,
            max_price: terms.max_price,
            methods: terms.methods.clone(),
            created_at: now,
            expires_at: now.plus_ms(rest_ms),
            state: BuyOrderState::Resting,
            fills: Vec::new(),
        };
        self.changed.orders.push(id);
        self.state.buy_orders.insert(id, order);
        self.state.user_buy_orders.insert(buyer, id);
        self.user_mut(buyer).resting_buys += 1;
        self.state
            .resting
            .entry((terms.asset, terms.fiat))
            .or_default()
            .insert(id);
        self.state
            .deadlines
            .add(now.plus_ms(rest_ms), Deadline::BuyOrderExpires(id));
        self.fill_from_book(id, now, false);
        if self.order_resting(id) {
            self.emit_order(id, now);
        }
    }

    /// Offers a resting order the book in matching order (only its floating
    /// listings with `floating_only`: after a new reference, the fixed ones
    /// were offered already), until it is filled, the prices pass its
    /// maximum, or `match_scan_max` listings were examined (so an order
    /// nothing can fill costs a bounded walk, at each new reference too).
    /// The walk is taken in two passes — a few listings, then, if the order
    /// still rests, the rest of the bound at once — so such an order costs
    /// one walk, not one per listing.
    pub(crate) fn fill_from_book(&mut self, id: BuyOrderId, now: Timestamp, floating_only: bool) {
        let Some(o) = self.state.buy_orders.get(&id) else {
            return;
        };
        if o.state != BuyOrderState::Resting
            || o.expires_at <= now
            || self.require_may_buy(o.buyer, now).is_err()
        {
            return;
        }
        let (market, max_price) = ((o.asset, o.fiat), o.max_price);
        let terms = self.order_terms(o);
        let mut last: Option<BookKey> = None;
        let mut left = self.config.match_scan_max;
        for batch in [FIRST_PASS, usize::MAX] {
            let take = batch.min(left);
            // Fills change the book, so a pass resumes after the last key.
            let keys: Vec<BookKey> = self
                .ordered_in(market, now, floating_only)
                .filter(|k| last.is_none_or(|l| *k > l))
                .take_while(|k| max_price.is_none_or(|max| k.0 <= max))
                .take(take)
                .collect();
            left -= keys.len();
            for key in &keys {
                if !self.order_resting(id) {
                    return;
                }
                self.offer(id, &terms, key.1, now);
            }
            if keys.len() < take || left == 0 {
                return;
            }
            last = keys.last().copied();
        }
    }

    /// A resting order's terms, as its fills are judged.
    pub(crate) fn order_terms(&self, o: &BuyOrder) -> BuyTerms {
        let spec = invariant(
            self.config.assets.get(&o.asset),
            "resting order on unknown asset",
        );
        BuyTerms {
            asset: o.asset,
            fiat: o.fiat,
            scale: spec.scale,
            max_price: o.max_price,
            methods: o.methods.clone(),
        }
    }

    pub(crate) fn order_resting(&self, id: BuyOrderId) -> bool {
        self.state
            .buy_orders
            .get(&id)
            .is_some_and(|o| o.state == BuyOrderState::Resting)
    }

    pub(crate) fn emit_order(&mut self, id: BuyOrderId, now: Timestamp) {
        let o = invariant(self.state.buy_orders.get(&id), "buy order vanished");
        let kind = EventKind::BuyOrderChanged {
            order: id,
            buyer: o.buyer,
            state: o.state,
            remaining: o.remaining.value(),
        };
        self.emit(now, kind);
    }

    /// Fills resting buy `order` from `listing` as far as both allow.
    pub(crate) fn try_fill(&mut self, order: BuyOrderId, listing: ListingId, now: Timestamp) {
        let o = invariant(self.state.buy_orders.get(&order), "buy order vanished");
        let terms = self.order_terms(o);
        self.offer(order, &terms, listing, now);
    }

    /// Offers `listing` to the resting `order` whose terms are `terms`.
    pub(crate) fn offer(
        &mut self,
        order: BuyOrderId,
        terms: &BuyTerms,
        listing: ListingId,
        now: Timestamp,
    ) {
        let o = invariant(self.state.buy_orders.get(&order), "buy order vanished");
        let l = invariant(self.state.listings.get(&listing), "listing vanished");
        if o.expires_at <= now || self.require_may_buy(o.buyer, now).is_err() {
            return;
        }
        let Some(price) = self.effective_price(l, now) else {
            return;
        };
        let Some(fill) = self.fill_for(o.buyer, terms, o.remaining, false, (l, price)) else {
            return;
        };
        let buyer = o.buyer;
        let trade = self.open_listing_trade(listing, buyer, fill, Some(order), now);
        let o = self.order_mut(order);
        o.fills.push(trade);
        o.remaining = match o.remaining {
            Remaining::Coin(c) => {
                Remaining::Coin(invariant(c.checked_sub(fill.coin), "over-filled buy order"))
            }
            Remaining::Fiat(f) => Remaining::Fiat(f.saturating_sub(fill.fiat)),
        };
        let done = match o.remaining {
            Remaining::Coin(c) => c.is_zero(),
            Remaining::Fiat(f) => f == FiatAmount::ZERO,
        };
        if done {
            self.end_order(order, BuyOrderState::Filled, now);
        } else {
            self.emit_order(order, now);
        }
    }

    /// Ends a resting order (filled, expired or cancelled).
    pub(crate) fn end_order(&mut self, id: BuyOrderId, state: BuyOrderState, now: Timestamp) {
        let o = self.order_mut(id);
        debug_assert_eq!(o.state, BuyOrderState::Resting);
        o.state = state;
        let (buyer, market, expires_at) = (o.buyer, (o.asset, o.fiat), o.expires_at);
        if let Some(set) = self.state.resting.get_mut(&market) {
            set.remove(&id);
            if set.is_empty() {
                self.state.resting.remove(&market);
            }
        }
        self.state
            .deadlines
            .cancel(expires_at, Deadline::BuyOrderExpires(id));
        let u = self.user_mut(buyer);
        u.resting_buys = u.resting_buys.saturating_sub(1);
        let forget_at = now.plus_ms(self.config.ended_retention_ms);
        self.state
            .deadlines
            .add(forget_at, Deadline::ForgetBuyOrder(id));
        self.emit_order(id, now);
    }

    /// Offers an active listing to the resting buys of its market, oldest first.
    pub(crate) fn fill_resting(&mut self, listing: ListingId, now: Timestamp) {
        let l = invariant(self.state.listings.get(&listing), "listing vanished");
        let market = (l.asset, l.fiat);
        let mut cursor = None;
        loop {
            let active = self
                .state
                .listings
                .get(&listing)
                .is_some_and(|l| l.state == ListingState::Active);
            let next = self
                .state
                .resting
                .get(&market)
                .and_then(|set| match cursor {
                    None => set.iter().next().copied(),
                    Some(c) => set
                        .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                        .next()
                        .copied(),
                });
            let (true, Some(order)) = (active, next) else {
                break;
            };
            cursor = Some(order);
            self.try_fill(order, listing, now);
        }
    }

    /// The refusal of `action` in a buy order's state, naming it.
    pub(crate) fn order_wrong_state(o: &BuyOrder, action: &'static str) -> Rejection {
        let state = match o.state {
            BuyOrderState::Filled => "FILLED",
            BuyOrderState::Expired => "EXPIRED",
            BuyOrderState::Cancelled => "CANCELLED",
            BuyOrderState::Resting => "RESTING",
        };
        Rejection::WrongState {
            what: "buy order",
            id: o.id.to_string(),
            state,
            action,
        }
    }

    pub(crate) fn cancel_buy_order(
        &mut self,
        buyer: UserId,
        id: BuyOrderId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let o = match self.state.buy_orders.get(&id) {
            Some(o) if o.buyer == buyer => o,
            _ => return Err(Rejection::BuyOrderNotFound(id)),
        };
        if o.state != BuyOrderState::Resting {
            return Err(Self::order_wrong_state(o, "cancel"));
        }
        self.end_order(id, BuyOrderState::Cancelled, now);
        Ok(())
    }

    /// Offers the book again to the resting buys of buyers whom an ended
    /// trade of this command took back below the open-buys bound: they
    /// passed listings over while at it, which nothing else would offer them
    /// again (a listing is offered to resting buys when it comes or grows).
    pub(crate) fn reoffer_freed_buyers(&mut self, now: Timestamp) {
        for buyer in std::mem::take(&mut self.reoffer) {
            let orders: Vec<BuyOrderId> = self
                .state
                .user_buy_orders
                .of(buyer)
                .filter(|id| self.order_resting(*id))
                .collect();
            for id in orders {
                self.fill_from_book(id, now, false);
            }
        }
    }
}
