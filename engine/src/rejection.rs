//! Rejections: what the caller did wrong, or what the state forbids.
//!
//! A rejection changes nothing. Each has a [`RejectionKind`] that the API maps
//! to a gRPC status (SPEC §15) and a message a person can act on. Internal
//! faults (a broken invariant) are not rejections: they are bugs and panic in
//! debug builds.

use rust_decimal::Decimal;

use crate::ids::{
    AnomalyId, BuyOrderId, ListingId, MethodId, MistakeId, Timestamp, TradeId, UserId,
};
use crate::money::{AmountError, Asset, Fiat};

/// The class of a rejection; the API maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Malformed input: INVALID_ARGUMENT.
    InvalidArgument,
    /// The state forbids it now: FAILED_PRECONDITION.
    FailedPrecondition,
    /// Unknown id, or not the caller's (hides existence): NOT_FOUND.
    NotFound,
    /// The caller may not do this: PERMISSION_DENIED.
    PermissionDenied,
    /// A configured bound was hit: RESOURCE_EXHAUSTED.
    ResourceExhausted,
    /// An idempotency key reused with other parameters: ALREADY_EXISTS.
    AlreadyExists,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// An amount field is not acceptable.
    #[error("{field} {reason}")]
    InvalidAmount {
        /// The request field.
        field: &'static str,
        /// What is wrong with it.
        reason: AmountError,
    },
    /// Another field is not acceptable.
    #[error("{field} {reason}")]
    InvalidField {
        /// The request field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The asset is not traded here.
    #[error("asset {0} is not traded here")]
    UnknownAsset(Asset),
    /// The fiat currency is not accepted here.
    #[error("fiat currency {0} is not accepted here")]
    UnknownFiat(Fiat),
    /// Not enough available coin.
    #[error("insufficient {asset} balance: {needed} needed, {available} available")]
    InsufficientBalance {
        /// The asset.
        asset: Asset,
        /// What the command needs.
        needed: Decimal,
        /// What is available.
        available: Decimal,
    },
    /// The seller has no bound method or no fund password.
    #[error("cannot sell yet: {missing}")]
    NotReadyToSell {
        /// What to set up first, in words.
        missing: &'static str,
    },
    /// A method named is not one of the caller's.
    #[error("payment method {0} is not one of your bound methods")]
    UnknownMethod(MethodId),
    /// The method is in use and cannot be removed.
    #[error("payment method {method} is used by {uses}; it can be removed once they end")]
    MethodInUse {
        /// The method.
        method: MethodId,
        /// What uses it, in words.
        uses: String,
    },
    /// No fund password has been set.
    #[error("set a fund password first")]
    NoFundPassword,
    /// The fund password changed after it was verified.
    #[error("the fund password changed while this request was checked; please try again")]
    StaleFundPasswordProof,
    /// The fund password was not checked because the user was locked, and
    /// the lock has ended since.
    #[error("your fund-password lock has just ended; please try again")]
    FundPasswordUnchecked,
    /// The fund password typed was wrong (never returned by `apply`: the
    /// engine records the failure instead).
    #[error("wrong fund password")]
    WrongFundPassword,
    /// Changing the fund password needs the current one.
    #[error("changing the fund password requires the current fund password")]
    CurrentFundPasswordRequired,
    /// Too many wrong fund passwords.
    #[error("fund password locked after too many wrong attempts; try again after {until}")]
    FundPasswordLocked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The item does not exist (or is not the caller's).
    #[error("{what} {id} not found")]
    NotFound {
        /// Listing, trade, buy order…
        what: &'static str,
        /// The id as shown.
        id: String,
    },
    /// The caller is a party but may not take this action.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// Not possible in the state things are in, whoever asks: why.
    #[error("{0}")]
    Precondition(&'static str),
    /// The action is not allowed in the current state.
    #[error("cannot {action} {what} {id}: it is {state}")]
    WrongState {
        /// Listing, trade, appeal…
        what: &'static str,
        /// The id as shown.
        id: String,
        /// The current state's name.
        state: &'static str,
        /// The action attempted.
        action: &'static str,
    },
    /// A party of the trade may not take this action (whatever the state).
    #[error("cannot {action} trade {id} (it is {state}): {why}")]
    PartyCannot {
        /// The action attempted.
        action: &'static str,
        /// The trade as shown.
        id: String,
        /// The current state's name.
        state: &'static str,
        /// Who may, in words.
        why: &'static str,
    },
    /// The appeal window has not opened yet.
    #[error(
        "trade {trade} can be appealed from {opens_at} ({}, the configured appeal_after, after it was marked paid)",
        crate::ids::human_duration(*after_ms)
    )]
    AppealTooEarly {
        /// The trade.
        trade: TradeId,
        /// When appeals open.
        opens_at: Timestamp,
        /// The window in force when it was marked paid.
        after_ms: i64,
    },
    /// The payment window has closed; the trade is being cancelled.
    #[error("the payment window of trade {0} has closed")]
    PaymentWindowClosed(TradeId),
    /// Nothing in the book can fill the buy.
    #[error("no listing can fill this buy: {0}")]
    NoMatch(&'static str),
    /// No merchant can take the fast sell.
    #[error("no partner merchant can take this sale now: {0}")]
    NoFittingMerchant(&'static str),
    /// The buyer hit the daily cancel limit.
    #[error(
        "buying is paused after {count} cancelled trades today; it resumes at {until} (next UTC day)"
    )]
    CancelLimitReached {
        /// Cancels counted today.
        count: u32,
        /// Start of the next UTC day.
        until: Timestamp,
    },
    /// The user is not a registered merchant.
    #[error("only registered partner merchants can do this")]
    NotAMerchant,
    /// A per-user or per-item bound was hit.
    #[error("limit reached: at most {max} {what}")]
    LimitReached {
        /// What is bounded.
        what: &'static str,
        /// The bound.
        max: u64,
    },
    /// An external reference was used for a different deposit or withdrawal.
    #[error("external reference {0:?} was already used with other parameters")]
    ExternalRefReused(String),
    /// A user tried to trade with or block themselves.
    #[error("{0}")]
    SelfAction(&'static str),
    /// A floating listing cannot be published while its market's reference
    /// price is missing or older than allowed (SPEC §22): the market's
    /// state, not the request, is at fault.
    #[error("{asset}/{fiat} has no fresh reference price; a floating listing needs one to publish")]
    NoFreshReference {
        /// The market's coin.
        asset: Asset,
        /// The market's fiat.
        fiat: Fiat,
    },
    /// A listing that is not the caller's.
    #[error("listing {0} not found")]
    ListingNotFound(ListingId),
    /// A buy order that is not the caller's.
    #[error("buy order {0} not found")]
    BuyOrderNotFound(BuyOrderId),
    /// A trade the caller is not a party to.
    #[error("trade {0} not found")]
    TradeNotFound(TradeId),
    /// A notification whose provider transaction id was applied before
    /// (SPEC §19): nothing changes, and the gateway is told success.
    #[error("payment {0} was already applied")]
    DuplicatePayment(String),
    /// A channel method bound by a user the channel is not assigned to.
    #[error("payment channel {0} is not assigned to you; an admin assigns channels")]
    ChannelNotAssigned(String),
    /// The trade does not pay through a payment channel.
    #[error("trade {0} is not paid through a payment channel")]
    NotOnChannel(TradeId),
    /// The engine no longer holds the trade a verified payment names: the
    /// shell must look it up in durable history and submit again.
    #[error("trade {0} left the working set; look it up in history")]
    HistoryNeeded(TradeId),
    /// The channel is another user's.
    #[error("payment channel {channel} is assigned to {owner}; a channel has one owner")]
    ChannelTaken {
        /// The channel.
        channel: String,
        /// Its owner.
        owner: UserId,
    },
    /// No such reconciliation mistake.
    #[error("reconciliation mistake {0} not found")]
    MistakeNotFound(MistakeId),
    /// No such payment anomaly.
    #[error("payment anomaly {0} not found")]
    AnomalyNotFound(AnomalyId),
    /// An appeal claimed by another agent.
    #[error("appeal on trade {trade} is held by agent {holder}; they must hand it back first")]
    ClaimedByOther {
        /// The trade.
        trade: TradeId,
        /// The agent holding it.
        holder: UserId,
    },
}

impl Rejection {
    /// The status class of this rejection (SPEC §15).
    pub fn kind(&self) -> RejectionKind {
        use Rejection::*;
        match self {
            InvalidAmount { .. } | InvalidField { .. } | UnknownAsset(_) | UnknownFiat(_) => {
                RejectionKind::InvalidArgument
            }
            NotFound { .. }
            | ListingNotFound(_)
            | BuyOrderNotFound(_)
            | TradeNotFound(_)
            | AnomalyNotFound(_)
            | MistakeNotFound(_)
            | UnknownMethod(_) => RejectionKind::NotFound,
            NotAllowed(_) | NotAMerchant | ClaimedByOther { .. } => RejectionKind::PermissionDenied,
            LimitReached { .. } => RejectionKind::ResourceExhausted,
            ExternalRefReused(_) => RejectionKind::AlreadyExists,
            InsufficientBalance { .. }
            | NotReadyToSell { .. }
            | MethodInUse { .. }
            | NoFundPassword
            | StaleFundPasswordProof
            | WrongFundPassword
            | FundPasswordUnchecked
            | CurrentFundPasswordRequired
            | FundPasswordLocked { .. }
            | WrongState { .. }
            // SPEC §10: every other action in every state is refused
            // with FAILED_PRECONDITION naming the state, whoever asks.
            | PartyCannot { .. }
            | AppealTooEarly { .. }
            | PaymentWindowClosed(_)
            | NoMatch(_)
            | NoFittingMerchant(_)
            | CancelLimitReached { .. }
            | ChannelNotAssigned(_)
            | ChannelTaken { .. }
            | HistoryNeeded(_)
            | NotOnChannel(_)
            | SelfAction(_)
            | NoFreshReference { .. }
            // A payment applied before is a fact of state, not a reused
            // request id (the gateway's path answers it with success).
            | DuplicatePayment(_)
            | Precondition(_) => RejectionKind::FailedPrecondition,
        }
    }

    /// An amount field rejection.
    pub fn amount(field: &'static str, reason: AmountError) -> Self {
        Rejection::InvalidAmount { field, reason }
    }

    /// Another field's rejection.
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Rejection::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// Input echoed in a message: quoted as `{:?}` quotes it, cut to its first
/// 32 characters with its length said after, so a field of megabytes never
/// comes back whole (a gRPC error's message travels in a header).
pub fn shown(text: &str) -> String {
    const MAX: usize = 32;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_none() {
        return format!("{head:?}");
    }
    format!("{head:?}… ({} characters)", text.chars().count())
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn echoed_input_is_quoted_and_cut() {
        assert_eq!(shown("L-x"), "\"L-x\"");
        assert_eq!(shown(&"a".repeat(32)), format!("{:?}", "a".repeat(32)));
        let long = "中".repeat(9_000);
        let s = shown(&long);
        assert_eq!(s, format!("{:?}… (9000 characters)", "中".repeat(32)));
        assert_eq!(
            shown("\u{1b}[2K"),
            "\"\\u{1b}[2K\"",
            "control characters escaped"
        );
    }
}
