//! An action on a trade or listing the engine has forgotten (SPEC §10): with
//! `--ended-retention 1s` a cancelled trade or listing leaves the working set
//! a second after it ended; history still answers for it, and every action
//! is still refused naming its state, not NOT_FOUND.

use otc_api::auth::Role;
use otc_api::proto as pb;
use tonic::Code;
use uuid::Uuid;

use crate::harness::steps::*;
use crate::harness::{Server, rid, wait_ms};

/// The status a refused call must carry: its code, and a message naming
/// `words`.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, words: &str, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), code, "{what}: {e:?}");
    assert!(e.message().contains(words), "{what}: {}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_trade_or_listing_refuses_actions_naming_its_state() {
    let s = Server::start(&["--ended-retention", "1s"]).await;
    let (mut seller, method) = seller(&s, Uuid::new_v4(), "100").await;
    let listing_id = publish(&mut seller, listing(&method, "7", "100", "7", "700", 0)).await;
    let mut buyer = s.trading(Uuid::new_v4(), Role::User).await;
    let trade = bought(&mut buyer, "2").await;
    let action = |request_id: &str| pb::TradeActionRequest {
        request_id: request_id.into(),
        trade_id: trade.clone(),
    };
    buyer.cancel_trade(action(&rid())).await.expect("cancel");
    let cancel_listing = || pb::ListingActionRequest {
        request_id: rid(),
        listing_id: listing_id.clone(),
    };
    seller
        .cancel_listing(cancel_listing())
        .await
        .expect("cancel listing");
    // Past the retention the next deadline check forgets it.
    wait_ms(2_500).await;
    assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Cancelled);

    let paid_id = rid();
    let first = buyer.mark_paid(action(&paid_id)).await;
    refused(first, Code::FailedPrecondition, "CANCELLED", "mark paid");
    // A retry gets the first answer.
    let again = buyer.mark_paid(action(&paid_id)).await;
    refused(
        again,
        Code::FailedPrecondition,
        "CANCELLED",
        "mark paid again",
    );
    let cancel = buyer.cancel_trade(action(&rid())).await;
    refused(cancel, Code::FailedPrecondition, "CANCELLED", "cancel");
    refused(
        release(&mut seller, &trade).await,
        Code::FailedPrecondition,
        "CANCELLED",
        "release",
    );
    let appeal = seller
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            reason: "fiat not received".into(),
        })
        .await;
    refused(appeal, Code::FailedPrecondition, "CANCELLED", "appeal");
    let chat = buyer
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            text: "hello?".into(),
            attachment: None,
        })
        .await;
    refused(chat, Code::FailedPrecondition, "CANCELLED", "chat");
    let order = buyer
        .create_payment_order(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await;
    refused(
        order,
        Code::FailedPrecondition,
        "CANCELLED",
        "payment order",
    );
    let mut cs = s.support(Uuid::new_v4(), Role::Support).await;
    let claim = cs
        .claim_appeal(pb::AppealActionRequest {
            request_id: rid(),
            trade_id: trade.clone(),
        })
        .await;
    refused(claim, Code::FailedPrecondition, "CANCELLED", "claim");
    let again = seller.cancel_listing(cancel_listing()).await;
    refused(
        again,
        Code::FailedPrecondition,
        "CANCELLED",
        "cancel listing",
    );

    // Someone who is no party still learns nothing.
    let mut stranger = s.trading(Uuid::new_v4(), Role::User).await;
    let theirs = stranger.mark_paid(action(&rid())).await;
    refused(
        theirs,
        Code::NotFound,
        "not found",
        "a stranger's mark paid",
    );
    let order = stranger
        .create_payment_order(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await;
    refused(
        order,
        Code::NotFound,
        "not found",
        "a stranger's payment order",
    );
    let theirs = stranger.cancel_listing(cancel_listing()).await;
    refused(
        theirs,
        Code::NotFound,
        "not found",
        "a stranger's listing cancel",
    );
}
