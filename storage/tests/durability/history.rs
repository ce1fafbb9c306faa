//! History outlives the engine's working set: ended records and events read
//! back from sled, pruned after their retention, decoded whatever a group
//! carried.

use super::*;

#[test]
fn history_outlives_the_engines_working_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let mut load = Workload::new(5, 8);
    let now = run(&mut w, &mut load, 800, 4, T0);
    let ended: Vec<_> = w
        .store()
        .events_from(1, usize::MAX)
        .unwrap()
        .iter()
        .filter_map(|e| match e.kind {
            otc_engine::EventKind::TradeTransitioned {
                trade,
                to: otc_engine::trade::TradeStateKind::Released,
                ..
            } => Some(trade),
            _ => None,
        })
        .collect();
    assert!(ended.len() > 20, "the workload released trades");
    w.fire_due(now.plus_ms(2 * 60 * 60_000)).unwrap();
    for id in ended {
        assert!(w.engine().trade(id).is_none(), "forgotten by the engine");
        let t = w.store().trade(id).unwrap().expect("kept in history");
        assert!(!t.state.is_open());
    }
}

#[test]
fn old_events_are_pruned_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    w.apply_group(&[Request {
        request_id: None,
        command: deposit("5", "a"),
        now: T0,
        call: None,
    }])
    .unwrap();
    let later = T0.plus_ms(8 * 24 * 60 * 60_000);
    w.apply_group(&[Request {
        request_id: None,
        command: deposit("5", "b"),
        now: later,
        call: None,
    }])
    .unwrap();
    w.maintain(later).unwrap();
    let first = w.first_retained_seq().unwrap();
    assert!(first > 1, "events older than 7 days are gone");
    assert_eq!(w.store().events_from(0, 100).unwrap()[0].seq, first);
}

#[test]
fn events_are_read_from_the_middle_of_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut load = Workload::new(9, 6);
    let mut w = open(dir.path(), WriterOptions::default());
    run(&mut w, &mut load, 300, 50, T0);
    let last = w.engine().last_seq();
    assert!(last > 100);
    for from in [1, 2, 37, last / 2, last - 1, last] {
        let got = w.store().events_from(from, 5).unwrap();
        let want: Vec<u64> = (from..=last).take(5).collect();
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            want,
            "from {from}"
        );
    }
    assert!(w.store().events_from(last + 1, 5).unwrap().is_empty());
    assert_eq!(w.store().event_bounds().unwrap(), Some((1, last)));
    // The journal reads the same way: every position once, in order.
    let journal = w.store().journal_from(3, usize::MAX).unwrap();
    assert!(
        journal
            .iter()
            .enumerate()
            .all(|(i, (pos, _))| *pos == i as u64 + 3)
    );
}

#[test]
fn a_record_forgotten_in_the_same_group_keeps_its_final_state() {
    use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec};
    use otc_engine::listing::ListingState;
    use otc_engine::users::MethodDetails;
    use otc_engine::{EventKind, Fiat};

    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let (seller, buyer) = (workload_user(1), workload_user(2));
    let asset = otc_engine::Asset::new("EB").unwrap();
    let one = |w: &mut Writer, command: Command, now: Timestamp| -> Vec<otc_engine::Event> {
        match w
            .apply_group(&[Request {
                request_id: None,
                command,
                now,
                call: None,
            }])
            .unwrap()
            .pop()
        {
            Some(Outcome::Applied(events)) => events,
            other => panic!("{other:?}"),
        }
    };
    one(&mut w, deposit("10", "seed"), T0);
    let bound = one(
        &mut w,
        Command::BindMethod {
            user: seller,
            details: MethodDetails::Alipay {
                holder: "S".into(),
                account: "s@pay".into(),
            },
        },
        T0,
    );
    let method = bound
        .iter()
        .find_map(|e| match e.kind {
            EventKind::MethodBound { method, .. } => Some(method),
            _ => None,
        })
        .unwrap();
    one(
        &mut w,
        Command::SetFundPassword {
            user: seller,
            hash: "$argon2id$test".into(),
            current: None,
        },
        T0,
    );
    let proof = FundPasswordProof::matched(1);
    let spec = ListingSpec {
        asset,
        fiat: Fiat::new("CNY").unwrap(),
        price: otc_engine::command::PriceSpec::Fixed(Decimal::from(7)),
        total: Decimal::from(1),
        min_fiat: Decimal::from(1),
        max_fiat: Decimal::from(7),
        methods: vec![method],
        payment_window_ms: None,
        terms: String::new(),
        release_on_verified: false,
    };
    let published = one(
        &mut w,
        Command::PublishListing {
            seller,
            proof,
            spec,
        },
        T0,
    );
    let listing = published
        .iter()
        .find_map(|e| match e.kind {
            EventKind::ListingChanged { listing, .. } => Some(listing),
            _ => None,
        })
        .unwrap();
    let request = BuyRequest {
        asset,
        fiat: Fiat::new("CNY").unwrap(),
        amount: BuyAmount::Coin(Decimal::from(1)),
        max_price: None,
        methods: Vec::new(),
        rest: None,
    };
    let bought = one(&mut w, Command::PlaceBuy { buyer, request }, T0);
    let trade = bought
        .iter()
        .find_map(|e| match e.kind {
            EventKind::TradeCreated { trade, .. } => Some(trade),
            _ => None,
        })
        .unwrap();
    one(&mut w, Command::MarkPaid { buyer, trade }, T0);
    one(
        &mut w,
        Command::Release {
            seller,
            trade,
            proof,
        },
        T0,
    );
    // Sold out and closed: it leaves the working set an hour later. Then the
    // seller cancels it, and the due forget rides in the same group.
    let later = T0.plus_ms(60 * 60_000 + 1);
    let out = w
        .apply_group(&[
            Request {
                request_id: None,
                command: Command::CancelListing { seller, listing },
                now: later,
                call: None,
            },
            Request {
                request_id: None,
                command: Command::FireDue,
                now: later,
                call: None,
            },
        ])
        .unwrap();
    assert!(matches!(out[0], Outcome::Applied(_)), "{out:?}");
    assert!(w.engine().listing(listing).is_none(), "forgotten");
    let stored = w
        .store()
        .listing(listing)
        .unwrap()
        .expect("kept in history");
    assert_eq!(stored.state, ListingState::Cancelled);
}

#[test]
fn history_records_decode_when_groups_carry_their_due_deadlines() {
    // As otcd does: a due `FireDue` rides at the end of the group, so a
    // record may be collected before it and again after it.
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), WriterOptions::default());
    let mut load = Workload::new(11, 10);
    let mut now = T0;
    for _ in 0..300 {
        let mut reqs = Vec::new();
        for _ in 0..6 {
            let (command, advance) = load.next(w.engine(), now);
            now = now.plus_ms(advance);
            reqs.push(Request {
                request_id: None,
                command,
                now,
                call: None,
            });
        }
        reqs.extend(w.due_request(now));
        w.apply_group(&reqs).unwrap();
    }
    let last_id = w.engine().state().next_id;
    let mut found = 0;
    for id in 1..last_id {
        let store = w.store();
        found += usize::from(store.trade(otc_engine::TradeId(id)).unwrap().is_some());
        store.appeal(otc_engine::TradeId(id)).unwrap();
        store.listing(otc_engine::ListingId(id)).unwrap();
        store.buy_order(otc_engine::BuyOrderId(id)).unwrap();
    }
    assert!(found > 10, "ended trades are in history ({found})");
}

/// SPEC §10: an action on a trade the engine forgot is refused naming its
/// state, from history; a stranger still gets NOT_FOUND; and a history
/// record that is damaged keeps NOT_FOUND without stopping the writer
/// (anyone may name any trade).
#[test]
fn an_action_on_a_forgotten_trade_is_refused_from_history() {
    use otc_engine::{Rejection, RejectionKind, TradeId};
    let dir = tempfile::tempdir().unwrap();
    let (forgotten, later) = {
        let mut w = open(dir.path(), WriterOptions::default());
        let mut load = Workload::new(5, 8);
        let now = run(&mut w, &mut load, 800, 4, T0);
        let later = now.plus_ms(2 * 60 * 60_000);
        w.fire_due(later).unwrap();
        let forgotten: Vec<(TradeId, otc_engine::UserId)> = (1..5_000)
            .map(TradeId)
            .filter(|id| w.engine().trade(*id).is_none())
            .filter_map(|id| w.store().trade(id).unwrap().map(|t| (id, t.buyer)))
            .take(2)
            .collect();
        assert_eq!(forgotten.len(), 2, "the workload ended trades long ago");
        (forgotten, later)
    };
    let mark_paid = |(trade, buyer): (TradeId, otc_engine::UserId), rid: &str| Request {
        request_id: Some(rid.into()),
        command: Command::MarkPaid { buyer, trade },
        now: later,
        call: None,
    };
    let stranger = workload_user(999);
    {
        let mut w = open(dir.path(), WriterOptions::default());
        let out = w
            .apply_group(&[
                mark_paid(forgotten[0], "a"),
                mark_paid((forgotten[0].0, stranger), "b"),
            ])
            .unwrap();
        match &out[0] {
            Outcome::Rejected(r) => {
                assert_eq!(r.kind(), RejectionKind::FailedPrecondition, "{r}");
                assert!(r.to_string().contains(&forgotten[0].0.to_string()), "{r}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out[1],
            Outcome::Rejected(Rejection::TradeNotFound(forgotten[0].0))
        );
    }
    {
        // Damage the other trade's history record.
        let (db, tree) = raw_tree(dir.path());
        let prefix = otc_storage::codec::key_u64(otc_storage::codec::kind::TRADE, forgotten[1].0.0);
        let (key, value) = tree.scan_prefix(prefix).next().unwrap().unwrap();
        let mut bytes = value.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        tree.insert(key, bytes).unwrap();
        db.flush().unwrap();
    }
    let mut w = open(dir.path(), WriterOptions::default());
    let out = w
        .apply_group(&[
            mark_paid(forgotten[1], "c"),
            Request {
                request_id: None,
                command: deposit("5", "after"),
                now: later,
                call: None,
            },
        ])
        .unwrap();
    assert_eq!(
        out[0],
        Outcome::Rejected(Rejection::TradeNotFound(forgotten[1].0))
    );
    assert!(matches!(out[1], Outcome::Applied(_)), "{:?}", out[1]);
    assert!(
        w.store().trade(forgotten[1].0).is_err(),
        "the record is damaged"
    );
}
