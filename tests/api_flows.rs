//! End-to-end flows over gRPC against the real `otcd` (windows in seconds).

use otc_api::auth::Role;
use otc_api::proto as pb;
#[path = "flows/forgotten.rs"]
mod forgotten;
mod harness;

use harness::steps::*;
use harness::{Server, rid, wait_ms};
use tonic::Code;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_moves_balances_at_each_step() {
    let s = Server::start(&[]).await;
    let (seller_id, buyer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut seller, method) = seller(&s, seller_id, "100").await;
    assert_eq!(balance(&mut seller).await, ("100".into(), "0".into()));
    let listing = publish(&mut seller, listing(&method, "7.00", "100", "10", "700", 0)).await;
    assert!(listing.starts_with("L-"));
    assert_eq!(balance(&mut seller).await, ("0".into(), "100".into()));

    let mut buyer = s.trading(buyer_id, Role::User).await;
    let book = buyer
        .browse_book(pb::BrowseBookRequest {
            asset: "EB".into(),
            fiat: "CNY".into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(book.listings.len(), 1);
    assert!(book.listings[0].seller_record.is_some());
    let placed = buyer.place_buy(buy("10")).await.unwrap().into_inner();
    let trade = placed.trade_ids[0].clone();
    let t = buyer
        .get_trade(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.fiat_amount, "70.00");
    assert_eq!(
        t.seller_method.as_ref().unwrap().account,
        "wang@example.com",
        "the matched buyer sees the details"
    );
    assert_eq!(balance(&mut seller).await, ("0".into(), "100".into()));

    mark_paid(&mut buyer, &trade).await;
    assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Paid);
    let wrong = seller
        .release(pb::ReleaseRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            fund_password: "nope-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    assert!(
        wrong.message().contains("wrong fund password"),
        "{}",
        wrong.message()
    );
    release(&mut seller, &trade).await.unwrap();
    assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Released);
    assert_eq!(balance(&mut seller).await, ("0".into(), "90".into()));
    assert_eq!(balance(&mut buyer).await, ("10".into(), "0".into()));
    let t = buyer
        .get_trade(pb::GetTradeRequest { trade_id: trade })
        .await
        .unwrap()
        .into_inner();
    assert!(
        t.seller_method.unwrap().account.contains('@'),
        "alipay accounts are not card numbers"
    );
    assert_eq!(t.timeline.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_timeout_cancels_and_returns_the_coin() {
    let s = Server::start(&[]).await;
    let (seller_id, buyer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut seller, method) = seller(&s, seller_id, "50").await;
    let l = publish(&mut seller, listing(&method, "7", "50", "7", "700", 1)).await;
    let mut buyer = s.trading(buyer_id, Role::User).await;
    let trade = bought(&mut buyer, "5").await;
    wait_ms(1_500).await;
    assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Cancelled);
    let t = buyer
        .get_trade(pb::GetTradeRequest { trade_id: trade })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.cancel_reason, "PaymentTimeout");
    let mine = seller
        .list_my_listings(pb::PageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        mine.listings.iter().find(|x| x.id == l).unwrap().remaining,
        "50"
    );
}

static PRICE_STEP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

async fn paid_trade(
    s: &Server,
) -> (
    pb::trading_service_client::TradingServiceClient<harness::Authed>,
    pb::trading_service_client::TradingServiceClient<harness::Authed>,
    String,
) {
    let (seller_id, buyer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut seller, method) = seller(s, seller_id, "5").await;
    // Priced below any earlier listing, so this buyer matches this seller.
    let price = format!(
        "6.{}",
        99 - PRICE_STEP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    publish(&mut seller, listing(&method, &price, "5", "7", "700", 0)).await;
    let mut buyer = s.trading(buyer_id, Role::User).await;
    let trade = bought(&mut buyer, "5").await;
    let t = buyer
        .get_trade(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.seller_id, seller_id.to_string());
    mark_paid(&mut buyer, &trade).await;
    (seller, buyer, trade)
}

fn appeal(trade: &str) -> pb::OpenAppealRequest {
    pb::OpenAppealRequest {
        request_id: rid(),
        trade_id: trade.into(),
        reason: "fiat not received".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appeals_open_after_the_window_and_cs_resolves_both_ways() {
    let s = Server::start(&[]).await;
    let agent = Uuid::new_v4();
    let mut cs = s.support(agent, Role::Support).await;
    for release_it in [true, false] {
        let (mut seller, mut buyer, trade) = paid_trade(&s).await;
        let early = seller.open_appeal(appeal(&trade)).await.unwrap_err();
        assert_eq!(
            early.code(),
            Code::FailedPrecondition,
            "{}",
            early.message()
        );
        assert!(
            early.message().contains("can be appealed from"),
            "{}",
            early.message()
        );
        wait_ms(2_100).await;
        seller.open_appeal(appeal(&trade)).await.unwrap();
        // 2 KiB of varied bytes: through h2 the reply's message is chained
        // past 1 KiB and leaves behind its frame header in one vectored write
        // (`otc_api::conn`); every byte must come back in place.
        let pattern = (0..2040u32).map(|i| (i * 7 % 251) as u8);
        let receipt: Vec<u8> = harness::PNG_HEAD.iter().copied().chain(pattern).collect();
        buyer
            .add_evidence(pb::AddEvidenceRequest {
                request_id: rid(),
                trade_id: trade.clone(),
                description: "bank receipt".into(),
                attachment: Some(pb::Attachment {
                    content_type: "image/png".into(),
                    file_name: "r.png".into(),
                    data: receipt.clone(),
                }),
            })
            .await
            .unwrap();
        let queue = cs
            .list_appeals(pb::ListAppealsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(queue.appeals.iter().any(|a| a.trade_id == trade));
        let shown = cs
            .get_appeal(pb::GetTradeRequest {
                trade_id: trade.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let file = shown.evidence[0].attachment.clone().expect("CS sees files");
        let bytes = cs
            .get_attachment(pb::GetAttachmentRequest {
                trade_id: trade.clone(),
                attachment_id: file.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(bytes.data, receipt);
        let as_seller = seller
            .get_appeal(pb::GetTradeRequest {
                trade_id: trade.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            as_seller.evidence[0].attachment.is_none(),
            "the other party sees the description only"
        );
        assert_eq!(as_seller.evidence[0].description, "bank receipt");
        cs.claim_appeal(pb::AppealActionRequest {
            request_id: rid(),
            trade_id: trade.clone(),
        })
        .await
        .unwrap();
        let resolution = if release_it {
            pb::Resolution::Release
        } else {
            pb::Resolution::Refund
        };
        let done = cs
            .resolve_appeal(pb::ResolveAppealRequest {
                request_id: rid(),
                trade_id: trade.clone(),
                resolution: resolution as i32,
                note: "checked statements".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(done.status, pb::AppealStatus::Closed as i32);
        let expected = if release_it {
            pb::TradeState::Released
        } else {
            pb::TradeState::Cancelled
        };
        assert_eq!(state(&mut buyer, &trade).await, expected);
        let (avail, _) = balance(&mut buyer).await;
        assert_eq!(avail, if release_it { "5" } else { "0" });
        let t = cs
            .get_trade(pb::GetTradeRequest {
                trade_id: trade.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            t.timeline
                .iter()
                .any(|e| e.actor == format!("support:{agent}")),
            "agent actions are in the timeline"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_settle_during_an_appeal_and_the_system_auto_appeals() {
    let s = Server::start(&[]).await;
    let (mut seller, mut buyer, trade) = paid_trade(&s).await;
    let (_, mut buyer2, trade2) = paid_trade(&s).await;
    wait_ms(2_100).await;
    buyer.open_appeal(appeal(&trade)).await.unwrap();
    release(&mut seller, &trade).await.unwrap();
    let a = buyer
        .get_appeal(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.outcome, "settled: seller released");
    buyer2.open_appeal(appeal(&trade2)).await.unwrap();
    buyer2
        .cancel_trade(pb::TradeActionRequest {
            request_id: rid(),
            trade_id: trade2.clone(),
        })
        .await
        .unwrap();
    assert_eq!(state(&mut buyer2, &trade2).await, pb::TradeState::Cancelled);
    // Auto-appeal: paid and left alone past --auto-appeal-after (5 s).
    let (_, mut buyer3, trade3) = paid_trade(&s).await;
    wait_ms(5_300).await;
    assert_eq!(state(&mut buyer3, &trade3).await, pb::TradeState::Appealed);
    let a = buyer3
        .get_appeal(pb::GetTradeRequest { trade_id: trade3 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.opened_by, "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_match_redispatches_when_a_merchant_times_out() {
    let s = Server::start(&[]).await;
    let mut admin = s.admin().await;
    let merchants = [Uuid::new_v4(), Uuid::new_v4()];
    for (m, bid) in merchants.iter().zip(["7.20", "7.10"]) {
        admin
            .register_merchant(pb::RegisterMerchantRequest {
                request_id: rid(),
                user_id: m.to_string(),
            })
            .await
            .unwrap();
        let mut mc = s.merchant(*m).await;
        mc.set_capacity(pb::SetCapacityRequest {
            request_id: rid(),
            quotes: vec![pb::MerchantQuote {
                asset: "EB".into(),
                fiat: "CNY".into(),
                bid: bid.into(),
                min_fiat: "10".into(),
                max_fiat: "10000".into(),
            }],
            methods: vec![pb::PaymentKind::Alipay as i32],
            max_outstanding_fiat: "100000".into(),
        })
        .await
        .unwrap();
        mc.set_online(pb::SetOnlineRequest {
            request_id: rid(),
            online: true,
        })
        .await
        .unwrap();
    }
    let seller_id = Uuid::new_v4();
    let (mut seller, method) = seller(&s, seller_id, "100").await;
    let first = seller
        .fast_sell(pb::FastSellRequest {
            request_id: rid(),
            asset: "EB".into(),
            fiat: "CNY".into(),
            coin_amount: "10".into(),
            method_id: method,
            fund_password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .trade
        .unwrap();
    assert_eq!(
        first.buyer_id,
        merchants[0].to_string(),
        "highest bid first"
    );
    assert_eq!(first.fiat_amount, "72.00");
    wait_ms(2_400).await; // the merchant window (2 s) passes
    let trades = seller
        .list_my_trades(pb::PageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .trades;
    let second = trades
        .iter()
        .find(|t| t.id != first.id)
        .expect("re-dispatched");
    assert_eq!(second.buyer_id, merchants[1].to_string());
    assert_eq!(second.fast_match_origin, first.id);
    assert_eq!(second.fast_match_attempt, 2);
    assert_eq!(balance(&mut seller).await, ("90".into(), "10".into()));
    let mut m2 = s.trading(merchants[1], Role::Merchant).await;
    mark_paid(&mut m2, &second.id).await;
    release(&mut seller, &second.id).await.unwrap();
    assert_eq!(balance(&mut m2).await, ("10".into(), "0".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_buy_is_filled_across_listings() {
    let s = Server::start(&[]).await;
    let buyer_id = Uuid::new_v4();
    let mut buyer = s.trading(buyer_id, Role::User).await;
    let placed = buyer
        .place_buy(pb::PlaceBuyRequest {
            rest: true,
            rest_secs: 60,
            ..buy("10")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(placed.trade_ids.is_empty());
    assert!(placed.buy_order_id.starts_with("B-"));
    for (i, amount) in ["4", "6"].iter().enumerate() {
        let (mut seller, method) = seller(&s, Uuid::new_v4(), amount).await;
        publish(
            &mut seller,
            listing(&method, &format!("7.0{i}"), amount, "7", "700", 0),
        )
        .await;
    }
    let trades = buyer
        .list_my_trades(pb::PageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .trades;
    assert_eq!(trades.len(), 2, "each fill is its own trade");
    let mut coins: Vec<String> = trades.iter().map(|t| t.coin_amount.clone()).collect();
    coins.sort();
    assert_eq!(coins, ["4", "6"]);
    assert!(trades.iter().all(|t| t.buy_order_id == placed.buy_order_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_resumes_across_a_restart_missing_nothing() {
    let mut s = Server::start(&[]).await;
    let seller_id = Uuid::new_v4();
    let (mut seller, method) = seller(&s, seller_id, "100").await;
    let mut stream = seller
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(e);
    }
    let last = seen.last().unwrap().seq;
    s.restart().await;
    let mut seller = s.trading(seller_id, Role::User).await;
    publish(&mut seller, listing(&method, "7", "10", "7", "70", 0)).await;
    let mut stream = seller
        .stream_events(pb::StreamEventsRequest { after_seq: last })
        .await
        .unwrap()
        .into_inner();
    let mut after = Vec::new();
    while !after
        .iter()
        .any(|e: &pb::Event| e.r#type == pb::EventType::ListingChanged as i32)
    {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        after.push(e);
    }
    assert!(after.iter().all(|e| e.seq > last), "nothing is repeated");
    let all: Vec<u64> = seen.iter().chain(after.iter()).map(|e| e.seq).collect();
    assert!(
        all.windows(2).all(|p| p[0] < p[1]),
        "in order, none twice, across the restart: {all:?}"
    );
    // GetAccount says where its state stands: a stream from there gets
    // what comes next and nothing before.
    let as_of = seller
        .get_account(pb::GetAccountRequest {})
        .await
        .unwrap()
        .into_inner()
        .as_of_seq;
    assert!(as_of >= all[all.len() - 1], "{as_of} is the newest");
    let mut stream = seller
        .stream_events(pb::StreamEventsRequest { after_seq: as_of })
        .await
        .unwrap()
        .into_inner();
    publish(&mut seller, listing(&method, "7", "10", "7", "70", 0)).await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(next.seq > as_of, "{} after {as_of}", next.seq);
    let from_start = seller
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    drop(from_start);
    let ahead = seller
        .stream_events(pb::StreamEventsRequest {
            after_seq: 1_000_000,
        })
        .await
        .unwrap_err();
    assert_eq!(ahead.code(), Code::OutOfRange);
    let last = seller
        .stream_events(pb::StreamEventsRequest {
            after_seq: u64::MAX,
        })
        .await
        .unwrap_err();
    assert_eq!(last.code(), Code::OutOfRange);
    assert!(last.message().contains("ahead of the newest"), "{last:?}");
}

/// A stream lives no longer than the token it was opened with: past its
/// `exp` it ends UNAUTHENTICATED, as a new call with that token would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_token_expires() {
    let s = Server::start(&[]).await;
    let user = Uuid::new_v4();
    let short = otc_api::auth::mint(harness::SECRET.as_bytes(), user, Role::User, 2).expect("mint");
    let mut trader = pb::trading_service_client::TradingServiceClient::new(s.authed(&short).await);
    let mut stream = trader
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .expect("open")
        .into_inner();
    let opened = std::time::Instant::now();
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends within seconds of the token's expiry");
    let e = end.expect_err("ended with a status");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("token expired"), "{e:?}");
    assert!(opened.elapsed() >= std::time::Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_idempotent() {
    let s = Server::start(&[]).await;
    let mut admin = s.admin().await;
    let user = Uuid::new_v4();
    let req = |amount: &str| pb::TransferRequest {
        request_id: "dep-1".into(),
        user_id: user.to_string(),
        asset: "EB".into(),
        amount: amount.into(),
        external_ref: "chain-1".into(),
    };
    let first = admin.deposit(req("5")).await.unwrap().into_inner();
    let again = admin.deposit(req("5")).await.unwrap();
    assert_eq!(
        again
            .metadata()
            .get("otc-replayed")
            .map(|v| v.to_str().ok()),
        Some(Some("true"))
    );
    let again = again.into_inner();
    assert_eq!(first, again, "the whole first reply");
    assert_eq!(
        first.receipt.as_ref().unwrap().first_seq,
        again.receipt.as_ref().unwrap().first_seq
    );
    assert_eq!(again.balance.unwrap().available, "5", "changed nothing");
    let other = admin.deposit(req("6")).await.unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);
    // The same id from another user is that user's own.
    let (mut a, _) = seller(&s, Uuid::new_v4(), "1").await;
    let (mut b, _) = seller(&s, Uuid::new_v4(), "1").await;
    let block = |target: Uuid| pb::BlockUserRequest {
        request_id: "same-id".into(),
        user_id: target.to_string(),
    };
    a.block_user(block(Uuid::new_v4())).await.unwrap();
    b.block_user(block(Uuid::new_v4())).await.unwrap();
}
