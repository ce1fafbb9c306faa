//! Reconciliation across days: payments missing there near midnight, the
//! next day's bill settling yesterday's, bills in any order, and payments
//! that a bill or a late notification settled not counted again.

use super::*;

#[test]
fn payments_missing_there_wait_for_the_next_day_near_midnight() {
    let mut w = world();
    let t1 = w.buy_coin(user(B), "2");
    pay(&mut w, t1, "tx1");
    let events = record(&mut w, &[], "c");
    assert_eq!(
        mistakes(&events).iter().map(|m| m.1).collect::<Vec<_>>(),
        [MistakeKind::MissingThere]
    );
    // Near midnight: pending, not missing.
    let mut w = world();
    let day = today(&w);
    w.now = day.end.plus_ms(-minutes(10));
    let t = w.buy_coin(user(B), "2");
    pay(&mut w, t, "tx-late");
    assert!(mistakes(&record(&mut w, &[], "d")).is_empty());
    // An amount mismatch, and a refund of a payment we hold.
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    pay(&mut w, t, "tx");
    let mut refund = line(t, "tx", "14.00", w.now);
    refund.status = BillStatus::Refund;
    let events = record(&mut w, &[refund.clone()], "e");
    assert_eq!(
        mistakes(&events).iter().map(|m| m.1).collect::<Vec<_>>(),
        [MistakeKind::StatusMismatch]
    );
    let t2 = w.buy_coin(user(B), "2");
    pay(&mut w, t2, "tx2");
    // The day's corrected bill: the refund again (not repeated) and a new line.
    let wrong = line(t2, "tx2", "14.01", w.now);
    let events = record(&mut w, &[refund, wrong], "f");
    assert_eq!(
        mistakes(&events).iter().map(|m| m.1).collect::<Vec<_>>(),
        [MistakeKind::AmountMismatch]
    );
}

fn record_day(
    w: &mut World,
    day: DayWindow,
    name: &str,
    lines: &[BillLine],
    digest: &str,
) -> Vec<otc_engine::Event> {
    let mut m = w.e.bill_matcher(CH, day);
    for l in lines {
        m.line(l);
    }
    let report = m.finish();
    w.ok(Command::RecordBill {
        channel: CH.into(),
        day: name.into(),
        digest: digest.repeat(64)[..64].into(),
        report,
    })
}

#[test]
fn the_next_days_bill_settles_yesterdays_pending_payments() {
    let mut w = world();
    let d1 = today(&w);
    let d2 = next_day(d1);
    // Paid ten minutes before midnight: pending in day 1's bill.
    w.now = d1.end.plus_ms(-minutes(10));
    let late = w.buy_coin(user(B), "2");
    pay(&mut w, late, "late");
    let mistaken = w.buy_coin(user(B), "2");
    pay(&mut w, mistaken, "mm");
    // Day 1's bill lists the second with another amount, not the first.
    let mm = line(mistaken, "mm", "14.50", w.now);
    let events = record_day(&mut w, d1, "2023-11-14", &[mm], "a");
    assert_eq!(
        mistakes(&events).iter().map(|m| m.1).collect::<Vec<_>>(),
        [MistakeKind::AmountMismatch]
    );
    // Day 2's bill lists neither: the pending one is now missing there; the
    // one day 1's bill showed is not.
    w.now = d2.start.plus_ms(minutes(60));
    let events = record_day(&mut w, d2, "2023-11-15", &[], "b");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::MissingThere);
    let m = w.e.state().mistakes.get(&found[0].0).expect("mistake");
    assert_eq!(m.facts.txn_id, "late");

    // The same, when day 2's bill does list the late payment: clean.
    let mut w = world();
    let d1 = today(&w);
    let d2 = next_day(d1);
    w.now = d1.end.plus_ms(-minutes(10));
    let late = w.buy_coin(user(B), "2");
    pay(&mut w, late, "late");
    assert!(mistakes(&record_day(&mut w, d1, "2023-11-14", &[], "a")).is_empty());
    let listed = line(late, "late", "14.00", w.now);
    w.now = d2.start.plus_ms(minutes(60));
    assert!(mistakes(&record_day(&mut w, d2, "2023-11-15", &[listed], "b")).is_empty());
}

/// Bills imported out of order, or at once: a payment near midnight (in
/// the evening or just after it) is not missing there while the other
/// day's bill may still show it; once both are in and neither shows it,
/// it is, whichever came first.
#[test]
fn bills_in_any_order_or_at_once_wait_for_each_other_near_midnight() {
    for (minutes_from_midnight, listed_by) in [
        (-10, None),
        (-10, Some(1)),
        (-10, Some(2)),
        (5, None),
        (5, Some(1)),
        (5, Some(2)),
    ] {
        for order in ["day 2 first", "day 1 first", "at once"] {
            let case = format!("{minutes_from_midnight} min, listed by {listed_by:?}, {order}");
            let mut w = world();
            let d1 = today(&w);
            let d2 = next_day(d1);
            w.now = d1.end.plus_ms(minutes(minutes_from_midnight));
            let t = w.buy_coin(user(B), "2");
            pay(&mut w, t, "near");
            let near = line(t, "near", "14.00", w.now);
            w.now = d2.start.plus_ms(minutes(60));
            let lines = |day| {
                if listed_by == Some(day) {
                    vec![near.clone()]
                } else {
                    Vec::new()
                }
            };
            let report = |w: &World, d, day| {
                let mut m = w.e.bill_matcher(CH, d);
                for l in lines(day) {
                    m.line(&l);
                }
                m.finish()
            };
            let record = |w: &mut World, name: &str, report| {
                w.ok(Command::RecordBill {
                    channel: CH.into(),
                    day: name.into(),
                    digest: if name.ends_with('4') { "a" } else { "b" }.repeat(64),
                    report,
                })
            };
            let mut events = Vec::new();
            match order {
                "day 2 first" => {
                    let r2 = report(&w, d2, 2);
                    let first = record(&mut w, "2023-11-15", r2);
                    assert!(mistakes(&first).is_empty(), "{case}: day 1 is not in yet");
                    events.extend(first);
                    let r1 = report(&w, d1, 1);
                    events.extend(record(&mut w, "2023-11-14", r1));
                }
                "day 1 first" => {
                    let r1 = report(&w, d1, 1);
                    events.extend(record(&mut w, "2023-11-14", r1));
                    let r2 = report(&w, d2, 2);
                    events.extend(record(&mut w, "2023-11-15", r2));
                }
                _ => {
                    // Both read before either is recorded.
                    let (r1, r2) = (report(&w, d1, 1), report(&w, d2, 2));
                    events.extend(record(&mut w, "2023-11-15", r2));
                    events.extend(record(&mut w, "2023-11-14", r1));
                }
            }
            let found = mistakes(&events);
            if listed_by.is_some() {
                assert!(found.is_empty(), "{case}: {found:?}");
            } else {
                assert_eq!(found.len(), 1, "{case}: {found:?}");
                assert_eq!(found[0].1, MistakeKind::MissingThere, "{case}");
                // Dated the payment's day, whichever bill completed the pair.
                let day = if minutes_from_midnight < 0 {
                    "2023-11-14"
                } else {
                    "2023-11-15"
                };
                assert_eq!(w.e.state().mistakes[&found[0].0].day, day, "{case}");
                // And counted on that day's bill, not the other.
                let other = if day == "2023-11-14" {
                    "2023-11-15"
                } else {
                    "2023-11-14"
                };
                let count = |d| w.e.bill(CH, d).map(|b| b.mistakes);
                assert_eq!((count(day), count(other)), (Some(1), Some(0)), "{case}");
                // The import that found it says so, whichever day it is dated.
                let announced: u64 = events
                    .iter()
                    .filter_map(|e| match e.kind {
                        EventKind::BillImported { mistakes, .. } => Some(mistakes),
                        _ => None,
                    })
                    .sum();
                assert_eq!(announced, 1, "{case}");
            }
            let pending: u64 = ["2023-11-14", "2023-11-15"]
                .iter()
                .map(|d| w.e.bill(CH, d).expect("recorded").pending)
                .sum();
            assert!(pending <= 1, "{case}: {pending}");
        }
    }
}

#[test]
fn a_payment_applied_from_the_bill_is_not_missing_there_the_next_day() {
    let mut w = world();
    let d1 = today(&w);
    w.now = d1.end.plus_ms(-minutes(10));
    let t = w.buy_coin(user(B), "2");
    let listed = line(t, "dropped", "14.00", w.now);
    let found = mistakes(&record_day(&mut w, d1, "2023-11-14", &[listed], "a"));
    w.ok(apply_missed(user(AGENT), found[0].0));
    let d2 = next_day(d1);
    w.now = d2.start.plus_ms(minutes(60));
    assert!(mistakes(&record_day(&mut w, d2, "2023-11-15", &[], "b")).is_empty());
}

/// A payment's notification that comes after the day's bill was imported
/// (a gateway retries for a day): that bill showed it, so the next day's
/// bill, which does not, does not call it missing there.
#[test]
fn a_notification_after_its_bill_is_not_missing_there_the_next_day() {
    let mut w = world();
    let d1 = today(&w);
    let d2 = next_day(d1);
    w.now = d1.end.plus_ms(-minutes(10));
    let t = w.buy_coin(user(B), "2");
    let shown = line(t, "late", "14.00", w.now);
    let found = mistakes(&record_day(&mut w, d1, "2023-11-14", &[shown], "a"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, MistakeKind::MissingHere);
    pay(&mut w, t, "late");
    assert_eq!(w.state_of(t), "PAID");
    w.now = d2.start.plus_ms(minutes(60));
    let events = record_day(&mut w, d2, "2023-11-15", &[], "b");
    assert!(mistakes(&events).is_empty(), "{events:?}");

    // Notified at another amount than the bill showed: the two disagree.
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(t, "odd", "14.50", at)], "e"));
    assert_eq!(found.len(), 1);
    let events = pay(&mut w, t, "odd");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::AmountMismatch);
    let m = &w.e.state().mistakes[&found[0].0];
    assert_eq!(
        (m.facts.ours, m.facts.theirs),
        (Some(d("14.00")), Some(d("14.50")))
    );
}

/// A payment whose notification comes after its day's bill was imported,
/// and which that bill did not show, is missing there then (SPEC §20:
/// matching both ways), not never; near midnight it waits for the other
/// day's bill, as at an import.
#[test]
fn a_payment_notified_after_its_days_bill_and_not_on_it_is_missing_there() {
    let mut w = world();
    let t1 = w.buy_coin(user(B), "2");
    let t2 = w.buy_coin(user(B), "2");
    let t3 = w.buy_coin(user(B), "2");
    pay(&mut w, t1, "tx1");
    let at = w.now;
    assert!(mistakes(&record(&mut w, &[line(t1, "tx1", "14.00", at)], "a")).is_empty());
    let events = pay_at(&mut w, t2, "tx2", at);
    assert_eq!(
        mistakes(&events).iter().map(|m| m.1).collect::<Vec<_>>(),
        [MistakeKind::MissingThere]
    );
    assert_eq!(w.state_of(t2), "PAID", "the payment itself stands");
    let bill = w.e.bill(CH, "2023-11-14").expect("the bill");
    assert_eq!(bill.mistakes, 1, "counted on the bill");
    // Paid minutes before the day's end: the next day's bill may show it.
    let edge = today(&w).end.plus_ms(-minutes(10));
    let events = pay_at(&mut w, t3, "tx3", edge);
    assert!(mistakes(&events).is_empty(), "{events:?}");
}
