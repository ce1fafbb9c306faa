//! Accounts, methods, the fund password (SPEC §4–§6) and fast match (§9).

mod common;

use common::*;
use otc_engine::command::{CapacityRequest, FastSellRequest, MerchantQuote};
use otc_engine::users::MethodKind;
use otc_engine::{Command, EngineConfig, EventKind, MethodId, Rejection, RejectionKind, UserId};

const S: u8 = 1;

#[test]
fn deposits_are_idempotent_on_their_external_reference() {
    let mut w = World::default();
    let dep = |amount: &str| Command::Deposit {
        user: user(S),
        asset: eb(),
        amount: d(amount),
        external_ref: "chain-tx-1".into(),
    };
    assert!(!w.ok(dep("5")).is_empty());
    assert!(
        w.ok(dep("5")).is_empty(),
        "a repeat returns without changing anything"
    );
    assert_eq!(w.bal(user(S)), (d("5"), d("0")));
    let r = w.err(dep("6"));
    assert_eq!(r.kind(), RejectionKind::AlreadyExists);
}

#[test]
fn withdrawals_never_take_escrowed_coin() {
    let mut w = World::default();
    w.seller(user(S), "10");
    w.publish(user(S), "7", "8", "7", "700");
    let out = |amount: &str, r: &str| Command::Withdraw {
        user: user(S),
        asset: eb(),
        amount: d(amount),
        external_ref: r.into(),
    };
    let r = w.err(out("3", "w1"));
    assert!(matches!(r, Rejection::InsufficientBalance { .. }), "{r}");
    w.ok(out("2", "w2"));
    assert_eq!(w.bal(user(S)), (d("0"), d("8")));
}

#[test]
fn a_method_in_use_cannot_be_removed_until_its_trades_end() {
    let mut w = World::default();
    let m = w.seller(user(S), "10");
    let l = w.publish(user(S), "7", "10", "7", "700");
    let t = w.buy_coin(user(2), "1");
    let r = w.err(Command::RemoveMethod {
        user: user(S),
        method: m,
    });
    assert!(r.to_string().contains("1 open trade"), "{r}");
    w.ok(Command::CancelListing {
        seller: user(S),
        listing: l,
    });
    w.ok(Command::CancelTrade {
        buyer: user(2),
        trade: t,
    });
    w.ok(Command::RemoveMethod {
        user: user(S),
        method: m,
    });
    let r = w.err(Command::RemoveMethod {
        user: user(S),
        method: m,
    });
    assert_eq!(r.kind(), RejectionKind::NotFound);
}

#[test]
fn methods_are_validated_and_bounded() {
    let mut w = World::default();
    let bad = otc_engine::users::MethodDetails::Bank {
        bank: "ICBC".into(),
        holder: "Li".into(),
        card_number: "1234".into(),
    };
    let r = w.err(Command::BindMethod {
        user: user(S),
        details: bad,
    });
    assert!(r.to_string().contains("account"), "{r}");
    let first = w.bind(user(S), bank());
    // The same card again (another holder's spelling): refused, naming it.
    let r = w.err(Command::BindMethod {
        user: user(S),
        details: otc_engine::users::MethodDetails::Bank {
            bank: "工商银行".into(),
            holder: "LI".into(),
            card_number: "6222020200112233".into(),
        },
    });
    assert_eq!(
        r.to_string(),
        format!("account is already bound as {first}")
    );
    for n in 1..10 {
        w.bind(
            user(S),
            otc_engine::users::MethodDetails::Bank {
                bank: "ICBC".into(),
                holder: "Li".into(),
                card_number: format!("62220202001122334{n:02}"),
            },
        );
    }
    let r = w.err(Command::BindMethod {
        user: user(S),
        details: alipay(),
    });
    assert_eq!(r.kind(), RejectionKind::ResourceExhausted);
}

#[test]
fn five_wrong_passwords_lock_protected_actions_for_fifteen_minutes() {
    let mut w = World::default();
    w.seller(user(S), "10");
    for n in 1..=4 {
        let events = w.wrong_password(user(S));
        assert_eq!(events.len(), 1, "only the failure is recorded: {events:?}");
        assert!(
            matches!(events[0].kind, EventKind::FundPasswordFailed { failures_in_row, locked_until: None, .. } if failures_in_row == n)
        );
    }
    let events = w.wrong_password(user(S));
    let EventKind::FundPasswordFailed {
        locked_until: Some(until),
        ..
    } = events[0].kind
    else {
        panic!("not locked")
    };
    assert_eq!(until, w.now.plus_ms(minutes(15)));
    let spec = w.spec(user(S), "7", "1", "1", "7");
    let proof = w.proof(user(S));
    let r = w.err(Command::PublishListing {
        seller: user(S),
        proof,
        spec: spec.clone(),
    });
    assert_eq!(r, Rejection::FundPasswordLocked { until });
    assert!(r.to_string().contains("try again after"));
    w.advance(minutes(15));
    w.ok(Command::PublishListing {
        seller: user(S),
        proof,
        spec,
    });
}

#[test]
fn a_right_password_ends_a_run_of_wrong_ones() {
    let mut w = World::default();
    w.seller(user(S), "10");
    for _ in 0..4 {
        w.wrong_password(user(S));
    }
    w.publish(user(S), "7", "1", "1", "7");
    let events = w.wrong_password(user(S));
    assert!(matches!(
        events[0].kind,
        EventKind::FundPasswordFailed {
            failures_in_row: 1,
            ..
        }
    ));
}

#[test]
fn a_wrong_password_is_checked_last_and_counts_once_per_command() {
    let mut w = World::default();
    w.seller(user(S), "10");
    let trade_id = otc_engine::TradeId(77);
    // Another refusal comes first and counts nothing.
    let proof = w.wrong_proof(user(S));
    let r = w.err(Command::Release {
        seller: user(S),
        trade: trade_id,
        proof,
    });
    assert!(matches!(r, Rejection::TradeNotFound(_)), "{r}");
    let short = w.spec(user(S), "7", "100", "1", "7");
    let r = w.err(Command::PublishListing {
        seller: user(S),
        proof,
        spec: short,
    });
    assert!(matches!(r, Rejection::InsufficientBalance { .. }), "{r}");
    // A valid command with a wrong password: the failure, and nothing else.
    let before = w.e.user(user(S)).map(|u| u.methods.len());
    let events = w.wrong_password(user(S));
    assert!(matches!(
        events.as_slice(),
        [e] if matches!(e.kind, EventKind::FundPasswordFailed { failures_in_row: 1, .. })
    ));
    assert_eq!(w.bal(user(S)), (d("10"), d("0")), "nothing escrowed");
    assert_eq!(w.e.user(user(S)).map(|u| u.methods.len()), before);
    // Changing the password with a wrong current one counts too.
    let wrong = w.wrong_proof(user(S));
    let events = w.ok(Command::SetFundPassword {
        user: user(S),
        hash: "$argon2id$new".into(),
        current: Some(wrong),
    });
    assert!(matches!(
        events.as_slice(),
        [e] if matches!(e.kind, EventKind::FundPasswordFailed { failures_in_row: 2, .. })
    ));
    // With none set, a verdict is refused saying so.
    let mut fresh = World::default();
    let spec = fresh.spec(user(2), "7", "1", "1", "7");
    let proof = fresh.wrong_proof(user(2));
    let r = fresh.err(Command::PublishListing {
        seller: user(2),
        proof,
        spec,
    });
    assert!(r.to_string().contains("fund password"), "{r}");
}

#[test]
fn stale_and_unchecked_verdicts_are_refused_and_never_counted() {
    let mut w = World::default();
    w.seller(user(S), "10");
    let spec = w.spec(user(S), "7", "1", "1", "7");
    let old = w.e.fund_password(user(S)).map_or(0, |(_, v)| v);
    let proof = w.proof(user(S));
    w.ok(Command::SetFundPassword {
        user: user(S),
        hash: "$argon2id$changed".into(),
        current: Some(proof),
    });
    // Wrong against the old hash: the password changed meanwhile.
    let r = w.err(Command::PublishListing {
        seller: user(S),
        proof: otc_engine::command::FundPasswordProof::wrong(old),
        spec: spec.clone(),
    });
    assert_eq!(r, Rejection::StaleFundPasswordProof);
    // Lock the user, then send what the shell sends a locked user.
    for _ in 0..5 {
        w.wrong_password(user(S));
    }
    let version = w.e.fund_password(user(S)).map_or(0, |(_, v)| v);
    let unchecked = otc_engine::command::FundPasswordProof::unchecked(version);
    let r = w.err(Command::PublishListing {
        seller: user(S),
        proof: unchecked,
        spec: spec.clone(),
    });
    assert!(matches!(r, Rejection::FundPasswordLocked { .. }), "{r}");
    // The lock ended between the shell's look and the engine: try again.
    w.advance(minutes(15));
    let r = w.err(Command::PublishListing {
        seller: user(S),
        proof: unchecked,
        spec: spec.clone(),
    });
    assert_eq!(r, Rejection::FundPasswordUnchecked);
    let events = w.wrong_password(user(S));
    assert!(matches!(
        events[0].kind,
        EventKind::FundPasswordFailed {
            failures_in_row: 1,
            ..
        }
    ));
}

// ---- fast match -------------------------------------------------------------

struct Merchant {
    id: UserId,
}

fn merchant(w: &mut World, n: u8, bid: &str, max_outstanding: &str) -> Merchant {
    let id = user(n);
    w.ok(Command::RegisterMerchant { user: id });
    let capacity = CapacityRequest {
        quotes: vec![MerchantQuote {
            asset: eb(),
            fiat: cny(),
            bid: d(bid),
            min_fiat: d("10"),
            max_fiat: d("10000"),
        }],
        methods: vec![MethodKind::Alipay, MethodKind::Bank],
        max_outstanding_fiat: d(max_outstanding),
    };
    w.ok(Command::SetMerchantCapacity {
        merchant: id,
        capacity,
    });
    w.ok(Command::SetMerchantOnline {
        merchant: id,
        online: true,
    });
    Merchant { id }
}

fn fast_sell(
    w: &mut World,
    amount: &str,
    method: MethodId,
) -> Result<Vec<otc_engine::Event>, Rejection> {
    let proof = w.proof(user(S));
    let request = FastSellRequest {
        asset: eb(),
        fiat: cny(),
        amount: d(amount),
        method,
        release_on_verified: false,
    };
    let r = w.e.apply(
        &Command::FastSell {
            seller: user(S),
            proof,
            request,
        },
        w.now,
    );
    w.check();
    r
}

#[test]
fn fast_sell_picks_highest_bid_then_least_outstanding_then_longest_idle() {
    let mut w = World::default();
    let m = w.seller(user(S), "100");
    let low = merchant(&mut w, 20, "6.90", "100000");
    let a = merchant(&mut w, 21, "7.00", "100000");
    let b = merchant(&mut w, 22, "7.00", "100000");
    let t1 = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    let first = w.e.trade(t1).unwrap().buyer;
    assert!(first == a.id || first == b.id);
    let t2 = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    let second = w.e.trade(t2).unwrap().buyer;
    assert_ne!(first, second, "the other top bidder has less outstanding");
    assert_ne!(second, low.id);
    assert_eq!(w.e.trade(t2).unwrap().fiat_amount.value(), d("70.00"));
    assert_eq!(w.bal(user(S)), (d("80"), d("20")));
    w.ok(Command::MarkPaid {
        buyer: first,
        trade: t1,
    });
    w.release(user(S), t1);
    w.ok(Command::MarkPaid {
        buyer: second,
        trade: t2,
    });
    w.release(user(S), t2);
    // Equal bids, nothing outstanding: the one idle longest (assigned first) wins.
    let t3 = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    assert_eq!(w.e.trade(t3).unwrap().buyer, first);
}

#[test]
fn outstanding_capacity_limits_a_merchant() {
    let mut w = World::default();
    let m = w.seller(user(S), "100");
    let small = merchant(&mut w, 20, "7.10", "100");
    let big = merchant(&mut w, 21, "7.00", "100000");
    let t1 = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    assert_eq!(w.e.trade(t1).unwrap().buyer, small.id, "71 fits under 100");
    let t2 = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    assert_eq!(w.e.trade(t2).unwrap().buyer, big.id, "142 would not");
    assert_eq!(
        w.e.merchant(small.id).unwrap().outstanding_fiat.value(),
        d("71.00")
    );
}

#[test]
fn a_merchant_timeout_redispatches_up_to_three_tries_then_returns_the_coin() {
    let mut w = World::default();
    let m = w.seller(user(S), "100");
    for (n, bid) in [(20, "7.30"), (21, "7.20"), (22, "7.10"), (23, "7.00")] {
        merchant(&mut w, n, bid, "100000");
    }
    let first = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    assert_eq!(w.e.trade(first).unwrap().buyer, user(20));
    let mut chain = vec![first];
    for expected in [21, 22] {
        let events = w.advance(minutes(10));
        let next = trade_of(&events);
        let t = w.e.trade(next).unwrap();
        assert_eq!(t.buyer, user(expected));
        let link = t.fast_match.as_ref().unwrap();
        assert_eq!(link.origin, first, "each try links to the first");
        chain.push(next);
        assert_eq!(
            w.bal(user(S)),
            (d("90"), d("10")),
            "the coin stays escrowed between tries"
        );
    }
    let events = w.advance(minutes(10));
    assert!(trades_of(&events).is_empty(), "three tries, then no more");
    assert_eq!(w.bal(user(S)), (d("100"), d("0")));
    // The statement counts the coin returned once, not once per try.
    let flows = w.e.statement(eb(), w.now.utc_day()).flows;
    assert_eq!(flows.returned.value(), d("10"));
    for t in chain {
        assert_eq!(w.state_of(t), "CANCELLED");
    }
    for n in 20..=23 {
        assert!(
            w.e.merchant(user(n))
                .unwrap()
                .outstanding_fiat
                .value()
                .is_zero()
        );
    }
}

#[test]
fn coin_handed_to_the_next_merchant_and_released_was_never_returned() {
    let mut w = World::default();
    let m = w.seller(user(S), "100");
    merchant(&mut w, 20, "7.30", "100000");
    merchant(&mut w, 21, "7.20", "100000");
    trade_of(&fast_sell(&mut w, "10", m).unwrap());
    let second = trade_of(&w.advance(minutes(10)));
    w.ok(Command::MarkPaid {
        buyer: user(21),
        trade: second,
    });
    w.release(user(S), second);
    let flows = w.e.statement(eb(), w.now.utc_day()).flows;
    assert_eq!(flows.returned.value(), d("0"));
    assert_eq!(flows.released.value(), d("10"));
}

#[test]
fn no_fitting_merchant_escrows_nothing() {
    let mut w = World::default();
    let m = w.seller(user(S), "100");
    let before = w.e.digest();
    let r = fast_sell(&mut w, "10", m).unwrap_err();
    assert!(
        r.to_string().contains("no partner merchant is online"),
        "{r}"
    );
    assert_eq!(before, w.e.digest());
    merchant(&mut w, 20, "7", "10");
    let r = fast_sell(&mut w, "10", m).unwrap_err();
    assert_eq!(r.kind(), RejectionKind::FailedPrecondition);
    assert_eq!(w.bal(user(S)), (d("100"), d("0")));
}

#[test]
fn merchant_actions_need_registration_and_capacity() {
    let mut w = World::default();
    let r = w.err(Command::SetMerchantOnline {
        merchant: user(20),
        online: true,
    });
    assert_eq!(r, Rejection::NotAMerchant);
    assert_eq!(r.kind(), RejectionKind::PermissionDenied);
    w.ok(Command::RegisterMerchant { user: user(20) });
    let r = w.err(Command::SetMerchantOnline {
        merchant: user(20),
        online: true,
    });
    assert!(r.to_string().contains("capacity"));
}

#[test]
fn merchant_buyers_pay_in_the_merchant_window() {
    let config = EngineConfig {
        merchant_window_ms: minutes(3),
        ..EngineConfig::default()
    };
    let mut w = World::new(config);
    let m = w.seller(user(S), "100");
    let mm = merchant(&mut w, 20, "7", "100000");
    let t = trade_of(&fast_sell(&mut w, "10", m).unwrap());
    w.advance(minutes(2));
    w.ok(Command::MarkPaid {
        buyer: mm.id,
        trade: t,
    });
    w.release(user(S), t);
    assert_eq!(w.e.balance(mm.id, eb()).available.value(), d("10"));
}
