//! Record framing and keys.
//!
//! Every value is `[format version: u8][crc32 of payload: u32 LE][payload]`,
//! the payload being bincode. Reading checks both and names the key on
//! failure: storage never serves a record it cannot vouch for.
//!
//! All records live in one sled tree: one `Batch` (one journal record)
//! carries a whole group commit. Keys start with a one-byte kind.

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;

/// Version of the record format; bumped on any incompatible change.
/// 2: compact (varint) bincode; journal, events and request ids stored as
/// one record per group commit. 3: every record in pieces of at most 4 KiB.
/// 8: a trade counts its chat (SPEC §18); the engine's settings gained the
/// chat bounds; `ApplyMissedPayment` carries a note; a bill's report carries
/// its waiting payments (all in one step: no build wrote 8 without them).
/// 9: the engine's settings gained `match_scan_max`. 10: the settings gained
/// `open_buys_per_user_max` and a user's record its `open_buys`; a bill's
/// report and record carry the day they cover (`window`). 11: a mistake's
/// handler and `MistakeHandled`'s agent are optional (a late notification
/// settles a `MISSING_HERE`). 12: `PaymentVerified` and `PaymentAnomaly`
/// name their actor (the gateway, or reconciliation applying a bill's line);
/// a mistake's facts carry the bill's reference (`REFERENCE_MISMATCH`).
/// A data dir of another version is refused at open, naming both; there is
/// no migration.
pub const FORMAT_VERSION: u8 = 12;
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
    /// First replies of a group's request ids (read only for a retry), keyed
    /// like the group's [`IDEMPOTENCY`] record.
    pub const REPLY: u8 = b'r';
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

/// Largest piece of a record: group records, snapshots and attachments are
/// split into pieces of at most this many bytes. sled 0.34 moves a page (a
/// leaf of up to 17 entries) bigger than a quarter of its 512 KiB segment
/// into a separate blob file that it never fsyncs; 17 × 4 KiB stays far below,
/// so every byte lives in the `db` file the commit `fdatasync`s.
pub const PIECE_BYTES: usize = 4 * 1024;

/// Key of piece `i` of `n` of the record named `prefix`: `prefix ++ i ++ n`
/// (big-endian), so a record's pieces are adjacent and in order.
pub fn piece_key(prefix: &[u8], i: u32, n: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&i.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// Splits a piece key into its prefix, piece number and piece count.
pub fn split_piece_key(key: &[u8]) -> Option<(&[u8], u32, u32)> {
    let cut = key.len().checked_sub(8)?;
    let (prefix, tail) = key.split_at(cut);
    let i = u32::from_be_bytes(tail.get(..4)?.try_into().ok()?);
    let n = u32::from_be_bytes(tail.get(4..)?.try_into().ok()?);
    Some((prefix, i, n))
}

/// A key and its framed value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Encodes a value and splits it into framed pieces (each with its own
/// version and checksum), keyed by [`piece_key`] under `prefix`.
///
/// # Errors
/// The value cannot be serialized (a bug).
pub fn encode_pieces<T: Serialize + ?Sized>(
    prefix: &[u8],
    value: &T,
) -> Result<Vec<KeyValue>, StorageError> {
    let bytes = serialize(value)?;
    let n = u32::try_from(bytes.len().div_ceil(PIECE_BYTES).max(1))
        .map_err(|_| StorageError::Encode("record too large to split".into()))?;
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[][..]]
    } else {
        bytes.chunks(PIECE_BYTES).collect()
    };
    Ok(pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| (piece_key(prefix, i as u32, n), frame(piece)))
        .collect())
}

/// Reassembles pieces (in key order) of one record and decodes it, checking
/// that each is framed correctly and that none is missing.
///
/// # Errors
/// [`StorageError::Corrupt`] naming the key.
pub fn decode_pieces<T: DeserializeOwned>(
    pieces: &[(sled::IVec, sled::IVec)],
) -> Result<T, StorageError> {
    let mut payload = Vec::new();
    let mut name = Vec::new();
    for (at, (key, bytes)) in pieces.iter().enumerate() {
        let corrupt = |what: String| StorageError::Corrupt {
            key: show_key(key),
            what,
        };
        // The frame first: data of another format version says so plainly.
        let piece = unframe(key, bytes)?;
        let (_, i, n) = split_piece_key(key).ok_or_else(|| corrupt("not a piece key".into()))?;
        if i as usize != at || n as usize != pieces.len() {
            return Err(corrupt(format!(
                "piece {i} of {n} found where piece {at} of {} was expected (a piece is missing)",
                pieces.len()
            )));
        }
        payload.extend_from_slice(piece);
        name = key.to_vec();
    }
    deserialize(&payload).map_err(|e| StorageError::Corrupt {
        key: show_key(&name),
        what: format!("payload does not decode: {e}"),
    })
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
    // Keys of records stored in pieces: the record's key, then the piece.
    let piece_key_len = match key.first() {
        Some(
            &kind::JOURNAL
            | &kind::EVENT
            | &kind::TRADE
            | &kind::APPEAL
            | &kind::LISTING
            | &kind::BUY_ORDER,
        ) => Some(17),
        Some(&kind::IDEMPOTENCY | &kind::REPLY | &kind::CHAT) => Some(25),
        _ => None,
    };
    if piece_key_len == Some(key.len())
        && let Some((prefix, i, n)) = split_piece_key(key)
    {
        return format!("{} piece {}/{n}", show_prefix(prefix), i + 1);
    }
    show_prefix(key)
}

fn show_prefix(key: &[u8]) -> String {
    match (key.first(), key_n(key)) {
        (Some(&k), Some(n)) if key.len() == 9 => format!("{}/{n}", k as char),
        (Some(&k @ (kind::IDEMPOTENCY | kind::REPLY)), Some(n)) if key.len() == 17 => {
            // Undo the sign flip of `key_time`: show the milliseconds.
            let t = (n ^ (1 << 63)) as i64;
            format!("{}/{t}/{}", k as char, key_time_n(key).unwrap_or(0))
        }
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
    fn records_split_into_pieces_and_back() {
        let value: Vec<u64> = (0..5_000).collect();
        let prefix = key_u64(kind::EVENT, 9);
        let pieces = encode_pieces(&prefix, &value).unwrap();
        assert!(pieces.len() > 2, "{} pieces", pieces.len());
        assert!(
            pieces
                .iter()
                .all(|(_, v)| v.len() <= PIECE_BYTES + HEADER_LEN)
        );
        let stored: Vec<(sled::IVec, sled::IVec)> = pieces
            .iter()
            .map(|(k, v)| (k.as_slice().into(), v.as_slice().into()))
            .collect();
        assert_eq!(decode_pieces::<Vec<u64>>(&stored).unwrap(), value);
        let mut gap = stored.clone();
        gap.remove(1);
        let err = decode_pieces::<Vec<u64>>(&gap).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(key_u64(kind::JOURNAL, 2) < key_u64(kind::JOURNAL, 10));
        assert_eq!(key_n(&key_u64(kind::JOURNAL, 300)), Some(300));
        assert_eq!(show_key(&key_str(kind::BLOB, "ev-1")), "b/ev-1");
        assert!(key_time(kind::IDEMPOTENCY, -5, 9) < key_time(kind::IDEMPOTENCY, 3, 0));
        assert!(key_time(kind::IDEMPOTENCY, 3, 0) < key_time(kind::IDEMPOTENCY, 3, 1));
        assert_eq!(key_time_n(&key_time(kind::IDEMPOTENCY, 3, 7)), Some(7));
        let piece = piece_key(&key_u64(kind::JOURNAL, 5), 1, 3);
        assert_eq!(show_key(&piece), "j/5 piece 2/3");
        assert_eq!(show_key(&key_time(kind::IDEMPOTENCY, -7, 2)), "i/-7/2");
        assert!(piece_key(&key_u64(kind::JOURNAL, 5), 2, 3) > piece);
        assert!(piece_key(&key_u64(kind::JOURNAL, 6), 0, 1) > piece);
    }
}
