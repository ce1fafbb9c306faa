//! Findings later facts decide: a later bill of the day showing a payment
//! an earlier one did not, and a bill that gives a transaction another
//! order than its notification did (REFERENCE_MISMATCH), in every order of
//! bill, notification and CS.

use super::*;

/// A bill that did not show a payment (taken before its day was over, or
/// since corrected) left a MISSING_THERE; a later bill of the day that
/// shows it settles it, as a late notification settles a MISSING_HERE.
#[test]
fn a_later_bill_showing_a_payment_settles_its_missing_there() {
    let mut w = world();
    let (t, u) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    pay(&mut w, t, "early");
    let at = w.now;
    let events = record(&mut w, &[line(t, "early", "14.00", at)], "a");
    assert!(mistakes(&events).is_empty(), "{events:?}");
    // Paid later the same day, after that bill was taken: missing there.
    pay(&mut w, u, "late");
    let found: Vec<_> =
        w.e.state()
            .mistakes
            .values()
            .filter(|m| m.facts.kind == MistakeKind::MissingThere)
            .map(|m| m.id)
            .collect();
    assert_eq!(found.len(), 1);
    // The day's final bill shows both: it is settled, nothing new is found.
    let bill = [line(t, "early", "14.00", at), line(u, "late", "14.00", at)];
    let events = record(&mut w, &bill, "b");
    assert!(mistakes(&events).is_empty(), "{events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e.kind,
            EventKind::MistakeHandled { mistake, agent: None } if mistake == found[0]
        )),
        "{events:?}"
    );
    let m = &w.e.state().mistakes[&found[0]];
    let note = &m.handled.as_ref().expect("handled").note;
    assert!(
        note.starts_with("settled: bank-x's bill of 2023-11-14"),
        "{note}"
    );
    assert!(w.e.state().open_mistakes.is_empty());
}

/// A bill that gives a transaction another reference (order) than its
/// notification did: a REFERENCE_MISMATCH naming both, never a match, from
/// the import or from a notification arriving after the bill.
#[test]
fn a_transaction_paying_another_order_on_the_bill_is_a_reference_mismatch() {
    let mut w = world();
    let (p, q) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    pay(&mut w, p, "x");
    let at = w.now;
    let events = record(&mut w, &[line(q, "x", "14.00", at)], "a");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::ReferenceMismatch);
    assert_eq!(
        references(&w, found[0].0),
        (payment_reference(p), Some(payment_reference(q)))
    );
    assert_eq!(w.e.bill(CH, "2023-11-14").map(|b| b.matched), Some(0));
    // No MISSING_THERE either: the bill showed the transaction.
    assert!(
        w.e.state()
            .mistakes
            .values()
            .all(|m| m.facts.kind != MistakeKind::MissingThere)
    );
    // Listed again for another order, after a line that matched: found too.
    let mut w = world();
    let (p, q) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    pay(&mut w, p, "r");
    let at = w.now;
    let bill = [line(p, "r", "14.00", at), line(q, "r", "14.00", at)];
    let found = mistakes(&record(&mut w, &bill, "e"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, MistakeKind::ReferenceMismatch);
    assert_eq!(
        references(&w, found[0].0),
        (payment_reference(p), Some(payment_reference(q)))
    );

    // The bill first (missing here, for q), the notification after (for p).
    let mut w = world();
    let (p, q) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(q, "y", "14.00", at)], "b"));
    assert_eq!(found[0].1, MistakeKind::MissingHere);
    let events = pay(&mut w, p, "y");
    let late = mistakes(&events);
    assert_eq!(late.len(), 1, "{events:?}");
    assert_eq!(late[0].1, MistakeKind::ReferenceMismatch);
    assert_eq!(
        references(&w, late[0].0),
        (payment_reference(p), Some(payment_reference(q)))
    );
    assert!(!w.e.state().open_mistakes.contains(&found[0].0));
    assert!(w.e.state().open_mistakes.contains(&late[0].0));

    // The notification (for p) lands while the bill (for q) is matched.
    let mut w = world();
    let (p, q) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    let report = read(&w, &[line(q, "z", "14.00", w.now)]);
    pay(&mut w, p, "z");
    let events = record_read(&mut w, report, "c");
    let found = mistakes(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].1, MistakeKind::ReferenceMismatch);
    assert_eq!(
        references(&w, found[0].0),
        (payment_reference(p), Some(payment_reference(q)))
    );
}

/// The buyer of the order the bill names may not close the finding either.
#[test]
fn an_agent_party_to_the_bills_order_cannot_close_its_reference_mismatch() {
    let mut w = world();
    let p = w.buy_coin(user(B), "2");
    let q = w.buy_coin(user(AGENT), "2");
    pay(&mut w, p, "x");
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(q, "x", "14.00", at)], "a"));
    assert_eq!(found[0].1, MistakeKind::ReferenceMismatch);
    let r = w.err(Command::CloseMistake {
        agent: user(AGENT),
        mistake: found[0].0,
        note: "nothing to see".into(),
    });
    assert!(
        matches!(r, Rejection::NotAllowed(m) if m.contains("own trade")),
        "{r}"
    );
    w.ok(Command::CloseMistake {
        agent: user(AGENT + 1),
        mistake: found[0].0,
        note: "the gateway confirmed the order".into(),
    });
}

/// The bill first (a missing payment, for q), applied by CS, then the
/// gateway's own notification of the transaction naming p: a
/// REFERENCE_MISMATCH, once; the same notification again is a duplicate.
#[test]
fn a_notification_after_the_payment_was_applied_from_the_bill_for_another_order() {
    let mut w = world();
    let (p, q) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(q, "y", "14.00", at)], "a"));
    assert_eq!(found[0].1, MistakeKind::MissingHere);
    w.ok(apply_missed(user(AGENT), found[0].0));
    assert_eq!(w.state_of(q), "PAID");
    let events = pay(&mut w, p, "y");
    let disputed = mistakes(&events);
    assert_eq!(disputed.len(), 1, "{events:?}");
    assert_eq!(disputed[0].1, MistakeKind::ReferenceMismatch);
    assert_eq!(
        references(&w, disputed[0].0),
        (payment_reference(p), Some(payment_reference(q)))
    );
    // Nothing was paid by it.
    assert_eq!(w.state_of(p), "AWAITING_PAYMENT");
    let again = w.err(notification(p, "y", "14.00", at));
    assert!(matches!(again, Rejection::DuplicatePayment(_)), "{again}");
}

/// A partial bill of the day left a MISSING_THERE (the payment came after
/// it); the final bill, matched before the notification landed, shows it:
/// settled all the same.
#[test]
fn a_bill_showing_a_payment_notified_while_it_was_matched_settles_its_missing_there() {
    let mut w = world();
    let (t, u) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    pay(&mut w, t, "early");
    let at = w.now;
    assert!(mistakes(&record(&mut w, &[line(t, "early", "14.00", at)], "a")).is_empty());
    let report = read(
        &w,
        &[line(t, "early", "14.00", at), line(u, "late", "14.00", at)],
    );
    // Notified after the partial bill, while the final one is matched.
    let events = pay(&mut w, u, "late");
    let missing = mistakes(&events);
    assert_eq!(missing.len(), 1, "{events:?}");
    assert_eq!(missing[0].1, MistakeKind::MissingThere);
    let events = record_read(&mut w, report, "b");
    assert!(mistakes(&events).is_empty(), "{events:?}");
    assert!(w.e.state().open_mistakes.is_empty(), "{events:?}");
}

/// The gateway's retry of a notification the bill showed missing here lands
/// after the import: the payment applies, and its `MISSING_HERE` is settled
/// (no agent) as it would never have been recorded had the notification come
/// first; at another amount, an `AMOUNT_MISMATCH` takes its place.
#[test]
fn a_late_notification_settles_the_bills_missing_here() {
    let mut w = world();
    let (t, u) = (w.buy_coin(user(B), "2"), w.buy_coin(user(B), "2"));
    let at = w.now;
    let bill = [
        line(t, "late", "14.00", at),
        line(u, "late-other", "15.00", at),
    ];
    let found = mistakes(&record(&mut w, &bill, "d"));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(_, k)| *k == MistakeKind::MissingHere));
    let events = pay(&mut w, t, "late");
    assert_eq!(w.state_of(t), "PAID");
    assert!(
        events.iter().any(|e| matches!(
            e.kind,
            EventKind::MistakeHandled { mistake, agent: None } if mistake == found[0].0
        )),
        "{events:?}"
    );
    let m = &w.e.state().mistakes[&found[0].0];
    let handled = m.handled.as_ref().expect("settled");
    assert_eq!(handled.agent, None);
    assert!(
        handled.note.contains("at the bill's amount"),
        "{}",
        handled.note
    );
    // Nothing left to apply: the agent is told the finding is handled.
    let r = w.err(apply_missed(user(AGENT), found[0].0));
    assert!(matches!(r, Rejection::WrongState { .. }), "{r}");

    // Notified at 14.00 where the bill said 15.00: the two disagree.
    let events = pay(&mut w, u, "late-other");
    let mismatch = mistakes(&events);
    assert_eq!(mismatch.len(), 1, "{events:?}");
    assert_eq!(mismatch[0].1, MistakeKind::AmountMismatch);
    let handled = w.e.state().mistakes[&found[1].0].handled.clone();
    assert!(
        handled.is_some_and(|h| h.agent.is_none() && h.note.contains("AMOUNT_MISMATCH")),
        "the MISSING_HERE gives way to the mismatch"
    );
    assert_eq!(
        w.e.state()
            .open_mistakes
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [mismatch[0].0],
        "only the mismatch is left for CS"
    );
}

/// A finding CS closed before the notification came stays as CS left it.
#[test]
fn a_late_notification_leaves_a_finding_cs_closed_as_it_was() {
    let mut w = world();
    let t = w.buy_coin(user(B), "2");
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(t, "closed", "14.00", at)], "c"));
    w.ok(Command::CloseMistake {
        agent: user(AGENT),
        mistake: found[0].0,
        note: "asked the gateway".into(),
    });
    let events = pay(&mut w, t, "closed");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::MistakeHandled { .. })),
        "{events:?}"
    );
    let handled = w.e.state().mistakes[&found[0].0].handled.clone();
    assert_eq!(
        handled.map(|h| (h.agent, h.note)),
        Some((Some(user(AGENT)), "asked the gateway".to_owned()))
    );
}

/// The same with another amount: an AMOUNT_MISMATCH, as had the
/// notification come before CS applied the bill's line.
#[test]
fn a_notification_after_the_payment_was_applied_from_the_bill_at_another_amount() {
    let mut w = world();
    let q = w.buy_coin(user(B), "2");
    let at = w.now;
    let found = mistakes(&record(&mut w, &[line(q, "v", "14.00", at)], "a"));
    w.ok(apply_missed(user(AGENT), found[0].0));
    let events = w.ok(notification(q, "v", "13.00", at));
    let disputed = mistakes(&events);
    assert_eq!(disputed.len(), 1, "{events:?}");
    assert_eq!(disputed[0].1, MistakeKind::AmountMismatch);
    let facts = &w.e.state().mistakes[&disputed[0].0].facts;
    assert_eq!(
        (facts.ours, facts.theirs),
        (Some(d("13.00")), Some(d("14.00")))
    );
    // Again, or at the bill's amount: a duplicate, nothing new.
    for amount in ["13.00", "14.00"] {
        let r = w.err(notification(q, "v", amount, at));
        assert!(matches!(r, Rejection::DuplicatePayment(_)), "{amount}: {r}");
    }
}
