//! Alipay's notification body: `application/x-www-form-urlencoded`, whose
//! `charset` parameter (utf-8 by default, or gbk) says how the
//! percent-decoded bytes are text.
//!
//! The signed content is built from the decoded *bytes*, in the charset the
//! gateway signed them in, so a GBK notification verifies without a round
//! trip through Unicode.

use encoding_rs::{Encoding, GBK, UTF_8};

use crate::refusal::Refusal;
use crate::wire::form_decode;

/// Most parameters in a notification (Alipay sends about 30).
pub(crate) const FORM_PARAMS_MAX: usize = 128;
/// Longest parameter name echoed in a refusal, in characters.
const KEY_ECHO_CHARS_MAX: usize = 32;

/// One decoded parameter.
struct Param {
    /// The name, percent-decoded bytes.
    raw_key: Vec<u8>,
    /// The value, percent-decoded bytes (in the body's charset).
    raw_value: Vec<u8>,
    /// The name as text.
    key: String,
    /// The value as text.
    value: String,
}

/// A parsed notification body: unique parameters in body order.
pub(crate) struct Form {
    params: Vec<Param>,
}

impl Form {
    /// Parses a form body.
    ///
    /// # Errors
    /// Malformed on a bad percent escape, a repeated parameter, an unknown
    /// charset, text not valid in its charset, or too many parameters.
    pub(crate) fn parse(body: &[u8]) -> Result<Form, Refusal> {
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for part in body.split(|&b| b == b'&') {
            if part.is_empty() {
                continue;
            }
            if raw.len() == FORM_PARAMS_MAX {
                return Err(Refusal::malformed(
                    "body",
                    format!("more than {FORM_PARAMS_MAX} parameters"),
                ));
            }
            let (key, value) = match part.iter().position(|&b| b == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &[][..]),
            };
            let key = form_decode("body", key)?;
            if key.is_empty() {
                return Err(Refusal::malformed("body", "a parameter has no name"));
            }
            let value = form_decode(&echo(&key), value)?;
            raw.push((key, value));
        }
        refuse_repeats(&raw)?;
        let encoding = match raw.iter().find(|(k, _)| k == b"charset") {
            Some((_, v)) => charset(v)?,
            None => UTF_8,
        };
        let params = raw
            .into_iter()
            .map(|(raw_key, raw_value)| {
                let key = decode(encoding, &raw_key, &echo(&raw_key))?;
                // Named by its echo, never its decoded text: a refusal is logged
                // before any signature is checked.
                let value = decode(encoding, &raw_value, &echo(&raw_key))?;
                Ok(Param {
                    raw_key,
                    raw_value,
                    key,
                    value,
                })
            })
            .collect::<Result<Vec<_>, Refusal>>()?;
        Ok(Form { params })
    }

    /// The decoded value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// The non-empty value of `key`.
    ///
    /// # Errors
    /// Malformed naming `key` when absent or empty.
    pub(crate) fn required(&self, key: &str) -> Result<&str, Refusal> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Refusal::malformed(key, "missing"))
    }

    /// What Alipay signed: every parameter but `sign` and `sign_type`, empty
    /// values dropped, sorted by name, joined as `k=v&k=v` with decoded
    /// values, in the body's charset.
    pub(crate) fn signed_content(&self) -> Vec<u8> {
        let mut signed: Vec<&Param> = self
            .params
            .iter()
            .filter(|p| p.raw_key != b"sign" && p.raw_key != b"sign_type")
            .filter(|p| !p.raw_value.is_empty())
            .collect();
        signed.sort_by(|a, b| a.raw_key.cmp(&b.raw_key));
        let mut content = Vec::new();
        for (i, p) in signed.iter().enumerate() {
            if i > 0 {
                content.push(b'&');
            }
            content.extend_from_slice(&p.raw_key);
            content.push(b'=');
            content.extend_from_slice(&p.raw_value);
        }
        content
    }
}

/// Refuses a body naming a parameter twice: which one would count is
/// ambiguous, and a verifier must not guess.
fn refuse_repeats(raw: &[(Vec<u8>, Vec<u8>)]) -> Result<(), Refusal> {
    let mut keys: Vec<&[u8]> = raw.iter().map(|(k, _)| k.as_slice()).collect();
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(Refusal::malformed(echo(w[0]), "repeated")),
        None => Ok(()),
    }
}

/// The encoding a `charset` value names: utf-8, or GBK (gbk, gb2312 and
/// gb18030 decode alike).
fn charset(value: &[u8]) -> Result<&'static Encoding, Refusal> {
    match value.to_ascii_lowercase().as_slice() {
        b"utf-8" | b"utf8" => Ok(UTF_8),
        b"gbk" | b"gb2312" | b"gb18030" => Ok(GBK),
        _ => Err(Refusal::malformed("charset", "neither utf-8 nor gbk")),
    }
}

fn decode(encoding: &'static Encoding, bytes: &[u8], field: &str) -> Result<String, Refusal> {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| Refusal::malformed(field, format!("not valid {}", encoding.name())))
}

/// A parameter name safe to put in a refusal.
fn echo(key: &[u8]) -> String {
    key.iter()
        .take(KEY_ECHO_CHARS_MAX)
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_content_sorts_drops_sign_and_empties() {
        let form = Form::parse(b"b=2&sign=xx&a=1+1&sign_type=RSA2&e=&c=%E6%B5%8B").expect("valid");
        assert_eq!(form.signed_content(), "a=1 1&b=2&c=测".as_bytes());
        assert_eq!(form.get("a"), Some("1 1"));
        assert_eq!(form.get("e"), Some(""));
        assert!(form.required("e").is_err());
    }

    #[test]
    fn gbk_bytes_are_signed_as_sent_and_decoded_as_gbk() {
        // "测试" in GBK is B2 E2 CA D4.
        let form = Form::parse(b"charset=gbk&subject=%B2%E2%CA%D4").expect("valid");
        assert_eq!(form.get("subject"), Some("测试"));
        assert_eq!(
            form.signed_content(),
            b"charset=gbk&subject=\xB2\xE2\xCA\xD4"
        );
        let bad_utf8 = Form::parse(b"charset=utf-8&subject=%B2%E2%CA%D4");
        assert!(matches!(bad_utf8, Err(Refusal::Malformed { field, .. }) if field == "subject"));
    }

    #[test]
    fn a_refusal_names_a_hostile_key_by_its_echo() {
        // The key decodes (a newline and a forged log line); its value is not
        // UTF-8. The refusal, logged before any signature check, must carry
        // neither the newline nor the key's own text.
        let hostile = Form::parse(b"a%0A2026-01-01T00:00:00Z%20INFO%20fake=%FF");
        let Err(Refusal::Malformed { field, .. }) = hostile else {
            panic!("refused as malformed: {:?}", hostile.err());
        };
        assert_eq!(field, "a?2026?01?01T00?00?00Z?INFO?fake");
        let Err(refusal) = Form::parse(b"a%0Ab=%FF") else {
            panic!("not UTF-8");
        };
        let shown = refusal.to_string();
        assert!(!shown.contains('\n'), "{shown:?}");
    }

    #[test]
    fn repeats_unknown_charsets_and_bad_escapes_are_malformed() {
        let repeated = Form::parse(b"a=1&total_amount=1&total_amount=2");
        assert_eq!(
            repeated.err(),
            Some(Refusal::malformed("total_amount", "repeated"))
        );
        let repeated_sign = Form::parse(b"sign=a&a=1&sign=b");
        assert_eq!(
            repeated_sign.err(),
            Some(Refusal::malformed("sign", "repeated"))
        );
        assert!(Form::parse(b"charset=big5&a=1").is_err());
        assert!(Form::parse(b"a=%G1").is_err());
        assert!(Form::parse(b"=1").is_err());
        let many: Vec<u8> = (0..=FORM_PARAMS_MAX)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        assert!(Form::parse(&many).is_err());
    }
}
