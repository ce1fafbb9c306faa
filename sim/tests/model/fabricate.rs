//! Fabricated engine answers for the "catches" tests: a real world to
//! stand on, then events or refusals that break one SPEC rule.

use otc_engine::trade::{Actor, TradeStateKind as S, TransitionReason as R};
use otc_engine::{Command, Event, EventKind, Rejection, Timestamp, TradeId, UserId};

use super::*;

/// A world with one fresh AWAITING_PAYMENT trade: (world, seller, buyer, trade).
pub fn with_trade() -> (World, UserId, UserId, TradeId) {
    let mut w = World::new();
    let (s, b) = (user(1), user(2));
    w.setup(s);
    w.setup(b);
    w.publish(s);
    let t = w.buy(b);
    (w, s, b, t)
}

/// The same, marked paid at T0.
pub fn with_paid_trade() -> (World, UserId, UserId, TradeId) {
    let (mut w, s, b, t) = with_trade();
    w.mark_paid(b, t).expect("paid");
    (w, s, b, t)
}

pub fn moved(
    t: TradeId,
    s: UserId,
    b: UserId,
    from: S,
    to: S,
    actor: Actor,
    reason: R,
) -> EventKind {
    EventKind::TradeTransitioned {
        trade: t,
        seller: s,
        buyer: b,
        from,
        to,
        actor,
        reason,
    }
}

pub fn events(at: Timestamp, kinds: Vec<EventKind>) -> Vec<Event> {
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            seq: 10_000 + i as u64,
            at,
            kind,
        })
        .collect()
}

/// Feeds the model a fabricated acceptance; returns its complaint.
pub fn accepted(w: &mut World, at: Timestamp, cmd: &Command, kinds: Vec<EventKind>) -> String {
    let evs = events(at, kinds);
    match w.m.step(at, cmd, Ok(&evs)) {
        Ok(()) => panic!("the model accepted a wrong engine: {} {evs:?}", cmd.name()),
        Err(why) => why,
    }
}

/// Feeds the model a fabricated refusal; returns its complaint.
pub fn refused(w: &mut World, at: Timestamp, cmd: &Command, r: Rejection) -> String {
    match w.m.step(at, cmd, Err(&r)) {
        Ok(()) => panic!("the model accepted a wrong refusal: {} {r:?}", cmd.name()),
        Err(why) => why,
    }
}

pub fn says(why: &str, words: &[&str]) {
    for word in words {
        assert!(why.contains(word), "{word:?} missing from: {why}");
    }
}
