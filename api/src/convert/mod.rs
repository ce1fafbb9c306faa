//! Conversions between protobuf and domain types, and errors to statuses.
//! A bad field becomes INVALID_ARGUMENT naming the field (SPEC §15).
//!
//! - here: rejections → statuses, and reading single fields;
//! - [`records`]: trades, listings, appeals and methods for the wire, masked
//!   for their [`Audience`] (SPEC §5);
//! - [`events`]: events for the wire.

use otc_engine::money::parse_decimal;
use otc_engine::users::MethodKind;
use otc_engine::{
    Asset, BuyOrderId, Fiat, ListingId, MethodId, Rejection, RejectionKind, Timestamp, TradeId,
    UserId,
};
use rust_decimal::Decimal;
use tonic::Status;

use crate::proto as pb;

mod events;
mod payments;
mod records;

pub use events::event_pb;
pub use payments::{anomaly_id, anomaly_pb, mistake_id, mistake_pb, verified_pb};
pub use records::{
    Audience, appeal_pb, listing_kinds, listing_view, method_pb, record_pb, trade_pb,
};

/// Longest request id.
pub const REQUEST_ID_CHARS_MAX: usize = 128;
/// Page size when a request names none (the largest is a setting, SPEC §18).
pub const PAGE_SIZE_DEFAULT: usize = 50;

/// The status for a rejection (SPEC §15).
pub fn status_of(r: &Rejection) -> Status {
    let msg = r.to_string();
    match r.kind() {
        RejectionKind::InvalidArgument => Status::invalid_argument(msg),
        RejectionKind::FailedPrecondition => Status::failed_precondition(msg),
        RejectionKind::NotFound => Status::not_found(msg),
        RejectionKind::PermissionDenied => Status::permission_denied(msg),
        RejectionKind::ResourceExhausted => Status::resource_exhausted(msg),
        RejectionKind::AlreadyExists => Status::already_exists(msg),
    }
}

/// Checks a request id.
///
/// # Errors
/// INVALID_ARGUMENT when missing or too long.
pub fn request_id(id: &str) -> Result<String, Status> {
    let n = id.chars().count();
    if n == 0 || n > REQUEST_ID_CHARS_MAX {
        return Err(Status::invalid_argument(format!(
            "request_id is required (1 to {REQUEST_ID_CHARS_MAX} characters) on every mutating call"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Status::invalid_argument(
            "request_id must not hold control characters",
        ));
    }
    Ok(id.to_owned())
}

/// A required decimal field.
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn dec(field: &str, text: &str) -> Result<Decimal, Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    parse_decimal(text).map_err(|e| Status::invalid_argument(format!("{field} {e}")))
}

/// An optional decimal field (empty means absent).
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn opt_dec(field: &str, text: &str) -> Result<Option<Decimal>, Status> {
    if text.is_empty() {
        Ok(None)
    } else {
        dec(field, text).map(Some)
    }
}

/// An asset code field.
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn asset(field: &str, text: &str) -> Result<Asset, Status> {
    Asset::new(text).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// A fiat code field.
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn fiat(field: &str, text: &str) -> Result<Fiat, Status> {
    Fiat::new(text).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// A number written in ASCII digits only (no sign, no blanks): what ids,
/// sequence numbers and page tokens carry.
pub(crate) fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The number of an id written "<prefix>-123" (or a bare "123"): digits
/// only. INVALID_ARGUMENT naming `field` otherwise.
pub(crate) fn id_number(field: &str, prefix: &str, text: &str) -> Result<u64, Status> {
    let number = text
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix('-'))
        .unwrap_or(text);
    digits(number).ok_or_else(|| {
        Status::invalid_argument(format!(
            "{field} must look like \"{prefix}-123\", got {}",
            otc_engine::shown(text)
        ))
    })
}

/// A trade id field ("T-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn trade_id(text: &str) -> Result<TradeId, Status> {
    trade_id_in("trade_id", text)
}

/// A trade id in the field `field` (a page token, say).
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn trade_id_in(field: &str, text: &str) -> Result<TradeId, Status> {
    id_number(field, "T", text).map(TradeId)
}

/// A listing id field ("L-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn listing_id(text: &str) -> Result<ListingId, Status> {
    listing_id_in("listing_id", text)
}

/// A listing id in the field `field` (a page token, say).
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn listing_id_in(field: &str, text: &str) -> Result<ListingId, Status> {
    id_number(field, "L", text).map(ListingId)
}

/// A method id field ("M-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn method_id(text: &str) -> Result<MethodId, Status> {
    method_id_field("method_id", text)
}

/// A method id in the field `field` ("M-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn method_id_field(field: &str, text: &str) -> Result<MethodId, Status> {
    id_number(field, "M", text).map(MethodId)
}

/// A buy order id field ("B-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn buy_order_id(text: &str) -> Result<BuyOrderId, Status> {
    id_number("buy_order_id", "B", text).map(BuyOrderId)
}

/// A user's UUID, as a field or a token's subject names one: never the nil
/// UUID, which names nobody.
pub fn user_uuid(text: &str) -> Option<UserId> {
    uuid::Uuid::parse_str(text)
        .ok()
        .filter(|u| !u.is_nil())
        .map(UserId)
}

/// A user id field ([`user_uuid`]).
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn user_id(field: &str, text: &str) -> Result<UserId, Status> {
    user_uuid(text).ok_or_else(|| {
        Status::invalid_argument(format!("{field} must be a user UUID (not the nil UUID)"))
    })
}

/// Page size from a request (0 → default; at most `max`).
///
/// # Errors
/// INVALID_ARGUMENT above the maximum.
pub fn page_size(n: u32, max: u32) -> Result<usize, Status> {
    match n {
        0 => Ok(PAGE_SIZE_DEFAULT.min(max as usize)),
        n if n > max => Err(Status::invalid_argument(format!(
            "page_size must be at most {max}"
        ))),
        n => Ok(n as usize),
    }
}

/// A protobuf timestamp.
pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        nanos: i32::try_from(t.0.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// A payment kind from the wire.
///
/// # Errors
/// INVALID_ARGUMENT for UNSPECIFIED or unknown values.
pub fn method_kind(field: &str, v: i32) -> Result<MethodKind, Status> {
    match pb::PaymentKind::try_from(v) {
        Ok(pb::PaymentKind::Bank) => Ok(MethodKind::Bank),
        Ok(pb::PaymentKind::Alipay) => Ok(MethodKind::Alipay),
        Ok(pb::PaymentKind::Wechat) => Ok(MethodKind::WeChat),
        _ => Err(Status::invalid_argument(format!(
            "{field} must be PAYMENT_KIND_BANK, PAYMENT_KIND_ALIPAY or PAYMENT_KIND_WECHAT"
        ))),
    }
}

/// A payment kind for the wire.
pub fn kind_pb(k: MethodKind) -> i32 {
    match k {
        MethodKind::Bank => pb::PaymentKind::Bank as i32,
        MethodKind::Alipay => pb::PaymentKind::Alipay as i32,
        MethodKind::WeChat => pb::PaymentKind::Wechat as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids read as "T-12" (or a bare "12"), digits only; a bad one names
    /// the field it came in.
    #[test]
    fn ids_are_digits_after_their_prefix_and_errors_name_the_field() {
        assert_eq!(trade_id("T-12").ok(), Some(TradeId(12)));
        assert_eq!(trade_id("12").ok(), Some(TradeId(12)));
        for bad in ["+12", "T-+12", "T-", "", "T-1x", "T-12 ", "-12"] {
            let e = trade_id(bad).expect_err(bad);
            assert!(
                e.message().starts_with("trade_id must look like"),
                "{bad}: {e:?}"
            );
        }
        let e = trade_id_in("page_token", "L-3").expect_err("wrong kind");
        assert!(
            e.message()
                .starts_with("page_token must look like \"T-123\""),
            "{e:?}"
        );
        for bad in ["+3", "A-+3"] {
            assert!(payments::anomaly_id("anomaly_id", bad).is_err(), "{bad}");
            assert!(payments::mistake_id("mistake_id", bad).is_err(), "{bad}");
        }
        assert_eq!(
            payments::mistake_id("mistake_id", "R-3").ok(),
            Some(otc_engine::MistakeId(3))
        );
        let e = listing_id_in("page_token", "x").expect_err("not an id");
        assert!(
            e.message()
                .starts_with("page_token must look like \"L-123\""),
            "{e:?}"
        );
    }
}
