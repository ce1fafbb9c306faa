//! Fast match and verified payments through the real engine (SPEC §9,
//! §19), every answer fed to the model: the model must agree with each one.

#[path = "model/mod.rs"]
mod common;

use common::*;
use otc_engine::Command;
use otc_engine::{ListingId, UserId};
use otc_sim::model::Counts;

/// A seller with a listing and a buyer, set up; and the listing.
fn world() -> (World, UserId, UserId, ListingId) {
    let mut w = World::new();
    let (s, b) = (user(1), user(2));
    for u in [s, b, user(3)] {
        w.setup(u);
    }
    let first = w.publish(s);
    (w, s, b, first)
}

#[test]
fn fast_match_redispatches_with_the_merchant_window() {
    let (mut w, s, _, _) = world();
    w.merchants(&[user(20), user(21), user(22)]);
    let first = trade_of(&w.fast_sell(s, false).expect("fast sell"));
    let events = w.advance(10 * MIN + 1234);
    assert_eq!(moves(&events)[0], (first, "CANCELLED"));
    let second = trade_of(&events);
    w.advance(10 * MIN);
    let third = w.advance(10 * MIN);
    assert!(
        trades_of(&third).is_empty(),
        "three tries, then the coin goes back"
    );
    assert_eq!(w.state_of(second), "CANCELLED");
    assert_eq!(w.m.counts().cancelled, 3);
}

#[test]
fn gateway_payments_move_trades_as_section_19_says() {
    let (mut w, s, b, first) = world();
    let m = w.channel(s, "ali");
    let manual = w.spec(vec![m]);
    let auto = otc_engine::command::ListingSpec {
        release_on_verified: true,
        payment_window_ms: Some(5 * MIN),
        ..manual.clone()
    };
    w.ok(Command::CancelListing {
        seller: s,
        listing: first,
    });
    let manual = w.publish_spec(s, manual);
    // Paid through the channel; then the same notification is a duplicate.
    let t = w.buy(b);
    assert_eq!(
        moves(&w.ok(gateway("ali", t, "x1", d("7.00")))),
        [(t, "PAID")]
    );
    assert!(w.run(gateway("ali", t, "x1", d("7.00"))).is_err());
    // A wrong amount appeals it.
    let t = w.buy(b);
    assert_eq!(
        moves(&w.ok(gateway("ali", t, "x2", d("6.00")))),
        [(t, "APPEALED")]
    );
    // Paid after the window: an anomaly; the timer cancels it.
    let t = w.buy(b);
    w.now = w.now.plus_ms(15 * MIN);
    assert!(moves(&w.ok(gateway("ali", t, "x3", d("7.00")))).is_empty());
    assert_eq!(moves(&w.advance(0)), [(t, "CANCELLED")]);
    // Release on verified payment.
    w.ok(Command::CancelListing {
        seller: s,
        listing: manual,
    });
    w.publish_spec(s, auto);
    let t = w.buy(b);
    assert_eq!(
        moves(&w.ok(gateway("ali", t, "x4", d("7.00")))),
        [(t, "PAID"), (t, "RELEASED")]
    );
    let t = w.buy(b);
    w.mark_paid(b, t).expect("paid");
    assert_eq!(
        moves(&w.ok(gateway("ali", t, "x5", d("7.00")))),
        [(t, "RELEASED")]
    );
}

#[test]
fn gateway_paid_trades_run_the_appeal_timers_from_when_they_were_paid() {
    let (mut w, s, b, first) = world();
    let m = w.channel(s, "ali");
    w.ok(Command::CancelListing {
        seller: s,
        listing: first,
    });
    let spec = w.spec(vec![m]);
    w.publish_spec(s, spec);
    let t = w.buy(b);
    w.now = w.now.plus_ms(2 * MIN);
    let mut cmd = gateway("ali", t, "x1", d("7.00"));
    if let Command::GatewayPayment(p) = &mut cmd {
        p.paid_at = Some(common::T0); // the gateway says it was paid earlier
    }
    w.ok(cmd);
    // 31 minutes after the gateway's time, 29 after the notification: the
    // model expects no appeal yet (and would flag an early AppealAvailable).
    assert!(w.advance(29 * MIN).is_empty());
    assert!(w.appeal(b, t).is_err());
    assert!(!w.advance(MIN).is_empty(), "appeal eligibility fires now");
    assert!(moves(&w.advance(24 * HOUR - 30 * MIN - 1)).is_empty());
    assert_eq!(moves(&w.advance(1)), [(t, "APPEALED")]);
    assert_eq!(
        w.m.counts(),
        Counts {
            appealed: 1,
            ..Counts::default()
        }
    );
}
