//! Fund passwords end to end (SPEC §6): a wrong one counts once however often
//! it is retried, one verified lately is remembered and forgotten when the
//! password changes, and argon2 is spent only where it can matter, in
//! bounded turns.

mod harness;

use harness::steps::*;
use harness::{Server, rid, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use tonic::Code;

/// A wrong fund password is a first result like any other: the retry gets
/// the same refusal and it counts toward the lockout once; the lock then
/// refuses even the right password, saying until when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_counts_once_however_often_it_is_retried() {
    let s = Server::start(&["--fund-password-attempts", "2"]).await;
    let (mut seller, mut buyer, trade) = open_trade(&s, "10").await;
    mark_paid(&mut buyer, &trade).await;
    let wrong = pb::ReleaseRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        fund_password: "not-the-password".into(),
    };
    let first = seller
        .release(wrong.clone())
        .await
        .expect_err("wrong password");
    assert_eq!(first.code(), Code::FailedPrecondition);
    assert!(first.message().contains("(1 wrong in a row)"), "{first:?}");
    for _ in 0..3 {
        let again = seller
            .release(wrong.clone())
            .await
            .expect_err("the same refusal");
        assert_eq!(again.message(), first.message());
        assert!(again.metadata().get("otc-replayed").is_some());
    }
    // The same id with the right password is another request: refused,
    // not taken for the first (and not counted, nor released).
    let corrected = seller
        .release(pb::ReleaseRequest {
            fund_password: PASSWORD.into(),
            ..wrong.clone()
        })
        .await
        .expect_err("the id is used");
    assert_eq!(corrected.code(), Code::AlreadyExists, "{corrected:?}");
    let second = seller
        .release(pb::ReleaseRequest {
            request_id: rid(),
            ..wrong.clone()
        })
        .await
        .expect_err("wrong again");
    assert!(second.message().contains("locked until"), "{second:?}");
    // Locked, a used id is not replayed either (a replay would tell the
    // password it was sent with from another, past the lock).
    let replay = seller.release(wrong.clone()).await.expect_err("locked");
    assert!(replay.message().contains("try again after"), "{replay:?}");
    assert!(replay.metadata().get("otc-replayed").is_none());
    let right = release(&mut seller, &trade).await.expect_err("locked");
    assert_eq!(right.code(), Code::FailedPrecondition);
    assert!(right.message().contains("try again after"), "{right:?}");
    assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Paid);
}

/// A request id's passwords are matched through a keyed tag that outlives a
/// restart: after one, the retry with the same passwords gets the first
/// result and one with another new password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_password_change_is_matched_after_a_restart() {
    let mut s = Server::start(&[]).await;
    let user = uuid::Uuid::new_v4();
    seller(&s, user, "1").await;
    let change = pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: "changed-456".into(),
        current_password: PASSWORD.into(),
    };
    let first = s
        .trading(user, Role::User)
        .await
        .set_fund_password(change.clone())
        .await;
    let first = first.expect("changed").into_inner();
    s.restart().await;
    let mut t = s.trading(user, Role::User).await;
    let retry = t
        .set_fund_password(change.clone())
        .await
        .expect("the first result");
    assert!(retry.metadata().get("otc-replayed").is_some(), "{retry:?}");
    assert_eq!(retry.into_inner(), first);
    let other = t
        .set_fund_password(pb::SetFundPasswordRequest {
            new_password: "another-789".into(),
            ..change
        })
        .await
        .expect_err("the id is used");
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    // The password is the first request's: it is the current one now.
    t.set_fund_password(pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: "final-000".into(),
        current_password: "changed-456".into(),
    })
    .await
    .expect("the first request's password is the current one");
}

/// A used request id does not become a free test of passwords: after
/// `--fund-password-attempts` retries with other passwords, the user's
/// retries of password-bearing requests with used ids are refused for the
/// lock, the right one included, so neither replay nor conflict tells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_other_passwords_lock_like_wrong_passwords() {
    let s = Server::start(&["--fund-password-attempts", "2"]).await;
    let user = uuid::Uuid::new_v4();
    let (mut t, _) = seller(&s, user, "1").await;
    let change = pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: "changed-456".into(),
        current_password: PASSWORD.into(),
    };
    t.set_fund_password(change.clone()).await.expect("changed");
    for guess in ["guess-0001", "guess-0002"] {
        let e = t
            .set_fund_password(pb::SetFundPasswordRequest {
                current_password: guess.into(),
                ..change.clone()
            })
            .await
            .expect_err("another password");
        assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    }
    let e = t
        .set_fund_password(change.clone())
        .await
        .expect_err("locked, the right one too");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("try again in"), "{e:?}");
    assert!(e.metadata().get("otc-replayed").is_none());
    // A new request goes through argon2 and the engine as ever.
    t.set_fund_password(pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: "final-000".into(),
        current_password: "changed-456".into(),
    })
    .await
    .expect("a new request id");
}

/// The counter `name` (labels included) of `otcd`'s metrics on `addr`.
async fn counter(addr: &str, name: &str) -> u64 {
    let (status, body) = harness::http_get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// How many fund-password checks `otcd` answered from a remembered password
/// (its metrics on `addr`).
async fn remembered_checks(addr: &str) -> u64 {
    counter(addr, "otc_fund_password_checks_total{by=\"remembered\"}").await
}

/// A free port for the metrics listener.
fn metrics_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").to_string()
}

/// A fund password argon2 matched on an applied command is remembered (so a
/// seller releasing trade after trade pays argon2 once) and judges the
/// user's next passwords, right or wrong, the wrong ones counted as ever;
/// one matched on a refused command is not; it is forgotten the moment the
/// password changes: the old one is then wrong, the new one right. The same
/// verdicts with remembering off, all from argon2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_fund_password_is_wrong_at_once_though_it_was_remembered() {
    for remember in [true, false] {
        let metrics = metrics_addr();
        let mut flags = vec!["--metrics-listen", metrics.as_str()];
        if !remember {
            flags.extend(["--fund-password-remember", "off"]);
        }
        let s = Server::start(&flags).await;
        // Publishing checked PASSWORD with argon2.
        let (mut seller, mut buyer, trade) = open_trade(&s, "10").await;
        assert_eq!(remembered_checks(&metrics).await, 0);
        mark_paid(&mut buyer, &trade).await;
        seller
            .set_fund_password(pb::SetFundPasswordRequest {
                request_id: rid(),
                new_password: "another-456".into(),
                current_password: PASSWORD.into(),
            })
            .await
            .expect("changed with the current password");
        let release_with = |trade: &str, password: &str| pb::ReleaseRequest {
            request_id: rid(),
            trade_id: trade.into(),
            fund_password: password.into(),
        };
        let old = seller
            .release(release_with(&trade, PASSWORD))
            .await
            .expect_err("the old password");
        assert_eq!(old.code(), Code::FailedPrecondition, "{remember}");
        assert_eq!(old.message(), "wrong fund password (1 wrong in a row)");
        // The right password on a command refused for another reason
        // counts nothing, so it is not remembered either: the next wrong
        // one goes through argon2 again (a remembered one would answer
        // faster, telling the guess was right).
        let refused = seller
            .release(release_with("T-999999", "another-456"))
            .await
            .expect_err("no such trade");
        assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
        let again = seller
            .release(release_with(&trade, "not-it-789"))
            .await
            .expect_err("wrong again");
        assert_eq!(again.message(), "wrong fund password (2 wrong in a row)");
        let expected = u64::from(remember);
        assert_eq!(remembered_checks(&metrics).await, expected, "{remember}");
        let done = seller.release(release_with(&trade, "another-456")).await;
        assert!(done.is_ok(), "{remember}: {done:?}");
        assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Released);

        let trade = buyer
            .place_buy(buy("10"))
            .await
            .expect("buy again")
            .into_inner()
            .trade_ids
            .swap_remove(0);
        mark_paid(&mut buyer, &trade).await;
        let wrong = seller
            .release(release_with(&trade, "not-it-789"))
            .await
            .expect_err("a wrong password");
        assert_eq!(wrong.message(), "wrong fund password (1 wrong in a row)");
        let done = seller.release(release_with(&trade, "another-456")).await;
        assert!(done.is_ok(), "{remember}: {done:?}");
        assert_eq!(state(&mut buyer, &trade).await, pb::TradeState::Released);
        // The change's current password, the wrong one and the last release.
        let expected = if remember { 3 } else { 0 };
        assert_eq!(remembered_checks(&metrics).await, expected, "{remember}");
    }
}

/// A change of fund password the engine would refuse (no current password
/// given, or the user locked) spends no argon2 on the new one, however many
/// arrive at once: each is refused by the engine unhashed, and the refusal
/// is the request id's first result, replayed after the lock ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doomed_password_changes_spend_no_argon2() {
    let metrics = metrics_addr();
    let s = Server::start(&[
        "--metrics-listen",
        metrics.as_str(),
        "--fund-password-lock",
        "2s",
    ])
    .await;
    let (seller, _method) = seller(&s, uuid::Uuid::new_v4(), "10").await;
    let hashes = || counter(&metrics, "otc_fund_password_hashes_total");
    assert_eq!(hashes().await, 1, "the password set up");
    let change = |current: &str| pb::SetFundPasswordRequest {
        request_id: rid(),
        new_password: "another-456".into(),
        current_password: current.into(),
    };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (mut t, req) = (seller.clone(), change(""));
        calls.spawn(async move { t.set_fund_password(req).await });
    }
    while let Some(answer) = calls.join_next().await {
        let e = answer.expect("joined").expect_err("no current password");
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("current"), "{e:?}");
    }
    assert_eq!(hashes().await, 1, "no argon2 for a doomed change");
    // Locked after five wrong ones: the right one is refused, unhashed too.
    let mut seller = seller;
    for _ in 0..5 {
        let e = seller
            .set_fund_password(change("wrong-pass-0"))
            .await
            .expect_err("wrong");
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    let locked_at = hashes().await;
    let while_locked = change(PASSWORD);
    let e = seller
        .set_fund_password(while_locked.clone())
        .await
        .expect_err("locked");
    assert!(e.message().contains("locked"), "{e:?}");
    assert_eq!(hashes().await, locked_at);
    // After the lock ends, the same request is still the refused one.
    wait_ms(2_500).await;
    let again = seller
        .set_fund_password(while_locked)
        .await
        .expect_err("the first result");
    assert_eq!(again.message(), e.message());
    assert!(again.metadata().get("otc-replayed").is_some(), "{again:?}");
    seller
        .set_fund_password(change(PASSWORD))
        .await
        .expect("a new request, unlocked");
    assert_eq!(hashes().await, locked_at + 1);
}
