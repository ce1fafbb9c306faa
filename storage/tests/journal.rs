//! The write-ahead journal under the writer (issue: a journal of our own
//! ahead of sled): groups acknowledged while sled had flushed nothing come
//! back from the journal alone; a torn last record is dropped and reported;
//! a damaged record before the tail refuses to start, naming segment and
//! offset; segments are recycled once sled holds their records.

use std::path::Path;
use std::time::Duration;

use otc_engine::{EngineConfig, Timestamp};
use otc_storage::store::StoreOptions;
use otc_storage::workload::Workload;
use otc_storage::{Request, Writer, WriterOptions};

const T0: Timestamp = Timestamp(1_700_000_000_000);

/// A writer whose sled is never flushed in the background, with small
/// journal segments: only snapshots make sled durable.
fn options(snapshot_every: u64) -> WriterOptions {
    WriterOptions {
        snapshot_every,
        store: StoreOptions {
            segment_bytes: 64 * 1024,
            flush_every: None,
            ..StoreOptions::default()
        },
        ..WriterOptions::default()
    }
}

fn open(dir: &Path, o: WriterOptions) -> Writer {
    Writer::open(dir, EngineConfig::default(), o).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Runs `groups` groups of 5 workload commands; the digest after each.
fn run(w: &mut Writer, load: &mut Workload, groups: usize) -> Vec<String> {
    let mut now = T0;
    let mut digests = Vec::new();
    for _ in 0..groups {
        let mut reqs = Vec::new();
        for _ in 0..5 {
            let (command, advance) = load.next(w.engine(), now);
            now = now.plus_ms(advance);
            reqs.push(Request {
                request_id: Some(format!("r{}", load.count())),
                command,
                now,
                call: None,
            });
        }
        w.apply_group(&reqs)
            .unwrap_or_else(|e| panic!("group: {e}"));
        digests.push(format!("{:?}", w.engine().digest()));
    }
    digests
}

/// Copies a data dir as a crash would leave it: what reached the files
/// (sled's unflushed writes are only in the process: not copied).
fn crash_copy(from: &Path, to: &Path) {
    // The journal first, then sled: sled only moves forward meanwhile (the
    // background flusher), never past what the copied journal can bridge.
    let mut files = walk(from);
    files.sort_by_key(|p| !p.starts_with(from.join("wal")));
    for entry in files {
        let rel = entry.strip_prefix(from).expect("inside");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        match std::fs::copy(&entry, &dest) {
            Ok(_) => {}
            // A spare renamed by the flusher meanwhile: nothing needed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("copy {}: {e}", entry.display()),
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The last record in the journal: (segment, offset, length).
fn last_record(dir: &Path) -> (std::path::PathBuf, u64, usize) {
    let mut best: Option<(u64, std::path::PathBuf, u64, usize)> = None;
    for path in walk(&dir.join("wal")) {
        let bytes = std::fs::read(&path).expect("segment");
        // After the segment's header (magic and salt).
        let mut at = 16usize;
        while at + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            let seq = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8"));
            if len == 0 && seq == 0 {
                break;
            }
            if best.as_ref().is_none_or(|b| seq > b.0) {
                best = Some((seq, path.clone(), at as u64, 16 + len));
            }
            at += 16 + len;
        }
    }
    let (_, path, at, len) = best.expect("a record");
    (path, at, len)
}

#[test]
fn groups_sled_never_flushed_come_back_from_the_journal() {
    let live = tempfile::tempdir().expect("dir");
    let mut load = Workload::new(7, 40);
    let mut w = open(live.path(), options(1_000_000));
    let digests = run(&mut w, &mut load, 120);
    // The process dies now: sled never flushed these groups.
    let copy = tempfile::tempdir().expect("dir");
    crash_copy(live.path(), copy.path());
    let back = open(copy.path(), options(1_000_000));
    assert!(
        back.store().recovered.replayed > 0,
        "the journal carried groups sled did not hold"
    );
    assert_eq!(
        format!("{:?}", back.engine().digest()),
        digests[digests.len() - 1],
        "every acknowledged group is back"
    );
    back.engine().check_invariants().expect("invariants");
    let events = back.store().events_from(1, usize::MAX).expect("events");
    assert_eq!(
        events.len() as u64,
        back.engine().last_seq(),
        "no event lost"
    );
    drop(w);
}

#[test]
fn a_torn_last_record_is_dropped_and_reported() {
    let live = tempfile::tempdir().expect("dir");
    let mut load = Workload::new(8, 40);
    let mut w = open(live.path(), options(1_000_000));
    let digests = run(&mut w, &mut load, 30);
    let copy = tempfile::tempdir().expect("dir");
    crash_copy(live.path(), copy.path());
    drop(w);
    // The last group's write was cut short (so it was never acknowledged).
    let (segment, at, len) = last_record(copy.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("segment");
    std::os::unix::fs::FileExt::write_all_at(&f, &vec![0u8; len / 2], at + (len - len / 2) as u64)
        .expect("tear");
    drop(f);
    let back = open(copy.path(), options(1_000_000));
    let torn = back.store().recovered.torn_tail.clone().expect("reported");
    assert_eq!(torn.1, at);
    assert!(torn.0.ends_with(segment.file_name().expect("name")));
    assert_eq!(
        format!("{:?}", back.engine().digest()),
        digests[digests.len() - 2],
        "the state of the group before"
    );
}

#[test]
fn a_damaged_record_before_the_tail_refuses_to_start_naming_segment_and_offset() {
    let live = tempfile::tempdir().expect("dir");
    let mut load = Workload::new(9, 40);
    let mut w = open(live.path(), options(1_000_000));
    run(&mut w, &mut load, 30);
    let copy = tempfile::tempdir().expect("dir");
    crash_copy(live.path(), copy.path());
    drop(w);
    // Damage a record in the middle of the first segment.
    let segment = copy.path().join("wal").join("00000000000000000001.wal");
    let bytes = std::fs::read(&segment).expect("segment");
    // The first record follows the 16-byte segment header.
    let len = u32::from_le_bytes(bytes[16..20].try_into().expect("4")) as usize;
    let second = 16 + 16 + len;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("segment");
    std::os::unix::fs::FileExt::write_all_at(&f, b"\xff", (second + 20) as u64).expect("flip");
    drop(f);
    let err = Writer::open(copy.path(), EngineConfig::default(), options(1_000_000))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("00000000000000000001.wal"), "{text}");
    assert!(text.contains(&format!("offset {second}")), "{text}");
}

#[test]
fn segments_are_recycled_once_sled_holds_their_records() {
    let dir = tempfile::tempdir().expect("dir");
    let mut load = Workload::new(10, 40);
    let mut o = options(100);
    o.store.flush_every = Some(Duration::from_millis(5));
    let mut w = open(dir.path(), o.clone());
    let digests = run(&mut w, &mut load, 400);
    let files = std::fs::read_dir(dir.path().join("wal"))
        .expect("wal")
        .count();
    assert!(files <= 8, "segments piled up: {files}");
    // A crash now: recovery reads through reused (zeroed) segments.
    let copy = tempfile::tempdir().expect("dir");
    crash_copy(dir.path(), copy.path());
    drop(w);
    let back = open(copy.path(), o);
    back.engine().check_invariants().expect("invariants");
    assert_eq!(
        format!("{:?}", back.engine().digest()),
        digests[digests.len() - 1]
    );
}
