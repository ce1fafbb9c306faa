//! Per-user state that is not money: payment methods (SPEC §5), the fund
//! password and its lockout (SPEC §6), blocks and the daily cancel count (§8).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{MethodId, Timestamp};
use crate::payment::{ChannelProvider, check_channel_name};

/// Longest holder name, bank name or account handle, in characters.
pub const METHOD_FIELD_CHARS_MAX: usize = 64;
/// Card numbers are 12 to 19 digits.
pub const CARD_DIGITS_MIN: usize = 12;
/// See [`CARD_DIGITS_MIN`].
pub const CARD_DIGITS_MAX: usize = 19;

/// The kind of a payment method, which is what buyers filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MethodKind {
    /// Bank card transfer.
    Bank,
    /// Alipay.
    Alipay,
    /// WeChat Pay.
    WeChat,
}

/// Receiving details as the seller bound them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MethodDetails {
    /// A bank card.
    Bank {
        /// Bank name.
        bank: String,
        /// Card holder.
        holder: String,
        /// Card number, digits only.
        card_number: String,
    },
    /// An Alipay account.
    Alipay {
        /// Account holder.
        holder: String,
        /// Account handle.
        account: String,
    },
    /// A WeChat Pay account.
    WeChat {
        /// Account holder.
        holder: String,
        /// Account handle.
        account: String,
    },
    /// A payment channel an admin assigned to this user (SPEC §19).
    Channel {
        /// The channel's name in the operator's channels file.
        channel: String,
        /// Its gateway.
        provider: ChannelProvider,
    },
}

impl MethodDetails {
    /// The method's kind.
    pub fn kind(&self) -> MethodKind {
        match self {
            MethodDetails::Bank { .. } => MethodKind::Bank,
            MethodDetails::Alipay { .. } => MethodKind::Alipay,
            MethodDetails::WeChat { .. } => MethodKind::WeChat,
            // Buyers choose by how they pay: a channel is paid with its
            // gateway's app (a generic processor counts as a bank transfer).
            MethodDetails::Channel { provider, .. } => match provider {
                ChannelProvider::Alipay => MethodKind::Alipay,
                ChannelProvider::WeChatPay => MethodKind::WeChat,
                ChannelProvider::Hmac => MethodKind::Bank,
            },
        }
    }

    /// Checks every field is present and of sane length.
    ///
    /// # Errors
    /// `(field, reason)` for the first field that is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let text = |field: &'static str, value: &str| {
            let n = value.trim().chars().count();
            if n == 0 {
                Err((field, "must not be empty".to_owned()))
            } else if n > METHOD_FIELD_CHARS_MAX {
                Err((
                    field,
                    format!("must be at most {METHOD_FIELD_CHARS_MAX} characters"),
                ))
            } else if let Some(why) = crate::args::control_in(value, false) {
                Err((field, why))
            } else {
                Ok(())
            }
        };
        match self {
            MethodDetails::Bank {
                bank,
                holder,
                card_number,
            } => {
                text("bank", bank)?;
                text("holder", holder)?;
                let digits = card_number.len();
                let ok = (CARD_DIGITS_MIN..=CARD_DIGITS_MAX).contains(&digits)
                    && card_number.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err((
                        // The wire names the card number `account`.
                        "account",
                        format!("must be {CARD_DIGITS_MIN} to {CARD_DIGITS_MAX} digits"),
                    ));
                }
                Ok(())
            }
            MethodDetails::Alipay { holder, account }
            | MethodDetails::WeChat { holder, account } => {
                text("holder", holder)?;
                text("account", account)
            }
            MethodDetails::Channel { channel, .. } => {
                check_channel_name(channel).map_err(|why| ("channel", why))
            }
        }
    }

    /// Whether `other` receives into the same account (card, Alipay or
    /// WeChat account, or channel) by the same way, whoever the holder.
    pub fn same_account(&self, other: &MethodDetails) -> bool {
        use MethodDetails as M;
        match (self, other) {
            (M::Bank { card_number: a, .. }, M::Bank { card_number: b, .. }) => a == b,
            (M::Alipay { account: a, .. }, M::Alipay { account: b, .. })
            | (M::WeChat { account: a, .. }, M::WeChat { account: b, .. }) => a.trim() == b.trim(),
            (M::Channel { channel: a, .. }, M::Channel { channel: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The details for every view but the matched buyer's and CS's (SPEC
    /// §5): the card number masked to its last four digits, an Alipay or
    /// WeChat account to a few characters (see [`mask_account`]).
    pub fn masked(&self) -> MethodDetails {
        match self {
            MethodDetails::Bank {
                bank,
                holder,
                card_number,
            } => {
                let tail = &card_number[card_number.len().saturating_sub(4)..];
                MethodDetails::Bank {
                    bank: bank.clone(),
                    holder: holder.clone(),
                    card_number: format!("**** **** **** {tail}"),
                }
            }
            MethodDetails::Alipay { holder, account } => MethodDetails::Alipay {
                holder: holder.clone(),
                account: mask_account(account),
            },
            MethodDetails::WeChat { holder, account } => MethodDetails::WeChat {
                holder: holder.clone(),
                account: mask_account(account),
            },
            MethodDetails::Channel { .. } => self.clone(),
        }
    }
}

/// An Alipay or WeChat account (an email, a phone number or an id) with
/// most of it hidden and its length not told: `w****@example.com`,
/// `13****78`, `w****c`.
pub fn mask_account(account: &str) -> String {
    const HIDDEN: &str = "****";
    if let Some((local, domain)) = account.rsplit_once('@') {
        let head: String = local
            .chars()
            .take(usize::from(local.chars().count() >= 3))
            .collect();
        return format!("{head}{HIDDEN}@{domain}");
    }
    let chars: Vec<char> = account.chars().collect();
    let (head, tail) = match chars.len() {
        n if n >= 10 => (2, 2),
        n if n >= 4 => (1, 1),
        _ => (0, 0),
    };
    let mut masked: String = chars[..head].iter().collect();
    masked.push_str(HIDDEN);
    masked.extend(&chars[chars.len() - tail..]);
    masked
}

/// A bound method and how much uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    /// The details, shared with the trades that pay to it.
    pub details: Arc<MethodDetails>,
    /// Open trades that pay to it; while non-zero it cannot be removed.
    pub open_trades: u32,
    /// Live listings that name it; while non-zero it cannot be removed.
    pub live_listings: u32,
}

/// The fund password as the engine knows it: a hash it never computes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundPassword {
    /// argon2id PHC string, produced and verified by the shell.
    pub hash: String,
    /// Bumped on every change, so a proof made against an old hash fails.
    pub version: u32,
}

/// Everything about a user except balances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    /// Bound receiving methods.
    pub methods: BTreeMap<MethodId, Method>,
    /// Fund password, once set.
    pub fund_password: Option<FundPassword>,
    /// Wrong fund passwords in a row.
    pub password_failures: u32,
    /// Locked out of protected actions until then.
    pub locked_until: Option<Timestamp>,
    /// Active or paused listings, for the per-user limit.
    pub live_listings: u32,
    /// Resting buys, for the per-user limit.
    pub resting_buys: u32,
    /// Open trades as the buyer of a listing (not fast sells), for the
    /// per-user limit.
    pub open_buys: u32,
    /// Users this user blocked.
    pub blocked: u32,
    /// UTC day of `cancels_today`.
    pub cancel_day: i64,
    /// Cancels and payment timeouts as buyer on `cancel_day`.
    pub cancels_today: u32,
    /// Payment channels an admin assigned to this user (SPEC §19).
    pub channels: BTreeMap<String, ChannelProvider>,
}

impl UserState {
    /// Buyer cancels counted for the UTC day of `now`.
    pub fn cancels_on(&self, now: Timestamp) -> u32 {
        if self.cancel_day == now.utc_day() {
            self.cancels_today
        } else {
            0
        }
    }

    /// Whether the user is locked out of protected actions at `now`.
    pub fn lock_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_masked_and_validated() {
        let card = MethodDetails::Bank {
            bank: "ICBC".into(),
            holder: "Li Lei".into(),
            card_number: "6222020200112233".into(),
        };
        assert!(card.validate().is_ok());
        let MethodDetails::Bank { card_number, .. } = card.masked() else {
            panic!("kind changed")
        };
        assert_eq!(card_number, "**** **** **** 2233");
        let bad = MethodDetails::Bank {
            bank: "ICBC".into(),
            holder: "Li".into(),
            card_number: "12ab".into(),
        };
        assert_eq!(bad.validate().unwrap_err().0, "account");
        let empty = MethodDetails::Alipay {
            holder: " ".into(),
            account: "a@b".into(),
        };
        assert_eq!(empty.validate().unwrap_err().0, "holder");
    }

    #[test]
    fn alipay_and_wechat_accounts_are_masked_to_a_few_characters() {
        for (account, shown) in [
            ("wang@example.com", "w****@example.com"),
            ("ab@example.com", "****@example.com"),
            ("a@b", "****@b"),
            ("13812345678", "13****78"),
            ("wxid_abc", "w****c"),
            ("王芳的微信号", "王****号"),
            ("abc", "****"),
        ] {
            assert_eq!(mask_account(account), shown, "{account}");
            let alipay = MethodDetails::Alipay {
                holder: "Wang Fang".into(),
                account: account.into(),
            };
            let MethodDetails::Alipay {
                holder,
                account: masked,
            } = alipay.masked()
            else {
                panic!("kind changed")
            };
            assert_eq!((holder.as_str(), masked.as_str()), ("Wang Fang", shown));
        }
        let wechat = MethodDetails::WeChat {
            holder: "Li".into(),
            account: "13812345678".into(),
        };
        assert!(
            matches!(wechat.masked(), MethodDetails::WeChat { account, .. } if account == "13****78")
        );
    }
}
