//! WeChat Pay API v3 payment notifications.
//!
//! Headers `Wechatpay-Timestamp`, `-Nonce`, `-Signature`, `-Serial`; RSA2 over
//! `"{timestamp}\n{nonce}\n{body}\n"` with the platform key whose serial
//! matches; then the body's `resource` is AES-256-GCM encrypted with the
//! APIv3 key (the 16-byte tag appended to the ciphertext, `associated_data`
//! as AAD, `nonce` as the 12-byte IV). Only `TRANSACTION.*` events are
//! payments; others (refunds, …) are refused as malformed.

#[cfg(test)]
mod tests;

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::amount::fen_to_yuan;
use crate::keys::{Rsa2Verifier, rsa2_verify};
use crate::notification::Notification;
use crate::refusal::Refusal;
use crate::wire::{
    check_fresh, currency, gateway_id, header, json_obj, json_object, json_opt_str, json_str,
    parse_rfc3339, parse_unix_secs, signing_header,
};

/// Bytes of an APIv3 key (AES-256).
pub(crate) const APIV3_KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce as WeChat Pay sends it.
pub(crate) const GCM_NONCE_BYTES: usize = 12;
/// The only resource algorithm.
const ALGORITHM: &str = "AEAD_AES_256_GCM";
/// The only signature type.
const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";
/// Currency when `amount.currency` is absent.
const DEFAULT_CURRENCY: &str = "CNY";

/// One WeChat Pay platform public key and its serial.
pub(crate) struct PlatformKey {
    /// What `Wechatpay-Serial` names it by.
    pub(crate) serial: String,
    /// Verifies notifications.
    pub(crate) key: Rsa2Verifier,
}

/// A WeChat Pay v3 merchant: its ids and keys.
pub(crate) struct WeChatAccount {
    /// The merchant id (`mchid`).
    pub(crate) mchid: String,
    /// The app id payments are made through (`appid`).
    pub(crate) appid: String,
    /// The APIv3 key: decrypts `resource`.
    pub(crate) apiv3_key: Zeroizing<[u8; APIV3_KEY_BYTES]>,
    /// Platform keys; several during a rotation.
    pub(crate) platform_keys: Vec<PlatformKey>,
}

impl WeChatAccount {
    /// Verifies a notification, decrypts its resource, then parses it.
    pub(crate) fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, Refusal> {
        let serial = signing_header(headers, "wechatpay-serial")?;
        let timestamp = signing_header(headers, "wechatpay-timestamp")?;
        let nonce = signing_header(headers, "wechatpay-nonce")?;
        let signature = signing_header(headers, "wechatpay-signature")?;
        if header(headers, "wechatpay-signature-type")?.is_some_and(|t| t != SIGNATURE_TYPE) {
            return Err(Refusal::malformed(
                "wechatpay-signature-type",
                "only WECHATPAY2-SHA256-RSA2048 is accepted",
            ));
        }
        let platform = self
            .platform_keys
            .iter()
            .find(|k| k.serial.eq_ignore_ascii_case(serial))
            .ok_or_else(|| Refusal::unknown_key(serial))?;
        check_fresh(parse_unix_secs("wechatpay-timestamp", timestamp)?, now)?;
        let message = signed_message(timestamp, nonce, body);
        rsa2_verify(&platform.key, &message, signature)?;
        // Authentic from here on: WeChat Pay said this.
        let envelope = json_object("body", body)?;
        let event_type = json_str(&envelope, "event_type", "event_type")?;
        let refund = event_type.starts_with("REFUND.");
        if !event_type.starts_with("TRANSACTION.") && !refund {
            return Err(Refusal::malformed(
                "event_type",
                "neither a payment's nor a refund's notification",
            ));
        }
        let plaintext = self.decrypt(json_obj(&envelope, "resource", "resource")?)?;
        let transaction = json_object("resource.ciphertext", &plaintext)?;
        if json_str(&transaction, "mchid", "mchid")? != self.mchid {
            return Err(Refusal::ForeignAccount { field: "mchid" });
        }
        if refund {
            // A refund's resource names no app id.
            return refund_notification(&transaction);
        }
        if json_str(&transaction, "appid", "appid")? != self.appid {
            return Err(Refusal::ForeignAccount { field: "appid" });
        }
        notification(&transaction)
    }

    /// Opens the AES-256-GCM `resource`.
    fn decrypt(&self, resource: &Map<String, Value>) -> Result<Zeroizing<Vec<u8>>, Refusal> {
        let algorithm = json_str(resource, "algorithm", "resource.algorithm")?;
        if algorithm != ALGORITHM {
            return Err(Refusal::malformed(
                "resource.algorithm",
                "only AEAD_AES_256_GCM is accepted",
            ));
        }
        open_resource(
            &self.apiv3_key,
            json_str(resource, "nonce", "resource.nonce")?,
            json_opt_str(resource, "associated_data", "resource.associated_data")?.unwrap_or(""),
            json_str(resource, "ciphertext", "resource.ciphertext")?,
        )
    }
}

/// What the platform signed: `"{timestamp}\n{nonce}\n{body}\n"`.
pub(crate) fn signed_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(nonce.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// Decrypts and authenticates a resource: `ciphertext` is base64 of the
/// ciphertext with the 16-byte tag appended.
///
/// # Errors
/// Malformed when the nonce is not 12 bytes or the ciphertext not base64;
/// [`Refusal::Undecryptable`] when the tag does not authenticate.
pub(crate) fn open_resource(
    key: &[u8; APIV3_KEY_BYTES],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let nonce: [u8; GCM_NONCE_BYTES] = nonce
        .as_bytes()
        .try_into()
        .map_err(|_| Refusal::malformed("resource.nonce", "not 12 bytes"))?;
    let ciphertext = BASE64
        .decode(ciphertext_b64)
        .map_err(|_| Refusal::malformed("resource.ciphertext", "not base64"))?;
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| Refusal::Undecryptable)?;
    let payload = Payload {
        msg: &ciphertext,
        aad: associated_data.as_bytes(),
    };
    cipher
        .decrypt(&Nonce::from(nonce), payload)
        .map(Zeroizing::new)
        .map_err(|_| Refusal::Undecryptable)
}

/// The facts of a decrypted transaction.
fn notification(transaction: &Map<String, Value>) -> Result<Notification, Refusal> {
    let amount = json_obj(transaction, "amount", "amount")?;
    let total = amount
        .get("total")
        .ok_or_else(|| Refusal::malformed("amount.total", "missing"))?;
    let currency_code =
        json_opt_str(amount, "currency", "amount.currency")?.unwrap_or(DEFAULT_CURRENCY);
    let status = gateway_id(
        "trade_state",
        json_str(transaction, "trade_state", "trade_state")?,
    )?;
    let paid_at = match json_opt_str(transaction, "success_time", "success_time")? {
        Some(text) => Some(parse_rfc3339("success_time", text)?),
        None => None,
    };
    Ok(Notification {
        txn_id: gateway_id(
            "transaction_id",
            json_str(transaction, "transaction_id", "transaction_id")?,
        )?,
        reference: gateway_id(
            "out_trade_no",
            json_str(transaction, "out_trade_no", "out_trade_no")?,
        )?,
        amount: fen_to_yuan("amount.total", total)?,
        currency: currency("amount.currency", currency_code)?,
        paid: status == "SUCCESS",
        status,
        paid_at,
    })
}

/// A refund's facts (`REFUND.SUCCESS`, `.ABNORMAL`, `.CLOSED`): news of a
/// refund, never a payment (`paid` is false), so it is answered success and
/// changes nothing; reconciliation meets the refund in the bill.
fn refund_notification(refund: &Map<String, Value>) -> Result<Notification, Refusal> {
    let amount = json_obj(refund, "amount", "amount")?;
    let total = amount
        .get("total")
        .ok_or_else(|| Refusal::malformed("amount.total", "missing"))?;
    let status = gateway_id(
        "refund_status",
        json_str(refund, "refund_status", "refund_status")?,
    )?;
    Ok(Notification {
        txn_id: gateway_id(
            "transaction_id",
            json_str(refund, "transaction_id", "transaction_id")?,
        )?,
        reference: gateway_id(
            "out_trade_no",
            json_str(refund, "out_trade_no", "out_trade_no")?,
        )?,
        amount: fen_to_yuan("amount.total", total)?,
        currency: DEFAULT_CURRENCY.to_owned(),
        paid: false,
        status: format!("REFUND_{status}"),
        paid_at: None,
    })
}

impl fmt::Debug for WeChatAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let serials: Vec<&str> = self
            .platform_keys
            .iter()
            .map(|k| k.serial.as_str())
            .collect();
        f.debug_struct("WeChatAccount")
            .field("mchid", &self.mchid)
            .field("appid", &self.appid)
            .field("platform_key_serials", &serials)
            .field("keys", &"<redacted>")
            .finish()
    }
}
