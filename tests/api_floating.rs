//! Floating prices end to end (SPEC §22): the price feed sets a reference,
//! a floating listing is browsed at its effective price with the reference
//! it came from, a stale reference takes it out of matching (the book says
//! why), and the price_feed role may do nothing else.

mod harness;

use harness::steps::*;
use harness::{Server, rid, token, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use otc_api::proto::admin_service_client::AdminServiceClient;

fn reference(price: &str) -> pb::SetReferencePriceRequest {
    pb::SetReferencePriceRequest {
        request_id: rid(),
        asset: "EB".into(),
        fiat: "CNY".into(),
        price: price.into(),
        source: "feed-1".into(),
    }
}

fn browse() -> pb::BrowseBookRequest {
    pb::BrowseBookRequest {
        asset: "EB".into(),
        fiat: "CNY".into(),
        page_size: 10,
        page_token: String::new(),
    }
}

#[tokio::test]
async fn floating_listings_follow_the_reference_and_stop_when_it_is_stale() {
    let s = Server::start(&["--reference-max-age", "2s"]).await;
    let feed_id = uuid::Uuid::new_v4();
    let mut feed = AdminServiceClient::new(s.authed(&token(feed_id, Role::PriceFeed)).await);
    feed.set_reference_price(reference("7.00"))
        .await
        .expect("the feed sets the reference");
    // The feed may do nothing else; users may not set references.
    let e = feed
        .deposit(pb::TransferRequest {
            request_id: rid(),
            user_id: feed_id.to_string(),
            asset: "EB".into(),
            amount: "1".into(),
            external_ref: "x".into(),
        })
        .await
        .expect_err("the feed cannot deposit");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let mut as_user = AdminServiceClient::new(s.authed(&token(feed_id, Role::User)).await);
    let e = as_user
        .set_reference_price(reference("1"))
        .await
        .expect_err("users cannot");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);

    let (mut seller, method) = seller(&s, uuid::Uuid::new_v4(), "100").await;
    let mut req = listing(&method, "", "10", "7", "700", 0);
    req.floating = true;
    req.premium_bps = 150;
    req.ceiling = "7.20".into();
    let id = publish(&mut seller, req).await;
    let mut buyer = s.trading(uuid::Uuid::new_v4(), Role::User).await;
    // Fresh again, however slow the set-up was.
    feed.set_reference_price(reference("7.00"))
        .await
        .expect("reference");
    let book = buyer
        .browse_book(browse())
        .await
        .expect("browse")
        .into_inner();
    let l = &book.listings[0];
    // 7.00 × 1.015 = 7.105 → 7.11 (half-up).
    assert_eq!((l.id.as_str(), l.price.as_str()), (id.as_str(), "7.11"));
    let ceiling: rust_decimal::Decimal = l.ceiling.parse().expect("ceiling");
    assert!(l.floating && l.premium_bps == 150, "{l:?}");
    assert_eq!(ceiling, rust_decimal::Decimal::new(720, 2));
    assert_eq!(
        (l.reference_price.as_str(), book.reference_price.as_str()),
        ("7", "7")
    );
    assert!(!book.reference_stale && book.unpriced.is_empty());

    // The reference moves: the trade takes the effective price then, and keeps it.
    feed.set_reference_price(reference("7.05"))
        .await
        .expect("reference");
    let trade_id = bought(&mut buyer, "1").await;
    feed.set_reference_price(reference("6.00"))
        .await
        .expect("reference");
    let t = buyer
        .get_trade(pb::GetTradeRequest {
            trade_id: trade_id.clone(),
        })
        .await
        .expect("trade")
        .into_inner();
    // 7.05 × 1.015 = 7.15575 → 7.16.
    assert_eq!((t.price.as_str(), t.fiat_amount.as_str()), ("7.16", "7.16"));
    assert_eq!((t.reference_price.as_str(), t.premium_bps), ("7.05", 150));

    // Stale: no longer matching, and the book says why.
    wait_ms(2_300).await;
    let book = buyer
        .browse_book(browse())
        .await
        .expect("browse")
        .into_inner();
    assert!(book.listings.is_empty() && book.reference_stale, "{book:?}");
    assert_eq!(book.unpriced.len(), 1);
    assert!(
        book.unpriced[0].unpriced_reason.contains("older"),
        "{book:?}"
    );
    let e = buyer.place_buy(buy("1")).await.expect_err("stale");
    assert!(e.message().contains("stale"), "{e:?}");
}

#[tokio::test]
async fn floating_terms_are_refused_with_the_field_named() {
    let s = Server::start(&[]).await;
    let (mut seller, method) = seller(&s, uuid::Uuid::new_v4(), "100").await;
    s.admin()
        .await
        .set_reference_price(reference("7"))
        .await
        .expect("reference");
    for (change, field) in [
        (
            (|r: &mut pb::PublishListingRequest| r.premium_bps = 2_500) as fn(&mut _),
            "premium_bps",
        ),
        (|r| r.floor = "1e3".into(), "floor"),
        (|r| r.price = "7".into(), "price"),
    ] {
        let mut req = listing(&method, "", "10", "7", "700", 0);
        req.floating = true;
        change(&mut req);
        let e = seller.publish_listing(req).await.expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {e:?}");
    }
    let mut req = listing(&method, "7", "10", "7", "700", 0);
    req.premium_bps = 10;
    let e = seller
        .publish_listing(req)
        .await
        .expect_err("fixed with a premium");
    assert!(e.message().contains("floating"), "{e:?}");
}

/// A server whose references go stale after 2 s, the reference at 7.00 (by
/// the admin client returned), and a seller with 100 EB and a method.
async fn market_at_seven() -> (
    Server,
    AdminServiceClient<harness::Authed>,
    otc_api::proto::trading_service_client::TradingServiceClient<harness::Authed>,
    String,
) {
    let s = Server::start(&["--reference-max-age", "2s"]).await;
    let mut admin = s.admin().await;
    admin
        .set_reference_price(reference("7.00"))
        .await
        .expect("reference");
    let (seller, method) = seller(&s, uuid::Uuid::new_v4(), "100").await;
    (s, admin, seller, method)
}

/// "Load more" on the book goes on after the page's last listing leaves the
/// matching order (here its reference goes stale): the token holds its place
/// in the book, not only its id.
#[tokio::test]
async fn the_books_next_page_outlives_its_last_listing_going_unpriced() {
    let (s, mut admin, mut seller, method) = market_at_seven().await;
    let cheap = publish(&mut seller, listing(&method, "6.90", "10", "7", "69", 0)).await;
    let mut req = listing(&method, "", "10", "7", "70", 0);
    req.floating = true;
    req.premium_bps = 100;
    let floating = publish(&mut seller, req).await;
    let dear = publish(&mut seller, listing(&method, "7.10", "10", "7", "71", 0)).await;
    let mut buyer = s.trading(uuid::Uuid::new_v4(), Role::User).await;
    // Fresh again, however slow the set-up was.
    admin
        .set_reference_price(reference("7.00"))
        .await
        .expect("reference");
    let page = |page_token: &str| pb::BrowseBookRequest {
        page_size: 2,
        page_token: page_token.into(),
        ..browse()
    };
    let first = buyer
        .browse_book(page(""))
        .await
        .expect("page 1")
        .into_inner();
    let ids: Vec<&str> = first.listings.iter().map(|l| l.id.as_str()).collect();
    // 7.00 × 1.01 = 7.07, between the two fixed prices.
    assert_eq!(ids, [cheap.as_str(), floating.as_str()], "{first:?}");
    assert_eq!(first.next_page_token, format!("{floating}@7.07"));

    wait_ms(2_300).await;
    let second = buyer
        .browse_book(page(&first.next_page_token))
        .await
        .expect("page 2 after the reference went stale")
        .into_inner();
    let ids: Vec<&str> = second.listings.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, [dear.as_str()], "{second:?}");
    // Priced on page 1, unpriced now: listed again, not lost.
    let unpriced: Vec<&str> = second.unpriced.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(unpriced, [floating.as_str()], "{second:?}");
    assert!(second.next_page_token.is_empty() && second.reference_stale);

    // A token no list returned names the field.
    for bad in ["L-1@", "L-1@-7", "L-1@0", "L-1@seven", "L-x@7", "@7"] {
        let e = buyer.browse_book(page(bad)).await.expect_err(bad);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
        assert!(e.message().starts_with("page_token"), "{bad}: {e:?}");
    }
}

/// With the reference stale, the floating listings the book cannot price are
/// listed under `unpriced`, every one of them: they page by the same token,
/// after the priced ones or beside them.
#[tokio::test]
async fn every_unpriced_listing_is_listed_page_by_page() {
    let (s, mut admin, mut seller, method) = market_at_seven().await;
    let fixed = publish(&mut seller, listing(&method, "7.10", "10", "7", "71", 0)).await;
    let mut floating = Vec::new();
    for bps in [-50, 100, 100] {
        let mut req = listing(&method, "", "10", "7", "70", 0);
        req.floating = true;
        req.premium_bps = bps;
        floating.push(publish(&mut seller, req).await);
    }
    wait_ms(2_300).await;
    let mut buyer = s.trading(uuid::Uuid::new_v4(), Role::User).await;
    let page = |page_token: &str| pb::BrowseBookRequest {
        page_size: 2,
        page_token: page_token.into(),
        ..browse()
    };
    let ids = |l: &[pb::Listing]| l.iter().map(|l| l.id.clone()).collect::<Vec<_>>();
    let first = buyer
        .browse_book(page(""))
        .await
        .expect("page 1")
        .into_inner();
    assert!(first.reference_stale);
    assert_eq!(ids(&first.listings), [fixed]);
    assert_eq!(ids(&first.unpriced), floating[..2]);
    assert_eq!(
        first.next_page_token,
        format!("end~u:100:{}", floating[1]),
        "the priced listings are done; the unpriced go on"
    );
    let second = buyer
        .browse_book(page(&first.next_page_token))
        .await
        .expect("page 2")
        .into_inner();
    assert!(second.listings.is_empty());
    assert_eq!(ids(&second.unpriced), floating[2..]);
    assert!(second.next_page_token.is_empty(), "{second:?}");
    // Renewed meanwhile: the listings after that place are priced again and
    // may come before the priced order's place; only a fresh start is whole.
    admin
        .set_reference_price(reference("7.00"))
        .await
        .expect("reference");
    let e = buyer
        .browse_book(page(&first.next_page_token))
        .await
        .expect_err("the place is in a list that ended");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("browse from the start"), "{e:?}");
    for bad in [
        "end~u:x:L-1",
        "end~v:1:L-1",
        "end~u:1:L-x",
        "end~u:1",
        "L-1@7~",
        "end",
        "end~u:end",
    ] {
        let e = buyer.browse_book(page(bad)).await.expect_err(bad);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
        assert!(e.message().starts_with("page_token"), "{bad}: {e:?}");
    }
}
