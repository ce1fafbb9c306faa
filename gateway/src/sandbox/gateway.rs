//! The gateway side of a sandbox: signs notifications as Alipay, WeChat Pay
//! and a webhook sender would.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Asia::Shanghai;
use encoding_rs::{GBK, UTF_8};
use rand::Rng as _;
use rust_decimal::Decimal;
use serde_json::json;
use zeroize::Zeroizing;

use super::sign::{Headers, alipay_body, alipay_sign, hmac_headers, wechat_headers, wechat_seal};
use super::{CHANNELS_FILE, GATEWAY_KEYS_DIR, SandboxCharset, SandboxPayment, SandboxStatus};
use crate::amount::{yuan_text, yuan_to_fen};
use crate::channel::Account;
use crate::config::load_channels;
use crate::keys::{Rsa2Signer, load_private_key};
use crate::wechat::APIV3_KEY_BYTES;
use crate::wire::format_gateway_time;

/// The gateway's key and the account ids it writes into notifications.
enum Signer {
    Alipay {
        app_id: String,
        seller_id: String,
        key: Rsa2Signer,
    },
    WeChatPay {
        mchid: String,
        appid: String,
        serial: String,
        key: Rsa2Signer,
        apiv3_key: Zeroizing<[u8; APIV3_KEY_BYTES]>,
    },
    Hmac {
        secret: Zeroizing<Vec<u8>>,
    },
}

/// Signs notifications for the channels of a sandbox made by
/// [`super::create`]. `Debug` names the channels only.
pub struct SandboxGateway {
    /// (channel name, signer), for every channel the sandbox can sign for.
    signers: Vec<(String, Signer)>,
}

impl SandboxGateway {
    /// Opens the sandbox in `dir`: its channels file, and the gateway keys
    /// under `gateway-keys/<channel>.pem`. Alipay and WeChat Pay channels
    /// without a gateway key are skipped; hmac channels need none.
    ///
    /// # Errors
    /// An unreadable file, or a gateway key that does not match the
    /// channel's configured public key.
    pub fn open(dir: &Path) -> Result<SandboxGateway, String> {
        let channels = load_channels(&dir.join(CHANNELS_FILE))?;
        let mut signers = Vec::with_capacity(channels.len());
        for channel in &channels {
            let key_path = dir
                .join(GATEWAY_KEYS_DIR)
                .join(format!("{}.pem", channel.name()));
            let at = |e: String| format!("{}: {e}", key_path.display());
            let signer = match channel.account() {
                Account::Hmac(account) => Signer::Hmac {
                    secret: account.secret.clone(),
                },
                _ if !key_path.exists() => continue,
                Account::Alipay(account) => {
                    let key = load_private_key(&key_path).map_err(at)?;
                    if account.alipay_key.as_ref() != &key.to_public_key() {
                        return Err(at("not the key of alipay_public_key".to_owned()));
                    }
                    Signer::Alipay {
                        app_id: account.app_id.clone(),
                        seller_id: account.seller_id.clone(),
                        key: Rsa2Signer::new(key),
                    }
                }
                Account::WeChatPay(account) => {
                    let key = load_private_key(&key_path).map_err(at)?;
                    let public = key.to_public_key();
                    let platform = account
                        .platform_keys
                        .iter()
                        .find(|k| k.key.as_ref() == &public)
                        .ok_or_else(|| at("not the key of any platform_keys".to_owned()))?;
                    Signer::WeChatPay {
                        mchid: account.mchid.clone(),
                        appid: account.appid.clone(),
                        serial: platform.serial.clone(),
                        key: Rsa2Signer::new(key),
                        apiv3_key: account.apiv3_key.clone(),
                    }
                }
            };
            signers.push((channel.name().to_owned(), signer));
        }
        Ok(SandboxGateway { signers })
    }

    /// The channels this gateway can sign for.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.signers.iter().map(|(name, _)| name.as_str())
    }

    /// The request the gateway of `channel` would POST for `payment` at
    /// `now`: headers (lower-case names, with `content-type`) and body.
    ///
    /// # Errors
    /// An unknown channel, an amount that is negative or has more than 2
    /// decimal places, or a subject the charset cannot represent. (Zero is
    /// signed: a gateway settles an order paid wholly by coupons at 0.00.)
    pub fn notify(
        &self,
        channel: &str,
        payment: &SandboxPayment,
        now: DateTime<Utc>,
    ) -> Result<(Headers, Vec<u8>), String> {
        let (_, signer) = self
            .signers
            .iter()
            .find(|(name, _)| name == channel)
            .ok_or_else(|| format!("no sandbox gateway for channel {channel}"))?;
        let amount = notified_yuan(payment.amount)
            .ok_or_else(|| "amount must be 0 or more, with at most 2 decimal places".to_owned())?;
        match signer {
            Signer::Alipay {
                app_id,
                seller_id,
                key,
            } => alipay(app_id, seller_id, key, payment, &amount, now),
            Signer::WeChatPay {
                mchid,
                appid,
                serial,
                key,
                apiv3_key,
            } => {
                let ids = (mchid.as_str(), appid.as_str(), serial.as_str());
                wechat(ids, key, apiv3_key, payment, now)
            }
            Signer::Hmac { secret } => hmac(secret, payment, &amount, now),
        }
    }
}

impl SandboxGateway {
    /// The query Alipay would put on `return_url` when the payer's browser
    /// comes back from paying `payment` at `now` (UTF-8, signed), without
    /// the leading `?`.
    ///
    /// # Errors
    /// A channel that is not a sandbox Alipay one, or an amount that is not
    /// positive with at most 2 decimal places.
    pub fn return_query(
        &self,
        channel: &str,
        payment: &SandboxPayment,
        now: DateTime<Utc>,
    ) -> Result<String, String> {
        let Some((
            _,
            Signer::Alipay {
                app_id,
                seller_id,
                key,
            },
        )) = self.signers.iter().find(|(name, _)| name == channel)
        else {
            return Err(format!("no sandbox Alipay gateway for channel {channel}"));
        };
        let amount = yuan_text(payment.amount)
            .ok_or_else(|| "amount must be positive with at most 2 decimal places".to_owned())?;
        let time = format_gateway_time(now);
        let mut params: Vec<(&str, &str)> = vec![
            ("charset", "utf-8"),
            ("out_trade_no", &payment.reference),
            ("method", "alipay.trade.page.pay.return"),
            ("total_amount", &amount),
            ("trade_no", &payment.txn_id),
            ("auth_app_id", app_id),
            ("version", "1.0"),
            ("app_id", app_id),
            ("sign_type", "RSA2"),
            ("seller_id", seller_id),
            ("timestamp", &time),
        ];
        let sign = alipay_sign(&params, UTF_8, key)?;
        params.push(("sign", &sign));
        let query = alipay_body(&params, UTF_8)?;
        String::from_utf8(query).map_err(|e| e.to_string())
    }
}

fn alipay(
    app_id: &str,
    seller_id: &str,
    key: &Rsa2Signer,
    payment: &SandboxPayment,
    amount: &str,
    now: DateTime<Utc>,
) -> Result<(Headers, Vec<u8>), String> {
    let (encoding, charset) = match payment.charset {
        SandboxCharset::Utf8 => (UTF_8, "utf-8"),
        SandboxCharset::Gbk => (GBK, "gbk"),
    };
    let status = match payment.status {
        SandboxStatus::Paid => "TRADE_SUCCESS",
        SandboxStatus::Pending => "WAIT_BUYER_PAY",
        SandboxStatus::Closed => "TRADE_CLOSED",
    };
    let time = format_gateway_time(now);
    let notify_id = random_hex();
    let mut params: Vec<(&str, &str)> = vec![
        ("notify_time", &time),
        ("notify_type", "trade_status_sync"),
        ("notify_id", &notify_id),
        ("app_id", app_id),
        ("seller_id", seller_id),
        ("charset", charset),
        ("version", "1.0"),
        ("sign_type", "RSA2"),
        ("trade_no", &payment.txn_id),
        ("out_trade_no", &payment.reference),
        ("total_amount", amount),
        ("trade_status", status),
        ("gmt_create", &time),
    ];
    if payment.status == SandboxStatus::Paid {
        params.push(("gmt_payment", &time));
    }
    if !payment.subject.is_empty() {
        params.push(("subject", &payment.subject));
    }
    let sign = alipay_sign(&params, encoding, key)?;
    params.push(("sign", &sign));
    let body = alipay_body(&params, encoding)?;
    let content_type = format!("application/x-www-form-urlencoded; charset={charset}");
    Ok((vec![("content-type".to_owned(), content_type)], body))
}

/// A notification's amount as yuan text: like a payment order's, or 0.00.
fn notified_yuan(amount: Decimal) -> Option<String> {
    if amount.is_zero() {
        Some("0.00".to_owned())
    } else {
        yuan_text(amount)
    }
}

fn wechat(
    (mchid, appid, serial): (&str, &str, &str),
    key: &Rsa2Signer,
    apiv3_key: &[u8; APIV3_KEY_BYTES],
    payment: &SandboxPayment,
    now: DateTime<Utc>,
) -> Result<(Headers, Vec<u8>), String> {
    let fen = if payment.amount.is_zero() {
        Some(0)
    } else {
        yuan_to_fen(payment.amount)
    }
    .ok_or_else(|| "amount must be 0 or more, with at most 2 decimal places".to_owned())?;
    let (state, event_type, summary) = match payment.status {
        SandboxStatus::Paid => ("SUCCESS", "TRANSACTION.SUCCESS", "支付成功"),
        SandboxStatus::Pending => ("NOTPAY", "TRANSACTION.NOTPAY", "未支付"),
        SandboxStatus::Closed => ("CLOSED", "TRANSACTION.CLOSED", "已关闭"),
    };
    let local_time = now
        .with_timezone(&Shanghai)
        .to_rfc3339_opts(SecondsFormat::Secs, false);
    let mut transaction = json!({
        "mchid": mchid,
        "appid": appid,
        "out_trade_no": payment.reference,
        "transaction_id": payment.txn_id,
        "trade_type": "NATIVE",
        "trade_state": state,
        "trade_state_desc": summary,
        "bank_type": "OTHERS",
        "attach": "",
        "payer": { "openid": "oSandbox000000000000000000000" },
        "amount": { "total": fen, "payer_total": fen, "currency": "CNY", "payer_currency": "CNY" },
    });
    if payment.status == SandboxStatus::Paid {
        transaction["success_time"] = json!(local_time);
    }
    let plaintext = serde_json::to_vec(&transaction).map_err(|e| e.to_string())?;
    let resource_nonce: String = random_alphanumeric(12);
    let ciphertext = wechat_seal(apiv3_key, &resource_nonce, "transaction", &plaintext)?;
    let envelope = json!({
        "id": format!("EV-{}", random_hex()),
        "create_time": local_time,
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": "transaction",
            "nonce": resource_nonce,
        },
    });
    let body = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
    let headers = wechat_headers(
        key,
        serial,
        now.timestamp(),
        &random_alphanumeric(32),
        &body,
    )?;
    Ok((headers, body))
}

fn hmac(
    secret: &[u8],
    payment: &SandboxPayment,
    amount: &str,
    now: DateTime<Utc>,
) -> Result<(Headers, Vec<u8>), String> {
    let status = match payment.status {
        SandboxStatus::Paid => "paid",
        SandboxStatus::Pending => "pending",
        SandboxStatus::Closed => "failed",
    };
    let mut event = json!({
        "id": payment.txn_id,
        "reference": payment.reference,
        "amount": amount,
        "currency": "CNY",
        "status": status,
    });
    if payment.status == SandboxStatus::Paid {
        event["paid_at"] = json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
    let headers = hmac_headers(&[secret], now.timestamp(), &body)?;
    Ok((headers, body))
}

fn random_hex() -> String {
    hex::encode(rand::rngs::OsRng.r#gen::<[u8; 16]>())
}

fn random_alphanumeric(len: usize) -> String {
    super::random_text(len)
}

impl fmt::Debug for SandboxGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxGateway")
            .field("channels", &self.channels().collect::<Vec<_>>())
            .finish()
    }
}
