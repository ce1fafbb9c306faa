//! Floating prices (SPEC §22): ordering across fixed and floating listings,
//! clamps, a stale reference, a reference that brings a resting buy into
//! range, trades keeping their price, rounding; and a differential property:
//! the book's order equals a naive sort by effective price, then age.

mod common;

use common::*;
use otc_engine::command::{BuyAmount, PriceSpec};
use otc_engine::ids::MS_PER_MIN;
use otc_engine::pricing::{Pricing, effective_price};
use otc_engine::{Command, EventKind, ListingId, Price, Rejection, RejectionKind};

const S1: u8 = 1;
const S2: u8 = 2;
const B: u8 = 3;

fn set_ref(w: &mut World, price: &str) {
    w.ok(Command::SetReferencePrice {
        asset: eb(),
        fiat: cny(),
        price: d(price),
        source: "test-feed".into(),
    });
}

fn floating(bps: i32, floor: Option<&str>, ceiling: Option<&str>) -> PriceSpec {
    PriceSpec::Floating {
        premium_bps: bps,
        floor: floor.map(d),
        ceiling: ceiling.map(d),
    }
}

/// Publishes 10 EB by `u` (a seller with 100 EB) at `price`.
fn publish(w: &mut World, u: u8, price: PriceSpec) -> ListingId {
    let mut spec = w.spec(user(u), "7", "10", "1", "700");
    spec.price = price;
    w.publish_spec(user(u), spec)
}

fn two_sellers() -> World {
    let mut w = World::default();
    w.seller(user(S1), "100");
    w.seller(user(S2), "100");
    w
}

fn listing_of_trade(w: &World, t: otc_engine::TradeId) -> ListingId {
    w.e.trade(t).and_then(|t| t.listing).expect("listing trade")
}

#[test]
fn the_best_effective_price_wins_across_fixed_and_floating() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    let fixed = publish(&mut w, S1, PriceSpec::Fixed(d("7.05")));
    // 7.00 × 1.005 = 7.035 → 7.04 (half-up): better than 7.05.
    let float = publish(&mut w, S2, floating(50, None, None));
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), float);
    assert_eq!(w.e.trade(t).expect("trade").price.value(), d("7.04"));
    // The reference rises: 7.10 × 1.005 = 7.1355 → 7.14; the fixed 7.05 wins.
    set_ref(&mut w, "7.10");
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), fixed);
}

#[test]
fn equal_effective_prices_go_to_the_older_listing() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    let float = publish(&mut w, S2, floating(100, None, None)); // 7.07, older
    let fixed = publish(&mut w, S1, PriceSpec::Fixed(d("7.07")));
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), float);
    // Reversed ages: the fixed one is older.
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    let fixed2 = publish(&mut w, S1, PriceSpec::Fixed(d("7.07")));
    publish(&mut w, S2, floating(100, None, None));
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), fixed2);
    assert_ne!(fixed, fixed2.min(fixed));
}

#[test]
fn floors_and_ceilings_clamp_the_price() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    // +5% would be 7.35; the ceiling holds it at 7.10, below the fixed 7.20.
    let capped = publish(&mut w, S2, floating(500, None, Some("7.10")));
    publish(&mut w, S1, PriceSpec::Fixed(d("7.20")));
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), capped);
    assert_eq!(w.e.trade(t).expect("trade").price.value(), d("7.10"));
    // −10% would be 6.30; the floor holds it at 7.15, above a fixed 7.12.
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    publish(&mut w, S2, floating(-1_000, Some("7.15"), None));
    let fixed = publish(&mut w, S1, PriceSpec::Fixed(d("7.12")));
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), fixed);
}

#[test]
fn a_stale_reference_stops_floating_listings_only() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    let float = publish(&mut w, S2, floating(-100, None, None)); // 6.93
    w.advance(6 * MS_PER_MIN); // older than the 5-minute maximum
    let request = World::buy_request(BuyAmount::Coin(d("1")));
    let r = w.err(Command::PlaceBuy {
        buyer: user(B),
        request: request.clone(),
    });
    assert!(r.to_string().contains("stale"), "{r}");
    let unpriced = w.e.unpriced_page(eb(), cny(), None, 10, w.now);
    assert_eq!(
        unpriced.iter().map(|(_, l)| l.id).collect::<Vec<_>>(),
        [float]
    );
    let fixed = publish(&mut w, S1, PriceSpec::Fixed(d("7.50")));
    // A buy the fixed listing cannot fill (over its 700 CNY maximum) is
    // still told the floating ones are out for the stale reference.
    let r = w.err(Command::PlaceBuy {
        buyer: user(B),
        request: World::buy_request(BuyAmount::Coin(d("95"))),
    });
    let why = r.to_string();
    assert!(
        why.contains("fixed-price") && why.contains("stale"),
        "{why}"
    );
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), fixed);
    set_ref(&mut w, "7.00");
    let t = w.buy_coin(user(B), "1");
    assert_eq!(listing_of_trade(&w, t), float);
}

/// A reference so small a discount rounds below one fen: that listing is
/// priced at one fen, and the listings at higher premiums are still in the
/// book (they were all hidden behind the one that had no price).
#[test]
fn a_discount_rounding_below_one_fen_hides_nothing() {
    let mut w = two_sellers();
    set_ref(&mut w, "0.0050");
    let mut tiny = |u: u8, bps: i32| {
        let mut spec = w.spec(user(u), "7", "100", "0.01", "1");
        spec.price = floating(bps, None, None);
        w.publish_spec(user(u), spec)
    };
    let low = tiny(S1, -100); // 0.00495 → 0.00
    let high = tiny(S2, 100); // 0.00505 → 0.01
    let page = w.e.book_page(eb(), cny(), None, 10, w.now);
    let seen: Vec<_> = page
        .iter()
        .map(|e| (e.listing.id, e.price.to_string()))
        .collect();
    assert_eq!(seen, [(low, "0.01".to_owned()), (high, "0.01".to_owned())]);
    assert!(w.e.unpriced_page(eb(), cny(), None, 10, w.now).is_empty());
}

/// The unpriced list pages in premium order from a place, which stays good
/// after the page's last listing leaves the book.
#[test]
fn unpriced_listings_page_from_a_place_that_outlives_its_listing() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    let a = publish(&mut w, S1, floating(-100, None, None));
    let b = publish(&mut w, S2, floating(50, None, None));
    let c = publish(&mut w, S1, floating(50, None, None));
    let d = publish(&mut w, S2, floating(200, None, None));
    w.advance(6 * MS_PER_MIN);
    let ids = |page: &[((i32, ListingId), &otc_engine::listing::Listing)]| {
        page.iter().map(|(_, l)| l.id).collect::<Vec<_>>()
    };
    let first = w.e.unpriced_page(eb(), cny(), None, 2, w.now);
    assert_eq!(ids(&first), [a, b]);
    let place = first[1].0;
    assert_eq!(place, (50, b));
    w.ok(Command::CancelListing {
        seller: user(S2),
        listing: b,
    });
    let second = w.e.unpriced_page(eb(), cny(), Some(place), 2, w.now);
    assert_eq!(ids(&second), [c, d], "the cursor's listing is gone");
    let last = w.e.unpriced_page(eb(), cny(), Some(second[1].0), 2, w.now);
    assert!(last.is_empty());
}

#[test]
fn a_new_reference_brings_a_resting_buy_into_range() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.20");
    let float = publish(&mut w, S2, floating(-100, None, None)); // 7.128 → 7.13
    let mut request = World::buy_request(BuyAmount::Coin(d("2")));
    request.max_price = Some(d("7.00"));
    request.rest = Some(None);
    w.ok(Command::PlaceBuy {
        buyer: user(B),
        request,
    });
    assert!(
        w.e.state().trades.is_empty(),
        "7.13 is above the buyer's 7.00"
    );
    // 7.05 × 0.99 = 6.9795 → 6.98: in range, matched by the reference update.
    let events = w.ok(Command::SetReferencePrice {
        asset: eb(),
        fiat: cny(),
        price: d("7.05"),
        source: "test-feed".into(),
    });
    let t = trades_of(&events);
    assert_eq!(t.len(), 1, "{events:?}");
    let trade = w.e.trade(t[0]).expect("trade").clone();
    assert_eq!(trade.listing, Some(float));
    assert_eq!(trade.price.value(), d("6.98"));
    // 2 × 6.98 = 13.96.
    assert_eq!(trade.fiat_amount.value(), d("13.96"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ReferencePriceSet { .. }))
    );
}

#[test]
fn a_trade_keeps_its_price_and_reference_after_the_reference_moves() {
    let mut w = two_sellers();
    set_ref(&mut w, "7.00");
    publish(&mut w, S2, floating(200, None, None)); // 7.14
    let t = w.buy_coin(user(B), "3");
    set_ref(&mut w, "8.00");
    let trade = w.e.trade(t).expect("trade");
    assert_eq!(trade.price.value(), d("7.14"));
    assert_eq!(trade.fiat_amount.value(), d("21.42"));
    let basis = trade.basis.as_ref().expect("basis");
    assert_eq!(basis.reference.value(), d("7.00"));
    assert_eq!(basis.premium_bps, 200);
    assert_eq!(basis.source, "test-feed");
}

#[test]
fn floating_terms_are_checked() {
    let mut w = two_sellers();
    let mut spec = w.spec(user(S1), "7", "10", "1", "700");
    spec.price = floating(100, None, None);
    let proof = w.proof(user(S1));
    let no_ref = w.err(Command::PublishListing {
        seller: user(S1),
        proof,
        spec: spec.clone(),
    });
    assert_eq!(no_ref.kind(), RejectionKind::FailedPrecondition, "{no_ref}");
    assert!(
        no_ref.to_string().contains("no fresh reference price"),
        "{no_ref}"
    );
    set_ref(&mut w, "7.00");
    for (bad, field) in [
        (floating(2_001, None, None), "premium_bps"),
        (floating(-2_001, None, None), "premium_bps"),
        (floating(0, Some("7.2"), Some("7.1")), "floor"),
        (floating(0, Some("0"), None), "floor"),
        (floating(0, Some("7.123"), None), "floor"),
        (floating(0, None, Some("7.0001")), "ceiling"),
    ] {
        spec.price = bad;
        let r = w.err(Command::PublishListing {
            seller: user(S1),
            proof,
            spec: spec.clone(),
        });
        assert!(
            matches!(r, Rejection::InvalidField { field: f, .. } | Rejection::InvalidAmount { field: f, .. } if f == field),
            "{r}"
        );
    }
    let r = w.err(Command::SetReferencePrice {
        asset: eb(),
        fiat: cny(),
        price: d("-1"),
        source: "x".into(),
    });
    assert!(
        matches!(r, Rejection::InvalidAmount { field: "price", .. }),
        "{r}"
    );
    // The source is a name, one line: no line breaks or tabs.
    for source in ["binance\nfake", "a\tb", "x\r"] {
        let r = w.err(Command::SetReferencePrice {
            asset: eb(),
            fiat: cny(),
            price: d("7"),
            source: source.into(),
        });
        assert!(
            matches!(
                r,
                Rejection::InvalidField {
                    field: "source",
                    ..
                }
            ),
            "{source:?}: {r}"
        );
    }
}

mod differential {
    //! For random books and references, the book's order is a naive sort of
    //! every active listing by (effective price, id); and the engine's taker
    //! choice is the first listing of that order that can fill the buy.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum P {
        Fixed(u16),
        Float(i16, Option<u16>, Option<u16>),
    }

    fn price() -> impl Strategy<Value = P> {
        prop_oneof![
            (650u16..760).prop_map(P::Fixed),
            (
                -2_000i16..=2_000,
                prop::option::of(640u16..760),
                prop::option::of(650u16..780)
            )
                .prop_map(|(b, f, c)| P::Float(b, f, c)),
        ]
    }

    fn cents(c: u16) -> String {
        format!("{}.{:02}", c / 100, c % 100)
    }

    /// Prices packed into a few cents, so effective prices tie often.
    fn narrow() -> impl Strategy<Value = P> {
        prop_oneof![
            (700u16..704).prop_map(P::Fixed),
            (
                -6i16..=6,
                prop::option::of(700u16..704),
                prop::option::of(700u16..704)
            )
                .prop_map(|(b, f, c)| P::Float(b, f, c)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn the_engine_picks_what_a_naive_scan_picks(
            prices in prop::collection::vec(price(), 1..40),
            reference in 600u16..800,
            moved in prop::option::of(600u16..800),
            buys in 1usize..6,
        ) {
            check(&prices, reference, moved, buys)?;
        }

        #[test]
        fn ties_go_to_the_oldest(
            prices in prop::collection::vec(narrow(), 1..40),
            moved in prop::option::of(690u16..712),
            buys in 1usize..8,
        ) {
            check(&prices, 700, moved, buys)?;
        }
    }

    /// Publishes `prices` at `reference`, moves it to `moved` (floors then
    /// bind or come free), and compares the book with a naive sort.
    fn check(
        prices: &[P],
        reference: u16,
        moved: Option<u16>,
        buys: usize,
    ) -> Result<(), TestCaseError> {
        let mut w = World::default();
        set_ref(&mut w, &cents(reference));
        let mut published = Vec::new();
        for (i, p) in prices.iter().enumerate() {
            let seller = 10 + (i % 5) as u8;
            if w.e.balance(user(seller), eb()).available.value().is_zero() {
                w.seller(user(seller), "1000");
            }
            let spec_price = match p {
                P::Fixed(c) => PriceSpec::Fixed(d(&cents(*c))),
                P::Float(b, f, c) => {
                    let (f, c) = match (f, c) {
                        (Some(f), Some(c)) if f > c => (Some(*c), Some(*f)),
                        other => (*other.0, *other.1),
                    };
                    PriceSpec::Floating {
                        premium_bps: i32::from(*b),
                        floor: f.map(|f| d(&cents(f))),
                        ceiling: c.map(|c| d(&cents(c))),
                    }
                }
            };
            let mut spec = w.spec(user(seller), "7", "1", "1", "10000");
            spec.price = spec_price;
            published.push(w.publish_spec(user(seller), spec));
        }
        if let Some(moved) = moved {
            set_ref(&mut w, &cents(moved));
        }
        // The naive order.
        let r =
            w.e.state()
                .references
                .values()
                .next()
                .expect("reference")
                .price;
        let naive = |w: &World| {
            let mut all: Vec<_> =
                w.e.state()
                    .listings
                    .values()
                    .filter(|l| l.state == otc_engine::listing::ListingState::Active)
                    .map(|l| {
                        let p = match l.pricing {
                            Pricing::Fixed(p) => p,
                            Pricing::Floating(f) => effective_price(r, &f).expect("price"),
                        };
                        (p, l.id)
                    })
                    .collect();
            all.sort();
            all
        };
        let ordered: Vec<_> = w.e.ordered((eb(), cny()), w.now).collect();
        prop_assert_eq!(&ordered, &naive(&w));
        // A page from any place (a listing's, between two, before or past
        // them all) is the naive order's, though it starts there.
        let all = naive(&w);
        let mut places = all.clone();
        for &(p, _) in &all {
            places.push((p, ListingId(0)));
            places.push((p, ListingId(u64::MAX)));
            places.push((Price::computed(p.value() + d("0.005")), ListingId(0)));
        }
        places.push((Price::computed(d("0.01")), ListingId(0)));
        places.push((Price::computed(d("99999999")), ListingId(0)));
        for place in places {
            let page: Vec<_> =
                w.e.book_page(eb(), cny(), Some(place), 4, w.now)
                    .iter()
                    .map(|e| (e.price, e.listing.id))
                    .collect();
            let want: Vec<_> = all
                .iter()
                .filter(|k| **k > place)
                .take(4)
                .copied()
                .collect();
            prop_assert_eq!(page, want, "from {:?}", place);
        }
        // Each buy of a whole listing (1 EB) takes the naive first.
        for _ in 0..buys {
            let Some(&(price, first)) = naive(&w).first() else {
                break;
            };
            let t = w.buy_coin(user(3), "1");
            let trade = w.e.trade(t).expect("trade");
            prop_assert_eq!(trade.listing, Some(first));
            prop_assert_eq!(trade.price, price);
        }
        prop_assert!(!published.is_empty());
        Ok(())
    }
}
