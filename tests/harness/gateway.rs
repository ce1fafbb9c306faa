//! Steps of the payment-channel end-to-end tests (SPEC §19), shared by
//! `api_gateway.rs`: a server with the sandbox channels, sellers on a
//! channel, and the sandbox gateway posting notifications over loopback.

use std::path::Path;

use otc_api::auth::Role;
use otc_api::proto as pb;
use otc_api::proto::trading_service_client::TradingServiceClient;
use otc_api::webhook::{self, Answer};
use otc_gateway::sandbox::{SandboxCharset, SandboxGateway, SandboxPayment, SandboxStatus};
use rust_decimal::Decimal;

use super::steps::{PASSWORD, deposit, listing, publish};
use super::{Authed, Server, rid};

/// A server serving the sandbox channels, their keys in `sandbox`.
pub async fn start(sandbox: &Path, extra: &[&str]) -> Server {
    let dir = sandbox.display().to_string();
    let mut args = vec!["--sandbox-channels", "--sandbox-dir", dir.as_str()];
    args.extend_from_slice(extra);
    Server::start(&args).await
}

/// A seller with 100 EB whose receiving method is `channel` (assigned by
/// the admin), with a fund password: its client and the method id.
pub async fn channel_seller(s: &Server, channel: &str) -> (TradingServiceClient<Authed>, String) {
    let user = uuid::Uuid::new_v4();
    deposit(s, user, "100").await;
    s.admin()
        .await
        .assign_channel(pb::AssignChannelRequest {
            request_id: rid(),
            user_id: user.to_string(),
            channel: channel.into(),
        })
        .await
        .expect("assign channel");
    let mut t = s.trading(user, Role::User).await;
    let method = t
        .bind_payment_method(pb::BindPaymentMethodRequest {
            request_id: rid(),
            kind: pb::PaymentKind::Channel as i32,
            channel: channel.into(),
            ..Default::default()
        })
        .await
        .expect("bind channel")
        .into_inner()
        .method_id;
    t.set_fund_password(pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: PASSWORD.into(),
        current_password: String::new(),
    })
    .await
    .expect("set password");
    (t, method)
}

/// A trade of 2 EB at 7 (14.00 CNY) on `channel`, from a listing that
/// opts in to release on verified payment or not, with a payment window
/// of `window_secs`: (seller, buyer, trade).
pub async fn channel_trade(
    s: &Server,
    channel: &str,
    release: bool,
    window_secs: i64,
) -> (
    TradingServiceClient<Authed>,
    TradingServiceClient<Authed>,
    pb::Trade,
) {
    let (mut seller, method) = channel_seller(s, channel).await;
    let mut req = listing(&method, "7", "100", "7", "700", window_secs);
    req.release_on_verified_payment = release;
    publish(&mut seller, req).await;
    let (buyer, trade) = buy_on(s, channel).await;
    (seller, buyer, trade)
}

/// A new buyer's trade of 2 EB from the best listing paid through
/// `channel`'s kind: (buyer, trade).
pub async fn buy_on(s: &Server, channel: &str) -> (TradingServiceClient<Authed>, pb::Trade) {
    let mut buyer = s.trading(uuid::Uuid::new_v4(), Role::User).await;
    // Buyers choose by how they pay: the channel's gateway app.
    let kind = match channel {
        "sandbox-alipay" => pb::PaymentKind::Alipay,
        "sandbox-wechatpay" => pb::PaymentKind::Wechat,
        _ => pb::PaymentKind::Bank,
    };
    let id = buyer
        .place_buy(pb::PlaceBuyRequest {
            methods: vec![kind as i32],
            ..super::steps::buy("2")
        })
        .await
        .expect("buy")
        .into_inner()
        .trade_ids
        .swap_remove(0);
    let trade = get(&mut buyer, &id).await;
    (buyer, trade)
}

/// The trade as `t` sees it.
pub async fn get(t: &mut TradingServiceClient<Authed>, id: &str) -> pb::Trade {
    t.get_trade(pb::GetTradeRequest {
        trade_id: id.into(),
    })
    .await
    .expect("get trade")
    .into_inner()
}

/// A paid sandbox payment of `amount` for `reference`.
pub fn payment(reference: &str, txn: &str, amount: &str) -> SandboxPayment {
    SandboxPayment {
        txn_id: txn.into(),
        reference: reference.into(),
        amount: amount.parse::<Decimal>().expect("amount"),
        status: SandboxStatus::Paid,
        charset: SandboxCharset::Utf8,
        subject: "otc trade".into(),
    }
}

/// The notification the sandbox gateway of `channel` signs for `p`, now.
pub fn sign(sandbox: &Path, channel: &str, p: &SandboxPayment) -> (Vec<(String, String)>, Vec<u8>) {
    SandboxGateway::open(sandbox)
        .expect("sandbox gateway")
        .notify(channel, p, chrono::Utc::now())
        .expect("sign")
}

/// POSTs a signed notification to `channel`'s route.
pub async fn post(
    s: &Server,
    channel: &str,
    notification: &(Vec<(String, String)>, Vec<u8>),
) -> Answer {
    let url = format!("{}/notify/{channel}", s.http);
    webhook::post(&url, &notification.0, &notification.1)
        .await
        .expect("post")
}

/// Signs and POSTs.
pub async fn notify(s: &Server, sandbox: &Path, channel: &str, p: &SandboxPayment) -> Answer {
    post(s, channel, &sign(sandbox, channel, p)).await
}

/// Whether `a` is the success answer `channel`'s gateway expects.
pub fn success(channel: &str, a: &Answer) -> bool {
    match channel {
        "sandbox-alipay" => a.status == 200 && a.body == "success",
        "sandbox-wechatpay" => a.status == 204,
        _ => (200..300).contains(&a.status),
    }
}

/// Open (or with `all`, every) payment anomaly, as CS sees them.
pub async fn anomalies(s: &Server, all: bool) -> Vec<pb::PaymentAnomaly> {
    s.support(uuid::Uuid::new_v4(), Role::SupportViewer)
        .await
        .list_anomalies(pb::ListAnomaliesRequest {
            include_resolved: all,
            page_size: 200,
            page_token: String::new(),
        })
        .await
        .expect("list anomalies")
        .into_inner()
        .anomalies
}
