use rust_decimal::Decimal;

use super::*;
use crate::channel::{Account, Channel, OrderRequest};
use crate::sandbox::sign::{Headers, hmac_headers};
use crate::test_keys::test_now;

const SECRET: &[u8] = b"whsec_0123456789abcdef0123456789";
const OLD_SECRET: &[u8] = b"whsec_old_secret_rotated_out_0000";
const BODY: &str = r#"{"id":"ch_3PAbc0000000001","reference":"OTC000000000042","amount":"100.00","currency":"CNY","status":"paid","paid_at":"2024-05-01T12:00:00Z"}"#;

fn channel() -> Channel {
    let account = HmacAccount {
        secret: Zeroizing::new(SECRET.to_vec()),
    };
    Channel::new(
        "bank-x".to_owned(),
        chrono_tz::Asia::Shanghai,
        Account::Hmac(account),
    )
}

fn signed_by(secrets: &[&[u8]], t: i64, body: &[u8]) -> Headers {
    hmac_headers(secrets, t, body).expect("sign")
}

fn signed(body: &[u8]) -> Headers {
    signed_by(&[SECRET], test_now().timestamp(), body)
}

fn verify(headers: &Headers, body: &[u8]) -> Result<Notification, Refusal> {
    channel().verify(headers, body, test_now())
}

fn with_signature(value: &str) -> Headers {
    vec![(SIGNATURE_HEADER.to_owned(), value.to_owned())]
}

#[test]
fn accepts_a_correct_webhook() {
    let n = verify(&signed(BODY.as_bytes()), BODY.as_bytes()).expect("accepted");
    assert_eq!(n.txn_id, "ch_3PAbc0000000001");
    assert_eq!(n.reference, "OTC000000000042");
    assert_eq!(n.amount, Decimal::new(10_000, 2));
    assert_eq!(n.currency, "CNY");
    assert!(n.paid);
    assert_eq!(n.status, "paid");
    assert_eq!(n.paid_at, Some(test_now()));
}

#[test]
fn any_v1_may_match_during_a_key_rotation() {
    let both = signed_by(
        &[OLD_SECRET, SECRET],
        test_now().timestamp(),
        BODY.as_bytes(),
    );
    assert!(verify(&both, BODY.as_bytes()).is_ok());
    let old_only = signed_by(&[OLD_SECRET], test_now().timestamp(), BODY.as_bytes());
    assert_eq!(
        verify(&old_only, BODY.as_bytes()),
        Err(Refusal::BadSignature)
    );
    // Unknown schemes are ignored, as long as a v1 matches.
    let (_, value) = &signed(BODY.as_bytes())[1];
    let with_v0 = with_signature(&format!("{value},v0=deadbeef"));
    assert!(verify(&with_v0, BODY.as_bytes()).is_ok());
}

#[test]
fn refuses_a_body_changed_by_one_byte() {
    let headers = signed(BODY.as_bytes());
    let changed = BODY.replacen("100.00", "900.00", 1);
    assert_eq!(
        verify(&headers, changed.as_bytes()),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn reordered_json_keys_are_refused_because_the_raw_body_is_signed() {
    let headers = signed(BODY.as_bytes());
    let reordered = r#"{"reference":"OTC000000000042","id":"ch_3PAbc0000000001","amount":"100.00","currency":"CNY","status":"paid","paid_at":"2024-05-01T12:00:00Z"}"#;
    assert_eq!(
        verify(&headers, reordered.as_bytes()),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn refuses_stale_timestamps_both_ways() {
    let now = test_now().timestamp();
    for (t, skew_secs) in [(now - 301, 301), (now + 301, -301)] {
        let headers = signed_by(&[SECRET], t, BODY.as_bytes());
        assert_eq!(
            verify(&headers, BODY.as_bytes()),
            Err(Refusal::Stale { skew_secs })
        );
    }
    for t in [now - 300, now + 300] {
        assert!(verify(&signed_by(&[SECRET], t, BODY.as_bytes()), BODY.as_bytes()).is_ok());
    }
}

#[test]
fn amounts_must_be_decimal_strings() {
    for (amount, why) in [
        ("100.00", "a JSON number"),
        ("100", "a JSON number"),
        ("\"100.0000001\"", "more than 2 decimal places"),
        ("\"1e3\"", "not a plain decimal amount"),
        ("\"-1.00\"", "not a plain decimal amount"),
    ] {
        let body = BODY.replacen("\"100.00\"", amount, 1);
        match verify(&signed(body.as_bytes()), body.as_bytes()) {
            Err(Refusal::Malformed { field, why: got }) => {
                assert_eq!(field, "amount");
                assert!(got.starts_with(why), "{amount}: {got}");
            }
            other => panic!("{amount} gave {other:?}"),
        }
    }
    // A signed zero is read, for the engine to record as a wrong amount.
    let body = BODY.replacen("\"100.00\"", "\"0.00\"", 1);
    let n = verify(&signed(body.as_bytes()), body.as_bytes()).expect("zero");
    assert!(n.amount.is_zero());
}

#[test]
fn malformed_signature_headers_are_refused() {
    let body = BODY.as_bytes();
    let t = test_now().timestamp();
    let mac = sign(SECRET, t, body).expect("sign");
    assert_eq!(
        verify(&Vec::new(), body),
        Err(Refusal::Unsigned {
            what: SIGNATURE_HEADER
        })
    );
    assert_eq!(
        verify(&with_signature(&format!("t={t}")), body),
        Err(Refusal::Unsigned {
            what: "otc-signature v1"
        })
    );
    assert_eq!(
        verify(&with_signature(&format!("v1={mac}")), body),
        Err(Refusal::Unsigned {
            what: "otc-signature t"
        })
    );
    for bad in [
        format!("t=abc,v1={mac}"),
        format!("t={t},t={t},v1={mac}"),
        format!("t={t},v1=zz"),
        format!("t={t},v1={}", &mac[..10]),
        format!("t={t},v1={mac};x"),
        format!("t={t},{}", vec![format!("v1={mac}"); 9].join(",")),
    ] {
        assert!(
            matches!(
                verify(&with_signature(&bad), body),
                Err(Refusal::Malformed { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_pending_status_is_reported_not_paid() {
    let body = BODY.replacen("\"paid\"", "\"pending\"", 1).replacen(
        r#","paid_at":"2024-05-01T12:00:00Z""#,
        "",
        1,
    );
    let n = verify(&signed(body.as_bytes()), body.as_bytes()).expect("accepted");
    assert!(!n.paid);
    assert_eq!(n.paid_at, None);
}

#[test]
fn payment_orders_carry_reference_and_amount_only() {
    let order = OrderRequest {
        reference: "OTC000000000042".to_owned(),
        amount: Decimal::new(1_005, 1),
        subject: "USDT".to_owned(),
        notify_url: "https://otc.example.com/gateway/bank-x/notify".to_owned(),
        return_url: String::new(),
        timeout_minutes: 15,
        now: test_now(),
    };
    let made = channel().payment_order(&order).expect("order");
    assert_eq!(made.pay_url, None);
    assert_eq!(made.amount, "100.50");
    assert_eq!(made.reference, "OTC000000000042");
}
