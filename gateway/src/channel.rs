//! A payment channel: one gateway account with its keys, and what the server
//! does with it — verify a notification, make a payment order, answer the
//! gateway.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::json;

use crate::alipay::AlipayAccount;
use crate::amount::yuan_text;
use crate::bill::BillAccount;
use crate::notification::{Notification, Provider};
use crate::refusal::Refusal;
use crate::webhook::HmacAccount;
use crate::wechat::WeChatAccount;
use crate::wire::{BODY_BYTES_MAX, GATEWAY_ID_BYTES_MAX};

/// Longest payment window a payment order may ask for, in minutes (Alipay's
/// `time_expire` allows up to 15 days ahead).
pub const ORDER_TIMEOUT_MINUTES_MAX: i64 = 15 * 24 * 60;
/// Longest order subject, in characters (Alipay allows 256).
pub const ORDER_SUBJECT_CHARS_MAX: usize = 256;
/// Longest notify or return URL, in bytes.
pub const ORDER_URL_BYTES_MAX: usize = 512;

/// A gateway account that can prove payments (SPEC §19). Made by
/// [`crate::load_channels`]; holds its keys privately. `Debug` shows the
/// account ids and key serials, never key material.
pub struct Channel {
    /// Unique name, `[a-z0-9-]{1,32}`: the endpoint path and the `gateway
    /// <channel>` actor.
    name: String,
    /// Where the account's bill days begin and end.
    time_zone: Tz,
    /// Ids and keys; its variant is the provider.
    account: Account,
}

/// The provider-specific ids and keys.
pub(crate) enum Account {
    Alipay(Box<AlipayAccount>),
    WeChatPay(Box<WeChatAccount>),
    Hmac(HmacAccount),
}

/// What the buyer's app needs to pay a trade through a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// Our payment reference (becomes Alipay's `out_trade_no`).
    pub reference: String,
    /// The trade's fiat amount in yuan, as the server computed it: positive,
    /// at most 2 decimal places. Never supplied by the client.
    pub amount: Decimal,
    /// What the buyer sees on the cashier page.
    pub subject: String,
    /// Where the gateway posts the notification.
    pub notify_url: String,
    /// Where the browser returns (display only); empty for none.
    pub return_url: String,
    /// Minutes the gateway keeps the order payable, 1 to
    /// [`ORDER_TIMEOUT_MINUTES_MAX`].
    pub timeout_minutes: i64,
    /// Now: stamps the request.
    pub now: DateTime<Utc>,
}

/// A payment order: what the app opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    /// The signed Alipay page-pay URL; `None` for the other providers, where
    /// the buyer pays the reference and amount below.
    pub pay_url: Option<String>,
    /// Our payment reference.
    pub reference: String,
    /// The amount with exactly 2 decimal places (`"100.00"`).
    pub amount: String,
}

/// An HTTP answer for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`; `None` for an empty body.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: String,
}

impl Channel {
    pub(crate) fn new(name: String, time_zone: Tz, account: Account) -> Channel {
        Channel {
            name,
            time_zone,
            account,
        }
    }

    pub(crate) fn account(&self) -> &Account {
        &self.account
    }

    /// The channel's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of gateway.
    pub fn provider(&self) -> Provider {
        match self.account {
            Account::Alipay(_) => Provider::Alipay,
            Account::WeChatPay(_) => Provider::WeChatPay,
            Account::Hmac(_) => Provider::Hmac,
        }
    }

    /// The account's time zone (bill days); Asia/Shanghai unless configured.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Whose bills this channel reads: Alipay's seller id, WeChat Pay's
    /// `mchid`; nothing for hmac (its bill names no account).
    pub fn bill_account(&self) -> BillAccount {
        let merchant = match &self.account {
            Account::Alipay(a) => Some(a.seller_id.clone()),
            Account::WeChatPay(a) => Some(a.mchid.clone()),
            Account::Hmac(_) => None,
        };
        BillAccount { merchant }
    }

    /// Verifies a notification, then parses it. `headers` are the request's
    /// (name, value) pairs (names in any case); `body` the raw bytes, exactly
    /// as received.
    ///
    /// # Errors
    /// A [`Refusal`]: the notification must change nothing.
    pub fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, Refusal> {
        if body.len() > BODY_BYTES_MAX {
            return Err(Refusal::malformed(
                "body",
                format!("larger than {BODY_BYTES_MAX} bytes"),
            ));
        }
        let notification = match &self.account {
            Account::Alipay(account) => account.verify(body)?,
            Account::WeChatPay(account) => account.verify(headers, body, now)?,
            Account::Hmac(account) => account.verify(headers, body, now)?,
        };
        debug_assert!(notification.amount.scale() <= crate::amount::AMOUNT_SCALE);
        debug_assert!(!notification.txn_id.is_empty() && !notification.reference.is_empty());
        Ok(notification)
    }

    /// Verifies the query a gateway puts on the payer's way back to
    /// `return_url` (Alipay page-pay: signed as its notifications are), and
    /// returns the payment reference it names. Only a verified return may be
    /// shown anything about the payment.
    ///
    /// # Errors
    /// A [`Refusal`]; for WeChat Pay and hmac, which send no payer back,
    /// always.
    pub fn verify_return(&self, query: &[u8]) -> Result<String, Refusal> {
        if query.len() > BODY_BYTES_MAX {
            return Err(Refusal::malformed(
                "query",
                format!("longer than {BODY_BYTES_MAX} bytes"),
            ));
        }
        match &self.account {
            Account::Alipay(account) => account.verify_return(query),
            Account::WeChatPay(_) | Account::Hmac(_) => Err(Refusal::malformed(
                "channel",
                "this channel's gateway sends no payer back",
            )),
        }
    }

    /// The payment order for a trade: for Alipay the signed page-pay URL
    /// (RSA2 over the sorted parameters), for the others the reference and
    /// the amount.
    ///
    /// # Errors
    /// What is wrong with the request, in words (a server bug, not the
    /// buyer's: the server computes every field).
    pub fn payment_order(&self, order: &OrderRequest) -> Result<PaymentOrder, String> {
        check_reference(&order.reference)?;
        let amount = yuan_text(order.amount)
            .ok_or_else(|| "amount must be positive with at most 2 decimal places".to_owned())?;
        let pay_url = match &self.account {
            Account::Alipay(account) => Some(account.page_pay_url(order, &amount)?),
            Account::WeChatPay(_) | Account::Hmac(_) => None,
        };
        Ok(PaymentOrder {
            pay_url,
            reference: order.reference.clone(),
            amount,
        })
    }

    /// The answer to an accepted notification, or a duplicate of one, once
    /// its effect is durable: Alipay `200 success`, WeChat Pay `204`, hmac
    /// `200 {"received":true}`.
    pub fn accepted(&self) -> Answer {
        match self.account {
            Account::Alipay(_) => Answer {
                status: 200,
                content_type: Some("text/plain; charset=utf-8"),
                body: "success".to_owned(),
            },
            Account::WeChatPay(_) => Answer {
                status: 204,
                content_type: None,
                body: String::new(),
            },
            Account::Hmac(_) => Answer {
                status: 200,
                content_type: Some("application/json"),
                body: json!({ "received": true }).to_string(),
            },
        }
    }

    /// The answer to a refused notification: Alipay `400 fail`; WeChat Pay
    /// and hmac `401` (forged) or `400` (malformed) with a JSON body whose
    /// message is the refusal's text.
    pub fn refused(&self, refusal: &Refusal) -> Answer {
        let status = if refusal.is_forged() { 401 } else { 400 };
        let message = refusal.to_string();
        match self.account {
            Account::Alipay(_) => Answer {
                status: 400,
                content_type: Some("text/plain; charset=utf-8"),
                body: "fail".to_owned(),
            },
            Account::WeChatPay(_) => Answer {
                status,
                content_type: Some("application/json"),
                body: json!({ "code": "FAIL", "message": message }).to_string(),
            },
            Account::Hmac(_) => Answer {
                status,
                content_type: Some("application/json"),
                body: json!({ "received": false, "error": message }).to_string(),
            },
        }
    }
}

impl Channel {
    /// The answer when the notification could not be made durable (storage
    /// failing): `503`, in the gateway's own failure shape (Alipay `fail`,
    /// WeChat Pay `{"code":"FAIL",...}`), so it retries.
    pub fn unavailable(&self) -> Answer {
        let message = "not recorded; retry later";
        match self.account {
            Account::Alipay(_) => Answer {
                status: 503,
                content_type: Some("text/plain; charset=utf-8"),
                body: "fail".to_owned(),
            },
            Account::WeChatPay(_) => Answer {
                status: 503,
                content_type: Some("application/json"),
                body: json!({ "code": "FAIL", "message": message }).to_string(),
            },
            Account::Hmac(_) => Answer {
                status: 503,
                content_type: Some("application/json"),
                body: json!({ "received": false, "error": message }).to_string(),
            },
        }
    }
}

/// A payment reference we send: 1–64 of ASCII letters, digits, `_` and `-`
/// (Alipay's `out_trade_no` alphabet).
fn check_reference(reference: &str) -> Result<(), String> {
    crate::config::check_id_text("reference", reference, GATEWAY_ID_BYTES_MAX)
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Channel");
        out.field("name", &self.name)
            .field("provider", &self.provider())
            .field("time_zone", &self.time_zone);
        match &self.account {
            Account::Alipay(a) => out.field("account", a),
            Account::WeChatPay(a) => out.field("account", a),
            Account::Hmac(a) => out.field("account", a),
        };
        out.finish()
    }
}

// The server shares channels between request tasks.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Channel>();
    shared::<crate::sandbox::SandboxGateway>();
};
