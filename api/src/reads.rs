//! Read-only views of the trading service: accounts, listings, the book,
//! trades and appeals, each masked for its audience (SPEC §5).

use otc_engine::{ListingId, Price, TradeId, UserId};
use tonic::Status;

use crate::auth::Caller;
use crate::common;
use crate::convert::{self as cv, Audience};
use crate::core::{Core, clock_now};
use crate::proto as pb;

/// A listing from the working set or, once forgotten there, from history.
///
/// # Errors
/// NOT_FOUND; UNAVAILABLE on storage failure.
pub async fn listing(core: &Core, id: ListingId) -> Result<pb::Listing, Status> {
    let w = core.read().await?;
    let e = w.engine();
    let listing = match e.listing(id) {
        Some(l) => l.clone(),
        None => w
            .store()
            .listing(id)
            .map_err(|x| Status::unavailable(x.to_string()))?
            .ok_or_else(|| Status::not_found(format!("listing {id} not found")))?,
    };
    Ok(cv::listing_view(e, &listing, clock_now()))
}

/// The caller's balances, methods (their own, unmasked), lock and blocks.
///
/// # Errors
/// None today; kept fallible like every read.
pub async fn account(core: &Core, c: &Caller) -> Result<pb::GetAccountResponse, Status> {
    let w = core.read().await?;
    let e = w.engine();
    let balances = e
        .config()
        .assets
        .keys()
        .map(|asset| {
            let b = e.balance(c.user, *asset);
            pb::Balance {
                asset: asset.to_string(),
                available: b.available.to_string(),
                escrowed: b.escrowed.to_string(),
            }
        })
        .collect();
    let u = e.user(c.user);
    let methods = u
        .map(|u| {
            u.methods
                .iter()
                .map(|(id, m)| cv::method_pb(*id, &m.details, Audience::Owner))
                .collect()
        })
        .unwrap_or_default();
    let blocked = e
        .state()
        .blocks
        .range((c.user, UserId(uuid::Uuid::nil()))..)
        .take_while(|(a, _)| *a == c.user)
        .map(|(_, b)| b.to_string())
        .collect();
    Ok(pb::GetAccountResponse {
        user_id: c.user.to_string(),
        role: c.role.as_str().into(),
        balances,
        methods,
        fund_password_set: u.is_some_and(|u| u.fund_password.is_some()),
        locked_until: u.and_then(|u| u.lock_at(clock_now())).map(cv::ts),
        blocked_user_ids: blocked,
        as_of_seq: e.last_seq(),
    })
}

/// The next page token: the last id when the page is full.
fn next_token<T: ToString>(ids: &[T], size: usize) -> String {
    if ids.len() == size {
        ids.last().map(ToString::to_string).unwrap_or_default()
    } else {
        String::new()
    }
}

/// A page of the caller's listings, newest first.
///
/// # Errors
/// INVALID_ARGUMENT for a bad page; UNAVAILABLE on storage failure.
pub async fn my_listings(
    core: &Core,
    user: UserId,
    r: &pb::PageRequest,
) -> Result<pb::ListListingsResponse, Status> {
    let size = common::page_size(core, r.page_size).await?;
    let before = if r.page_token.is_empty() {
        None
    } else {
        Some(cv::listing_id_in("page_token", &r.page_token)?.0)
    };
    let ids = {
        let w = core.read().await?;
        w.store()
            .user_items(otc_storage::codec::kind::USER_LISTING, user, before, size)
            .map_err(|e| Status::unavailable(e.to_string()))?
    };
    let mut listings = Vec::with_capacity(ids.len());
    for id in &ids {
        listings.push(listing(core, ListingId(*id)).await?);
    }
    let ids: Vec<ListingId> = ids.into_iter().map(ListingId).collect();
    Ok(pb::ListListingsResponse {
        listings,
        next_page_token: next_token(&ids, size),
        ..pb::ListListingsResponse::default()
    })
}

/// A page of the book, best price first.
///
/// # Errors
/// INVALID_ARGUMENT for a bad field or page token.
pub async fn book(
    core: &Core,
    r: &pb::BrowseBookRequest,
) -> Result<pb::ListListingsResponse, Status> {
    let size = common::page_size(core, r.page_size).await?;
    let (asset, fiat) = (cv::asset("asset", &r.asset)?, cv::fiat("fiat", &r.fiat)?);
    let w = core.read().await?;
    let e = w.engine();
    let now = clock_now();
    let at = BookCursor::parse(e, &r.page_token, now)?;
    let fresh = e.fresh_reference((asset, fiat), now).is_some();
    if fresh && matches!(at.unpriced, Part::After(_)) {
        // The listings after that place are priced again, and may fall
        // before the priced order's place: only a fresh start lists them.
        return Err(Status::invalid_argument(
            "page_token was paging listings without a price, and the reference price was renewed since; browse from the start",
        ));
    }
    let page = at
        .priced
        .resume()
        .map_or_else(Vec::new, |after| e.book_page(asset, fiat, after, size, now));
    let listings: Vec<pb::Listing> = page
        .iter()
        .map(|entry| cv::listing_view(e, entry.listing, now))
        .collect();
    // What is not matching is listed too, and why (SPEC §22), paged by the
    // same token beside the priced order.
    let unpriced_page = at.unpriced.resume().map_or_else(Vec::new, |after| {
        e.unpriced_page(asset, fiat, after, size, now)
    });
    // The token holds the last listing's place in each order, so it stays
    // good after that listing is forgotten or its reference goes stale.
    let priced = match page.last() {
        Some(last) if page.len() == size => Part::After((last.price, last.listing.id)),
        _ => Part::Done,
    };
    let unpriced = match (at.unpriced, unpriced_page.last()) {
        (Part::Done, _) => Part::Done,
        // Priced now: they are in the priced order; should the reference
        // go stale before the last page, they are listed from the start.
        (_, _) if fresh => Part::Start,
        (_, Some((key, _))) if unpriced_page.len() == size => Part::After(*key),
        _ => Part::Done,
    };
    let next_page_token = BookCursor { priced, unpriced }.token();
    let reference = e.state().references.get(&(asset, fiat));
    Ok(pb::ListListingsResponse {
        listings,
        next_page_token,
        reference_price: reference.map(|r| r.price.to_string()).unwrap_or_default(),
        reference_at: reference.map(|r| cv::ts(r.at)),
        reference_source: reference.map(|r| r.source.clone()).unwrap_or_default(),
        reference_stale: reference.is_some() && !fresh,
        unpriced: unpriced_page
            .into_iter()
            .map(|(_, l)| cv::listing_view(e, l, now))
            .collect(),
    })
}

/// Where a page of one of the book's two orders starts.
#[derive(Clone, Copy)]
enum Part<K> {
    Start,
    After(K),
    /// That order was listed to its end.
    Done,
}

impl<K> Part<K> {
    /// The place to list after (None: its start), or None once it is done.
    fn resume(self) -> Option<Option<K>> {
        match self {
            Part::Start => Some(None),
            Part::After(key) => Some(Some(key)),
            Part::Done => None,
        }
    }
}

/// Where a `BrowseBook` page starts, from its token:
///
/// - `""`: the first page of both the priced and the unpriced listings;
/// - `"L-12@7.05"`: the priced listings after that place, and the unpriced
///   ones (only while the reference is stale) from their start; a bare
///   `"L-12"` (a token from before the place) is found at its price now;
/// - `"<priced>~u:<premium_bps>:L-40"`: the unpriced listings after that
///   place in their premium order; `"<priced>~u:end"`: they were all
///   listed. `<priced>` is `end` once the priced listings were all listed.
struct BookCursor {
    priced: Part<otc_engine::book::BookKey>,
    unpriced: Part<otc_engine::book::UnpricedKey>,
}

impl BookCursor {
    fn parse(
        e: &otc_engine::Engine,
        token: &str,
        now: otc_engine::Timestamp,
    ) -> Result<Self, Status> {
        if token.is_empty() {
            return Ok(Self {
                priced: Part::Start,
                unpriced: Part::Start,
            });
        }
        let (priced, unpriced) = match token.split_once('~') {
            Some((priced, "u:end")) => (priced, Part::Done),
            Some((priced, unpriced)) => (priced, Part::After(unpriced_place(token, unpriced)?)),
            None => (token, Part::Start),
        };
        let priced = match priced {
            "end" => Part::Done,
            priced => Part::After(priced_place(e, token, priced, now)?),
        };
        // Nothing left of either: no list returns that.
        if matches!((priced, unpriced), (Part::Done, Part::Done | Part::Start)) {
            return Err(not_returned(token));
        }
        Ok(Self { priced, unpriced })
    }

    /// The token of the next page: "" when both orders were listed.
    fn token(&self) -> String {
        let priced = match self.priced {
            Part::After((price, id)) => format!("{id}@{}", price.value()),
            Part::Start | Part::Done => "end".to_owned(),
        };
        match (self.priced, self.unpriced) {
            (Part::Done, Part::Done | Part::Start) => String::new(),
            (_, Part::Start) => priced,
            (_, Part::Done) => format!("{priced}~u:end"),
            (_, Part::After((bps, id))) => format!("{priced}~u:{bps}:{id}"),
        }
    }
}

fn not_returned(token: &str) -> Status {
    Status::invalid_argument(format!(
        "page_token must be one a list returned, got {}",
        otc_engine::shown(token)
    ))
}

/// `u:<premium_bps>:L-40`: a place in the unpriced listings' order.
fn unpriced_place(token: &str, part: &str) -> Result<otc_engine::book::UnpricedKey, Status> {
    let mut cells = part.splitn(3, ':');
    let (Some("u"), Some(bps), Some(id)) = (cells.next(), cells.next(), cells.next()) else {
        return Err(not_returned(token));
    };
    let bps = bps.parse::<i32>().map_err(|_| not_returned(token))?;
    Ok((bps, cv::listing_id_in("page_token", id)?))
}

/// `L-12@7.05`, the last listing's place in the priced order, or a bare
/// listing id, found at its price now.
fn priced_place(
    e: &otc_engine::Engine,
    token: &str,
    part: &str,
    now: otc_engine::Timestamp,
) -> Result<otc_engine::book::BookKey, Status> {
    let Some((id, price)) = part.split_once('@') else {
        let id = cv::listing_id_in("page_token", part)?;
        let price = e.listing(id).and_then(|l| e.effective_price(l, now));
        return price.map(|p| (p, id)).ok_or_else(|| {
            Status::invalid_argument(
                "page_token no longer names a priced listing; browse from the start",
            )
        });
    };
    let price = price
        .parse::<rust_decimal::Decimal>()
        .ok()
        .and_then(Price::cursor)
        .ok_or_else(|| not_returned(token))?;
    Ok((price, cv::listing_id_in("page_token", id)?))
}

/// A trade the caller is a party to, as they may see it.
///
/// # Errors
/// INVALID_ARGUMENT for a bad id; NOT_FOUND when missing or not theirs.
pub async fn party_trade(core: &Core, user: UserId, id: &str) -> Result<pb::Trade, Status> {
    let t = common::party_trade(core, user, cv::trade_id(id)?).await?;
    Ok(cv::trade_pb(&t, Audience::of_trade(&t, user)))
}

/// A page of the caller's trades, newest first.
///
/// # Errors
/// INVALID_ARGUMENT for a bad page; UNAVAILABLE on storage failure.
pub async fn my_trades(
    core: &Core,
    user: UserId,
    r: &pb::PageRequest,
) -> Result<pb::ListTradesResponse, Status> {
    let size = common::page_size(core, r.page_size).await?;
    let before = if r.page_token.is_empty() {
        None
    } else {
        Some(cv::trade_id_in("page_token", &r.page_token)?.0)
    };
    let ids = {
        let w = core.read().await?;
        w.store()
            .user_items(otc_storage::codec::kind::USER_TRADE, user, before, size)
            .map_err(|e| Status::unavailable(e.to_string()))?
    };
    let mut trades = Vec::with_capacity(ids.len());
    for id in &ids {
        let t = common::load_trade(core, TradeId(*id)).await?;
        trades.push(cv::trade_pb(&t, Audience::of_trade(&t, user)));
    }
    let ids: Vec<TradeId> = ids.into_iter().map(TradeId).collect();
    Ok(pb::ListTradesResponse {
        trades,
        next_page_token: next_token(&ids, size),
    })
}

/// The appeal of a trade the caller is a party to (their own files only).
///
/// # Errors
/// NOT_FOUND when missing or not theirs.
pub async fn party_appeal(core: &Core, user: UserId, id: &str) -> Result<pb::Appeal, Status> {
    let id = cv::trade_id(id)?;
    let t = common::party_trade(core, user, id).await?;
    let a = common::load_appeal(core, id).await?;
    Ok(cv::appeal_pb(&a, &t, Some(user)))
}
