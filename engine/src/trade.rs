//! Trades and their state machine (SPEC §10).
//!
//! [`Trade::step`] holds every transition in one `match (state, action)` that
//! reads against the SPEC §10 table line by line. Balance moves for each
//! transition live in `ops_trade.rs`; this module only decides *whether* and
//! *to what*.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::command::Resolution;
use crate::config::EngineConfig;
use crate::ids::{BuyOrderId, EvidenceId, ListingId, MethodId, Timestamp, TradeId, UserId};
use crate::money::{Asset, CoinAmount, Fiat, FiatAmount, Price};
use crate::rejection::Rejection;
use crate::users::MethodDetails;

/// A trade's state, with the data that belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeState {
    /// Matched; the buyer must pay by `pay_by`.
    AwaitingPayment {
        /// End of the payment window.
        pay_by: Timestamp,
    },
    /// The buyer says the fiat is sent (待放币).
    Paid {
        /// When the buyer marked it paid.
        paid_at: Timestamp,
        /// From then either side may appeal.
        appeal_from: Timestamp,
        /// Then the system appeals it, if still unreleased.
        auto_appeal_at: Timestamp,
    },
    /// Disputed; CS decides unless the parties settle.
    Appealed {
        /// When the buyer marked it paid.
        paid_at: Timestamp,
    },
    /// Done: the coin went to the buyer.
    Released {
        /// When the buyer marked it paid.
        paid_at: Timestamp,
        /// When it was released.
        at: Timestamp,
    },
    /// Done: the coin went back to the listing or the seller.
    Cancelled {
        /// When it was cancelled.
        at: Timestamp,
        /// Why.
        reason: TransitionReason,
    },
}

/// A state's name, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TradeStateKind {
    /// See [`TradeState::AwaitingPayment`].
    AwaitingPayment,
    /// See [`TradeState::Paid`].
    Paid,
    /// See [`TradeState::Appealed`].
    Appealed,
    /// See [`TradeState::Released`].
    Released,
    /// See [`TradeState::Cancelled`].
    Cancelled,
}

impl TradeStateKind {
    /// The name users and the API see.
    pub fn name(self) -> &'static str {
        match self {
            TradeStateKind::AwaitingPayment => "AWAITING_PAYMENT",
            TradeStateKind::Paid => "PAID",
            TradeStateKind::Appealed => "APPEALED",
            TradeStateKind::Released => "RELEASED",
            TradeStateKind::Cancelled => "CANCELLED",
        }
    }
}

impl TradeState {
    /// The state's name.
    pub fn kind(&self) -> TradeStateKind {
        match self {
            TradeState::AwaitingPayment { .. } => TradeStateKind::AwaitingPayment,
            TradeState::Paid { .. } => TradeStateKind::Paid,
            TradeState::Appealed { .. } => TradeStateKind::Appealed,
            TradeState::Released { .. } => TradeStateKind::Released,
            TradeState::Cancelled { .. } => TradeStateKind::Cancelled,
        }
    }

    /// Not yet released or cancelled: its coin is escrowed (SPEC §4 L2).
    pub fn is_open(&self) -> bool {
        !matches!(
            self,
            TradeState::Released { .. } | TradeState::Cancelled { .. }
        )
    }
}

/// Who did something to a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The buyer.
    Buyer(UserId),
    /// The seller.
    Seller(UserId),
    /// A CS agent.
    Support(UserId),
    /// A timer.
    System,
    /// A payment channel's verified notification (SPEC §19); the timeline
    /// entry beside it names the channel.
    Gateway,
    /// A payment applied from the gateway's bill by reconciliation (SPEC §20).
    Reconciliation,
}

/// Why a transition happened; recorded in the timeline and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransitionReason {
    /// Created by matching a listing or a merchant.
    Matched,
    /// The buyer marked it paid.
    MarkedPaid,
    /// The buyer cancelled before paying.
    BuyerCancelled,
    /// The payment window elapsed.
    PaymentTimeout,
    /// The seller released.
    SellerReleased,
    /// The seller or buyer appealed.
    AppealOpened,
    /// Unreleased too long after payment; the system appealed.
    AutoAppealed,
    /// CS released the coin to the buyer.
    ResolvedRelease,
    /// CS refunded the coin to the seller.
    ResolvedRefund,
    /// The seller released during the appeal.
    SettledBySellerRelease,
    /// The buyer withdrew the appeal, admitting no payment.
    BuyerWithdrewAppeal,
    /// A payment channel proved the payment (SPEC §19).
    GatewayVerified,
    /// The seller opted in to release on verified payment.
    ReleasedOnVerifiedPayment,
    /// The gateway proved a payment of another amount; the system appealed.
    GatewayAmountMismatch,
}

/// An action on a trade, before knowing whether it is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeAction {
    /// Buyer: fiat sent.
    MarkPaid,
    /// Buyer: cancel.
    Cancel,
    /// Seller: release.
    Release,
    /// Either party: appeal.
    OpenAppeal,
    /// CS: decide.
    Resolve(Resolution),
    /// Timer: payment window elapsed.
    PaymentTimeout,
    /// Timer: paid too long ago without release.
    AutoAppeal,
    /// Gateway: a verified payment of the right amount.
    GatewayPaid,
    /// Gateway: release, as the seller opted in at publish.
    GatewayRelease,
    /// Gateway: a verified payment of another amount.
    GatewayMismatch,
}

impl TradeAction {
    /// The action's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            TradeAction::MarkPaid => "mark paid",
            TradeAction::Cancel => "cancel",
            TradeAction::Release => "release",
            TradeAction::OpenAppeal => "appeal",
            TradeAction::Resolve(Resolution::Release) => "resolve (release)",
            TradeAction::Resolve(Resolution::Refund) => "resolve (refund)",
            TradeAction::PaymentTimeout => "time out",
            TradeAction::AutoAppeal => "auto-appeal",
            TradeAction::GatewayPaid => "mark paid (gateway)",
            TradeAction::GatewayRelease => "release (gateway)",
            TradeAction::GatewayMismatch => "appeal (gateway amount)",
        }
    }
}

/// What the timeline records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimelineWhat {
    /// A state change.
    Transition {
        /// Previous state (`None` at creation).
        from: Option<TradeStateKind>,
        /// New state.
        to: TradeStateKind,
        /// Why.
        reason: TransitionReason,
    },
    /// An agent claimed the appeal.
    AppealClaimed,
    /// An agent handed the appeal back.
    AppealUnclaimed,
    /// Evidence was added.
    EvidenceAdded(EvidenceId),
    /// A payment channel proved a payment (SPEC §19): verified evidence.
    PaymentVerified {
        /// The channel.
        channel: String,
        /// The provider's transaction id.
        txn_id: String,
        /// The amount paid.
        amount: rust_decimal::Decimal,
        /// When the gateway says it was paid.
        paid_at: Option<Timestamp>,
    },
}

/// One line of a trade's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub what: TimelineWhat,
}

/// Links the tries of one fast sell (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastMatchLink {
    /// The first trade of the chain.
    pub origin: TradeId,
    /// 1 for the first try.
    pub attempt: u32,
    /// Merchants tried so far, this one included.
    pub tried: Vec<UserId>,
}

/// One match between a seller and a buyer for a definite amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Its id.
    pub id: TradeId,
    /// Who sells (escrow owner).
    pub seller: UserId,
    /// Who buys (a merchant for fast-match trades).
    pub buyer: UserId,
    /// The listing it came from; `None` for fast match.
    pub listing: Option<ListingId>,
    /// The buy order it filled, if it came from one that rested.
    pub buy_order: Option<BuyOrderId>,
    /// The coin.
    pub asset: Asset,
    /// The fiat.
    pub fiat: Fiat,
    /// Fiat per coin.
    pub price: Price,
    /// Coin escrowed for it.
    pub coin: CoinAmount,
    /// Fiat the buyer pays: `coin × price`, half-up.
    pub fiat_amount: FiatAmount,
    /// The seller's method the buyer pays to.
    pub method: MethodId,
    /// Its details as bound when the trade was made (shown to the buyer and CS).
    pub method_details: Arc<MethodDetails>,
    /// Payment window.
    pub payment_window_ms: i64,
    /// When matched.
    pub created_at: Timestamp,
    /// Current state.
    pub state: TradeState,
    /// Fast-match chain, if any.
    pub fast_match: Option<FastMatchLink>,
    /// The seller opted in to release when a channel proves payment.
    pub release_on_verified: bool,
    /// Payments a channel proved for it (SPEC §19), kept with its history
    /// so a notification repeated days later is still recognised.
    pub payments: Vec<crate::payment::VerifiedPayment>,
    /// For a floating listing's trade: the reference its price came from,
    /// fixed at match (SPEC §22).
    pub basis: Option<crate::pricing::PriceBasis>,
    /// Its chat so far (SPEC §11a), bounded per trade (SPEC §18).
    pub chat: ChatCount,
    /// Every transition and agent action, in order.
    pub timeline: Vec<TimelineEntry>,
}

/// Messages and files posted to a trade's chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatCount {
    /// Messages, with or without a file.
    pub messages: u32,
    /// Messages that carry a file.
    pub files: u32,
}

/// Who, relative to a trade, is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The trade's buyer.
    Buyer,
    /// The trade's seller.
    Seller,
    /// A CS agent (role checked by the API).
    Support,
    /// A timer.
    System,
    /// A payment channel's verified notification.
    Gateway,
}

impl Trade {
    /// The party `user` is to this trade, if any.
    pub fn party_of(&self, user: UserId) -> Option<Party> {
        if self.buyer == user {
            Some(Party::Buyer)
        } else if self.seller == user {
            Some(Party::Seller)
        } else {
            None
        }
    }

    /// The refusal of `action` in this trade's state (SPEC §10: naming it).
    pub(crate) fn wrong_state(&self, action: &'static str) -> Rejection {
        Rejection::WrongState {
            what: "trade",
            id: self.id.to_string(),
            state: self.state.kind().name(),
            action,
        }
    }

    /// Whether `action` may be taken by `party` at all, whatever the state.
    fn check_party(&self, action: TradeAction, party: Party) -> Result<(), Rejection> {
        use TradeAction as A;
        let why = match (action, party) {
            (A::MarkPaid, Party::Buyer)
            | (A::Cancel, Party::Buyer)
            | (A::Release, Party::Seller)
            | (A::OpenAppeal, Party::Buyer | Party::Seller)
            | (A::Resolve(_), Party::Support)
            | (A::PaymentTimeout | A::AutoAppeal, Party::System)
            | (A::GatewayPaid | A::GatewayRelease | A::GatewayMismatch, Party::Gateway) => {
                return Ok(());
            }
            (A::Cancel, _) => {
                "the seller can never cancel a trade; open an appeal if the fiat did not arrive"
            }
            (A::MarkPaid, _) => "only the buyer can mark a trade paid",
            (A::Release, _) => "only the seller can release the coin",
            (A::Resolve(_), _) => "only customer service can resolve an appeal",
            _ => "you cannot take this action on this trade",
        };
        Err(Rejection::PartyCannot {
            action: action.name(),
            id: self.id.to_string(),
            state: self.state.kind().name(),
            why,
        })
    }

    /// Decides the next state for `action` by `party` at `now`: the SPEC §10
    /// table. Changes nothing.
    ///
    /// # Errors
    /// The party may not act, or the state forbids the action (naming it), or
    /// the action is too early or too late.
    pub fn step(
        &self,
        action: TradeAction,
        party: Party,
        now: Timestamp,
        cfg: &EngineConfig,
    ) -> Result<(TradeState, TransitionReason), Rejection> {
        use TradeAction as A;
        use TradeState as S;
        use TransitionReason as R;
        self.check_party(action, party)?;
        let cancelled = |reason| Ok((S::Cancelled { at: now, reason }, reason));
        match (self.state, action) {
            (S::AwaitingPayment { pay_by }, A::MarkPaid) => {
                if now >= pay_by {
                    return Err(Rejection::PaymentWindowClosed(self.id));
                }
                let paid = S::Paid {
                    paid_at: now,
                    appeal_from: now.plus_ms(cfg.appeal_after_ms),
                    auto_appeal_at: now.plus_ms(cfg.auto_appeal_after_ms),
                };
                Ok((paid, R::MarkedPaid))
            }
            // The gateway's payment time was checked against the window
            // before (a late one is an anomaly, not a transition).
            (S::AwaitingPayment { .. }, A::GatewayPaid) => Ok((
                S::Paid {
                    paid_at: now,
                    appeal_from: now.plus_ms(cfg.appeal_after_ms),
                    auto_appeal_at: now.plus_ms(cfg.auto_appeal_after_ms),
                },
                R::GatewayVerified,
            )),
            (S::AwaitingPayment { .. }, A::GatewayMismatch) => {
                Ok((S::Appealed { paid_at: now }, R::GatewayAmountMismatch))
            }
            (S::Paid { paid_at, .. }, A::GatewayMismatch) => {
                Ok((S::Appealed { paid_at }, R::GatewayAmountMismatch))
            }
            (S::Paid { paid_at, .. }, A::GatewayRelease) => Ok((
                S::Released { paid_at, at: now },
                R::ReleasedOnVerifiedPayment,
            )),
            (S::AwaitingPayment { .. }, A::Cancel) => cancelled(R::BuyerCancelled),
            (S::AwaitingPayment { pay_by }, A::PaymentTimeout) if now >= pay_by => {
                cancelled(R::PaymentTimeout)
            }
            (S::Paid { paid_at, .. }, A::Release) => {
                Ok((S::Released { paid_at, at: now }, R::SellerReleased))
            }
            (
                S::Paid {
                    paid_at,
                    appeal_from,
                    ..
                },
                A::OpenAppeal,
            ) => {
                if now < appeal_from {
                    return Err(Rejection::AppealTooEarly {
                        trade: self.id,
                        opens_at: appeal_from,
                        after_ms: appeal_from.ms_since(paid_at),
                    });
                }
                Ok((S::Appealed { paid_at }, R::AppealOpened))
            }
            (
                S::Paid {
                    paid_at,
                    auto_appeal_at,
                    ..
                },
                A::AutoAppeal,
            ) if now >= auto_appeal_at => Ok((S::Appealed { paid_at }, R::AutoAppealed)),
            (S::Appealed { paid_at }, A::Resolve(Resolution::Release)) => {
                Ok((S::Released { paid_at, at: now }, R::ResolvedRelease))
            }
            (S::Appealed { .. }, A::Resolve(Resolution::Refund)) => cancelled(R::ResolvedRefund),
            (S::Appealed { paid_at }, A::Release) => {
                Ok((S::Released { paid_at, at: now }, R::SettledBySellerRelease))
            }
            (S::Appealed { .. }, A::Cancel) => cancelled(R::BuyerWithdrewAppeal),
            (_, action) => Err(self.wrong_state(action.name())),
        }
    }
}
