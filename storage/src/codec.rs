//! Record framing and keys.
//!
//! Every value is `[format version: u8][crc32 of payload: u32 LE][payload]`,
//! the payload being bincode. Reading checks both and names the key on
//! failure: storage never serves a record it cannot vouch for.
//!
//! All records live in one sled tree so that one `Batch` (atomic in sled)
//! carries a whole group commit. Keys start with a one-byte kind.

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;

/// Version of the record format; bumped on any incompatible change.
/// 2: compact (varint) bincode; journal, events and request ids stored as
/// one record per group commit.
pub const FORMAT_VERSION: u8 = 2;
/// Bytes before the payload.
const HEADER_LEN: usize = 5;

/// Key kinds (first byte of every key).
pub mod kind {
    /// Journal entries of one group commit, by the first one's position.
    pub const JOURNAL: u8 = b'j';
    /// Events of one group commit, by the first one's sequence number.
    pub const EVENT: u8 = b'e';
    /// Request-id records of one group commit, by their latest time then a
    /// counter, so expired ones are a key range.
    pub const IDEMPOTENCY: u8 = b'i';
    /// Trade history record, by trade id.
    pub const TRADE: u8 = b't';
    /// Appeal history record, by trade id.
    pub const APPEAL: u8 = b'a';
    /// Listing history record, by listing id.
    pub const LISTING: u8 = b'l';
    /// Buy order history record, by order id.
    pub const BUY_ORDER: u8 = b'o';
    /// Per-user trade index: user then trade id (value empty).
    pub const USER_TRADE: u8 = b'u';
    /// Per-user listing index: user then listing id (value empty).
    pub const USER_LISTING: u8 = b'v';
    /// Chat message, by trade id then event sequence.
    pub const CHAT: u8 = b'c';
    /// Attachment chunk, by blob id and chunk number.
    pub const BLOB: u8 = b'b';
    /// Snapshot chunk, by chunk number.
    pub const SNAPSHOT: u8 = b's';
    /// Metadata (snapshot header, first retained event).
    pub const META: u8 = b'm';
}

/// `kind ++ n (big-endian)`: sorts by `n`.
pub fn key_u64(kind: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

/// `kind ++ t ++ n`, sorting by time `t` (signed milliseconds) then `n`.
pub fn key_time(kind: u8, t: i64, n: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = kind;
    // Flipping the sign bit makes signed order and byte order agree.
    k[1..9].copy_from_slice(&((t as u64) ^ (1 << 63)).to_be_bytes());
    k[9..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The counter in a `key_time` key.
pub fn key_time_n(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// `kind ++ text`.
pub fn key_str(kind: u8, text: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + text.len());
    k.push(kind);
    k.extend_from_slice(text.as_bytes());
    k
}

/// The number in a `key_u64` key.
pub fn key_n(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Readable form of a key for error messages.
pub fn show_key(key: &[u8]) -> String {
    match (key.first(), key_n(key)) {
        (Some(&k), Some(n)) if key.len() == 9 => format!("{}/{n}", k as char),
        (Some(&k), Some(n)) if key.len() == 17 => {
            format!("{}/{n}/{}", k as char, key_time_n(key).unwrap_or(0))
        }
        (Some(&k), _) => format!("{}/{}", k as char, String::from_utf8_lossy(&key[1..])),
        (None, _) => "<empty key>".into(),
    }
}

/// Frames raw bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The one bincode configuration of every record: little-endian, varint
/// integers (compact: most numbers are small), no trailing bytes.
fn options() -> impl Options + Copy {
    bincode::DefaultOptions::new()
}

/// Serializes a value, unframed (snapshot bytes are chunked and framed later).
///
/// # Errors
/// The value cannot be serialized (a bug; reported, never silently dropped).
pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StorageError> {
    options()
        .serialize(value)
        .map_err(|e| StorageError::Encode(e.to_string()))
}

/// Deserializes unframed bytes written by [`serialize`].
///
/// # Errors
/// The bytes do not decode; the message says why.
pub fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    options().deserialize(bytes).map_err(|e| e.to_string())
}

/// Serializes and frames a value, in one buffer.
///
/// # Errors
/// The value cannot be serialized (a bug; reported, never silently dropped).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StorageError> {
    let opts = options();
    let len = opts
        .serialized_size(value)
        .map_err(|e| StorageError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + usize::try_from(len).unwrap_or(0));
    out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0, 0]);
    opts.serialize_into(&mut out, value)
        .map_err(|e| StorageError::Encode(e.to_string()))?;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks a frame's version and checksum; returns the payload.
///
/// # Errors
/// [`StorageError::Corrupt`] naming the key and what is wrong.
pub fn unframe<'a>(key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8], StorageError> {
    let corrupt = |what: String| StorageError::Corrupt {
        key: show_key(key),
        what,
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "record is {} bytes, shorter than its header",
            bytes.len()
        )));
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} (this build reads {FORMAT_VERSION})",
            bytes[0]
        )));
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let payload = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(corrupt(format!(
            "checksum {actual:08x} does not match the stored {stored:08x}"
        )));
    }
    Ok(payload)
}

/// Unframes and deserializes a value.
///
/// # Errors
/// [`StorageError::Corrupt`] naming the key, for a bad frame or payload.
pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StorageError> {
    let payload = unframe(key, bytes)?;
    deserialize(payload).map_err(|e| StorageError::Corrupt {
        key: show_key(key),
        what: format!("payload does not decode: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let key = key_u64(kind::EVENT, 7);
        let bytes = encode(&("hello", 42u64)).unwrap();
        let back: (String, u64) = decode(&key, &bytes).unwrap();
        assert_eq!(back, ("hello".to_owned(), 42));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let err = decode::<(String, u64)>(&key, &flipped)
            .unwrap_err()
            .to_string();
        assert!(err.contains("e/7") && err.contains("checksum"), "{err}");
        let mut old = bytes;
        old[0] = 0;
        let err = decode::<(String, u64)>(&key, &old).unwrap_err().to_string();
        assert!(err.contains("format version 0"), "{err}");
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(key_u64(kind::JOURNAL, 2) < key_u64(kind::JOURNAL, 10));
        assert_eq!(key_n(&key_u64(kind::JOURNAL, 300)), Some(300));
        assert_eq!(show_key(&key_str(kind::BLOB, "ev-1")), "b/ev-1");
        assert!(key_time(kind::IDEMPOTENCY, -5, 9) < key_time(kind::IDEMPOTENCY, 3, 0));
        assert!(key_time(kind::IDEMPOTENCY, 3, 0) < key_time(kind::IDEMPOTENCY, 3, 1));
        assert_eq!(key_time_n(&key_time(kind::IDEMPOTENCY, 3, 7)), Some(7));
    }
}
