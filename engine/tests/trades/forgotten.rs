//! Actions on a trade the engine has forgotten (SPEC §10): the shell hands
//! in history's record of it, and the engine refuses each action as it did
//! while it still held the ended trade, naming its state to a party.

use super::*;
use otc_engine::command::AttachmentRef;
use otc_engine::{EndedRecord, TradeId};

const STRANGER: u8 = 7;

/// Every action a party, a stranger or an agent can take on trade `t`.
fn actions(w: &World, t: TradeId) -> Vec<Command> {
    let file = || AttachmentRef {
        blob_id: "blob-1".into(),
        content_type: "image/png".into(),
        size_bytes: 10,
        file_name: "receipt.png".into(),
    };
    let mut out = Vec::new();
    for u in [B, S, STRANGER] {
        out.extend([
            Command::MarkPaid {
                buyer: user(u),
                trade: t,
            },
            Command::CancelTrade {
                buyer: user(u),
                trade: t,
            },
            Command::Release {
                seller: user(u),
                trade: t,
                proof: w.proof(user(u)),
            },
            Command::OpenAppeal {
                user: user(u),
                trade: t,
                reason: "coin not released".into(),
            },
            Command::OpenAppeal {
                user: user(u),
                trade: t,
                reason: " ".into(),
            },
            Command::AddEvidence {
                user: user(u),
                trade: t,
                description: "receipt".into(),
                attachment: Some(file()),
            },
            Command::PostChat {
                user: user(u),
                trade: t,
                text: "hello?".into(),
                attachment: None,
            },
        ]);
    }
    out.extend([
        Command::ClaimAppeal {
            agent: user(AGENT),
            trade: t,
        },
        Command::UnclaimAppeal {
            agent: user(AGENT),
            trade: t,
        },
        Command::ResolveAppeal {
            agent: user(AGENT),
            trade: t,
            resolution: Resolution::Release,
            note: "statement checked".into(),
        },
        Command::ResolveAppeal {
            agent: user(AGENT),
            trade: t,
            resolution: Resolution::Refund,
            note: String::new(),
        },
    ]);
    out
}

/// Ends the world's trade `t`, records how each action is refused while the
/// engine holds it, lets the engine forget it, and checks that history's
/// record of it gets the same refusals.
fn same_refusals_once_forgotten(mut w: World, t: TradeId, state: &str) {
    assert_eq!(w.state_of(t), state);
    let cmds = actions(&w, t);
    let held: Vec<Rejection> = cmds.iter().map(|c| w.err(c.clone())).collect();
    let payers = [B, S, STRANGER].map(user);
    let order_refusals: Vec<Rejection> = payers
        .iter()
        .map(|u| w.e.payment_order(*u, t, w.now).unwrap_err())
        .collect();
    let ended = w.e.trade(t).cloned().expect("held while recent");
    // Another trade's record, or one the engine still holds, decides nothing.
    for c in &cmds {
        assert_eq!(
            w.e.refusal_on_ended(c, EndedRecord::Trade(&ended), w.now),
            None,
            "{c:?}"
        );
    }
    w.advance(2 * 60 * minutes(1));
    assert!(w.e.trade(t).is_none(), "ended trades leave the working set");
    for (c, before) in cmds.iter().zip(&held) {
        // Alone, the engine no longer knows the trade (arguments it checks
        // first are refused as before).
        let alone = w.err(c.clone());
        assert!(
            alone == Rejection::TradeNotFound(t)
                || (alone == *before && alone.kind() == RejectionKind::InvalidArgument),
            "{c:?}: {alone}"
        );
        let after = w.e.refusal_on_ended(c, EndedRecord::Trade(&ended), w.now);
        assert_eq!(after.as_ref(), Some(before), "{c:?}");
        let stranger = c.actor() == Some(user(STRANGER));
        let kind = before.kind();
        if kind == RejectionKind::InvalidArgument {
            assert!(before.to_string().contains("must not be empty"), "{before}");
        } else if stranger {
            assert_eq!(kind, RejectionKind::NotFound, "{c:?}: hides the trade");
        } else {
            assert_eq!(kind, RejectionKind::FailedPrecondition, "{c:?}: {before}");
            assert!(before.to_string().contains(state), "{before} names {state}");
        }
    }
    for (u, before) in payers.iter().zip(&order_refusals) {
        assert_eq!(&w.e.payment_order_ended(*u, &ended), before);
    }
    let other = TradeId(t.0 + 1_000);
    let elsewhere = Command::MarkPaid {
        buyer: user(B),
        trade: other,
    };
    assert_eq!(
        w.e.refusal_on_ended(&elsewhere, EndedRecord::Trade(&ended), w.now),
        None
    );
    let not_on_a_trade = Command::Deposit {
        user: ended.buyer,
        asset: eb(),
        amount: d("1"),
        external_ref: "dep-forgotten".into(),
    };
    assert_eq!(
        w.e.refusal_on_ended(&not_on_a_trade, EndedRecord::Trade(&ended), w.now),
        None
    );
}

#[test]
fn a_forgotten_cancelled_trade_refuses_naming_its_state() {
    let (mut w, _, t) = matched();
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    same_refusals_once_forgotten(w, t, "CANCELLED");
}

#[test]
fn a_forgotten_trade_resolved_on_appeal_refuses_naming_its_state() {
    let (mut w, _, t) = appealed();
    w.ok(Command::ClaimAppeal {
        agent: user(AGENT),
        trade: t,
    });
    w.ok(Command::ResolveAppeal {
        agent: user(AGENT),
        trade: t,
        resolution: Resolution::Release,
        note: "bank statement shows payment".into(),
    });
    same_refusals_once_forgotten(w, t, "RELEASED");
}

#[test]
fn a_forgotten_listing_or_buy_order_refuses_naming_its_state() {
    let mut w = World::default();
    w.seller(user(S), "100");
    let l = w.publish(user(S), "7.00", "100", "10", "700");
    w.ok(Command::CancelListing {
        seller: user(S),
        listing: l,
    });
    let request = otc_engine::command::BuyRequest {
        rest: Some(None),
        ..World::buy_request(BuyAmount::Coin(d("10")))
    };
    let events = w.ok(Command::PlaceBuy {
        buyer: user(B),
        request,
    });
    let order = events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::BuyOrderChanged { order, .. } => Some(order),
            _ => None,
        })
        .expect("the buy rests");
    w.ok(Command::CancelBuyOrder {
        buyer: user(B),
        order,
    });
    let on_listing = |u: u8| {
        [
            Command::PauseListing {
                seller: user(u),
                listing: l,
            },
            Command::ResumeListing {
                seller: user(u),
                listing: l,
            },
            Command::CancelListing {
                seller: user(u),
                listing: l,
            },
        ]
    };
    let cmds: Vec<Command> = on_listing(S)
        .into_iter()
        .chain(on_listing(STRANGER))
        .chain([B, STRANGER].map(|u| Command::CancelBuyOrder {
            buyer: user(u),
            order,
        }))
        .collect();
    let held: Vec<Rejection> = cmds.iter().map(|c| w.err(c.clone())).collect();
    let listing = w.e.listing(l).cloned().expect("held while recent");
    let buy_order = w.e.buy_order(order).cloned().expect("held while recent");
    w.advance(2 * 60 * minutes(1));
    assert!(w.e.listing(l).is_none() && w.e.buy_order(order).is_none());
    for (c, before) in cmds.iter().zip(&held) {
        let record = match c {
            Command::CancelBuyOrder { .. } => EndedRecord::BuyOrder(&buy_order),
            _ => EndedRecord::Listing(&listing),
        };
        let alone = w.err(c.clone());
        assert_eq!(alone.kind(), RejectionKind::NotFound, "{c:?}");
        let after = w.e.refusal_on_ended(c, record, w.now);
        assert_eq!(after.as_ref(), Some(before), "{c:?}");
        if c.actor() == Some(user(STRANGER)) {
            assert_eq!(before.kind(), RejectionKind::NotFound, "{c:?}");
        } else {
            assert_eq!(before.kind(), RejectionKind::FailedPrecondition, "{c:?}");
            assert!(before.to_string().contains("CANCELLED"), "{before}");
        }
        // The other kind of record decides nothing.
        let other = match record {
            EndedRecord::BuyOrder(_) => EndedRecord::Listing(&listing),
            _ => EndedRecord::BuyOrder(&buy_order),
        };
        assert_eq!(w.e.refusal_on_ended(c, other, w.now), None, "{c:?}");
    }
}

/// A listing closed when fully traded: while held, its seller may still
/// mark it cancelled; once forgotten there is nothing left to cancel, and
/// every action is refused naming CLOSED.
#[test]
fn a_forgotten_closed_listing_refuses_naming_closed() {
    let mut w = World::default();
    w.seller(user(S), "10");
    let l = w.publish(user(S), "7.00", "10", "10", "700");
    let t = w.buy_coin(user(B), "10");
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    w.release(user(S), t);
    let listing = w.e.listing(l).cloned().expect("held while recent");
    assert!(
        listing.state.name().starts_with("CLOSED"),
        "{:?}",
        listing.state
    );
    w.advance(2 * 60 * minutes(1));
    assert!(w.e.listing(l).is_none(), "forgotten");
    for (cmd, action) in [
        (
            Command::CancelListing {
                seller: user(S),
                listing: l,
            },
            "cancel",
        ),
        (
            Command::PauseListing {
                seller: user(S),
                listing: l,
            },
            "pause",
        ),
    ] {
        let r =
            w.e.refusal_on_ended(&cmd, EndedRecord::Listing(&listing), w.now)
                .expect("decided from history");
        assert_eq!(r.kind(), RejectionKind::FailedPrecondition, "{r}");
        let text = r.to_string();
        assert!(text.contains("CLOSED") && text.contains(action), "{text}");
    }
}
