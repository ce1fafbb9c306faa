//! The commit path's own tests: failures recorded, partial records replayed.

use super::super::behind::tests::get;
use super::*;

/// After a failure recorded by the snapshot or the flusher, the other
/// never syncs sled again (a second `fdatasync` may succeed over lost
/// data), nor moves sled's durable point.
#[test]
fn after_a_recorded_flush_failure_sled_is_never_synced_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let syncs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&syncs);
    let options = StoreOptions {
        flush_every: None,
        on_sled_durable: Some(Arc::new(move |_: &Path| {
            counted.fetch_add(1, Ordering::SeqCst);
        })),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
    let mut batch = Batch::default();
    batch.insert(b"k", b"v");
    store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
    let (before, durable) = (
        syncs.load(Ordering::SeqCst),
        store.flushed.durable.load(Ordering::SeqCst),
    );
    record_failure(
        &store.flushed,
        Some(&store.dir),
        "a snapshot failed: fdatasync: EIO".into(),
    );
    let e = store
        .flush_parts
        .flush_sled(&store.flushed)
        .expect_err("no second sync");
    assert!(e.contains("EIO"), "{e}");
    // (The background flush's way in: nothing new to flush, or refused.)
    let _ = store.flush_now();
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        before,
        "no sync after the failure"
    );
    assert_eq!(store.flushed.durable.load(Ordering::SeqCst), durable);
}

/// sled holding all of one record and only the first change of the
/// next, under the first's `mwalseq` (what a crash while the commit
/// goes into sled change by change can leave): the replay sets the rest.
#[test]
fn a_record_sled_holds_only_part_of_is_replayed_whole() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = StoreOptions {
        flush_every: None,
        ..StoreOptions::default()
    };
    let second_seq = {
        let store = Store::open_with(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
        let mut first = Batch::default();
        first.insert(b"k1", b"a1");
        first.insert(b"k2", b"a2");
        first.insert(b"k3", b"a3");
        store.commit(first).unwrap_or_else(|e| panic!("{e}"));
        let first_seq = get(&store, META_WAL_SEQ).unwrap_or_else(|| panic!("no mwalseq"));
        let mut second = Batch::default();
        second.insert(b"k1", b"b1");
        second.insert(b"k2", b"b2");
        second.remove(b"k3");
        store.commit(second).unwrap_or_else(|e| panic!("{e}"));
        let second_seq = get(&store, META_WAL_SEQ).unwrap_or_else(|| panic!("no mwalseq"));
        assert_ne!(first_seq, second_seq);
        // Back to the first record whole and the second's first change.
        for (k, v) in [
            (&b"k2"[..], &b"a2"[..]),
            (b"k3", b"a3"),
            (META_WAL_SEQ, &first_seq),
        ] {
            store
                .tree()
                .and_then(|tree| Ok(tree.insert(k, v)?))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        store.flush_now().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(&store, b"k2").as_deref(), Some(&b"a2"[..]));
        second_seq
    };
    let store = Store::open_with(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.recovered.replayed, 1, "the second record is replayed");
    assert_eq!(get(&store, b"k1").as_deref(), Some(&b"b1"[..]));
    assert_eq!(get(&store, b"k2").as_deref(), Some(&b"b2"[..]));
    assert_eq!(get(&store, b"k3"), None);
    assert_eq!(get(&store, META_WAL_SEQ), Some(second_seq));
}

/// The flusher and a snapshot written in the background both make sled
/// durable and call the hook: one at a time, or a simulator copying
/// sled's files there would copy a mix of two moments.
#[test]
fn the_durable_hook_runs_for_one_caller_at_a_time() {
    let inside = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let hook: SledDurableHook = {
        let (inside, most, calls) = (inside.clone(), most.clone(), calls.clone());
        Arc::new(move |_: &Path| {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            inside.fetch_sub(1, Ordering::SeqCst);
        })
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = StoreOptions {
        flush_every: None,
        on_sled_durable: Some(hook),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                for _ in 0..3 {
                    store
                        .flush_parts
                        .flush_sled(&store.flushed)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            });
        }
    });
    // One call at the open, then twelve.
    assert_eq!(calls.load(Ordering::SeqCst), 13);
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two callers in the hook at once"
    );
}
