//! # otc-gateway
//!
//! Payment channels (SPEC §19): the server creates a payment order, the
//! gateway (Alipay, WeChat Pay v3, or a processor signing HMAC webhooks) sends
//! a signed asynchronous notification, and this crate proves it authentic and
//! turns it into a [`Notification`] of exact facts. Everything else — which
//! trade it pays, duplicates, anomalies — is the engine's.
//!
//! ```text
//! load_channels(path)                     -> Vec<Channel>        (reads key files once)
//! Channel::verify(headers, body, now)     -> Notification | Refusal
//! Channel::payment_order(&OrderRequest)   -> PaymentOrder        (Alipay: signed page-pay URL)
//! Channel::accepted() / refused(&Refusal) -> Answer              (the HTTP reply the gateway expects)
//! ```
//!
//! Architecture invariants:
//! - No I/O but reading the channels file and its key files; no network, no
//!   clock: every function that needs time takes `now`. A bill is read from
//!   whatever `BufRead` the caller hands over.
//! - A [`Notification`] exists only after its signature verified.
//! - Money is `rust_decimal::Decimal`, parsed from decimal text or integer fen;
//!   never through a float.
//! - No key, secret or signature appears in a `Debug`, a `Display`, an error
//!   or a [`Refusal`].
//!
//! Modules:
//! - [`channel`]: [`Channel`], [`OrderRequest`], [`PaymentOrder`], [`Answer`].
//! - [`config`]: the channels file ([`load_channels`], [`parse_channels`]).
//! - [`notification`]: [`Provider`], [`Notification`].
//! - [`refusal`]: [`Refusal`], why a notification was not accepted.
//! - [`amount`]: yuan text and fen integers to `Decimal` and back.
//! - [`bill`]: streaming readers of the gateways' daily trade bills (对账单,
//!   SPEC §20) and the hmac channel's bill format.
//! - `alipay`, `wechat`, `webhook`: one verifier per provider; `keys`: RSA
//!   and secret files; `wire`: headers, form encoding, JSON fields, times.
//! - [`sandbox`]: generated keys and a gateway that signs notifications, for
//!   demos, end-to-end tests and load benches.
//!
//! ## The channels file
//!
//! TOML, given to the server as `--channels FILE`. Key file paths are relative
//! to the directory of the TOML file. Channel names are unique, 1–32 of
//! `a-z`, `0-9`, `-`. Unknown keys are errors, so a typo cannot silently drop
//! a check.
//!
//! ```toml
//! [[channel]]
//! name = "alipay-main"
//! kind = "alipay"
//! app_id = "2021000000000001"
//! seller_id = "2088000000000001"          # Alipay's PID; checked when a notification carries seller_id
//! app_private_key = "keys/alipay-app-private.pem"   # PKCS#8 or PKCS#1 PEM (or bare base64 DER)
//! alipay_public_key = "keys/alipay-public.pem"      # SPKI PEM, or the bare base64 line Alipay's console shows
//! gateway_url = "https://openapi.alipay.com/gateway.do"  # optional, this default
//! time_zone = "Asia/Shanghai"             # optional, this default (bill days); only this for alipay and wechatpay
//!
//! [[channel]]
//! name = "wechat-main"
//! kind = "wechatpay"
//! mchid = "1900000001"
//! appid = "wxd678efh567hg6787"
//! apiv3_key = "keys/wechat-apiv3.key"     # exactly 32 bytes (one trailing newline is trimmed)
//! platform_keys = [ { serial = "5157F09EFDC096DE15EBE81A47057A72", public_key = "keys/wechat-platform.pem" } ]
//!
//! [[channel]]
//! name = "bank-x"
//! kind = "hmac"
//! secret = "keys/bank-x.secret"           # at least 16 bytes (one trailing newline is trimmed)
//! ```
//!
//! RSA keys must be at least 2048 bits. A WeChat platform *certificate* is not
//! accepted; give its public key (`openssl x509 -pubkey -noout -in cert.pem`).
//!
//! ## What each verifier checks
//!
//! - `alipay`: form body; `charset` in the body (utf-8 or gbk) decodes the
//!   percent-decoded bytes; RSA2 over the sorted `k=v&…` of the non-empty
//!   parameters other than `sign` and `sign_type`; then `app_id` and
//!   `seller_id`. No timestamp window: Alipay retries for about 25 hours.
//! - `wechatpay`: `Wechatpay-Timestamp` within 5 minutes of `now`, the serial
//!   names a configured platform key, RSA2 over `timestamp\nnonce\nbody\n`,
//!   AES-256-GCM decryption of `resource`, then `mchid` and `appid`.
//! - `hmac`: `Otc-Signature: t=<unix secs>,v1=<hex>[,v1=<hex>…]`, `t` within
//!   5 minutes, HMAC-SHA256 of `"{t}.{raw body}"` compared in constant time.

#![deny(missing_docs)]

mod alipay;
pub mod amount;
pub mod bill;
pub mod channel;
pub mod config;
mod keys;
pub mod notification;
pub mod refusal;
pub mod sandbox;
mod unique_json;
mod webhook;
mod wechat;
mod wire;

#[cfg(test)]
mod test_keys;

pub use channel::{Answer, Channel, OrderRequest, PaymentOrder};
pub use config::{Vet, load_channels, load_channels_vetted, parse_channels};
pub use notification::{Notification, Provider};
pub use refusal::Refusal;
pub use wire::{BODY_BYTES_MAX, TIMESTAMP_SKEW_SECS_MAX};
