//! Trade actions, their balance moves, opening and closing appeals (SPEC §10,
//! §11) and timers (§12). Evidence, chat and CS actions on appeals are in
//! `ops_appeal.rs`.
//!
//! [`Trade::step`](crate::trade::Trade::step) decides a transition; here
//! `transition` carries it out: state, timeline, deadlines, escrow, the seller
//! record and the appeal — all in the same command, so all or nothing.

use crate::appeal::{Appeal, AppealOutcome};
use crate::command::{FundPasswordProof, Resolution};
use crate::engine::Engine;
use crate::event::{EventKind, SettledBy};
use crate::ids::{Timestamp, TradeId, UserId};
use crate::record::RecordEntry;
use crate::rejection::Rejection;
use crate::timers::Deadline;
use crate::trade::{
    Actor, Party, TimelineEntry, TimelineWhat, Trade, TradeAction, TradeState, TransitionReason,
};

/// A decided transition, ready to carry out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub(crate) actor: Actor,
    pub(crate) to: TradeState,
    pub(crate) reason: TransitionReason,
}

impl Engine {
    /// A trade the user is a party to (others get NOT_FOUND, hiding existence).
    pub(crate) fn party_trade(
        &self,
        user: UserId,
        id: TradeId,
    ) -> Result<(&Trade, Party), Rejection> {
        let t = self.trade(id).ok_or(Rejection::TradeNotFound(id))?;
        let party = t.party_of(user).ok_or(Rejection::TradeNotFound(id))?;
        Ok((t, party))
    }

    /// Decides `action` on trade `id` by `user` (the agent, for resolutions;
    /// `None` for timers). Changes nothing.
    pub(crate) fn decide(
        &self,
        id: TradeId,
        user: Option<UserId>,
        action: TradeAction,
        now: Timestamp,
    ) -> Result<Decision, Rejection> {
        let (trade, party, actor) = match (action, user) {
            (TradeAction::PaymentTimeout | TradeAction::AutoAppeal, _) | (_, None) => {
                let t = self.trade(id).ok_or(Rejection::TradeNotFound(id))?;
                (t, Party::System, Actor::System)
            }
            (TradeAction::Resolve(_), Some(agent)) => {
                let t = self.trade(id).ok_or(Rejection::TradeNotFound(id))?;
                if t.buyer == agent || t.seller == agent {
                    return Err(Rejection::NotAllowed(
                        "an agent cannot resolve an appeal on their own trade",
                    ));
                }
                (t, Party::Support, Actor::Support(agent))
            }
            (_, Some(user)) => {
                let (t, party) = self.party_trade(user, id)?;
                let actor = if party == Party::Buyer {
                    Actor::Buyer(user)
                } else {
                    Actor::Seller(user)
                };
                (t, party, actor)
            }
        };
        let (to, reason) = trade.step(action, party, now, &self.config)?;
        Ok(Decision { actor, to, reason })
    }

    pub(crate) fn mark_paid(
        &mut self,
        buyer: UserId,
        id: TradeId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let d = self.decide(id, Some(buyer), TradeAction::MarkPaid, now)?;
        self.transition(id, d, "", now);
        Ok(())
    }

    pub(crate) fn cancel_trade(
        &mut self,
        buyer: UserId,
        id: TradeId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let d = self.decide(id, Some(buyer), TradeAction::Cancel, now)?;
        self.transition(id, d, "", now);
        Ok(())
    }

    pub(crate) fn release(
        &mut self,
        seller: UserId,
        id: TradeId,
        proof: FundPasswordProof,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let d = self.decide(id, Some(seller), TradeAction::Release, now)?;
        self.check_proof(seller, proof, now)?;
        self.password_succeeded(seller);
        self.transition(id, d, "", now);
        Ok(())
    }

    pub(crate) fn open_appeal(
        &mut self,
        user: UserId,
        id: TradeId,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.text_arg("reason", reason, true)?;
        let d = self.decide(id, Some(user), TradeAction::OpenAppeal, now)?;
        self.transition(id, d, reason, now);
        Ok(())
    }

    /// Carries out a decided transition with every side effect. Cannot fail.
    pub(crate) fn transition(&mut self, id: TradeId, d: Decision, text: &str, now: Timestamp) {
        use TradeState as S;
        let t = self.trade_mut(id);
        let from = t.state;
        t.state = d.to;
        t.timeline.push(TimelineEntry {
            at: now,
            actor: d.actor,
            what: TimelineWhat::Transition {
                from: Some(from.kind()),
                to: d.to.kind(),
                reason: d.reason,
            },
        });
        let t = t.clone_header();
        self.emit(
            now,
            EventKind::TradeTransitioned {
                trade: id,
                seller: t.seller,
                buyer: t.buyer,
                from: from.kind(),
                to: d.to.kind(),
                actor: d.actor,
                reason: d.reason,
            },
        );
        match (from, d.to) {
            (
                S::AwaitingPayment { pay_by },
                S::Paid {
                    appeal_from,
                    auto_appeal_at,
                    ..
                },
            ) => {
                self.state
                    .deadlines
                    .cancel(pay_by, Deadline::PaymentDue(id));
                self.state
                    .deadlines
                    .add(appeal_from, Deadline::AppealOpens(id));
                self.state
                    .deadlines
                    .add(auto_appeal_at, Deadline::AutoAppeal(id));
            }
            (S::AwaitingPayment { pay_by }, S::Appealed { .. }) => {
                // A channel proved a payment of another amount (SPEC §19).
                self.state
                    .deadlines
                    .cancel(pay_by, Deadline::PaymentDue(id));
                self.appeal_opened(&t, d.actor, text, now);
            }
            (S::AwaitingPayment { pay_by }, S::Cancelled { reason, .. }) => {
                self.state
                    .deadlines
                    .cancel(pay_by, Deadline::PaymentDue(id));
                self.trade_ended(&t, now);
                self.return_coin(&t, reason, now);
            }
            (
                S::Paid {
                    appeal_from,
                    auto_appeal_at,
                    ..
                },
                S::Released { paid_at, at },
            ) => {
                self.state
                    .deadlines
                    .cancel(appeal_from, Deadline::AppealOpens(id));
                self.state
                    .deadlines
                    .cancel(auto_appeal_at, Deadline::AutoAppeal(id));
                self.released(&t, true, paid_at, at, now);
            }
            (
                S::Paid {
                    appeal_from,
                    auto_appeal_at,
                    ..
                },
                S::Appealed { .. },
            ) => {
                self.state
                    .deadlines
                    .cancel(appeal_from, Deadline::AppealOpens(id));
                self.state
                    .deadlines
                    .cancel(auto_appeal_at, Deadline::AutoAppeal(id));
                self.appeal_opened(&t, d.actor, text, now);
            }
            (S::Appealed { .. }, S::Released { paid_at, at }) => {
                let by_seller = d.reason == TransitionReason::SettledBySellerRelease;
                self.released(&t, by_seller, paid_at, at, now);
                self.appeal_closed(&t, d, text, now);
            }
            (S::Appealed { .. }, S::Cancelled { reason, .. }) => {
                // A refund or a withdrawn appeal: the buyer did not pay, which
                // is no mark against the seller's record.
                self.trade_ended(&t, now);
                self.return_coin(&t, reason, now);
                self.appeal_closed(&t, d, text, now);
            }
            (from, to) => panic!(
                "engine bug: no transition {:?} → {:?} in the table",
                from.kind(),
                to.kind()
            ),
        }
    }

    /// Coin to the buyer. The seller's record gains a release of their own,
    /// or, when CS had to release it, a failure to release.
    fn released(
        &mut self,
        t: &Trade,
        by_seller: bool,
        paid_at: Timestamp,
        at: Timestamp,
        now: Timestamp,
    ) {
        self.settle(t.seller, t.buyer, t.asset, t.coin);
        self.count_flow(t.asset, now, |f| &mut f.released, t.coin);
        self.record(t, by_seller.then(|| at.ms_since(paid_at)), now);
        self.trade_ended(t, now);
    }

    fn record(&mut self, t: &Trade, release_ms: Option<i64>, now: Timestamp) {
        let max = self.config.seller_record_entries_max;
        let entry = RecordEntry {
            ended_at: now,
            release_ms,
        };
        self.state
            .seller_history
            .entry(t.seller)
            .or_default()
            .push(entry, max);
    }

    /// Bookkeeping common to every end: method, listing and merchant counters.
    fn trade_ended(&mut self, t: &Trade, now: Timestamp) {
        let forget_at = now.plus_ms(self.config.ended_retention_ms);
        self.state
            .deadlines
            .add(forget_at, Deadline::ForgetTrade(t.id));
        self.method_uses(t.seller, t.method, -1, 0);
        if let Some(id) = t.listing {
            self.changed.listings.push(id);
        }
        if let Some(l) = t.listing.and_then(|l| self.state.listings.get_mut(&l)) {
            l.open_trades = l.open_trades.saturating_sub(1);
            if !l.state.is_live() && l.open_trades == 0 {
                self.state
                    .deadlines
                    .add(forget_at, Deadline::ForgetListing(l.id));
            }
        }
        if t.fast_match.is_some()
            && let Some(m) = self.state.merchants.get_mut(&t.buyer)
        {
            m.outstanding_fiat = m.outstanding_fiat.saturating_sub(t.fiat_amount);
        }
        if t.fast_match.is_none() {
            let max = self.config.open_buys_per_user_max;
            let u = self.user_mut(t.buyer);
            let was_full = u.open_buys >= max;
            u.open_buys = u.open_buys.saturating_sub(1);
            if was_full && u.resting_buys > 0 {
                self.reoffer.push(t.buyer);
            }
        }
    }

    /// Where a cancelled trade's coin goes: its listing (SPEC §7), the next
    /// merchant (SPEC §9, after a merchant timeout), or the seller.
    fn return_coin(&mut self, t: &Trade, reason: TransitionReason, now: Timestamp) {
        let counts_against_buyer = matches!(
            reason,
            TransitionReason::BuyerCancelled
                | TransitionReason::PaymentTimeout
                | TransitionReason::BuyerWithdrewAppeal
        );
        if counts_against_buyer && t.fast_match.is_none() {
            let day = now.utc_day();
            let u = self.user_mut(t.buyer);
            if u.cancel_day != day {
                u.cancel_day = day;
                u.cancels_today = 0;
            }
            u.cancels_today += 1;
        }
        // Coin handed to the next merchant stays in escrow: not returned.
        let handed_on = t.listing.is_none()
            && t.fast_match.is_some()
            && reason == TransitionReason::PaymentTimeout
            && self.redispatch(t, now);
        if handed_on {
            return;
        }
        self.count_flow(t.asset, now, |f| &mut f.returned, t.coin);
        match t.listing {
            Some(listing) => self.return_to_listing(listing, t.coin, now),
            None => self.unescrow(t.seller, t.asset, t.coin),
        }
    }

    fn appeal_opened(&mut self, t: &Trade, by: Actor, reason: &str, now: Timestamp) {
        let reason = if by == Actor::System {
            "not released long after being marked paid; opened by the system".to_owned()
        } else {
            reason.to_owned()
        };
        let appeal = Appeal {
            trade: t.id,
            opened_by: by,
            reason,
            opened_at: now,
            evidence: Vec::new(),
            claimed_by: None,
            outcome: None,
        };
        self.changed.trades.push(t.id);
        self.state.appeals.insert(t.id, appeal);
        self.state.appeal_queue.insert((now, t.id));
        self.emit(
            now,
            EventKind::AppealOpened {
                trade: t.id,
                seller: t.seller,
                buyer: t.buyer,
                by,
            },
        );
    }

    fn appeal_closed(&mut self, t: &Trade, d: Decision, note: &str, now: Timestamp) {
        let a = self.appeal_mut(t.id);
        let (outcome, kind) = match (d.actor, d.reason) {
            (
                Actor::Support(agent),
                TransitionReason::ResolvedRelease | TransitionReason::ResolvedRefund,
            ) => {
                let resolution = if d.reason == TransitionReason::ResolvedRelease {
                    Resolution::Release
                } else {
                    Resolution::Refund
                };
                (
                    AppealOutcome::Resolved {
                        agent,
                        resolution,
                        note: note.to_owned(),
                        at: now,
                    },
                    EventKind::AppealResolved {
                        trade: t.id,
                        seller: t.seller,
                        buyer: t.buyer,
                        agent,
                        resolution,
                    },
                )
            }
            _ => {
                let how = if d.reason == TransitionReason::SettledBySellerRelease {
                    SettledBy::SellerReleased
                } else {
                    SettledBy::BuyerCancelled
                };
                (
                    AppealOutcome::Settled { how, at: now },
                    EventKind::AppealSettled {
                        trade: t.id,
                        seller: t.seller,
                        buyer: t.buyer,
                        how,
                    },
                )
            }
        };
        a.outcome = Some(outcome);
        let opened_at = a.opened_at;
        self.state.appeal_queue.remove(&(opened_at, t.id));
        self.emit(now, kind);
    }

    // ---- timers -------------------------------------------------------------

    /// Fires every deadline due at `now`, earliest first. A deadline whose
    /// state moved on does nothing, so firing twice is harmless (SPEC §12).
    pub(crate) fn fire_deadlines(&mut self, now: Timestamp) {
        while let Some((_, what)) = self.state.deadlines.pop_due(now) {
            match what {
                Deadline::PaymentDue(id) => {
                    if let Ok(d) = self.decide(id, None, TradeAction::PaymentTimeout, now) {
                        self.transition(id, d, "", now);
                    }
                }
                Deadline::AppealOpens(id) => {
                    if let Some(t) = self.state.trades.get(&id)
                        && matches!(t.state, TradeState::Paid { .. })
                    {
                        let (seller, buyer) = (t.seller, t.buyer);
                        self.emit(
                            now,
                            EventKind::AppealAvailable {
                                trade: id,
                                seller,
                                buyer,
                            },
                        );
                    }
                }
                Deadline::AutoAppeal(id) => {
                    if let Ok(d) = self.decide(id, None, TradeAction::AutoAppeal, now) {
                        self.transition(id, d, "", now);
                    }
                }
                Deadline::ForgetTrade(id) => self.forget_trade(id),
                Deadline::ForgetListing(id) => self.forget_listing(id),
                Deadline::ForgetBuyOrder(id) => self.forget_buy_order(id),
                Deadline::BuyOrderExpires(order) => {
                    if self
                        .state
                        .buy_orders
                        .get(&order)
                        .is_some_and(|o| o.state == crate::buy::BuyOrderState::Resting)
                    {
                        self.end_order(order, crate::buy::BuyOrderState::Expired, now);
                    }
                }
            }
        }
    }
}

impl Engine {
    /// Drops an ended trade (and its closed appeal) from the working set.
    fn forget_trade(&mut self, id: TradeId) {
        let Some(t) = self.state.trades.get(&id) else {
            return;
        };
        if t.state.is_open() {
            return;
        }
        let (seller, buyer) = (t.seller, t.buyer);
        self.state.trades.remove(&id);
        self.state.user_trades.remove(seller, id);
        self.state.user_trades.remove(buyer, id);
        self.state.appeals.remove(&id);
    }

    /// Drops an ended listing once no open trade refers to it.
    fn forget_listing(&mut self, id: crate::ids::ListingId) {
        let Some(l) = self.state.listings.get(&id) else {
            return;
        };
        if l.state.is_live() || l.open_trades > 0 {
            return;
        }
        let seller = l.seller;
        self.state.listings.remove(&id);
        self.state.user_listings.remove(seller, id);
    }

    /// Drops an ended buy order.
    fn forget_buy_order(&mut self, id: crate::ids::BuyOrderId) {
        let Some(o) = self.state.buy_orders.get(&id) else {
            return;
        };
        if o.state == crate::buy::BuyOrderState::Resting {
            return;
        }
        let buyer = o.buyer;
        self.state.buy_orders.remove(&id);
        self.state.user_buy_orders.remove(buyer, id);
    }
}

impl Trade {
    /// A copy without the timeline, for side effects that need the trade's
    /// fixed fields after it was updated in place.
    fn clone_header(&self) -> Trade {
        Trade {
            id: self.id,
            seller: self.seller,
            buyer: self.buyer,
            listing: self.listing,
            buy_order: self.buy_order,
            asset: self.asset,
            fiat: self.fiat,
            price: self.price,
            coin: self.coin,
            fiat_amount: self.fiat_amount,
            method: self.method,
            method_details: std::sync::Arc::clone(&self.method_details),
            payment_window_ms: self.payment_window_ms,
            created_at: self.created_at,
            state: self.state,
            fast_match: self.fast_match.clone(),
            release_on_verified: self.release_on_verified,
            payments: Vec::new(),
            basis: None,
            chat: self.chat,
            timeline: Vec::new(),
        }
    }
}
