//! Appeals (SPEC §11): when they open, their reasons, evidence and queue,
//! customer service's claim and resolution, and how a party's own action
//! settles or withdraws one.

use super::*;

#[test]
fn appeal_opens_only_after_thirty_minutes() {
    let (mut w, _, t) = paid();
    w.advance(minutes(29));
    let r = w.err(Command::OpenAppeal {
        user: user(B),
        trade: t,
        reason: "not released".into(),
    });
    assert!(matches!(r, Rejection::AppealTooEarly { .. }), "{r}");
    assert!(
        r.to_string().contains("(30m, the configured appeal_after"),
        "{r}"
    );
    let events = w.advance(minutes(1));
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::AppealAvailable { .. }))
    );
    w.ok(Command::OpenAppeal {
        user: user(B),
        trade: t,
        reason: "not released".into(),
    });
    assert_eq!(w.state_of(t), "APPEALED");
    assert_eq!(w.e.appeal_queue().count(), 1);
}

#[test]
fn appeal_needs_a_reason() {
    let (mut w, _, t) = paid();
    w.advance(minutes(31));
    let r = w.err(Command::OpenAppeal {
        user: user(S),
        trade: t,
        reason: "  ".into(),
    });
    assert_eq!(r.kind(), RejectionKind::InvalidArgument);
}

#[test]
fn cs_resolves_release_to_the_buyer() {
    let (mut w, _, t) = appealed();
    w.ok(Command::ClaimAppeal {
        agent: user(AGENT),
        trade: t,
    });
    let events = w.ok(Command::ResolveAppeal {
        agent: user(AGENT),
        trade: t,
        resolution: Resolution::Release,
        note: "bank statement shows payment".into(),
    });
    assert!(events.iter().any(|e| matches!(
        e.kind,
        EventKind::AppealResolved {
            resolution: Resolution::Release,
            ..
        }
    )));
    assert_eq!(w.state_of(t), "RELEASED");
    assert_eq!(w.bal(user(B)), (d("10"), d("0")));
    assert_eq!(w.e.appeal_queue().count(), 0);
    let timeline = &w.e.trade(t).unwrap().timeline;
    assert!(
        timeline.iter().any(
            |e| e.actor == Actor::Support(user(AGENT)) && e.what == TimelineWhat::AppealClaimed
        )
    );
}

#[test]
fn cs_resolves_refund_to_the_listing() {
    let (mut w, l, t) = appealed();
    w.ok(Command::ResolveAppeal {
        agent: user(AGENT),
        trade: t,
        resolution: Resolution::Refund,
        note: "no payment".into(),
    });
    assert_eq!(w.state_of(t), "CANCELLED");
    assert_eq!(w.remaining(l), d("100"));
    assert_eq!(w.bal(user(B)), (d("0"), d("0")));
}

#[test]
fn resolution_needs_a_note_and_the_claim() {
    let (mut w, _, t) = appealed();
    let r = w.err(Command::ResolveAppeal {
        agent: user(AGENT),
        trade: t,
        resolution: Resolution::Release,
        note: "".into(),
    });
    assert_eq!(r.kind(), RejectionKind::InvalidArgument);
    w.ok(Command::ClaimAppeal {
        agent: user(AGENT),
        trade: t,
    });
    let r = w.err(Command::ClaimAppeal {
        agent: user(10),
        trade: t,
    });
    assert!(matches!(r, Rejection::ClaimedByOther { .. }));
    let r = w.err(Command::ResolveAppeal {
        agent: user(10),
        trade: t,
        resolution: Resolution::Refund,
        note: "x".into(),
    });
    assert!(matches!(r, Rejection::ClaimedByOther { .. }));
    w.ok(Command::UnclaimAppeal {
        agent: user(AGENT),
        trade: t,
    });
    w.ok(Command::ClaimAppeal {
        agent: user(10),
        trade: t,
    });
    w.ok(Command::ResolveAppeal {
        agent: user(10),
        trade: t,
        resolution: Resolution::Refund,
        note: "x".into(),
    });
}

/// Found by the simulator's reference model: a party could claim its own
/// appeal (it may not resolve it) and so lock every agent out of it.
#[test]
fn a_party_cannot_claim_its_own_appeal() {
    let (mut w, _, t) = appealed();
    for party in [B, S] {
        let r = w.err(Command::ClaimAppeal {
            agent: user(party),
            trade: t,
        });
        assert_eq!(r.kind(), RejectionKind::PermissionDenied, "{r:?}");
    }
    w.ok(Command::ResolveAppeal {
        agent: user(AGENT),
        trade: t,
        resolution: Resolution::Refund,
        note: "no payment".into(),
    });
}

#[test]
fn seller_release_settles_an_appeal() {
    let (mut w, _, t) = appealed();
    let events = w.release(user(S), t);
    assert!(events.iter().any(|e| matches!(
        e.kind,
        EventKind::AppealSettled {
            how: SettledBy::SellerReleased,
            ..
        }
    )));
    assert_eq!(w.state_of(t), "RELEASED");
    assert_eq!(
        w.e.appeal(t).unwrap().status(),
        otc_engine::appeal::AppealStatus::Closed
    );
}

#[test]
fn buyer_cancel_withdraws_an_appeal() {
    let (mut w, l, t) = appealed();
    let events = w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    assert!(events.iter().any(|e| matches!(
        e.kind,
        EventKind::AppealSettled {
            how: SettledBy::BuyerCancelled,
            ..
        }
    )));
    assert_eq!(w.state_of(t), "CANCELLED");
    assert_eq!(w.remaining(l), d("100"));
}

#[test]
fn system_appeals_a_paid_trade_after_24_hours() {
    let (mut w, _, t) = paid();
    w.advance(minutes(24 * 60 - 1));
    assert_eq!(w.state_of(t), "PAID");
    w.advance(minutes(1));
    assert_eq!(w.state_of(t), "APPEALED");
    assert_eq!(w.e.appeal(t).unwrap().opened_by, Actor::System);
    assert_eq!(
        w.bal(user(S)).1,
        d("100"),
        "escrow never silently times out on a paid trade"
    );
}

#[test]
fn evidence_is_bounded_and_only_for_parties_of_an_open_appeal() {
    let (mut w, _, t) = appealed();
    let file = |size: u64| otc_engine::command::AttachmentRef {
        blob_id: "blob-1".into(),
        content_type: "image/png".into(),
        size_bytes: size,
        file_name: "receipt.png".into(),
    };
    let add = |u, size: Option<u64>| Command::AddEvidence {
        user: user(u),
        trade: t,
        description: "bank receipt".into(),
        attachment: size.map(file),
    };
    let r = w.err(add(B, Some(5 * 1024 * 1024 + 1)));
    assert_eq!(r.kind(), RejectionKind::InvalidArgument);
    for _ in 0..10 {
        w.ok(add(B, Some(1024)));
    }
    let r = w.err(add(S, Some(1024)));
    assert_eq!(r.kind(), RejectionKind::ResourceExhausted, "{r}");
    w.ok(add(S, None)); // text still fits
    let r = w.err(add(7, None));
    assert_eq!(r, Rejection::TradeNotFound(t));
    assert_eq!(w.e.appeal(t).unwrap().evidence.len(), 11);
    w.release(user(S), t);
    let r = w.err(add(B, None));
    assert_eq!(r.kind(), RejectionKind::FailedPrecondition);
}

#[test]
fn appeal_too_early_names_the_window_in_force() {
    let config = EngineConfig {
        appeal_after_ms: 3_000,
        ..EngineConfig::default()
    };
    let mut w = World::new(config);
    w.seller(user(S), "100");
    w.publish(user(S), "7.00", "100", "10", "700");
    let t = w.buy_coin(user(B), "10");
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    let r = w.err(Command::OpenAppeal {
        user: user(B),
        trade: t,
        reason: "not released".into(),
    });
    assert!(
        r.to_string().contains("(3s, the configured appeal_after"),
        "{r}"
    );
}

#[test]
fn the_appeal_queue_pages_from_any_appeal_even_one_that_closed() {
    let mut w = World::default();
    w.seller(user(S), "100");
    w.publish(user(S), "7.00", "100", "10", "700");
    let trades: Vec<_> = (0..4)
        .map(|_| {
            let t = w.buy_coin(user(B), "2");
            w.ok(Command::MarkPaid {
                buyer: user(B),
                trade: t,
            });
            w.advance(minutes(1));
            t
        })
        .collect();
    w.advance(minutes(30));
    for &t in &trades {
        w.ok(Command::OpenAppeal {
            user: user(S),
            trade: t,
            reason: "fiat not received".into(),
        });
        w.advance(minutes(1));
    }
    let after = |w: &World, t| -> Vec<_> { w.e.appeal_queue_after(t).map(|a| a.trade).collect() };
    assert_eq!(after(&w, trades[0]), trades[1..].to_vec());
    // The page's last appeal closes before the next page is asked for.
    w.ok(Command::ClaimAppeal {
        agent: user(AGENT),
        trade: trades[1],
    });
    w.ok(Command::ResolveAppeal {
        agent: user(AGENT),
        trade: trades[1],
        resolution: Resolution::Refund,
        note: "no payment shown".into(),
    });
    assert_eq!(after(&w, trades[1]), trades[2..].to_vec());
    assert_eq!(after(&w, trades[3]), Vec::new());
    assert_eq!(
        after(&w, otc_engine::TradeId(999)),
        Vec::new(),
        "an unknown token starts past the end, never over"
    );
    // Once the engine forgets the closed appeal, its id alone says nothing;
    // its key (opened at, trade) still places the next page.
    let key =
        w.e.appeal(trades[1])
            .map(|a| (a.opened_at, a.trade))
            .expect("held");
    w.advance(minutes(120));
    assert!(w.e.appeal(trades[1]).is_none(), "forgotten");
    assert_eq!(after(&w, trades[1]), Vec::new());
    let past: Vec<_> =
        w.e.appeal_queue_past(key.0, key.1)
            .map(|a| a.trade)
            .collect();
    assert_eq!(past, trades[2..].to_vec());
}
