//! Why a notification was not accepted.
//!
//! A refusal's text goes into logs and into the HTTP answer, so it never holds
//! a signature, a key, a secret or a copy of the body; it names the field and
//! says what is wrong with it.

use crate::wire::TIMESTAMP_SKEW_SECS_MAX;

/// Longest serial echoed in [`Refusal::UnknownKey`], in characters.
const SERIAL_ECHO_CHARS_MAX: usize = 64;

/// Why [`crate::Channel::verify`] refused a notification. Every refusal
/// changes no state; the server logs it, counts it under [`Refusal::kind`] and
/// answers with [`crate::Channel::refused`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The signature does not verify with the channel's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The request lacks what carries the signature (a header, or Alipay's
    /// `sign` parameter).
    #[error("the request carries no {what}")]
    Unsigned {
        /// The missing header or parameter.
        what: &'static str,
    },
    /// The signed timestamp is too far from `now` (either way).
    #[error(
        "the timestamp is {} s in the {}; at most {} s either way are accepted",
        .skew_secs.unsigned_abs(),
        if *.skew_secs >= 0 { "past" } else { "future" },
        TIMESTAMP_SKEW_SECS_MAX
    )]
    Stale {
        /// `now - timestamp`, in seconds: positive when it is in the past.
        skew_secs: i64,
    },
    /// A signed notification for another account (app id, mchid, seller id).
    #[error("{field} is not this channel's")]
    ForeignAccount {
        /// The field that names the account.
        field: &'static str,
    },
    /// The WeChat platform key serial names no configured key.
    #[error("no platform key with serial {serial} is configured")]
    UnknownKey {
        /// The serial the request named (sanitized, shortened).
        serial: String,
    },
    /// The WeChat resource does not decrypt (and authenticate) with the
    /// APIv3 key: forged or for another merchant.
    #[error("the resource does not decrypt with this channel's APIv3 key")]
    Undecryptable,
    /// The request cannot be parsed, or a field is not what the protocol
    /// allows (e.g. an amount with more than 2 decimal places).
    #[error("{field}: {why}")]
    Malformed {
        /// The field, header or parameter.
        field: String,
        /// What is wrong with it.
        why: String,
    },
}

impl Refusal {
    /// The metrics label: `"forged"` for anything that failed authentication
    /// (signature, timestamp, account, key, decryption), `"malformed"` for
    /// requests that could not be parsed.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Malformed { .. } => "malformed",
            Refusal::BadSignature
            | Refusal::Unsigned { .. }
            | Refusal::Stale { .. }
            | Refusal::ForeignAccount { .. }
            | Refusal::UnknownKey { .. }
            | Refusal::Undecryptable => "forged",
        }
    }

    /// Whether the request failed authentication (see [`Refusal::kind`]).
    pub fn is_forged(&self) -> bool {
        self.kind() == "forged"
    }

    /// A [`Refusal::Malformed`] naming `field`.
    pub(crate) fn malformed(field: impl Into<String>, why: impl Into<String>) -> Refusal {
        Refusal::Malformed {
            field: field.into(),
            why: why.into(),
        }
    }

    /// A [`Refusal::UnknownKey`] whose serial is safe to log: only ASCII
    /// letters, digits, `-` and `_`, at most 64 of them.
    pub(crate) fn unknown_key(serial: &str) -> Refusal {
        let serial = serial
            .chars()
            .take(SERIAL_ECHO_CHARS_MAX)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        Refusal::UnknownKey { serial }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_split_forged_from_malformed() {
        assert_eq!(Refusal::BadSignature.kind(), "forged");
        assert_eq!(Refusal::Stale { skew_secs: 301 }.kind(), "forged");
        assert_eq!(Refusal::ForeignAccount { field: "app_id" }.kind(), "forged");
        assert_eq!(Refusal::unknown_key("AB").kind(), "forged");
        assert_eq!(Refusal::Undecryptable.kind(), "forged");
        assert_eq!(Refusal::Unsigned { what: "sign" }.kind(), "forged");
        assert_eq!(Refusal::malformed("amount", "x").kind(), "malformed");
        assert!(!Refusal::malformed("amount", "x").is_forged());
    }

    #[test]
    fn unknown_serial_is_sanitized_and_bounded() {
        let refusal = Refusal::unknown_key(&format!("AB\n<script>{}", "9".repeat(200)));
        let Refusal::UnknownKey { serial } = &refusal else {
            panic!("expected UnknownKey, got {refusal:?}");
        };
        assert!(serial.starts_with("AB??script?"));
        assert_eq!(serial.chars().count(), SERIAL_ECHO_CHARS_MAX);
    }

    #[test]
    fn messages_name_the_field() {
        let text = Refusal::malformed("total_amount", "more than 2 decimal places").to_string();
        assert_eq!(text, "total_amount: more than 2 decimal places");
        let text = Refusal::Stale { skew_secs: -400 }.to_string();
        assert_eq!(
            text,
            "the timestamp is 400 s in the future; at most 300 s either way are accepted"
        );
        let text = Refusal::Stale { skew_secs: 400 }.to_string();
        assert_eq!(
            text,
            "the timestamp is 400 s in the past; at most 300 s either way are accepted"
        );
    }
}
