//! Generic processors and banks that sign webhooks with a shared secret.
//!
//! Header `Otc-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`: each `v1`
//! is HMAC-SHA256 of `"{t}.{raw body}"`; any one matching is enough, so a
//! sender rotating its secret can sign with both. Body JSON:
//! `{"id","reference","amount":"100.00","currency","status","paid_at"}`,
//! where `amount` must be a JSON *string* of plain decimal text.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::amount::parse_yuan_or_zero;
use crate::notification::Notification;
use crate::refusal::Refusal;
use crate::wire::{
    check_fresh, currency, gateway_id, json_object, json_opt_str, json_str, parse_rfc3339,
    parse_unix_secs, signing_header,
};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "otc-signature";
/// Smallest shared secret, in bytes.
pub(crate) const SECRET_BYTES_MIN: usize = 16;
/// Most `v1=` signatures in one header.
const SIGNATURES_MAX: usize = 8;
/// Bytes of an HMAC-SHA256.
const MAC_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A processor account: the shared secret.
pub(crate) struct HmacAccount {
    /// At least [`SECRET_BYTES_MIN`] bytes.
    pub(crate) secret: Zeroizing<Vec<u8>>,
}

impl HmacAccount {
    /// Verifies a webhook, then parses it.
    pub(crate) fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, Refusal> {
        let (t, candidates) = parse_signature_header(signing_header(headers, SIGNATURE_HEADER)?)?;
        check_fresh(parse_unix_secs("otc-signature t", t)?, now)?;
        let mac = mac_of(&self.secret, t, body)?;
        // Check every candidate, so timing says nothing about which matched.
        let matched = candidates
            .iter()
            .fold(false, |any, c| mac.clone().verify_slice(c).is_ok() | any);
        if !matched {
            return Err(Refusal::BadSignature);
        }
        notification(body)
    }
}

/// The MAC state over `"{t}.{body}"`, ready to verify or finalize.
fn mac_of(secret: &[u8], t: &str, body: &[u8]) -> Result<HmacSha256, Refusal> {
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| Refusal::BadSignature)?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The hex `v1` signature of `body` at unix time `t`, as a sender computes it.
pub(crate) fn sign(secret: &[u8], t: i64, body: &[u8]) -> Result<String, String> {
    let mac = mac_of(secret, &t.to_string(), body).map_err(|e| e.to_string())?;
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Splits `t=…,v1=…,v1=…` into the timestamp text and the decoded `v1`s.
/// Other schemes (`v0=`, …) are ignored, as Stripe-style receivers do.
fn parse_signature_header(text: &str) -> Result<(&str, Vec<Vec<u8>>), Refusal> {
    let mut t = None;
    let mut candidates = Vec::new();
    for item in text.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            return Err(Refusal::malformed(SIGNATURE_HEADER, "not t=…,v1=…"));
        };
        match key {
            "t" if t.is_some() => {
                return Err(Refusal::malformed(SIGNATURE_HEADER, "repeated t"));
            }
            "t" => t = Some(value),
            "v1" if candidates.len() == SIGNATURES_MAX => {
                return Err(Refusal::malformed(
                    SIGNATURE_HEADER,
                    format!("more than {SIGNATURES_MAX} v1 signatures"),
                ));
            }
            "v1" => {
                let bytes = hex::decode(value)
                    .ok()
                    .filter(|b| b.len() == MAC_BYTES)
                    .ok_or_else(|| {
                        Refusal::malformed(SIGNATURE_HEADER, "v1 is not 64 hex digits")
                    })?;
                candidates.push(bytes);
            }
            _ => {}
        }
    }
    let t = t.ok_or(Refusal::Unsigned {
        what: "otc-signature t",
    })?;
    if candidates.is_empty() {
        return Err(Refusal::Unsigned {
            what: "otc-signature v1",
        });
    }
    Ok((t, candidates))
}

/// The facts of a verified webhook body.
fn notification(body: &[u8]) -> Result<Notification, Refusal> {
    let object = json_object("body", body)?;
    let amount = match object.get("amount") {
        // A signed 0.00 is a fact to record (the engine makes it a wrong
        // amount), not a malformed body the gateway would retry.
        Some(Value::String(text)) => parse_yuan_or_zero("amount", text)?,
        Some(Value::Number(_)) => {
            return Err(Refusal::malformed(
                "amount",
                "a JSON number; amounts are decimal strings such as \"100.00\"",
            ));
        }
        Some(_) => return Err(Refusal::malformed("amount", "not a string")),
        None => return Err(Refusal::malformed("amount", "missing")),
    };
    let status = gateway_id("status", json_str(&object, "status", "status")?)?;
    let paid_at = match json_opt_str(&object, "paid_at", "paid_at")? {
        Some(text) => Some(parse_rfc3339("paid_at", text)?),
        None => None,
    };
    Ok(Notification {
        txn_id: gateway_id("id", json_str(&object, "id", "id")?)?,
        reference: gateway_id("reference", json_str(&object, "reference", "reference")?)?,
        amount,
        currency: currency("currency", json_str(&object, "currency", "currency")?)?,
        paid: status == "paid",
        status,
        paid_at,
    })
}

impl fmt::Debug for HmacAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacAccount")
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
