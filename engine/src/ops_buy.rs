//! Buying and matching (SPEC §8).
//!
//! Matching takes the best eligible listing: lowest price, then oldest,
//! among the first `match_scan_max` in that order (one attempt's work is
//! bounded however large the book). A taker buy must be filled whole by one
//! listing; a resting buy may be filled by several, each fill its own trade
//! (`ops_resting.rs`).

use crate::buy::Remaining;
use crate::command::{BuyAmount, BuyRequest};
use crate::engine::{Engine, invariant};
use crate::event::EventKind;
use crate::ids::{BuyOrderId, ListingId, MethodId, Timestamp, TradeId, UserId};
use crate::listing::{Listing, ListingState};
use crate::money::{Asset, CoinAmount, Fiat, FiatAmount, Price};
use crate::rejection::Rejection;
use crate::timers::Deadline;
use crate::trade::{
    Actor, TimelineEntry, TimelineWhat, Trade, TradeState, TradeStateKind, TransitionReason,
};
use crate::users::MethodKind;

/// A validated buy: what is wanted and on what terms.
#[derive(Debug, Clone)]
pub(crate) struct BuyTerms {
    pub asset: Asset,
    pub fiat: Fiat,
    /// Coin decimal places of the asset.
    pub scale: u32,
    pub max_price: Option<Price>,
    pub methods: Vec<MethodKind>,
}

/// One match's amounts, its price and the method paid to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fill {
    pub coin: CoinAmount,
    pub fiat: FiatAmount,
    pub method: MethodId,
    /// The listing's effective price when matched.
    pub price: Price,
}

/// Listings a resting buy is first offered before the rest of the book.
pub(crate) const FIRST_PASS: usize = 16;

impl Engine {
    // ---- buying -----------------------------------------------------------

    fn validate_buy(&self, req: &BuyRequest) -> Result<(BuyTerms, Remaining), Rejection> {
        let spec = self.asset_spec(req.asset)?;
        self.fiat_spec(req.fiat)?;
        let want = match req.amount {
            BuyAmount::Coin(c) => Remaining::Coin(self.coin_arg("coin_amount", c, req.asset)?),
            BuyAmount::Fiat(f) => Remaining::Fiat(self.fiat_arg("fiat_amount", f, req.fiat)?),
        };
        let max_price = req
            .max_price
            .map(|p| self.price_arg("max_price", p, req.fiat))
            .transpose()?;
        let mut methods = req.methods.clone();
        methods.sort_unstable();
        methods.dedup();
        let terms = BuyTerms {
            asset: req.asset,
            fiat: req.fiat,
            scale: spec.scale,
            max_price,
            methods,
        };
        Ok((terms, want))
    }

    /// Refuses a buyer who hit the daily cancel limit (SPEC §8) or holds as
    /// many open trades as buyer as one may (SPEC §18).
    pub(crate) fn require_may_buy(&self, buyer: UserId, now: Timestamp) -> Result<(), Rejection> {
        let user = self.user(buyer);
        let count = user.map_or(0, |u| u.cancels_on(now));
        if count >= self.config.buyer_cancels_per_day_max {
            return Err(Rejection::CancelLimitReached {
                count,
                until: now.next_utc_midnight(),
            });
        }
        let max = self.config.open_buys_per_user_max;
        if user.is_some_and(|u| u.open_buys >= max) {
            return Err(Rejection::LimitReached {
                what: "open trades as buyer at once; cancel one or wait for one to end",
                max: u64::from(max),
            });
        }
        Ok(())
    }

    /// Whether `listing` may trade with `buyer` on `terms`, and through which
    /// of the seller's methods.
    fn eligible_method(
        &self,
        buyer: UserId,
        terms: &BuyTerms,
        listing: &Listing,
    ) -> Option<MethodId> {
        if listing.state != ListingState::Active
            || listing.seller == buyer
            || self.is_blocked(listing.seller, buyer)
        {
            return None;
        }
        let methods = &self.user(listing.seller)?.methods;
        listing.methods.iter().copied().find(|id| {
            methods.get(id).is_some_and(|m| {
                terms.methods.is_empty() || terms.methods.contains(&m.details.kind())
            })
        })
    }

    /// The fill `listing` gives for `want`: whole, or (for resting buys) as
    /// much as the listing's remainder and maximum allow.
    pub(crate) fn fill_for(
        &self,
        buyer: UserId,
        terms: &BuyTerms,
        want: Remaining,
        whole: bool,
        (listing, price): (&Listing, Price),
    ) -> Option<Fill> {
        if terms.max_price.is_some_and(|max| price > max) {
            return None;
        }
        let method = self.eligible_method(buyer, terms, listing)?;
        let mut coin = match want {
            Remaining::Coin(c) => c,
            Remaining::Fiat(f) => {
                let target = if whole { f } else { f.min(listing.max_fiat) };
                price.coin_for(target, terms.scale)?
            }
        };
        if !whole {
            coin = coin.min(listing.remaining);
            if price.fiat_for(coin)? > listing.max_fiat {
                coin = price.coin_for(listing.max_fiat, terms.scale)?;
            }
        }
        let fiat = price.fiat_for(coin)?;
        let fits = !coin.is_zero()
            && coin <= listing.remaining
            && fiat >= listing.min_fiat
            && fiat <= listing.max_fiat
            && (whole || fiat.value() > rust_decimal::Decimal::ZERO);
        fits.then_some(Fill {
            coin,
            fiat,
            method,
            price,
        })
    }

    /// The best listing that fills `want` whole.
    fn find_taker(
        &self,
        buyer: UserId,
        terms: &BuyTerms,
        want: Remaining,
        now: Timestamp,
    ) -> Option<(ListingId, Fill)> {
        let scan = self.config.match_scan_max;
        for (price, id) in self.ordered((terms.asset, terms.fiat), now).take(scan) {
            if terms.max_price.is_some_and(|max| price > max) {
                break;
            }
            let listing = invariant(self.state.listings.get(&id), "book names a missing listing");
            if let Some(fill) = self.fill_for(buyer, terms, want, true, (listing, price)) {
                return Some((id, fill));
            }
        }
        None
    }

    pub(crate) fn place_buy(
        &mut self,
        buyer: UserId,
        req: &BuyRequest,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let (terms, want) = self.validate_buy(req)?;
        self.require_may_buy(buyer, now)?;
        let rest_ms = match req.rest {
            None => None,
            Some(asked) => {
                let ms = asked.unwrap_or(self.config.resting_buy_ms_default);
                Some(Self::window_arg(
                    "rest_secs",
                    ms,
                    1_000,
                    self.config.resting_buy_ms_max,
                )?)
            }
        };
        let max_resting = self.config.resting_buys_per_user_max;
        let at_limit = self
            .user(buyer)
            .is_some_and(|u| u.resting_buys >= max_resting);
        // A taker buy is filled whole by the best listing that can. A buy that
        // may rest instead takes partial fills in price order, then rests.
        if (rest_ms.is_none() || at_limit)
            && let Some((listing, fill)) = self.find_taker(buyer, &terms, want, now)
        {
            self.user_mut(buyer);
            self.open_listing_trade(listing, buyer, fill, None, now);
            return Ok(());
        }
        let Some(rest_ms) = rest_ms else {
            let market = (terms.asset, terms.fiat);
            let empty = !self.state.book.has_market(market);
            let priced = self.ordered(market, now).next().is_some();
            // Floating listings left out for want of a fresh reference (one
            // was fresh when each was published): the refusal says so, also
            // when fixed-price listings were there and could not fill it.
            let unpriced = self.fresh_reference(market, now).is_none()
                && self
                    .state
                    .book
                    .floating_after(market, None)
                    .next()
                    .is_some();
            // More listings in price range than one buy examines: say so.
            let cut = self
                .ordered(market, now)
                .take_while(|k| terms.max_price.is_none_or(|max| k.0 <= max))
                .nth(self.config.match_scan_max)
                .is_some();
            return Err(Rejection::NoMatch(match (empty, unpriced, priced) {
                _ if cut => {
                    "none of the best-priced listings a buy examines (--match-scan-max) accepts this amount with your payment methods; narrow the buy (another amount or method) or ask to rest it"
                }
                (true, ..) => {
                    "there are no active listings in this market; ask to rest the order to wait for one"
                }
                (false, true, false) => {
                    "the market's reference price is stale, so its floating listings are not matching; try again shortly"
                }
                (false, true, true) => {
                    "no fixed-price listing accepts this amount at an acceptable price with your payment methods, and the market's reference price is stale, so its floating listings are not matching; try again shortly"
                }
                _ => {
                    "no listing accepts this amount at an acceptable price with your payment methods"
                }
            }));
        };
        if at_limit {
            return Err(Rejection::LimitReached {
                what: "resting buy orders per user",
                max: max_resting.into(),
            });
        }
        self.rest_buy(buyer, terms, want, rest_ms, now);
        Ok(())
    }

    /// Creates a trade from a listing, reducing its remainder in the same step.
    pub(crate) fn open_listing_trade(
        &mut self,
        listing: ListingId,
        buyer: UserId,
        fill: Fill,
        buy_order: Option<BuyOrderId>,
        now: Timestamp,
    ) -> TradeId {
        let id = TradeId(self.next_id());
        let l = self.listing_mut(listing);
        l.remaining = invariant(
            l.remaining.checked_sub(fill.coin),
            "fill beyond listing remainder",
        );
        l.open_trades += 1;
        let (seller, asset, fiat, window) = (l.seller, l.asset, l.fiat, l.payment_window_ms);
        let l = invariant(self.state.listings.get(&listing), "listing vanished");
        let basis = self.price_basis(l, now);
        let release = l.release_on_verified && self.is_channel(seller, fill.method);
        let trade = self.new_trade(
            id,
            seller,
            buyer,
            (asset, fiat, fill.price),
            fill,
            window,
            now,
        );
        let trade = Trade {
            listing: Some(listing),
            buy_order,
            release_on_verified: release,
            basis,
            ..trade
        };
        self.insert_trade(trade, now);
        self.close_if_spent(listing, now);
        id
    }

    /// A new trade awaiting payment; the caller sets its origin fields.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_trade(
        &mut self,
        id: TradeId,
        seller: UserId,
        buyer: UserId,
        (asset, fiat, price): (Asset, Fiat, Price),
        fill: Fill,
        window_ms: i64,
        now: Timestamp,
    ) -> Trade {
        let method_details = invariant(
            self.method_details(seller, fill.method),
            "trade method not bound",
        );
        self.method_uses(seller, fill.method, 1, 0);
        let created = TimelineEntry {
            at: now,
            actor: Actor::Buyer(buyer),
            what: TimelineWhat::Transition {
                from: None,
                to: TradeStateKind::AwaitingPayment,
                reason: TransitionReason::Matched,
            },
        };
        Trade {
            id,
            seller,
            buyer,
            listing: None,
            buy_order: None,
            asset,
            fiat,
            price,
            coin: fill.coin,
            fiat_amount: fill.fiat,
            method: fill.method,
            method_details,
            payment_window_ms: window_ms,
            created_at: now,
            state: TradeState::AwaitingPayment {
                pay_by: now.plus_ms(window_ms),
            },
            fast_match: None,
            release_on_verified: false,
            payments: Vec::new(),
            basis: None,
            chat: crate::trade::ChatCount::default(),
            // Room for two entries (created; paid or cancelled): room for
            // four cost ~220 bytes more per open trade, a fifth of its
            // memory; with one, most trades would grow it at once.
            timeline: {
                let mut timeline = Vec::with_capacity(2);
                timeline.push(created);
                timeline
            },
        }
    }

    /// Stores a new trade, schedules its payment deadline and announces it.
    pub(crate) fn insert_trade(&mut self, trade: Trade, now: Timestamp) {
        let TradeState::AwaitingPayment { pay_by } = trade.state else {
            panic!("engine bug: new trade {} not awaiting payment", trade.id)
        };
        self.state
            .deadlines
            .add(pay_by, Deadline::PaymentDue(trade.id));
        self.state.user_trades.insert(trade.seller, trade.id);
        self.state.user_trades.insert(trade.buyer, trade.id);
        if trade.fast_match.is_none() {
            self.user_mut(trade.buyer).open_buys += 1;
        }
        let kind = EventKind::TradeCreated {
            trade: trade.id,
            seller: trade.seller,
            buyer: trade.buyer,
            listing: trade.listing,
            coin: trade.coin,
            fiat: trade.fiat_amount,
            price: trade.price,
            pay_by,
        };
        self.changed.trades.push(trade.id);
        self.state.trades.insert(trade.id, Box::new(trade));
        self.emit(now, kind);
    }
}
