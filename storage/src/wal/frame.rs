//! Framing and reading records: the frame of a record, what the bytes at
//! an offset are, and the search for a later record that tells a torn
//! write from damage.

use std::path::Path;

use super::{BLOCK, HEADER, MAGIC, SEGMENT_HEADER, SEQ_REACH, SegmentFile};
use crate::error::StorageError;

/// Whether every byte is zero. A whole segment's tail is checked this way
/// when the journal opens (tens of MiB of zeros past the log's end): a
/// block at a time, OR-ed together, which the compiler vectorizes; a
/// byte-at-a-time `all`, with an exit after each byte, it does not
/// (0.6–0.8 ms against 20–28 ms for 64 MiB).
pub(super) fn all_zero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(BLOCK);
    blocks
        .by_ref()
        .all(|p| p.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && blocks.remainder().iter().all(|&b| b == 0)
}

pub(super) fn crc(salt: u64, len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&salt.to_le_bytes());
    c = crc32c::crc32c_append(c, &len.to_le_bytes());
    c = crc32c::crc32c_append(c, &seq.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// The frame of `payload` as record `seq` in a segment salted `salt`.
///
/// # Errors
/// A payload of 4 GiB or more.
pub fn frame(salt: u64, seq: u64, payload: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    frame_into(&mut out, salt, seq, payload)?;
    Ok(out)
}

/// [`frame`], appended to `out`; returns the frame's length. On an error
/// `out` is unchanged.
///
/// # Errors
/// A payload of 4 GiB or more.
pub(super) fn frame_into(
    out: &mut Vec<u8>,
    salt: u64,
    seq: u64,
    payload: &[u8],
) -> Result<usize, StorageError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| StorageError::Encode("a journal record of 4 GiB or more".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&crc(salt, len, seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(HEADER + payload.len())
}

/// What a frame at some offset is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame<'a> {
    /// A whole record with a good checksum.
    Good { seq: u64, payload: &'a [u8] },
    /// Not a good record: `zeros` when its header is all zero.
    Bad { seq: u64, len: usize, zeros: bool },
}

pub(super) fn read_frame(bytes: &[u8], at: usize, salt: u64) -> Frame<'_> {
    let Some(head) = bytes.get(at..at + HEADER) else {
        let zeros = bytes.get(at..).is_none_or(all_zero);
        return Frame::Bad {
            seq: 0,
            len: 0,
            zeros,
        };
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let seq = u64::from_le_bytes([
        head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
    ]);
    let sum = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    let zeros = all_zero(head);
    let start = at + HEADER;
    match bytes.get(start..start + len as usize) {
        Some(payload) if !zeros && crc(salt, len, seq, payload) == sum => {
            Frame::Good { seq, payload }
        }
        _ => Frame::Bad {
            seq,
            len: len as usize,
            zeros,
        },
    }
}

/// The salt of a segment's bytes, if it has a header.
pub(super) fn salt_of(bytes: &[u8]) -> Option<u64> {
    let head = bytes.get(..SEGMENT_HEADER)?;
    (head[..8] == MAGIC[..]).then(|| {
        u64::from_le_bytes([
            head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
        ])
    })
}

/// Whether a good record numbered `from` or later starts in `bytes` at or
/// after `at`. Past the end of a log there are only zeros (skipped a block
/// at a time) and the remains of at most one torn write.
pub(super) fn later_record(bytes: &[u8], at: usize, salt: u64, from: u64) -> bool {
    let mut i = at;
    while i + HEADER <= bytes.len() {
        let end = ((i / BLOCK + 1) * BLOCK).min(bytes.len());
        if end - i >= HEADER && all_zero(&bytes[i..end]) {
            // No header starts where its 16 bytes would all be zero: the
            // first that could starts 15 bytes before the zeros end.
            i = end - HEADER + 1;
            continue;
        }
        // The header first (cheap): a number in reach and a payload that
        // fits; only then the checksum.
        let head = &bytes[i..i + HEADER];
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let seq = u64::from_le_bytes([
            head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
        ]);
        if seq >= from
            && seq - from < SEQ_REACH
            && i + HEADER + len <= bytes.len()
            && let Frame::Good { .. } = read_frame(bytes, i, salt)
        {
            return true;
        }
        i += 1;
    }
    false
}

/// The raw header at `at`: (len, seq), if there are 16 bytes there.
pub(super) fn raw_header(bytes: &[u8], at: usize) -> Option<(usize, u64)> {
    let head = bytes.get(at..at + HEADER)?;
    Some((
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize,
        u64::from_le_bytes([
            head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
        ]),
    ))
}

pub(super) fn corrupt(path: &Path, offset: usize, what: &str) -> StorageError {
    StorageError::Corrupt {
        key: format!("journal segment {} at offset {offset}", path.display()),
        what: what.to_owned(),
    }
}

/// Fails, naming offset `end` of `segments[i]`, when a good record
/// numbered `from` or later exists after `search` there or in a later
/// segment.
pub(super) fn nothing_after(
    segments: &[(SegmentFile, Vec<u8>)],
    i: usize,
    end: usize,
    search: usize,
    from: u64,
) -> Result<(), StorageError> {
    let (seg, bytes) = &segments[i];
    let found = salt_of(bytes).is_some_and(|salt| later_record(bytes, search, salt, from))
        || segments[i + 1..].iter().any(|(_, b)| {
            salt_of(b).is_some_and(|salt| later_record(b, SEGMENT_HEADER, salt, from))
        });
    if found {
        return Err(corrupt(
            &seg.path,
            end,
            &format!("record {from} is damaged and later records follow it"),
        ));
    }
    Ok(())
}

/// A segment's header: the magic and `salt`.
pub(super) fn header(salt: u64) -> [u8; SEGMENT_HEADER] {
    let mut head = [0u8; SEGMENT_HEADER];
    head[..8].copy_from_slice(MAGIC);
    head[8..].copy_from_slice(&salt.to_le_bytes());
    head
}

/// The block boundary at or before `at`.
pub(super) fn block_floor(at: u64) -> u64 {
    at - at % BLOCK as u64
}

/// The tail (see [`Wal`]) of a segment read back as `bytes` whose log ends
/// at `at`, its header now `salt`'s.
pub(super) fn tail_of(bytes: &[u8], at: usize, salt: u64) -> Vec<u8> {
    let from = block_floor(at as u64) as usize;
    let mut tail = bytes.get(from..at).unwrap_or_default().to_vec();
    if from == 0 && tail.len() >= SEGMENT_HEADER {
        tail[..SEGMENT_HEADER].copy_from_slice(&header(salt));
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::all_zero;

    #[test]
    fn all_zero_finds_one_set_bit_anywhere() {
        // The byte-at-a-time check it replaces, as the reference.
        let slow = |b: &[u8]| b.iter().all(|&x| x == 0);
        for len in [0, 1, 15, 16, 4_095, 4_096, 4_097, 8_192, 12_301] {
            let mut bytes = vec![0u8; len];
            assert!(all_zero(&bytes), "{len} zeros");
            let places = [
                0,
                len / 2,
                len.saturating_sub(1),
                4_095,
                4_096,
                8_191,
                8_192,
                12_288,
            ];
            for at in places.into_iter().filter(|&p| p < len) {
                for bit in [0x01, 0x80] {
                    bytes[at] = bit;
                    // Whole, and from offsets that split the blocks as the
                    // journal's `bytes[at..]` does.
                    for from in [0, 1, 17, at, at + 1] {
                        let part = bytes.get(from..).unwrap_or_default();
                        assert_eq!(
                            all_zero(part),
                            slow(part),
                            "{len} bytes, {bit:#x} at {at}, from {from}"
                        );
                    }
                    assert!(!all_zero(&bytes), "{len} bytes, {bit:#x} at {at}");
                    bytes[at] = 0;
                }
            }
        }
    }
}
