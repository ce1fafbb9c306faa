//! The journal's segments: rolls, gaps between segments at or past sled's
//! point, retirement and reuse, spares made ahead, a crash's leftovers.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use super::test_disk::{Changes, RealBut};
use super::tests::{SMALL, locate, payload, poke, segment_files, seqs, write};
use super::*;

/// Records written one by one until one rolls to a new segment: the last
/// record of the segment before it, and the one that rolled.
fn write_until_a_roll(dir: &Path) -> (u64, u64) {
    let (mut wal, _) = Wal::open(dir, 0, SMALL).expect("open");
    let segments = wal.segments();
    loop {
        let seq = wal.next_seq();
        wal.write(&payload(seq)).expect("write");
        wal.sync().expect("sync");
        if wal.segments() > segments {
            return (seq - 1, seq);
        }
    }
}

/// The last record of a full segment, damaged (or gone) while the first
/// write into the next segment tore: nothing good follows it, yet the
/// next segment was begun only after it was durable, so it was
/// acknowledged: refused, not dropped as a torn tail.
#[test]
fn a_damaged_last_record_of_a_full_segment_refuses_when_the_next_segment_was_begun() {
    for (damage, what) in [(true, "damaged"), (false, "zeroed")] {
        let dir = tempfile::tempdir().expect("dir");
        let (last, rolled) = write_until_a_roll(dir.path());
        let (path, at, len) = locate(dir.path(), last);
        let (next_path, next_at, next_len) = locate(dir.path(), rolled);
        assert_ne!(path, next_path, "the roll began a segment");
        // The write into the new segment tore: only its first bytes landed.
        let f = OpenOptions::new()
            .write(true)
            .open(&next_path)
            .expect("open");
        f.write_all_at(&vec![0u8; next_len - 3], (next_at + 3) as u64)
            .expect("tear");
        if damage {
            poke(&path, at + len - 2, b'#');
        } else {
            let f = OpenOptions::new().write(true).open(&path).expect("open");
            f.write_all_at(&vec![0u8; len], at as u64).expect("zero");
        }
        let err = Wal::open(dir.path(), 0, SMALL).expect_err(what);
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{what}: {text}");
        assert!(text.contains(&format!("offset {at}")), "{what}: {text}");
        assert!(text.contains(&format!("record {last} ")), "{what}: {text}");
        // With sled holding it, nothing was lost: the journal opens and
        // carries on from the record that tore.
        let (mut wal, replay) = Wal::open(dir.path(), last, SMALL).expect(what);
        assert!(replay.records.is_empty(), "{what}");
        assert_eq!(wal.next_seq(), rolled);
        wal.write(&payload(rolled)).expect("write");
        wal.sync().expect("sync");
        drop(wal);
        let (_, replay) = Wal::open(dir.path(), last, SMALL).expect(what);
        assert_eq!(seqs(&replay), vec![rolled], "{what}");
    }
}

/// Segments retired together, of which a crash kept one's retirement and
/// not an older one's: the gap lies at or below sled's point, so the
/// journal opens, with every record after it.
#[test]
fn a_gap_at_or_below_the_checkpoint_between_segments_is_not_damage() {
    let dir = tempfile::tempdir().expect("dir");
    drop(write(dir.path(), 0, 40));
    let files = segment_files(dir.path());
    assert!(files.len() > 4, "{files:?}");
    // The third segment's records, all at or below the checkpoint.
    let gone = &files[2];
    let (after, _, _) = locate(dir.path(), 40);
    let first_of_fourth = (1..=40)
        .find(|s| locate(dir.path(), *s).0 == files[3])
        .expect("the fourth segment's first record");
    assert_ne!(gone, &after);
    std::fs::remove_file(gone).expect("retired");
    let checkpoint = first_of_fourth - 1;
    let (wal, replay) = Wal::open(dir.path(), checkpoint, SMALL).expect("open");
    assert_eq!(seqs(&replay), (first_of_fourth..=40).collect::<Vec<_>>());
    assert!(replay.torn_tail.is_none());
    assert_eq!(wal.next_seq(), 41);
    drop(wal);
    // Below the gap, sled lacking what the retired segment held: refused.
    let err = Wal::open(dir.path(), checkpoint - 1, SMALL).expect_err("a gap");
    assert!(err.to_string().contains("later records follow"), "{err}");
}

/// A whole segment lost past sled's point, the one after it begun but
/// holding nothing readable: the records between were acknowledged (the
/// later segment was begun only once they were durable), so refused.
#[test]
fn a_segment_begun_past_sled_and_a_lost_one_before_it_refuse_to_start() {
    let dir = tempfile::tempdir().expect("dir");
    drop(write(dir.path(), 0, 40));
    let files = segment_files(dir.path());
    let (lost, last) = (&files[files.len() - 2], &files[files.len() - 1]);
    let first_of = |path: &PathBuf| {
        (1..=40)
            .find(|s| locate(dir.path(), *s).0 == *path)
            .expect("a record in it")
    };
    let (lost_first, last_first) = (first_of(lost), first_of(last));
    assert!(
        last_first > lost_first + 1,
        "the lost segment held two or more"
    );
    std::fs::remove_file(lost).expect("lost");
    // The last segment's records never landed: its header only.
    let len = std::fs::metadata(last).expect("meta").len();
    let f = OpenOptions::new().write(true).open(last).expect("open");
    f.write_all_at(
        &vec![0u8; len as usize - SEGMENT_HEADER],
        SEGMENT_HEADER as u64,
    )
    .expect("zero");
    // sled holds the lost segment's first record, not the rest.
    let err = Wal::open(dir.path(), lost_first, SMALL).expect_err("acknowledged records lost");
    let text = err.to_string();
    assert!(
        text.contains(&format!("record {} is damaged or missing", lost_first + 1)),
        "{text}"
    );
    // sled holding all the lost segment did: the journal carries on.
    let (wal, replay) = Wal::open(dir.path(), last_first - 1, SMALL).expect("nothing lost");
    assert!(replay.records.is_empty());
    assert_eq!(wal.next_seq(), last_first);
}

#[test]
fn retired_segments_are_zeroed_and_reused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut wal = write(dir.path(), 0, 30);
    // sled holds everything up to 30: closed segments are retired, then
    // zeroed into spares (the background flusher's job).
    wal.checkpoint(30).expect("checkpoint");
    assert_eq!(wal.segments(), 1);
    wal.spares().clean_up(dir.path()).expect("clean up");
    let spares: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("spare-"))
        })
        .collect();
    assert_eq!(spares.len(), 2, "two zeroed spares kept");
    for p in &spares {
        assert!(
            RealDisk.read(p).expect("spare").iter().all(|&b| b == 0),
            "zeroed"
        );
    }
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

/// The files in `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

#[test]
fn a_spare_is_made_ahead_once_the_segment_is_half_full_and_taken_next() {
    const SEGMENT: u64 = 16 * BLOCK as u64;
    let dir = tempfile::tempdir().expect("dir");
    let (mut wal, _) = Wal::open(dir.path(), 0, SEGMENT).expect("open");
    let record = vec![b'r'; 3_000];
    let append = |wal: &mut Wal| {
        wal.write(&record).expect("write");
        wal.sync().expect("sync");
    };
    append(&mut wal);
    wal.spares().clean_up(dir.path()).expect("clean up");
    assert!(named(dir.path(), "spare-").is_empty(), "not wanted yet");
    while wal.offset <= SEGMENT / 2 {
        append(&mut wal);
    }
    assert_eq!(wal.segments(), 1);
    wal.spares().clean_up(dir.path()).expect("clean up");
    let spares = named(dir.path(), "spare-");
    assert_eq!(spares.len(), 1, "one made ahead of need");
    let bytes = RealDisk.read(&spares[0]).expect("spare");
    assert!(bytes.len() as u64 >= SEGMENT && bytes.iter().all(|&b| b == 0));
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).expect("metadata").ino()
    };
    let spare = inode(&spares[0]);
    while wal.segments() == 1 {
        append(&mut wal);
    }
    assert!(
        named(dir.path(), "spare-").is_empty(),
        "the next segment took it"
    );
    assert_eq!(
        inode(&wal.path),
        spare,
        "the spare itself, not a file made for it"
    );
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
    // First in an empty segment (it grows in place), then after a record.
    wal.write(&big).expect("write big first");
    wal.write(b"small").expect("write");
    wal.write(&big).expect("write big");
    wal.write(b"after").expect("write");
    wal.sync().expect("sync");
    drop(wal);
    let (_, r) = Wal::open(dir.path(), 0, SMALL).expect("reopen");
    assert_eq!(seqs(&r), [1, 2, 3, 4]);
    assert_eq!(r.records[0].1, big);
    assert_eq!(r.records[2].1, big);
}

#[test]
fn leftovers_of_a_crash_are_cleared_and_a_header_less_segment_is_used() {
    let dir = tempfile::tempdir().expect("dir");
    let mut wal = write(dir.path(), 0, 3);
    // Roll onto a segment, then "crash" before its header landed: the
    // file has its name but only zeros.
    while wal.segments() < 2 {
        let seq = wal.next_seq();
        wal.write(&payload(seq)).expect("write");
    }
    wal.sync().expect("sync");
    let next = wal.next_seq() - 1;
    drop(wal);
    let current = segment_files(dir.path()).pop().expect("current");
    let f = OpenOptions::new().write(true).open(&current).expect("open");
    f.write_all_at(&[0u8; SMALL as usize], 0).expect("zero");
    drop(f);
    for name in ["tmp-1.wal", "dirty-2.wal"] {
        std::fs::write(dir.path().join(name), b"junk").expect("leftover");
    }
    std::fs::write(dir.path().join("spare-3.wal"), b"short").expect("short spare");
    let (mut wal, r) = Wal::open(dir.path(), 0, SMALL).expect("open");
    // The record in the header-less segment was never synced: it is gone.
    assert_eq!(r.last_seq, next - 1);
    for name in ["tmp-1.wal", "dirty-2.wal", "spare-3.wal"] {
        assert!(!dir.path().join(name).exists(), "{name} cleared");
    }
    let seq = wal.next_seq();
    wal.write(b"into the header-less segment").expect("write");
    wal.sync().expect("sync");
    drop(wal);
    let (_, r) = Wal::open(dir.path(), 0, SMALL).expect("reopen");
    assert_eq!(r.last_seq, seq);
}

/// The file system, except that new files cannot be made while `full` is
/// set (a full disk, for the files the journal makes); counts attempts.
#[derive(Debug, Default)]
struct FullForNewFiles {
    full: std::sync::atomic::AtomicBool,
    attempts: std::sync::atomic::AtomicUsize,
}

impl Changes for FullForNewFiles {
    fn creating(&self, _path: &Path) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        self.attempts.fetch_add(1, Relaxed);
        if self.full.load(Relaxed) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

/// A spare made ahead of need that cannot be made stops nothing, leaves
/// nothing behind and is not tried again before the next segment; the
/// writer makes its own when its segment fills.
#[test]
fn a_spare_that_cannot_be_made_ahead_stops_nothing() {
    use std::sync::atomic::Ordering::Relaxed;
    const SEGMENT: u64 = 16 * BLOCK as u64;
    let dir = tempfile::tempdir().expect("dir");
    let disk = Arc::new(RealBut(FullForNewFiles::default()));
    let shared: Arc<dyn Disk> = disk.clone();
    let (mut wal, _) = Wal::open_on(&shared, dir.path(), 0, SEGMENT).expect("open");
    let record = vec![b'r'; 3_000];
    let append = |wal: &mut Wal| {
        wal.write(&record).expect("write");
        wal.sync().expect("sync");
    };
    while wal.offset <= SEGMENT / 2 {
        append(&mut wal);
    }
    disk.0.full.store(true, Relaxed);
    let before = disk.0.attempts.load(Relaxed);
    wal.spares()
        .clean_up(dir.path())
        .expect("a failed spare is no failure");
    assert_eq!(disk.0.attempts.load(Relaxed), before + 1, "tried once");
    assert!(named(dir.path(), "tmp-").is_empty() && named(dir.path(), "spare-").is_empty());
    append(&mut wal);
    wal.spares().clean_up(dir.path()).expect("clean up");
    assert_eq!(
        disk.0.attempts.load(Relaxed),
        before + 1,
        "not again for this segment"
    );
    disk.0.full.store(false, Relaxed);
    while wal.segments() == 1 {
        append(&mut wal);
    }
    while wal.offset <= SEGMENT / 2 {
        append(&mut wal);
    }
    wal.spares().clean_up(dir.path()).expect("clean up");
    assert_eq!(
        named(dir.path(), "spare-").len(),
        1,
        "tried again for the next"
    );
}
