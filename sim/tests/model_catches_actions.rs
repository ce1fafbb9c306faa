//! The model catches a wrong engine's state machine: fabricated answers,
//! each breaking one SPEC §10/§11/§19 rule, must make `step` report a
//! disagreement that says what broke.

#[path = "model/mod.rs"]
mod common;

use common::fabricate::*;
use common::*;
use otc_engine::command::{FundPasswordProof, Resolution};
use otc_engine::trade::{Actor, TradeStateKind as S, TransitionReason as R};
use otc_engine::{Command, EventKind, Rejection, TradeId};

#[test]
fn mark_paid_accepted_after_the_window() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now.plus_ms(15 * MIN);
    let cmd = Command::MarkPaid { buyer: b, trade: t };
    let why = accepted(
        &mut w,
        at,
        &cmd,
        vec![moved(
            t,
            s,
            b,
            S::AwaitingPayment,
            S::Paid,
            Actor::Buyer(b),
            R::MarkedPaid,
        )],
    );
    says(&why, &["payment window closed", "accepted"]);
}

#[test]
fn an_appeal_accepted_too_early() {
    let (mut w, s, b, t) = with_paid_trade();
    let at = w.now.plus_ms(30 * MIN - 1);
    let cmd = Command::OpenAppeal {
        user: s,
        trade: t,
        reason: "no fiat".into(),
    };
    let kinds = vec![
        moved(
            t,
            s,
            b,
            S::Paid,
            S::Appealed,
            Actor::Seller(s),
            R::AppealOpened,
        ),
        EventKind::AppealOpened {
            trade: t,
            seller: s,
            buyer: b,
            by: Actor::Seller(s),
        },
    ];
    says(
        &accepted(&mut w, at, &cmd, kinds),
        &["too early", "accepted"],
    );
}

#[test]
fn a_release_before_paid_accepted() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now;
    let cmd = Command::Release {
        seller: s,
        trade: t,
        proof: w.proof(s),
    };
    let why = accepted(
        &mut w,
        at,
        &cmd,
        vec![moved(
            t,
            s,
            b,
            S::AwaitingPayment,
            S::Released,
            Actor::Seller(s),
            R::SellerReleased,
        )],
    );
    says(&why, &["release", "AWAITING_PAYMENT", "accepted"]);
}

#[test]
fn a_terminal_trade_resolved_again() {
    let (mut w, s, b, t) = with_paid_trade();
    w.release(s, t).expect("released");
    let at = w.now;
    let agent = user(9);
    let cmd = Command::ResolveAppeal {
        agent,
        trade: t,
        resolution: Resolution::Refund,
        note: "n".into(),
    };
    let why = accepted(
        &mut w,
        at,
        &cmd,
        vec![moved(
            t,
            s,
            b,
            S::Released,
            S::Cancelled,
            Actor::Support(agent),
            R::ResolvedRefund,
        )],
    );
    says(&why, &["refusal", "RELEASED"]);
}

#[test]
fn a_transition_from_an_unrelated_command() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now;
    let cmd = Command::Block { user: s, target: b };
    let why = accepted(
        &mut w,
        at,
        &cmd,
        vec![moved(
            t,
            s,
            b,
            S::AwaitingPayment,
            S::Cancelled,
            Actor::Buyer(b),
            R::BuyerCancelled,
        )],
    );
    says(&why, &["unexpected", &t.to_string(), "block"]);
}

#[test]
fn an_accepted_action_with_the_wrong_actor_or_state() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now;
    let cmd = Command::MarkPaid { buyer: b, trade: t };
    let why = accepted(
        &mut w,
        at,
        &cmd,
        vec![moved(
            t,
            s,
            b,
            S::AwaitingPayment,
            S::Paid,
            Actor::System,
            R::MarkedPaid,
        )],
    );
    says(&why, &["SPEC expects →PAID by Buyer", "System"]);
    let (mut w, _, b, t) = with_trade();
    let why = accepted(
        &mut w,
        at,
        &Command::MarkPaid { buyer: b, trade: t },
        vec![],
    );
    says(&why, &["without that change"]);
}

#[test]
fn a_settlement_without_recording_how() {
    let (mut w, s, b, t) = with_paid_trade();
    w.now = w.now.plus_ms(30 * MIN);
    w.appeal(b, t).expect("appealed");
    let at = w.now;
    let cmd = Command::Release {
        seller: s,
        trade: t,
        proof: w.proof(s),
    };
    let why = accepted(
        &mut w,
        at,
        &cmd,
        vec![moved(
            t,
            s,
            b,
            S::Appealed,
            S::Released,
            Actor::Seller(s),
            R::SettledBySellerRelease,
        )],
    );
    says(&why, &["without recording how"]);
}

#[test]
fn refusals_of_the_wrong_kind_or_when_spec_says_accept() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now;
    // §10: a party's wrong action is FAILED_PRECONDITION, not NOT_FOUND.
    let why = refused(
        &mut w,
        at,
        &Command::MarkPaid { buyer: s, trade: t },
        Rejection::TradeNotFound(t),
    );
    says(&why, &["FailedPrecondition", "NotFound"]);
    // An unknown id is NOT_FOUND.
    let ghost = TradeId(999);
    let wrong = Rejection::WrongState {
        what: "trade",
        id: ghost.to_string(),
        state: "PAID",
        action: "mark paid",
    };
    says(
        &refused(
            &mut w,
            at,
            &Command::MarkPaid {
                buyer: b,
                trade: ghost,
            },
            wrong,
        ),
        &["unknown trade id"],
    );
    // A valid click refused for a state reason.
    let wrong = Rejection::WrongState {
        what: "trade",
        id: t.to_string(),
        state: "PAID",
        action: "mark paid",
    };
    says(
        &refused(&mut w, at, &Command::MarkPaid { buyer: b, trade: t }, wrong),
        &["acceptance", "refused"],
    );
    // ...but refusals outside the model's scope are fine.
    let stale = Rejection::StaleFundPasswordProof;
    w.mark_paid(b, t).expect("paid");
    let cmd = Command::Release {
        seller: s,
        trade: t,
        proof: FundPasswordProof::matched(1),
    };
    assert_eq!(w.m.step(at, &cmd, Err(&stale)), Ok(()));
}

#[test]
fn a_trade_created_with_the_wrong_window() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now;
    let request = otc_engine::command::BuyRequest {
        asset: eb(),
        fiat: cny(),
        amount: otc_engine::command::BuyAmount::Coin(d("1")),
        max_price: None,
        methods: Vec::new(),
        rest: None,
    };
    let created = EventKind::TradeCreated {
        trade: TradeId(t.0 + 100),
        seller: s,
        buyer: b,
        listing: w.e.trade(t).expect("trade").listing,
        coin: otc_engine::CoinAmount::from_trusted(d("1")),
        fiat: otc_engine::FiatAmount::from_trusted(d("7")),
        price: otc_engine::Price::computed(d("7")),
        pay_by: at.plus_ms(10 * MIN),
    };
    let why = accepted(
        &mut w,
        at,
        &Command::PlaceBuy { buyer: b, request },
        vec![created],
    );
    says(&why, &["pay_by", "listing's window 900000 ms"]);
}

#[test]
fn a_release_on_verified_payment_the_seller_never_chose() {
    let (mut w, s, b, t) = with_paid_trade();
    let at = w.now;
    let cmd = gateway("ali", t, "x1", d("7.00"));
    let kinds = vec![
        EventKind::PaymentVerified {
            trade: t,
            seller: s,
            buyer: b,
            channel: "ali".into(),
            txn_id: "x1".into(),
            amount: d("7.00"),
            actor: otc_engine::trade::Actor::Gateway,
        },
        moved(
            t,
            s,
            b,
            S::Paid,
            S::Released,
            Actor::Gateway,
            R::ReleasedOnVerifiedPayment,
        ),
    ];
    says(&accepted(&mut w, at, &cmd, kinds), &["did not opt in"]);
}
