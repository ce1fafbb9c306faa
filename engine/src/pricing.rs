//! Floating prices (SPEC §22): a listing priced at a premium over the
//! market's reference price, clamped to an optional floor and ceiling.
//!
//! The effective price is `reference × (1 + premium_bps / 10 000)`, clamped,
//! rounded half-up to the fiat scale (2 places). Floating listings of a
//! market share one reference, so among themselves they are in premium
//! order; the book keeps them by premium (and by ceiling, for the clamped)
//! so a new reference costs nothing per listing (see `book.rs`).

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;
use crate::money::{FIAT_SCALE, Price};

/// Basis points in one.
pub const BPS_PER_ONE: i64 = 10_000;

/// How a listing is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pricing {
    /// A fixed price per coin.
    Fixed(Price),
    /// A premium over the market's reference price.
    Floating(Floating),
}

/// A floating price's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floating {
    /// Premium over the reference, in basis points (−2000 = 20% below).
    pub premium_bps: i32,
    /// Never below this, if set.
    pub floor: Option<Price>,
    /// Never above this, if set.
    pub ceiling: Option<Price>,
}

/// A market's reference price, as an admin or the price feed set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Fiat per coin.
    pub price: Price,
    /// When it was set (engine time).
    pub at: Timestamp,
    /// Who or what it came from (e.g. "binance-p2p-median").
    pub source: String,
}

/// The reference a trade's price came from, fixed at match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBasis {
    /// The reference price used.
    pub reference: Price,
    /// When that reference was set.
    pub reference_at: Timestamp,
    /// Its source.
    pub source: String,
    /// The listing's premium.
    pub premium_bps: i32,
}

/// `reference × (1 + bps / 10 000)`, rounded half-up to the fiat scale, and
/// at least one fen (a tiny reference with a discount would round to
/// nothing): the book's key for a floating listing before clamping.
/// Monotone in `bps`. None only on overflow.
pub fn raw_price(reference: Price, bps: i32) -> Option<Price> {
    let factor = Decimal::from(BPS_PER_ONE + i64::from(bps)) / Decimal::from(BPS_PER_ONE);
    let rounded = round(reference.value().checked_mul(factor)?);
    Some(Price::computed(rounded.max(Decimal::new(1, FIAT_SCALE))))
}

/// The effective price of `f` at `reference`: the raw price clamped to the
/// floor and ceiling, always shown at the fiat scale (a floor of "6.90" is
/// kept normalized as 6.9; a listing held at it shows 6.90, as one priced
/// 6.91 shows 6.91).
pub fn effective_price(reference: Price, f: &Floating) -> Option<Price> {
    let mut p = raw_price(reference, f.premium_bps)?;
    if let Some(floor) = f.floor {
        p = p.max(floor);
    }
    if let Some(ceiling) = f.ceiling {
        p = p.min(ceiling);
    }
    let mut value = p.value();
    // Floors and ceilings have at most the fiat scale: this only adds zeros.
    value.rescale(FIAT_SCALE);
    Some(Price::computed(value))
}

fn round(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(FIAT_SCALE, RoundingStrategy::MidpointAwayFromZero)
}

impl Reference {
    /// Whether it is too old to price listings at `now`.
    pub fn is_stale(&self, now: Timestamp, max_age_ms: i64) -> bool {
        now.ms_since(self.at) > max_age_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::computed(s.parse().expect("decimal"))
    }

    #[test]
    fn effective_prices_round_half_up_and_clamp() {
        // 7.1234 × 1.015 = 7.230251 → 7.23
        assert_eq!(raw_price(p("7.1234"), 150), Some(p("7.23")));
        // 7.05 × 0.99 = 6.9795 → 6.98 (half-up at the third place)
        assert_eq!(raw_price(p("7.05"), -100), Some(p("6.98")));
        // 7.00 × 1.0007 = 7.0049 → 7.00
        assert_eq!(raw_price(p("7"), 7), Some(p("7.00")));
        // What would round to nothing is one fen, the least price there is.
        assert_eq!(raw_price(p("0.004"), 0), Some(p("0.01")));
        assert_eq!(raw_price(p("0.005"), -100), Some(p("0.01")));
        assert_eq!(raw_price(p("7.1"), 5), Some(p("7.10")));
        assert_eq!(raw_price(p("2.5"), 2), Some(p("2.50")));
        assert_eq!(raw_price(p("2.5"), 20), Some(p("2.51")));
        let f = Floating {
            premium_bps: 500,
            floor: Some(p("6.90")),
            ceiling: Some(p("7.20")),
        };
        assert_eq!(effective_price(p("7"), &f), Some(p("7.20")));
        assert_eq!(effective_price(p("6.5"), &f), Some(p("6.90")));
        assert_eq!(effective_price(p("6.7"), &f), Some(p("7.04")));
        assert_eq!(raw_price(p("7"), -10_000), Some(p("0.01")));
    }

    #[test]
    fn a_price_held_at_its_floor_or_ceiling_shows_two_places() {
        // Floors and ceilings are kept normalized, as listings' prices are.
        let f = Floating {
            premium_bps: 500,
            floor: Some(p("6.9")),
            ceiling: Some(p("7.2")),
        };
        let shown =
            |reference: &str| effective_price(p(reference), &f).map(|x| x.value().to_string());
        assert_eq!(shown("7").as_deref(), Some("7.20"));
        assert_eq!(shown("6").as_deref(), Some("6.90"));
        assert_eq!(shown("6.7").as_deref(), Some("7.04"));
    }
}
