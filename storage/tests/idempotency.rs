//! Idempotency (SPEC §14): request ids across restarts, within a group and
//! past their retention; stored first replies; files written with their
//! command. What the writer keeps for the API's retries.

use otc_engine::{Command, EngineConfig, Timestamp};
use otc_storage::workload::workload_user;
use otc_storage::{Outcome, Request, StorageError, StoredOutcome, Writer, WriterOptions};
use rust_decimal::Decimal;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn open(dir: &std::path::Path, options: WriterOptions) -> Writer {
    Writer::open(dir, EngineConfig::default(), options).unwrap_or_else(|e| panic!("open: {e}"))
}

fn deposit(amount: &str, r: &str) -> Command {
    Command::Deposit {
        user: workload_user(1),
        asset: otc_engine::Asset::new("EB").unwrap(),
        amount: amount.parse().unwrap(),
        external_ref: r.into(),
    }
}

/// Every request-id record on disk, oldest group first.
fn id_records(store: &otc_storage::Store) -> Vec<(String, otc_storage::IdemRecord)> {
    let mut out = Vec::new();
    store
        .idempotency_records(|_, id, rec| out.push((id, rec)))
        .unwrap();
    out
}

/// A writer whose replier renders "reply to <command name>" (the API
/// renders protobuf; storage keeps opaque bytes).
fn with_replier(dir: &std::path::Path) -> Writer {
    let mut w = open(dir, WriterOptions::default());
    w.set_replier(Box::new(|_, command, result| {
        format!(
            "{} {}",
            command.name(),
            if result.is_ok() { "ok" } else { "refused" }
        )
        .into_bytes()
    }));
    w
}

fn client(id: &str, command: Command, fingerprint: u64, file: Option<Vec<u8>>) -> Request {
    Request {
        request_id: Some(id.into()),
        command,
        now: T0,
        call: Some(otc_storage::Call {
            caller: workload_user(9),
            fingerprint,
            attachment: file,
        }),
    }
}

#[test]
fn first_replies_are_stored_with_the_commit_and_survive_restart_and_housekeeping() {
    let dir = tempfile::tempdir().unwrap();
    let caller = workload_user(9);
    {
        let mut w = with_replier(dir.path());
        // The same id twice in one group: the second gets the first's reply.
        let done = w
            .apply_group_replies(&[
                client("a", deposit("5", "ext-a"), 1, None),
                client("a", deposit("5", "ext-a"), 1, None),
                client("a", deposit("6", "ext-a"), 2, None),
            ])
            .unwrap();
        assert!(matches!(done[0].outcome, Outcome::Applied(_)));
        assert_eq!(done[0].reply.as_deref(), Some(b"deposit ok".as_slice()));
        assert!(matches!(done[1].outcome, Outcome::Repeated(..)));
        assert_eq!(done[1].reply, done[0].reply);
        assert_eq!(done[2].outcome, Outcome::IdConflict);
        // A refusal is a first result too.
        let refused = w
            .apply_group_replies(&[client("b", deposit("-1", "ext-b"), 3, None)])
            .unwrap();
        assert!(matches!(refused[0].outcome, Outcome::Rejected(_)));
        // The early lookup sees committed ids only, with their replies.
        assert_eq!(
            w.earlier(caller, "a", 1).unwrap(),
            Some(otc_storage::Earlier::Same(
                StoredOutcome::Applied {
                    first_seq: 1,
                    last_seq: 2,
                },
                Some(b"deposit ok".to_vec())
            ))
        );
        assert_eq!(
            w.earlier(caller, "a", 2).unwrap(),
            Some(otc_storage::Earlier::Conflict)
        );
        assert_eq!(w.earlier(caller, "c", 1).unwrap(), None);
    }
    let mut w = with_replier(dir.path());
    w.maintain(T0.plus_ms(60_000)).unwrap();
    let again = w
        .apply_group_replies(&[client("b", deposit("-1", "ext-b"), 3, None)])
        .unwrap();
    assert_eq!(
        again[0].reply.as_deref(),
        Some(b"deposit refused".as_slice())
    );
    let Some(otc_storage::Earlier::Same(_, reply)) = w.earlier(caller, "a", 1).unwrap() else {
        panic!("id a forgotten after a restart")
    };
    assert_eq!(reply.as_deref(), Some(b"deposit ok".as_slice()));
    // Past the retention both records and replies go, on disk too.
    w.maintain(T0.plus_ms(25 * 3_600_000)).unwrap();
    assert_eq!(w.earlier(caller, "a", 1).unwrap(), None);
    assert!(id_records(w.store()).is_empty());
    assert_eq!(
        w.store()
            .idempotency_reply(
                &otc_storage::codec::key_time(otc_storage::codec::kind::IDEMPOTENCY, T0.0, 0),
                &format!("{caller}/a")
            )
            .unwrap(),
        None
    );
}

#[test]
fn a_file_is_stored_only_with_the_command_that_references_it() {
    use otc_engine::command::AttachmentRef;
    let dir = tempfile::tempdir().unwrap();
    let mut w = with_replier(dir.path());
    let chat = |blob: &str, size: u64| Command::PostChat {
        user: workload_user(9),
        trade: otc_engine::TradeId(1),
        text: "receipt".into(),
        attachment: Some(AttachmentRef {
            blob_id: blob.into(),
            content_type: "image/png".into(),
            size_bytes: size,
            file_name: "r.png".into(),
        }),
    };
    // Refused by the engine (no such trade): no file.
    let out = w
        .apply_group_replies(&[client("c1", chat("f1", 3), 1, Some(vec![1, 2, 3]))])
        .unwrap();
    assert!(matches!(out[0].outcome, Outcome::Rejected(_)));
    // Bytes that are not the referenced file: that request alone is refused
    // and the writer goes on.
    let out = w
        .apply_group_replies(&[client("c2", chat("f2", 4), 2, Some(vec![1, 2, 3]))])
        .unwrap();
    let Outcome::Rejected(r) = &out[0].outcome else {
        panic!("{out:?}")
    };
    assert!(r.to_string().contains("attachment.data"), "{r}");
    w.apply_group(&[Request::new(None, deposit("1", "still-up"), T0)])
        .expect("the writer is still up");
    assert!(w.store().blob_ids().unwrap().is_empty());
}

#[test]
fn a_stopped_writer_answers_no_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = with_replier(dir.path());
    let next = w.store().commits.load(std::sync::atomic::Ordering::Relaxed) + 1;
    w.store()
        .faults
        .fail_flush_at
        .store(next, std::sync::atomic::Ordering::Relaxed);
    let err = w.apply_group_replies(&[client("x", deposit("5", "ext-x"), 1, None)]);
    assert!(err.is_err());
    // The record was written but never made durable: a retry must not
    // be told it happened.
    assert!(matches!(
        w.earlier(workload_user(9), "x", 1),
        Err(StorageError::Stopped(_))
    ));
}

#[test]
fn request_ids_are_idempotent_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let req = |amount: &str| Request {
        request_id: Some("req-1".into()),
        command: deposit(amount, "ext-1"),
        now: T0,
        call: None,
    };
    let first = {
        let mut w = open(dir.path(), WriterOptions::default());
        let out = w.apply_group(&[req("5")]).unwrap();
        let Outcome::Applied(events) = &out[0] else {
            panic!("{out:?}")
        };
        let again = w.apply_group(&[req("5")]).unwrap();
        let Outcome::Repeated(StoredOutcome::Applied { .. }, replayed) = &again[0] else {
            panic!("{again:?}")
        };
        assert_eq!(replayed, events, "a repeat returns the first result");
        events.clone()
    };
    let mut w = open(dir.path(), WriterOptions::default());
    let out = w.apply_group(&[req("5"), req("6")]).unwrap();
    assert!(matches!(&out[0], Outcome::Repeated(_, e) if *e == first));
    assert_eq!(out[1], Outcome::IdConflict);
    assert_eq!(
        w.engine()
            .balance(workload_user(1), otc_engine::Asset::new("EB").unwrap())
            .available
            .value(),
        Decimal::from(5)
    );
    // After the retention the id is forgotten.
    w.maintain(T0.plus_ms(25 * 60 * 60_000)).unwrap();
    let out = w
        .apply_group(&[Request {
            request_id: Some("req-1".into()),
            command: deposit("7", "ext-2"),
            now: T0.plus_ms(25 * 60 * 60_000),
            call: None,
        }])
        .unwrap();
    assert!(matches!(out[0], Outcome::Applied(_)));
}

#[test]
fn a_rejection_is_remembered_for_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let bad = Request {
        request_id: Some("r".into()),
        command: deposit("0", "x"),
        now: T0,
        call: None,
    };
    let out = w.apply_group(std::slice::from_ref(&bad)).unwrap();
    assert!(matches!(out[0], Outcome::Rejected(_)));
    let out = w.apply_group(&[bad]).unwrap();
    assert!(
        matches!(&out[0], Outcome::Repeated(StoredOutcome::Rejected { message, .. }, _) if message.contains("greater than zero"))
    );
}

#[test]
fn a_request_id_repeated_within_one_group_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let req = Request {
        request_id: Some("twice".into()),
        command: deposit("5", "ext-twice"),
        now: T0,
        call: None,
    };
    let out = w.apply_group(&[req.clone(), req]).unwrap();
    let Outcome::Applied(events) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(
        matches!(&out[1], Outcome::Repeated(StoredOutcome::Applied { .. }, e) if e == events),
        "{out:?}"
    );
    let balance = |w: &Writer| {
        w.engine()
            .balance(workload_user(1), otc_engine::Asset::new("EB").unwrap())
            .available
            .value()
    };
    assert_eq!(balance(&w), Decimal::from(5));
    drop(w);
    let w = open(dir.path(), WriterOptions::default());
    assert_eq!(balance(&w), Decimal::from(5));
}

#[test]
fn expired_request_ids_stay_forgotten_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let later = T0.plus_ms(25 * 60 * 60_000);
    {
        let mut w = open(dir.path(), WriterOptions::default());
        let old = Request {
            request_id: Some("old".into()),
            command: deposit("5", "ext-old"),
            now: T0,
            call: None,
        };
        let recent = Request {
            request_id: Some("recent".into()),
            command: deposit("1", "ext-recent"),
            now: later,
            call: None,
        };
        w.apply_group(&[old]).unwrap();
        w.apply_group(&[recent]).unwrap();
        w.maintain(later).unwrap();
    }
    let w = open(dir.path(), WriterOptions::default());
    let mut ids: Vec<String> = Vec::new();
    w.store()
        .idempotency_records(|_, id, _| {
            ids.push(id.rsplit('/').next().unwrap_or(&id).to_owned());
        })
        .unwrap();
    assert_eq!(ids, ["recent"], "the expired id is gone from disk too");
}

#[test]
fn a_reused_request_id_is_not_forgotten_early_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 60 * 60_000;
    let reuse_at = T0.plus_ms(25 * hour);
    let reused = Request {
        request_id: Some("x".into()),
        command: deposit("2", "ext-x-2"),
        now: reuse_at,
        call: None,
    };
    {
        let mut w = open(dir.path(), WriterOptions::default());
        // One group: "x" early, "y" 23 h later, so the group's record stays on
        // disk after "x" itself expires.
        w.apply_group(&[
            Request {
                request_id: Some("x".into()),
                command: deposit("1", "ext-x-1"),
                now: T0,
                call: None,
            },
            Request {
                request_id: Some("y".into()),
                command: deposit("1", "ext-y"),
                now: T0.plus_ms(23 * hour),
                call: None,
            },
        ])
        .unwrap();
        w.maintain(reuse_at).unwrap();
        let out = w.apply_group(std::slice::from_ref(&reused)).unwrap();
        assert!(
            matches!(out[0], Outcome::Applied(_)),
            "expired id reused: {out:?}"
        );
    }
    let mut w = open(dir.path(), WriterOptions::default());
    w.maintain(reuse_at.plus_ms(1)).unwrap();
    let out = w.apply_group(&[reused]).unwrap();
    assert!(
        matches!(out[0], Outcome::Repeated(..)),
        "a retry of the reused id is recognised: {out:?}"
    );
    assert_eq!(
        w.engine()
            .balance(workload_user(1), otc_engine::Asset::new("EB").unwrap())
            .available
            .value(),
        Decimal::from(4)
    );
}

#[test]
fn pruning_request_ids_never_splits_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    // Two groups whose request-id records span several 4 KiB pieces each.
    for (g, now) in [(0, T0), (1, T0.plus_ms(1))] {
        let group: Vec<Request> = (0..300)
            .map(|i| Request {
                request_id: Some(format!("group-{g}-request-{i}")),
                command: deposit("1", &format!("ext-{g}-{i}")),
                now,
                call: None,
            })
            .collect();
        w.apply_group(&group).unwrap();
    }
    let store = w.store();
    let mut batch = otc_storage::store::Batch::default();
    let removed = store
        .stage_idempotency_prune(&mut batch, T0.plus_ms(10), 1)
        .unwrap();
    assert_eq!(removed, 1, "one record per the limit");
    store.commit(batch).unwrap();
    let left = id_records(store);
    assert_eq!(left.len(), 300, "the other group's record is whole");
    assert!(left.iter().all(|(id, _)| id.contains("group-1-")));
}

/// What the API looks at without the writer's lock: the ids of committed
/// groups, per caller, kept across a restart and gone once pruned.
#[test]
fn known_ids_are_the_committed_ones() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (me, other) = (workload_user(9), workload_user(8));
    {
        let mut w = open(dir.path(), WriterOptions::default());
        let known = w.known_ids();
        assert!(!known.contains(me, "a"));
        let mut when_answered = None;
        w.apply_group_then(&[client("a", deposit("1", "ext-a"), 1, None)], &mut |_| {
            when_answered = Some(known.contains(me, "a"));
        })
        .unwrap();
        assert_eq!(when_answered, Some(false), "not before the commit is whole");
        assert!(
            known.contains(me, "a"),
            "seen through the handle taken before"
        );
        assert!(!known.contains(other, "a"), "ids are per caller");
        assert!(!known.contains(me, "b"));
    }
    let mut w = open(dir.path(), WriterOptions::default());
    let known = w.known_ids();
    assert!(known.contains(me, "a"), "loaded at start");
    w.maintain(T0.plus_ms(25 * 60 * 60_000)).unwrap();
    assert!(!known.contains(me, "a"), "pruned after the retention");
    // A group whose fdatasync fails leaves its id unknown.
    let next = w.store().commits.load(Ordering::Relaxed) + 1;
    w.store()
        .faults
        .fail_flush_at
        .store(next, Ordering::Relaxed);
    let failed = w.apply_group(&[client("c", deposit("1", "ext-c"), 1, None)]);
    assert!(failed.is_err(), "{failed:?}");
    assert!(!known.contains(me, "c"));
}
