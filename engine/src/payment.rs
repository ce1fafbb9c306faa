//! Verified payment channels (SPEC §19): the facts a gateway proved, and the
//! anomalies CS must see.
//!
//! The shell verifies a notification's signature and parses it; the engine
//! gets a [`GatewayPayment`] of verified facts and decides every rule: which
//! trade it pays, whether the amount is right, whether it was seen before,
//! and what it does to the trade.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{AnomalyId, Timestamp, TradeId, UserId};
use crate::trade::TradeStateKind;

/// Longest channel name, in bytes (`[a-z0-9-]`).
pub const CHANNEL_NAME_MAX: usize = 32;
/// Longest provider transaction id or payment reference, in bytes.
pub const GATEWAY_ID_MAX: usize = 64;
/// Prefix of every payment reference (`out_trade_no`).
const REFERENCE_PREFIX: &str = "OTC";

/// The kind of gateway behind a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChannelProvider {
    /// An Alipay open-platform app (RSA2).
    Alipay,
    /// A WeChat Pay v3 merchant.
    WeChatPay,
    /// A processor signing webhooks with a shared secret.
    Hmac,
}

impl ChannelProvider {
    /// Alipay and WeChat Pay orders are in CNY.
    pub fn settles_cny_only(self) -> bool {
        matches!(self, ChannelProvider::Alipay | ChannelProvider::WeChatPay)
    }

    /// The name the config file and the wire use.
    pub fn name(self) -> &'static str {
        match self {
            ChannelProvider::Alipay => "alipay",
            ChannelProvider::WeChatPay => "wechatpay",
            ChannelProvider::Hmac => "hmac",
        }
    }
}

/// Checks a channel name: 1–32 of `a-z`, `0-9`, `-`.
///
/// # Errors
/// What is wrong, in words.
pub fn check_channel_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= CHANNEL_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {CHANNEL_NAME_MAX} characters of a-z, 0-9 and -"
        ))
    }
}

/// The payment reference of a trade: what the gateway calls `out_trade_no`.
pub fn payment_reference(trade: TradeId) -> String {
    format!("{REFERENCE_PREFIX}{:012}", trade.0)
}

/// The trade a payment reference names, if it is one of ours (exactly as
/// [`payment_reference`] writes it).
pub fn trade_of_reference(reference: &str) -> Option<TradeId> {
    let digits = reference.strip_prefix(REFERENCE_PREFIX)?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = TradeId(digits.parse().ok()?);
    (payment_reference(id) == reference).then_some(id)
}

/// A notification the shell verified: signature, app id and seller id were
/// the channel's, and the status means paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPayment {
    /// The channel whose endpoint received it.
    pub channel: String,
    /// Our payment reference (`out_trade_no`).
    pub reference: String,
    /// The provider's transaction id (Alipay `trade_no`, WeChat
    /// `transaction_id`): what makes a notification a duplicate.
    pub txn_id: String,
    /// The amount paid, exactly as the gateway stated it (yuan).
    pub amount: Decimal,
    /// The currency the gateway stated.
    pub currency: String,
    /// When the gateway says it was paid.
    pub paid_at: Option<Timestamp>,
    /// Whether the shell looked the reference's trade up in durable history
    /// (it does when the engine no longer held the trade). When the engine
    /// does not hold the trade and the shell did not look, the engine asks
    /// it to ([`crate::Rejection::HistoryNeeded`]): the trade may have been
    /// forgotten between the shell's look and the command.
    pub history_checked: bool,
    /// What durable history says of the trade, when the shell looked and
    /// found it.
    pub ended: Option<EndedTrade>,
}

/// A trade that left the engine's working set, as its history records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedTrade {
    /// The trade.
    pub trade: TradeId,
    /// Its final state.
    pub state: TradeStateKind,
    /// The channel it was paid through, if it was on one.
    pub channel: Option<String>,
    /// The (channel, transaction id) of payments verified on it.
    pub payments: Vec<(String, String)>,
}

/// A payment a gateway proved, kept on the trade (and so in its history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPayment {
    /// The channel.
    pub channel: String,
    /// The provider's transaction id.
    pub txn_id: String,
    /// The amount paid.
    pub amount: Decimal,
    /// When the gateway says it was paid.
    pub paid_at: Option<Timestamp>,
    /// When the notification was applied.
    pub received_at: Timestamp,
}

/// Why a verified payment could not simply pay its trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnomalyKind {
    /// The amount or currency differs from the trade's.
    WrongAmount {
        /// The trade's fiat amount.
        expected: Decimal,
        /// The trade's fiat currency.
        currency: String,
    },
    /// The trade was cancelled (or its window had passed) when it was paid.
    PaidAfterCancel,
    /// The trade had already ended (released, or refunded by CS).
    AlreadyEnded,
    /// The reference names no trade paying to this channel.
    UnknownReference,
    /// Another payment was already verified for the trade: the payer paid
    /// twice.
    PaidTwice,
}

impl AnomalyKind {
    /// The name CS and the wire see.
    pub fn name(&self) -> &'static str {
        match self {
            AnomalyKind::WrongAmount { .. } => "WRONG_AMOUNT",
            AnomalyKind::PaidAfterCancel => "PAID_AFTER_CANCEL",
            AnomalyKind::AlreadyEnded => "ALREADY_ENDED",
            AnomalyKind::UnknownReference => "UNKNOWN_REFERENCE",
            AnomalyKind::PaidTwice => "PAID_TWICE",
        }
    }
}

/// How CS closed an anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyResolution {
    /// The agent.
    pub agent: UserId,
    /// When.
    pub at: Timestamp,
    /// What was done (refunded off-platform, credited, …).
    pub note: String,
}

/// A verified payment CS must look at. Never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Its id.
    pub id: AnomalyId,
    /// What is wrong.
    pub kind: AnomalyKind,
    /// The trade the reference names, if any.
    pub trade: Option<TradeId>,
    /// The reference as the gateway sent it.
    pub reference: String,
    /// The payment.
    pub payment: VerifiedPayment,
    /// The currency the gateway stated.
    pub currency: String,
    /// Set once CS closes it.
    pub resolution: Option<AnomalyResolution>,
}

/// What a buyer's app needs to pay a trade through its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrderFacts {
    /// The trade.
    pub trade: TradeId,
    /// The channel.
    pub channel: String,
    /// Its provider.
    pub provider: ChannelProvider,
    /// `out_trade_no`.
    pub reference: String,
    /// The amount, as the server computed it.
    pub amount: Decimal,
    /// The fiat currency.
    pub currency: String,
    /// End of the payment window.
    pub pay_by: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_refuse_strangers() {
        let r = payment_reference(TradeId(42));
        assert_eq!(r, "OTC000000000042");
        assert_eq!(trade_of_reference(&r), Some(TradeId(42)));
        for bad in [
            "",
            "OTC",
            "OTC-1",
            "otc1",
            "XYZ000000000042",
            "OTC1a",
            "OTC 1",
            "OTC42",
            "OTC0000000000042",
        ] {
            assert_eq!(trade_of_reference(bad), None, "{bad:?}");
        }
        assert!(check_channel_name("alipay-main").is_ok());
        assert!(check_channel_name("Alipay").is_err());
        assert!(check_channel_name("").is_err());
    }
}
