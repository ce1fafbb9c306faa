//! A naive reference model of the trade state machine (SPEC §10), appeals
//! (SPEC §11) and their timers (SPEC §12), for differential testing.
//!
//! The simulator applies each command to the real engine, then hands the
//! command and the engine's answer to [`Model::step`]. The model predicts
//! from its own state what SPEC allows, compares, and only then updates
//! itself from the events. It is written from the SPEC, not from the engine:
//! plain maps, deadlines recomputed by scanning every trade, no indexes.
//!
//! Scope: trades (created, paid, cancelled, released, appealed), appeal
//! claims, and the payment-timeout, appeal-eligibility and auto-appeal
//! timers. Matching, prices, balances, listings and buy orders are out of
//! scope: the model learns a trade exists from its `TradeCreated` event.
//!
//! Where SPEC is silent the choice was learned from the engine's *events*
//! (never its code); each such place says so in a comment starting with
//! "Learned:".
//!
//! After `step` reports a disagreement the model's state is unspecified:
//! the run should stop there.

use std::collections::BTreeMap;

use otc_engine::trade::{TradeStateKind, TransitionReason};
use otc_engine::{Command, EngineConfig, Event, ListingId, Rejection, Timestamp, TradeId, UserId};

mod apply;
mod expect;
mod transition;

/// How many trades the model tracks in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Matched, waiting for the buyer to pay.
    pub awaiting_payment: usize,
    /// Marked paid, waiting for the seller to release.
    pub paid: usize,
    /// Disputed, waiting for CS or a settlement.
    pub appealed: usize,
    /// Done: the coin went to the buyer.
    pub released: usize,
    /// Done: the coin went back to the seller's side.
    pub cancelled: usize,
}

impl Counts {
    /// Every trade the model has seen created.
    pub fn total(&self) -> usize {
        self.open() + self.released + self.cancelled
    }

    /// Trades not yet released or cancelled.
    pub fn open(&self) -> usize {
        self.awaiting_payment + self.paid + self.appealed
    }
}

/// The windows the model needs from the engine's configuration (SPEC §7,
/// §9, §10), copied once: the model never follows a config change.
#[derive(Debug, Clone, Copy)]
struct Windows {
    /// Time after PAID before either party may appeal.
    appeal_after_ms: i64,
    /// Time after PAID when the system appeals an unreleased trade.
    auto_appeal_after_ms: i64,
    /// Payment window of fast-match trades.
    merchant_window_ms: i64,
    /// Payment window of a listing that names none.
    payment_window_ms_default: i64,
    /// Shortest listing payment window.
    payment_window_ms_min: i64,
    /// Longest listing payment window.
    payment_window_ms_max: i64,
}

/// What the model remembers of a listing: only what its trades inherit.
#[derive(Debug, Clone, Copy)]
struct ListingTerms {
    /// The payment window its trades get.
    window_ms: i64,
    /// The seller opted in to release on verified payment (SPEC §19).
    release_on_verified: bool,
}

/// One trade as the model sees it.
#[derive(Debug, Clone)]
struct Trade {
    /// Who sells.
    seller: UserId,
    /// Who buys.
    buyer: UserId,
    /// The listing it came from; `None` for fast match.
    listing: Option<ListingId>,
    /// End of the payment window.
    pay_by: Timestamp,
    /// Current state.
    state: TradeStateKind,
    /// When it became PAID; appeal deadlines run from it.
    paid_at: Option<Timestamp>,
    /// When it became RELEASED or CANCELLED.
    ended_at: Option<Timestamp>,
    /// The reason of its last transition.
    last_reason: TransitionReason,
    /// The appeal-eligibility timer has fired for it.
    appeal_available_seen: bool,
    /// The agent holding its appeal, if claimed.
    holder: Option<UserId>,
    /// Release on verified payment, when the model knows it.
    release_on_verified: Option<bool>,
}

impl Trade {
    /// When either party may appeal, once PAID.
    fn appeal_from(&self, w: &Windows) -> Option<Timestamp> {
        self.paid_at.map(|p| p.plus_ms(w.appeal_after_ms))
    }

    /// When the system appeals it, if still PAID.
    fn auto_appeal_at(&self, w: &Windows) -> Option<Timestamp> {
        self.paid_at.map(|p| p.plus_ms(w.auto_appeal_after_ms))
    }

    /// Released or cancelled.
    fn is_terminal(&self) -> bool {
        matches!(
            self.state,
            TradeStateKind::Released | TradeStateKind::Cancelled
        )
    }

    /// The party `user` is, if any.
    fn party(&self, user: UserId) -> Option<expect::Party> {
        if user == self.buyer {
            Some(expect::Party::Buyer)
        } else if user == self.seller {
            Some(expect::Party::Seller)
        } else {
            None
        }
    }
}

/// The reference model. Feed it every command the engine handled, in order.
#[derive(Debug, Clone)]
pub struct Model {
    /// Windows from the configuration.
    windows: Windows,
    /// The engine's clock as the model sees it: the latest `now` of an
    /// applied command (the engine treats an earlier `now` as this).
    clock: Timestamp,
    /// Every trade ever created, by id.
    trades: BTreeMap<TradeId, Trade>,
    /// Terms of every published listing, by id.
    listings: BTreeMap<ListingId, ListingTerms>,
}

impl Model {
    /// A model with no trades, using the windows of `config`.
    pub fn new(config: &EngineConfig) -> Model {
        Model {
            windows: Windows {
                appeal_after_ms: config.appeal_after_ms,
                auto_appeal_after_ms: config.auto_appeal_after_ms,
                merchant_window_ms: config.merchant_window_ms,
                payment_window_ms_default: config.payment_window_ms_default,
                payment_window_ms_min: config.payment_window_ms_min,
                payment_window_ms_max: config.payment_window_ms_max,
            },
            clock: Timestamp(i64::MIN),
            trades: BTreeMap::new(),
            listings: BTreeMap::new(),
        }
    }

    /// One command the real engine handled at `now`, and what it did:
    /// `Ok(events)` applied (the events it emitted), `Err(rejection)` refused.
    /// The model predicts from its own state, compares, then updates itself.
    ///
    /// # Errors
    /// A one-line description naming the trade, the command, what SPEC
    /// expects and what the engine did, on any disagreement.
    pub fn step(
        &mut self,
        now: Timestamp,
        command: &Command,
        result: Result<&[Event], &Rejection>,
    ) -> Result<(), String> {
        // The engine never lets time run backwards (Engine::apply docs).
        let now = now.max(self.clock);
        let expect = self.expect(command, now);
        let outcome = match result {
            Err(rejection) => expect.check_refusal(rejection, command),
            Ok(events) => self.check_applied(now, command, &expect, events),
        };
        if result.is_ok() {
            self.clock = now;
        }
        outcome.map_err(|what| {
            let trade = expect
                .trade
                .map_or_else(|| "-".to_string(), |t| t.to_string());
            let actor = command
                .actor()
                .map_or_else(|| "system".to_string(), |u| format!("{u:?}"));
            format!("{trade}: {} by {actor} at {now:?}: {what}", command.name())
        })
    }

    /// Number of trades the model tracks in each state.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for trade in self.trades.values() {
            let slot = match trade.state {
                TradeStateKind::AwaitingPayment => &mut counts.awaiting_payment,
                TradeStateKind::Paid => &mut counts.paid,
                TradeStateKind::Appealed => &mut counts.appealed,
                TradeStateKind::Released => &mut counts.released,
                TradeStateKind::Cancelled => &mut counts.cancelled,
            };
            *slot += 1;
        }
        counts
    }

    /// After a FireDue at `now`: no trade may still wait in a state a due
    /// timer should have moved it out of (SPEC §12: every due deadline fires).
    fn check_nothing_missed(&self, now: Timestamp) -> Result<(), String> {
        let w = &self.windows;
        for (id, t) in &self.trades {
            let missed = match t.state {
                TradeStateKind::AwaitingPayment if t.pay_by <= now => {
                    Some(("payment timeout", t.pay_by))
                }
                TradeStateKind::Paid => match (t.auto_appeal_at(w), t.appeal_from(w)) {
                    (Some(at), _) if at <= now => Some(("auto-appeal", at)),
                    (_, Some(at)) if at <= now && !t.appeal_available_seen => {
                        Some(("appeal-eligibility", at))
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some((timer, due)) = missed {
                return Err(format!(
                    "missed: SPEC §12 expects the {timer} of {id} (due {due:?}, {} ms ago) to fire, \
                     but after FireDue it is still {}",
                    now.ms_since(due),
                    t.state.name()
                ));
            }
        }
        Ok(())
    }
}
