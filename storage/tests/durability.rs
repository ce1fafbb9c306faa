//! Restart equivalence, idempotency across restarts, snapshots, timers after
//! downtime, integrity checks and fault injection (issue: durable state);
//! history and events in `durability/history.rs`.

#[path = "durability/history.rs"]
mod history;

use std::str::FromStr;

use otc_engine::{Command, EngineConfig, Timestamp};
use otc_storage::workload::{Workload, workload_user};
use otc_storage::{Outcome, Request, StorageError, Writer, WriterOptions};
use rust_decimal::Decimal;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn open(dir: &std::path::Path, options: WriterOptions) -> Writer {
    Writer::open(dir, EngineConfig::default(), options).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Runs `n` workload commands in groups of `group`, returning the final time.
fn run(
    w: &mut Writer,
    load: &mut Workload,
    n: usize,
    group: usize,
    mut now: Timestamp,
) -> Timestamp {
    let mut done = 0;
    while done < n {
        let mut reqs = Vec::new();
        for _ in 0..group.min(n - done) {
            let (command, advance) = load.next(w.engine(), now);
            now = now.plus_ms(advance);
            reqs.push(Request {
                request_id: Some(format!("r{}", load.count())),
                command,
                now,
                call: None,
            });
        }
        done += reqs.len();
        w.apply_group(&reqs)
            .unwrap_or_else(|e| panic!("group: {e}"));
        w.fire_due(now).unwrap_or_else(|e| panic!("fire: {e}"));
    }
    now
}

#[test]
fn reopening_restores_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut load = Workload::new(1, 12);
    let (digest, now) = {
        let mut w = open(dir.path(), WriterOptions::default());
        let now = run(&mut w, &mut load, 2_000, 7, T0);
        let created = w
            .store()
            .events_from(1, usize::MAX)
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, otc_engine::EventKind::TradeCreated { .. }))
            .count();
        assert!(created > 100, "the workload made trades ({created})");
        (w.engine().digest(), now)
    };
    let w = open(dir.path(), WriterOptions::default());
    assert_eq!(w.engine().digest(), digest);
    w.engine().check_invariants().unwrap();
    // The event log is complete and gap-free from 1.
    let events = w.store().events_from(1, usize::MAX).unwrap();
    assert_eq!(events.len() as u64, w.engine().last_seq());
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1)
    );
    assert!(now > T0);
}

#[test]
fn snapshots_bound_the_journal_and_recover_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let options = WriterOptions {
        snapshot_every: 300,
        ..WriterOptions::default()
    };
    let mut load = Workload::new(2, 10);
    let digest = {
        let mut w = open(dir.path(), options.clone());
        run(&mut w, &mut load, 2_500, 5, T0);
        let tail = w.store().journal_from(0, usize::MAX).unwrap();
        assert!(
            tail.len() < 320,
            "the journal is cut at each snapshot ({} entries left)",
            tail.len()
        );
        // In sled, below it: at most the record of the group a commit left
        // aside when the snapshot ran (the next snapshot removes it).
        let header = w.store().snapshot_header().unwrap().unwrap();
        let below = w.store().journal_pieces_below(header.journal_pos).unwrap();
        assert!(
            below <= 2,
            "what the snapshot covers is removed from sled ({below} pieces)"
        );
        w.engine().digest()
    };
    let w = open(dir.path(), options);
    assert_eq!(w.engine().digest(), digest);
}

/// As above, with each snapshot written on a thread of its own while the
/// groups after it commit.
#[test]
fn snapshots_in_the_background_bound_the_journal_and_recover_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let options = WriterOptions {
        snapshot_every: 300,
        snapshot_in_background: true,
        ..WriterOptions::default()
    };
    let mut load = Workload::new(2, 10);
    let digest = {
        let mut w = open(dir.path(), options.clone());
        run(&mut w, &mut load, 2_500, 5, T0);
        w.engine().digest()
    };
    let w = open(dir.path(), options);
    assert_eq!(w.engine().digest(), digest);
    let header = w.store().snapshot_header().unwrap().unwrap();
    assert!(
        header.journal_pos >= 600,
        "more than one snapshot was written ({header:?})"
    );
    let tail = w.store().journal_from(0, usize::MAX).unwrap();
    assert!(
        tail.len() < 2_000,
        "the journal is cut by the snapshots ({} entries left)",
        tail.len()
    );
    assert_eq!(tail.first().map(|(pos, _)| *pos), Some(header.journal_pos));
    // In sled, below it: at most a record that was still aside when the
    // snapshot ran (the next snapshot removes it).
    let below = w.store().journal_pieces_below(header.journal_pos).unwrap();
    assert!(
        below <= 2,
        "what the snapshots cover is removed from sled ({below} pieces)"
    );
}

/// A snapshot asked for when the last one covers everything writes
/// nothing (a clean close right after a background snapshot).
#[test]
fn a_snapshot_with_nothing_new_writes_nothing() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let mut load = Workload::new(4, 6);
    run(&mut w, &mut load, 50, 5, T0);
    w.snapshot().unwrap();
    let (header, commits) = (
        w.store().snapshot_header().unwrap(),
        w.store().commits.load(Ordering::Relaxed),
    );
    w.snapshot().unwrap();
    assert_eq!(w.store().snapshot_header().unwrap(), header);
    assert_eq!(
        w.store().commits.load(Ordering::Relaxed),
        commits,
        "nothing written"
    );
    run(&mut w, &mut load, 5, 5, T0.plus_ms(60_000));
    w.snapshot().unwrap();
    let after = w.store().snapshot_header().unwrap().unwrap();
    assert!(
        after.journal_pos > header.unwrap().journal_pos,
        "something new is"
    );
}

#[test]
fn overdue_deadlines_fire_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut load = Workload::new(3, 6);
    let now = {
        let mut w = open(dir.path(), WriterOptions::default());
        let now = run(&mut w, &mut load, 200, 4, T0);
        // Leave a trade unpaid.
        let seller = workload_user(0);
        let spec_cmd = load.next(w.engine(), now).0;
        let _ = w.apply_group(&[Request {
            request_id: None,
            command: spec_cmd,
            now,
            call: None,
        }]);
        let buy = Command::PlaceBuy {
            buyer: workload_user(1),
            request: otc_engine::command::BuyRequest {
                asset: otc_engine::Asset::new("EB").unwrap(),
                fiat: otc_engine::Fiat::new("CNY").unwrap(),
                amount: otc_engine::command::BuyAmount::Coin(Decimal::from_str("1").unwrap()),
                max_price: None,
                methods: Vec::new(),
                rest: None,
            },
        };
        let out = w
            .apply_group(&[Request {
                request_id: None,
                command: buy,
                now,
                call: None,
            }])
            .unwrap();
        assert!(
            matches!(out[0], Outcome::Applied(_)),
            "{out:?} (seller {seller:?})"
        );
        now
    };
    // Down for an hour: every payment window passed meanwhile.
    let later = now.plus_ms(60 * 60_000);
    let mut w = open(dir.path(), WriterOptions::default());
    let awaiting = |w: &Writer| {
        w.engine()
            .state()
            .trades
            .values()
            .filter(|t| {
                matches!(
                    t.state,
                    otc_engine::trade::TradeState::AwaitingPayment { .. }
                )
            })
            .count()
    };
    assert!(awaiting(&w) > 0);
    let fired = w.fire_due(later).unwrap();
    assert!(!fired.is_empty());
    assert_eq!(awaiting(&w), 0);
    let digest = w.engine().digest();
    assert!(
        w.fire_due(later).unwrap().is_empty(),
        "firing again does nothing"
    );
    drop(w);
    let w = open(dir.path(), WriterOptions::default());
    assert_eq!(w.engine().digest(), digest, "the firing was durable");
}

fn deposit(amount: &str, r: &str) -> Command {
    Command::Deposit {
        user: workload_user(1),
        asset: otc_engine::Asset::new("EB").unwrap(),
        amount: Decimal::from_str(amount).unwrap(),
        external_ref: r.into(),
    }
}

#[test]
fn a_failed_write_stops_the_writer_and_loses_nothing_acknowledged() {
    for fail_flush in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let acknowledged = {
            let mut w = open(dir.path(), WriterOptions::default());
            let mut load = Workload::new(4, 5);
            run(&mut w, &mut load, 60, 3, T0);
            let acknowledged = w.engine().digest();
            let faults = std::sync::Arc::clone(&w.store().faults);
            let next = w.store().commits.load(std::sync::atomic::Ordering::Relaxed) + 1;
            let target = if fail_flush {
                &faults.fail_flush_at
            } else {
                &faults.fail_write_at
            };
            target.store(next, std::sync::atomic::Ordering::Relaxed);
            let err = w.apply_group(&[Request {
                request_id: Some("lost".into()),
                command: deposit("3", "lost"),
                now: T0,
                call: None,
            }]);
            assert!(matches!(err, Err(StorageError::Injected(_))), "{err:?}");
            let again = w.apply_group(&[Request {
                request_id: None,
                command: deposit("3", "after"),
                now: T0,
                call: None,
            }]);
            assert!(
                matches!(again, Err(StorageError::Stopped(_))),
                "the writer stays stopped"
            );
            if fail_flush {
                None // the record was written but never synced nor acknowledged; either outcome is allowed
            } else {
                Some(acknowledged)
            }
        };
        let w = open(dir.path(), WriterOptions::default());
        w.engine().check_invariants().unwrap();
        if let Some(digest) = acknowledged {
            assert_eq!(
                w.engine().digest(),
                digest,
                "nothing unacknowledged is visible after reopen"
            );
        }
    }
}

#[test]
fn a_damaged_record_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = open(dir.path(), WriterOptions::default());
        w.apply_group(&[Request {
            request_id: None,
            command: deposit("5", "a"),
            now: T0,
            call: None,
        }])
        .unwrap();
    }
    {
        let (db, tree) = raw_tree(dir.path());
        let key = otc_storage::codec::piece_key(
            &otc_storage::codec::key_u64(otc_storage::codec::kind::JOURNAL, 0),
            0,
            1,
        );
        let mut bytes = tree.get(&key).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        tree.insert(&key, bytes).unwrap();
        db.flush().unwrap();
    }
    let err = match Writer::open(
        dir.path(),
        EngineConfig::default(),
        WriterOptions::default(),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a damaged journal was accepted"),
    };
    assert!(err.contains("j/0") && err.contains("checksum"), "{err}");
}

#[test]
fn attachments_round_trip_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let w = open(dir.path(), WriterOptions::default());
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut batch = otc_storage::store::Batch::default();
    otc_storage::Store::stage_blob(&mut batch, "ev-1", &bytes).unwrap();
    w.store().commit(batch).unwrap();
    assert_eq!(w.store().blob("ev-1").unwrap(), Some(bytes));
    assert_eq!(w.store().blob("nope").unwrap(), None);
    assert_eq!(w.store().blob_ids().unwrap(), ["ev-1"]);
}

#[test]
fn a_restart_with_other_settings_replays_under_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut load = Workload::new(6, 8);
    let digest = {
        let mut w = open(dir.path(), WriterOptions::default());
        run(&mut w, &mut load, 600, 4, T0);
        w.engine().digest()
    };
    let changed = EngineConfig {
        ended_retention_ms: 5 * 60_000,
        payment_window_ms_max: 20 * 60_000,
        ..EngineConfig::default()
    };
    let w = Writer::open(dir.path(), changed.clone(), WriterOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        w.engine().digest(),
        digest,
        "the journal replayed under the rules it was written with"
    );
    assert_eq!(
        w.engine().config(),
        &changed,
        "the new settings apply from now on"
    );
    drop(w);
    let w = Writer::open(dir.path(), changed.clone(), WriterOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.engine().digest(), digest);
}

#[test]
fn big_groups_stay_in_the_fsynced_data_file() {
    // sled writes pages over ~128 KiB to blob files it never fsyncs; group
    // records are split into pieces so that never happens.
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let group: Vec<Request> = (0..4_096)
        .map(|i| Request {
            request_id: Some(format!("big-{i}")),
            command: deposit("1", &format!("ext-big-{i}")),
            now: T0,
            call: None,
        })
        .collect();
    let out = w.apply_group(&group).unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Applied(_))));
    drop(w);
    let blobs = std::fs::read_dir(dir.path().join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "no sled blob files");
    let w = open(dir.path(), WriterOptions::default());
    assert_eq!(
        w.engine()
            .balance(workload_user(1), otc_engine::Asset::new("EB").unwrap())
            .available
            .value(),
        Decimal::from(4_096)
    );
    assert_eq!(id_records(w.store()).len(), 4_096);
    assert_eq!(
        w.store().events_from(1, usize::MAX).unwrap().len() as u64,
        w.engine().last_seq()
    );
}

/// Opens the store's sled tree directly once the writer is gone (sled frees
/// its lock a moment after the writer's handle is dropped).
fn raw_tree(dir: &std::path::Path) -> (sled::Db, sled::Tree) {
    let started = std::time::Instant::now();
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(5) => {
                assert!(e.to_string().contains("lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("sled: {e}"),
        }
    };
    let tree = db.open_tree("otc").unwrap();
    (db, tree)
}

/// Every request-id record on disk, oldest group first.
fn id_records(store: &otc_storage::Store) -> Vec<(String, otc_storage::IdemRecord)> {
    let mut out = Vec::new();
    store
        .idempotency_records(|_, id, rec| out.push((id, rec)))
        .unwrap();
    out
}
