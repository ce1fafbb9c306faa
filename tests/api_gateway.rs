//! Verified payment channels end to end (SPEC §19): the real `otcd` with the
//! sandbox channels, notifications signed by the sandbox gateway and POSTed
//! over loopback to its HTTP listener.

mod harness;

use harness::gateway::{
    anomalies, buy_on, channel_trade, get, notify, payment, post, sign, start, success,
};
use harness::steps::{balance, mark_paid};
use harness::{rid, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;

const ALIPAY: &str = "sandbox-alipay";
const WECHAT: &str = "sandbox-wechatpay";
const HMAC: &str = "sandbox-hmac";

fn state(t: &pb::Trade) -> pb::TradeState {
    pb::TradeState::try_from(t.state).expect("state")
}

/// The trade once it no longer awaits payment (the window timer may run
/// late on a loaded machine), waiting up to 10 s.
async fn settled(
    t: &mut otc_api::proto::trading_service_client::TradingServiceClient<harness::Authed>,
    id: &str,
) -> pb::Trade {
    for _ in 0..100 {
        let trade = get(t, id).await;
        if state(&trade) != pb::TradeState::AwaitingPayment {
            return trade;
        }
        wait_ms(100).await;
    }
    panic!("trade {id} still awaits payment after 10 s")
}

#[tokio::test]
async fn each_channel_marks_paid_once_and_answers_as_its_gateway_expects() {
    let sandbox = tempfile::tempdir().expect("temp");
    let mut s = start(sandbox.path(), &[]).await;
    for channel in [ALIPAY, WECHAT, HMAC] {
        let (_seller, mut buyer, t) = channel_trade(&s, channel, false, 600).await;
        assert_eq!(t.payment_reference.len(), 15, "{t:?}");
        let p = payment(
            &t.payment_reference,
            &format!("{channel}-tx1"),
            &t.fiat_amount,
        );
        let n = sign(sandbox.path(), channel, &p);
        let a = post(&s, channel, &n).await;
        assert!(success(channel, &a), "{channel}: {a:?}");
        let paid = get(&mut buyer, &t.id).await;
        assert_eq!(
            state(&paid),
            pb::TradeState::Paid,
            "{channel}: {:?}",
            anomalies(&s, true).await
        );
        assert_eq!(paid.payments.len(), 1);
        assert_eq!(paid.payments[0].amount, "14.00");
        assert!(
            paid.timeline
                .iter()
                .any(|e| e.actor == format!("gateway {channel}"))
        );
        // The same notification again: success, nothing changes.
        let again = post(&s, channel, &n).await;
        assert!(success(channel, &again), "{channel}: {again:?}");
        assert_eq!(get(&mut buyer, &t.id).await, paid);
        if channel == HMAC {
            // And after a restart (the same bytes, still within 5 minutes).
            s.restart().await;
            let mut buyer = s
                .trading(paid.buyer_id.parse().expect("uuid"), Role::User)
                .await;
            let after = post(&s, channel, &n).await;
            assert!(success(channel, &after), "{after:?}");
            assert_eq!(get(&mut buyer, &t.id).await, paid);
        }
    }
    assert!(anomalies(&s, true).await.is_empty());
}

#[tokio::test]
async fn an_opted_in_trade_is_paid_and_released_by_the_notification() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let (mut seller, mut buyer, t) = channel_trade(&s, ALIPAY, true, 600).await;
    assert!(t.release_on_verified_payment);
    let mut p = payment(&t.payment_reference, "2026120122001", "14.00");
    p.charset = otc_gateway::sandbox::SandboxCharset::Gbk;
    p.subject = "测试商品".into();
    let a = notify(&s, sandbox.path(), ALIPAY, &p).await;
    assert!(success(ALIPAY, &a), "{a:?}");
    assert_eq!(
        state(&get(&mut buyer, &t.id).await),
        pb::TradeState::Released
    );
    assert_eq!(balance(&mut buyer).await, ("2".into(), "0".into()));
    // The rest of the listing stays escrowed.
    assert_eq!(balance(&mut seller).await, ("0".into(), "98".into()));
}

#[tokio::test]
async fn anomalies_are_recorded_shown_to_cs_and_resolved_with_a_note() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let mut queue = s
        .support(uuid::Uuid::new_v4(), Role::Support)
        .await
        .stream_appeal_queue(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .expect("queue stream")
        .into_inner();

    // Wrong amount on an open trade: an anomaly, and the system appeals.
    let (_s1, mut b1, t1) = channel_trade(&s, WECHAT, true, 600).await;
    let a = notify(
        &s,
        sandbox.path(),
        WECHAT,
        &payment(&t1.payment_reference, "w1", "13.99"),
    )
    .await;
    assert!(success(WECHAT, &a), "{a:?}");
    let appealed = get(&mut b1, &t1.id).await;
    assert_eq!(state(&appealed), pb::TradeState::Appealed);

    // Paid after the window: the trade was cancelled.
    let (_s2, mut b2, t2) = channel_trade(&s, HMAC, false, 1).await;
    wait_ms(1_100).await;
    assert_eq!(
        state(&settled(&mut b2, &t2.id).await),
        pb::TradeState::Cancelled
    );
    let a = notify(
        &s,
        sandbox.path(),
        HMAC,
        &payment(&t2.payment_reference, "h1", "14.00"),
    )
    .await;
    assert!(success(HMAC, &a), "{a:?}");

    // Already ended: a second payment after release.
    let (mut s3, mut b3, t3) = channel_trade(&s, ALIPAY, false, 600).await;
    notify(
        &s,
        sandbox.path(),
        ALIPAY,
        &payment(&t3.payment_reference, "a1", "14.00"),
    )
    .await;
    harness::steps::release(&mut s3, &t3.id)
        .await
        .expect("release");
    notify(
        &s,
        sandbox.path(),
        ALIPAY,
        &payment(&t3.payment_reference, "a2", "14.00"),
    )
    .await;
    assert_eq!(state(&get(&mut b3, &t3.id).await), pb::TradeState::Released);

    // Unknown reference.
    notify(
        &s,
        sandbox.path(),
        ALIPAY,
        &payment("ORDER-FROM-ELSEWHERE", "a3", "5.00"),
    )
    .await;

    let open = anomalies(&s, false).await;
    let kinds: Vec<&str> = open.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "WRONG_AMOUNT",
            "PAID_AFTER_CANCEL",
            "ALREADY_ENDED",
            "UNKNOWN_REFERENCE"
        ]
    );
    assert_eq!(open[0].trade_id, t1.id);
    assert_eq!(open[0].expected_amount, "14.00");
    assert_eq!(
        open[0].payment.as_ref().map(|p| p.amount.as_str()),
        Some("13.99")
    );

    // The queue stream carried them.
    let mut seen = 0;
    while seen < 4 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), queue.message())
            .await
            .expect("queue event in time")
            .expect("stream")
            .expect("event");
        if e.r#type == pb::EventType::PaymentAnomaly as i32 {
            seen += 1;
        }
    }

    // CS resolves one with a note (mandatory); a viewer may not.
    let mut agent = s.support(uuid::Uuid::new_v4(), Role::Support).await;
    let no_note = agent
        .resolve_anomaly(pb::ResolveAnomalyRequest {
            request_id: rid(),
            anomaly_id: open[3].id.clone(),
            note: String::new(),
        })
        .await
        .expect_err("a note is required");
    assert!(no_note.message().contains("note"), "{no_note:?}");
    let viewer = s
        .support(uuid::Uuid::new_v4(), Role::SupportViewer)
        .await
        .resolve_anomaly(pb::ResolveAnomalyRequest {
            request_id: rid(),
            anomaly_id: open[3].id.clone(),
            note: "x".into(),
        })
        .await
        .expect_err("viewers cannot act");
    assert_eq!(viewer.code(), tonic::Code::PermissionDenied);
    let done = agent
        .resolve_anomaly(pb::ResolveAnomalyRequest {
            request_id: rid(),
            anomaly_id: open[3].id.clone(),
            note: "refunded to the payer off-platform".into(),
        })
        .await
        .expect("resolve")
        .into_inner();
    assert!(done.resolved && done.note.contains("refunded"));
    assert_eq!(anomalies(&s, false).await.len(), 3);
    assert_eq!(anomalies(&s, true).await.len(), 4);
}

#[tokio::test]
async fn forged_stale_and_foreign_notifications_change_nothing() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let (_seller, mut buyer, t) = channel_trade(&s, HMAC, true, 600).await;
    let p = payment(&t.payment_reference, "h1", "14.00");
    let (headers, body) = sign(sandbox.path(), HMAC, &p);
    // One byte changed in the body.
    let mut changed = body.clone();
    if let Some(b) = changed.iter_mut().find(|b| b.is_ascii_digit()) {
        *b = if *b == b'9' { b'8' } else { *b + 1 };
    }
    // Signed for another channel's route.
    let wechat = sign(sandbox.path(), WECHAT, &p);
    for (route, n) in [
        (HMAC, (headers.clone(), changed)),
        (ALIPAY, (headers.clone(), body.clone())),
        (HMAC, (Vec::new(), body.clone())),
        (HMAC, wechat),
    ] {
        let a = post(&s, route, &n).await;
        assert!(!(200..300).contains(&a.status), "{route}: {a:?}");
        assert!(!a.body.contains("v1="), "no signature echoed: {}", a.body);
    }
    let unchanged = get(&mut buyer, &t.id).await;
    assert_eq!(state(&unchanged), pb::TradeState::AwaitingPayment);
    assert!(unchanged.payments.is_empty());
    assert!(anomalies(&s, true).await.is_empty());
    // Bodies over the limit and other routes are refused before parsing.
    let big = (headers, vec![b'x'; 70 * 1024]);
    assert_eq!(post(&s, HMAC, &big).await.status, 413);
    let unknown = otc_api::webhook::post(&format!("{}/notify/nope", s.http), &[], b"{}")
        .await
        .expect("post");
    assert_eq!(unknown.status, 404);
    let other = otc_api::webhook::post(&format!("{}/metrics", s.http), &[], b"")
        .await
        .expect("post");
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn a_notification_racing_the_window_timer_has_exactly_one_outcome() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let mut outcomes = Vec::new();
    // One seller owns the channel; each round is a new buyer's trade.
    let (_seller, _, _) = channel_trade(&s, HMAC, false, 1).await;
    for i in 0..4u64 {
        let (mut buyer, t) = buy_on(&s, HMAC).await;
        // Around the end of the 1 s window.
        wait_ms(850 + i * 100).await;
        let p = payment(&t.payment_reference, &format!("race-{i}"), "14.00");
        let a = notify(&s, sandbox.path(), HMAC, &p).await;
        assert!(success(HMAC, &a), "{a:?}");
        let end = settled(&mut buyer, &t.id).await;
        let anomaly = anomalies(&s, true)
            .await
            .into_iter()
            .any(|a| a.trade_id == t.id);
        match state(&end) {
            pb::TradeState::Paid => assert!(!anomaly && end.payments.len() == 1),
            pb::TradeState::Cancelled => assert!(anomaly && end.payments.is_empty()),
            other => panic!("{other:?}"),
        }
        outcomes.push(state(&end));
    }
    assert_eq!(outcomes.len(), 4);
}

#[tokio::test]
async fn the_buyer_gets_a_signed_page_pay_url_with_the_servers_amount() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let (mut seller, mut buyer, t) = channel_trade(&s, ALIPAY, false, 600).await;
    let order = buyer
        .create_payment_order(pb::GetTradeRequest {
            trade_id: t.id.clone(),
        })
        .await
        .expect("order")
        .into_inner();
    assert_eq!(order.amount, "14.00");
    assert_eq!(order.reference, t.payment_reference);
    assert_eq!(order.notify_url, format!("{}/notify/{ALIPAY}", s.http));
    let url = &order.pay_url;
    for needle in [
        "method=alipay.trade.page.pay",
        "sign_type=RSA2",
        "sign=",
        "notify_url=",
        "return_url=",
    ] {
        assert!(url.contains(needle), "{needle} in {url}");
    }
    assert!(url.contains(&t.payment_reference), "{url}");
    // Only the buyer, only while awaiting payment.
    let not_buyer = seller
        .create_payment_order(pb::GetTradeRequest {
            trade_id: t.id.clone(),
        })
        .await
        .expect_err("the seller does not pay");
    assert_ne!(not_buyer.code(), tonic::Code::Ok);
    mark_paid(&mut buyer, &t.id).await;
    let paid = buyer
        .create_payment_order(pb::GetTradeRequest { trade_id: t.id })
        .await
        .expect_err("already paid");
    assert_eq!(paid.code(), tonic::Code::FailedPrecondition);
    // WeChat and hmac orders carry the reference and the amount, no URL.
    let (_s, mut b2, t2) = channel_trade(&s, WECHAT, false, 600).await;
    let o2 = b2
        .create_payment_order(pb::GetTradeRequest { trade_id: t2.id })
        .await
        .expect("order")
        .into_inner();
    assert!(o2.pay_url.is_empty() && o2.amount == "14.00" && !o2.reference.is_empty());
}

/// The return page shows where a trade stands only to a return Alipay
/// signed: a reference anyone may type shows nothing of the trade, and the
/// page changes nothing.
#[tokio::test]
async fn the_return_page_only_displays_and_only_to_a_signed_return() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let (_seller, mut buyer, t) = channel_trade(&s, ALIPAY, false, 600).await;
    let reference = t.payment_reference.clone();
    let p = payment(&reference, "2026120222009", "14.00");
    let signed = otc_gateway::sandbox::SandboxGateway::open(sandbox.path())
        .expect("sandbox gateway")
        .return_query(ALIPAY, &p, chrono::Utc::now())
        .expect("return query");
    let url = |query: &str| format!("{}/return/{ALIPAY}?{query}", s.http);
    let page = harness::http_get(&url(&signed)).await;
    assert_eq!(page.0, 200);
    assert!(
        page.1.contains("waiting") && page.1.contains(&reference),
        "{}",
        page.1
    );

    let typed = format!("out_trade_no={reference}&total_amount=14.00");
    let tampered = signed.replace("total_amount=14.00", "total_amount=1400.00");
    assert_ne!(tampered, signed);
    let hostile = "out_trade_no=%3Cscript%3Ealert(1)%3C/script%3E";
    for query in [typed.as_str(), tampered.as_str(), hostile, ""] {
        let page = harness::http_get(&url(query)).await;
        assert_eq!(page.0, 200, "{query}");
        assert!(
            page.1.contains("could not be verified"),
            "{query}: {}",
            page.1
        );
        assert!(
            !page.1.contains("waiting") && !page.1.contains(&reference),
            "{query}: {}",
            page.1
        );
        assert!(!page.1.contains("script"), "{query}: {}", page.1);
    }
    assert_eq!(
        state(&get(&mut buyer, &t.id).await),
        pb::TradeState::AwaitingPayment
    );
    // Once the notification marks it paid, the signed return says so.
    assert!(success(
        ALIPAY,
        &notify(&s, sandbox.path(), ALIPAY, &p).await
    ));
    let page = harness::http_get(&url(&signed)).await;
    assert!(page.1.contains("Payment verified"), "{}", page.1);
}

#[tokio::test]
async fn channels_are_assigned_by_admin_and_bound_by_their_owner_only() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let listed = s
        .admin()
        .await
        .list_channels(pb::ListChannelsRequest {})
        .await
        .expect("list")
        .into_inner()
        .channels;
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [ALIPAY, HMAC, WECHAT]);
    let user = uuid::Uuid::new_v4();
    let mut t = s.trading(user, Role::User).await;
    let bind = |channel: &str| pb::BindPaymentMethodRequest {
        request_id: rid(),
        kind: pb::PaymentKind::Channel as i32,
        channel: channel.into(),
        ..Default::default()
    };
    let e = t
        .bind_payment_method(bind(ALIPAY))
        .await
        .expect_err("not assigned");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let e = t
        .bind_payment_method(bind("nope"))
        .await
        .expect_err("undeclared");
    assert!(e.message().starts_with("channel"), "{e:?}");
    let e = s
        .admin()
        .await
        .assign_channel(pb::AssignChannelRequest {
            request_id: rid(),
            user_id: user.to_string(),
            channel: "nope".into(),
        })
        .await
        .expect_err("undeclared");
    assert!(e.message().starts_with("channel"), "{e:?}");
    let e = t
        .publish_listing(pb::PublishListingRequest {
            release_on_verified_payment: true,
            ..harness::steps::listing("M-1", "7", "1", "7", "7", 0)
        })
        .await
        .expect_err("no channel");
    assert_ne!(e.code(), tonic::Code::Ok);
}

/// A signed notification of 0.00 (a gateway settling an order paid wholly
/// by coupons) is acknowledged and recorded as the wrong amount it is, on
/// every channel, rather than refused for the gateway to retry for a day.
#[tokio::test]
async fn a_signed_zero_payment_is_a_wrong_amount_on_every_channel() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let mut ids = Vec::new();
    for (channel, txn) in [(ALIPAY, "z-a"), (WECHAT, "z-w"), (HMAC, "z-h")] {
        let (_seller, mut buyer, t) = channel_trade(&s, channel, true, 600).await;
        let a = notify(
            &s,
            sandbox.path(),
            channel,
            &payment(&t.payment_reference, txn, "0.00"),
        )
        .await;
        assert!(success(channel, &a), "{channel}: {a:?}");
        // Not released, though the seller opted in: CS looks at it.
        let trade = get(&mut buyer, &t.id).await;
        assert_eq!(state(&trade), pb::TradeState::Appealed, "{channel}");
        ids.push(t.id);
    }
    let open = anomalies(&s, false).await;
    assert_eq!(open.len(), 3, "{open:?}");
    for (a, id) in open.iter().zip(&ids) {
        assert_eq!(a.kind, "WRONG_AMOUNT");
        assert_eq!(&a.trade_id, id);
        assert_eq!(a.expected_amount, "14.00");
        assert_eq!(a.payment.as_ref().map(|p| p.amount.as_str()), Some("0.00"));
    }
}
