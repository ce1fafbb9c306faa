use std::str::FromStr;

use chrono::DateTime;
use encoding_rs::{Encoding, GBK, UTF_8};
use rsa::{RsaPrivateKey, RsaPublicKey};
use rust_decimal::Decimal;

use super::*;
use crate::channel::{Account, Channel, OrderRequest};
use crate::keys::parse_public_key;
use crate::sandbox::sign::{alipay_body, alipay_sign};
use crate::test_keys::{keys, test_now};
use crate::wire::form_decode;

const APP_ID: &str = "2021000000000001";
const SELLER_ID: &str = "2088000000000001";

fn channel_with(alipay_key: RsaPublicKey, app_id: &str, seller_id: &str) -> Channel {
    let account = AlipayAccount {
        app_id: app_id.to_owned(),
        seller_id: seller_id.to_owned(),
        app_key: Rsa2Signer::new(keys().app.clone()),
        alipay_key: Rsa2Verifier::new(alipay_key),
        gateway_url: DEFAULT_GATEWAY_URL.to_owned(),
    };
    Channel::new(
        "alipay-test".to_owned(),
        chrono_tz::Asia::Shanghai,
        Account::Alipay(Box::new(account)),
    )
}

fn channel() -> Channel {
    channel_with(keys().alipay_gateway.to_public_key(), APP_ID, SELLER_ID)
}

/// A TRADE_SUCCESS notification's parameters, as Alipay sends them.
fn params<'a>(app_id: &'a str, amount: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("gmt_create", "2024-05-01 19:59:40"),
        ("charset", "utf-8"),
        ("seller_email", "seller@example.com"),
        ("subject", "USDT 100"),
        ("buyer_id", "2088102000000001"),
        ("notify_id", "2024050100222200000000000000000001"),
        ("notify_type", "trade_status_sync"),
        ("trade_status", "TRADE_SUCCESS"),
        ("sign_type", "RSA2"),
        ("app_id", app_id),
        ("seller_id", SELLER_ID),
        ("gmt_payment", "2024-05-01 20:00:00"),
        ("notify_time", "2024-05-01 20:00:01"),
        ("version", "1.0"),
        ("out_trade_no", "OTC000000000042"),
        ("total_amount", amount),
        ("trade_no", "2024050122001400000000000001"),
        ("body", ""),
    ]
}

/// The form body of `params` (in their order) and a signature by `key`.
fn signed(params: &[(&str, &str)], encoding: &'static Encoding, key: &RsaPrivateKey) -> Vec<u8> {
    let sign = alipay_sign(params, encoding, &Rsa2Signer::new(key.clone())).expect("sign");
    let mut all = params.to_vec();
    all.push(("sign", &sign));
    alipay_body(&all, encoding).expect("encode")
}

fn verify(channel: &Channel, body: &[u8]) -> Result<Notification, Refusal> {
    channel.verify(&[], body, test_now())
}

fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).expect("ascii body");
    assert!(text.contains(from), "{from} not in body");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn accepts_a_correct_notification() {
    let body = signed(&params(APP_ID, "100.00"), UTF_8, &keys().alipay_gateway);
    let n = verify(&channel(), &body).expect("accepted");
    assert_eq!(n.txn_id, "2024050122001400000000000001");
    assert_eq!(n.reference, "OTC000000000042");
    assert_eq!(n.amount, Decimal::new(10_000, 2));
    assert_eq!(n.currency, "CNY");
    assert!(n.paid);
    assert_eq!(n.status, "TRADE_SUCCESS");
    assert_eq!(n.paid_at, Some(test_now()));
}

/// A real notification signed by Alipay, published in Alipay's Node.js SDK
/// tests: github.com/alipay/alipay-sdk-nodejs-all, test/alipay.test.ts,
/// "checkNotifySign / verify sign should delete sign_type / with sign_type
/// arguments verify success" (the `notifyAlipayPublicKeyV1` key). The body
/// is that object form-encoded (`fund_bill_list` as the JSON text Alipay
/// sends).
#[test]
fn accepts_a_notification_published_by_alipay() {
    const PUBLIC_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqObrdC7hrgAVM98tK0nv3hSQRGGKT4lBsQjHiGjeYZjOPIPHR5knm2jnnz/YGIXIofVHkA/tAlBAd5DrY7YpvI4tP5EONLtZKC2ghBMx7McI2wRD0xiqzxOQr1FuhZGJ8/AUokBzJrzY+aGX2xcOrxFYRlFilvVLTXg4LWjR1tdPkO6+i7wQZAIVMClPkwVRZEbaERRHlKqTzv2gGv5rDU8gRoe1LeaN+6BlbTqHWkQcNCUNrA8C6l17XAXGKDsm/9TFWwO8EPHHHCaQdjtV5/FdcWIt+L8SR1ss7EXTjYDFtxcKVv9rEoY1lX8T4mX+GbXfZHraG5NCF1+XioL5JwIDAQAB";
    const BODY: &str = "gmt_create=2019-08-15+15%3A56%3A22&charset=utf-8&seller_email=z97-yuquerevenue%40service.aliyun.com&subject=%E8%AF%AD%E9%9B%80%E7%A9%BA%E9%97%B4+500%E4%BA%BA%E8%A7%84%E6%A8%A1&buyer_id=2088102534368455&invoice_amount=0.10&notify_id=2019081500222155624068450559358070&fund_bill_list=%5B%7B%22amount%22%3A%220.10%22%2C%22fundChannel%22%3A%22ALIPAYACCOUNT%22%7D%5D&notify_type=trade_status_sync&trade_status=TRADE_SUCCESS&receipt_amount=0.10&buyer_pay_amount=0.10&app_id=2019073166072302&seller_id=2088531891668739&gmt_payment=2019-08-15+15%3A56%3A24&notify_time=2019-08-15+15%3A56%3A25&version=1.0&out_trade_no=20190815155618536-564-57&total_amount=0.10&trade_no=2019081522001468450512505578&auth_app_id=2019073166072302&buyer_logon_id=xud%2A%2A%2A%40126.com&point_amount=0.00&sign=QfTb8tqE1BMhS5qAnXtvsF3%2FjBkEvu9q9en0pdbBUDDjvKycZhQb7h8GDs4FKfi049PynaNuatxSgLb%2FnLWZpXyyh0LEWdK2S6Ri7nPwrVgOs08zugLO20vOQz44y3ti2Ncm8%2FwZts1Fr2gZ7pShnVX3d1B50hbsXnObT1r%2FU8ONNQjWXd0HIul4TG%2BQ3fm3svmSvFEy0WnzuhcyHPX5Gm4ELNctL6Qd5YniGJFNcc7kopHYtI%2FXD9YCKCH6Ct02rzUs9i11C9CsadtZn%2BWhxF26Dqt9sGEFajkJ8cxUTLi8%2BVCpLHsgPE8P0y095uQcDdK0YjCh4x7wVSov%2BlrmOQ%3D%3D&sign_type=RSA2";
    let key = parse_public_key(PUBLIC_KEY).expect("published key");
    let channel = channel_with(key, "2019073166072302", "2088531891668739");
    let n = verify(&channel, BODY.as_bytes()).expect("Alipay's own signature verifies");
    assert_eq!(n.txn_id, "2019081522001468450512505578");
    assert_eq!(n.reference, "20190815155618536-564-57");
    assert_eq!(n.amount, Decimal::new(10, 2));
    assert!(n.paid);
    let paid_at = DateTime::parse_from_rfc3339("2019-08-15T15:56:24+08:00").expect("valid");
    assert_eq!(n.paid_at, Some(paid_at.to_utc()));
    let tampered = replace(BODY.as_bytes(), "total_amount=0.10", "total_amount=0.11");
    assert_eq!(verify(&channel, &tampered), Err(Refusal::BadSignature));
}

#[test]
fn refuses_a_signature_by_another_key() {
    let body = signed(&params(APP_ID, "100.00"), UTF_8, &keys().stranger);
    assert_eq!(verify(&channel(), &body), Err(Refusal::BadSignature));
}

#[test]
fn refuses_a_body_changed_by_one_byte() {
    let body = signed(&params(APP_ID, "100.00"), UTF_8, &keys().alipay_gateway);
    for (from, to) in [
        ("total_amount=100.00", "total_amount=900.00"),
        ("OTC000000000042", "OTC000000000043"),
        ("TRADE_SUCCESS", "TRADE_SUCCESZ"),
    ] {
        assert_eq!(
            verify(&channel(), &replace(&body, from, to)),
            Err(Refusal::BadSignature)
        );
    }
    // Adding a parameter changes the signed content too.
    let mut longer = body.clone();
    longer.extend_from_slice(b"&extra=1");
    assert_eq!(verify(&channel(), &longer), Err(Refusal::BadSignature));
}

#[test]
fn reordered_parameters_still_verify() {
    let mut params = params(APP_ID, "100.00");
    let sign = alipay_sign(
        &params,
        UTF_8,
        &Rsa2Signer::new(keys().alipay_gateway.clone()),
    )
    .expect("sign");
    params.reverse();
    params.insert(3, ("sign", &sign));
    let body = alipay_body(&params, UTF_8).expect("encode");
    assert!(verify(&channel(), &body).is_ok_and(|n| n.paid));
}

#[test]
fn refuses_a_foreign_app_id_or_seller_id() {
    let body = signed(
        &params("2021000000000999", "100.00"),
        UTF_8,
        &keys().alipay_gateway,
    );
    assert_eq!(
        verify(&channel(), &body),
        Err(Refusal::ForeignAccount { field: "app_id" })
    );
    let other_seller = channel_with(
        keys().alipay_gateway.to_public_key(),
        APP_ID,
        "2088000000000999",
    );
    let body = signed(&params(APP_ID, "100.00"), UTF_8, &keys().alipay_gateway);
    assert_eq!(
        verify(&other_seller, &body),
        Err(Refusal::ForeignAccount { field: "seller_id" })
    );
}

#[test]
fn amounts_that_are_not_plain_fen_are_malformed() {
    for amount in ["100.0000001", "1e3", "-5", "5.", " 5"] {
        let body = signed(&params(APP_ID, amount), UTF_8, &keys().alipay_gateway);
        match verify(&channel(), &body) {
            Err(Refusal::Malformed { field, .. }) => assert_eq!(field, "total_amount", "{amount}"),
            other => panic!("{amount:?} gave {other:?}"),
        }
    }
    // A signed zero is read, for the engine to record as a wrong amount.
    let body = signed(&params(APP_ID, "0.00"), UTF_8, &keys().alipay_gateway);
    let n = verify(&channel(), &body).expect("zero");
    assert!(n.amount.is_zero());
}

#[test]
fn a_gbk_notification_verifies_and_decodes() {
    let mut params = params(APP_ID, "88.80");
    for (key, value) in params.iter_mut() {
        match *key {
            "charset" => *value = "GBK",
            "subject" => *value = "测试商品",
            "body" => *value = "商品描述 100 USDT",
            _ => {}
        }
    }
    let body = signed(&params, GBK, &keys().alipay_gateway);
    // "测试商品" travels as GBK bytes, not UTF-8.
    assert!(String::from_utf8_lossy(&body).contains("subject=%B2%E2%CA%D4%C9%CC%C6%B7"));
    let n = verify(&channel(), &body).expect("accepted");
    assert_eq!(n.amount, Decimal::new(8_880, 2));
    let form = Form::parse(&body).expect("valid");
    assert_eq!(form.get("subject"), Some("测试商品"));
    // The same bytes read as UTF-8 are not text: refused, never misread.
    let as_utf8 = replace(&body, "charset=GBK", "charset=utf-8");
    assert!(matches!(
        verify(&channel(), &as_utf8),
        Err(Refusal::Malformed { .. })
    ));
}

#[test]
fn a_repeated_parameter_is_malformed() {
    let body = signed(&params(APP_ID, "100.00"), UTF_8, &keys().alipay_gateway);
    let mut repeated = body.clone();
    repeated.extend_from_slice(b"&total_amount=1.00");
    assert_eq!(
        verify(&channel(), &repeated),
        Err(Refusal::malformed("total_amount", "repeated"))
    );
}

#[test]
fn missing_or_foreign_signature_types_are_refused() {
    let body = signed(&params(APP_ID, "100.00"), UTF_8, &keys().alipay_gateway);
    let text = String::from_utf8(body.clone()).expect("ascii");
    let (unsigned, _) = text.split_once("&sign=").expect("sign is last");
    assert_eq!(
        verify(&channel(), unsigned.as_bytes()),
        Err(Refusal::Unsigned { what: "sign" })
    );
    let rsa1 = replace(&body, "sign_type=RSA2", "sign_type=RSA");
    assert!(
        matches!(verify(&channel(), &rsa1), Err(Refusal::Malformed { field, .. }) if field == "sign_type")
    );
    assert!(verify(&channel(), &body[..body.len() - 1]).is_err());
}

/// Alipay's notification of a partial refund says TRADE_SUCCESS with a
/// refund_fee: verified, but not a payment.
#[test]
fn a_partial_refunds_notification_is_not_a_payment() {
    let mut p = params(APP_ID, "100.00");
    p.push(("refund_fee", "30.00"));
    p.push(("gmt_refund", "2024-05-01 21:00:00.123"));
    let n = verify(&channel(), &signed(&p, UTF_8, &keys().alipay_gateway)).expect("accepted");
    assert!(!n.paid);
    assert_eq!(n.status, "TRADE_SUCCESS");
    let mut p = params(APP_ID, "100.00");
    p.push(("refund_fee", "0.00"));
    let n = verify(&channel(), &signed(&p, UTF_8, &keys().alipay_gateway)).expect("accepted");
    assert!(n.paid, "no refund: a payment");
    let mut p = params(APP_ID, "100.00");
    p.push(("refund_fee", "1e2"));
    let e = verify(&channel(), &signed(&p, UTF_8, &keys().alipay_gateway)).expect_err("bad");
    assert!(e.to_string().contains("refund_fee"), "{e}");
}

#[test]
fn an_unpaid_status_is_reported_not_paid() {
    let mut params = params(APP_ID, "100.00");
    params.retain(|(k, _)| *k != "gmt_payment");
    for (key, value) in params.iter_mut() {
        if *key == "trade_status" {
            *value = "WAIT_BUYER_PAY";
        }
    }
    let n = verify(&channel(), &signed(&params, UTF_8, &keys().alipay_gateway)).expect("accepted");
    assert!(!n.paid);
    assert_eq!(n.status, "WAIT_BUYER_PAY");
    assert_eq!(n.paid_at, None);
}

fn order() -> OrderRequest {
    OrderRequest {
        reference: "OTC000000000042".to_owned(),
        amount: Decimal::from_str("100").expect("literal"),
        subject: "USDT 100 测试".to_owned(),
        notify_url: "https://otc.example.com/gateway/alipay-test/notify?a=1&b=2".to_owned(),
        return_url: "https://otc.example.com/trades/42".to_owned(),
        timeout_minutes: 15,
        now: test_now(),
    }
}

/// Splits a URL's query into decoded (key, value) pairs.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let (_, query) = url.split_once('?').expect("query");
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("k=v");
            let decode = |s: &str| {
                String::from_utf8(form_decode("q", s.as_bytes()).expect("escape")).expect("utf-8")
            };
            (decode(k), decode(v))
        })
        .collect()
}

#[test]
fn page_pay_url_is_signed_over_the_sorted_parameters() {
    let order = channel().payment_order(&order()).expect("order");
    assert_eq!(order.amount, "100.00");
    assert_eq!(order.reference, "OTC000000000042");
    let url = order.pay_url.expect("alipay has a URL");
    assert!(url.starts_with("https://openapi.alipay.com/gateway.do?"));
    // Values are form-encoded: no raw space, brace, quote or second '?'.
    let (_, query) = url.split_once('?').expect("query");
    assert!(!query.contains([' ', '{', '"', '?', ':']), "{query}");
    assert!(query.contains(
        "notify_url=https%3A%2F%2Fotc.example.com%2Fgateway%2Falipay-test%2Fnotify%3Fa%3D1%26b%3D2"
    ));
    let pairs = query_pairs(&url);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("method"), Some("alipay.trade.page.pay"));
    assert_eq!(get("app_id"), Some(APP_ID));
    assert_eq!(get("sign_type"), Some("RSA2"));
    assert_eq!(get("charset"), Some("utf-8"));
    assert_eq!(get("timestamp"), Some("2024-05-01 20:00:00"));
    let biz: serde_json::Value =
        serde_json::from_str(get("biz_content").expect("biz_content")).expect("JSON");
    assert_eq!(biz["out_trade_no"], "OTC000000000042");
    assert_eq!(biz["total_amount"], "100.00");
    // Absolute, the request's time plus the 15 minutes asked for.
    assert_eq!(biz["time_expire"], "2024-05-01 20:15:00");
    assert!(biz.get("timeout_express").is_none());
    assert_eq!(biz["product_code"], "FAST_INSTANT_TRADE_PAY");
    assert_eq!(biz["subject"], "USDT 100 测试");
    // What python-alipay-sdk and Alipay check: RSA2 over the sorted k=v of
    // every parameter but sign, with the app's public key.
    let sign = get("sign").expect("sign").to_owned();
    let content = super::order::signed_content(&pairs);
    assert!(content.starts_with("app_id=") && content.contains("&sign_type=RSA2&"));
    let app_public = Rsa2Verifier::new(keys().app.to_public_key());
    assert_eq!(rsa2_verify(&app_public, content.as_bytes(), &sign), Ok(()));
    let wrong = Rsa2Verifier::new(keys().alipay_gateway.to_public_key());
    assert_eq!(
        rsa2_verify(&wrong, content.as_bytes(), &sign),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn payment_orders_refuse_what_the_gateway_would() {
    let bad = [
        OrderRequest {
            amount: Decimal::from_str("100.001").expect("literal"),
            ..order()
        },
        OrderRequest {
            amount: Decimal::ZERO,
            ..order()
        },
        OrderRequest {
            reference: "OTC 42".to_owned(),
            ..order()
        },
        OrderRequest {
            timeout_minutes: 0,
            ..order()
        },
        OrderRequest {
            subject: String::new(),
            ..order()
        },
        OrderRequest {
            notify_url: "ftp://x".to_owned(),
            ..order()
        },
    ];
    for request in bad {
        assert!(channel().payment_order(&request).is_err(), "{request:?}");
    }
    let no_return = OrderRequest {
        return_url: String::new(),
        ..order()
    };
    let url = channel()
        .payment_order(&no_return)
        .expect("order")
        .pay_url
        .expect("url");
    assert!(!url.contains("return_url"));
}
