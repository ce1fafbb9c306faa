//! Open trades as buyer are bounded per user (SPEC §18): one buyer cannot
//! hold every listing of a market in unpaid trades.

use super::*;
use otc_engine::EngineConfig;

fn refused_for_open_buys(r: &Rejection) {
    assert_eq!(r.kind(), RejectionKind::ResourceExhausted, "{r}");
    assert!(
        r.to_string().contains("open trades as buyer"),
        "the message says which limit: {r}"
    );
}

#[test]
fn a_buyer_holds_at_most_the_limit_of_open_trades() {
    let mut w = World::default();
    w.seller(user(10), "100");
    w.publish(user(10), "7", "100", "7", "700");
    let trades: Vec<_> = (0..10).map(|_| w.buy_coin(user(B), "1")).collect();
    let r = buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).unwrap_err();
    refused_for_open_buys(&r);
    // Another buyer is not held up.
    w.buy_coin(user(3), "1");
    // A trade that ends frees a place: released...
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: trades[0],
    });
    w.release(user(10), trades[0]);
    w.buy_coin(user(B), "1");
    // ...or cancelled.
    buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).unwrap_err();
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: trades[1],
    });
    w.buy_coin(user(B), "1");
}

#[test]
fn a_resting_buy_stops_filling_at_the_limit_and_keeps_resting() {
    let mut w = World::new(EngineConfig {
        open_buys_per_user_max: 2,
        ..EngineConfig::default()
    });
    w.seller(user(10), "100");
    w.publish(user(10), "7", "1", "7", "7");
    let first = w.buy_coin(user(B), "1");
    // Rests for 5 coin; the book is empty now.
    let request = BuyRequest {
        rest: Some(None),
        ..World::buy_request(BuyAmount::Coin(d("5")))
    };
    let events = buy(&mut w, request).unwrap();
    assert!(trades_of(&events).is_empty());
    // Two listings come: the order takes the first, then holds two open
    // trades and passes over the second.
    let events = w.ok(Command::PublishListing {
        seller: user(10),
        proof: w.proof(user(10)),
        spec: w.spec(user(10), "7", "1", "7", "7"),
    });
    assert_eq!(trades_of(&events).len(), 1);
    let second = w.publish(user(10), "7", "1", "7", "7");
    assert_eq!(w.remaining(second), d("1"), "not taken past the limit");
    let order =
        w.e.state()
            .buy_orders
            .values()
            .find(|o| o.buyer == user(B))
            .expect("the order");
    assert_eq!(order.state, BuyOrderState::Resting);
    // A new buy is refused while at the limit, resting or not.
    let r = buy(&mut w, World::buy_request(BuyAmount::Coin(d("1")))).unwrap_err();
    refused_for_open_buys(&r);
    // A trade that ends frees a place: the resting order is offered the
    // book again and takes the listing it passed over.
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: first,
    });
    let events = w.release(user(10), first);
    assert_eq!(trades_of(&events).len(), 1, "{events:?}");
    assert_eq!(w.remaining(second), d("0"));
}
