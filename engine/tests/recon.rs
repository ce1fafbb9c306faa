//! Reconciliation (SPEC §20) in the engine: a bill matched both ways, the
//! same bill again, a missed notification applied from the bill, and
//! daily statements whose closing total is the sum of balances (across days
//! in `recon/days.rs`; findings later facts decide in `recon/later.rs`;
//! statements in `recon/statements.rs`).

mod common;
#[path = "recon/days.rs"]
mod days;
#[path = "recon/later.rs"]
mod later;
#[path = "recon/statements.rs"]
mod statements;

use common::*;
use otc_engine::ids::MS_PER_DAY;
use otc_engine::payment::{ChannelProvider, GatewayPayment, payment_reference};
use otc_engine::recon::{BillLine, BillStatus, DayWindow, MistakeKind};
use otc_engine::trade::Actor;
use otc_engine::users::MethodDetails;
use otc_engine::{Command, EventKind, MistakeId, Rejection, Timestamp, TradeId, UserId};

const S: u8 = 1;
const B: u8 = 2;
const AGENT: u8 = 9;
const CH: &str = "bank-x";

fn world() -> World {
    let mut w = World::default();
    w.deposit(user(S), "100");
    w.ok(Command::AssignChannel {
        user: user(S),
        channel: CH.into(),
        provider: ChannelProvider::Hmac,
    });
    w.bind(
        user(S),
        MethodDetails::Channel {
            channel: CH.into(),
            provider: ChannelProvider::Hmac,
        },
    );
    w.set_password(user(S));
    let spec = w.spec(user(S), "7", "100", "7", "700");
    w.publish_spec(user(S), spec);
    w
}

/// A verified payment of 14.00 for `t`, paid now: its events.
fn pay(w: &mut World, t: TradeId, txn: &str) -> Vec<otc_engine::Event> {
    let now = w.now;
    pay_at(w, t, txn, now)
}

/// A verified payment of 14.00 for `t`, paid at `paid_at` (notified now).
fn pay_at(w: &mut World, t: TradeId, txn: &str, paid_at: Timestamp) -> Vec<otc_engine::Event> {
    w.ok(notification(t, txn, "14.00", paid_at))
}

/// The gateway's verified notification of `amount` for `t`.
fn notification(t: TradeId, txn: &str, amount: &str, paid_at: Timestamp) -> Command {
    Command::GatewayPayment(GatewayPayment {
        channel: CH.into(),
        reference: payment_reference(t),
        txn_id: txn.into(),
        amount: d(amount),
        currency: "CNY".into(),
        paid_at: Some(paid_at),
        history_checked: false,
        ended: None,
    })
}

/// An agent's ApplyMissedPayment of `mistake`, without a note.
fn apply_missed(agent: UserId, mistake: MistakeId) -> Command {
    Command::ApplyMissedPayment {
        agent,
        mistake,
        note: String::new(),
        history_checked: false,
        ended: None,
    }
}

fn today(w: &World) -> DayWindow {
    let start = Timestamp(w.now.0 - w.now.0.rem_euclid(MS_PER_DAY));
    DayWindow {
        start,
        end: start.plus_ms(MS_PER_DAY),
        window_ms: minutes(30),
    }
}

/// The day after `d`, with the same window.
fn next_day(d: DayWindow) -> DayWindow {
    DayWindow {
        start: d.end,
        end: d.end.plus_ms(MS_PER_DAY),
        window_ms: d.window_ms,
    }
}

fn line(t: TradeId, txn: &str, amount: &str, at: Timestamp) -> BillLine {
    BillLine {
        txn_id: txn.into(),
        reference: payment_reference(t),
        amount: d(amount),
        status: BillStatus::Paid,
        at,
    }
}

fn record(w: &mut World, lines: &[BillLine], digest: &str) -> Vec<otc_engine::Event> {
    let report = read(w, lines);
    record_read(w, report, digest)
}

/// Today's bill of `lines` read by the matcher, not yet recorded.
fn read(w: &World, lines: &[BillLine]) -> otc_engine::recon::Report {
    let mut m = w.e.bill_matcher(CH, today(w));
    for l in lines {
        m.line(l);
    }
    m.finish()
}

/// Records a bill of today read before (things may have happened since).
fn record_read(
    w: &mut World,
    report: otc_engine::recon::Report,
    digest: &str,
) -> Vec<otc_engine::Event> {
    w.ok(Command::RecordBill {
        channel: CH.into(),
        day: "2023-11-14".into(),
        digest: digest.repeat(64)[..64].into(),
        report,
    })
}

/// A finding's references: ours (or the bill's) and the bill's other one.
fn references(w: &World, id: MistakeId) -> (String, Option<String>) {
    let f = &w.e.state().mistakes[&id].facts;
    (f.reference.clone(), f.bill_reference.clone())
}

fn mistakes(events: &[otc_engine::Event]) -> Vec<(MistakeId, MistakeKind)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ReconMistake { mistake, kind, .. } => Some((mistake, kind)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_missed_notification_is_found_and_applied_from_the_bill() {
    let mut w = world();
    let t1 = w.buy_coin(user(B), "2");
    let t2 = w.buy_coin(user(B), "2");
    pay(&mut w, t1, "tx1");
    // t2 was paid at the gateway, but its notification never arrived.
    let at = w.now;
    let bill = [line(t1, "tx1", "14.00", at), line(t2, "tx2", "14.00", at)];
    let events = record(&mut w, &bill, "a");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::MissingHere);
    // The same bill again changes nothing.
    assert!(record(&mut w, &bill, "a").is_empty());
    // Applied from the bill: paid, actor reconciliation; the finding is
    // handled once, by the agent.
    let applied = w.ok(apply_missed(user(AGENT), found[0].0));
    let handled: Vec<_> = applied
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::MistakeHandled { mistake, agent } => Some((mistake, agent)),
            _ => None,
        })
        .collect();
    assert_eq!(handled, [(found[0].0, Some(user(AGENT)))], "{applied:?}");
    let m = &w.e.state().mistakes[&found[0].0];
    let by = m.handled.as_ref().expect("handled");
    assert_eq!(by.agent, Some(user(AGENT)));
    assert!(by.note.starts_with("applied from the bill"), "{}", by.note);
    assert_eq!(w.state_of(t2), "PAID");
    let trade = w.e.trade(t2).expect("trade");
    assert!(
        trade
            .timeline
            .iter()
            .any(|e| e.actor == Actor::Reconciliation)
    );
    assert!(w.e.state().open_mistakes.is_empty());
    // A corrected bill of the day now matches cleanly.
    assert!(mistakes(&record(&mut w, &bill, "b")).is_empty());
    let r = w.err(Command::CloseMistake {
        agent: user(AGENT),
        mistake: found[0].0,
        note: "again".into(),
    });
    assert!(matches!(r, Rejection::WrongState { .. }), "{r}");
}

/// A bill line settled 0.00 (WeChat Pay: an order paid wholly by
/// merchant-funded coupons) missing here is found, but cannot be applied:
/// no money reached us. It is closed with a note.
#[test]
fn a_payment_the_bill_settled_at_zero_is_found_but_never_applied() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    let at = w.now;
    let events = record(&mut w, &[line(t, "tx0", "0.00", at)], "e");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::MissingHere);
    let r = w.err(apply_missed(user(AGENT), found[0].0));
    assert!(
        matches!(r, Rejection::Precondition(m) if m.contains("settled nothing")),
        "{r}"
    );
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT");
    w.ok(Command::CloseMistake {
        agent: user(AGENT),
        mistake: found[0].0,
        note: "coupon order, no money moved".into(),
    });
    assert!(w.e.state().open_mistakes.is_empty());
}

/// An agent who is the buyer (or seller) of the trade a bill line names
/// cannot apply it (it would mark their own trade paid) nor close it (it
/// would bury the finding). Another agent can.
#[test]
fn an_agent_cannot_apply_or_close_a_bills_finding_on_their_own_trade() {
    let mut w = world();
    let t = w.buy_coin(user(AGENT), "2");
    let at = w.now;
    let events = record(&mut w, &[line(t, "tx9", "14.00", at)], "c");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    for agent in [AGENT, S] {
        let r = w.err(Command::CloseMistake {
            agent: user(agent),
            mistake: found[0].0,
            note: "nothing to see".into(),
        });
        assert!(
            matches!(r, Rejection::NotAllowed(m) if m.contains("own trade")),
            "{r}"
        );
        let r = w.err(apply_missed(user(agent), found[0].0));
        assert!(
            matches!(r, Rejection::NotAllowed(m) if m.contains("own trade")),
            "{r}"
        );
    }
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT");
    assert_eq!(w.e.state().open_mistakes.len(), 1);
    w.ok(Command::ApplyMissedPayment {
        agent: user(AGENT + 1),
        mistake: found[0].0,
        note: "seen in the bill and in the buyer's receipt".into(),
        history_checked: false,
        ended: None,
    });
    assert_eq!(w.state_of(t), "PAID");
    let handled =
        w.e.recon_mistake(found[0].0)
            .and_then(|m| m.handled.clone());
    assert_eq!(
        handled.map(|h| (h.agent, h.note)),
        Some((
            Some(user(AGENT + 1)),
            "applied from the bill: seen in the bill and in the buyer's receipt".to_owned()
        )),
        "the agent's note is kept with the fact that it was applied"
    );
}

#[test]
fn a_refund_listed_before_its_payment_still_checks_the_payment() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    pay(&mut w, t, "tx");
    let mut refund = line(t, "tx", "14.00", w.now);
    refund.status = BillStatus::Refund;
    let mut m = w.e.bill_matcher(CH, today(&w));
    m.line(&refund);
    m.line(&line(t, "tx", "14.00", w.now));
    m.line(&line(t, "tx", "14.00", w.now)); // listed twice: counted once
    let r = m.finish();
    assert_eq!((r.lines, r.matched), (3, 1));
    assert_eq!(r.reconciled, ["tx"]);
    assert_eq!(
        r.mistakes.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [MistakeKind::StatusMismatch]
    );
}

#[test]
fn a_notification_arriving_during_the_import_at_another_amount_is_a_mismatch() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    // The bill was matched before the notification arrived...
    let mut m = w.e.bill_matcher(CH, today(&w));
    m.line(&line(t, "late", "14.00", w.now));
    let report = m.finish();
    // ...which then brought another amount.
    w.ok(Command::GatewayPayment(GatewayPayment {
        channel: CH.into(),
        reference: payment_reference(t),
        txn_id: "late".into(),
        amount: d("13.00"),
        currency: "CNY".into(),
        paid_at: Some(w.now),
        history_checked: false,
        ended: None,
    }));
    let events = w.ok(Command::RecordBill {
        channel: CH.into(),
        day: "2023-11-14".into(),
        digest: "c".repeat(64),
        report,
    });
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::AmountMismatch);
    let facts = &w.e.state().mistakes[&found[0].0].facts;
    assert_eq!(
        (facts.ours, facts.theirs),
        (Some(d("13.00")), Some(d("14.00")))
    );
}

/// A notification recorded while the bill was being matched (after the
/// matcher read the payment log, before the bill was recorded), for a
/// payment the bill does not show: missing there, as it would have been
/// had it come before the import or after it.
#[test]
fn a_payment_recorded_while_the_bill_is_matched_and_not_on_it_is_missing_there() {
    let mut w = world();
    let (t, u) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    pay(&mut w, t, "before");
    let mut m = w.e.bill_matcher(CH, today(&w));
    m.line(&line(t, "before", "14.00", w.now));
    let report = m.finish();
    // The notification lands between the matcher's read and the record.
    pay(&mut w, u, "meanwhile");
    let events = w.ok(Command::RecordBill {
        channel: CH.into(),
        day: "2023-11-14".into(),
        digest: "d".repeat(64),
        report,
    });
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::MissingThere);
    assert_eq!(w.e.state().mistakes[&found[0].0].facts.txn_id, "meanwhile");
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::BillImported { mistakes: 1, .. }))
    );
    assert_eq!(w.e.bill(CH, "2023-11-14").map(|b| b.mistakes), Some(1));
}

/// A bill's refund row for a payment no notification had brought when it
/// was matched, whose notification then lands before the bill is recorded:
/// a status mismatch that names our amount, and the payment counts as shown
/// (no other bill calls it missing there).
#[test]
fn a_refund_row_whose_payment_arrives_during_the_import_names_ours() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    let mut m = w.e.bill_matcher(CH, today(&w));
    m.line(&BillLine {
        status: BillStatus::Refund,
        ..line(t, "refunded", "14.00", w.now)
    });
    let report = m.finish();
    pay(&mut w, t, "refunded");
    let events = w.ok(Command::RecordBill {
        channel: CH.into(),
        day: "2023-11-14".into(),
        digest: "e".repeat(64),
        report,
    });
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::StatusMismatch);
    let facts = &w.e.state().mistakes[&found[0].0].facts;
    assert_eq!(facts.ours, Some(d("14.00")));
    let logged = &w.e.state().payment_log[&(CH.to_owned(), "refunded".to_owned())];
    assert!(logged.reconciled, "a bill showed it");
}

/// The same refund row, with the notification arriving after the bill
/// was recorded: the bill showed the transaction, so it is not missing
/// there, and a refund of part is no amount mismatch.
#[test]
fn a_payment_notified_after_a_bill_showed_it_refunded_is_not_missing_there() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    let mut m = w.e.bill_matcher(CH, today(&w));
    m.line(&BillLine {
        status: BillStatus::Refund,
        ..line(t, "refunded-later", "4.00", w.now)
    });
    let report = m.finish();
    let events = w.ok(Command::RecordBill {
        channel: CH.into(),
        day: "2023-11-14".into(),
        digest: "f".repeat(64),
        report,
    });
    assert_eq!(mistakes(&events).len(), 1, "the refund row: {events:?}");
    let events = pay(&mut w, t, "refunded-later");
    assert_eq!(mistakes(&events), [], "nothing more: {events:?}");
    let logged = &w.e.state().payment_log[&(CH.to_owned(), "refunded-later".to_owned())];
    assert!(logged.reconciled, "a bill showed it");
}

#[test]
fn the_payment_log_expires_across_every_channel() {
    let mut w = World::new(otc_engine::EngineConfig {
        payment_log_retention_ms: MS_PER_DAY,
        ..otc_engine::EngineConfig::default()
    });
    // Old payments on "z-last"; a new one on "a-first", which sorts first.
    let mut listings = Vec::new();
    for (seller, channel) in [(3, "z-last"), (S, "a-first")] {
        w.deposit(user(seller), "100");
        w.ok(Command::AssignChannel {
            user: user(seller),
            channel: channel.into(),
            provider: ChannelProvider::Hmac,
        });
        w.bind(
            user(seller),
            MethodDetails::Channel {
                channel: channel.into(),
                provider: ChannelProvider::Hmac,
            },
        );
        w.set_password(user(seller));
        let spec = w.spec(user(seller), "7", "100", "7", "700");
        listings.push(w.publish_spec(user(seller), spec));
    }
    let paid = |w: &mut World, channel: &str, txn: &str| {
        let t = w.buy_coin(user(B), "1");
        w.ok(Command::GatewayPayment(GatewayPayment {
            channel: channel.into(),
            reference: payment_reference(t),
            txn_id: txn.into(),
            amount: d("7.00"),
            currency: "CNY".into(),
            paid_at: Some(w.now),
            history_checked: false,
            ended: None,
        }));
    };
    // The older listing (z-last's) fills first.
    paid(&mut w, "z-last", "old-1");
    paid(&mut w, "z-last", "old-2");
    w.ok(Command::CancelListing {
        seller: user(3),
        listing: listings[0],
    });
    assert_eq!(w.e.state().payment_log.len(), 2);
    w.advance(2 * MS_PER_DAY);
    paid(&mut w, "a-first", "new");
    let s = w.e.state();
    let left: Vec<_> = s
        .payment_log
        .keys()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    assert_eq!(left, [("a-first", "new")]);
    assert_eq!((s.payment_times.len(), s.payment_expiry.len()), (1, 1));
}

/// Alipay and WeChat Pay settle CNY only: a payment their bill shows, for a
/// trade priced in another currency, is applied as what it was (a CNY
/// payment, so a wrong amount and an appeal), never as the trade's own.
#[test]
fn a_missed_payment_on_a_cny_only_channel_is_in_cny_whatever_the_trade() {
    use otc_engine::config::EngineConfig;
    use otc_engine::money::{Fiat, FiatSpec};
    use otc_engine::payment::AnomalyKind;
    let usd = Fiat::new("USD").expect("code");
    let mut config = EngineConfig::default();
    config.fiats.insert(
        usd,
        FiatSpec {
            amount_max: d("100000000"),
            price_max: d("1000000"),
        },
    );
    let mut w = World::new(config);
    w.deposit(user(S), "100");
    let channel = MethodDetails::Channel {
        channel: CH.into(),
        provider: ChannelProvider::Alipay,
    };
    w.ok(Command::AssignChannel {
        user: user(S),
        channel: CH.into(),
        provider: ChannelProvider::Alipay,
    });
    w.bind(user(S), channel);
    w.set_password(user(S));
    let mut spec = w.spec(user(S), "7", "100", "7", "700");
    spec.fiat = usd;
    w.publish_spec(user(S), spec);
    let mut request = World::buy_request(otc_engine::command::BuyAmount::Coin(d("2")));
    request.fiat = usd;
    let t = trade_of(&w.ok(Command::PlaceBuy {
        buyer: user(B),
        request,
    }));
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(t, "tx-usd", "14.00", at)], "c"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, MistakeKind::MissingHere);
    let events = w.ok(apply_missed(user(AGENT), found[0].0));
    let anomaly = events.iter().find_map(|e| match &e.kind {
        EventKind::PaymentAnomaly { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    assert!(
        matches!(anomaly, Some(AnomalyKind::WrongAmount { ref currency, .. }) if currency == "USD"),
        "{events:?}"
    );
    assert_eq!(w.state_of(t), "APPEALED", "not paid by a CNY payment");
}

/// The bill shows a payment no notification brought, and also shows it
/// refunded: the money went back, so it cannot be applied (which could
/// release the coin).
#[test]
fn a_missed_payment_the_bill_shows_refunded_cannot_be_applied() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    let at = w.now;
    let refund = BillLine {
        status: BillStatus::Refund,
        ..line(t, "tx-r", "14.00", at)
    };
    let found = mistakes(&record(
        &mut w,
        &[line(t, "tx-r", "14.00", at), refund],
        "d",
    ));
    let missing = found
        .iter()
        .find(|m| m.1 == MistakeKind::MissingHere)
        .expect("missing here");
    assert!(
        found.iter().any(|m| m.1 == MistakeKind::StatusMismatch),
        "{found:?}"
    );
    let r = w.err(apply_missed(user(AGENT), missing.0));
    assert!(
        matches!(r, Rejection::Precondition(m) if m.contains("refunded")),
        "{r}"
    );
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT");
}

/// A bill that lists one payment twice counts it once; twice at another
/// amount than ours, it disagrees with us, whichever line comes first.
#[test]
fn a_payment_listed_twice_at_another_amount_is_a_mismatch() {
    for amounts in [["14.00", "15.00"], ["15.00", "14.00"]] {
        let mut w = world();
        let t = w.buy_coin(user(B), "2");
        pay(&mut w, t, "tx2x");
        let at = w.now;
        let bill = [
            line(t, "tx2x", amounts[0], at),
            line(t, "tx2x", amounts[1], at),
        ];
        let found = mistakes(&record(&mut w, &bill, "f"));
        assert_eq!(
            found.iter().map(|m| m.1).collect::<Vec<_>>(),
            [MistakeKind::AmountMismatch],
            "{amounts:?}"
        );
    }
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    pay(&mut w, t, "tx2s");
    let at = w.now;
    let same = [line(t, "tx2s", "14.00", at), line(t, "tx2s", "14.00", at)];
    assert!(mistakes(&record(&mut w, &same, "f")).is_empty());
    // Listed many times at another amount: one finding in the report, so the
    // repeats do not spend the bill's cap on mistakes.
    let mut m = w.e.bill_matcher(CH, today(&w));
    for amount in ["14.00", "15.00", "15.00", "16.00"] {
        m.line(&line(t, "tx2s", amount, at));
    }
    assert_eq!(m.finish().mistakes.len(), 1);
}
