//! Money: asset and currency codes, and the amount newtypes.
//!
//! Every amount is a `rust_decimal::Decimal` inside a newtype that says what it
//! measures. Scale and bounds are validated when an amount enters the engine, and
//! each conversion names its rounding direction (SPEC §3):
//!
//! - coin → fiat: `coin × price`, rounded **half-up** to 2 places;
//! - fiat → coin: `fiat / price`, rounded **down** to the coin scale, so a buyer
//!   never receives more coin than was paid for.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Decimal places of every fiat amount (SPEC §3).
pub const FIAT_SCALE: u32 = 2;
/// Decimal places a price (fiat per coin) may carry.
pub const PRICE_SCALE_MAX: u32 = 4;
/// Longest asset or currency code, in ASCII characters.
pub const CODE_LEN_MAX: usize = 8;

/// Why an amount was refused. Each maps to INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The text is not a plain decimal number such as `123.45`.
    #[error("is not a decimal number like \"123.45\"")]
    NotANumber,
    /// Zero or negative.
    #[error("must be greater than zero")]
    NotPositive,
    /// A plain decimal number no amount can hold (over 28 digits, or 28
    /// decimal places).
    #[error("is too large or too precise a number for any amount")]
    Unrepresentable,
    /// More decimal places than the asset or currency allows.
    #[error("has more than {max} decimal places")]
    TooManyDecimals {
        /// The allowed number of places.
        max: u32,
    },
    /// Larger than the configured maximum.
    #[error("is larger than the maximum of {max}")]
    OverMaximum {
        /// The configured maximum.
        max: Decimal,
    },
}

/// Parses a wire decimal string strictly: digits, an optional point and digits.
///
/// No sign, exponent, spaces or digit separators are accepted, so what a person
/// reads is exactly what the engine uses.
///
/// # Errors
/// [`AmountError::NotANumber`] for anything that is not such a string;
/// [`AmountError::NotPositive`] for such a string with a minus sign (what
/// was wrong is the sign, and the message says so).
pub fn parse_decimal(text: &str) -> Result<Decimal, AmountError> {
    match text.strip_prefix('-') {
        // One sign, then a number: the sign is what is wrong.
        Some(magnitude) if parse_unsigned(magnitude).is_ok() => Err(AmountError::NotPositive),
        Some(_) => Err(AmountError::NotANumber),
        None => parse_unsigned(text),
    }
}

/// [`parse_decimal`] without a sign.
fn parse_unsigned(text: &str) -> Result<Decimal, AmountError> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(AmountError::NotANumber);
    }
    // A number, but longer than any amount is written.
    if text.len() > 40 {
        return Err(AmountError::Unrepresentable);
    }
    // Exact: more places than a Decimal holds is an error, never a rounding.
    Decimal::from_str_exact(text).map_err(|_| AmountError::Unrepresentable)
}

/// Checks that `value` is positive, has at most `scale` places (trailing zeros
/// do not count) and is at most `max`; returns it normalized.
fn validate(value: Decimal, scale: u32, max: Decimal) -> Result<Decimal, AmountError> {
    if value <= Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    let value = value.normalize();
    if value.scale() > scale {
        return Err(AmountError::TooManyDecimals { max: scale });
    }
    if value > max {
        return Err(AmountError::OverMaximum { max });
    }
    Ok(value)
}

macro_rules! code_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " code: 1 to 8 ASCII upper-case letters or digits. `Copy`, so it costs nothing to pass.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name([u8; CODE_LEN_MAX]);

        // Byte order, compared as one integer (codes key balances and markets).
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                u64::from_be_bytes(self.0).cmp(&u64::from_be_bytes(other.0))
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            #[doc = concat!("Builds a ", $what, " code.")]
            ///
            /// # Errors
            /// A message naming the rule broken, when `code` is not 1 to 8 upper-case
            /// ASCII letters or digits.
            pub fn new(code: &str) -> Result<Self, String> {
                let ok = !code.is_empty()
                    && code.len() <= CODE_LEN_MAX
                    && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if !ok {
                    return Err(format!(
                        concat!($what, " code {} must be 1 to 8 upper-case letters or digits"),
                        crate::rejection::shown(code)
                    ));
                }
                let mut bytes = [0u8; CODE_LEN_MAX];
                bytes[..code.len()].copy_from_slice(code.as_bytes());
                Ok(Self(bytes))
            }

            /// The code as text.
            pub fn as_str(&self) -> &str {
                let len = self.0.iter().position(|&b| b == 0).unwrap_or(CODE_LEN_MAX);
                // Only ASCII bytes are ever stored (checked in `new`).
                std::str::from_utf8(&self.0[..len]).unwrap_or("")
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::new(&s)
            }
        }

        impl From<$name> for String {
            fn from(c: $name) -> String {
                c.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.as_str())
            }
        }
    };
}

code_type!(Asset, "asset");
code_type!(Fiat, "fiat currency");

/// How an asset is traded: its decimal places and the largest amount accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSpec {
    /// Decimal places of the coin (at most 8 by default, SPEC §3).
    pub scale: u32,
    /// Largest amount accepted in one command (deposit, listing, buy).
    pub amount_max: Decimal,
}

/// How a fiat currency is used: the largest amount or price accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiatSpec {
    /// Largest fiat amount accepted (per-trade limits, buy amounts).
    pub amount_max: Decimal,
    /// Largest price (fiat per coin) accepted.
    pub price_max: Decimal,
}

/// An amount of coin. Never negative; zero only as an internal remainder.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CoinAmount(Decimal);

impl CoinAmount {
    /// No coin.
    pub const ZERO: Self = Self(Decimal::ZERO);

    /// Validates a coin amount from a request against the asset's spec.
    ///
    /// # Errors
    /// Zero or negative, too many places, or over the asset's maximum.
    pub fn new(value: Decimal, spec: &AssetSpec) -> Result<Self, AmountError> {
        validate(value, spec.scale, spec.amount_max).map(Self)
    }

    /// The decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self − other`, or `None` if it would go below zero.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        let v = self.0.checked_sub(other.0)?;
        (v >= Decimal::ZERO).then_some(Self(v))
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Self) -> Self {
        if other.0 < self.0 { other } else { self }
    }

    /// Wraps an already validated internal value (for tests and read models).
    pub fn from_trusted(value: Decimal) -> Self {
        debug_assert!(value >= Decimal::ZERO);
        Self(value)
    }
}

/// An amount of fiat, always at 2 decimal places or fewer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FiatAmount(Decimal);

impl FiatAmount {
    /// No fiat.
    pub const ZERO: Self = Self(Decimal::ZERO);

    /// Validates a fiat amount from a request.
    ///
    /// # Errors
    /// Zero or negative, more than 2 places, or over the currency's maximum.
    pub fn new(value: Decimal, spec: &FiatSpec) -> Result<Self, AmountError> {
        validate(value, FIAT_SCALE, spec.amount_max).map(Self::two_places)
    }

    /// Always shown with exactly 2 places ("70.00").
    fn two_places(mut value: Decimal) -> Self {
        value.rescale(FIAT_SCALE);
        Self(value)
    }

    /// The decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self − other`, floored at zero (outstanding capacity never goes negative).
    pub fn saturating_sub(self, other: Self) -> Self {
        Self((self.0 - other.0).max(Decimal::ZERO))
    }

    /// Wraps an already validated internal value (for tests and read models).
    pub fn from_trusted(value: Decimal) -> Self {
        debug_assert!(value >= Decimal::ZERO);
        Self(value)
    }
}

/// A price: fiat per one coin. Always positive.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(Decimal);

// Numeric order, as `Decimal`'s, but comparing integers scaled to
// `PRICE_SCALE_MAX` places when both fit (every validated price does): the
// book is ordered by price, and `Decimal`'s general comparison was a visible
// share of matching.
impl Ord for Price {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.order_key(), other.order_key()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Price {
    /// The value in units of 10^-`PRICE_SCALE_MAX`, when it has at most that
    /// many places.
    fn order_key(self) -> Option<i128> {
        const POW10: [i128; PRICE_SCALE_MAX as usize + 1] = [1, 10, 100, 1_000, 10_000];
        let shift = PRICE_SCALE_MAX.checked_sub(self.0.scale())?;
        // |mantissa| < 2^96, so times 10^4 cannot overflow an i128.
        POW10.get(shift as usize).map(|p| self.0.mantissa() * p)
    }

    /// Validates a price from a request.
    ///
    /// # Errors
    /// Zero or negative, more than [`PRICE_SCALE_MAX`] places, or over the
    /// currency's maximum price.
    pub fn new(value: Decimal, spec: &FiatSpec) -> Result<Self, AmountError> {
        validate(value, PRICE_SCALE_MAX, spec.price_max).map(Self)
    }

    /// The decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// A price the engine computed (a floating listing's effective price),
    /// already rounded to the fiat scale.
    pub fn computed(value: Decimal) -> Self {
        debug_assert!(value > Decimal::ZERO);
        Self(value)
    }

    /// A page cursor's price read back from a token: any positive value
    /// has a place in the book's order.
    pub fn cursor(value: Decimal) -> Option<Self> {
        (value > Decimal::ZERO).then_some(Self(value))
    }

    /// Fiat owed for `coin` at this price: `coin × price`, rounded half-up to
    /// 2 places (SPEC §3). `None` only on arithmetic overflow.
    pub fn fiat_for(self, coin: CoinAmount) -> Option<FiatAmount> {
        let exact = coin.0.checked_mul(self.0)?;
        Some(FiatAmount::two_places(exact.round_dp_with_strategy(
            FIAT_SCALE,
            RoundingStrategy::MidpointAwayFromZero,
        )))
    }

    /// Fiat value of `coin`, rounded **down**: what a remainder is surely worth,
    /// used to decide whether a listing can still meet its minimum.
    pub fn fiat_floor(self, coin: CoinAmount) -> Option<FiatAmount> {
        let exact = coin.0.checked_mul(self.0)?;
        Some(FiatAmount::two_places(exact.round_dp_with_strategy(
            FIAT_SCALE,
            RoundingStrategy::ToZero,
        )))
    }

    /// Coin bought by `fiat` at this price: `fiat / price`, rounded **down** to
    /// `scale` places (SPEC §3). `None` only on arithmetic failure.
    pub fn coin_for(self, fiat: FiatAmount, scale: u32) -> Option<CoinAmount> {
        let exact = fiat.0.checked_div(self.0)?;
        Some(CoinAmount(
            exact.round_dp_with_strategy(scale, RoundingStrategy::ToZero),
        ))
    }
}

macro_rules! display_decimal {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_decimal!(CoinAmount, FiatAmount, Price);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    const EB: AssetSpec = AssetSpec {
        scale: 8,
        amount_max: Decimal::from_parts(1_000_000, 0, 0, false, 0),
    };
    const CNY: FiatSpec = FiatSpec {
        amount_max: Decimal::from_parts(10_000_000, 0, 0, false, 0),
        price_max: Decimal::from_parts(1_000_000, 0, 0, false, 0),
    };

    #[test]
    fn parse_accepts_plain_decimals_only() {
        assert_eq!(parse_decimal("123.45"), Ok(d("123.45")));
        assert_eq!(parse_decimal("7"), Ok(d("7")));
        for bad in [
            "", ".5", "5.", "--1", "-", "-abc", "+1", "1e5", "1_000", " 1", "abc", "1.2.3", "NaN",
        ] {
            assert_eq!(parse_decimal(bad), Err(AmountError::NotANumber), "{bad:?}");
        }
        // However long, text is refused at once, without going through it.
        let dashes = "-".repeat(1_000_000);
        assert_eq!(parse_decimal(&dashes), Err(AmountError::NotANumber));
        assert_eq!(
            parse_decimal(&"9".repeat(1_000_000)),
            Err(AmountError::Unrepresentable)
        );
        // A number no amount can hold says so (29 digits, 29 places).
        for huge in [
            "99999999999999999999999999999",
            "0.00000000000000000000000000001",
        ] {
            assert_eq!(
                parse_decimal(huge),
                Err(AmountError::Unrepresentable),
                "{huge:?}"
            );
        }
        // A negative number says what is wrong with it: the sign.
        for negative in ["-1", "-7.05", "-0"] {
            assert_eq!(
                parse_decimal(negative),
                Err(AmountError::NotPositive),
                "{negative:?}"
            );
        }
    }

    #[test]
    fn coin_amount_rules() {
        assert!(CoinAmount::new(d("0.00000001"), &EB).is_ok());
        assert_eq!(CoinAmount::new(d("0"), &EB), Err(AmountError::NotPositive));
        assert_eq!(CoinAmount::new(d("-1"), &EB), Err(AmountError::NotPositive));
        assert_eq!(
            CoinAmount::new(d("0.000000001"), &EB),
            Err(AmountError::TooManyDecimals { max: 8 })
        );
        // Trailing zeros are not extra precision.
        assert_eq!(
            CoinAmount::new(d("1.5000000000"), &EB).map(|c| c.value()),
            Ok(d("1.5"))
        );
        assert!(matches!(
            CoinAmount::new(d("1000001"), &EB),
            Err(AmountError::OverMaximum { .. })
        ));
    }

    #[test]
    fn fiat_rounds_half_up_and_coin_rounds_down() {
        let p = Price::new(d("7.15"), &CNY).unwrap();
        // 0.07 × 7.15 = 0.5005 → 0.50 ; 0.5 × 7.15 = 3.575 → 3.58 (half-up)
        assert_eq!(
            p.fiat_for(CoinAmount(d("0.07"))).unwrap().value(),
            d("0.50")
        );
        assert_eq!(p.fiat_for(CoinAmount(d("0.5"))).unwrap().value(), d("3.58"));
        assert_eq!(
            p.fiat_floor(CoinAmount(d("0.5"))).unwrap().value(),
            d("3.57")
        );
        // 100 / 7.15 = 13.986013986... → 13.98601398 (down)
        let coin = p.coin_for(FiatAmount(d("100")), 8).unwrap();
        assert_eq!(coin.value(), d("13.98601398"));
        // Never more coin than paid for: the fiat for that coin is ≤ what was paid.
        assert!(p.fiat_for(coin).unwrap().value() <= d("100"));
    }

    #[test]
    fn codes_are_validated() {
        assert_eq!(Asset::new("EB").unwrap().as_str(), "EB");
        assert_eq!(Fiat::new("CNY").unwrap().to_string(), "CNY");
        for bad in ["", "eb", "TOOLONGCODE", "E-B"] {
            assert!(Asset::new(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn price_order_is_decimal_order(
            a in 1i64..10_000_000_000, sa in 0u32..=6,
            b in 1i64..10_000_000_000, sb in 0u32..=6,
        ) {
            let (x, y) = (Decimal::new(a, sa), Decimal::new(b, sb));
            proptest::prop_assert_eq!(Price(x).cmp(&Price(y)), x.cmp(&y));
            proptest::prop_assert_eq!(Price(x) == Price(y), x == y);
        }

        #[test]
        fn code_order_is_byte_order(a in "[A-Z0-9]{1,8}", b in "[A-Z0-9]{1,8}") {
            let (x, y) = (Asset::new(&a).unwrap(), Asset::new(&b).unwrap());
            proptest::prop_assert_eq!(x.cmp(&y), x.0.cmp(&y.0));
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }
    }
}
