use std::fs;

use rust_decimal::Decimal;
use tempfile::TempDir;

use super::*;
use crate::channel::Channel;
use crate::config::load_channels;
use crate::refusal::Refusal;
use crate::test_keys::test_now;

fn payment(txn_id: &str, status: SandboxStatus, charset: SandboxCharset) -> SandboxPayment {
    SandboxPayment {
        txn_id: txn_id.to_owned(),
        reference: "OTC000000000042".to_owned(),
        amount: Decimal::new(12_345, 2),
        status,
        charset,
        subject: "测试商品 USDT".to_owned(),
    }
}

fn find<'a>(channels: &'a [Channel], name: &str) -> &'a Channel {
    channels
        .iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no channel {name}"))
}

/// One sandbox for the whole test: creating one generates three RSA keys.
#[test]
fn a_sandbox_gateway_posts_what_the_channels_accept() {
    let dir = TempDir::new().expect("temp dir");
    let path = create(dir.path()).expect("create");
    assert_eq!(path, dir.path().join(CHANNELS_FILE));
    let channels = load_channels(&path).expect("the sandbox's channels load");
    let gateway = SandboxGateway::open(dir.path()).expect("open");
    assert_eq!(
        gateway.channels().collect::<Vec<_>>(),
        [ALIPAY_CHANNEL, WECHATPAY_CHANNEL, HMAC_CHANNEL]
    );
    let now = test_now();
    let cases = [
        (ALIPAY_CHANNEL, SandboxCharset::Utf8),
        (ALIPAY_CHANNEL, SandboxCharset::Gbk),
        (WECHATPAY_CHANNEL, SandboxCharset::Utf8),
        (HMAC_CHANNEL, SandboxCharset::Utf8),
    ];
    for (name, charset) in cases {
        let channel = find(&channels, name);
        let paid = payment("T-1", SandboxStatus::Paid, charset);
        let (headers, body) = gateway.notify(name, &paid, now).expect("notify");
        assert!(headers.iter().any(|(k, _)| k == "content-type"));
        let n = channel
            .verify(&headers, &body, now)
            .unwrap_or_else(|r| panic!("{name} {charset:?} refused: {r}"));
        assert_eq!(
            (n.txn_id.as_str(), n.reference.as_str()),
            ("T-1", "OTC000000000042")
        );
        assert_eq!(n.amount, Decimal::new(12_345, 2));
        assert_eq!(n.currency, "CNY");
        assert!(n.paid, "{name}");
        assert_eq!(n.paid_at, Some(now), "{name}");

        let closed = payment("T-2", SandboxStatus::Closed, charset);
        let (headers, body) = gateway.notify(name, &closed, now).expect("notify");
        let n = channel.verify(&headers, &body, now).expect("accepted");
        assert!(!n.paid && n.paid_at.is_none(), "{name}");

        // A sandbox notification is bound to its channel.
        let other = find(
            &channels,
            if name == HMAC_CHANNEL {
                ALIPAY_CHANNEL
            } else {
                HMAC_CHANNEL
            },
        );
        assert!(other.verify(&headers, &body, now).is_err());
    }
    answers_follow_each_gateway(&channels);
    returns_are_verified(&gateway, &channels);
    reopening_reuses_the_keys(dir.path());
    assert!(
        gateway
            .notify(
                "nope",
                &payment("T", SandboxStatus::Paid, SandboxCharset::Utf8),
                now
            )
            .is_err()
    );
    let too_fine = SandboxPayment {
        amount: Decimal::new(1, 3),
        ..payment("T", SandboxStatus::Paid, SandboxCharset::Utf8)
    };
    assert!(gateway.notify(HMAC_CHANNEL, &too_fine, now).is_err());
    assert!(!format!("{gateway:?}").contains("BEGIN"));
}

fn answers_follow_each_gateway(channels: &[Channel]) {
    let forged = Refusal::BadSignature;
    let malformed = Refusal::malformed("total_amount", "more than 2 decimal places");
    let alipay = find(channels, ALIPAY_CHANNEL);
    assert_eq!(alipay.accepted().body, "success");
    assert_eq!(alipay.accepted().status, 200);
    assert_eq!(
        (
            alipay.refused(&forged).status,
            alipay.refused(&forged).body.as_str()
        ),
        (400, "fail")
    );
    let wechat = find(channels, WECHATPAY_CHANNEL);
    assert_eq!(wechat.accepted().status, 204);
    assert_eq!(wechat.accepted().content_type, None);
    assert_eq!(wechat.refused(&forged).status, 401);
    assert_eq!(wechat.refused(&malformed).status, 400);
    let body: serde_json::Value =
        serde_json::from_str(&wechat.refused(&malformed).body).expect("JSON");
    assert_eq!(body["code"], "FAIL");
    assert_eq!(body["message"], "total_amount: more than 2 decimal places");
    // Not recorded (storage failing): each gateway's own failure, so it
    // retries.
    assert_eq!(
        (
            alipay.unavailable().status,
            alipay.unavailable().body.as_str()
        ),
        (503, "fail")
    );
    let body: serde_json::Value = serde_json::from_str(&wechat.unavailable().body).expect("JSON");
    assert_eq!(
        (wechat.unavailable().status, &body["code"]),
        (503, &serde_json::json!("FAIL"))
    );
    let hmac = find(channels, HMAC_CHANNEL);
    assert_eq!(hmac.accepted().body, r#"{"received":true}"#);
    assert_eq!(hmac.refused(&forged).status, 401);
    assert_eq!(hmac.refused(&malformed).status, 400);
}

/// Alipay's way back to `return_url` is signed as a notification is: the
/// reference is believed only when the signature holds.
fn returns_are_verified(gateway: &SandboxGateway, channels: &[Channel]) {
    let now = test_now();
    let paid = payment("T-9", SandboxStatus::Paid, SandboxCharset::Utf8);
    let query = gateway
        .return_query(ALIPAY_CHANNEL, &paid, now)
        .expect("return query");
    let alipay = find(channels, ALIPAY_CHANNEL);
    assert_eq!(
        alipay.verify_return(query.as_bytes()).as_deref(),
        Ok("OTC000000000042")
    );
    // Someone else's reference in a signed query: the signature fails.
    let other = query.replace("OTC000000000042", "OTC000000000043");
    assert_eq!(
        alipay.verify_return(other.as_bytes()),
        Err(Refusal::BadSignature)
    );
    let unsigned = "out_trade_no=OTC000000000042&total_amount=123.45";
    assert_eq!(
        alipay.verify_return(unsigned.as_bytes()),
        Err(Refusal::Unsigned { what: "sign" })
    );
    // WeChat Pay and hmac send no payer back.
    for name in [WECHATPAY_CHANNEL, HMAC_CHANNEL] {
        let e = find(channels, name)
            .verify_return(query.as_bytes())
            .expect_err(name);
        assert!(e.to_string().starts_with("channel"), "{name}: {e}");
    }
    assert!(gateway.return_query(HMAC_CHANNEL, &paid, now).is_err());
}

fn reopening_reuses_the_keys(dir: &std::path::Path) {
    let secret = fs::read(dir.join("keys/hmac.secret")).expect("read");
    assert_eq!(create(dir).expect("reuse"), dir.join(CHANNELS_FILE));
    assert_eq!(
        fs::read(dir.join("keys/hmac.secret")).expect("read"),
        secret
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [
            "keys/alipay-app-private.pem",
            "keys/wechat-apiv3.key",
            "keys/hmac.secret",
            "gateway-keys/sandbox-alipay.pem",
            "gateway-keys/sandbox-wechatpay.pem",
        ] {
            let mode = fs::metadata(dir.join(file))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
}
