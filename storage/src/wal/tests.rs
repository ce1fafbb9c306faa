//! The journal's framing and recovery: records across segments, a torn
//! tail dropped, a damaged record before the tail refused, recycled
//! segments with stale records, a gap refused.

use std::os::unix::fs::FileExt;

use super::*;

/// Segments this small hold a few records each.
const SMALL: u64 = 256;

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 7) as usize * 9)).into_bytes()
}

fn write(dir: &Path, checkpoint: u64, n: u64) -> Wal {
    let (mut wal, _) = Wal::open(dir, checkpoint, SMALL).expect("open");
    for _ in 0..n {
        let seq = wal.next_seq();
        wal.write(&payload(seq)).expect("write");
        wal.sync().expect("sync");
    }
    wal
}

fn seqs(r: &Replay) -> Vec<u64> {
    r.records.iter().map(|(s, _)| *s).collect()
}

/// (path, offset, length) of record `seq` as written.
fn locate(dir: &Path, seq: u64) -> (PathBuf, usize, usize) {
    let (segments, _) = list(dir).expect("list");
    for s in segments {
        let bytes = read_all(&s.path).expect("read");
        let mut at = 0;
        while let Frame::Good { seq: got, payload } = read_frame(&bytes, at) {
            if got == seq {
                return (s.path, at, HEADER + payload.len());
            }
            at += HEADER + payload.len();
        }
    }
    panic!("record {seq} not found");
}

fn poke(path: &Path, at: usize, byte: u8) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(&[byte], at as u64).expect("poke");
}

#[test]
fn records_come_back_in_order_across_segments_after_any_checkpoint() {
    let dir = tempfile::tempdir().expect("dir");
    let wal = write(dir.path(), 0, 40);
    assert!(wal.segments() > 5, "small segments: {}", wal.segments());
    drop(wal);
    let (_, all) = Wal::open(dir.path(), 0, SMALL).expect("reopen");
    assert_eq!(seqs(&all), (1..=40).collect::<Vec<_>>());
    for (seq, p) in &all.records {
        assert_eq!(p, &payload(*seq));
    }
    assert!(all.torn_tail.is_none());
    let (wal, after) = Wal::open(dir.path(), 25, SMALL).expect("reopen");
    assert_eq!(seqs(&after), (26..=40).collect::<Vec<_>>());
    assert_eq!(wal.next_seq(), 41, "appending carries on");
}

#[test]
fn a_torn_last_record_is_dropped_and_reported_and_appending_overwrites_it() {
    let dir = tempfile::tempdir().expect("dir");
    drop(write(dir.path(), 0, 12));
    let (path, at, len) = locate(dir.path(), 12);
    // The write of record 12 was cut short: its last bytes never landed.
    for i in at + len - 5..at + len {
        poke(&path, i, 0);
    }
    let (mut wal, r) = Wal::open(dir.path(), 0, SMALL).expect("a torn tail is not an error");
    assert_eq!(seqs(&r), (1..=11).collect::<Vec<_>>());
    assert_eq!(r.torn_tail, Some((path, at as u64)));
    assert_eq!(
        wal.next_seq(),
        12,
        "the unacknowledged record's number is reused"
    );
    wal.write(b"twelve again").expect("write");
    wal.sync().expect("sync");
    drop(wal);
    let (_, r) = Wal::open(dir.path(), 0, SMALL).expect("reopen");
    assert_eq!(seqs(&r), (1..=12).collect::<Vec<_>>());
    assert_eq!(r.records[11].1, b"twelve again");
    assert!(r.torn_tail.is_none());
}

#[test]
fn a_damaged_record_before_the_tail_refuses_to_start_naming_segment_and_offset() {
    for victim in [3u64, 7] {
        let dir = tempfile::tempdir().expect("dir");
        drop(write(dir.path(), 0, 12));
        let (path, at, len) = locate(dir.path(), victim);
        // One bit flipped inside an acknowledged record, later ones intact.
        poke(&path, at + len - 2, b'#');
        let err = Wal::open(dir.path(), 0, SMALL).expect_err("damage before the tail");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("offset {at}")), "{text}");
    }
}

#[test]
fn a_damaged_sequence_number_before_the_tail_is_caught_too() {
    let dir = tempfile::tempdir().expect("dir");
    drop(write(dir.path(), 0, 12));
    let (path, at, _) = locate(dir.path(), 5);
    poke(&path, at + 4, 0xEE); // the low byte of the sequence number
    assert!(Wal::open(dir.path(), 0, SMALL).is_err());
}

#[test]
fn recycled_segments_hold_stale_records_that_are_never_read_as_new() {
    let dir = tempfile::tempdir().expect("dir");
    let mut wal = write(dir.path(), 0, 30);
    // sled holds everything up to 30: closed segments become spares.
    wal.checkpoint(30).expect("checkpoint");
    assert_eq!(wal.segments(), 1);
    for _ in 0..30 {
        let seq = wal.next_seq();
        wal.write(&payload(seq)).expect("write");
        wal.sync().expect("sync");
    }
    drop(wal);
    let (_, r) = Wal::open(dir.path(), 30, SMALL).expect("reopen");
    assert_eq!(seqs(&r), (31..=60).collect::<Vec<_>>());
    assert!(r.torn_tail.is_none(), "{:?}", r.torn_tail);
    let files = std::fs::read_dir(dir.path()).expect("dir").count();
    assert!(files <= 30, "segments are reused, not piled up: {files}");
}

#[test]
fn a_journal_that_starts_after_the_checkpoint_is_a_gap() {
    let dir = tempfile::tempdir().expect("dir");
    let mut wal = write(dir.path(), 0, 20);
    wal.checkpoint(20).expect("checkpoint");
    for _ in 0..20 {
        let seq = wal.next_seq();
        wal.write(&payload(seq)).expect("write");
        wal.sync().expect("sync");
    }
    wal.checkpoint(35).expect("checkpoint");
    drop(wal);
    // sled claims to hold only up to 10: records 11.. are gone.
    let err = Wal::open(dir.path(), 10, SMALL).expect_err("a gap");
    assert!(
        err.to_string().contains("sled holds only up to 10"),
        "{err}"
    );
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut wal, _) = Wal::open(dir.path(), 0, SMALL).expect("open");
    let big = vec![7u8; 5000];
    wal.write(b"small").expect("write");
    wal.write(&big).expect("write big");
    wal.write(b"after").expect("write");
    wal.sync().expect("sync");
    drop(wal);
    let (_, r) = Wal::open(dir.path(), 0, SMALL).expect("reopen");
    assert_eq!(seqs(&r), [1, 2, 3]);
    assert_eq!(r.records[1].1, big);
}
