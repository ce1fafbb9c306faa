//! The model catches a wrong engine's timers: fabricated answers, each
//! breaking one SPEC §12 rule, must make `step` report a disagreement that
//! says what broke.

#[path = "model/mod.rs"]
mod common;

use common::fabricate::*;
use common::*;
use otc_engine::trade::{Actor, TradeStateKind as S, TransitionReason as R};
use otc_engine::{Command, EventKind};

#[test]
fn a_seller_cancel_accepted() {
    let (mut w, s, b, t) = with_trade();
    let cmd = Command::CancelTrade { buyer: s, trade: t };
    let at = w.now;
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
            Actor::Seller(s),
            R::BuyerCancelled,
        )],
    );
    says(
        &why,
        &[
            &t.to_string(),
            "cancel trade",
            "refusal",
            "FailedPrecondition",
            "accepted",
        ],
    );
    // Even accepted with no events at all.
    let (mut w, s, _, t) = with_trade();
    let why = accepted(
        &mut w,
        at,
        &Command::CancelTrade { buyer: s, trade: t },
        vec![],
    );
    says(&why, &["refusal", "accepted"]);
}

#[test]
fn a_payment_timeout_one_ms_early() {
    let (mut w, s, b, t) = with_trade();
    let at = w.now.plus_ms(15 * MIN - 1);
    let why = accepted(
        &mut w,
        at,
        &Command::FireDue,
        vec![moved(
            t,
            s,
            b,
            S::AwaitingPayment,
            S::Cancelled,
            Actor::System,
            R::PaymentTimeout,
        )],
    );
    says(&why, &[&t.to_string(), "early", "1 ms before"]);
}

#[test]
fn the_same_trade_timed_out_twice() {
    let (mut w, s, b, t) = with_trade();
    w.advance(15 * MIN); // the real engine cancels it, once
    let at = w.now.plus_ms(5);
    let why = accepted(
        &mut w,
        at,
        &Command::FireDue,
        vec![moved(
            t,
            s,
            b,
            S::AwaitingPayment,
            S::Cancelled,
            Actor::System,
            R::PaymentTimeout,
        )],
    );
    says(&why, &[&t.to_string(), "twice"]);
}

#[test]
fn a_due_trade_left_unfired_after_fire_due() {
    let (mut w, _, _, t) = with_trade();
    let at = w.now.plus_ms(15 * MIN);
    let why = accepted(&mut w, at, &Command::FireDue, vec![]);
    says(&why, &[&t.to_string(), "missed", "payment timeout"]);
}

#[test]
fn a_due_auto_appeal_left_unfired() {
    let (mut w, s, b, t) = with_paid_trade();
    w.advance(30 * MIN);
    let at = w.now.plus_ms(24 * HOUR);
    let why = accepted(&mut w, at, &Command::FireDue, vec![]);
    says(&why, &[&t.to_string(), "missed", "auto-appeal"]);
    let _ = (s, b);
}

#[test]
fn an_auto_appeal_before_24_hours() {
    let (mut w, s, b, t) = with_paid_trade();
    w.advance(30 * MIN);
    let at = common::T0.plus_ms(24 * HOUR - 1);
    let kinds = vec![
        moved(
            t,
            s,
            b,
            S::Paid,
            S::Appealed,
            Actor::System,
            R::AutoAppealed,
        ),
        EventKind::AppealOpened {
            trade: t,
            seller: s,
            buyer: b,
            by: Actor::System,
        },
    ];
    let why = accepted(&mut w, at, &Command::FireDue, kinds);
    says(&why, &[&t.to_string(), "early", "auto-appealed"]);
}

#[test]
fn an_appeal_availability_announced_early() {
    let (mut w, s, b, t) = with_paid_trade();
    let at = w.now.plus_ms(30 * MIN - 1);
    let why = accepted(
        &mut w,
        at,
        &Command::FireDue,
        vec![EventKind::AppealAvailable {
            trade: t,
            seller: s,
            buyer: b,
        }],
    );
    says(&why, &["early", "appealable"]);
}

#[test]
fn a_refused_fire_due() {
    let (mut w, _, _, t) = with_trade();
    let at = w.now.plus_ms(15 * MIN);
    let r = otc_engine::Rejection::field("now", "bad");
    let why = refused(&mut w, at, &Command::FireDue, r);
    says(&why, &["fire due deadlines", "acceptance"]);
    let _ = t;
}

/// The real engine against a model that believes other windows: the model
/// must notice the engine's timers firing at other times than it expects.
#[test]
fn the_real_engine_disagrees_with_a_model_of_other_windows() {
    let engine = otc_engine::EngineConfig::default();
    for (shift, word) in [(1, "early"), (-1, "missed")] {
        let model = otc_engine::EngineConfig {
            auto_appeal_after_ms: engine.auto_appeal_after_ms + shift,
            ..engine.clone()
        };
        let mut w = World::mismatched(engine.clone(), &model);
        let (s, b) = (user(1), user(2));
        w.setup(s);
        w.setup(b);
        w.publish(s);
        let t = w.buy(b);
        w.mark_paid(b, t).expect("paid");
        w.advance(30 * MIN);
        // Just before the shorter of the two deadlines nobody disagrees.
        w.now = T0.plus_ms(24 * HOUR - 2);
        w.ok(Command::FireDue);
        w.now = T0.plus_ms(24 * HOUR + shift.min(0));
        let (_, verdict) = w.try_run(&Command::FireDue);
        let why = verdict.expect_err("the model must notice");
        says(&why, &[&t.to_string(), word]);
    }
    // A payment window the engine does not use shows at creation.
    let model = otc_engine::EngineConfig {
        payment_window_ms_default: engine.payment_window_ms_default - MIN,
        ..engine.clone()
    };
    let mut w = World::mismatched(engine, &model);
    let (s, b) = (user(1), user(2));
    w.setup(s);
    w.setup(b);
    w.publish(s);
    let request = otc_engine::command::BuyRequest {
        asset: eb(),
        fiat: cny(),
        amount: otc_engine::command::BuyAmount::Coin(d("1")),
        max_price: None,
        methods: Vec::new(),
        rest: None,
    };
    let (_, verdict) = w.try_run(&Command::PlaceBuy { buyer: b, request });
    says(
        &verdict.expect_err("the model must notice"),
        &["pay_by", "840000 ms"],
    );
}
