//! Listings (SPEC §7): publish, pause, resume, cancel, close when spent,
//! and coin coming back from cancelled trades. Buying and matching are in
//! `ops_buy.rs`.

use crate::command::{FundPasswordProof, ListingSpec, PriceSpec};
use crate::engine::{Engine, invariant};
use crate::event::EventKind;
use crate::ids::{ListingId, Timestamp, UserId};
use crate::listing::{CloseReason, Listing, ListingState};
use crate::money::CoinAmount;
use crate::pricing::{Pricing, effective_price};
use crate::rejection::Rejection;
use crate::timers::Deadline;

impl Engine {
    /// Refuses sellers without a bound method or fund password (SPEC §7),
    /// saying which is missing.
    pub(crate) fn require_ready_to_sell(&self, seller: UserId) -> Result<(), Rejection> {
        let u = self.user(seller);
        let has_method = u.is_some_and(|u| !u.methods.is_empty());
        let has_password = u.is_some_and(|u| u.fund_password.is_some());
        let missing = match (has_method, has_password) {
            (true, true) => return Ok(()),
            (false, false) => "bind a payment method and set a fund password first",
            (false, true) => "bind a payment method first",
            (true, false) => "set a fund password first",
        };
        Err(Rejection::NotReadyToSell { missing })
    }

    fn validate_listing(
        &self,
        seller: UserId,
        spec: &ListingSpec,
        now: Timestamp,
    ) -> Result<Listing, Rejection> {
        let pricing = match spec.price {
            PriceSpec::Fixed(p) => Pricing::Fixed(self.price_arg("price", p, spec.fiat)?),
            PriceSpec::Floating {
                premium_bps,
                floor,
                ceiling,
            } => Pricing::Floating(self.floating_arg(spec.fiat, premium_bps, floor, ceiling)?),
        };
        // The price the limits are checked at: a floating listing's at the
        // current reference (one is needed to publish).
        let price = match pricing {
            Pricing::Fixed(p) => p,
            Pricing::Floating(f) => {
                let r = self.fresh_reference((spec.asset, spec.fiat), now).ok_or(
                    Rejection::NoFreshReference {
                        asset: spec.asset,
                        fiat: spec.fiat,
                    },
                )?;
                effective_price(r.price, &f).ok_or(Rejection::field(
                    "premium_bps",
                    "gives a price too large to compute",
                ))?
            }
        };
        let total = self.coin_arg("total", spec.total, spec.asset)?;
        let min_fiat = self.fiat_arg("min_fiat", spec.min_fiat, spec.fiat)?;
        let max_fiat = self.fiat_arg("max_fiat", spec.max_fiat, spec.fiat)?;
        if min_fiat > max_fiat {
            return Err(Rejection::field("min_fiat", "must not exceed max_fiat"));
        }
        let worth = price
            .fiat_for(total)
            .ok_or(Rejection::field("total", "is too large at this price"))?;
        if worth < min_fiat {
            return Err(Rejection::field(
                "total",
                format!("is worth {worth} at this price, below min_fiat {min_fiat}"),
            ));
        }
        let c = &self.config;
        let window = match spec.payment_window_ms {
            None => c.payment_window_ms_default,
            Some(ms) => Self::window_arg(
                "payment_window_secs",
                ms,
                c.payment_window_ms_min,
                c.payment_window_ms_max,
            )?,
        };
        let mut methods = spec.methods.clone();
        methods.sort_unstable();
        methods.dedup();
        if methods.is_empty() || methods.len() > c.methods_per_listing_max {
            let max = c.methods_per_listing_max;
            return Err(Rejection::field(
                "method_ids",
                format!("must name 1 to {max} of your bound payment methods"),
            ));
        }
        let bound = self.user(seller).map(|u| &u.methods);
        if let Some(m) = methods
            .iter()
            .find(|m| !bound.is_some_and(|b| b.contains_key(m)))
        {
            return Err(Rejection::UnknownMethod(*m));
        }
        self.text_arg("terms", &spec.terms, false)?;
        if spec.release_on_verified && !methods.iter().any(|m| self.is_channel(seller, *m)) {
            return Err(Rejection::field(
                "release_on_verified_payment",
                "needs a payment channel among the listing's methods",
            ));
        }
        Ok(Listing {
            id: ListingId(0),
            seller,
            asset: spec.asset,
            fiat: spec.fiat,
            pricing,
            total,
            remaining: total,
            min_fiat,
            max_fiat,
            methods,
            payment_window_ms: window,
            terms: spec.terms.clone(),
            release_on_verified: spec.release_on_verified,
            created_at: now,
            state: ListingState::Active,
            open_trades: 0,
        })
    }

    pub(crate) fn publish(
        &mut self,
        seller: UserId,
        proof: FundPasswordProof,
        spec: &ListingSpec,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.require_ready_to_sell(seller)?;
        let mut listing = self.validate_listing(seller, spec, now)?;
        if self.at_live_listings_limit(seller) {
            return Err(Rejection::LimitReached {
                what: "live listings per user",
                max: self.config.live_listings_per_user_max.into(),
            });
        }
        self.require_available(seller, listing.asset, listing.total)?;
        // The password last: a wrong one is recorded only for a command
        // that would otherwise have been carried out.
        self.check_proof(seller, proof, now)?;
        // Validated: from here nothing fails.
        self.password_succeeded(seller);
        listing.id = ListingId(self.next_id());
        let id = listing.id;
        self.escrow(seller, listing.asset, listing.total);
        self.state.book.insert(&listing);
        self.state.user_listings.insert(seller, id);
        self.changed.listings.push(id);
        self.state.listings.insert(id, Box::new(listing));
        self.count_live(id, 1);
        self.emit_listing(id, now);
        self.fill_resting(id, now);
        Ok(())
    }

    /// Whether `seller` has as many live listings as allowed (SPEC §18).
    fn at_live_listings_limit(&self, seller: UserId) -> bool {
        let max = self.config.live_listings_per_user_max;
        self.user(seller).is_some_and(|u| u.live_listings >= max)
    }

    /// Adjusts the per-user and per-method live-listing counters by `delta`.
    fn count_live(&mut self, id: ListingId, delta: i32) {
        let crate::engine::State {
            listings, users, ..
        } = &mut self.state;
        let l = invariant(listings.get(&id), "listing vanished");
        let u = users.get_or_default(l.seller);
        u.live_listings = u.live_listings.saturating_add_signed(delta);
        for m in &l.methods {
            let m = invariant(u.methods.get_mut(m), "listed method was removed");
            m.live_listings = m.live_listings.saturating_add_signed(delta);
        }
    }

    /// Sets a listing's state; puts it in or takes it out of the book to match.
    fn set_listing_state(&mut self, id: ListingId, state: ListingState) {
        let l = self.listing_mut(id);
        let was_active = l.state == ListingState::Active;
        l.state = state;
        if !state.is_live() {
            l.remaining = CoinAmount::ZERO;
        }
        let (market, pricing) = (l.market(), l.pricing);
        match (was_active, state == ListingState::Active) {
            (true, false) => self.state.book.take(market, id, pricing),
            (false, true) => self.state.book.add(market, id, pricing),
            _ => {}
        }
    }

    pub(crate) fn emit_listing(&mut self, id: ListingId, now: Timestamp) {
        let l = invariant(self.state.listings.get(&id), "listing vanished");
        let kind = EventKind::ListingChanged {
            listing: id,
            seller: l.seller,
            state: l.state,
            remaining: l.remaining,
        };
        self.emit(now, kind);
    }

    /// The caller's own listing.
    fn own_listing(&self, seller: UserId, id: ListingId) -> Result<&Listing, Rejection> {
        match self.state.listings.get(&id) {
            Some(l) if l.seller == seller => Ok(l),
            _ => Err(Rejection::ListingNotFound(id)),
        }
    }

    pub(crate) fn listing_wrong_state(l: &Listing, action: &'static str) -> Rejection {
        Rejection::WrongState {
            what: "listing",
            id: l.id.to_string(),
            state: l.state.name(),
            action,
        }
    }

    pub(crate) fn pause_listing(
        &mut self,
        seller: UserId,
        id: ListingId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let l = self.own_listing(seller, id)?;
        if l.state != ListingState::Active {
            return Err(Self::listing_wrong_state(l, "pause"));
        }
        self.set_listing_state(id, ListingState::Paused);
        self.emit_listing(id, now);
        Ok(())
    }

    pub(crate) fn resume_listing(
        &mut self,
        seller: UserId,
        id: ListingId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let l = self.own_listing(seller, id)?;
        if l.state != ListingState::Paused {
            return Err(Self::listing_wrong_state(l, "resume"));
        }
        self.set_listing_state(id, ListingState::Active);
        self.emit_listing(id, now);
        self.fill_resting(id, now);
        Ok(())
    }

    pub(crate) fn cancel_listing(
        &mut self,
        seller: UserId,
        id: ListingId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let l = self.own_listing(seller, id)?;
        if l.state == ListingState::Cancelled {
            return Err(Self::listing_wrong_state(l, "cancel"));
        }
        let (live, asset, remaining) = (l.state.is_live(), l.asset, l.remaining);
        if live {
            self.count_live(id, -1);
            if !remaining.is_zero() {
                self.unescrow(seller, asset, remaining);
            }
        }
        self.set_listing_state(id, ListingState::Cancelled);
        self.forget_listing_later(id, now);
        self.emit_listing(id, now);
        Ok(())
    }

    /// Schedules an ended listing to leave the working set, if no open trade
    /// refers to it (otherwise the last trade to end schedules it).
    fn forget_listing_later(&mut self, id: ListingId, now: Timestamp) {
        if self
            .state
            .listings
            .get(&id)
            .is_some_and(|l| l.open_trades == 0)
        {
            let at = now.plus_ms(self.config.ended_retention_ms);
            self.state.deadlines.add(at, Deadline::ForgetListing(id));
        }
    }

    /// After a fill: close the listing if it is empty, or if what is left is
    /// worth less than its minimum (returning that to `available`).
    pub(crate) fn close_if_spent(&mut self, id: ListingId, now: Timestamp) {
        let l = invariant(self.state.listings.get(&id), "listing vanished");
        // A floating listing without a fresh reference is judged at its
        // next fill.
        let price = self.effective_price(l, now);
        let reason = if l.remaining.is_zero() {
            Some(CloseReason::FullyTraded)
        } else if let Some(price) = price
            && price
                .fiat_for(l.remaining)
                .is_none_or(|worth| worth < l.min_fiat)
        {
            Some(CloseReason::BelowMinimum)
        } else {
            None
        };
        if let Some(reason) = reason
            && l.state.is_live()
        {
            let (seller, asset, remaining) = (l.seller, l.asset, l.remaining);
            self.count_live(id, -1);
            if !remaining.is_zero() {
                self.unescrow(seller, asset, remaining);
            }
            self.set_listing_state(id, ListingState::Closed(reason));
            self.forget_listing_later(id, now);
        }
        self.emit_listing(id, now);
    }

    /// Coin from a cancelled trade goes back to its listing (reopening it if
    /// it had closed), or to the seller's `available` if the seller cancelled
    /// the listing (SPEC §7).
    pub(crate) fn return_to_listing(&mut self, id: ListingId, coin: CoinAmount, now: Timestamp) {
        let l = invariant(self.state.listings.get(&id), "listing vanished");
        match l.state {
            ListingState::Cancelled => {
                let (seller, asset) = (l.seller, l.asset);
                self.unescrow(seller, asset, coin);
                return;
            }
            ListingState::Closed(CloseReason::FullyTraded) => {
                // Reopen with the methods still bound; the seller may have
                // removed some while the listing was closed.
                let seller = l.seller;
                let bound: Vec<_> = {
                    let methods = self.user(seller).map(|u| &u.methods);
                    l.methods
                        .iter()
                        .copied()
                        .filter(|m| methods.is_some_and(|b| b.contains_key(m)))
                        .collect()
                };
                // Reopening makes it live again: not past the seller's
                // limit (SPEC §18), where the coin goes to `available`.
                if bound.is_empty() || self.at_live_listings_limit(seller) {
                    let asset = l.asset;
                    self.unescrow(seller, asset, coin);
                    return;
                }
                self.listing_mut(id).methods = bound;
                self.set_listing_state(id, ListingState::Active);
                self.count_live(id, 1);
                self.listing_mut(id).remaining = coin;
            }
            ListingState::Closed(CloseReason::BelowMinimum) => {
                // Only a listing closed because it was fully traded reopens (SPEC §7).
                let (seller, asset) = (l.seller, l.asset);
                self.unescrow(seller, asset, coin);
                return;
            }
            ListingState::Active | ListingState::Paused => {
                let stored = self.listing_mut(id);
                stored.remaining = invariant(
                    stored.remaining.checked_add(coin),
                    "listing remainder overflow",
                );
            }
        }
        self.emit_listing(id, now);
        self.fill_resting(id, now);
    }
}
