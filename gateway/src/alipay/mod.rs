//! Alipay (open platform, RSA2): asynchronous notifications and page-pay
//! orders.
//!
//! A notification is verified over the sorted parameters, then must name the
//! channel's `app_id` and (when present) `seller_id`. There is no timestamp
//! window: Alipay retries the same notification for about 25 hours.

mod form;
mod order;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::amount::{parse_yuan, parse_yuan_or_zero};
use crate::keys::{Rsa2Signer, Rsa2Verifier, rsa2_verify};
use crate::notification::Notification;
use crate::refusal::Refusal;
use crate::wire::{gateway_id, parse_gateway_time};

pub(crate) use form::Form;

/// Alipay's production gateway.
pub(crate) const DEFAULT_GATEWAY_URL: &str = "https://openapi.alipay.com/gateway.do";
/// The only signature type accepted.
const SIGN_TYPE: &str = "RSA2";
/// Alipay settles in yuan.
const CURRENCY: &str = "CNY";

/// An Alipay app: its ids and keys.
pub(crate) struct AlipayAccount {
    /// The open-platform app id (`app_id`).
    pub(crate) app_id: String,
    /// The merchant's PID (`seller_id`).
    pub(crate) seller_id: String,
    /// The app's private key: signs page-pay requests.
    pub(crate) app_key: Rsa2Signer,
    /// Alipay's public key: verifies notifications.
    pub(crate) alipay_key: Rsa2Verifier,
    /// Where page-pay URLs point.
    pub(crate) gateway_url: String,
}

impl AlipayAccount {
    /// Verifies a notification body, then parses it.
    pub(crate) fn verify(&self, body: &[u8]) -> Result<Notification, Refusal> {
        let form = Form::parse(body)?;
        self.authentic(&form)?;
        notification(&form)
    }

    /// Verifies the query Alipay puts on `return_url` when the payer's
    /// browser comes back (signed as a notification is), and returns the
    /// payment reference it names (`out_trade_no`).
    pub(crate) fn verify_return(&self, query: &[u8]) -> Result<String, Refusal> {
        let form = Form::parse(query)?;
        self.authentic(&form)?;
        gateway_id("out_trade_no", form.required("out_trade_no")?)
    }

    /// Checks Alipay signed `form` (RSA2 over its sorted parameters) and
    /// that it is about this account.
    fn authentic(&self, form: &Form) -> Result<(), Refusal> {
        let sign = form
            .get("sign")
            .filter(|s| !s.is_empty())
            .ok_or(Refusal::Unsigned { what: "sign" })?;
        if form.get("sign_type").is_some_and(|t| t != SIGN_TYPE) {
            return Err(Refusal::malformed("sign_type", "only RSA2 is accepted"));
        }
        rsa2_verify(&self.alipay_key, &form.signed_content(), sign)?;
        // Authentic from here on: Alipay said this. Is it about our account?
        if form.required("app_id")? != self.app_id {
            return Err(Refusal::ForeignAccount { field: "app_id" });
        }
        if form
            .get("seller_id")
            .is_some_and(|s| !s.is_empty() && s != self.seller_id)
        {
            return Err(Refusal::ForeignAccount { field: "seller_id" });
        }
        Ok(())
    }
}

/// "0", "0.0" or "0.00": a yuan amount of zero, as Alipay writes one.
fn is_zero_yuan(text: &str) -> bool {
    matches!(text, "0" | "0.0" | "0.00")
}

/// The facts of a verified notification.
fn notification(form: &Form) -> Result<Notification, Refusal> {
    let status = gateway_id("trade_status", form.required("trade_status")?)?;
    // After a partial refund Alipay notifies again, still TRADE_SUCCESS,
    // with `refund_fee`: news of a refund, never proof of a whole payment
    // (reconciliation meets the refund in the bill).
    let refunded = match form.get("refund_fee").filter(|t| !t.is_empty()) {
        // "0.00": nothing refunded.
        Some(text) if is_zero_yuan(text) => false,
        Some(text) => parse_yuan("refund_fee", text).map(|_| true)?,
        None => false,
    };
    let paid_at = match form.get("gmt_payment").filter(|t| !t.is_empty()) {
        Some(text) => Some(parse_gateway_time("gmt_payment", text)?),
        None => None,
    };
    Ok(Notification {
        txn_id: gateway_id("trade_no", form.required("trade_no")?)?,
        reference: gateway_id("out_trade_no", form.required("out_trade_no")?)?,
        // A signed 0.00 is a fact to record (the engine makes it a wrong
        // amount), not a malformed notification Alipay would retry for a day.
        amount: parse_yuan_or_zero("total_amount", form.required("total_amount")?)?,
        currency: CURRENCY.to_owned(),
        paid: matches!(status.as_str(), "TRADE_SUCCESS" | "TRADE_FINISHED") && !refunded,
        status,
        paid_at,
    })
}

impl fmt::Debug for AlipayAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlipayAccount")
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("gateway_url", &self.gateway_url)
            .field("keys", &"<redacted>")
            .finish()
    }
}
