//! One load client: a seller with a big listing and a buyer, looping full
//! trade lifecycles (buy, pay or cancel, release, now and then an appeal).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otc_api::auth::Role;
use otc_api::client::Authed;
use otc_api::proto as pb;
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tonic::transport::Channel;

use super::stats::Stats;
use super::{Args, authed};

/// One client: a seller with a big listing and a buyer, looping lifecycles.
/// Every client's seller, so whoever's listing a buy matched can release it.
pub(super) type Sellers =
    Arc<std::sync::RwLock<std::collections::HashMap<String, TradingServiceClient<Authed>>>>;

pub(super) async fn lifecycle_client(
    ch: Channel,
    admin: Authed,
    args: Args,
    deadline: Instant,
    progress: Arc<AtomicU64>,
    sellers: Sellers,
) -> Stats {
    let mut stats = Stats::new();
    let (seller_id, buyer_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut seller = TradingServiceClient::new(authed(&ch, seller_id, Role::User));
    let mut buyer = TradingServiceClient::new(authed(&ch, buyer_id, Role::User));
    let mut cs = otc_api::proto::support_service_client::SupportServiceClient::new(authed(
        &ch,
        uuid::Uuid::new_v4(),
        Role::Support,
    ));
    let mut admin = AdminServiceClient::new(admin);
    let rid = || uuid::Uuid::new_v4().to_string();
    let setup = async {
        admin
            .deposit(pb::TransferRequest {
                request_id: rid(),
                user_id: seller_id.to_string(),
                asset: "EB".into(),
                amount: "10000000".into(),
                external_ref: rid(),
            })
            .await?;
        let m = seller
            .bind_payment_method(pb::BindPaymentMethodRequest {
                request_id: rid(),
                kind: pb::PaymentKind::Alipay as i32,
                holder: "Load".into(),
                bank: String::new(),
                account: "load@pay".into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .method_id;
        seller
            .set_fund_password(pb::SetFundPasswordRequest {
                request_id: rid(),
                new_password: "load-pass".into(),
                current_password: String::new(),
            })
            .await?;
        seller
            .publish_listing(pb::PublishListingRequest {
                request_id: rid(),
                asset: "EB".into(),
                fiat: "CNY".into(),
                price: "7".into(),
                total: "9000000".into(),
                min_fiat: "1".into(),
                max_fiat: "100000".into(),
                method_ids: vec![m],
                payment_window_secs: 0,
                terms: String::new(),
                fund_password: "load-pass".into(),
                ..Default::default()
            })
            .await?;
        Ok::<(), tonic::Status>(())
    };
    if let Err(e) = setup.await {
        eprintln!("client setup failed: {e}");
        return stats;
    }
    sellers
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(seller_id.to_string(), seller.clone());
    // Start together, once every seller is registered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut n: u64 = 0;
    let mut to_appeal: Vec<(String, Instant)> = Vec::new();
    while Instant::now() < deadline {
        n += 1;
        // Appeals whose window (1 s, see --appeal-after) has passed.
        if let Some(pos) = to_appeal
            .iter()
            .position(|(_, at)| at.elapsed() > Duration::from_millis(1_100))
        {
            let (trade, _) = to_appeal.swap_remove(pos);
            let t = Instant::now();
            let r = buyer
                .open_appeal(pb::OpenAppealRequest {
                    request_id: rid(),
                    trade_id: trade.clone(),
                    reason: "load".into(),
                })
                .await;
            stats.record("open_appeal", t, r.map(|_| ()).map_err(|e| e.code()));
            let t = Instant::now();
            let r = cs
                .resolve_appeal(pb::ResolveAppealRequest {
                    request_id: rid(),
                    trade_id: trade,
                    resolution: pb::Resolution::Release as i32,
                    note: "load".into(),
                })
                .await;
            stats.record("resolve_appeal", t, r.map(|_| ()).map_err(|e| e.code()));
            continue;
        }
        // Three cancels a day stop a buyer (SPEC §8), so each cancelling
        // lifecycle uses a buyer of its own.
        let cancels = n % 100 < args.cancel_percent;
        let mut canceller = cancels
            .then(|| TradingServiceClient::new(authed(&ch, uuid::Uuid::new_v4(), Role::User)));
        let who = canceller.as_mut().unwrap_or(&mut buyer);
        let t = Instant::now();
        let buy = who
            .place_buy(pb::PlaceBuyRequest {
                request_id: rid(),
                asset: "EB".into(),
                fiat: "CNY".into(),
                coin_amount: "1".into(),
                ..Default::default()
            })
            .await;
        stats.record(
            "place_buy",
            t,
            buy.as_ref().map(|_| ()).map_err(|e| e.code()),
        );
        let Ok(buy) = buy else { continue };
        // Our own listing may not be the best one: act as whoever the seller is.
        let Some(trade) = buy.into_inner().trade_ids.into_iter().next() else {
            continue;
        };
        let act = pb::TradeActionRequest {
            request_id: rid(),
            trade_id: trade.clone(),
        };
        if let Some(mut canceller) = canceller {
            let t = Instant::now();
            let r = canceller.cancel_trade(act).await;
            stats.record("cancel_trade", t, r.map(|_| ()).map_err(|e| e.code()));
            continue;
        }
        let t = Instant::now();
        let r = buyer.mark_paid(act).await;
        stats.record("mark_paid", t, r.as_ref().map(|_| ()).map_err(|e| e.code()));
        if r.is_err() {
            continue;
        }
        if n % 100 >= 100 - args.appeal_percent {
            to_appeal.push((trade, Instant::now()));
            continue;
        }
        // The buy matched the best listing, maybe another client's: the app
        // reads the trade, and its seller releases.
        let t = Instant::now();
        let got = buyer
            .get_trade(pb::GetTradeRequest {
                trade_id: trade.clone(),
            })
            .await;
        stats.record(
            "get_trade",
            t,
            got.as_ref().map(|_| ()).map_err(|e| e.code()),
        );
        let Ok(got) = got else { continue };
        let owner = sellers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&got.into_inner().seller_id)
            .cloned();
        let mut owner = owner.unwrap_or_else(|| seller.clone());
        let t = Instant::now();
        let r = owner
            .release(pb::ReleaseRequest {
                request_id: rid(),
                trade_id: trade,
                fund_password: "load-pass".into(),
            })
            .await;
        let ok = r.is_ok();
        stats.record("release", t, r.map(|_| ()).map_err(|e| e.code()));
        if ok {
            stats.trades += 1;
            progress.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats
}
