//! What a verified notification says, in provider-neutral terms.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The kind of gateway behind a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// An Alipay open-platform app (RSA2).
    Alipay,
    /// A WeChat Pay API v3 merchant.
    WeChatPay,
    /// A processor or bank signing webhooks with a shared secret.
    Hmac,
}

impl Provider {
    /// The name the channels file and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Alipay => "alipay",
            Provider::WeChatPay => "wechatpay",
            Provider::Hmac => "hmac",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified, parsed notification. Only [`crate::Channel::verify`] makes
/// one, and only after the signature (and, for WeChat Pay, the decryption)
/// passed and the account ids were the channel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The provider's transaction id (Alipay `trade_no`, WeChat
    /// `transaction_id`, hmac `id`): what makes a notification a duplicate.
    pub txn_id: String,
    /// Our payment reference (Alipay and WeChat `out_trade_no`, hmac
    /// `reference`).
    pub reference: String,
    /// The amount in yuan, exact: at most 2 decimal places. Alipay's
    /// `total_amount` and hmac's `amount` are parsed as decimal text
    /// (positive); WeChat's integer fen becomes `fen / 100` exactly.
    pub amount: Decimal,
    /// The currency the gateway stated (`CNY` for Alipay).
    pub currency: String,
    /// Whether the status means paid: Alipay `TRADE_SUCCESS` or
    /// `TRADE_FINISHED`, WeChat `SUCCESS`, hmac `paid`.
    pub paid: bool,
    /// The raw status, for the timeline and anomalies.
    pub status: String,
    /// When the gateway says it was paid, if it says.
    pub paid_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_named_as_in_the_channels_file() {
        for (provider, name) in [
            (Provider::Alipay, "alipay"),
            (Provider::WeChatPay, "wechatpay"),
            (Provider::Hmac, "hmac"),
        ] {
            assert_eq!(provider.to_string(), name);
            let json = serde_json::to_string(&provider).expect("serialize");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Provider>(&json).ok(), Some(provider));
        }
    }
}
