//! The convert step: each client request into its domain form with
//! `TryFrom`. A bad field becomes INVALID_ARGUMENT naming the field as the
//! proto names it. Only the shape of the input is checked here (present,
//! parseable, a known enum); every rule about values (scales, maximums,
//! windows, lengths) lives in the engine, whose rejections name the same
//! fields.

use otc_engine::UserId;
use otc_engine::command::{
    AttachmentRef, BuyAmount, BuyRequest, CapacityRequest, FastSellRequest, ListingSpec,
    MerchantQuote, PriceSpec, Resolution,
};
use otc_engine::users::{MethodDetails, MethodKind};
use tonic::Status;

use crate::channels::Channels;
use crate::convert as cv;
use crate::proto as pb;

impl TryFrom<&pb::PublishListingRequest> for ListingSpec {
    type Error = Status;

    fn try_from(r: &pb::PublishListingRequest) -> Result<Self, Status> {
        let methods = r
            .method_ids
            .iter()
            .map(|m| cv::method_id_field("method_ids", m))
            .collect::<Result<Vec<_>, _>>()?;
        let payment_window_ms = match r.payment_window_secs {
            0 => None,
            s if s < 0 => {
                return Err(Status::invalid_argument(
                    "payment_window_secs must not be negative",
                ));
            }
            s => Some(s.saturating_mul(1000)),
        };
        Ok(ListingSpec {
            asset: cv::asset("asset", &r.asset)?,
            fiat: cv::fiat("fiat", &r.fiat)?,
            price: if r.floating {
                if !r.price.is_empty() {
                    return Err(Status::invalid_argument(
                        "price must be empty for a floating listing (it follows the reference)",
                    ));
                }
                PriceSpec::Floating {
                    premium_bps: r.premium_bps,
                    floor: cv::opt_dec("floor", &r.floor)?,
                    ceiling: cv::opt_dec("ceiling", &r.ceiling)?,
                }
            } else {
                if r.premium_bps != 0 || !r.floor.is_empty() || !r.ceiling.is_empty() {
                    return Err(Status::invalid_argument(
                        "premium_bps, floor and ceiling need floating = true",
                    ));
                }
                PriceSpec::Fixed(cv::dec("price", &r.price)?)
            },
            total: cv::dec("total", &r.total)?,
            min_fiat: cv::dec("min_fiat", &r.min_fiat)?,
            max_fiat: cv::dec("max_fiat", &r.max_fiat)?,
            methods,
            payment_window_ms,
            terms: r.terms.clone(),
            release_on_verified: r.release_on_verified_payment,
        })
    }
}

impl TryFrom<&pb::PlaceBuyRequest> for BuyRequest {
    type Error = Status;

    fn try_from(r: &pb::PlaceBuyRequest) -> Result<Self, Status> {
        let amount = match (r.coin_amount.is_empty(), r.fiat_amount.is_empty()) {
            (false, true) => BuyAmount::Coin(cv::dec("coin_amount", &r.coin_amount)?),
            (true, false) => BuyAmount::Fiat(cv::dec("fiat_amount", &r.fiat_amount)?),
            _ => {
                return Err(Status::invalid_argument(
                    "coin_amount, fiat_amount: give exactly one of them",
                ));
            }
        };
        let methods = r
            .methods
            .iter()
            .map(|k| cv::method_kind("methods", *k))
            .collect::<Result<Vec<_>, _>>()?;
        if r.rest_secs < 0 {
            return Err(Status::invalid_argument("rest_secs must not be negative"));
        }
        if r.rest_secs != 0 && !r.rest {
            return Err(Status::invalid_argument(
                "rest_secs is only for a resting buy (rest = true)",
            ));
        }
        Ok(BuyRequest {
            asset: cv::asset("asset", &r.asset)?,
            fiat: cv::fiat("fiat", &r.fiat)?,
            amount,
            max_price: cv::opt_dec("max_price", &r.max_price)?,
            methods,
            rest: r
                .rest
                .then_some((r.rest_secs > 0).then(|| r.rest_secs.saturating_mul(1000))),
        })
    }
}

impl TryFrom<&pb::FastSellRequest> for FastSellRequest {
    type Error = Status;

    fn try_from(r: &pb::FastSellRequest) -> Result<Self, Status> {
        Ok(FastSellRequest {
            asset: cv::asset("asset", &r.asset)?,
            fiat: cv::fiat("fiat", &r.fiat)?,
            amount: cv::dec("coin_amount", &r.coin_amount)?,
            method: cv::method_id_field("method_id", &r.method_id)?,
            release_on_verified: r.release_on_verified_payment,
        })
    }
}

/// The method a bind request describes; a channel's provider is the one the
/// operator declared for it.
///
/// # Errors
/// INVALID_ARGUMENT naming `kind` or `channel`.
pub fn method_details(
    r: &pb::BindPaymentMethodRequest,
    channels: &Channels,
) -> Result<MethodDetails, Status> {
    let (holder, account) = (r.holder.clone(), r.account.clone());
    // A field the kind has no use for is refused, never dropped.
    let unused = |field: &str, why: &str| Err(Status::invalid_argument(format!("{field} {why}")));
    if r.kind == pb::PaymentKind::Channel as i32 {
        for (field, text) in [
            ("holder", &r.holder),
            ("account", &r.account),
            ("bank", &r.bank),
        ] {
            if !text.is_empty() {
                return unused(
                    field,
                    "is not part of a CHANNEL method (the gateway takes the payment)",
                );
            }
        }
        return Ok(MethodDetails::Channel {
            provider: channels.provider(&r.channel).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "channel: no payment channel named {} is declared",
                    otc_engine::shown(&r.channel)
                ))
            })?,
            channel: r.channel.clone(),
        });
    }
    let kind = cv::method_kind("kind", r.kind)?;
    if !r.channel.is_empty() {
        return unused("channel", "is only for a CHANNEL method");
    }
    if kind != MethodKind::Bank && !r.bank.is_empty() {
        return unused("bank", "is only for a bank card");
    }
    Ok(match kind {
        MethodKind::Bank => MethodDetails::Bank {
            bank: r.bank.clone(),
            holder,
            card_number: account,
        },
        MethodKind::Alipay => MethodDetails::Alipay { holder, account },
        MethodKind::WeChat => MethodDetails::WeChat { holder, account },
    })
}

impl TryFrom<&pb::SetCapacityRequest> for CapacityRequest {
    type Error = Status;

    fn try_from(r: &pb::SetCapacityRequest) -> Result<Self, Status> {
        let quotes = r
            .quotes
            .iter()
            .map(|q| {
                Ok(MerchantQuote {
                    asset: cv::asset("quotes.asset", &q.asset)?,
                    fiat: cv::fiat("quotes.fiat", &q.fiat)?,
                    bid: cv::dec("quotes.bid", &q.bid)?,
                    min_fiat: cv::dec("quotes.min_fiat", &q.min_fiat)?,
                    max_fiat: cv::dec("quotes.max_fiat", &q.max_fiat)?,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let methods = r
            .methods
            .iter()
            .map(|k| cv::method_kind("methods", *k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CapacityRequest {
            quotes,
            methods,
            max_outstanding_fiat: cv::dec("max_outstanding_fiat", &r.max_outstanding_fiat)?,
        })
    }
}

/// A resolution field.
///
/// # Errors
/// INVALID_ARGUMENT naming `resolution`.
pub fn resolution(v: i32) -> Result<Resolution, Status> {
    match pb::Resolution::try_from(v) {
        Ok(pb::Resolution::Release) => Ok(Resolution::Release),
        Ok(pb::Resolution::Refund) => Ok(Resolution::Refund),
        _ => Err(Status::invalid_argument(
            "resolution must be RESOLUTION_RELEASE or RESOLUTION_REFUND",
        )),
    }
}

/// Fewest characters of a fund password.
pub const PASSWORD_CHARS_MIN: usize = 6;
/// Most characters of a fund password.
pub const PASSWORD_CHARS_MAX: usize = 128;

/// A fund-password field: required, the engine checks it. One longer than
/// any password can be is refused before it is hashed.
///
/// # Errors
/// INVALID_ARGUMENT naming `field` when empty or too long.
pub fn password<'a>(field: &str, text: &'a str) -> Result<&'a str, Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} is required for this action"
        )));
    }
    if text.chars().nth(PASSWORD_CHARS_MAX).is_some() {
        return Err(Status::invalid_argument(format!(
            "{field} is longer than any fund password ({PASSWORD_CHARS_MAX} characters)"
        )));
    }
    Ok(text)
}

/// A new fund password: 6 to 128 characters.
///
/// # Errors
/// INVALID_ARGUMENT naming `new_password` otherwise.
pub fn new_password(text: &str) -> Result<&str, Status> {
    let n = text.chars().count();
    if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&n) {
        return Err(Status::invalid_argument(format!(
            "new_password must be {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters"
        )));
    }
    Ok(text)
}

/// An uploaded file: its reference for the command and its bytes for the
/// writer. The id is the owner and the SHA-256 of the bytes, so a retry
/// names the same file and no two different files share an id; the engine
/// checks type, size and count (SPEC §11).
///
/// # Errors
/// INVALID_ARGUMENT naming `attachment.data` when the bytes are not a file
/// of the declared type (which types are allowed is the engine's rule), or
/// an image that declares no size or more than [`crate::image_size::PIXELS_MAX`]
/// pixels.
pub fn attachment(
    owner: UserId,
    a: Option<&pb::Attachment>,
) -> Result<(Option<AttachmentRef>, Option<Vec<u8>>), Status> {
    match a {
        Some(a) => {
            check_signature(&a.content_type, &a.data)?;
            check_pixels(&a.content_type, &a.data)?;
            let (file, bytes) = file(owner, a);
            Ok((Some(file), Some(bytes)))
        }
        None => Ok((None, None)),
    }
}

/// The bytes every file of a type allowed as an attachment begins with.
fn signature_matches(content_type: &str, data: &[u8]) -> Option<bool> {
    Some(match content_type {
        "image/png" => data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => data.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/webp" => data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP",
        "application/pdf" => data.starts_with(b"%PDF-"),
        _ => return None,
    })
}

/// An attachment is served with its declared type, so the bytes must be of
/// that type: a page declared `image/png` is refused, never shown.
fn check_signature(content_type: &str, data: &[u8]) -> Result<(), Status> {
    match signature_matches(content_type, data) {
        Some(false) => Err(Status::invalid_argument(format!(
            "attachment.data is not a {content_type} file (its first bytes do not match)"
        ))),
        // Types the engine does not allow are refused there, naming the field.
        Some(true) | None => Ok(()),
    }
}

/// An image is shown inline to the counterparty and to agents: it must
/// declare its size, and not more pixels than a viewer can decode (a small
/// file can declare billions: a decompression bomb).
fn check_pixels(content_type: &str, data: &[u8]) -> Result<(), Status> {
    use crate::image_size::{PIXELS_MAX, declared};
    match declared(content_type, data) {
        None => Ok(()),
        Some(None) => Err(Status::invalid_argument(format!(
            "attachment.data: this {content_type} file's width and height cannot be read from its header"
        ))),
        Some(Some((w, h))) if u64::from(w) * u64::from(h) > PIXELS_MAX => {
            Err(Status::invalid_argument(format!(
                "attachment.data is a {w} × {h} image ({} pixels); at most {PIXELS_MAX} pixels are accepted",
                u64::from(w) * u64::from(h)
            )))
        }
        Some(Some(_)) => Ok(()),
    }
}

fn file(owner: UserId, a: &pb::Attachment) -> (AttachmentRef, Vec<u8>) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&a.data);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let blob_id = format!("{}-{hex}", owner.0.simple());
    let file = AttachmentRef {
        blob_id,
        content_type: a.content_type.clone(),
        size_bytes: a.data.len() as u64,
        file_name: a.file_name.clone(),
    };
    (file, a.data.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn attachments_must_be_what_they_declare() {
        use super::check_signature;
        assert!(check_signature("image/png", b"\x89PNG\r\n\x1a\n....").is_ok());
        assert!(check_signature("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]).is_ok());
        assert!(check_signature("image/webp", b"RIFF\0\0\0\0WEBPVP8 ").is_ok());
        assert!(check_signature("application/pdf", b"%PDF-1.7").is_ok());
        let html = b"<html><script>alert(1)</script>";
        for t in ["image/png", "image/jpeg", "image/webp", "application/pdf"] {
            let e = check_signature(t, html).expect_err("html is not that type");
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains("attachment.data"), "{}", e.message());
        }
        // Undeclared types are the engine's to refuse.
        assert!(check_signature("text/html", html).is_ok());
    }

    #[test]
    fn images_must_declare_a_size_a_viewer_can_decode() {
        use super::check_pixels;
        use crate::image_size::tests::png_head as png;
        assert!(
            check_pixels("image/png", &png(8192, 6144)).is_ok(),
            "a phone's photo"
        );
        let bomb = check_pixels("image/png", &png(100_000, 100_000)).expect_err("a bomb");
        assert_eq!(bomb.code(), tonic::Code::InvalidArgument);
        assert!(
            bomb.message().contains("attachment.data")
                && bomb.message().contains("100000 × 100000"),
            "{}",
            bomb.message()
        );
        let headless = check_pixels("image/png", b"\x89PNG\r\n\x1a\n....").expect_err("no IHDR");
        assert!(
            headless.message().contains("attachment.data"),
            "{}",
            headless.message()
        );
        assert!(
            check_pixels("application/pdf", b"%PDF-1.7").is_ok(),
            "not an image"
        );
    }
}
