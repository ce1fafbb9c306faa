use rsa::RsaPrivateKey;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::*;
use crate::channel::{Account, Channel};
use crate::keys::Rsa2Signer;
use crate::sandbox::sign::{Headers, wechat_headers, wechat_seal};
use crate::test_keys::{keys, test_now};

const MCHID: &str = "1900000001";
const APPID: &str = "wxd678efh567hg6787";
const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A72";
const APIV3_KEY: &[u8; APIV3_KEY_BYTES] = b"0123456789abcdefghijklmnopqrstuv";
const RESOURCE_NONCE: &str = "nWq3kGz8Tb1L";
const HEADER_NONCE: &str = "Yc6nMo1SSj7VdEz1GqbeILNTvRbanJhd";

fn channel_with(apiv3_key: &[u8; APIV3_KEY_BYTES]) -> Channel {
    let account = WeChatAccount {
        mchid: MCHID.to_owned(),
        appid: APPID.to_owned(),
        apiv3_key: Zeroizing::new(*apiv3_key),
        platform_keys: vec![PlatformKey {
            serial: SERIAL.to_owned(),
            key: Rsa2Verifier::new(keys().platform.to_public_key()),
        }],
    };
    Channel::new(
        "wechat-test".to_owned(),
        chrono_tz::Asia::Shanghai,
        Account::WeChatPay(Box::new(account)),
    )
}

fn channel() -> Channel {
    channel_with(APIV3_KEY)
}

fn transaction(mchid: &str, appid: &str, total: Value) -> Value {
    json!({
        "mchid": mchid,
        "appid": appid,
        "out_trade_no": "OTC000000000042",
        "transaction_id": "4200000000202405010000000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2024-05-01T20:00:00+08:00",
        "payer": { "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
        "amount": { "total": total, "payer_total": 10000, "currency": "CNY", "payer_currency": "CNY" }
    })
}

/// A notification body, keys in the order WeChat Pay writes them unless
/// `reordered`.
fn body_for(transaction: &Value, event_type: &str, reordered: bool) -> Vec<u8> {
    let plaintext = serde_json::to_vec(transaction).expect("JSON");
    let ciphertext =
        wechat_seal(APIV3_KEY, RESOURCE_NONCE, "transaction", &plaintext).expect("seal");
    let resource = format!(
        r#"{{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"{ciphertext}","associated_data":"transaction","nonce":"{RESOURCE_NONCE}"}}"#
    );
    let (id, created) = (
        r#""id":"EV-2018022511223320873""#,
        r#""create_time":"2024-05-01T20:00:01+08:00""#,
    );
    let (first, second) = if reordered {
        (created, id)
    } else {
        (id, created)
    };
    format!(
        r#"{{{first},{second},"resource_type":"encrypt-resource","event_type":"{event_type}","summary":"支付成功","resource":{resource}}}"#
    )
    .into_bytes()
}

fn paid_body() -> Vec<u8> {
    body_for(
        &transaction(MCHID, APPID, json!(10000)),
        "TRANSACTION.SUCCESS",
        false,
    )
}

fn headers(body: &[u8], key: &RsaPrivateKey, serial: &str, timestamp: i64) -> Headers {
    wechat_headers(
        &Rsa2Signer::new(key.clone()),
        serial,
        timestamp,
        HEADER_NONCE,
        body,
    )
    .expect("sign")
}

fn signed(body: &[u8]) -> Headers {
    headers(body, &keys().platform, SERIAL, test_now().timestamp())
}

fn verify(channel: &Channel, headers: &Headers, body: &[u8]) -> Result<Notification, Refusal> {
    channel.verify(headers, body, test_now())
}

#[test]
fn accepts_a_correct_notification() {
    let body = paid_body();
    let n = verify(&channel(), &signed(&body), &body).expect("accepted");
    assert_eq!(n.txn_id, "4200000000202405010000000001");
    assert_eq!(n.reference, "OTC000000000042");
    assert_eq!(n.amount, Decimal::new(10_000, 2));
    assert_eq!(n.currency, "CNY");
    assert!(n.paid);
    assert_eq!(n.status, "SUCCESS");
    assert_eq!(n.paid_at, Some(test_now()));
}

/// The AEAD_AES_256_GCM vector published in WeChat Pay's Java SDK:
/// github.com/wechatpay-apiv3/wechatpay-java,
/// core/src/test/java/com/wechat/pay/java/core/cipher/AeadAesCipherTest.java
/// (API_V3_KEY from core/src/test/java/com/wechat/pay/java/core/model/TestConfig.java).
#[test]
fn decrypts_the_vector_published_by_wechat_pay() {
    let key = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
    let plaintext = open_resource(
        key,
        "uluk4a9R25RW",
        "associatedData",
        "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=",
    )
    .expect("published vector decrypts");
    assert_eq!(plaintext.as_slice(), b"message");
    assert_eq!(
        open_resource(
            key,
            "uluk4a9R25RW",
            "associatedDatb",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
        ),
        Err(Refusal::Undecryptable)
    );
    assert!(open_resource(key, "short", "", "AAAA").is_err());
}

#[test]
fn refuses_a_signature_by_another_key() {
    let body = paid_body();
    let forged = headers(&body, &keys().stranger, SERIAL, test_now().timestamp());
    assert_eq!(
        verify(&channel(), &forged, &body),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn refuses_a_body_changed_by_one_byte() {
    let body = paid_body();
    let headers = signed(&body);
    let at = body
        .iter()
        .position(|&b| b == b'2')
        .expect("a digit in the id");
    let mut changed = body.clone();
    changed[at] = b'3';
    assert_eq!(
        verify(&channel(), &headers, &changed),
        Err(Refusal::BadSignature)
    );
    let mut longer = body.clone();
    longer.push(b' ');
    assert_eq!(
        verify(&channel(), &headers, &longer),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn reordered_json_keys_are_refused_because_the_raw_body_is_signed() {
    let body = paid_body();
    let reordered = body_for(
        &transaction(MCHID, APPID, json!(10000)),
        "TRANSACTION.SUCCESS",
        true,
    );
    assert_ne!(body, reordered);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON"),
        serde_json::from_slice::<Value>(&reordered).expect("JSON")
    );
    assert_eq!(
        verify(&channel(), &signed(&body), &reordered),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn refuses_stale_timestamps_both_ways() {
    let body = paid_body();
    let now = test_now().timestamp();
    for (timestamp, skew_secs) in [(now - 301, 301), (now + 301, -301), (now - 86_400, 86_400)] {
        let h = headers(&body, &keys().platform, SERIAL, timestamp);
        assert_eq!(
            verify(&channel(), &h, &body),
            Err(Refusal::Stale { skew_secs })
        );
    }
    for timestamp in [now - 300, now + 300] {
        let h = headers(&body, &keys().platform, SERIAL, timestamp);
        assert!(verify(&channel(), &h, &body).is_ok());
    }
}

#[test]
fn refuses_a_foreign_mchid_or_appid() {
    let body = body_for(
        &transaction("1900000999", APPID, json!(10000)),
        "TRANSACTION.SUCCESS",
        false,
    );
    assert_eq!(
        verify(&channel(), &signed(&body), &body),
        Err(Refusal::ForeignAccount { field: "mchid" })
    );
    let body = body_for(
        &transaction(MCHID, "wx0000000000000999", json!(10000)),
        "TRANSACTION.SUCCESS",
        false,
    );
    assert_eq!(
        verify(&channel(), &signed(&body), &body),
        Err(Refusal::ForeignAccount { field: "appid" })
    );
}

#[test]
fn refuses_an_unknown_serial() {
    let body = paid_body();
    let h = headers(
        &body,
        &keys().platform,
        "7132D72A03E93CDDF8C03BBD1F37EEDF204CB8C3",
        test_now().timestamp(),
    );
    assert_eq!(
        verify(&channel(), &h, &body),
        Err(Refusal::UnknownKey {
            serial: "7132D72A03E93CDDF8C03BBD1F37EEDF204CB8C3".to_owned()
        })
    );
}

#[test]
fn fen_that_are_not_integers_are_malformed() {
    for total in [
        json!(10000.5),
        json!(100.0000001),
        json!(1e4),
        json!("10000"),
        json!(-1),
    ] {
        let body = body_for(
            &transaction(MCHID, APPID, total.clone()),
            "TRANSACTION.SUCCESS",
            false,
        );
        match verify(&channel(), &signed(&body), &body) {
            Err(Refusal::Malformed { field, .. }) => assert_eq!(field, "amount.total", "{total}"),
            other => panic!("{total} gave {other:?}"),
        }
    }
}

#[test]
fn refuses_a_resource_sealed_with_another_apiv3_key() {
    let body = paid_body();
    let other = channel_with(b"vutsrqponmlkjihgfedcba9876543210");
    assert_eq!(
        verify(&other, &signed(&body), &body),
        Err(Refusal::Undecryptable)
    );
    assert_eq!(Refusal::Undecryptable.kind(), "forged");
}

#[test]
fn refuses_missing_headers_and_other_events() {
    let body = paid_body();
    let all = signed(&body);
    for dropped in [
        "wechatpay-serial",
        "wechatpay-timestamp",
        "wechatpay-nonce",
        "wechatpay-signature",
    ] {
        let fewer: Headers = all.iter().filter(|(k, _)| k != dropped).cloned().collect();
        assert_eq!(
            verify(&channel(), &fewer, &body),
            Err(Refusal::Unsigned { what: dropped })
        );
    }
    let other = body_for(
        &transaction(MCHID, APPID, json!(10000)),
        "MARKETING.COUPON",
        false,
    );
    assert_eq!(
        verify(&channel(), &signed(&other), &other),
        Err(Refusal::malformed(
            "event_type",
            "neither a payment's nor a refund's notification"
        ))
    );
}

/// A refund's resource as WeChat Pay writes it (no app id).
fn refund(mchid: &str, status: &str) -> Value {
    json!({
        "mchid": mchid,
        "transaction_id": "4200000000202405010000000001",
        "out_trade_no": "OTC000000000042",
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": "RF000000000042",
        "refund_status": status,
        "success_time": "2024-05-02T10:00:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": { "total": 10000, "refund": 3000, "payer_total": 10000, "payer_refund": 3000 }
    })
}

/// A verified refund notification is news, not a payment: accepted (so
/// the gateway stops retrying) with `paid` false. A foreign merchant's is
/// still refused.
#[test]
fn a_refund_notification_is_verified_but_not_a_payment() {
    for (event, status) in [("REFUND.SUCCESS", "SUCCESS"), ("REFUND.CLOSED", "CLOSED")] {
        let body = body_for(&refund(MCHID, status), event, false);
        let n = verify(&channel(), &signed(&body), &body).expect("accepted");
        assert!(!n.paid, "{event}");
        assert_eq!(n.status, format!("REFUND_{status}"));
        assert_eq!(n.reference, "OTC000000000042");
        assert_eq!(n.txn_id, "4200000000202405010000000001");
        assert_eq!(n.amount.to_string(), "100.00");
    }
    let body = body_for(&refund("1900000109", "SUCCESS"), "REFUND.SUCCESS", false);
    assert_eq!(
        verify(&channel(), &signed(&body), &body),
        Err(Refusal::ForeignAccount { field: "mchid" })
    );
}
