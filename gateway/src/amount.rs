//! Exact money: decimal yuan text and integer fen to `Decimal` and back,
//! never through a float.
//!
//! A yuan amount on the wire is plain decimal text: ASCII digits, optionally
//! `.` and 1–2 more digits; positive where we state it (a payment order),
//! zero allowed where a gateway does (a notification or a bill line settled
//! at 0.00). `"1e3"`, `"-5"`, `" 5"`, `"5."`, `".5"`
//! and `"100.0000001"` are refused rather than rounded: a gateway that states
//! an amount we would have to round is not stating what we asked for.

use rust_decimal::Decimal;
use serde_json::Value;

use crate::refusal::Refusal;

/// Decimal places of a yuan amount: fen.
pub const AMOUNT_SCALE: u32 = 2;
/// Most decimal places of a fee stated in a bill.
pub const FEE_SCALE_MAX: u32 = 6;
/// Most digits before the decimal point. 10^15 yuan is beyond any payment and
/// keeps every value exact in a `Decimal`.
pub const AMOUNT_INTEGER_DIGITS_MAX: usize = 15;

/// Parses a yuan amount stated as decimal text.
///
/// # Errors
/// [`Refusal::Malformed`] naming `field` when `text` is not plain positive
/// decimal text with at most 2 decimal places.
pub fn parse_yuan(field: &str, text: &str) -> Result<Decimal, Refusal> {
    let value = parse_plain(field, text, AMOUNT_SCALE)?;
    if value <= Decimal::ZERO {
        return Err(Refusal::malformed(field, "not positive"));
    }
    Ok(value)
}

/// Parses a yuan amount a bill or a signed notification may state as zero:
/// like [`parse_yuan`], but `"0.00"` is read (WeChat Pay settles an order
/// paid wholly with a merchant-funded coupon at 应结订单金额 `0.00`), for
/// reconciliation or the engine to report as the mismatch it is rather than
/// refuse the day's bill or have the gateway retry its notification.
///
/// # Errors
/// [`Refusal::Malformed`] naming `field` when `text` is not plain decimal
/// text with at most 2 decimal places.
pub fn parse_yuan_or_zero(field: &str, text: &str) -> Result<Decimal, Refusal> {
    parse_plain(field, text, AMOUNT_SCALE)
}

/// Parses a fee in yuan, as bills state it: plain decimal text like an
/// amount, but zero is allowed and so are up to [`FEE_SCALE_MAX`] decimal
/// places (WeChat Pay states fees to 5, e.g. `"0.08400"`).
///
/// # Errors
/// [`Refusal::Malformed`] naming `field` when `text` is not plain decimal
/// text with at most [`FEE_SCALE_MAX`] decimal places (`"-0.01"`, `"1e3"`).
pub fn parse_fee_yuan(field: &str, text: &str) -> Result<Decimal, Refusal> {
    parse_plain(field, text, FEE_SCALE_MAX)
}

/// Plain decimal text: digits, optionally `.` and 1 to `scale_max` digits.
fn parse_plain(field: &str, text: &str, scale_max: u32) -> Result<Decimal, Refusal> {
    let (integer, fraction) = match text.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(integer) || fraction.is_some_and(|f| !digits(f)) {
        return Err(Refusal::malformed(field, "not a plain decimal amount"));
    }
    if integer.len() > AMOUNT_INTEGER_DIGITS_MAX {
        return Err(Refusal::malformed(field, "too large"));
    }
    if fraction.is_some_and(|f| f.len() > scale_max as usize) {
        let why = format!("more than {scale_max} decimal places");
        return Err(Refusal::malformed(field, why));
    }
    let value = Decimal::from_str_exact(text)
        .map_err(|_| Refusal::malformed(field, "not a plain decimal amount"))?;
    // Only digits and one point got here: no sign, no exponent.
    debug_assert!(value >= Decimal::ZERO);
    debug_assert!(value.scale() <= scale_max);
    Ok(value)
}

/// Reads an amount stated as an integer number of fen (WeChat Pay's
/// `amount.total`) and returns it in yuan: `Decimal::new(fen, 2)`.
///
/// # Errors
/// [`Refusal::Malformed`] naming `field` when the value is not a JSON integer
/// in `0..=i64::MAX` (a float such as `100.5` or `1e2` is refused).
pub fn fen_to_yuan(field: &str, value: &Value) -> Result<Decimal, Refusal> {
    let Value::Number(number) = value else {
        return Err(Refusal::malformed(field, "not an integer number of fen"));
    };
    if number.is_f64() {
        return Err(Refusal::malformed(field, "not an integer number of fen"));
    }
    if number.is_i64() && !number.is_u64() {
        return Err(Refusal::malformed(field, "negative"));
    }
    let fen = number
        .as_u64()
        .and_then(|fen| i64::try_from(fen).ok())
        .ok_or_else(|| Refusal::malformed(field, "too large"))?;
    Ok(Decimal::new(fen, AMOUNT_SCALE))
}

/// Formats a positive amount with exactly 2 decimal places (`"100.00"`), as
/// gateways expect it. `None` when it is not positive, has a nonzero third
/// decimal place, or is too large.
pub fn yuan_text(amount: Decimal) -> Option<String> {
    let fixed = at_fen_scale(amount)?;
    Some(fixed.to_string())
}

/// The amount in integer fen (WeChat Pay's unit). `None` as for [`yuan_text`].
pub fn yuan_to_fen(amount: Decimal) -> Option<i64> {
    let fixed = at_fen_scale(amount)?;
    i64::try_from(fixed.mantissa()).ok()
}

/// `amount` rescaled to exactly 2 decimal places, if that is exact.
fn at_fen_scale(amount: Decimal) -> Option<Decimal> {
    if amount <= Decimal::ZERO || amount.normalize().scale() > AMOUNT_SCALE {
        return None;
    }
    let integer_digits = amount.trunc().normalize().to_string().len();
    if integer_digits > AMOUNT_INTEGER_DIGITS_MAX {
        return None;
    }
    let mut fixed = amount;
    fixed.rescale(AMOUNT_SCALE);
    // Rescaling up to 2 places, or dropping trailing zeros, is exact.
    debug_assert_eq!(fixed, amount);
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test literal")
    }

    #[test]
    fn plain_decimals_parse_exactly() {
        for (text, want) in [
            ("100.00", "100.00"),
            ("100", "100"),
            ("0.01", "0.01"),
            ("12.5", "12.5"),
            ("999999999999999.99", "999999999999999.99"),
        ] {
            assert_eq!(parse_yuan("total_amount", text), Ok(dec(want)), "{text}");
        }
    }

    #[test]
    fn anything_else_is_malformed_naming_the_field() {
        for text in [
            "100.0000001",
            "100.001",
            "1e3",
            "-5",
            " 5",
            "5 ",
            "5.",
            ".5",
            "",
            "0",
            "0.00",
            "+5",
            "5,00",
            "１００",
            "NaN",
            "1000000000000000",
        ] {
            match parse_yuan("total_amount", text) {
                Err(Refusal::Malformed { field, .. }) => assert_eq!(field, "total_amount"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        assert_eq!(
            parse_yuan("amount", "100.0000001"),
            Err(Refusal::malformed("amount", "more than 2 decimal places"))
        );
    }

    #[test]
    fn fees_may_be_zero_but_follow_the_same_rules() {
        assert_eq!(parse_fee_yuan("fee", "0.00"), Ok(dec("0.00")));
        assert_eq!(parse_fee_yuan("fee", "0"), Ok(dec("0")));
        assert_eq!(parse_fee_yuan("fee", "0.18"), Ok(dec("0.18")));
        assert_eq!(parse_fee_yuan("fee", "0.08400"), Ok(dec("0.084")));
        for text in ["-0.01", "1e3", "0.0000001", "", "abc", " 1", "1."] {
            match parse_fee_yuan("fee", text) {
                Err(Refusal::Malformed { field, .. }) => assert_eq!(field, "fee"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn fen_are_integers_only() {
        let parse = |json: &str| {
            let value: Value = serde_json::from_str(json).expect("test literal");
            fen_to_yuan("amount.total", &value)
        };
        assert_eq!(parse("10000"), Ok(dec("100.00")));
        assert_eq!(parse("1"), Ok(dec("0.01")));
        assert_eq!(parse("0"), Ok(dec("0.00")));
        assert_eq!(parse("9223372036854775807"), Ok(Decimal::new(i64::MAX, 2)));
        for bad in [
            "100.5",
            "1e2",
            "100.0",
            "-1",
            "\"100\"",
            "null",
            "18446744073709551615",
        ] {
            match parse(bad) {
                Err(Refusal::Malformed { field, .. }) => assert_eq!(field, "amount.total"),
                other => panic!("{bad} gave {other:?}"),
            }
        }
    }

    #[test]
    fn amounts_format_at_fen_scale() {
        assert_eq!(yuan_text(dec("100")).as_deref(), Some("100.00"));
        assert_eq!(yuan_text(dec("12.5")).as_deref(), Some("12.50"));
        assert_eq!(yuan_text(dec("0.010")).as_deref(), Some("0.01"));
        assert_eq!(yuan_text(dec("0.001")), None);
        assert_eq!(yuan_text(dec("0")), None);
        assert_eq!(yuan_text(dec("-1")), None);
        assert_eq!(yuan_text(dec("1000000000000000")), None);
        assert_eq!(yuan_to_fen(dec("100.00")), Some(10_000));
        assert_eq!(yuan_to_fen(dec("0.07")), Some(7));
        assert_eq!(yuan_to_fen(dec("1.005")), None);
    }
}
