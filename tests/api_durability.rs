//! kill -9 of `otcd` under load, then restart: every acknowledged call is
//! there (its request id answers `repeated`), and L1/L2 hold on the data dir.
//! And SIGTERM shuts down cleanly with exit 0.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::steps::*;
use harness::{Server, rid};
use otc_api::auth::Role;
use otc_api::proto as pb;
use tokio::sync::Mutex;
use uuid::Uuid;

/// One acknowledged deposit.
#[derive(Clone)]
struct Acked {
    request: pb::TransferRequest,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    let mut s = Server::start(&[]).await;
    let users: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    // Sellers with listings, so buys and releases are part of the load.
    let mut methods = Vec::new();
    for u in &users[..3] {
        let (mut t, m) = seller(&s, *u, "1000").await;
        publish(&mut t, listing(&m, "7", "900", "7", "7000", 0)).await;
        methods.push(m);
    }
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let trades_acked: Arc<Mutex<Vec<(Uuid, pb::PlaceBuyRequest)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let admin = s.admin().await;
        let acked = Arc::clone(&acked);
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let mut admin = admin;
            for i in 0..10_000u32 {
                let request = pb::TransferRequest {
                    request_id: format!("w{w}-{i}"),
                    user_id: users[(i as usize + w as usize) % users.len()].to_string(),
                    asset: "EB".into(),
                    amount: "1.5".into(),
                    external_ref: format!("load-{w}-{i}"),
                };
                match admin.deposit(request.clone()).await {
                    Ok(_) => acked.lock().await.push(Acked { request }),
                    Err(_) => return,
                }
            }
        }));
    }
    for &buyer_id in &users[3..6] {
        let mut buyer = s.trading(buyer_id, Role::User).await;
        let trades_acked = Arc::clone(&trades_acked);
        tasks.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                let req = buy("1");
                match buyer.place_buy(req.clone()).await {
                    Ok(r) => {
                        let id = r.into_inner().trade_ids[0].clone();
                        trades_acked.lock().await.push((buyer_id, req));
                        if buyer
                            .mark_paid(pb::TradeActionRequest {
                                request_id: rid(),
                                trade_id: id,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if e.code() == tonic::Code::FailedPrecondition => continue,
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    s.kill9().await;
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().await.clone();
    let trades_acked = trades_acked.lock().await.clone();
    assert!(
        !acked.is_empty() && !trades_acked.is_empty(),
        "the load made progress before the kill"
    );

    s.restart().await;
    let mut admin = s.admin().await;
    for a in &acked {
        let again = admin.deposit(a.request.clone()).await.expect("repeat");
        assert!(
            again.metadata().get("otc-replayed").is_some(),
            "acknowledged deposit {} is there",
            a.request.request_id
        );
    }
    for (buyer_id, req) in &trades_acked {
        let mut buyer = s.trading(*buyer_id, Role::User).await;
        let again = buyer.place_buy(req.clone()).await.expect("repeat buy");
        assert!(again.metadata().get("otc-replayed").is_some());
        let again = again.into_inner();
        assert_eq!(again.trade_ids.len(), 1, "the first result, with its trade");
    }
    // L1/L2 on the data dir itself, with the server stopped.
    let status = s.terminate().await;
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    let w = otc_storage::Writer::open(
        &s.dir,
        otc_engine::EngineConfig::default(),
        otc_storage::WriterOptions::default(),
    )
    .expect("reopen the data dir");
    w.engine()
        .check_invariants()
        .expect("L1 and L2 hold after kill -9 and restart");
    let eb = otc_engine::Asset::new("EB").unwrap();
    let deposited = w
        .engine()
        .state()
        .totals
        .get(&eb)
        .unwrap()
        .deposited
        .value();
    let floor = rust_decimal::Decimal::from(3_000)
        + rust_decimal::Decimal::new(15, 1) * rust_decimal::Decimal::from(acked.len());
    assert!(
        deposited >= floor,
        "every acknowledged deposit counts: {deposited} >= {floor}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let mut s = Server::start(&[]).await;
    let user = Uuid::new_v4();
    deposit(&s, user, "10").await;
    let status = s.terminate().await;
    assert!(status.success(), "exit status {status}");
    s.restart().await;
    let mut t = s.trading(user, Role::User).await;
    assert_eq!(balance(&mut t).await, ("10".into(), "0".into()));
}

/// A data dir left marked by a storage failure (`storage-failed`, see
/// `storage/src/store/failed_mark.rs`): otcd reads its files back from the
/// device, serves with everything acknowledged before, and clears the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_marked_by_a_storage_failure_is_read_back_and_served() {
    let mut s = Server::start(&[]).await;
    let user = Uuid::new_v4();
    deposit(&s, user, "10").await;
    s.kill9().await;
    let mark = s.dir.join("storage-failed");
    std::fs::write(&mark, "sled's flush or fdatasync failed: EIO").expect("mark");
    s.restart().await;
    assert!(!mark.exists(), "cleared once the open was durable");
    let mut t = s.trading(user, Role::User).await;
    assert_eq!(balance(&mut t).await, ("10".into(), "0".into()));
    deposit(&s, user, "5").await;
    assert_eq!(balance(&mut t).await, ("15".into(), "0".into()));
}

/// SIGTERM finishes while a client has stopped reading its event stream in
/// the middle of the backfill: the stream ends, it does not hold up shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_while_a_stream_client_stopped_reading() {
    let mut s = Server::start(&["--shutdown-grace", "1s"]).await;
    let user = Uuid::new_v4();
    // More of the user's events than the stream's queue, the server's send
    // buffer and the client's small window below hold.
    let mut deposits = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut admin = s.admin().await;
        deposits.spawn(async move {
            for _ in 0..250 {
                admin
                    .deposit(pb::TransferRequest {
                        request_id: rid(),
                        user_id: user.to_string(),
                        asset: "EB".into(),
                        amount: "1".into(),
                        external_ref: format!("ext-{}-{}", rid(), "x".repeat(40)),
                    })
                    .await
                    .expect("deposit");
            }
        });
    }
    while let Some(done) = deposits.join_next().await {
        done.expect("deposits");
    }
    let channel = tonic::transport::Channel::from_shared(s.url.clone())
        .expect("url")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let token = harness::token(user, Role::User);
    let mut t = pb::trading_service_client::TradingServiceClient::new(
        otc_api::client::authed(channel, &token).expect("token"),
    );
    let stream = t
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .expect("stream")
        .into_inner();
    // Read nothing: the server fills what it can, then waits.
    harness::wait_ms(1_000).await;
    let started = std::time::Instant::now();
    let status = s.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(stream);
    // Nothing acknowledged is lost, and the data dir opens again.
    s.restart().await;
    let mut t = s.trading(user, Role::User).await;
    assert_eq!(balance(&mut t).await.0, "4000");
}
