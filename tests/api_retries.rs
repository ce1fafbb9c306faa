//! Every retry returns the first result (SPEC §14), over every mutating RPC:
//! send; send again with the same request id and fields → the identical
//! response (or the identical error) with `otc-replayed: true` and an
//! unchanged state; send the same id with other fields → ALREADY_EXISTS.
//! The check itself is in `retries/check.rs`. Then a kill -9 between commit
//! and reply (the `crash-after-commit` failpoint): the retry after restart
//! gets the first result, and the attachment store holds exactly the
//! referenced files.

#[path = "retries/check.rs"]
mod check;
mod harness;

use check::{check, file, replayed, trader, user_of};
use harness::steps::*;
use harness::{Server, rid, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use tonic::Code;
use uuid::Uuid;

/// Money in and out, payment methods, fund passwords, blocks and the
/// listing's own actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_listing_rpcs_return_their_first_result_on_retry() {
    let s = Server::start(&[]).await;
    let seller_id = Uuid::new_v4();
    let users = [(seller_id, Role::User)];
    let users = &users[..];
    let mut admin = s.admin().await;
    let mut seller = trader(&s, seller_id).await;

    let dep = |amount: &str, r: &str| pb::TransferRequest {
        request_id: rid(),
        user_id: seller_id.to_string(),
        asset: "EB".into(),
        amount: amount.into(),
        external_ref: r.into(),
    };
    check!(
        &s,
        users,
        admin,
        deposit,
        dep("500", "d-1"),
        dep("501", "d-1")
    )
    .expect("the first call succeeds");
    check!(&s, users, admin, withdraw, dep("1", "w-1"), dep("2", "w-1"))
        .expect("the first call succeeds");

    let bind = |account: &str| pb::BindPaymentMethodRequest {
        request_id: rid(),
        kind: pb::PaymentKind::Alipay as i32,
        holder: "Wang Fang".into(),
        bank: String::new(),
        account: account.into(),
        ..Default::default()
    };
    let method = check!(
        &s,
        users,
        seller,
        bind_payment_method,
        bind("w@x.cn"),
        bind("v@x.cn")
    )
    .expect("bind")
    .method_id;
    let extra = seller
        .bind_payment_method(bind("spare@x.cn"))
        .await
        .expect("bind spare")
        .into_inner()
        .method_id;
    let remove = |m: &str| pb::RemovePaymentMethodRequest {
        request_id: rid(),
        method_id: m.into(),
    };
    check!(
        &s,
        users,
        seller,
        remove_payment_method,
        remove(&extra),
        remove(&method)
    )
    .expect("the first call succeeds");

    // The first fund password, then a change (which needs the current one).
    let pw = |new: &str, current: &str| pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: new.into(),
        current_password: current.into(),
    };
    // Passwords count in the fingerprint (through a keyed tag, never as
    // they are): the same id with another password is refused.
    let first_set = pw("first-pass", "");
    check!(
        &s,
        users,
        seller,
        set_fund_password,
        first_set.clone(),
        pb::SetFundPasswordRequest {
            new_password: "other-pass".into(),
            ..first_set
        }
    )
    .expect("the first password is set");
    let (_, changed) = check!(
        &s,
        users,
        seller,
        set_fund_password,
        pw(PASSWORD, "first-pass")
    );
    changed.expect("the first password was the one set");
    // A wrong password's refusal is a first result too: it counts once.
    let bad = pb::ReleaseRequest {
        request_id: rid(),
        trade_id: "T-999".into(),
        fund_password: "wrong-pass".into(),
    };
    let err = check!(
        &s,
        users,
        seller,
        release,
        bad.clone(),
        pb::ReleaseRequest {
            fund_password: PASSWORD.into(),
            ..bad
        }
    )
    .expect_err("no such trade");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let block = |u: Uuid| pb::BlockUserRequest {
        request_id: rid(),
        user_id: u.to_string(),
    };
    let stranger = Uuid::new_v4();
    check!(
        &s,
        users,
        seller,
        block_user,
        block(stranger),
        block(Uuid::new_v4())
    )
    .expect("the first call succeeds");
    check!(
        &s,
        users,
        seller,
        unblock_user,
        block(stranger),
        block(Uuid::new_v4())
    )
    .expect("the first call succeeds");

    let listing_req = listing(&method, "7", "100", "7", "700", 0);
    let listing_id = check!(
        &s,
        users,
        seller,
        publish_listing,
        listing_req.clone(),
        pb::PublishListingRequest {
            price: "7.01".into(),
            ..listing_req
        }
    )
    .expect("publish")
    .listing
    .expect("listing")
    .id;
    let act = |id: &str| pb::ListingActionRequest {
        request_id: rid(),
        listing_id: id.into(),
    };
    check!(
        &s,
        users,
        seller,
        pause_listing,
        act(&listing_id),
        act("L-999")
    )
    .expect("the first call succeeds");
    check!(
        &s,
        users,
        seller,
        resume_listing,
        act(&listing_id),
        act("L-999")
    )
    .expect("the first call succeeds");

    check!(
        &s,
        users,
        seller,
        cancel_listing,
        act(&listing_id),
        act("L-999")
    )
    .expect("the first call succeeds");
}

/// A taker buy, paid, appealed with evidence and chat files, resolved by an
/// agent; a resting buy cancelled; a trade cancelled and one released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_and_appeal_rpcs_return_their_first_result_on_retry() {
    let s = Server::start(&[]).await;
    let (seller_id, buyer_id, agent_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let users = [(seller_id, Role::User), (buyer_id, Role::User)];
    let users = &users[..];
    let (mut seller, method) = seller(&s, seller_id, "100").await;
    publish(&mut seller, listing(&method, "7", "100", "7", "700", 0)).await;
    let mut buyer = trader(&s, buyer_id).await;

    let placed = check!(&s, users, buyer, place_buy, buy("10"), buy("11")).expect("buy");
    let trade = placed.trade_ids[0].clone();
    let resting = pb::PlaceBuyRequest {
        max_price: "1".into(),
        rest: true,
        ..buy("5")
    };
    let order = check!(
        &s,
        users,
        buyer,
        place_buy,
        resting.clone(),
        pb::PlaceBuyRequest {
            coin_amount: "6".into(),
            ..resting
        }
    )
    .expect("resting buy")
    .buy_order_id;
    assert!(!order.is_empty(), "the buy rests");
    let cancel_order = |id: &str| pb::CancelBuyOrderRequest {
        request_id: rid(),
        buy_order_id: id.into(),
    };
    check!(
        &s,
        users,
        buyer,
        cancel_buy_order,
        cancel_order(&order),
        cancel_order("B-999")
    )
    .expect("the first call succeeds");
    let trade_act = |id: &str| pb::TradeActionRequest {
        request_id: rid(),
        trade_id: id.into(),
    };
    check!(
        &s,
        users,
        buyer,
        mark_paid,
        trade_act(&trade),
        trade_act("T-999")
    )
    .expect("the first call succeeds");
    let chat = |text: &str, f: Option<pb::Attachment>| pb::SendChatRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        text: text.into(),
        attachment: f,
    };
    check!(
        &s,
        users,
        buyer,
        send_chat,
        chat("receipt", Some(file("r.png", 1))),
        chat("receipt", Some(file("r.png", 2)))
    )
    .expect("the first call succeeds");
    wait_ms(2_100).await; // --appeal-after 2s
    let appeal = |reason: &str| pb::OpenAppealRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        reason: reason.into(),
    };
    check!(
        &s,
        users,
        seller,
        open_appeal,
        appeal("no fiat"),
        appeal("no money")
    )
    .expect("the first call succeeds");
    let evidence = |d: &str, f: Option<pb::Attachment>| pb::AddEvidenceRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        description: d.into(),
        attachment: f,
    };
    let ev = check!(
        &s,
        users,
        buyer,
        add_evidence,
        evidence("bank slip", Some(file("slip.png", 3))),
        evidence("bank slip", Some(file("slip.png", 4)))
    )
    .expect("evidence");
    assert!(!ev.evidence_id.is_empty());

    let mut agent = s.support(agent_id, Role::Support).await;
    let claim = |t: &str| pb::AppealActionRequest {
        request_id: rid(),
        trade_id: t.into(),
    };
    check!(
        &s,
        users,
        agent,
        claim_appeal,
        claim(&trade),
        claim("T-999")
    )
    .expect("the first call succeeds");
    check!(
        &s,
        users,
        agent,
        unclaim_appeal,
        claim(&trade),
        claim("T-999")
    )
    .expect("the first call succeeds");
    agent
        .claim_appeal(claim(&trade))
        .await
        .expect("claim again");
    let resolve = |note: &str| pb::ResolveAppealRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        resolution: pb::Resolution::Release as i32,
        note: note.into(),
    };
    check!(
        &s,
        users,
        agent,
        resolve_appeal,
        resolve("slip matches"),
        resolve("other note")
    )
    .expect("the first call succeeds");

    // Chat on the ended trade is refused, and its file is not stored.
    let refused = buyer
        .send_chat(chat("late", Some(file("late.png", 9))))
        .await
        .expect_err("chat on an ended trade");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // A second trade: cancelled by the buyer; a third: released.
    let t2 = bought(&mut buyer, "1").await;
    check!(
        &s,
        users,
        buyer,
        cancel_trade,
        trade_act(&t2),
        trade_act("T-999")
    )
    .expect("the first call succeeds");
    let t3 = bought(&mut buyer, "1").await;
    mark_paid(&mut buyer, &t3).await;
    let rel = |t: &str| pb::ReleaseRequest {
        request_id: rid(),
        trade_id: t.into(),
        fund_password: PASSWORD.into(),
    };
    check!(&s, users, seller, release, rel(&t3), rel("T-999")).expect("the first call succeeds");

    // The attachment store holds exactly the referenced files.
    let mut s = s;
    let status = s.terminate().await;
    assert!(status.success());
    let store = otc_storage::Store::open(&s.dir).expect("open store");
    let mut blobs = store.blob_ids().expect("blobs");
    blobs.sort();
    assert_eq!(
        blobs.len(),
        2,
        "one chat file, one evidence file: {blobs:?}"
    );
}

/// A merchant registered, quoting and online; a fast sale to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_sell_rpcs_return_their_first_result_on_retry() {
    let s = Server::start(&[]).await;
    let (seller_id, merchant_id) = (Uuid::new_v4(), Uuid::new_v4());
    let users = [(seller_id, Role::User), (merchant_id, Role::Merchant)];
    let users = &users[..];
    let mut admin = s.admin().await;
    let (mut seller, method) = seller(&s, seller_id, "100").await;

    let reg = |u: Uuid| pb::RegisterMerchantRequest {
        request_id: rid(),
        user_id: u.to_string(),
    };
    check!(
        &s,
        users,
        admin,
        register_merchant,
        reg(merchant_id),
        reg(Uuid::new_v4())
    )
    .expect("the first call succeeds");
    let mut merchant = s.merchant(merchant_id).await;
    let cap = |bid: &str| pb::SetCapacityRequest {
        request_id: rid(),
        quotes: vec![pb::MerchantQuote {
            asset: "EB".into(),
            fiat: "CNY".into(),
            bid: bid.into(),
            min_fiat: "1".into(),
            max_fiat: "10000".into(),
        }],
        methods: vec![pb::PaymentKind::Alipay as i32],
        max_outstanding_fiat: "100000".into(),
    };
    check!(&s, users, merchant, set_capacity, cap("6.9"), cap("6.8"))
        .expect("the first call succeeds");
    let online = |on: bool| pb::SetOnlineRequest {
        request_id: rid(),
        online: on,
    };
    check!(&s, users, merchant, set_online, online(true), online(false))
        .expect("the first call succeeds");
    let fast = |amount: &str| pb::FastSellRequest {
        request_id: rid(),
        asset: "EB".into(),
        fiat: "CNY".into(),
        coin_amount: amount.into(),
        method_id: method.clone(),
        fund_password: PASSWORD.into(),
        ..Default::default()
    };
    let sold = check!(&s, users, seller, fast_sell, fast("10"), fast("11")).expect("fast sell");
    assert!(sold.trade.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_reply_still_answers_the_first_result() {
    let mut s = Server::start(&[]).await;
    let (_, buyer, trade) = open_trade(&s, "10").await;
    let buyer_id = user_of(buyer).await;
    let chat = pb::SendChatRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        text: "paid, see receipt".into(),
        attachment: Some(file("receipt.png", 7)),
    };
    s.terminate().await;

    // The commit happens; the process dies before replying.
    let dir = s.dir.clone();
    let mut crashing = Server::start_in(&dir, &["--failpoint", "crash-after-commit"]).await;
    let mut buyer = trader(&crashing, buyer_id).await;
    let lost = buyer.send_chat(chat.clone()).await;
    assert!(lost.is_err(), "the reply was lost: {lost:?}");
    crashing.kill9().await;

    let again = Server::start_in(&dir, &[]).await;
    let mut buyer = trader(&again, buyer_id).await;
    let retry = buyer.send_chat(chat.clone()).await;
    assert!(replayed(&retry), "{retry:?}");
    let receipt = retry.expect("the first result").into_inner();
    assert!(
        receipt.first_seq <= receipt.last_seq,
        "it was applied: {receipt:?}"
    );
    let page = buyer
        .list_chat(pb::ListChatRequest {
            trade_id: trade.clone(),
            after_seq: 0,
            page_size: 0,
        })
        .await
        .expect("chat")
        .into_inner();
    assert_eq!(page.messages.len(), 1, "applied once");
    let mut again = again;
    again.terminate().await;
    let store = otc_storage::Store::open(&dir).expect("open store");
    assert_eq!(
        store.blob_ids().expect("blobs").len(),
        1,
        "exactly the referenced file"
    );
}

#[tokio::test]
async fn payment_channel_rpcs_return_their_first_result_on_retry() {
    use harness::gateway::{notify, payment, start};
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let seller_id = Uuid::new_v4();
    let users = [(seller_id, Role::User)];
    let users = &users[..];
    let mut admin = s.admin().await;
    let assign = |channel: &str| pb::AssignChannelRequest {
        request_id: rid(),
        user_id: seller_id.to_string(),
        channel: channel.into(),
    };
    check!(
        &s,
        users,
        admin,
        assign_channel,
        assign("sandbox-alipay"),
        assign("sandbox-hmac")
    )
    .expect("the first call succeeds");

    let a = notify(
        &s,
        sandbox.path(),
        "sandbox-hmac",
        &payment("ORDER-FROM-ELSEWHERE", "h-1", "5.00"),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let mut agent = s.support(Uuid::new_v4(), Role::Support).await;
    let open = agent
        .list_anomalies(pb::ListAnomaliesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .anomalies;
    let resolve = |note: &str| pb::ResolveAnomalyRequest {
        request_id: rid(),
        anomaly_id: open[0].id.clone(),
        note: note.into(),
    };
    let done = check!(
        &s,
        users,
        agent,
        resolve_anomaly,
        resolve("refunded"),
        resolve("kept")
    )
    .expect("the first call succeeds");
    assert!(done.resolved && done.note == "refunded");
}
