//! Snapshots' tests: two places taken in turn, old headers, damage, cut-short
//! snapshots, and snapshots beside commits.

use std::sync::Arc;

use super::super::behind::tests::{get, no_flusher, ok, one, reopen_after_a_crash};
use super::super::{Batch, StoreOptions};
use super::*;

/// The numbers of the snapshot chunks sled holds.
fn chunk_numbers(store: &Store) -> Vec<u64> {
    // sled itself (no snapshot key is ever in a group left aside):
    // readable after a recorded failure too.
    store
        .behind
        .scan_prefix([kind::SNAPSHOT])
        .keys()
        .map(|k| codec::key_n(&ok(k.map_err(StorageError::from))).unwrap_or(u64::MAX))
        .collect()
}

/// The engine's journal positions sled holds.
fn journal_positions(store: &Store) -> Vec<u64> {
    let tree = ok(store.tree());
    tree.scan_prefix([kind::JOURNAL])
        .keys()
        .map(|k| {
            let key = ok(k.map_err(StorageError::from));
            codec::split_piece_key(&key)
                .and_then(|(prefix, _, _)| codec::key_n(prefix))
                .unwrap_or(u64::MAX)
        })
        .collect()
}

/// Journal entries at `positions`, one commit each.
fn journal(store: &Store, positions: std::ops::Range<u64>) {
    for pos in positions {
        let key = codec::piece_key(&codec::key_u64(kind::JOURNAL, pos), 0, 1);
        ok(store.commit(one(&key, b"entry")));
    }
}

/// A store in a new directory, with no background flusher.
fn fresh() -> (tempfile::TempDir, Store) {
    let dir = ok(tempfile::tempdir().map_err(StorageError::from));
    let store = ok(Store::open_with(dir.path(), &no_flusher()));
    (dir, store)
}

fn header(store: &Store) -> SnapshotHeader {
    ok(store.snapshot_header()).unwrap_or_else(|| panic!("no snapshot"))
}

/// The chunk numbers of the snapshots with these headers, in order.
fn places(headers: &[SnapshotHeader]) -> Vec<u64> {
    let mut all: Vec<u64> = headers
        .iter()
        .flat_map(SnapshotHeader::chunk_numbers)
        .collect();
    all.sort_unstable();
    all
}

#[test]
fn snapshots_take_turns_between_two_places_and_leave_nothing_stale() {
    let (_dir, store) = fresh();
    let config = EngineConfig::default();
    let state = State::default();
    journal(&store, 0..10);
    ok(store.write_snapshot(&config, &state, 4));
    let h1 = header(&store);
    assert_eq!((h1.first, h1.journal_pos), (0, 4));
    assert!(h1.chunks >= 1);
    assert_eq!(chunk_numbers(&store), places(&[h1]));
    assert_eq!(journal_positions(&store), (4..10).collect::<Vec<_>>());
    // A chunk past the end of the other place (a longer snapshot's).
    let stray = codec::key_u64(kind::SNAPSHOT, SECOND_PLACE + 50);
    ok(store
        .behind
        .insert(stray, &b"old"[..])
        .map_err(StorageError::from));
    ok(store.write_snapshot(&config, &state, 9));
    let h2 = header(&store);
    assert_eq!((h2.first, h2.journal_pos), (SECOND_PLACE, 9));
    assert_eq!(
        chunk_numbers(&store),
        places(&[h1, h2]),
        "the one replaced stays, to be written over; the stray is gone"
    );
    assert_eq!(journal_positions(&store), vec![9]);
    ok(store.write_snapshot(&config, &state, 9));
    let h3 = header(&store);
    assert_eq!(h3.first, 0, "back to the first place");
    assert_eq!(chunk_numbers(&store), places(&[h3, h2]));
    let loaded = ok(store.load_snapshot()).map(|(h, c, s)| (h, c == config, s == state));
    assert_eq!(loaded, Some((h3, true, true)));
}

/// What headers were before `first`: their chunks start at 0.
#[derive(Serialize)]
struct OldHeader {
    journal_pos: u64,
    chunks: u64,
    len: u64,
    crc: u32,
}

#[test]
fn a_header_from_before_first_existed_loads_from_chunk_zero() {
    let (_dir, store) = fresh();
    let config = EngineConfig::default();
    let state = State::default();
    let bytes = ok(codec::serialize(&(&config, &state)));
    let mut batch = Batch::default();
    batch.insert(codec::key_u64(kind::SNAPSHOT, 0), codec::frame(&bytes));
    let old = OldHeader {
        journal_pos: 3,
        chunks: 1,
        len: bytes.len() as u64,
        crc: crc32fast::hash(&bytes),
    };
    batch.insert(META_SNAPSHOT, ok(codec::encode(&old)));
    ok(store.commit(batch));
    let loaded = ok(store.load_snapshot()).map(|(h, _, s)| (h.first, h.journal_pos, s == state));
    assert_eq!(loaded, Some((0, 3, true)));
    ok(store.write_snapshot(&config, &state, 5));
    let h = header(&store);
    assert_eq!(h.first, SECOND_PLACE);
    assert_eq!(chunk_numbers(&store), [vec![0], places(&[h])].concat());
}

/// A damaged header is named, not read as the other layout.
#[test]
fn a_damaged_header_is_refused() {
    let (_dir, store) = fresh();
    let h = SnapshotHeader {
        journal_pos: 1,
        chunks: 1,
        len: 1,
        crc: 1,
        first: 0,
    };
    let mut damaged = ok(codec::encode(&h));
    if let Some(last) = damaged.last_mut() {
        *last ^= 1;
    }
    ok(store.commit(one(META_SNAPSHOT, &damaged)));
    let e = store.snapshot_header().map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("damaged") && e.contains("checksum"), "{e}");
}

/// A snapshot cut short before its header: the one before loads after
/// a crash, and the next snapshot removes the chunks left behind.
#[test]
fn a_snapshot_cut_short_leaves_the_one_before() {
    let (dir, store) = fresh();
    let config = EngineConfig::default();
    let state = State::default();
    journal(&store, 0..6);
    ok(store.write_snapshot(&config, &state, 2));
    let live = |store: &Store| {
        let h = ok(header_in(&store.behind)).unwrap_or_else(|| panic!("no snapshot"));
        h.chunk_numbers()
            .map(|n| {
                ok(store
                    .behind
                    .get(codec::key_u64(kind::SNAPSHOT, n))
                    .map_err(StorageError::from))
            })
            .collect::<Vec<_>>()
    };
    let before = live(&store);
    let n = store.commits.load(Ordering::Relaxed) + 1;
    store.faults.fail_flush_at.store(n, Ordering::Relaxed);
    assert!(store.write_snapshot(&config, &state, 5).is_err());
    assert_eq!(
        live(&store),
        before,
        "the current snapshot's chunks are untouched"
    );
    assert!(
        store.commit(one(b"k", b"v")).is_err(),
        "the failure is kept"
    );
    let (_copy, store) = reopen_after_a_crash(store, dir.path());
    let h = header(&store);
    assert_eq!((h.first, h.journal_pos), (0, 2));
    // What it covers may be back (its removal was not flushed); what
    // follows it is all there.
    assert!(journal_positions(&store).ends_with(&[2, 3, 4, 5]));
    // What the cut attempt may have left, and a stray further on
    // (in sled directly, as snapshots write them).
    for (n, value) in [(SECOND_PLACE, &b"partial"[..]), (40, b"stray")] {
        ok(store
            .behind
            .insert(codec::key_u64(kind::SNAPSHOT, n), value)
            .map_err(StorageError::from));
    }
    ok(store.write_snapshot(&config, &state, 5));
    let next = header(&store);
    assert_eq!(next.first, SECOND_PLACE);
    assert_eq!(chunk_numbers(&store), places(&[h, next]));
    assert_eq!(journal_positions(&store), vec![5]);
    assert!(ok(store.load_snapshot()).is_some());
}

/// A header this change's first version wrote (chunks numbered on from
/// the snapshot before): the next goes to the second place, and the
/// current one's chunks are left whole.
#[test]
fn a_header_numbered_on_from_before_is_not_written_over() {
    let (_dir, store) = fresh();
    let config = EngineConfig::default();
    let state = State::default();
    let bytes = ok(codec::serialize(&(&config, &state)));
    let h = SnapshotHeader {
        journal_pos: 3,
        chunks: 1,
        len: bytes.len() as u64,
        crc: crc32fast::hash(&bytes),
        first: 1,
    };
    let chunk = codec::key_u64(kind::SNAPSHOT, 1);
    ok(store
        .behind
        .insert(chunk, codec::frame(&bytes))
        .map_err(StorageError::from));
    ok(store
        .behind
        .insert(META_SNAPSHOT, ok(codec::encode(&h)))
        .map_err(StorageError::from));
    ok(store.write_snapshot(&config, &state, 4));
    let next = header(&store);
    assert_eq!(next.first, SECOND_PLACE);
    assert_eq!(chunk_numbers(&store), places(&[h, next]));
}

/// A current snapshot the new one's place would overlap, or a position
/// before the current one's: refused, nothing written over.
#[test]
fn a_snapshot_that_would_overlap_or_go_back_is_refused() {
    let config = EngineConfig::default();
    let state = State::default();
    for (first, pos, says) in [(SECOND_PLACE - 1, 9, "overlap"), (0, 1, "position")] {
        let (_dir, store) = fresh();
        let h = SnapshotHeader {
            journal_pos: 5,
            chunks: 2,
            len: 0,
            crc: 0,
            first,
        };
        ok(store
            .behind
            .insert(META_SNAPSHOT, ok(codec::encode(&h)))
            .map_err(StorageError::from));
        let e = store
            .write_snapshot(&config, &state, pos)
            .map(|()| "written".to_owned());
        let e = e.map_err(|e| e.to_string()).unwrap_err();
        assert!(e.contains(says), "{e}");
        assert!(chunk_numbers(&store).is_empty(), "nothing written");
    }
}

/// A crash while a snapshot removes the journal it covers may leave a
/// record below its position half removed: reading the journal starts
/// at the position, so a restart never reads that record.
#[test]
fn a_journal_record_half_removed_below_the_snapshot_is_never_read() {
    let (_dir, store) = fresh();
    let config = EngineConfig::default();
    let entries: Vec<crate::JournalEntry> = (0..60)
        .map(|_| crate::JournalEntry::Configure(config.clone()))
        .collect();
    let pieces = ok(codec::encode_pieces(
        &codec::key_u64(kind::JOURNAL, 0),
        &entries,
    ));
    assert!(pieces.len() > 1, "a record of several pieces");
    ok(store.write_snapshot(&config, &State::default(), 60));
    // All of it but its first piece, as such a crash leaves it.
    let mut batch = Batch::default();
    for (key, value) in pieces.iter().skip(1) {
        batch.insert(key, value);
    }
    ok(store.commit(batch));
    assert!(ok(store.journal_from(60, usize::MAX)).is_empty());
    assert!(ok(store.journal_from(0, usize::MAX)).is_empty());
    // Read from below the position, the record would be refused.
    let below = store.scan_groups::<crate::JournalEntry>(kind::JOURNAL, 0, 60, 10);
    assert!(below.is_err(), "{below:?}");
}

/// Snapshots on one thread while another commits: every commit is
/// there, and the last snapshot loads, after a clean reopen.
#[test]
fn snapshots_beside_commits_on_another_thread() {
    let dir = ok(tempfile::tempdir().map_err(StorageError::from));
    {
        let store = Arc::new(ok(Store::open_with(dir.path(), &StoreOptions::default())));
        let snapshots = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let config = EngineConfig::default();
                for pos in 0..20 {
                    ok(store.write_snapshot(&config, &State::default(), pos));
                }
            })
        };
        for i in 0..300u32 {
            ok(store.commit(one(&i.to_be_bytes(), b"v")));
        }
        assert!(snapshots.join().is_ok());
    }
    let store = ok(Store::open_with(dir.path(), &no_flusher()));
    for i in 0..300u32 {
        assert_eq!(get(&store, &i.to_be_bytes()).as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(
        ok(store.load_snapshot()).map(|(h, _, _)| h.journal_pos),
        Some(19)
    );
    // Every snapshot the same size: the other place holds as many.
    let h = header(&store);
    let other = SnapshotHeader {
        first: if h.first == 0 { SECOND_PLACE } else { 0 },
        ..h
    };
    assert_eq!(chunk_numbers(&store), places(&[h, other]));
}
