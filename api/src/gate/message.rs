//! An error's message travels in the `grpc-message` header, which clients
//! bound (grpc-core takes 8 KiB of metadata): past that, the caller sees a
//! transport error instead of the status and the field it names. Messages
//! that echo input cut it where they are made ([`otc_engine::shown`]); this
//! is the backstop for any other, applied to every answer the gate passes.

use tonic::codegen::http::{HeaderMap, HeaderValue};

/// The longest `grpc-message` sent, in bytes as percent-encoded.
pub const MESSAGE_BYTES_MAX: usize = 1024;

/// "…", percent-encoded.
const ELLIPSIS: &str = "%E2%80%A6";

/// Cuts an over-long `grpc-message` to [`MESSAGE_BYTES_MAX`] bytes, at a
/// character's start (never inside an escape or a UTF-8 sequence), ending
/// it with "…". The start of the message, which names the field, is kept.
pub fn cap(headers: &mut HeaderMap) {
    let Some(value) = headers.get("grpc-message") else {
        return;
    };
    let b = value.as_bytes();
    if b.len() <= MESSAGE_BYTES_MAX {
        return;
    }
    let budget = MESSAGE_BYTES_MAX - ELLIPSIS.len();
    let mut start = 0; // where the character holding `i` starts
    let mut i = 0;
    while i < b.len() {
        let (len, byte) = token(b, i);
        if !(0x80..0xC0).contains(&byte) {
            start = i;
        }
        if i + len > budget {
            break;
        }
        i += len;
    }
    let mut cut = b[..start].to_vec();
    cut.extend_from_slice(ELLIPSIS.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&cut) {
        headers.insert("grpc-message", v);
    }
}

/// What tonic says of a request message over the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: found ";

/// A request message over the server's limit is refused, as gRPC's other
/// implementations refuse one, with RESOURCE_EXHAUSTED (tonic says
/// OUT_OF_RANGE, which a client reads as a field's value out of range),
/// naming the sizes and the setting behind the limit.
pub fn too_large(headers: &mut HeaderMap) {
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    if status.code() != tonic::Code::OutOfRange {
        return;
    }
    let Some(rest) = status.message().strip_prefix(TONIC_TOO_LARGE) else {
        return;
    };
    let number = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let (found, limit) = match rest.split_once(',') {
        Some((found, limit)) => (number(found), number(limit)),
        None => (number(rest), String::new()),
    };
    let why = format!(
        "the request message is {found} bytes, over this server's limit of {limit} bytes for one \
         message (--attachment-max plus 1MiB)"
    );
    let _ = tonic::Status::resource_exhausted(why).add_header(headers);
}

/// The escape or byte at `i`: its length in the header and the byte it
/// stands for.
fn token(b: &[u8], i: usize) -> (usize, u8) {
    let hex = |c: u8| char::from(c).to_digit(16);
    if b[i] == b'%'
        && let (Some(hi), Some(lo)) = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        )
    {
        // Two hex digits: at most 0xFF.
        return (3, u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
    }
    (1, b[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn decoded(headers: &HeaderMap) -> String {
        let b = headers.get("grpc-message").expect("message").as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let (len, byte) = token(b, i);
            out.push(byte);
            i += len;
        }
        String::from_utf8(out).expect("whole characters")
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_keeping_its_start() {
        for filler in ["B", "中", "é", "%", "😀"] {
            let message = format!(
                "listing_id must look like \"L-123\", got {}",
                filler.repeat(9_000)
            );
            let mut headers = headers_of(Status::invalid_argument(message.clone()));
            cap(&mut headers);
            let sent = headers.get("grpc-message").expect("message").len();
            assert!(sent <= MESSAGE_BYTES_MAX, "{filler}: {sent} bytes");
            let text = decoded(&headers);
            assert!(text.starts_with("listing_id must look like"), "{text}");
            assert!(text.ends_with('…'), "{filler}");
            assert!(
                message.starts_with(text.trim_end_matches('…')),
                "{filler}: a prefix"
            );
        }
    }

    /// The headers of a trailers-only answer of `status`.
    fn headers_of(status: Status) -> HeaderMap {
        status.into_http::<()>().into_parts().0.headers
    }

    #[test]
    fn tonics_too_large_is_resource_exhausted_naming_the_sizes() {
        let mut headers = headers_of(Status::out_of_range(
            "Error, decoded message length too large: found 7340045 bytes, the limit is: 6291456 bytes",
        ));
        too_large(&mut headers);
        let s = Status::from_header_map(&headers).expect("status");
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "the request message is 7340045 bytes, over this server's limit of 6291456 bytes \
             for one message (--attachment-max plus 1MiB)"
        );
        // Any other OUT_OF_RANGE is the server's own: left alone.
        let mut headers = headers_of(Status::out_of_range(
            "after_seq 9 is past the newest event 3",
        ));
        let before = headers.clone();
        too_large(&mut headers);
        assert_eq!(headers, before);
    }

    #[test]
    fn a_short_message_is_left_alone() {
        let mut headers = headers_of(Status::not_found("trade T-1 not found"));
        let before = headers.clone();
        cap(&mut headers);
        assert_eq!(headers, before);
    }
}
