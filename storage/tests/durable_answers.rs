//! `Writer::apply_group_then`: the results go to the callback exactly once,
//! when the group is durable, and never when it is not.

use std::str::FromStr;
use std::sync::atomic::Ordering;

use otc_engine::{Command, EngineConfig, Timestamp};
use otc_storage::workload::workload_user;
use otc_storage::{Request, StorageError, Writer, WriterOptions};
use rust_decimal::Decimal;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn deposit(external_ref: &str) -> Request {
    Request {
        request_id: Some(external_ref.into()),
        command: Command::Deposit {
            user: workload_user(1),
            asset: otc_engine::Asset::new("EB").unwrap_or_else(|e| panic!("{e:?}")),
            amount: Decimal::from_str("3").unwrap_or_else(|e| panic!("{e}")),
            external_ref: external_ref.into(),
        },
        now: T0,
        call: None,
    }
}

fn open(dir: &std::path::Path) -> Writer {
    let options = WriterOptions {
        snapshot_every: 1,
        ..WriterOptions::default()
    };
    Writer::open(dir, EngineConfig::default(), options).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Calls `apply_group_then` for one deposit and counts the callbacks.
fn apply_counting(w: &mut Writer, r: &str) -> (Result<(), StorageError>, usize) {
    let mut calls = 0;
    let result = w.apply_group_then(&[deposit(r)], &mut |done| {
        assert_eq!(done.len(), 1, "one outcome per request");
        calls += 1;
    });
    (result, calls)
}

/// Fails the flush (`fdatasync`) of the commit `ahead` commits from now.
fn fail_flush_in(w: &Writer, ahead: u64) {
    let n = w.store().commits.load(Ordering::Relaxed) + ahead;
    w.store().faults.fail_flush_at.store(n, Ordering::Relaxed);
}

fn held(w: &Writer) -> Decimal {
    let eb = otc_engine::Asset::new("EB").unwrap_or_else(|e| panic!("{e:?}"));
    w.engine().balance(workload_user(1), eb).available.value()
}

#[test]
fn the_callback_runs_once_when_durable_and_never_otherwise() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut w = open(dir.path());
        let (ok, calls) = apply_counting(&mut w, "first");
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(calls, 1);

        // The journal's fdatasync fails: not durable, no callback.
        fail_flush_in(&w, 1);
        let (failed, calls) = apply_counting(&mut w, "lost");
        assert!(
            matches!(failed, Err(StorageError::Injected(_))),
            "{failed:?}"
        );
        assert_eq!(calls, 0, "a group that is not durable is never answered");
    }
    let before = {
        let mut w = open(dir.path());
        // Never answered, so either way: its record was written, unsynced,
        // and may still be read back from the page cache.
        let before = held(&w);
        assert!(
            before == Decimal::from(3) || before == Decimal::from(6),
            "{before}"
        );
        // The group commits; the snapshot due after it fails: answered
        // once, then the error.
        fail_flush_in(&w, 2);
        let (failed, calls) = apply_counting(&mut w, "second");
        assert!(failed.is_err(), "the snapshot's failure is reported");
        assert_eq!(calls, 1, "the durable group was answered once");
        let (stopped, calls) = apply_counting(&mut w, "after");
        assert!(
            matches!(stopped, Err(StorageError::Stopped(_))),
            "{stopped:?}"
        );
        assert_eq!(calls, 0);
        before
    };
    let w = open(dir.path());
    let after = held(&w);
    assert_eq!(
        after,
        before + Decimal::from(3),
        "the answered group is durable"
    );
}

/// A snapshot written in the background fails after its group was
/// answered: the writer stops at the next look (a later commit, or the
/// next snapshot), the answer stands, and the group is there at a restart.
#[test]
fn a_background_snapshot_failing_stops_the_writer_and_keeps_the_answer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = || WriterOptions {
        snapshot_every: 1,
        snapshot_in_background: true,
        ..WriterOptions::default()
    };
    let open = || {
        Writer::open(dir.path(), EngineConfig::default(), options())
            .unwrap_or_else(|e| panic!("open: {e}"))
    };
    {
        let mut w = open();
        let (ok, calls) = apply_counting(&mut w, "first");
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(calls, 1);
        // None left in the background, so the numbers below are exact.
        assert!(w.snapshot().is_ok());
        // The group's commit, then the snapshot started after it.
        fail_flush_in(&w, 2);
        let (ok, calls) = apply_counting(&mut w, "second");
        assert!(ok.is_ok(), "the snapshot is not waited for: {ok:?}");
        assert_eq!(calls, 1, "the durable group was answered");
        // The next snapshot waits for that one and reports its failure.
        assert!(
            matches!(w.snapshot(), Err(StorageError::Injected(_))),
            "the background failure is reported"
        );
        let (stopped, calls) = apply_counting(&mut w, "after");
        assert!(
            matches!(stopped, Err(StorageError::Stopped(_))),
            "{stopped:?}"
        );
        assert_eq!(calls, 0);
    }
    let w = open();
    assert_eq!(held(&w), Decimal::from(6), "both answered deposits");
}
