//! Small pieces of the wire shared by the verifiers: headers, timestamps,
//! form encoding, JSON fields, ids and gateway local times.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::refusal::Refusal;

/// Largest notification body accepted, in bytes. Real notifications are a
/// few KiB; a bound keeps a hostile body from costing more than that.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// How far a signed timestamp may be from `now`, either way, in seconds
/// (WeChat Pay and hmac; SPEC §19 "within 5 minutes").
pub const TIMESTAMP_SKEW_SECS_MAX: i64 = 300;
/// Longest provider transaction id or payment reference, in bytes (the
/// engine's `GATEWAY_ID_MAX`).
pub(crate) const GATEWAY_ID_BYTES_MAX: usize = 64;
/// Longest currency code, in bytes.
const CURRENCY_BYTES_MAX: usize = 8;
/// Longest unix-seconds timestamp, in digits.
const UNIX_SECS_DIGITS_MAX: usize = 12;
/// Gateways in China state local times in Beijing time.
const GATEWAY_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The value of header `name` (case-insensitive), if present.
///
/// # Errors
/// Malformed when the header is repeated: a signature header must be
/// unambiguous.
pub(crate) fn header<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, Refusal> {
    let mut found = headers
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str());
    let first = found.next();
    if found.next().is_some() {
        return Err(Refusal::malformed(name, "repeated"));
    }
    Ok(first.map(str::trim))
}

/// The value of a header that carries or binds the signature.
///
/// # Errors
/// [`Refusal::Unsigned`] when absent or empty; Malformed when repeated.
pub(crate) fn signing_header<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, Refusal> {
    match header(headers, name)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(Refusal::Unsigned { what: name }),
    }
}

/// Parses unix seconds written as plain digits.
pub(crate) fn parse_unix_secs(field: &str, text: &str) -> Result<i64, Refusal> {
    if text.is_empty()
        || text.len() > UNIX_SECS_DIGITS_MAX
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Refusal::malformed(field, "not unix seconds"));
    }
    text.parse()
        .map_err(|_| Refusal::malformed(field, "not unix seconds"))
}

/// Refuses a signed timestamp more than [`TIMESTAMP_SKEW_SECS_MAX`] from
/// `now`, in the past (a replay) or the future (a clock far off).
pub(crate) fn check_fresh(signed_secs: i64, now: DateTime<Utc>) -> Result<(), Refusal> {
    let skew_secs = now.timestamp().saturating_sub(signed_secs);
    if skew_secs.unsigned_abs() > TIMESTAMP_SKEW_SECS_MAX.unsigned_abs() {
        return Err(Refusal::Stale { skew_secs });
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` encoding of one key or value, as
/// Python's `quote_plus` and Java's `URLEncoder` do: letters, digits and
/// `-._~` stay, space becomes `+`, every other byte `%XX`.
pub(crate) fn form_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

/// Decodes one form-encoded key or value to bytes: `+` is a space, `%XX` a
/// byte.
///
/// # Errors
/// Malformed naming `field` on a `%` not followed by two hex digits.
pub(crate) fn form_decode(field: &str, text: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |at: usize| text.get(at).and_then(|&b| char::from(b).to_digit(16));
                let (Some(high), Some(low)) = (digit(i + 1), digit(i + 2)) else {
                    return Err(Refusal::malformed(field, "bad percent escape"));
                };
                // Two hex digits make at most 0xff.
                out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// Parses a JSON object; one naming a key twice is refused (it would mean
/// one thing here and maybe another to the gateway's own reader).
pub(crate) fn json_object(field: &str, bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match crate::unique_json::parse(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::malformed(field, "not a JSON object")),
        // The error's position, never its text: serde's text may quote input.
        Err(e) if e.duplicate => Err(Refusal::malformed(
            field,
            format!("names a key twice (line {}, column {})", e.line, e.column),
        )),
        Err(e) => Err(Refusal::malformed(
            field,
            format!("not valid JSON (line {}, column {})", e.line, e.column),
        )),
    }
}

/// A required string member of a JSON object; `path` names it in refusals.
pub(crate) fn json_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, Refusal> {
    json_opt_str(object, key, path)?.ok_or_else(|| Refusal::malformed(path, "missing"))
}

/// An optional string member of a JSON object (`null` counts as absent).
pub(crate) fn json_opt_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, Refusal> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Refusal::malformed(path, "not a string")),
    }
}

/// A required object member of a JSON object.
pub(crate) fn json_obj<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, Refusal> {
    match object.get(key) {
        Some(Value::Object(map)) => Ok(map),
        None | Some(Value::Null) => Err(Refusal::malformed(path, "missing")),
        Some(_) => Err(Refusal::malformed(path, "not an object")),
    }
}

/// A transaction id or payment reference: 1–64 bytes, no control characters.
pub(crate) fn gateway_id(field: &str, text: &str) -> Result<String, Refusal> {
    if text.is_empty() {
        return Err(Refusal::malformed(field, "empty"));
    }
    if text.len() > GATEWAY_ID_BYTES_MAX {
        return Err(Refusal::malformed(field, "longer than 64 bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err(Refusal::malformed(field, "contains control characters"));
    }
    Ok(text.to_owned())
}

/// A currency code: 1–8 ASCII letters, upper-cased.
pub(crate) fn currency(field: &str, text: &str) -> Result<String, Refusal> {
    if text.is_empty()
        || text.len() > CURRENCY_BYTES_MAX
        || !text.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return Err(Refusal::malformed(field, "not a currency code"));
    }
    Ok(text.to_ascii_uppercase())
}

/// Parses an RFC 3339 time (WeChat `success_time`, hmac `paid_at`).
pub(crate) fn parse_rfc3339(field: &str, text: &str) -> Result<DateTime<Utc>, Refusal> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Refusal::malformed(field, "not an RFC 3339 time"))
}

/// Parses `yyyy-MM-dd HH:mm:ss` in Beijing time (Alipay `gmt_payment`).
pub(crate) fn parse_gateway_time(field: &str, text: &str) -> Result<DateTime<Utc>, Refusal> {
    parse_local_time(field, text, Shanghai)
}

/// Parses `yyyy-MM-dd HH:mm:ss` as a local time in `tz` (bill times). A time
/// repeated when clocks go back is taken at its first occurrence; a time
/// skipped when they go forward is refused.
pub(crate) fn parse_local_time(field: &str, text: &str, tz: Tz) -> Result<DateTime<Utc>, Refusal> {
    let naive = NaiveDateTime::parse_from_str(text, GATEWAY_TIME_FORMAT)
        .map_err(|_| Refusal::malformed(field, "not a yyyy-MM-dd HH:mm:ss time"))?;
    let local = tz
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| Refusal::malformed(field, format!("not a local time in {tz}")))?;
    Ok(local.with_timezone(&Utc))
}

/// Formats `t` as `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub(crate) fn format_gateway_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Shanghai)
        .format(GATEWAY_TIME_FORMAT)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn headers_are_case_insensitive_and_unique() {
        let h = headers(&[("Wechatpay-Nonce", " abc "), ("x", "1"), ("x", "2")]);
        assert_eq!(header(&h, "wechatpay-nonce"), Ok(Some("abc")));
        assert_eq!(header(&h, "y"), Ok(None));
        assert_eq!(header(&h, "x"), Err(Refusal::malformed("x", "repeated")));
        assert_eq!(
            signing_header(&h, "otc-signature"),
            Err(Refusal::Unsigned {
                what: "otc-signature"
            })
        );
    }

    #[test]
    fn freshness_is_symmetric() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        assert_eq!(check_fresh(1_700_000_000 - 300, now), Ok(()));
        assert_eq!(check_fresh(1_700_000_000 + 300, now), Ok(()));
        assert_eq!(
            check_fresh(1_700_000_000 - 301, now),
            Err(Refusal::Stale { skew_secs: 301 })
        );
        assert_eq!(
            check_fresh(1_700_000_000 + 301, now),
            Err(Refusal::Stale { skew_secs: -301 })
        );
        assert!(parse_unix_secs("t", "-1").is_err());
        assert!(parse_unix_secs("t", "1e9").is_err());
        assert!(parse_unix_secs("t", "9999999999999").is_err());
    }

    #[test]
    fn form_encoding_round_trips() {
        let raw = "a b+c&d=e/f?g%h~i-j.k_l测试".as_bytes();
        let encoded = form_encode(raw);
        assert_eq!(
            encoded,
            "a+b%2Bc%26d%3De%2Ff%3Fg%25h~i-j.k_l%E6%B5%8B%E8%AF%95"
        );
        assert_eq!(form_decode("k", encoded.as_bytes()), Ok(raw.to_vec()));
        for bad in ["%", "%4", "%zz", "%+1", "a%-1"] {
            assert!(form_decode("k", bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateway_times_are_beijing_time() {
        let t = parse_gateway_time("gmt_payment", "2019-08-15 15:56:24").expect("valid");
        assert_eq!(t.to_rfc3339(), "2019-08-15T07:56:24+00:00");
        assert_eq!(format_gateway_time(t), "2019-08-15 15:56:24");
        assert!(parse_gateway_time("gmt_payment", "2019-08-15T15:56:24").is_err());
        let ny = chrono_tz::America::New_York;
        // 02:30 does not exist on 2026-03-08 in New York; 01:30 on 2026-11-01
        // happens twice and is taken the first time (EDT, UTC-4).
        assert!(parse_local_time("t", "2026-03-08 02:30:00", ny).is_err());
        let t = parse_local_time("t", "2026-11-01 01:30:00", ny).expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-11-01T05:30:00+00:00");
    }

    #[test]
    fn json_errors_do_not_quote_input() {
        let Err(Refusal::Malformed { why, .. }) = json_object("body", b"{\"secret-ish\": }") else {
            panic!("expected malformed");
        };
        assert!(!why.contains("secret-ish"), "{why}");
        assert!(gateway_id("id", &"x".repeat(65)).is_err());
        assert!(gateway_id("id", "a\nb").is_err());
        assert_eq!(currency("currency", "cny"), Ok("CNY".to_owned()));
    }
}
