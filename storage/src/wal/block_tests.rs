//! The journal's block writes: records from block edge to block edge
//! across reopening, roll-over and oversized segments, and the syncs a
//! reopened segment gets before anything is written after its records.

use std::sync::{Arc, Mutex};

use super::tests::{payload, seqs};
use super::*;

/// Records are written from block edge to block edge (straight to the disk
/// where the file system takes it): sizes around a block, the journal
/// reopened mid-block and appended to twice, every record read back as
/// written.
#[test]
fn records_around_block_edges_survive_reopening_mid_block() {
    let dir = tempfile::tempdir().expect("dir");
    let body = |seq: u64| {
        let size = [1usize, 4079, 4080, 4081, 5000, 9000, 17][(seq % 7) as usize];
        vec![(seq as u8) ^ 0x5a; size]
    };
    let mut next = 1;
    for round in 0..3 {
        let (mut wal, r) = Wal::open(dir.path(), 0, 1 << 20).expect("open");
        assert_eq!(seqs(&r), (1..next).collect::<Vec<_>>(), "round {round}");
        for (seq, p) in &r.records {
            assert_eq!(p, &body(*seq), "record {seq}");
        }
        assert!(r.torn_tail.is_none());
        assert!(
            round == 0 || !wal.offset().is_multiple_of(BLOCK as u64),
            "mid-block"
        );
        for _ in 0..20 {
            let seq = wal.next_seq();
            wal.write(&body(seq)).expect("write");
            wal.sync().expect("sync");
        }
        next += 20;
    }
}

/// Segments of three blocks: records roll over to new segments, the largest
/// get a segment of their own (sized to fit, its end off a block edge: that
/// write is buffered), the journal is reopened and appended to, and every
/// record reads back as written.
#[test]
fn block_writes_roll_over_and_grow_segments() {
    let dir = tempfile::tempdir().expect("dir");
    let segment = 3 * BLOCK as u64;
    let body = |seq: u64| {
        let size = [100usize, 3000, 5000, 20_000, 1][(seq % 5) as usize];
        vec![seq as u8; size]
    };
    for (round, upto) in [(0, 30u64), (1, 40)] {
        let (mut wal, r) = Wal::open(dir.path(), 0, segment).expect("open");
        let before = if round == 0 { 0 } else { 30 };
        assert_eq!(seqs(&r), (1..=before).collect::<Vec<_>>());
        while wal.next_seq() <= upto {
            let seq = wal.next_seq();
            wal.write(&body(seq)).expect("write");
            wal.sync().expect("sync");
        }
        assert!(wal.segments() > 5, "rolled over: {}", wal.segments());
    }
    let (_, r) = Wal::open(dir.path(), 0, segment).expect("reopen");
    assert_eq!(seqs(&r), (1..=40).collect::<Vec<_>>());
    for (seq, p) in &r.records {
        assert_eq!(p, &body(*seq), "record {seq}");
    }
    assert!(r.torn_tail.is_none());
}

/// Each write and sync the journal makes, by file name, on the real disk.
type OpLog = Arc<Mutex<Vec<(String, &'static str)>>>;

#[derive(Debug, Default)]
struct Logged(OpLog);

#[derive(Debug)]
struct LoggedFile {
    inner: Arc<dyn DiskFile>,
    name: String,
    log: OpLog,
}

impl LoggedFile {
    fn note(&self, op: &'static str) {
        self.log.lock().expect("log").push((self.name.clone(), op));
    }
}

impl DiskFile for LoggedFile {
    fn write_at(&self, bytes: &[u8], at: u64) -> std::io::Result<()> {
        self.note("write");
        self.inner.write_at(bytes, at)
    }
    fn write_buffered_at(&self, bytes: &[u8], at: u64) -> std::io::Result<()> {
        self.note("write");
        self.inner.write_buffered_at(bytes, at)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.note("sync");
        self.inner.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

impl super::test_disk::Changes for Logged {
    fn file(&self, path: &Path, inner: Arc<dyn DiskFile>) -> Arc<dyn DiskFile> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Arc::new(LoggedFile {
            inner,
            name: name.unwrap_or_default(),
            log: Arc::clone(&self.0),
        })
    }
}

/// A segment reopened to append to may hold records recovery read from the
/// page cache only (their writer died before syncing them): it is synced
/// before anything is written after them.
#[test]
fn a_reopened_segment_is_synced_before_it_is_appended_to() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let (mut wal, _) = Wal::open(dir.path(), 0, 1 << 20).expect("open");
        for _ in 0..3 {
            let seq = wal.next_seq();
            wal.write(&payload(seq)).expect("write");
            wal.sync().expect("sync");
        }
    }
    let logged = Logged::default();
    let log = Arc::clone(&logged.0);
    let disk: Arc<dyn Disk> = Arc::new(super::test_disk::RealBut(logged));
    let (mut wal, r) = Wal::open_on(&disk, dir.path(), 0, 1 << 20).expect("reopen");
    assert_eq!(seqs(&r), vec![1, 2, 3]);
    wal.write(b"four").expect("write");
    wal.sync().expect("sync");
    let ops = log.lock().expect("log").clone();
    let segment = segment_name(1);
    let mine: Vec<&str> = ops
        .iter()
        .filter(|(name, _)| *name == segment)
        .map(|(_, op)| *op)
        .collect();
    assert_eq!(mine.first(), Some(&"sync"), "{ops:?}");
    assert!(mine.contains(&"write"), "{ops:?}");
}
