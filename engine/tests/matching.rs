//! Listings and matching (SPEC §3, §7, §8): best price then oldest, the
//! eligibility rules, resting buys, amounts and rounding, and limits.

mod common;
#[path = "matching/open_buys.rs"]
mod open_buys;

use common::*;
use otc_engine::buy::BuyOrderState;
use otc_engine::command::{BuyAmount, BuyRequest};
use otc_engine::listing::{CloseReason, ListingState};
use otc_engine::money::AmountError;
use otc_engine::users::MethodKind;
use otc_engine::{Command, EventKind, Rejection, RejectionKind};

const B: u8 = 2;

fn buy(w: &mut World, request: BuyRequest) -> Result<Vec<otc_engine::Event>, Rejection> {
    let r = w.e.apply(
        &Command::PlaceBuy {
            buyer: user(B),
            request,
        },
        w.now,
    );
    w.check();
    r
}

#[test]
fn lowest_price_first_then_oldest() {
    let mut w = World::default();
    for s in [10, 11, 12] {
        w.seller(user(s), "100");
    }
    let _dear = w.publish(user(10), "7.20", "100", "10", "700");
    let old_cheap = w.publish(user(11), "7.10", "100", "10", "700");
    let _new_cheap = w.publish(user(12), "7.10", "100", "10", "700");
    let t = w.buy_coin(user(B), "2");
    assert_eq!(w.e.trade(t).unwrap().listing, Some(old_cheap));
}

#[test]
fn own_and_blocked_listings_never_match() {
    let mut w = World::default();
    w.seller(user(10), "100");
    w.seller(user(11), "100");
    w.publish(user(10), "7.00", "100", "10", "700"); // best, but it is the buyer's own
    let blocked = w.publish(user(11), "7.05", "100", "10", "700");
    w.seller(user(12), "100");
    let fallback = w.publish(user(12), "7.10", "100", "10", "700");
    w.ok(Command::Block {
        user: user(11),
        target: user(10),
    }); // seller blocks buyer
    let events = w.ok(Command::PlaceBuy {
        buyer: user(10),
        request: World::buy_request(BuyAmount::Coin(d("2"))),
    });
    let t = trade_of(&events);
    assert_eq!(w.e.trade(t).unwrap().listing, Some(fallback));
    w.ok(Command::Unblock {
        user: user(11),
        target: user(10),
    });
    w.ok(Command::Block {
        user: user(10),
        target: user(11),
    }); // buyer blocks seller: also never matched
    let events = w.ok(Command::PlaceBuy {
        buyer: user(10),
        request: World::buy_request(BuyAmount::Coin(d("2"))),
    });
    assert_ne!(w.e.trade(trade_of(&events)).unwrap().listing, Some(blocked));
}

#[test]
fn amount_limits_price_cap_and_method_filter() {
    let mut w = World::default();
    w.seller(user(10), "100");
    let l = w.publish(user(10), "7.00", "100", "70", "140"); // 10 to 20 EB per trade
    let too_small = World::buy_request(BuyAmount::Coin(d("9")));
    assert!(matches!(buy(&mut w, too_small), Err(Rejection::NoMatch(_))));
    let too_big = World::buy_request(BuyAmount::Coin(d("21")));
    assert!(matches!(buy(&mut w, too_big), Err(Rejection::NoMatch(_))));
    let capped = BuyRequest {
        max_price: Some(d("6.99")),
        ..World::buy_request(BuyAmount::Coin(d("10")))
    };
    assert!(matches!(buy(&mut w, capped), Err(Rejection::NoMatch(_))));
    let bank_only = BuyRequest {
        methods: vec![MethodKind::Bank],
        ..World::buy_request(BuyAmount::Coin(d("10")))
    };
    assert!(matches!(buy(&mut w, bank_only), Err(Rejection::NoMatch(_))));
    let alipay = BuyRequest {
        methods: vec![MethodKind::Alipay],
        ..World::buy_request(BuyAmount::Coin(d("10")))
    };
    let t = trade_of(&buy(&mut w, alipay).unwrap());
    assert_eq!(w.e.trade(t).unwrap().listing, Some(l));
}

#[test]
fn an_empty_market_says_so() {
    let mut w = World::default();
    let r = buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).unwrap_err();
    assert!(r.to_string().contains("no active listings"), "{r}");
    assert_eq!(r.kind(), RejectionKind::FailedPrecondition);
}

#[test]
fn buying_by_fiat_rounds_coin_down_and_fiat_half_up() {
    let mut w = World::default();
    w.seller(user(10), "1000");
    w.publish(user(10), "7.15", "1000", "1", "7000");
    let events = buy(&mut w, World::buy_request(BuyAmount::Fiat(d("100")))).unwrap();
    let t = w.e.trade(trade_of(&events)).unwrap();
    assert_eq!(
        t.coin.value(),
        d("13.98601398"),
        "100 / 7.15 rounded down to 8 places"
    );
    assert_eq!(
        t.fiat_amount.value(),
        d("100.00"),
        "13.98601398 × 7.15 = 99.99999995 → 100.00 half-up"
    );
    let events = buy(&mut w, World::buy_request(BuyAmount::Coin(d("0.5")))).unwrap();
    let t = w.e.trade(trade_of(&events)).unwrap();
    assert_eq!(
        t.fiat_amount.value(),
        d("3.58"),
        "0.5 × 7.15 = 3.575 → 3.58"
    );
}

#[test]
fn bad_amounts_are_invalid_arguments_and_change_nothing() {
    let mut w = World::default();
    w.seller(user(10), "100");
    let cases = [
        ("0", AmountError::NotPositive),
        ("-1", AmountError::NotPositive),
        ("0.000000001", AmountError::TooManyDecimals { max: 8 }),
        (
            "100000001",
            AmountError::OverMaximum {
                max: d("100000000"),
            },
        ),
    ];
    for (total, why) in cases {
        let spec = w.spec(user(10), "7", total, "1", "100");
        let proof = w.proof(user(10));
        let r = w.err(Command::PublishListing {
            seller: user(10),
            proof,
            spec,
        });
        assert_eq!(
            r,
            Rejection::InvalidAmount {
                field: "total",
                reason: why
            },
            "total {total}"
        );
        assert_eq!(r.kind(), RejectionKind::InvalidArgument);
    }
    let spec = w.spec(user(10), "7.123456", "1", "1", "100");
    let proof = w.proof(user(10));
    let r = w.err(Command::PublishListing {
        seller: user(10),
        proof,
        spec,
    });
    assert!(
        matches!(r, Rejection::InvalidAmount { field: "price", .. }),
        "{r}"
    );
    let r = w.err(Command::PlaceBuy {
        buyer: user(B),
        request: World::buy_request(BuyAmount::Fiat(d("1.001"))),
    });
    assert!(
        matches!(
            r,
            Rejection::InvalidAmount {
                field: "fiat_amount",
                ..
            }
        ),
        "{r}"
    );
    let mut unknown = World::buy_request(BuyAmount::Coin(d("1")));
    unknown.asset = otc_engine::Asset::new("DOGE").unwrap();
    assert_eq!(
        w.err(Command::PlaceBuy {
            buyer: user(B),
            request: unknown
        })
        .kind(),
        RejectionKind::InvalidArgument
    );
}

#[test]
fn publishing_says_what_is_missing() {
    let mut w = World::default();
    w.deposit(user(10), "100");
    let spec = w.spec(user(10), "7", "10", "1", "70");
    let proof = w.proof(user(10));
    let r = w.err(Command::PublishListing {
        seller: user(10),
        proof,
        spec: spec.clone(),
    });
    assert!(
        r.to_string()
            .contains("bind a payment method and set a fund password"),
        "{r}"
    );
    w.bind(user(10), alipay());
    let r = w.err(Command::PublishListing {
        seller: user(10),
        proof,
        spec,
    });
    assert!(r.to_string().contains("set a fund password"), "{r}");
    let mut w = World::default();
    w.deposit(user(10), "100");
    w.set_password(user(10));
    let spec = w.spec(user(10), "7", "10", "1", "70");
    let proof = w.proof(user(10));
    let r = w.err(Command::PublishListing {
        seller: user(10),
        proof,
        spec,
    });
    assert!(r.to_string().contains("bind a payment method first"), "{r}");
}

#[test]
fn publishing_beyond_the_balance_is_refused() {
    let mut w = World::default();
    w.seller(user(10), "5");
    let spec = w.spec(user(10), "7", "6", "1", "70");
    let proof = w.proof(user(10));
    let r = w.err(Command::PublishListing {
        seller: user(10),
        proof,
        spec,
    });
    assert!(matches!(r, Rejection::InsufficientBalance { .. }));
    assert_eq!(r.kind(), RejectionKind::FailedPrecondition);
}

#[test]
fn pause_takes_a_listing_out_of_matching_and_resume_puts_it_back() {
    let mut w = World::default();
    w.seller(user(10), "100");
    let l = w.publish(user(10), "7", "100", "7", "700");
    w.ok(Command::PauseListing {
        seller: user(10),
        listing: l,
    });
    assert!(buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).is_err());
    assert_eq!(
        w.bal(user(10)),
        (d("0"), d("100")),
        "a paused listing stays escrowed"
    );
    let r = w.err(Command::PauseListing {
        seller: user(10),
        listing: l,
    });
    assert!(r.to_string().contains("PAUSED"), "{r}");
    w.ok(Command::ResumeListing {
        seller: user(10),
        listing: l,
    });
    assert!(buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).is_ok());
    let r = w.err(Command::CancelListing {
        seller: user(11),
        listing: l,
    });
    assert_eq!(
        r,
        Rejection::ListingNotFound(l),
        "only the seller may touch a listing"
    );
}

#[test]
fn a_listing_closes_when_its_remainder_is_below_the_minimum() {
    let mut w = World::default();
    w.seller(user(10), "15");
    let l = w.publish(user(10), "7", "15", "70", "700"); // min 10 EB
    w.buy_coin(user(B), "10");
    assert_eq!(
        w.e.listing(l).unwrap().state,
        ListingState::Closed(CloseReason::BelowMinimum)
    );
    assert_eq!(
        w.bal(user(10)),
        (d("5"), d("10")),
        "the unsellable 5 EB go back to available"
    );
}

#[test]
fn a_resting_buy_is_filled_across_several_listings() {
    let mut w = World::default();
    w.seller(user(10), "4");
    w.seller(user(11), "4");
    let request = BuyRequest {
        rest: Some(None),
        ..World::buy_request(BuyAmount::Coin(d("10")))
    };
    let events = buy(&mut w, request).unwrap();
    let order = events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::BuyOrderChanged {
                order,
                state: BuyOrderState::Resting,
                ..
            } => Some(order),
            _ => None,
        })
        .expect("the buy rests");
    let a = w.publish(user(10), "7", "4", "7", "700");
    assert_eq!(
        w.e.listing(a).unwrap().state,
        ListingState::Closed(CloseReason::FullyTraded)
    );
    assert_eq!(w.e.buy_order(order).unwrap().remaining.value(), d("6"));
    w.publish(user(11), "7", "4", "7", "700");
    let o = w.e.buy_order(order).unwrap();
    assert_eq!(o.remaining.value(), d("2"));
    assert_eq!(o.fills.len(), 2, "each fill is its own trade");
    w.seller(user(12), "10");
    w.publish(user(12), "7", "10", "7", "700");
    let o = w.e.buy_order(order).unwrap();
    assert_eq!(o.state, BuyOrderState::Filled);
    assert_eq!(o.fills.len(), 3);
    assert_eq!(w.e.trade(o.fills[2]).unwrap().coin.value(), d("2"));
}

#[test]
fn a_resting_buy_takes_partial_fills_at_once_and_expires() {
    let mut w = World::default();
    w.seller(user(10), "3");
    w.publish(user(10), "7", "3", "7", "700");
    let request = BuyRequest {
        rest: Some(None),
        ..World::buy_request(BuyAmount::Coin(d("10")))
    };
    let events = buy(&mut w, request).unwrap();
    assert_eq!(
        trades_of(&events).len(),
        1,
        "what the book has is taken now"
    );
    w.advance(minutes(10));
    let o = w.e.buy_orders_of(user(B), None, 10)[0];
    assert_eq!(o.state, BuyOrderState::Expired);
    assert_eq!(o.remaining.value(), d("7"));
}

#[test]
fn a_resting_buy_can_be_cancelled_and_is_bounded_per_user() {
    let mut w = World::default();
    let rest = || BuyRequest {
        rest: Some(None),
        ..World::buy_request(BuyAmount::Coin(d("1")))
    };
    for _ in 0..5 {
        buy(&mut w, rest()).unwrap();
    }
    let r = buy(&mut w, rest()).unwrap_err();
    assert_eq!(r.kind(), RejectionKind::ResourceExhausted, "{r}");
    let order = w.e.buy_orders_of(user(B), None, 1)[0].id;
    w.ok(Command::CancelBuyOrder {
        buyer: user(B),
        order,
    });
    buy(&mut w, rest()).unwrap();
    let r = w.err(Command::CancelBuyOrder {
        buyer: user(B),
        order,
    });
    assert!(r.to_string().contains("CANCELLED"), "{r}");
}

#[test]
fn three_cancels_in_a_day_stop_buying_until_the_next_utc_day() {
    let mut w = World::default();
    w.seller(user(10), "100");
    w.publish(user(10), "7", "100", "7", "700");
    let t = w.buy_coin(user(B), "1");
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    let t = w.buy_coin(user(B), "1");
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    w.buy_coin(user(B), "1");
    w.advance(minutes(15)); // a payment timeout counts too
    let r = buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).unwrap_err();
    let Rejection::CancelLimitReached { count: 3, until } = r else {
        panic!("{r}")
    };
    assert_eq!(until, w.now.next_utc_midnight());
    w.now = until;
    w.buy_coin(user(B), "1");
}

#[test]
fn live_listings_are_bounded_per_user() {
    let mut w = World::default();
    w.seller(user(10), "100");
    for _ in 0..20 {
        w.publish(user(10), "7", "1", "1", "7");
    }
    let spec = w.spec(user(10), "7", "1", "1", "7");
    let proof = w.proof(user(10));
    let r = w.err(Command::PublishListing {
        seller: user(10),
        proof,
        spec,
    });
    assert_eq!(r.kind(), RejectionKind::ResourceExhausted);
}

#[test]
fn payment_window_must_lie_within_bounds() {
    let mut w = World::default();
    w.seller(user(10), "100");
    for (minutes_asked, ok) in [(4, false), (5, true), (60, true), (61, false)] {
        let mut spec = w.spec(user(10), "7", "1", "1", "7");
        spec.payment_window_ms = Some(minutes(minutes_asked));
        let proof = w.proof(user(10));
        let cmd = Command::PublishListing {
            seller: user(10),
            proof,
            spec,
        };
        if ok {
            w.ok(cmd);
        } else {
            assert_eq!(w.err(cmd).kind(), RejectionKind::InvalidArgument);
        }
    }
}

#[test]
fn a_closed_listing_reopens_only_with_methods_still_bound() {
    let mut w = World::default();
    w.seller(user(10), "10");
    let unused = w.bind(user(10), bank());
    let l = w.publish(user(10), "7", "10", "7", "700"); // names both methods
    let t = w.buy_coin(user(B), "10"); // pays to Alipay; the listing closes fully traded
    w.ok(Command::RemoveMethod {
        user: user(10),
        method: unused,
    });
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    let listing = w.e.listing(l).unwrap();
    assert_eq!(listing.state, ListingState::Active);
    assert!(
        !listing.methods.contains(&unused),
        "the removed method is dropped on reopening"
    );
}

/// Reopening makes a listing live: a seller at the live-listings limit
/// gets the coin in `available` instead of a listing past the limit.
#[test]
fn a_fully_traded_listing_does_not_reopen_past_the_live_listings_limit() {
    let mut w = World::new(otc_engine::config::EngineConfig {
        live_listings_per_user_max: 2,
        ..Default::default()
    });
    w.seller(user(10), "30");
    let l = w.publish(user(10), "7", "10", "7", "700");
    let t = w.buy_coin(user(B), "10"); // fully traded: closed, not live
    w.publish(user(10), "8", "10", "8", "800");
    w.publish(user(10), "9", "10", "9", "900"); // two live: the limit
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(
        w.e.listing(l).unwrap().state,
        ListingState::Closed(CloseReason::FullyTraded)
    );
    assert_eq!(w.bal(user(10)), (d("10"), d("20")), "the coin is available");
}

#[test]
fn coin_returning_to_a_listing_closed_below_its_minimum_goes_to_available() {
    let mut w = World::default();
    w.seller(user(10), "15");
    let l = w.publish(user(10), "7", "15", "70", "700");
    let t = w.buy_coin(user(B), "10"); // 5 EB left, worth 35 < 70: closed, returned
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(
        w.e.listing(l).unwrap().state,
        ListingState::Closed(CloseReason::BelowMinimum)
    );
    assert_eq!(w.bal(user(10)), (d("15"), d("0")));
}

/// A seller `u` whose only method is a bank card, with a listing at `price`.
fn bank_listing(w: &mut World, u: u8, price: &str) -> otc_engine::ListingId {
    w.deposit(user(u), "100");
    w.bind(user(u), bank());
    w.set_password(user(u));
    w.publish(user(u), price, "100", "1", "700")
}

/// Three cheap listings paid by Alipay only, then a dearer one by bank.
fn alipay_then_bank(config: otc_engine::EngineConfig) -> (World, otc_engine::ListingId) {
    let mut w = World::new(config);
    for s in [10, 11, 12] {
        w.seller(user(s), "100");
        w.publish(user(s), "7.00", "100", "1", "700");
    }
    let by_bank = bank_listing(&mut w, 13, "7.50");
    (w, by_bank)
}

/// One match attempt examines at most `match_scan_max` listings, best price
/// first: a buy that the best of them cannot fill is refused saying so (not
/// a walk of the whole book), a resting one is offered no more than that,
/// and a listing published later is still offered to it.
#[test]
fn a_buy_examines_at_most_the_scan_bound() {
    let bank_only = |rest| BuyRequest {
        methods: vec![MethodKind::Bank],
        rest,
        ..World::buy_request(BuyAmount::Coin(d("1")))
    };
    let (mut w, by_bank) = alipay_then_bank(otc_engine::EngineConfig {
        match_scan_max: 3,
        ..otc_engine::EngineConfig::default()
    });
    let r = buy(&mut w, bank_only(None)).expect_err("past the bound");
    assert!(matches!(r, Rejection::NoMatch(_)), "{r}");
    assert!(r.to_string().contains("--match-scan-max"), "{r}");
    // A resting buy is offered the same three, and rests.
    let events = buy(&mut w, bank_only(Some(None))).expect("rests");
    assert!(trades_of(&events).is_empty(), "{events:?}");
    // With a bound past the bank listing, the same buy is filled there.
    let (mut wide, wide_bank) = alipay_then_bank(otc_engine::EngineConfig::default());
    let events = buy(&mut wide, bank_only(None)).expect("filled");
    let t = trade_of(&events);
    assert_eq!(wide.e.trade(t).and_then(|t| t.listing), Some(wide_bank));
    // A bank listing published now is offered to the resting buy.
    let new_bank = bank_listing(&mut w, 14, "7.60");
    assert_ne!(new_bank, by_bank);
    // The resting buy took its coin from it.
    assert_eq!(w.remaining(new_bank), d("99"));
}
