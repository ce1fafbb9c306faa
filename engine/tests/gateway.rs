//! Verified payment channels (SPEC §19): what a gateway's proof does to a
//! trade, anomalies, duplicates (also after the engine forgot the trade),
//! and the race with the payment-window timer. Invariants are checked after
//! every command by `World`.

mod common;

use common::*;
use otc_engine::payment::{
    AnomalyKind, ChannelProvider, EndedTrade, GatewayPayment, payment_reference,
};
use otc_engine::trade::{Actor, TimelineWhat, TradeStateKind, TransitionReason};
use otc_engine::users::MethodDetails;
use otc_engine::{Command, EventKind, Rejection, Timestamp, TradeId, UserId};

const S: u8 = 1;
const B: u8 = 2;
const AGENT: u8 = 9;
const CH: &str = "alipay-main";

fn channel() -> MethodDetails {
    MethodDetails::Channel {
        channel: CH.into(),
        provider: ChannelProvider::Alipay,
    }
}

/// A seller whose only method is the channel, with 10 EB and a password.
fn channel_seller(w: &mut World) {
    w.deposit(user(S), "10");
    w.ok(Command::AssignChannel {
        user: user(S),
        channel: CH.into(),
        provider: ChannelProvider::Alipay,
    });
    w.bind(user(S), channel());
    w.set_password(user(S));
}

/// A listing of 10 EB at 7 CNY, opting in to release or not, and a trade of
/// 2 EB (14.00 CNY) on it.
fn trade(w: &mut World, release: bool) -> TradeId {
    channel_seller(w);
    let mut spec = w.spec(user(S), "7", "10", "1", "70");
    spec.release_on_verified = release;
    w.publish_spec(user(S), spec);
    w.buy_coin(user(B), "2")
}

fn pay(t: TradeId, txn: &str, amount: &str) -> GatewayPayment {
    GatewayPayment {
        channel: CH.into(),
        reference: payment_reference(t),
        txn_id: txn.into(),
        amount: d(amount),
        currency: "CNY".into(),
        paid_at: None,
        history_checked: false,
        ended: None,
    }
}

fn anomaly_kind(events: &[otc_engine::Event]) -> Option<AnomalyKind> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::PaymentAnomaly { kind, .. } => Some(kind.clone()),
        _ => None,
    })
}

fn duplicate(w: &mut World, p: GatewayPayment) {
    let r = w.err(Command::GatewayPayment(p));
    assert!(matches!(r, Rejection::DuplicatePayment(_)), "{r}");
}

#[test]
fn a_channel_is_bound_only_once_assigned() {
    let mut w = World::default();
    let r = w.err(Command::BindMethod {
        user: user(S),
        details: channel(),
    });
    assert!(matches!(r, Rejection::ChannelNotAssigned(_)), "{r}");
    w.ok(Command::AssignChannel {
        user: user(S),
        channel: CH.into(),
        provider: ChannelProvider::Alipay,
    });
    // Assigned as alipay: binding it as another provider is refused.
    let r = w.err(Command::BindMethod {
        user: user(S),
        details: MethodDetails::Channel {
            channel: CH.into(),
            provider: ChannelProvider::Hmac,
        },
    });
    assert!(matches!(r, Rejection::ChannelNotAssigned(_)), "{r}");
    w.bind(user(S), channel());
    let r = w.err(Command::AssignChannel {
        user: user(S),
        channel: "Bad Name".into(),
        provider: ChannelProvider::Alipay,
    });
    assert!(
        matches!(
            r,
            Rejection::InvalidField {
                field: "channel",
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn release_on_verified_payment_needs_a_channel() {
    let mut w = World::default();
    w.seller(user(S), "10");
    let mut spec = w.spec(user(S), "7", "10", "1", "70");
    spec.release_on_verified = true;
    let proof = w.proof(user(S));
    let r = w.err(Command::PublishListing {
        seller: user(S),
        proof,
        spec,
    });
    assert!(
        matches!(
            r,
            Rejection::InvalidField {
                field: "release_on_verified_payment",
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn a_verified_payment_marks_the_trade_paid_once() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    let events = w.ok(Command::GatewayPayment(pay(t, "2026120122001", "14.00")));
    assert_eq!(w.state_of(t), "PAID");
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::TradeTransitioned {
            actor: Actor::Gateway,
            reason: TransitionReason::GatewayVerified,
            ..
        }
    )));
    let trade = w.e.trade(t).expect("trade");
    assert_eq!(trade.payments.len(), 1);
    assert!(trade.timeline.iter().any(|e| matches!(
        &e.what,
        TimelineWhat::PaymentVerified { txn_id, .. } if txn_id == "2026120122001"
    )));
    // "14" is the same amount as "14.00": exact decimal comparison.
    duplicate(&mut w, pay(t, "2026120122001", "14"));
    // Coin stays escrowed: the seller did not opt in.
    assert_eq!(w.bal(user(S)), (d("0"), d("10")));
    w.release(user(S), t);
    assert_eq!(w.bal(user(B)), (d("2"), d("0")));
}

#[test]
fn opted_in_trades_are_paid_and_released_in_one_step() {
    let mut w = World::default();
    let t = trade(&mut w, true);
    let events = w.ok(Command::GatewayPayment(pay(t, "tx1", "14.00")));
    assert_eq!(w.state_of(t), "RELEASED");
    let reasons: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TradeTransitioned { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            TransitionReason::GatewayVerified,
            TransitionReason::ReleasedOnVerifiedPayment
        ]
    );
    assert_eq!(w.bal(user(B)), (d("2"), d("0")));
    assert_eq!(w.bal(user(S)), (d("0"), d("8")));
    duplicate(&mut w, pay(t, "tx1", "14.00"));
    assert_eq!(w.bal(user(B)), (d("2"), d("0")));
}

#[test]
fn a_trade_paid_by_click_gets_the_evidence_and_opted_in_ones_release() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    w.ok(Command::GatewayPayment(pay(t, "tx1", "14.00")));
    assert_eq!(w.state_of(t), "PAID");
    assert_eq!(w.e.trade(t).expect("trade").payments.len(), 1);

    let mut w = World::default();
    let t = trade(&mut w, true);
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    w.ok(Command::GatewayPayment(pay(t, "tx9", "14.00")));
    assert_eq!(w.state_of(t), "RELEASED");
}

#[test]
fn a_wrong_amount_is_an_anomaly_and_the_system_appeals() {
    let mut w = World::default();
    let t = trade(&mut w, true);
    let events = w.ok(Command::GatewayPayment(pay(t, "tx1", "13.99")));
    assert!(matches!(
        anomaly_kind(&events),
        Some(AnomalyKind::WrongAmount { .. })
    ));
    // Opted in, but a wrong amount never releases.
    assert_eq!(w.state_of(t), "APPEALED");
    let appeal = w.e.appeal(t).expect("appeal");
    assert_eq!(appeal.opened_by, Actor::Gateway);
    assert!(
        appeal.reason.contains("13.99") && appeal.reason.contains("14.00"),
        "{}",
        appeal.reason
    );
    assert_eq!(w.e.state().open_anomalies.len(), 1);
    duplicate(&mut w, pay(t, "tx1", "13.99"));
    // A foreign currency is a wrong amount too.
    let mut w = World::default();
    let t = trade(&mut w, false);
    let mut p = pay(t, "tx2", "14.00");
    p.currency = "USD".into();
    let events = w.ok(Command::GatewayPayment(p));
    assert!(matches!(
        anomaly_kind(&events),
        Some(AnomalyKind::WrongAmount { .. })
    ));
    assert_eq!(w.state_of(t), "APPEALED");
    // A verified 0.00 too: an anomaly, never a refusal the gateway would
    // retry for a day; a negative amount is no payment.
    let mut w = World::default();
    let t = trade(&mut w, false);
    let r = w.err(Command::GatewayPayment(pay(t, "tx3", "-1.00")));
    assert!(
        matches!(
            r,
            Rejection::InvalidField {
                field: "amount",
                ..
            }
        ),
        "{r}"
    );
    let events = w.ok(Command::GatewayPayment(pay(t, "tx3", "0.00")));
    assert!(matches!(
        anomaly_kind(&events),
        Some(AnomalyKind::WrongAmount { .. })
    ));
    assert_eq!(w.state_of(t), "APPEALED");
}

#[test]
fn payments_after_the_end_are_anomalies() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    w.advance(minutes(16));
    assert_eq!(w.state_of(t), "CANCELLED");
    let events = w.ok(Command::GatewayPayment(pay(t, "late", "14.00")));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::PaidAfterCancel));
    duplicate(&mut w, pay(t, "late", "14.00"));

    let t2 = w.buy_coin(user(B), "1");
    w.ok(Command::GatewayPayment(pay(t2, "ok", "7.00")));
    w.release(user(S), t2);
    let events = w.ok(Command::GatewayPayment(pay(t2, "second", "7.00")));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::AlreadyEnded));

    let events = w.ok(Command::GatewayPayment(GatewayPayment {
        reference: "ORDER-FROM-ELSEWHERE".into(),
        ..pay(t2, "stranger", "7.00")
    }));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::UnknownReference));
    assert_eq!(w.e.state().open_anomalies.len(), 3);
}

/// Past the window, before its timer has run: a wrong amount is an anomaly
/// as a right one is, not an appeal that would hold the seller's coin; the
/// timer then cancels the trade, whichever comes first in the group.
#[test]
fn a_wrong_amount_after_the_window_does_not_appeal_the_trade() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    w.now = w.now.plus_ms(minutes(16)); // the timer has not fired yet
    let mut late = pay(t, "late-wrong", "13.99");
    late.paid_at = Some(w.now);
    let events = w.ok(Command::GatewayPayment(late));
    assert!(
        matches!(anomaly_kind(&events), Some(AnomalyKind::WrongAmount { .. })),
        "{events:?}"
    );
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT", "no appeal");
    w.advance(0);
    assert_eq!(w.state_of(t), "CANCELLED");
    // Paid in time by the gateway's clock, notified late: still CS's.
    let t2 = w.buy_coin(user(B), "1");
    let mut in_time = pay(t2, "in-time-wrong", "6.99");
    in_time.paid_at = Some(w.now);
    w.now = w.now.plus_ms(minutes(16));
    w.ok(Command::GatewayPayment(in_time));
    assert_eq!(w.state_of(t2), "APPEALED");
}

#[test]
fn a_payment_to_another_channel_or_a_bank_trade_names_no_trade() {
    let mut w = World::default();
    w.seller(user(S), "10"); // Alipay account, not a channel.
    w.publish(user(S), "7", "10", "1", "70");
    let t = w.buy_coin(user(B), "1");
    let events = w.ok(Command::GatewayPayment(pay(t, "tx", "7.00")));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::UnknownReference));
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT");
}

#[test]
fn the_gateway_time_decides_a_race_with_the_window_timer() {
    // Paid at the gateway in time, notified after the window, before the
    // timer ran: paid. Exactly one outcome.
    let mut w = World::default();
    let t = trade(&mut w, false);
    let pay_by = w.now.plus_ms(minutes(15));
    w.now = pay_by.plus_ms(500);
    let mut p = pay(t, "tx", "14.00");
    p.paid_at = Some(Timestamp(pay_by.0 - 1_000));
    w.ok(Command::GatewayPayment(p));
    assert_eq!(w.state_of(t), "PAID");
    w.advance(0);
    assert_eq!(w.state_of(t), "PAID");

    // Paid at or after the deadline: an anomaly, and the timer cancels.
    let mut w = World::default();
    let t = trade(&mut w, false);
    w.now = pay_by;
    let mut p = pay(t, "tx", "14.00");
    p.paid_at = Some(pay_by);
    let events = w.ok(Command::GatewayPayment(p));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::PaidAfterCancel));
    w.advance(0);
    assert_eq!(w.state_of(t), "CANCELLED");
}

#[test]
fn duplicates_are_recognised_after_the_engine_forgot_the_trade() {
    let mut w = World::default();
    let t = trade(&mut w, true);
    w.ok(Command::GatewayPayment(pay(t, "tx1", "14.00")));
    w.advance(3 * 24 * 60 * minutes(1));
    assert!(w.e.trade(t).is_none(), "ended trades leave the working set");
    // The shell did not look in history (the trade was there when it
    // looked): the engine asks it to.
    // A repeat is known from the payment log (kept for reconciliation).
    duplicate(&mut w, pay(t, "tx1", "14.00"));
    let r = w.err(Command::GatewayPayment(pay(t, "tx9", "14.00")));
    assert!(matches!(r, Rejection::HistoryNeeded(id) if id == t), "{r}");
    let ended = EndedTrade {
        trade: t,
        state: TradeStateKind::Released,
        channel: Some(CH.into()),
        payments: vec![(CH.into(), "tx1".into())],
    };
    let looked = |txn: &str, ended: Option<EndedTrade>| GatewayPayment {
        history_checked: true,
        ended,
        ..pay(t, txn, "14.00")
    };
    duplicate(&mut w, looked("tx1", Some(ended.clone())));
    let events = w.ok(Command::GatewayPayment(looked("tx2", Some(ended.clone()))));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::AlreadyEnded));
    // History of a trade on another channel, or none: unknown.
    let other = EndedTrade {
        channel: Some("other".into()),
        ..ended
    };
    let events = w.ok(Command::GatewayPayment(looked("tx3", Some(other))));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::UnknownReference));
    let events = w.ok(Command::GatewayPayment(looked("tx4", None)));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::UnknownReference));
}

#[test]
fn cs_resolves_anomalies_with_a_note() {
    let mut w = World::default();
    let events = w.ok(Command::GatewayPayment(GatewayPayment {
        reference: "nobody".into(),
        ..pay(TradeId(1), "tx", "5.00")
    }));
    let id = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::PaymentAnomaly { anomaly, .. } => Some(*anomaly),
            _ => None,
        })
        .expect("anomaly");
    let agent: UserId = user(AGENT);
    let r = w.err(Command::ResolveAnomaly {
        agent,
        anomaly: id,
        note: " ".into(),
    });
    assert!(
        matches!(r, Rejection::InvalidField { field: "note", .. }),
        "{r}"
    );
    w.ok(Command::ResolveAnomaly {
        agent,
        anomaly: id,
        note: "refunded to the payer off-platform".into(),
    });
    assert!(w.e.state().open_anomalies.is_empty());
    let r = w.err(Command::ResolveAnomaly {
        agent,
        anomaly: id,
        note: "again".into(),
    });
    assert!(matches!(r, Rejection::WrongState { .. }), "{r}");
}

#[test]
fn the_payment_order_is_the_buyers_and_the_servers_amount() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    let facts = w.e.payment_order(user(B), t, w.now).expect("order");
    assert_eq!(facts.amount, d("14.00"));
    assert_eq!(facts.reference, payment_reference(t));
    assert_eq!(facts.channel, CH);
    assert!(w.e.payment_order(user(S), t, w.now).is_err());
    assert!(w.e.payment_order(user(7), t, w.now).is_err());
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    let r = w.e.payment_order(user(B), t, w.now).unwrap_err();
    assert!(matches!(r, Rejection::WrongState { .. }), "{r}");
}

#[path = "gateway/property.rs"]
mod property;

#[test]
fn a_second_payment_for_a_paid_trade_is_an_anomaly_not_evidence() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    w.ok(Command::GatewayPayment(pay(t, "tx1", "14.00")));
    let events = w.ok(Command::GatewayPayment(pay(t, "tx2", "14.00")));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::PaidTwice));
    assert_eq!(w.e.trade(t).expect("trade").payments.len(), 1);
    assert_eq!(w.state_of(t), "PAID");
    // Another amount, smaller or larger: a second payment all the same,
    // not an appeal saying the trade was underpaid.
    for (tx, amount) in [("tx3", "0.01"), ("tx4", "20.00")] {
        let events = w.ok(Command::GatewayPayment(pay(t, tx, amount)));
        assert_eq!(
            anomaly_kind(&events),
            Some(AnomalyKind::PaidTwice),
            "{amount}"
        );
        assert_eq!(w.e.trade(t).expect("trade").payments.len(), 1);
        assert_eq!(w.state_of(t), "PAID");
    }
}

#[test]
fn a_channel_has_one_owner_and_references_are_canonical() {
    let mut w = World::default();
    channel_seller(&mut w);
    let r = w.err(Command::AssignChannel {
        user: user(B),
        channel: CH.into(),
        provider: ChannelProvider::Alipay,
    });
    assert!(matches!(r, Rejection::ChannelTaken { .. }), "{r}");
    // Assigning it again to its owner changes nothing.
    assert!(
        w.ok(Command::AssignChannel {
            user: user(S),
            channel: CH.into(),
            provider: ChannelProvider::Alipay,
        })
        .is_empty()
    );
    let mut spec = w.spec(user(S), "7", "10", "1", "70");
    spec.release_on_verified = true;
    w.publish_spec(user(S), spec);
    let t = w.buy_coin(user(B), "2");
    // The same number written otherwise is not our reference.
    let events = w.ok(Command::GatewayPayment(GatewayPayment {
        reference: format!("OTC0{}", &payment_reference(t)[3..]),
        ..pay(t, "tx", "14.00")
    }));
    assert_eq!(anomaly_kind(&events), Some(AnomalyKind::UnknownReference));
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT");
}

#[test]
fn a_gateway_clock_ahead_of_ours_does_not_make_an_in_time_payment_late() {
    let mut w = World::default();
    let t = trade(&mut w, false);
    let pay_by = w.now.plus_ms(minutes(15));
    let mut p = pay(t, "tx", "14.00");
    p.paid_at = Some(pay_by.plus_ms(2_000));
    w.now = pay_by.plus_ms(-1_000);
    w.ok(Command::GatewayPayment(p));
    assert_eq!(w.state_of(t), "PAID");
}
