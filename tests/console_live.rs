//! The web console's live queue through outages, in headless Chromium
//! against a real `otcd` (SPEC §21): the queue resumes after the server
//! restarts with nothing missed; a trade opened or a queue first loaded
//! while the server is down loads by itself once it is back; a stream the
//! server turns away is named in the error banner until it is let in; the
//! focused row keeps the focus through live updates.

mod harness;

use harness::browser::Browser;
use harness::console::paid_trade;
use harness::{Server, rid, token, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_resumes_after_the_server_restarts_with_nothing_missed() {
    // The console keeps its address across the restart, as in production.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut s = Server::start(&["--auto-appeal-after", "10m", "--console-listen", &addr]).await;
    let (_, mut first_buyer, first) = paid_trade(&s, Uuid::new_v4()).await;
    let second_buyer = Uuid::new_v4();
    let (_, _, second) = paid_trade(&s, second_buyer).await;
    let b = Browser::start("UTC").await;
    b.sign_in(&s, &token(Uuid::new_v4(), Role::Support)).await;
    b.wait_for("#live[data-state=live]").await;
    first_buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: first.clone(),
            reason: "first".into(),
        })
        .await
        .expect("appeal");
    let first_row = format!("#queue tr[data-trade='{first}']");
    b.wait_for(&first_row).await;

    s.restart().await;
    // While the console reconnects, another appeal opens.
    s.trading(second_buyer, Role::User)
        .await
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: second.clone(),
            reason: "second, while the console was away".into(),
        })
        .await
        .expect("appeal after the restart");
    b.wait_for(&format!("#queue tr[data-trade='{second}']"))
        .await;
    b.wait_for("#live[data-state=live]").await;
    assert_eq!(b.count(&first_row).await, 1, "nothing shown twice");
    assert_eq!(b.count("#queue tr[data-trade]").await, 2);

    // A trade opened while the server is down loads by itself once it is back.
    s.terminate().await;
    b.click(&first_row).await;
    b.wait_for("#error:not([hidden])").await;
    s.restart().await;
    b.wait_for("#records").await;
    b.wait_text("#trade-title", &first).await;
    b.wait_gone("#error:not([hidden])").await;

    // Signing in while the server is down: the queue's first load fails, and
    // is tried again until the server is back, with no click.
    b.click("#sign-out").await;
    s.terminate().await;
    b.type_into("#token", &token(Uuid::new_v4(), Role::Support))
        .await;
    b.click("#sign-in").await;
    b.wait_for("#live[data-state=reconnecting]").await;
    assert_eq!(b.count("#queue tr[data-trade]").await, 0);
    s.restart().await;
    b.wait_for(&first_row).await;
    b.wait_for("#live[data-state=live]").await;
    b.wait_gone("#error:not([hidden])").await;
    assert_eq!(b.count("#queue tr[data-trade]").await, 2);
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_queue_stream_is_named_in_the_banner_until_it_is_let_in() {
    let s = Server::start(&["--auto-appeal-after", "10m", "--streams-per-user", "1"]).await;
    let agent = Uuid::new_v4();
    // Another window of the same agent holds the one stream allowed.
    let mut other = s.support(agent, Role::Support).await;
    let held = other
        .stream_appeal_queue(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .expect("the one stream");
    let b = Browser::start("UTC").await;
    b.sign_in(&s, &token(agent, Role::Support)).await;
    b.wait_for("#error[data-code=RESOURCE_EXHAUSTED]:not([hidden])")
        .await;
    b.wait_for("#live[data-state=reconnecting]").await;
    // Dismissed, it stays dismissed while the stream is still turned away
    // (retries at 1 s and 2 s fall in these 3 s): once per run of refusals.
    b.click("#error-close").await;
    wait_ms(3_000).await;
    assert_eq!(b.count("#error:not([hidden])").await, 0, "shown again");
    assert_eq!(b.count("#live[data-state=live]").await, 0, "still refused");
    drop(held);
    b.wait_for("#live[data-state=live]").await;
    b.wait_gone("#error:not([hidden])").await;
    // Live for real: an appeal opened now arrives without a reload.
    let (_, mut buyer, trade) = paid_trade(&s, Uuid::new_v4()).await;
    buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            reason: "after the refusal".into(),
        })
        .await
        .expect("appeal");
    b.wait_for(&format!("#queue tr[data-trade='{trade}']"))
        .await;
    b.quit().await;
}

/// The re-read an event asks for fails on the way (here: the page's first
/// two `GetAppeal` fetches fail as a dropped network would): it is tried
/// again until it lands, as no later event would ask for it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_row_whose_reread_failed_on_the_way_still_arrives() {
    let s = Server::start(&["--auto-appeal-after", "10m"]).await;
    let (_, mut buyer, trade) = paid_trade(&s, Uuid::new_v4()).await;
    let b = Browser::start("UTC").await;
    b.sign_in(&s, &token(Uuid::new_v4(), Role::Support)).await;
    b.wait_for("#live[data-state=live]").await;
    b.exec(
        "const real = window.fetch; window.__failed = 0;
         window.fetch = (url, init) => {
           if (String(url).endsWith('/GetAppeal') && window.__failed < 2) {
             window.__failed += 1;
             return Promise.reject(new TypeError('Failed to fetch'));
           }
           return real(url, init);
         };",
        vec![],
    )
    .await
    .expect("fetch wrapped");
    buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            reason: "read again after two failures".into(),
        })
        .await
        .expect("appeal");
    b.wait_for(&format!("#queue tr[data-trade='{trade}']"))
        .await;
    assert_eq!(
        b.exec("return window.__failed", vec![]).await,
        Ok(serde_json::json!(2)),
        "both failures happened on the way"
    );
    b.quit().await;
}

/// The agent's place in the queue survives its live updates: an appeal
/// opening elsewhere leaves the focused row's element as it was, and a
/// change to the focused row itself moves the focus to its new row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_focused_queue_row_keeps_the_focus_through_live_updates() {
    let s = Server::start(&["--auto-appeal-after", "10m"]).await;
    let (_, mut first_buyer, first) = paid_trade(&s, Uuid::new_v4()).await;
    let (_, mut second_buyer, second) = paid_trade(&s, Uuid::new_v4()).await;
    first_buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: first.clone(),
            reason: "focused".into(),
        })
        .await
        .expect("appeal");
    let b = Browser::start("UTC").await;
    b.sign_in(&s, &token(Uuid::new_v4(), Role::Support)).await;
    b.wait_for("#live[data-state=live]").await;
    let button = format!("#queue tr[data-trade='{first}'] .open-trade");
    b.wait_for(&button).await;
    b.exec(
        "const el = document.querySelector(arguments[0]); el.focus(); el.__mark = 'kept';",
        vec![serde_json::json!(button)],
    )
    .await
    .expect("focused");

    second_buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: second.clone(),
            reason: "elsewhere".into(),
        })
        .await
        .expect("second appeal");
    b.wait_for(&format!("#queue tr[data-trade='{second}']"))
        .await;
    assert_eq!(
        b.exec("return document.activeElement.__mark || null", vec![])
            .await,
        Ok(serde_json::json!("kept")),
        "the focused element is the same one"
    );

    // Another agent claims the focused appeal: its row is built anew, and
    // the focus follows it.
    s.support(Uuid::new_v4(), Role::Support)
        .await
        .claim_appeal(pb::AppealActionRequest {
            request_id: rid(),
            trade_id: first.clone(),
        })
        .await
        .expect("claimed");
    b.wait_for(&format!(
        "#queue tr[data-trade='{first}'][data-status=APPEAL_STATUS_CLAIMED]"
    ))
    .await;
    assert_eq!(
        b.exec(
            "const a = document.activeElement;
             return [a.classList.contains('open-trade'), a.closest('tr').dataset.trade, a.__mark || null];",
            vec![]
        )
        .await,
        Ok(serde_json::json!([true, first, null])),
        "the focus moved to the claimed row's new button"
    );
    b.quit().await;
}
