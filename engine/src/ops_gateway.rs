//! Verified payment channels (SPEC §19): assigning channels, a gateway's
//! verified payment and what it does to its trade, anomalies and CS closing
//! them, and the facts of a payment order.
//!
//! The shell verified the signature and the channel's app and seller ids;
//! every rule about what the payment means lives here.

use rust_decimal::Decimal;

use crate::engine::{Engine, invariant};
use crate::event::EventKind;
use crate::ids::{AnomalyId, MethodId, Timestamp, TradeId, UserId};
use crate::ops_trade::Decision;
use crate::payment::{
    Anomaly, AnomalyKind, AnomalyResolution, ChannelProvider, GATEWAY_ID_MAX, GatewayPayment,
    PaymentOrderFacts, VerifiedPayment, check_channel_name, payment_reference, trade_of_reference,
};
use crate::rejection::Rejection;
use crate::trade::{
    Actor, Party, TimelineEntry, TimelineWhat, Trade, TradeAction, TradeState, TradeStateKind,
};
use crate::users::MethodDetails;

/// The action named when a trade's state refuses a payment order.
pub(crate) const PAYMENT_ORDER: &str = "create a payment order for";

/// What a verified payment does, decided before anything changes.
enum Effect {
    /// Pay (and maybe release) an open trade, or add evidence to it.
    Pay { trade: TradeId, release: bool },
    /// Record an anomaly; for a wrong amount on an open trade, also appeal.
    Anomaly {
        kind: AnomalyKind,
        trade: Option<TradeId>,
        appeal: bool,
    },
}

impl Engine {
    /// Whether `method` of `user` is a payment channel.
    pub(crate) fn is_channel(&self, user: UserId, method: MethodId) -> bool {
        self.user(user)
            .and_then(|u| u.methods.get(&method))
            .is_some_and(|m| matches!(*m.details, MethodDetails::Channel { .. }))
    }

    /// Checks a channel method is bound only by a user it was assigned to.
    pub(crate) fn check_channel_method(
        &self,
        user: UserId,
        details: &MethodDetails,
    ) -> Result<(), Rejection> {
        let MethodDetails::Channel { channel, provider } = details else {
            return Ok(());
        };
        match self.user(user).and_then(|u| u.channels.get(channel)) {
            Some(p) if p == provider => Ok(()),
            _ => Err(Rejection::ChannelNotAssigned(channel.clone())),
        }
    }

    /// Admin assigns a channel (declared in the operator's file) to a user.
    pub(crate) fn assign_channel(
        &mut self,
        user: UserId,
        channel: &str,
        provider: ChannelProvider,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        check_channel_name(channel).map_err(|why| Rejection::field("channel", why))?;
        // A channel is one gateway account: its money reaches one owner.
        if let Some(owner) = self.state.channel_owners.get(channel)
            && *owner != user
        {
            return Err(Rejection::ChannelTaken {
                channel: channel.to_owned(),
                owner: *owner,
            });
        }
        let channels = &self.user(user).map(|u| &u.channels);
        if channels.is_some_and(|c| c.get(channel) == Some(&provider)) {
            return Ok(());
        }
        self.user_mut(user)
            .channels
            .insert(channel.to_owned(), provider);
        self.state.channel_owners.insert(channel.to_owned(), user);
        self.emit(
            now,
            EventKind::ChannelAssigned {
                user,
                channel: channel.to_owned(),
                provider,
            },
        );
        Ok(())
    }

    /// What the buyer's app needs to pay trade `id` through its channel.
    ///
    /// # Errors
    /// Not the buyer's trade, not awaiting payment, or not on a channel.
    pub fn payment_order(
        &self,
        buyer: UserId,
        id: TradeId,
        now: Timestamp,
    ) -> Result<PaymentOrderFacts, Rejection> {
        let (t, party) = self.party_trade(buyer, id)?;
        if party != Party::Buyer {
            return Err(Rejection::NotAllowed("only the buyer pays a trade"));
        }
        let TradeState::AwaitingPayment { pay_by } = t.state else {
            return Err(t.wrong_state(PAYMENT_ORDER));
        };
        if now >= pay_by {
            return Err(Rejection::PaymentWindowClosed(id));
        }
        let MethodDetails::Channel { channel, provider } = &*t.method_details else {
            return Err(Rejection::NotOnChannel(id));
        };
        if provider.settles_cny_only() && t.fiat.as_str() != "CNY" {
            return Err(Rejection::Precondition(
                "this trade's channel settles CNY only; pay as the trade's terms say",
            ));
        }
        Ok(PaymentOrderFacts {
            trade: id,
            channel: channel.clone(),
            provider: *provider,
            reference: payment_reference(id),
            amount: t.fiat_amount.value(),
            currency: t.fiat.as_str().to_owned(),
            pay_by,
        })
    }

    /// A payment a channel proved (SPEC §19): pays the trade, releases it
    /// if the seller opted in, or records an anomaly. A transaction id seen
    /// before is refused as a duplicate and changes nothing.
    pub(crate) fn gateway_payment(
        &mut self,
        p: &GatewayPayment,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.gateway_payment_as(p, Actor::Gateway, now)
    }

    /// [`Engine::gateway_payment`] by `actor`: the gateway's notification,
    /// or reconciliation applying a payment from the bill (SPEC §20).
    pub(crate) fn gateway_payment_as(
        &mut self,
        p: &GatewayPayment,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        check_channel_name(&p.channel).map_err(|why| Rejection::field("channel", why))?;
        for (field, value) in [("txn_id", &p.txn_id), ("reference", &p.reference)] {
            if value.is_empty() || value.len() > GATEWAY_ID_MAX {
                return Err(Rejection::field(
                    field,
                    format!("must be 1 to {GATEWAY_ID_MAX} bytes"),
                ));
            }
        }
        // A verified 0.00 is a wrong amount like any other (an anomaly, not
        // a refusal the gateway would retry for a day); less is no payment.
        if p.amount < Decimal::ZERO {
            return Err(Rejection::field("amount", "must not be negative"));
        }
        if self.is_duplicate(p) {
            // The same transaction for another order or amount than the
            // bill it was applied from said: a finding, not a silent
            // duplicate (once; after, a duplicate).
            if actor != Actor::Reconciliation && self.dispute_duplicate(p, now) {
                return Ok(());
            }
            return Err(Rejection::DuplicatePayment(p.txn_id.clone()));
        }
        if let Some(id) = trade_of_reference(&p.reference)
            && self.trade(id).is_none()
            && id.0 < self.state.next_id
            && !p.history_checked
        {
            return Err(Rejection::HistoryNeeded(id));
        }
        let payment = VerifiedPayment {
            channel: p.channel.clone(),
            txn_id: p.txn_id.clone(),
            amount: p.amount,
            paid_at: p.paid_at,
            received_at: now,
        };
        match self.effect_of(p, now) {
            Effect::Pay { trade, release } => {
                self.pay_verified(trade, payment, release, actor, now);
            }
            Effect::Anomaly {
                kind,
                trade,
                appeal,
            } => {
                let reason = match &kind {
                    AnomalyKind::WrongAmount { expected, currency } => format!(
                        "{} proved a payment of {} {} for {} {}; opened by the system",
                        p.channel, p.amount, p.currency, expected, currency
                    ),
                    _ => String::new(),
                };
                if let (Some(id), true) = (trade, appeal) {
                    self.add_payment(id, payment.clone(), actor, now);
                    self.gateway_transition(id, TradeAction::GatewayMismatch, &reason, actor, now);
                }
                self.record_anomaly(kind, trade, p, payment, actor, now);
            }
        }
        // Kept for reconciliation against the gateway's bill (SPEC §20).
        self.log_payment(p, actor, now);
        Ok(())
    }

    /// Seen before: on the trade it paid (while the engine holds it), in
    /// its history (after), or as an anomaly.
    fn is_duplicate(&self, p: &GatewayPayment) -> bool {
        let key = (p.channel.clone(), p.txn_id.clone());
        if self.state.anomaly_txns.contains_key(&key) || self.state.payment_log.contains_key(&key) {
            return true;
        }
        let on_trade = trade_of_reference(&p.reference)
            .and_then(|id| self.trade(id))
            .is_some_and(|t| {
                t.payments
                    .iter()
                    .any(|v| v.channel == p.channel && v.txn_id == p.txn_id)
            });
        let in_history = p.ended.as_ref().is_some_and(|e| {
            e.payments
                .iter()
                .any(|(channel, txn)| *channel == p.channel && *txn == p.txn_id)
        });
        on_trade || in_history
    }

    /// Decides what a (new) verified payment does. Changes nothing.
    fn effect_of(&self, p: &GatewayPayment, now: Timestamp) -> Effect {
        let anomaly = |kind, trade, appeal| Effect::Anomaly {
            kind,
            trade,
            appeal,
        };
        let id = trade_of_reference(&p.reference);
        let Some(t) = id.and_then(|id| self.trade(id)) else {
            // Forgotten by the engine: history says how it ended.
            return match (&p.ended, id) {
                (Some(e), Some(id))
                    if e.trade == id && e.channel.as_deref() == Some(p.channel.as_str()) =>
                {
                    let kind = if e.state == TradeStateKind::Cancelled {
                        AnomalyKind::PaidAfterCancel
                    } else {
                        AnomalyKind::AlreadyEnded
                    };
                    anomaly(kind, Some(id), false)
                }
                _ => anomaly(AnomalyKind::UnknownReference, None, false),
            };
        };
        let on_channel = matches!(
            &*t.method_details,
            MethodDetails::Channel { channel, .. } if *channel == p.channel
        );
        if !on_channel {
            return anomaly(AnomalyKind::UnknownReference, None, false);
        }
        if matches!(t.state, TradeState::Paid { .. }) && !t.payments.is_empty() {
            // Proved paid already (a wrong amount would have appealed it):
            // this one is a second, whatever its amount, and the trade
            // stays as it is (a smaller one is no underpayment).
            return anomaly(AnomalyKind::PaidTwice, Some(t.id), false);
        }
        if p.amount != t.fiat_amount.value() || p.currency != t.fiat.as_str() {
            let kind = AnomalyKind::WrongAmount {
                expected: t.fiat_amount.value(),
                currency: t.fiat.as_str().to_owned(),
            };
            // An open trade goes to CS, unless its window closed before this
            // payment (by both clocks, as for a right amount below): the timer
            // cancels it, whichever of the two the group applies first.
            let appeal = match t.state {
                TradeState::AwaitingPayment { pay_by } => {
                    now < pay_by || p.paid_at.unwrap_or(now) < pay_by
                }
                TradeState::Paid { .. } => true,
                _ => false,
            };
            return anomaly(kind, Some(t.id), appeal);
        }
        if t.state.is_open() && !t.payments.is_empty() {
            // A payment was already proved for it: this one is a second.
            return anomaly(AnomalyKind::PaidTwice, Some(t.id), false);
        }
        match t.state {
            // Paid after the window (by both our clock and the gateway's):
            // the timer cancels it. Paid in time, notified late, before the
            // timer ran: paid.
            TradeState::AwaitingPayment { pay_by }
                if now >= pay_by && p.paid_at.unwrap_or(now) >= pay_by =>
            {
                anomaly(AnomalyKind::PaidAfterCancel, Some(t.id), false)
            }
            TradeState::AwaitingPayment { .. } | TradeState::Paid { .. } => Effect::Pay {
                trade: t.id,
                release: t.release_on_verified,
            },
            // CS decides; the proof is evidence for them.
            TradeState::Appealed { .. } => Effect::Pay {
                trade: t.id,
                release: false,
            },
            TradeState::Cancelled { .. } => {
                anomaly(AnomalyKind::PaidAfterCancel, Some(t.id), false)
            }
            TradeState::Released { .. } => anomaly(AnomalyKind::AlreadyEnded, Some(t.id), false),
        }
    }

    /// Records the proof and moves the trade: awaiting payment → paid, and
    /// paid → released when the seller opted in, in this one command.
    fn pay_verified(
        &mut self,
        id: TradeId,
        payment: VerifiedPayment,
        release: bool,
        actor: Actor,
        now: Timestamp,
    ) {
        let t = invariant(self.trade(id), "paid trade vanished");
        let (seller, buyer, awaiting) = (
            t.seller,
            t.buyer,
            matches!(t.state, TradeState::AwaitingPayment { .. }),
        );
        self.emit(
            now,
            EventKind::PaymentVerified {
                trade: id,
                seller,
                buyer,
                channel: payment.channel.clone(),
                txn_id: payment.txn_id.clone(),
                amount: payment.amount,
                actor,
            },
        );
        self.add_payment(id, payment, actor, now);
        if awaiting {
            self.gateway_transition(id, TradeAction::GatewayPaid, "", actor, now);
        }
        if release {
            self.gateway_transition(id, TradeAction::GatewayRelease, "", actor, now);
        }
    }

    /// The proof on the trade and its timeline.
    fn add_payment(&mut self, id: TradeId, payment: VerifiedPayment, actor: Actor, now: Timestamp) {
        let t = self.trade_mut(id);
        t.timeline.push(TimelineEntry {
            at: now,
            actor,
            what: TimelineWhat::PaymentVerified {
                channel: payment.channel.clone(),
                txn_id: payment.txn_id.clone(),
                amount: payment.amount,
                paid_at: payment.paid_at,
            },
        });
        t.payments.push(payment);
    }

    /// A transition the gateway's proof causes; decided by the SPEC §10
    /// table like any other.
    fn gateway_transition(
        &mut self,
        id: TradeId,
        action: TradeAction,
        text: &str,
        actor: Actor,
        now: Timestamp,
    ) {
        let t: &Trade = invariant(self.trade(id), "trade vanished");
        let (to, reason) = invariant(
            t.step(action, Party::Gateway, now, &self.config).ok(),
            "gateway transition decided as allowed",
        );
        let d = Decision { actor, to, reason };
        self.transition(id, d, text, now);
    }

    fn record_anomaly(
        &mut self,
        kind: AnomalyKind,
        trade: Option<TradeId>,
        p: &GatewayPayment,
        payment: VerifiedPayment,
        actor: Actor,
        now: Timestamp,
    ) {
        let id = AnomalyId(self.next_id());
        self.state
            .anomaly_txns
            .insert((p.channel.clone(), p.txn_id.clone()), id);
        self.state.open_anomalies.insert(id);
        self.emit(
            now,
            EventKind::PaymentAnomaly {
                anomaly: id,
                kind: kind.clone(),
                trade,
                channel: p.channel.clone(),
                actor,
            },
        );
        let anomaly = Anomaly {
            id,
            kind,
            trade,
            reference: p.reference.clone(),
            payment,
            currency: p.currency.clone(),
            resolution: None,
        };
        self.state.anomalies.insert(id, anomaly);
    }

    /// CS closes an anomaly with a note of what was done.
    pub(crate) fn resolve_anomaly(
        &mut self,
        agent: UserId,
        id: AnomalyId,
        note: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.text_arg("note", note, true)?;
        let a = self
            .state
            .anomalies
            .get(&id)
            .ok_or(Rejection::AnomalyNotFound(id))?;
        if let Some(t) = a.trade.and_then(|t| self.trade(t))
            && (t.buyer == agent || t.seller == agent)
        {
            return Err(Rejection::NotAllowed(
                "an agent cannot resolve a payment anomaly on their own trade",
            ));
        }
        if a.resolution.is_some() {
            return Err(Rejection::WrongState {
                what: "payment anomaly",
                id: id.to_string(),
                state: "RESOLVED",
                action: "resolve",
            });
        }
        let a = invariant(self.state.anomalies.get_mut(&id), "anomaly vanished");
        a.resolution = Some(AnomalyResolution {
            agent,
            at: now,
            note: note.to_owned(),
        });
        self.state.open_anomalies.remove(&id);
        self.emit(now, EventKind::AnomalyResolved { anomaly: id, agent });
        Ok(())
    }
}
