//! Signing as the gateways do: what a real Alipay, WeChat Pay or webhook
//! sender would POST. Used by [`super::SandboxGateway`] and by the unit tests,
//! which take requests apart to tamper with them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use encoding_rs::Encoding;

use crate::keys::{Rsa2Signer, rsa2_sign};
use crate::wechat::{APIV3_KEY_BYTES, GCM_NONCE_BYTES, signed_message};
use crate::wire::form_encode;

/// A header list as the server receives it.
pub(crate) type Headers = Vec<(String, String)>;

/// `text` in `encoding`, refusing characters it cannot represent.
fn encode(encoding: &'static Encoding, text: &str) -> Result<Vec<u8>, String> {
    let (bytes, _, unmappable) = encoding.encode(text);
    if unmappable {
        return Err(format!("text not representable in {}", encoding.name()));
    }
    Ok(bytes.into_owned())
}

/// Alipay's notification signature over `params` (any order; `sign` and
/// `sign_type` and empty values are left out, the rest sorted), with the
/// text in `encoding`.
pub(crate) fn alipay_sign(
    params: &[(&str, &str)],
    encoding: &'static Encoding,
    key: &Rsa2Signer,
) -> Result<String, String> {
    let mut signed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (k, v) in params {
        if *k == "sign" || *k == "sign_type" || v.is_empty() {
            continue;
        }
        signed.push((encode(encoding, k)?, encode(encoding, v)?));
    }
    signed.sort();
    let mut content = Vec::new();
    for (i, (k, v)) in signed.iter().enumerate() {
        if i > 0 {
            content.push(b'&');
        }
        content.extend_from_slice(k);
        content.push(b'=');
        content.extend_from_slice(v);
    }
    rsa2_sign(key, &content)
}

/// A form body of `params` in the order given, text in `encoding`.
pub(crate) fn alipay_body(
    params: &[(&str, &str)],
    encoding: &'static Encoding,
) -> Result<Vec<u8>, String> {
    let mut pairs = Vec::with_capacity(params.len());
    for (k, v) in params {
        let key = form_encode(&encode(encoding, k)?);
        let value = form_encode(&encode(encoding, v)?);
        pairs.push(format!("{key}={value}"));
    }
    Ok(pairs.join("&").into_bytes())
}

/// Encrypts a WeChat Pay resource: base64 of ciphertext with the tag
/// appended.
pub(crate) fn wechat_seal(
    key: &[u8; APIV3_KEY_BYTES],
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, String> {
    let nonce: [u8; GCM_NONCE_BYTES] = nonce
        .as_bytes()
        .try_into()
        .map_err(|_| "a resource nonce is 12 bytes".to_owned())?;
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "bad APIv3 key".to_owned())?;
    let payload = Payload {
        msg: plaintext,
        aad: associated_data.as_bytes(),
    };
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), payload)
        .map_err(|_| "AES-GCM encryption failed".to_owned())?;
    Ok(BASE64.encode(sealed))
}

/// The signature headers WeChat Pay sends with `body`.
pub(crate) fn wechat_headers(
    key: &Rsa2Signer,
    serial: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Result<Headers, String> {
    let timestamp = timestamp.to_string();
    let signature = rsa2_sign(key, &signed_message(&timestamp, nonce, body))?;
    Ok(vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("wechatpay-timestamp".to_owned(), timestamp),
        ("wechatpay-nonce".to_owned(), nonce.to_owned()),
        ("wechatpay-signature".to_owned(), signature),
        ("wechatpay-serial".to_owned(), serial.to_owned()),
        (
            "wechatpay-signature-type".to_owned(),
            "WECHATPAY2-SHA256-RSA2048".to_owned(),
        ),
    ])
}

/// The headers a webhook sender signing with `secrets` sends with `body`.
pub(crate) fn hmac_headers(secrets: &[&[u8]], t: i64, body: &[u8]) -> Result<Headers, String> {
    let mut value = format!("t={t}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&crate::webhook::sign(secret, t, body)?);
    }
    Ok(vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (crate::webhook::SIGNATURE_HEADER.to_owned(), value),
    ])
}
