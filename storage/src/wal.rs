//! The write-ahead journal: what makes a group durable before anyone hears
//! of it. One record per commit (the whole batch the group wrote), appended
//! to a preallocated segment file of our own and `fdatasync`ed on the
//! writer's thread, with no hand-off to another thread. sled receives the
//! same batch right after, in memory, and is flushed in the background; a
//! checkpoint ("sled holds everything up to sequence N") lets whole segments
//! be recycled.
//!
//! A record is framed as `len: u32 | seq: u64 | crc: u32 | payload`, all
//! little-endian, the CRC32C covering `len`, `seq` and the payload.
//!
//! Reading it back (recovery): records follow each other with consecutive
//! sequence numbers across segments (ordered by the first sequence in their
//! names). The log ends at the first frame that is not the next record:
//! zeros (preallocated, never written), a stale record of a recycled
//! segment, or a torn write. A frame that claims to be the next record but
//! fails its checksum is a torn tail only if no later record exists
//! anywhere after it; if one does, an acknowledged record was damaged and
//! recovery refuses to start, naming the segment and offset.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Bytes before each payload.
pub const HEADER: usize = 16;
/// Default size of a segment file.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const SUFFIX: &str = ".wal";
const SPARE_PREFIX: &str = "spare-";

fn crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&len.to_le_bytes());
    c = crc32c::crc32c_append(c, &seq.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// The frame of `payload` as record `seq`.
pub fn frame(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&crc(len, seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a frame at some offset is.
#[derive(Debug, PartialEq, Eq)]
enum Frame<'a> {
    /// A whole record with a good checksum.
    Good { seq: u64, payload: &'a [u8] },
    /// Claims to be record `seq` but is cut short or fails its checksum.
    Bad { seq: u64 },
    /// Not a record at all (zeros, too short for a header).
    Nothing,
}

fn read_frame(bytes: &[u8], at: usize) -> Frame<'_> {
    let Some(head) = bytes.get(at..at + HEADER) else {
        return Frame::Nothing;
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let seq = u64::from_le_bytes([
        head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
    ]);
    let sum = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if len == 0 && seq == 0 && sum == 0 {
        return Frame::Nothing;
    }
    let start = at + HEADER;
    match bytes.get(start..start + len as usize) {
        Some(payload) if crc(len, seq, payload) == sum => Frame::Good { seq, payload },
        _ => Frame::Bad { seq },
    }
}

/// A segment file on disk.
#[derive(Debug, Clone)]
struct SegmentFile {
    path: PathBuf,
    first_seq: u64,
}

/// What recovery found in the journal.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records after the checkpoint, in order: (sequence, payload).
    pub records: Vec<(u64, Vec<u8>)>,
    /// A torn last record that was dropped: (segment file, offset).
    pub torn_tail: Option<(PathBuf, u64)>,
    /// The last sequence number in the journal (the checkpoint's if none
    /// follows it).
    pub last_seq: u64,
}

/// The journal, open for appending.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    file: File,
    path: PathBuf,
    /// Where the next record goes in `file`.
    offset: u64,
    /// The file's size (preallocated).
    capacity: u64,
    next_seq: u64,
    /// Closed segments, oldest first: (path, last sequence in it).
    closed: Vec<(PathBuf, u64)>,
    /// Segments whose records sled holds: reused before new files are made.
    spares: Vec<PathBuf>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

fn list(dir: &Path) -> Result<(Vec<SegmentFile>, Vec<PathBuf>), StorageError> {
    let mut segments = Vec::new();
    let mut spares = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with(SPARE_PREFIX) {
            spares.push(path);
        } else if let Some(stem) = name.strip_suffix(SUFFIX)
            && let Ok(first_seq) = stem.parse::<u64>()
        {
            segments.push(SegmentFile { path, first_seq });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok((segments, spares))
}

fn read_all(path: &Path) -> Result<Vec<u8>, StorageError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether any good record numbered `from` or later starts anywhere in
/// `bytes` at or after `at` (a byte-wise search; all-zero blocks skipped).
fn later_record(bytes: &[u8], at: usize, from: u64) -> Option<usize> {
    const BLOCK: usize = 4096;
    let mut i = at;
    while i + HEADER <= bytes.len() {
        if i.is_multiple_of(BLOCK)
            && let Some(block) = bytes.get(i..i + BLOCK)
            && block.iter().all(|&b| b == 0)
        {
            i += BLOCK;
            continue;
        }
        if let Frame::Good { seq, .. } = read_frame(bytes, i)
            && seq >= from
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn corrupt(path: &Path, offset: usize, what: &str) -> StorageError {
    StorageError::Corrupt {
        key: format!("journal segment {} at offset {offset}", path.display()),
        what: what.to_owned(),
    }
}

impl Wal {
    /// Opens the journal in `dir` (creating it), reads every record after
    /// `checkpoint` (what sled already holds), and leaves the journal ready
    /// to append the next one. A torn last record is dropped and reported.
    ///
    /// # Errors
    /// A damaged record before the end of the journal (named by segment and
    /// offset), a gap in the sequence, or I/O.
    pub fn open(
        dir: &Path,
        checkpoint: u64,
        segment_bytes: u64,
    ) -> Result<(Wal, Replay), StorageError> {
        std::fs::create_dir_all(dir)?;
        let (segments, mut spares) = list(dir)?;
        let mut replay = Replay {
            last_seq: checkpoint,
            ..Replay::default()
        };
        // Where the log ends: (segment index, offset).
        let mut end: Option<(usize, usize)> = None;
        let mut expected: Option<u64> = None;
        let mut closed = Vec::new();
        'segments: for (i, seg) in segments.iter().enumerate() {
            let bytes = read_all(&seg.path)?;
            let mut at = 0usize;
            loop {
                let next = expected.unwrap_or(seg.first_seq);
                match read_frame(&bytes, at) {
                    Frame::Good { seq, payload } if seq == next => {
                        if seq > checkpoint {
                            replay.records.push((seq, payload.to_vec()));
                        }
                        replay.last_seq = replay.last_seq.max(seq);
                        expected = Some(seq + 1);
                        at += HEADER + payload.len();
                    }
                    Frame::Bad { seq } if seq == next => {
                        // The next record, damaged: torn if nothing follows.
                        Self::nothing_after(&segments, i, &bytes, at, at + 1, next)?;
                        replay.torn_tail = Some((seg.path.clone(), at as u64));
                        end = Some((i, at));
                        break 'segments;
                    }
                    _ => {
                        // Not the next record: the end of this segment's
                        // records. The next segment must carry on.
                        let carries_on = segments
                            .get(i + 1)
                            .is_some_and(|s| Some(s.first_seq) == expected);
                        if carries_on {
                            closed.push((seg.path.clone(), expected.map_or(0, |e| e - 1)));
                            continue 'segments;
                        }
                        Self::nothing_after(&segments, i, &bytes, at, at, next)?;
                        end = Some((i, at));
                        break 'segments;
                    }
                }
            }
        }
        let next_seq = expected.unwrap_or(checkpoint + 1).max(checkpoint + 1);
        if replay
            .records
            .first()
            .is_some_and(|(s, _)| *s != checkpoint + 1)
        {
            return Err(StorageError::Inconsistent(format!(
                "the journal resumes at record {} but sled holds only up to {checkpoint}",
                replay.records[0].0
            )));
        }
        // Segments past the end hold nothing we need: spares.
        let last = end.map_or(segments.len().saturating_sub(1), |(i, _)| i);
        for seg in segments.iter().skip(last + 1) {
            spares.push(seg.path.clone());
        }
        let (file, path, offset, capacity) = match (end, segments.get(last)) {
            (Some((i, at)), Some(seg)) if i == last => {
                let file = OpenOptions::new().read(true).write(true).open(&seg.path)?;
                let capacity = file.metadata()?.len();
                (file, seg.path.clone(), at as u64, capacity)
            }
            _ => {
                let path = dir.join(segment_name(next_seq));
                let (file, capacity) = Self::create(dir, &path, &mut spares, segment_bytes)?;
                (file, path, 0, capacity)
            }
        };
        let wal = Wal {
            dir: dir.to_owned(),
            segment_bytes,
            file,
            path,
            offset,
            capacity,
            next_seq,
            closed,
            spares,
        };
        Ok((wal, replay))
    }

    /// Fails, naming the end found at offset `end` of segment `i`, when a
    /// good record numbered `from` or later exists from offset `search` on
    /// in that segment or anywhere in a later one.
    fn nothing_after(
        segments: &[SegmentFile],
        i: usize,
        bytes: &[u8],
        end: usize,
        search: usize,
        from: u64,
    ) -> Result<(), StorageError> {
        let damaged = |path: &Path| {
            corrupt(
                path,
                end,
                &format!("record {from} is damaged and later records follow it"),
            )
        };
        if later_record(bytes, search, from).is_some() {
            return Err(damaged(&segments[i].path));
        }
        for seg in &segments[i + 1..] {
            if later_record(&read_all(&seg.path)?, 0, from).is_some() {
                return Err(damaged(&segments[i].path));
            }
        }
        Ok(())
    }

    /// A segment at `path`: a spare renamed (its blocks already allocated)
    /// or a new zero-filled file; the directory entry made durable.
    fn create(
        dir: &Path,
        path: &Path,
        spares: &mut Vec<PathBuf>,
        size: u64,
    ) -> Result<(File, u64), StorageError> {
        let reusable = spares
            .iter()
            .position(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= size));
        let file = if let Some(i) = reusable {
            let spare = spares.swap_remove(i);
            std::fs::rename(&spare, path)?;
            OpenOptions::new().read(true).write(true).open(path)?
        } else {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = size;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
            file
        };
        File::open(dir)?.sync_all()?;
        let capacity = file.metadata()?.len();
        Ok((file, capacity))
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Writes record `next_seq()` (not yet durable: see [`Wal::sync`]),
    /// starting a new segment when this one is full.
    ///
    /// # Errors
    /// I/O; the caller stops for good.
    pub fn write(&mut self, payload: &[u8]) -> Result<u64, StorageError> {
        let seq = self.next_seq;
        let bytes = frame(seq, payload);
        if self.offset + bytes.len() as u64 > self.capacity {
            self.roll(bytes.len() as u64)?;
        }
        self.file.write_all_at(&bytes, self.offset)?;
        self.offset += bytes.len() as u64;
        self.next_seq += 1;
        Ok(seq)
    }

    /// `fdatasync` of the current segment: every record written is durable.
    /// Never retried after a failure (the page cache may have dropped the
    /// data): the caller stops.
    ///
    /// # Errors
    /// I/O.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.file.sync_data()?;
        Ok(())
    }

    fn roll(&mut self, need: u64) -> Result<(), StorageError> {
        // Everything in the full segment was synced when it was written.
        let path = self.dir.join(segment_name(self.next_seq));
        let size = self.segment_bytes.max(need);
        let (file, capacity) = Self::create(&self.dir, &path, &mut self.spares, size)?;
        let old = std::mem::replace(&mut self.path, path);
        self.closed.push((old, self.next_seq - 1));
        self.file = file;
        self.offset = 0;
        self.capacity = capacity;
        Ok(())
    }

    /// sled holds every record up to `durable`: closed segments wholly at or
    /// below it become spares (renamed, reused by later segments).
    ///
    /// # Errors
    /// I/O renaming a segment.
    pub fn checkpoint(&mut self, durable: u64) -> Result<(), StorageError> {
        while let Some((_, last)) = self.closed.first() {
            if *last > durable {
                break;
            }
            let (path, last) = self.closed.remove(0);
            let spare = self.dir.join(format!("{SPARE_PREFIX}{last:020}{SUFFIX}"));
            std::fs::rename(&path, &spare)?;
            self.spares.push(spare);
        }
        // Two spares are enough to roll over without making a file.
        while self.spares.len() > 2 {
            if let Some(p) = self.spares.pop() {
                std::fs::remove_file(p)?;
            }
        }
        Ok(())
    }

    /// Segment files in use (closed ones and the current one).
    pub fn segments(&self) -> usize {
        self.closed.len() + 1
    }
}

#[cfg(test)]
mod tests;
