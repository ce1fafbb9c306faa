//! Opening the journal: reading every record after the checkpoint back,
//! telling a torn last write (zeroed, reported) from a damaged record
//! before the tail (refused, naming the segment and offset).

use std::path::Path;
use std::sync::Arc;

use super::disk::{self, Bug, Disk};
use super::frame::{
    Frame, all_zero, corrupt, nothing_after, raw_header, read_frame, salt_of, tail_of,
};
use super::{HEADER, Replay, SECTOR, SEGMENT_HEADER, Spares, Wal, segment_name};
use crate::error::StorageError;

/// Whether the record header at `at` spans a sector edge with only zeros
/// before it: the first sector of a torn write never landed.
fn head_torn_at_sector_edge(bytes: &[u8], at: usize) -> bool {
    (at + 1..at + HEADER)
        .find(|b| b % SECTOR == 0)
        .and_then(|edge| bytes.get(at..edge))
        .is_some_and(all_zero)
}

impl Wal {
    /// Opens the journal in `dir` (creating it), reads every record after
    /// `checkpoint` (what sled already holds), and leaves the journal ready
    /// to append the next one. A torn last write is zeroed and reported.
    ///
    /// # Errors
    /// A damaged record before the end of the journal (named by segment and
    /// offset), a gap between sled and the journal, or I/O.
    pub fn open(
        dir: &Path,
        checkpoint: u64,
        segment_bytes: u64,
    ) -> Result<(Wal, Replay), StorageError> {
        Self::open_on(&disk::real(), dir, checkpoint, segment_bytes)
    }

    /// [`Wal::open`] on another disk (a simulated one, in tests).
    ///
    /// # Errors
    /// As [`Wal::open`]; also two reads of a segment that disagree where the
    /// journal seems to end (the disk returned damaged bytes).
    pub fn open_on(
        disk: &Arc<dyn Disk>,
        dir: &Path,
        checkpoint: u64,
        segment_bytes: u64,
    ) -> Result<(Wal, Replay), StorageError> {
        disk.create_dir_all(dir)?;
        // The journal directory's own entry is durable before any record
        // in it is acknowledged.
        if let Some(parent) = dir.parent() {
            disk.sync_dir(parent)?;
        }
        let (files, spares) = Spares::scan(disk, dir, segment_bytes)?;
        let mut segments = Vec::with_capacity(files.len());
        for f in files {
            let bytes = disk.read(&f.path)?;
            segments.push((f, bytes));
        }
        let mut replay = Replay {
            last_seq: checkpoint,
            ..Replay::default()
        };
        let mut expected: Option<u64> = None;
        let mut closed = Vec::new();
        // Where the log ends: (segment index, offset); and whether a torn
        // write lies there (zeroed only once every check has passed).
        let mut end: Option<(usize, usize)> = None;
        let mut torn: Option<(usize, usize)> = None;
        'segments: for i in 0..segments.len() {
            let first_seq = segments[i].0.first_seq;
            let salt = salt_of(&segments[i].1);
            let mut at = SEGMENT_HEADER;
            loop {
                let next = expected.unwrap_or(first_seq);
                let frame = match salt {
                    Some(salt) => read_frame(&segments[i].1, at, salt),
                    None => Frame::Bad {
                        seq: 0,
                        len: 0,
                        zeros: true,
                    },
                };
                let frame = match frame {
                    Frame::Bad {
                        seq,
                        len,
                        zeros: false,
                    } if seq == next && disk.injects(Bug::SkipChecksum) => segments[i]
                        .1
                        .get(at + HEADER..at + HEADER + len)
                        .map_or(frame, |payload| Frame::Good { seq, payload }),
                    other => other,
                };
                match frame {
                    Frame::Good { seq, payload } if seq == next => {
                        if seq > checkpoint {
                            replay.records.push((seq, payload.to_vec()));
                        }
                        replay.last_seq = replay.last_seq.max(seq);
                        expected = Some(seq + 1);
                        at += HEADER + payload.len();
                    }
                    Frame::Good { seq, .. } => {
                        return Err(corrupt(
                            &segments[i].0.path,
                            at,
                            &format!("record {seq} stands where record {next} should"),
                        ));
                    }
                    Frame::Bad { zeros: true, .. }
                        if segments
                            .get(i + 1)
                            .is_some_and(|s| Some(s.0.first_seq) == expected) =>
                    {
                        // The segment filled up: the next one carries on.
                        closed.push((segments[i].0.path.clone(), next - 1));
                        continue 'segments;
                    }
                    Frame::Bad { .. }
                        if next <= checkpoint
                            && segments.get(i + 1).is_some_and(|s| {
                                s.0.first_seq > next && s.0.first_seq <= checkpoint + 1
                            }) =>
                    {
                        // The rest of this segment is at or below sled's
                        // point, so sled holds it, whatever is left of it
                        // here (damage, or a segment whose retirement a
                        // crash cut short beside one that was retired):
                        // the next segment carries on.
                        let carries_on = segments[i + 1].0.first_seq;
                        closed.push((segments[i].0.path.clone(), carries_on - 1));
                        expected = Some(carries_on);
                        continue 'segments;
                    }
                    Frame::Bad { seq, len, zeros } => {
                        // The end. Anything but zeros here is a torn write,
                        // unless it shows signs of being a damaged record
                        // with more after it.
                        let (seg, bytes) = &segments[i];
                        let rest_nonzero = bytes.get(at..).is_some_and(|rest| !all_zero(rest));
                        if salt.is_none() && rest_nonzero {
                            // Headers are written and synced before any
                            // record: bytes after a missing one are damage.
                            return Err(corrupt(
                                &seg.path,
                                0,
                                "the segment's header is damaged and records follow it",
                            ));
                        }
                        nothing_after(&segments, i, at, at + 1, next)?;
                        // A later segment is begun only once every record
                        // before its first was durable: those of them sled
                        // lacks (after its point) were acknowledged.
                        let needed = next.max(checkpoint + 1);
                        if let Some((later, _)) =
                            segments[i + 1..].iter().find(|(s, _)| s.first_seq > needed)
                        {
                            return Err(corrupt(
                                &seg.path,
                                at,
                                &format!(
                                    "record {needed} is damaged or missing, and segment {} \
                                     (from record {}) was begun after it was written",
                                    later.path.display(),
                                    later.first_seq
                                ),
                            ));
                        }
                        // A record whose header is whole (its number is the
                        // next one and its length fits) but whose checksum
                        // fails: a torn write has nothing after its extent.
                        // Not when the header's bytes before a sector edge
                        // inside it are zeros (the length, or its low bytes,
                        // never landed: a write torn across that edge), nor
                        // when the length is zero (no record's): then its
                        // extent is unknown.
                        // (Unless the next record's header stands at its
                        // extent: then the length was whole after all.)
                        let extent = at + HEADER + len;
                        let length_whole = len > 0
                            && (!head_torn_at_sector_edge(bytes, at)
                                || raw_header(bytes, extent).is_some_and(|(_, s)| s == next + 1));
                        if !zeros
                            && length_whole
                            && seq == next
                            && extent <= bytes.len()
                            && !all_zero(&bytes[extent..])
                        {
                            let what = match raw_header(bytes, extent) {
                                Some((_, s)) if s == next + 1 => {
                                    format!("record {next} is damaged and record {s} follows it")
                                }
                                _ => format!("record {next} is damaged and bytes follow it"),
                            };
                            return Err(corrupt(&seg.path, at, &what));
                        }
                        if rest_nonzero {
                            // A torn write, or a read that returned damaged
                            // bytes: a second read tells them apart, and a
                            // disk that answers two ways is not trusted.
                            if !disk.injects(Bug::TrustOneRead) && disk.read(&seg.path)? != *bytes {
                                return Err(corrupt(
                                    &seg.path,
                                    at,
                                    "two reads of the segment returned different bytes",
                                ));
                            }
                            torn = Some((i, at));
                        }
                        end = Some((i, at));
                        break 'segments;
                    }
                }
            }
        }
        // The journal resumes right after sled's point: its first record
        // after it, or (when none is readable: the first was torn) its first
        // segment's.
        let resumes = match replay.records.first() {
            Some((seq, _)) => Some(*seq),
            None => segments
                .first()
                .map(|(seg, _)| seg.first_seq)
                .filter(|first| *first > checkpoint + 1),
        };
        if let Some(seq) = resumes
            && seq != checkpoint + 1
        {
            return Err(StorageError::Inconsistent(format!(
                "the journal resumes at record {seq} but sled holds only up to {checkpoint}"
            )));
        }
        if let Some((i, at)) = torn {
            let (seg, bytes) = &segments[i];
            Self::zero_from(&**disk, &seg.path, at, bytes)?;
            replay.torn_tail = Some((seg.path.clone(), at as u64));
        }
        // After the journal's last record, or after sled's if sled is ahead
        // (the journal ended at or before sled's point).
        let next_seq = expected.unwrap_or(checkpoint + 1).max(checkpoint + 1);
        let spares = Arc::new(spares);
        let wal = match end {
            // Appending carries on where the log ends, if it ends at the
            // record after sled's; otherwise a new segment starts there.
            Some((i, at)) if expected.unwrap_or(segments[i].0.first_seq) == next_seq => {
                let (seg, bytes) = &segments[i];
                // Segments past the end hold no record (checked above).
                let mut closed = closed;
                for (later, _) in &segments[i + 1..] {
                    closed.push((later.path.clone(), checkpoint));
                }
                let file = disk.open(&seg.path)?;
                // Its last records may be only in the page cache (written by
                // a process that died before their sync; recovery read them
                // there): durable before anything is written after them.
                file.sync_data()?;
                let capacity = file.len()?;
                let salt = match salt_of(bytes) {
                    // Every record appended from here on is checksummed
                    // with this salt: a bit flipped in the one read of it
                    // would make them all unreadable. Read it again.
                    Some(salt)
                        if !disk.injects(Bug::TrustOneRead)
                            && salt_of(&disk.read_at(&seg.path, 0, SEGMENT_HEADER)?)
                                != Some(salt) =>
                    {
                        return Err(corrupt(
                            &seg.path,
                            0,
                            "two reads of the segment's header returned different bytes",
                        ));
                    }
                    Some(salt) => salt,
                    None => Self::write_header(&**disk, &*file)?,
                };
                Wal {
                    disk: Arc::clone(disk),
                    dir: dir.to_owned(),
                    segment_bytes,
                    file,
                    path: seg.path.clone(),
                    salt,
                    offset: at as u64,
                    tail: tail_of(bytes, at, salt),
                    capacity,
                    next_seq,
                    closed,
                    spares,
                    failed: None,
                }
            }
            _ => {
                // Every record in the journal is at or below sled's point.
                // (A segment with the new one's name is replaced by it.)
                let new_path = dir.join(segment_name(next_seq));
                let closed = segments
                    .iter()
                    .filter(|(seg, _)| seg.path != new_path)
                    .map(|(seg, _)| (seg.path.clone(), checkpoint))
                    .collect();
                Self::start(disk, dir, segment_bytes, next_seq, closed, spares)?
            }
        };
        // The caller makes sled durable, then calls `checkpoint`: only then
        // may the segments sled holds be reused.
        Ok((wal, replay))
    }

    /// Zeroes a torn write: from `at` to the last non-zero byte after it.
    fn zero_from(
        disk: &dyn Disk,
        path: &Path,
        at: usize,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let last = bytes.iter().rposition(|&b| b != 0).map_or(at, |p| p + 1);
        if last > at {
            let file = disk.open(path)?;
            file.write_buffered_at(&vec![0u8; last - at], at as u64)?;
            file.sync_data()?;
        }
        Ok(())
    }
}
