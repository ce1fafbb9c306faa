//! Reconciliation end to end (SPEC §20): trades paid through the sandbox
//! gateway with one notification deliberately dropped; the day's bill
//! imported over gRPC finds exactly that one as "missing here"; applied
//! from the bill, the trade is paid and a re-import is clean. Malformed and
//! oversized bills are refused whole; the statement balances.

mod harness;

use chrono::TimeZone;
use harness::gateway::{buy_on, channel_trade, get, notify, payment, start};
use harness::{Server, rid};
use otc_api::auth::Role;
use otc_api::proto as pb;

const HMAC: &str = "sandbox-hmac";

/// Today in the channel's time zone (Asia/Shanghai), and now as RFC 3339.
fn today() -> (String, String) {
    let now = chrono::Utc::now();
    let local = chrono_tz::Asia::Shanghai.from_utc_datetime(&now.naive_utc());
    (local.format("%Y-%m-%d").to_string(), now.to_rfc3339())
}

fn chunks(date: &str, bill: &str, request_id: &str) -> Vec<pb::BillChunk> {
    let mut out = vec![pb::BillChunk {
        request_id: request_id.into(),
        channel: HMAC.into(),
        date: date.into(),
        data: Vec::new(),
    }];
    for part in bill.as_bytes().chunks(40) {
        out.push(pb::BillChunk {
            data: part.to_vec(),
            ..pb::BillChunk::default()
        });
    }
    out
}

async fn import(
    s: &Server,
    date: &str,
    bill: &str,
    request_id: &str,
) -> Result<pb::ReconReport, tonic::Status> {
    let mut agent = s.support(harness::ADMIN, Role::Support).await;
    agent
        .import_bill(tokio_stream::iter(chunks(date, bill, request_id)))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_dropped_notification_is_found_in_the_bill_and_applied() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let (_seller, mut b1, t1) = channel_trade(&s, HMAC, false, 600).await;
    let (mut b2, t2) = buy_on(&s, HMAC).await;
    let (mut b3, t3) = buy_on(&s, HMAC).await;
    let (date, at) = today();
    for (t, txn) in [(&t1, "h-1"), (&t3, "h-3")] {
        let a = notify(
            &s,
            sandbox.path(),
            HMAC,
            &payment(&t.payment_reference, txn, "14.00"),
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    // t2's notification is dropped: the gateway's bill still has it.
    let bill = format!(
        "# bank-x daily bill\nid,reference,amount,fee,status,paid_at\n\
         h-1,{},14.00,0.08,paid,{at}\nh-2,{},14.00,0.08,paid,{at}\nh-3,{},14.00,0.08,paid,{at}\n",
        t1.payment_reference, t2.payment_reference, t3.payment_reference
    );
    let first_id = rid();
    let report = import(&s, &date, &bill, &first_id).await.expect("import");
    assert_eq!((report.lines, report.matched), (3, 2), "{report:?}");
    assert_eq!(report.mistakes.len(), 1, "{report:?}");
    let m = &report.mistakes[0];
    assert_eq!(
        (m.kind.as_str(), m.txn_id.as_str()),
        ("MISSING_HERE", "h-2")
    );
    assert_eq!(m.reference, t2.payment_reference);
    // The same request again: the first reply; the same bill anew: nothing new.
    let again = import(&s, &date, &bill, &first_id).await.expect("retry");
    assert_eq!(again, report);
    let anew = import(&s, &date, &bill, &rid()).await.expect("re-import");
    assert!(anew.mistakes.is_empty(), "{anew:?}");

    // Applied from the bill: paid, actor reconciliation.
    let mut agent = s.support(uuid::Uuid::new_v4(), Role::Support).await;
    let applied = agent
        .apply_missed_payment(pb::HandleMistakeRequest {
            request_id: rid(),
            mistake_id: m.id.clone(),
            note: String::new(),
        })
        .await
        .expect("apply")
        .into_inner();
    assert!(applied.handled);
    let paid = get(&mut b2, &t2.id).await;
    assert_eq!(paid.state, pb::TradeState::Paid as i32);
    assert!(
        paid.timeline.iter().any(|e| e.actor == "reconciliation"),
        "{paid:?}"
    );
    // The buyer's events say so too: the payment was verified by
    // reconciliation, not by the gateway's notification.
    let mut events = b2
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .expect("events")
        .into_inner();
    let verified = loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.message())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("open");
        if e.r#type == pb::EventType::PaymentVerified as i32 && e.trade_id == t2.id {
            break e;
        }
    };
    assert_eq!(verified.actor, "reconciliation", "{verified:?}");
    let open = agent
        .list_recon_mistakes(pb::ListReconMistakesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(open.mistakes.is_empty(), "{open:?}");
    // A corrected bill of the same day is clean now.
    let corrected = format!("{bill}# corrected\n");
    let clean = import(&s, &date, &corrected, &rid()).await.expect("clean");
    assert!(clean.mistakes.is_empty() && clean.matched == 3, "{clean:?}");
    assert_eq!(
        get(&mut b3, &t3.id).await.state,
        pb::TradeState::Paid as i32
    );
    assert_eq!(
        get(&mut b1, &t1.id).await.state,
        pb::TradeState::Paid as i32
    );
}

#[tokio::test]
async fn malformed_unknown_and_oversized_bills_are_refused_whole() {
    let sandbox = tempfile::tempdir().expect("temp");
    let dir = sandbox.path().display().to_string();
    let s = start(sandbox.path(), &["--bill-max", "300B"]).await;
    let (date, at) = today();
    let bad =
        format!("id,reference,amount,fee,status,paid_at\nh-1,OTC000000000001,1e3,0,paid,{at}\n");
    let e = import(&s, &date, &bad, &rid())
        .await
        .expect_err("malformed");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("line 2") && e.message().contains("amount"),
        "{e:?}"
    );
    let short = format!("id,reference,amount,fee,status,paid_at\nh-1,OTC1,5.00,paid,{at}\n");
    let e = import(&s, &date, &short, &rid()).await.expect_err("cells");
    assert!(e.message().contains("line 2"), "{e:?}");
    // A well-formed bill of another day.
    let good =
        format!("id,reference,amount,fee,status,paid_at\nh-1,OTC000000000001,5.00,0,paid,{at}\n");
    let e = import(&s, "2020-01-01", &good, &rid())
        .await
        .expect_err("other day");
    assert!(e.message().contains("another day"), "{e:?}");
    // Yesterday's bill, its one line ten minutes before midnight: within
    // the window matched around today, but not on today.
    let midnight = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .expect("date")
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    let midnight = chrono_tz::Asia::Shanghai
        .from_local_datetime(&midnight)
        .single()
        .expect("one midnight");
    let late = (midnight - chrono::Duration::minutes(10)).to_rfc3339();
    let yesterday =
        format!("id,reference,amount,fee,status,paid_at\nh-1,OTC000000000001,5.00,0,paid,{late}\n");
    let e = import(&s, &date, &yesterday, &rid())
        .await
        .expect_err("yesterday's bill");
    assert!(e.message().contains("another day"), "{e:?}");
    let e = import(&s, "2026-13-01", &bad, &rid())
        .await
        .expect_err("date");
    assert!(e.message().starts_with("date"), "{e:?}");
    // A day that has not begun (where the gateway keeps its books) has no
    // bill yet: one taken as such would call its payments missing there.
    let e = import(&s, "2999-01-01", &good, &rid())
        .await
        .expect_err("a future day");
    assert!(
        e.message().starts_with("date 2999-01-01 is after today")
            && e.message().contains("Asia/Shanghai"),
        "{e:?}"
    );
    let mut agent = s.support(harness::ADMIN, Role::Support).await;
    let mut unknown = chunks(&date, &bad, &rid());
    unknown[0].channel = "nope".into();
    let e = agent
        .import_bill(tokio_stream::iter(unknown))
        .await
        .expect_err("unknown channel");
    assert!(e.message().starts_with("channel"), "{e:?}");
    let big = "x".repeat(400);
    let e = import(&s, &date, &big, &rid()).await.expect_err("too big");
    assert!(e.message().contains("limit"), "{e:?}");
    // The request id is checked first, before the bill is read.
    let e = import(&s, &date, &big, "")
        .await
        .expect_err("no request id");
    assert!(e.message().starts_with("request_id"), "{e:?}");
    // Nothing was recorded.
    let all = agent
        .list_recon_mistakes(pb::ListReconMistakesRequest {
            include_handled: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(all.mistakes.is_empty());
    let _ = dir;
}

#[tokio::test]
async fn the_statement_closes_at_the_sum_of_balances() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (mut seller, mut buyer, t) = channel_trade(&s, HMAC, false, 600).await;
    notify(
        &s,
        sandbox.path(),
        HMAC,
        &payment(&t.payment_reference, "h-1", "14.00"),
    )
    .await;
    harness::steps::release(&mut seller, &t.id)
        .await
        .expect("release");
    if chrono::Utc::now().format("%Y-%m-%d").to_string() != date {
        // The flows straddled UTC midnight: the day's statement holds part.
        return;
    }
    let st = s
        .support(uuid::Uuid::new_v4(), Role::SupportViewer)
        .await
        .get_statement(pb::GetStatementRequest {
            asset: "EB".into(),
            date,
        })
        .await
        .expect("statement")
        .into_inner();
    assert_eq!(st.deposits, "100");
    assert_eq!(st.released_to_buyers, "2");
    assert!(st.balanced, "{st:?}");
    assert_eq!(st.closing, "100");
    let (a, b) = (
        harness::steps::balance(&mut seller).await,
        harness::steps::balance(&mut buyer).await,
    );
    let sum: rust_decimal::Decimal = [a.0, a.1, b.0, b.1]
        .iter()
        .map(|x| x.parse::<rust_decimal::Decimal>().expect("decimal"))
        .sum();
    assert_eq!(sum.to_string(), st.closing);
    // A day before this server's first command: nothing on the books, and
    // balanced (not a false L1 alarm); a day that has not begun: refused.
    let mut viewer = s.support(uuid::Uuid::new_v4(), Role::SupportViewer).await;
    let before = viewer
        .get_statement(pb::GetStatementRequest {
            asset: "EB".into(),
            date: "2001-01-01".into(),
        })
        .await
        .expect("statement before the books began")
        .into_inner();
    assert_eq!(
        (before.closing.as_str(), before.balances.as_str()),
        ("0", "0")
    );
    assert!(before.balanced, "{before:?}");
    let future = viewer
        .get_statement(pb::GetStatementRequest {
            asset: "EB".into(),
            date: "9999-12-31".into(),
        })
        .await
        .expect_err("a day that has not begun");
    assert_eq!(future.code(), tonic::Code::InvalidArgument);
    assert!(
        future
            .message()
            .starts_with("date 9999-12-31 is after today"),
        "{future:?}"
    );
}

/// A bill that says a transaction paid another order than the one its
/// notification named: REFERENCE_MISMATCH, naming both references, and no
/// match.
#[tokio::test]
async fn a_bill_giving_a_payment_another_order_names_both() {
    let sandbox = tempfile::tempdir().expect("temp");
    let s = start(sandbox.path(), &[]).await;
    let (_seller, _b1, p) = channel_trade(&s, HMAC, false, 600).await;
    let (_b2, q) = buy_on(&s, HMAC).await;
    let a = notify(
        &s,
        sandbox.path(),
        HMAC,
        &payment(&p.payment_reference, "h-x", "14.00"),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let (date, at) = today();
    let bill = format!(
        "id,reference,amount,fee,status,paid_at\nh-x,{},14.00,0.08,paid,{at}\n",
        q.payment_reference
    );
    let report = import(&s, &date, &bill, &rid()).await.expect("import");
    assert_eq!((report.lines, report.matched), (1, 0), "{report:?}");
    assert_eq!(report.mistakes.len(), 1, "{report:?}");
    let m = &report.mistakes[0];
    assert_eq!(m.kind, "REFERENCE_MISMATCH");
    assert_eq!(m.reference, p.payment_reference);
    assert_eq!(m.bill_reference, q.payment_reference);
    assert_eq!(
        (m.ours_amount.as_str(), m.bill_amount.as_str()),
        ("14.00", "14.00")
    );
}
