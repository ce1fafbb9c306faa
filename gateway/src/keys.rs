//! Key files and RSA2 (SHA256withRSA, PKCS#1 v1.5).
//!
//! Errors say which format was expected and what went wrong, never a byte of
//! the file: the caller adds the channel, the field and the path.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::refusal::Refusal;

/// Smallest RSA modulus accepted, in bits (what Alipay and WeChat Pay issue).
pub(crate) const RSA_BITS_MIN: usize = 2048;
/// Largest key or secret file read, in bytes.
pub(crate) const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Signs with a private key: RSA2.
pub(crate) type Rsa2Signer = SigningKey<Sha256>;
/// Verifies with a public key: RSA2.
pub(crate) type Rsa2Verifier = VerifyingKey<Sha256>;

/// Reads a whole key or secret file, bounded; the buffer is wiped on drop.
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".to_owned());
    }
    if meta.len() > KEY_FILE_BYTES_MAX {
        return Err(format!("larger than {KEY_FILE_BYTES_MAX} bytes"));
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

/// Reads a shared secret: the file's bytes less trailing `\r`/`\n`.
pub(crate) fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut bytes = read_key_file(path)?;
    while bytes.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

/// Reads an RSA private key file (see [`parse_private_key`]).
pub(crate) fn load_private_key(path: &Path) -> Result<RsaPrivateKey, String> {
    let bytes = read_key_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "not text (PEM or base64)".to_owned())?;
    parse_private_key(text)
}

/// Reads an RSA public key file (see [`parse_public_key`]).
pub(crate) fn load_public_key(path: &Path) -> Result<RsaPublicKey, String> {
    let bytes = read_key_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "not text (PEM or base64)".to_owned())?;
    parse_public_key(text)
}

/// An RSA private key: PKCS#8 PEM (`BEGIN PRIVATE KEY`), PKCS#1 PEM
/// (`BEGIN RSA PRIVATE KEY`), or bare base64 of either DER, as Alipay's key
/// tool writes it. At least [`RSA_BITS_MIN`] bits.
pub(crate) fn parse_private_key(text: &str) -> Result<RsaPrivateKey, String> {
    let text = text.trim();
    let key = if text.contains("-----BEGIN PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| format!("bad PKCS#8 PEM: {e}"))?
    } else if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| format!("bad PKCS#1 PEM: {e}"))?
    } else if text.contains("-----BEGIN") {
        return Err(
            "not an RSA private key (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                .to_owned(),
        );
    } else {
        let der = bare_base64(text)?;
        RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
            .map_err(|_| "base64 of neither a PKCS#8 nor a PKCS#1 RSA private key".to_owned())?
    };
    check_bits(key.n().bits())?;
    Ok(key)
}

/// An RSA public key: SPKI PEM (`BEGIN PUBLIC KEY`), PKCS#1 PEM
/// (`BEGIN RSA PUBLIC KEY`), or the bare base64 SPKI line Alipay's console
/// shows. At least [`RSA_BITS_MIN`] bits. Certificates are refused with a hint.
pub(crate) fn parse_public_key(text: &str) -> Result<RsaPublicKey, String> {
    let text = text.trim();
    let key = if text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("is a certificate; give its public key \
                    (openssl x509 -pubkey -noout -in CERT)"
            .to_owned());
    } else if text.contains("-----BEGIN PUBLIC KEY-----") {
        RsaPublicKey::from_public_key_pem(text).map_err(|e| format!("bad SPKI PEM: {e}"))?
    } else if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(text).map_err(|e| format!("bad PKCS#1 PEM: {e}"))?
    } else if text.contains("-----BEGIN") {
        return Err(
            "not an RSA public key (expected BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)".to_owned(),
        );
    } else {
        let der = bare_base64(text)?;
        RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
            .map_err(|_| "base64 of neither an SPKI nor a PKCS#1 RSA public key".to_owned())?
    };
    check_bits(key.n().bits())?;
    Ok(key)
}

/// Decodes base64 spread over lines.
fn bare_base64(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    BASE64
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "neither PEM nor base64".to_owned())
}

fn check_bits(bits: usize) -> Result<(), String> {
    if bits < RSA_BITS_MIN {
        return Err(format!(
            "a {bits}-bit RSA key; at least {RSA_BITS_MIN} bits are required"
        ));
    }
    Ok(())
}

/// Signs `message` with RSA2 and returns the signature in base64.
pub(crate) fn rsa2_sign(key: &Rsa2Signer, message: &[u8]) -> Result<String, String> {
    let signature = key
        .try_sign(message)
        .map_err(|_| "RSA signing failed".to_owned())?;
    Ok(BASE64.encode(signature.to_bytes()))
}

/// Verifies a base64 RSA2 signature of `message`.
///
/// # Errors
/// [`Refusal::BadSignature`] when it is not base64 or does not verify: an
/// undecodable signature is as forged as a wrong one.
pub(crate) fn rsa2_verify(
    key: &Rsa2Verifier,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), Refusal> {
    let bytes = BASE64
        .decode(signature_b64.trim())
        .map_err(|_| Refusal::BadSignature)?;
    let signature = Signature::try_from(bytes.as_slice()).map_err(|_| Refusal::BadSignature)?;
    key.verify(message, &signature)
        .map_err(|_| Refusal::BadSignature)
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    use super::*;
    use crate::test_keys::keys;

    #[test]
    fn private_keys_load_in_every_accepted_format() {
        let key = &keys().app;
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).expect("encode");
        let pkcs1 = key.to_pkcs1_pem(LineEnding::CRLF).expect("encode");
        let der = key.to_pkcs8_der().expect("encode");
        let bare = BASE64.encode(der.as_bytes());
        for text in [pkcs8.as_str(), pkcs1.as_str(), bare.as_str()] {
            assert_eq!(parse_private_key(text).as_ref(), Ok(key));
        }
        assert!(parse_private_key("-----BEGIN EC PRIVATE KEY-----\nAA==\n").is_err());
        assert!(parse_private_key("not a key").is_err());
    }

    #[test]
    fn public_keys_load_in_every_accepted_format() {
        let key = keys().alipay_gateway.to_public_key();
        let spki = key.to_public_key_pem(LineEnding::LF).expect("encode");
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).expect("encode");
        let bare: String = spki.lines().filter(|l| !l.starts_with("-----")).collect();
        for text in [spki.as_str(), pkcs1.as_str(), bare.as_str()] {
            assert_eq!(parse_public_key(text).as_ref(), Ok(&key));
        }
        let cert = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        assert!(parse_public_key(cert).is_err_and(|e| e.contains("openssl x509 -pubkey")));
    }

    #[test]
    fn short_keys_are_refused_without_echoing_the_key() {
        let small = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).expect("keygen");
        let pem = small.to_pkcs8_pem(LineEnding::LF).expect("encode");
        let err = parse_private_key(&pem).expect_err("1024-bit key");
        assert!(err.contains("1024-bit"), "{err}");
        let body: String = pem.lines().nth(1).unwrap_or_default().to_owned();
        assert!(!err.contains(&body));
    }

    #[test]
    fn rsa2_signatures_verify_only_with_the_matching_key() {
        let signer = Rsa2Signer::new(keys().app.clone());
        let right = Rsa2Verifier::new(keys().app.to_public_key());
        let wrong = Rsa2Verifier::new(keys().stranger.to_public_key());
        let signature = rsa2_sign(&signer, b"a=1&b=2").expect("sign");
        assert_eq!(rsa2_verify(&right, b"a=1&b=2", &signature), Ok(()));
        assert_eq!(
            rsa2_verify(&right, b"a=1&b=3", &signature),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            rsa2_verify(&wrong, b"a=1&b=2", &signature),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            rsa2_verify(&right, b"a=1&b=2", "%%%"),
            Err(Refusal::BadSignature)
        );
    }
}
