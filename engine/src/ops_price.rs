//! Reference prices and effective prices (SPEC §22): setting a market's
//! reference, pricing a listing at `now`, the book in matching order, and
//! offering the book to resting buys when the reference moves.

use rust_decimal::Decimal;

use crate::book::{Market, Ordered};
use crate::engine::Engine;
use crate::event::EventKind;
use crate::ids::Timestamp;
use crate::listing::Listing;
use crate::money::{Asset, FIAT_SCALE, Fiat, Price};
use crate::pricing::{Floating, PriceBasis, Pricing, Reference, effective_price};
use crate::rejection::Rejection;

/// Longest reference source name, in characters.
pub const SOURCE_CHARS_MAX: usize = 64;

impl Engine {
    /// A market's reference when it is fresh enough to price listings.
    pub fn fresh_reference(&self, m: Market, now: Timestamp) -> Option<&Reference> {
        self.state
            .references
            .get(&m)
            .filter(|r| !r.is_stale(now, self.config.reference_max_age_ms))
    }

    /// A listing's effective price at `now`; `None` for a floating listing
    /// without a fresh reference.
    pub fn effective_price(&self, l: &Listing, now: Timestamp) -> Option<Price> {
        match l.pricing {
            Pricing::Fixed(p) => Some(p),
            Pricing::Floating(f) => {
                effective_price(self.fresh_reference(l.market(), now)?.price, &f)
            }
        }
    }

    /// Where a listing's price comes from, for a trade matched at `now`.
    pub(crate) fn price_basis(&self, l: &Listing, now: Timestamp) -> Option<PriceBasis> {
        let Pricing::Floating(f) = l.pricing else {
            return None;
        };
        let r = self.fresh_reference(l.market(), now)?;
        Some(PriceBasis {
            reference: r.price,
            reference_at: r.at,
            source: r.source.clone(),
            premium_bps: f.premium_bps,
        })
    }

    /// A market's active listings in matching order at `now`.
    pub fn ordered(&self, m: Market, now: Timestamp) -> Ordered<'_> {
        self.ordered_in(m, now, false)
    }

    /// [`Engine::ordered`], or only its floating listings.
    pub(crate) fn ordered_in(&self, m: Market, now: Timestamp, floating_only: bool) -> Ordered<'_> {
        let reference = self.fresh_reference(m, now).map(|r| r.price);
        self.state
            .book
            .ordered(m, reference, &self.state.listings, !floating_only, None)
    }

    /// [`Engine::ordered`] from the effective price `from` on (a page's
    /// place): nothing below it, and no walk through what is.
    pub(crate) fn ordered_from(&self, m: Market, now: Timestamp, from: Price) -> Ordered<'_> {
        let reference = self.fresh_reference(m, now).map(|r| r.price);
        self.state
            .book
            .ordered(m, reference, &self.state.listings, true, Some(from))
    }

    /// Checks a floating price's terms.
    pub(crate) fn floating_arg(
        &self,
        fiat: Fiat,
        premium_bps: i32,
        floor: Option<Decimal>,
        ceiling: Option<Decimal>,
    ) -> Result<Floating, Rejection> {
        let (min, max) = (self.config.premium_bps_min, self.config.premium_bps_max);
        if !(min..=max).contains(&premium_bps) {
            return Err(Rejection::field(
                "premium_bps",
                format!("must be between {min} and {max} basis points"),
            ));
        }
        // Effective prices have the fiat's 2 places, so the clamps do too.
        let clamp = |field: &'static str, p: Decimal| {
            if p.normalize().scale() > FIAT_SCALE {
                return Err(Rejection::field(
                    field,
                    format!("must have at most {FIAT_SCALE} decimal places"),
                ));
            }
            self.price_arg(field, p, fiat)
        };
        let floor = floor.map(|p| clamp("floor", p)).transpose()?;
        let ceiling = ceiling.map(|p| clamp("ceiling", p)).transpose()?;
        if let (Some(f), Some(c)) = (floor, ceiling)
            && f > c
        {
            return Err(Rejection::field("floor", "must not exceed ceiling"));
        }
        Ok(Floating {
            premium_bps,
            floor,
            ceiling,
        })
    }

    /// Admin or the price feed sets a market's reference (SPEC §22); resting
    /// buys then see floating listings that moved into their range.
    pub(crate) fn set_reference(
        &mut self,
        asset: Asset,
        fiat: Fiat,
        price: Decimal,
        source: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.asset_spec(asset)?;
        let price = self.price_arg("price", price, fiat)?;
        self.text_arg_max("source", source, true, SOURCE_CHARS_MAX)?;
        // A name, shown on one line: no tab or line break either.
        if let Some(why) = crate::args::control_in(source, false) {
            return Err(Rejection::field("source", why));
        }
        self.state.references.insert(
            (asset, fiat),
            Reference {
                price,
                at: now,
                source: source.to_owned(),
            },
        );
        let crate::engine::State { book, listings, .. } = &mut self.state;
        book.rebalance((asset, fiat), price, listings);
        self.emit(
            now,
            EventKind::ReferencePriceSet {
                asset,
                fiat,
                price,
                source: source.to_owned(),
            },
        );
        let resting: Vec<_> = self
            .state
            .resting
            .get(&(asset, fiat))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for order in resting {
            self.fill_from_book(order, now, true);
        }
        Ok(())
    }
}
