//! The web console's screens in headless Chromium (Debian's `chromium`
//! driven through `chromedriver`) against a real `otcd` (SPEC §21): an agent
//! watches an appeal arrive without reloading, claims and hands it back,
//! reads the evidence (the image inline, the PDF as a download) and the
//! chat, resolves with a note after a confirmation; hostile text stays text
//! and runs nothing; 中文 labels; the agent's time zone. A viewer finds no
//! action and a forced call is refused. Anomalies and reconciliation
//! mistakes land live and are handled; admin deposits, withdraws, registers
//! a merchant and reads the statement. (Outages: `console_live.rs`.)
//!
//! Screenshots go to `target/console-screenshots/` (the README's are copies).

mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::browser::Browser;
use harness::console::{WINDOWS, paid_trade};
use harness::steps::*;
use harness::{Server, rid, token, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use serde_json::json;
use uuid::Uuid;

const RECEIPT_PNG: &[u8] = include_bytes!("fixtures/receipt.png");
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/console-screenshots")
        .join(name)
}

/// [`WINDOWS`], and a payment waits for the next day's bill only in the last
/// second before midnight (30 minutes by default: a test that imports
/// today's bill in that half hour would see its payment wait, not missing).
const RECON_WINDOWS: &[&str] = &["--auto-appeal-after", "10m", "--recon-window", "1s"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_watches_claims_reads_and_resolves_an_appeal_in_the_browser() {
    let s = Server::start(WINDOWS).await;
    let (mut seller, mut buyer, trade) = paid_trade(&s, Uuid::new_v4()).await;
    let agent = Uuid::new_v4();
    let b = Browser::start("Asia/Shanghai").await;
    b.sign_in(&s, &token(agent, Role::Support)).await;
    b.wait_for("#queue-title").await;
    b.wait_for("#live[data-state=live]").await;
    assert_eq!(b.count("#queue tr[data-trade]").await, 0);

    // The appeal arrives while the agent watches: no reload.
    buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            reason: format!("paid but not released {HOSTILE}"),
        })
        .await
        .expect("appeal");
    let row = format!("#queue tr[data-trade='{trade}']");
    b.wait_for(&row).await;
    b.wait_text(&row, "paid but not released <img").await;
    for (description, content_type, name, data) in [
        (
            "bank receipt",
            "image/png",
            "receipt.png",
            RECEIPT_PNG.to_vec(),
        ),
        (
            "statement <script>alert(2)</script>",
            "application/pdf",
            "statement.pdf",
            b"%PDF-1.4\n% a statement\n".to_vec(),
        ),
        (
            "the invoice",
            "application/pdf",
            "invoice\u{202E}fdp.exe",
            b"%PDF-1.4\n% an invoice\n".to_vec(),
        ),
    ] {
        buyer
            .add_evidence(pb::AddEvidenceRequest {
                request_id: rid(),
                trade_id: trade.clone(),
                description: description.into(),
                attachment: Some(pb::Attachment {
                    content_type: content_type.into(),
                    file_name: name.into(),
                    data,
                }),
            })
            .await
            .expect("evidence");
    }
    for (who, text) in [
        (&mut buyer, HOSTILE),
        (&mut seller, "没有收到 nothing arrived"),
    ] {
        who.send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            text: text.into(),
            attachment: None,
        })
        .await
        .expect("chat");
    }
    // A chat attachment, as the buyer sends a screenshot.
    buyer
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            text: "my transfer".into(),
            attachment: Some(pb::Attachment {
                content_type: "image/png".into(),
                file_name: "transfer.png".into(),
                data: RECEIPT_PNG.to_vec(),
            }),
        })
        .await
        .expect("chat with a file");
    b.screenshot(&screenshot_path("queue.png")).await;
    b.click("#lang").await;
    b.wait_text("#queue-title", "申诉队列").await;
    b.wait_text(&row, "paid but not released").await;
    b.screenshot(&screenshot_path("queue-zh.png")).await;
    b.click("#lang").await;
    b.wait_text("#queue-title", "Appeal queue").await;

    b.click(&row).await;
    b.wait_for("#trade-view").await;
    b.wait_for("#timeline li").await;
    b.wait_text("#trade-view", "Wang Fang").await; // the receiving method
    b.wait_text("#trade-view", "wang@example.com").await;
    // Times in the agent's zone (the browser's, Asia/Shanghai), then in UTC.
    let created = "#trade-card dd[data-field=created_at] time";
    let at = b
        .attr(created, "datetime")
        .await
        .expect("a machine-readable time");
    let at = chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339");
    let shanghai = at.with_timezone(&chrono_tz::Asia::Shanghai);
    b.wait_text(created, &shanghai.format("%Y-%m-%d %H:%M:%S").to_string())
        .await;
    b.type_into("#tz", "Mars/Olympus").await;
    b.click("#tz-apply").await;
    b.wait_text("#error", "Mars/Olympus").await;
    b.type_into("#tz", "UTC").await;
    b.click("#tz-apply").await;
    let utc = at.with_timezone(&chrono::Utc);
    b.wait_text(created, &utc.format("%Y-%m-%d %H:%M:%S").to_string())
        .await;
    b.type_into("#tz", "Asia/Shanghai").await;
    b.click("#tz-apply").await;
    b.wait_for("#evidence img").await;
    // The PNG shows inline from a blob, decoded (120 px wide).
    b.wait_js(
        "const i = document.querySelector('#evidence img'); \
         return [i.complete && i.naturalWidth, i.src.slice(0, 5)];",
        &json!([120, "blob:"]),
    )
    .await;
    b.wait_js(
        "return [...document.querySelectorAll('#evidence a[download]')].map((a) => a.download);",
        &json!(["statement.pdf", "invoicefdp.exe.pdf"]),
    )
    .await;
    b.wait_text("#evidence", "statement <script>alert(2)</script>")
        .await;
    b.wait_for(".chat-text").await;
    b.wait_text("#chat", HOSTILE).await;
    b.wait_text("#chat", "没有收到").await;
    b.wait_js(
        "const i = document.querySelector('#chat img.attachment-img'); \
         return i ? [i.complete && i.naturalWidth, i.src.slice(0, 5)] : null;",
        &json!([120, "blob:"]),
    )
    .await;
    let injected = b
        .exec(
            "const imgs = [...document.querySelectorAll('img')] \
               .filter((i) => !i.src.startsWith('blob:') && !i.src.endsWith('.svg')); \
             return imgs.length + document.querySelectorAll('main script').length;",
            vec![],
        )
        .await
        .expect("count");
    assert_eq!(injected, json!(0), "typed HTML stays text");
    assert!(!b.alert_open().await, "no script ran");

    b.click("#claim").await;
    b.wait_for("#unclaim").await;
    let mut cs = s.support(agent, Role::Support).await;
    let claimed = cs
        .get_appeal(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await
        .expect("appeal")
        .into_inner();
    assert_eq!(claimed.claimed_by, agent.to_string());
    b.set_window(1400, 1900).await;
    b.screenshot(&screenshot_path("trade.png")).await;
    b.set_window(1400, 1000).await;

    // Hand back and claim again: both reach the server.
    b.click("#unclaim").await;
    b.wait_for("#claim").await;
    b.click("#claim").await;
    b.wait_for("#unclaim").await;

    // Resolving needs a note, then a confirmation.
    b.click("#resolve-release").await;
    b.wait_text("#error", "note").await;
    assert!(
        b.count("#confirm:not([hidden])").await == 0 || !b.text("#confirm").await.contains(&trade),
        "no confirmation without a note"
    );
    b.type_into("#note", "buyer's bank receipt matches; released")
        .await;
    b.click("#resolve-release").await;
    b.wait_for("#confirm").await;
    b.wait_text("#confirm", &trade).await;
    b.click("#confirm-yes").await;
    let started = Instant::now();
    loop {
        if state(&mut buyer, &trade).await == pb::TradeState::Released {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never released"
        );
        wait_ms(50).await;
    }
    let closed = cs
        .get_appeal(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await
        .expect("appeal")
        .into_inner();
    assert!(
        closed.outcome.contains("buyer's bank receipt matches"),
        "{}",
        closed.outcome
    );
    b.click("#back").await;
    b.wait_gone(&row).await;

    // 中文.
    let english = b.text("#queue-title").await;
    b.click("#lang").await;
    b.wait_text("#queue-title", "申诉队列").await;
    assert_ne!(english, b.text("#queue-title").await);
    let lang = b
        .exec("return document.documentElement.lang;", vec![])
        .await
        .expect("lang");
    assert!(lang.as_str().is_some_and(|l| l.starts_with("zh")), "{lang}");
    b.click("#lang").await;
    b.wait_text("#queue-title", "Appeal queue").await;

    // The token never went into a URL or the browser's log.
    let tok = token(agent, Role::Support);
    let url = b.exec("return location.href;", vec![]).await.expect("href");
    assert!(!url.to_string().contains(&tok[..20]));
    let log = b.console_log().await.join("\n");
    assert!(!log.contains(&tok[..20]), "the token was logged");
    assert!(
        !log.contains("Content Security Policy"),
        "a CSP violation: {log}"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_action_and_a_forced_call_is_refused() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = harness::gateway::start(sandbox.path(), RECON_WINDOWS).await;
    // Something on each list a support agent could act on.
    let answer = harness::gateway::notify(
        &s,
        sandbox.path(),
        "sandbox-hmac",
        &harness::gateway::payment("OTC000000009998", "h-viewer", "10.00"),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let (_, mut buyer, trade) = paid_trade(&s, Uuid::new_v4()).await;
    buyer
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            reason: "no release".into(),
        })
        .await
        .expect("appeal");
    let b = Browser::start("UTC").await;
    // A token that expires in 4 minutes: the header says when, before the
    // server starts refusing it.
    let short = otc_api::auth::mint(
        harness::SECRET.as_bytes(),
        Uuid::new_v4(),
        Role::SupportViewer,
        240,
    )
    .expect("mint");
    b.sign_in(&s, &short).await;
    b.wait_for("#session-expiry:not([hidden])").await;
    b.wait_text("#session-expiry", "expires at").await;
    let row = format!("#queue tr[data-trade='{trade}']");
    b.click(&row).await;
    b.wait_for("#timeline li").await;
    for control in [
        "#claim",
        "#unclaim",
        "#note",
        "#resolve-release",
        "#resolve-refund",
        "#nav-admin",
    ] {
        assert_eq!(b.count(control).await, 0, "a viewer sees no {control}");
    }
    // Forced through the console's own client, the server refuses.
    let outcome = b
        .exec_async(
            "const done = arguments[arguments.length - 1];
             import('/js/grpcweb.js').then(async (g) => {
               const token = sessionStorage.getItem('otc.token');
               try {
                 await g.call('/otc.v1.SupportService/ClaimAppeal',
                              { request_id: 'forced-1', trade_id: arguments[0] }, { token });
                 done('accepted');
               } catch (e) { done(e.codeName || String(e)); }
             }, (e) => done('import failed: ' + e));",
            vec![json!(trade)],
        )
        .await
        .expect("script");
    assert_eq!(outcome, json!("PERMISSION_DENIED"));
    let mut cs = s.support(Uuid::new_v4(), Role::SupportViewer).await;
    let appeal = cs
        .get_appeal(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await
        .expect("appeal")
        .into_inner();
    assert!(appeal.claimed_by.is_empty(), "nothing changed");

    // The anomaly and the reconciliation mistake lists: read, no action.
    b.click("#nav-anomalies").await;
    b.wait_text("#anomalies tr[data-anomaly]", "h-viewer").await;
    b.click("#nav-mistakes").await;
    let date = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d")
        .to_string();
    let chunks = vec![pb::BillChunk {
        request_id: rid(),
        channel: "sandbox-hmac".into(),
        date,
        data: format!(
            "id,reference,amount,fee,status,paid_at\n\
                 h-other,OTC000000000001,5.00,0.01,paid,{}\n",
            chrono::Utc::now().to_rfc3339()
        )
        .into_bytes(),
    }];
    s.support(harness::ADMIN, Role::Admin)
        .await
        .import_bill(tokio_stream::iter(chunks))
        .await
        .expect("a bill without h-viewer: missing there");
    b.wait_text("#mistakes tr[data-kind=MISSING_THERE]", "h-viewer")
        .await;
    for control in [".mistake-note", ".mistake-close", ".mistake-apply"] {
        assert_eq!(b.count(control).await, 0, "a viewer sees no {control}");
    }
    b.click("#nav-anomalies").await;
    b.wait_text("#anomalies tr[data-anomaly]", "h-viewer").await;
    for control in [".anomaly-note", ".anomaly-resolve"] {
        assert_eq!(b.count(control).await, 0, "a viewer sees no {control}");
    }
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_and_reconciliation_mistakes_land_live_and_are_handled() {
    use harness::gateway::{channel_trade, get, notify, payment, start};
    const HMAC: &str = "sandbox-hmac";
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), RECON_WINDOWS).await;
    let agent = Uuid::new_v4();
    let b = Browser::start("UTC").await;
    b.sign_in(&s, &token(agent, Role::Support)).await;
    b.wait_for("#live[data-state=live]").await;
    b.click("#nav-anomalies").await;
    b.wait_for("#anomalies-view").await;

    // A payment for a reference that names no trade lands while CS watches.
    let answer = notify(
        &s,
        sandbox.path(),
        HMAC,
        &payment("OTC000000009999", "h-unknown", "10.00"),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let row = "#anomalies tr[data-anomaly]";
    b.wait_text(row, "h-unknown").await;
    b.wait_text(row, "OTC000000009999").await;
    b.click(".anomaly-resolve").await;
    b.wait_text("#error", "note").await;
    b.type_into(".anomaly-note", "refunded the payer by bank")
        .await;
    b.click(".anomaly-resolve").await;
    b.wait_gone(row).await;
    let all = harness::gateway::anomalies(&s, true).await;
    assert!(
        all[0].resolved && all[0].note == "refunded the payer by bank",
        "{all:?}"
    );
    assert_eq!(all[0].resolved_by, agent.to_string());

    // A payment whose notification never came: the bill finds it.
    b.click("#nav-mistakes").await;
    b.wait_for("#mistakes-view").await;
    let (_seller, mut buyer, trade) = channel_trade(&s, HMAC, false, 600).await;
    let now = chrono::Utc::now();
    let date = now
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d")
        .to_string();
    let bill = format!(
        "id,reference,amount,fee,status,paid_at\nh-dropped,{},{},0.08,paid,{}\n",
        trade.payment_reference,
        trade.fiat_amount,
        now.to_rfc3339()
    );
    let mut admin = s.support(harness::ADMIN, Role::Admin).await;
    let chunks = vec![
        pb::BillChunk {
            request_id: rid(),
            channel: HMAC.into(),
            date,
            data: Vec::new(),
        },
        pb::BillChunk {
            data: bill.into_bytes(),
            ..Default::default()
        },
    ];
    let report = admin
        .import_bill(tokio_stream::iter(chunks))
        .await
        .expect("import")
        .into_inner();
    // The bill lacks the unknown reference's payment (missing there) and
    // has the dropped one (missing here).
    let mut kinds: Vec<_> = report
        .mistakes
        .iter()
        .map(|m| (m.kind.as_str(), m.txn_id.as_str()))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            ("MISSING_HERE", "h-dropped"),
            ("MISSING_THERE", "h-unknown")
        ]
    );
    b.wait_text("#mistakes tr[data-kind=MISSING_THERE]", "h-unknown")
        .await;
    let row = "#mistakes tr[data-mistake][data-kind=MISSING_HERE]";
    b.wait_text(row, "h-dropped").await;
    b.type_into(&format!("{row} .mistake-note"), "gateway shows it paid")
        .await;
    b.click(&format!("{row} .mistake-apply")).await;
    b.wait_for("#confirm").await;
    b.wait_text("#confirm", "h-dropped").await;
    b.click("#confirm-yes").await;
    b.wait_gone(row).await;
    assert_eq!(
        get(&mut buyer, &trade.id).await.state,
        pb::TradeState::Paid as i32
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deposits_withdraws_registers_a_merchant_and_reads_the_statement() {
    let s = Server::start(WINDOWS).await;
    let user = Uuid::new_v4();
    let b = Browser::start("UTC").await;
    b.sign_in(&s, &token(harness::ADMIN, Role::Admin)).await;
    assert_eq!(b.count("#nav-queue").await, 0, "admin has no appeal queue");
    assert_eq!(
        b.count("#session-expiry:not([hidden])").await,
        0,
        "an hour left: no warning yet"
    );
    b.click("#nav-admin").await;
    b.type_into("#admin-user", &user.to_string()).await;
    b.type_into("#admin-amount", "12.50").await;
    b.type_into("#admin-ref", "bank-7").await;
    b.click("#admin-deposit").await;
    // Money moves only once the admin confirms what moves.
    b.wait_for("#confirm:not([hidden])").await;
    b.wait_text("#confirm-text", "12.50").await;
    b.wait_text("#confirm-text", &user.to_string()).await;
    b.click("#confirm-yes").await;
    b.wait_text("#admin-result [data-field=available]", "12.5")
        .await;
    b.wait_for("#admin-result [data-outcome=done]").await;
    assert_eq!(
        b.exec("return document.getElementById('admin-ref').value", vec![])
            .await,
        Ok(json!("")),
        "a transfer that landed clears its reference, so the next one needs a new one"
    );
    // A withdrawal cancelled at the confirmation moves nothing.
    b.type_into("#admin-amount", "2.5").await;
    b.type_into("#admin-ref", "bank-8").await;
    b.click("#admin-withdraw").await;
    b.wait_for("#confirm:not([hidden])").await;
    b.click("#confirm-no").await;
    b.wait_gone("#confirm:not([hidden])").await;
    assert_eq!(
        b.count("#admin-result:not([hidden])").await,
        0,
        "nothing done"
    );
    b.click("#admin-withdraw").await;
    b.wait_for("#confirm:not([hidden])").await;
    b.click("#confirm-yes").await;
    // The page's call lands; then the server holds what the page shows.
    let mut t = s.trading(user, Role::User).await;
    let ten: rust_decimal::Decimal = "10".parse().expect("decimal");
    let started = Instant::now();
    let available = loop {
        let available = balance(&mut t).await.0;
        if available.parse::<rust_decimal::Decimal>().ok() == Some(ten) {
            break available;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never withdrawn: {available}"
        );
        wait_ms(50).await;
    };
    b.wait_text("#admin-result [data-field=available]", &available)
        .await;
    // The first deposit sent again (same reference) moves nothing, and the
    // page says so instead of "Deposited".
    b.type_into("#admin-amount", "12.50").await;
    b.type_into("#admin-ref", "bank-7").await;
    b.click("#admin-deposit").await;
    b.wait_for("#confirm:not([hidden])").await;
    b.click("#confirm-yes").await;
    b.wait_for("#admin-result [data-outcome=already-recorded]")
        .await;
    b.wait_text("#admin-result", "bank-7").await;
    assert!(
        !b.text("#admin-result").await.contains("Deposited"),
        "a replay is not reported as a deposit"
    );
    assert_eq!(
        balance(&mut t).await.0,
        available,
        "nothing was credited twice"
    );
    // A bad field is named, and nothing moves.
    b.type_into("#admin-amount", "1e3").await;
    b.type_into("#admin-ref", "bank-9").await;
    b.click("#admin-deposit").await;
    b.wait_for("#confirm:not([hidden])").await;
    b.click("#confirm-yes").await;
    b.wait_text("#error", "amount").await;
    assert_eq!(balance(&mut t).await.0, available, "nothing moved");
    b.type_into("#merchant-user", &user.to_string()).await;
    b.click("#register-merchant").await;
    b.wait_for("#admin-result").await;
    let merchant = s
        .merchant(user)
        .await
        .get_merchant(pb::GetMerchantRequest {})
        .await
        .expect("registered")
        .into_inner();
    assert_eq!(
        merchant.outstanding_fiat, "0.00",
        "fiat at 2 places before any trade"
    );

    b.click("#nav-statement").await;
    b.click("#statement-load").await;
    b.wait_for("#statement-balanced[data-balanced=true]").await;
    b.wait_text("#statement-view [data-field=deposits]", "12.5")
        .await;
    b.wait_text("#statement-view [data-field=withdrawals]", "2.5")
        .await;
    // The statement downloads as CSV (SPEC §20), from a Blob of the page's.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        b.attr("#statement-csv", "download").await,
        Some(format!("statement-EB-{today}.csv"))
    );
    let href = b.attr("#statement-csv", "href").await.unwrap_or_default();
    assert!(href.starts_with("blob:"), "{href}");
    b.quit().await;
}
