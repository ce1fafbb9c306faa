//! Property tests: random command sequences from many users — bad amounts,
//! wrong actors, wrong states and time jumps included — never panic, and after
//! every step L1/L2 and the state's internal consistency hold, a rejection
//! changes nothing, and the engine is deterministic and survives a round trip
//! through its serialized state.

mod common;
#[path = "properties/ops.rs"]
mod ops;

use common::*;
use ops::{JUMPS_MS, Op, USERS, command, op};
use otc_engine::command::{
    AttachmentRef, BuyAmount, BuyRequest, CapacityRequest, FastSellRequest, FundPasswordProof,
    ListingSpec, MerchantQuote, Resolution,
};
use otc_engine::ids::MS_PER_HOUR;
use otc_engine::payment::{ChannelProvider, GatewayPayment, payment_reference};
use otc_engine::users::{MethodDetails, MethodKind};
use otc_engine::{Command, Engine, EngineConfig, State, Timestamp, TradeId, UserId};
use proptest::prelude::*;

/// Every trade, appeal, listing and buy order a command added or changed is
/// in what the engine reports changed (what storage writes history from).
fn check_changed(
    before: &otc_engine::State,
    after: &otc_engine::State,
    changed: &otc_engine::Changed,
    name: &str,
) -> Result<(), TestCaseError> {
    for (id, t) in after.trades.iter() {
        let same =
            before.trades.get(&id) == Some(t) && before.appeals.get(&id) == after.appeals.get(&id);
        prop_assert!(
            same || changed.trades.contains(&id),
            "{name} changed trade {id} unreported"
        );
    }
    for (id, l) in after.listings.iter() {
        let same = before.listings.get(&id) == Some(l);
        prop_assert!(
            same || changed.listings.contains(&id),
            "{name} changed listing {id} unreported"
        );
    }
    for (id, o) in &after.buy_orders {
        let same = before.buy_orders.get(id) == Some(o);
        prop_assert!(
            same || changed.orders.contains(id),
            "{name} changed buy order {id} unreported"
        );
    }
    Ok(())
}

/// Runs the ops, checking after each; returns the commands applied and the
/// time each was applied at, for replay.
fn run(ops: &[Op]) -> Result<(Engine, Vec<(Command, Timestamp)>), TestCaseError> {
    let mut e = Engine::new(EngineConfig::default()).map_err(TestCaseError::fail)?;
    let mut now = T0;
    let mut log = Vec::new();
    // Every user may bind a payment channel of their own, "ch-<u>".
    for u in 0..=USERS {
        let assign = Command::AssignChannel {
            user: user(u),
            channel: format!("ch-{u}"),
            provider: ChannelProvider::Alipay,
        };
        e.apply(&assign, now)
            .map_err(|r| TestCaseError::fail(r.to_string()))?;
        log.push((assign, now));
    }
    for op in ops {
        if let Op::Advance(j) = op {
            now = now.plus_ms(JUMPS_MS[*j]);
        }
        let cmd = command(&e, op);
        let before = e.digest();
        let seq = e.last_seq();
        let records_before = e.state().clone();
        match e.apply(&cmd, now) {
            Ok(events) => {
                let changed = e.changed().clone();
                check_changed(&records_before, e.state(), &changed, cmd.name())?;
                let seqs: Vec<u64> = events.iter().map(|ev| ev.seq).collect();
                let expected: Vec<u64> = (seq + 1..=seq + events.len() as u64).collect();
                prop_assert_eq!(seqs, expected, "event sequence has a gap");
            }
            Err(r) => {
                prop_assert_eq!(
                    before,
                    e.digest(),
                    "rejected {} changed state: {}",
                    cmd.name(),
                    r
                );
                prop_assert!(!r.to_string().is_empty());
            }
        }
        if let Err(msg) = e.check_invariants() {
            return Err(TestCaseError::fail(format!("after {}: {msg}", cmd.name())));
        }
        log.push((cmd, now));
    }
    Ok((e, log))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_step(ops in prop::collection::vec(op(), 1..160)) {
        run(&ops)?;
    }

    #[test]
    fn replay_is_deterministic_and_state_round_trips(ops in prop::collection::vec(op(), 1..120)) {
        let (e, log) = run(&ops)?;
        let mut replay = Engine::new(EngineConfig::default()).map_err(TestCaseError::fail)?;
        for (cmd, at) in &log {
            let _ = replay.apply(cmd, *at);
        }
        prop_assert_eq!(e.digest(), replay.digest());
        let bytes = bincode::serialize(e.state()).map_err(|x| TestCaseError::fail(x.to_string()))?;
        let state: State = bincode::deserialize(&bytes).map_err(|x| TestCaseError::fail(x.to_string()))?;
        let restored = Engine::from_state(EngineConfig::default(), state).map_err(TestCaseError::fail)?;
        prop_assert_eq!(e.digest(), restored.digest());
        prop_assert_eq!(e.next_deadline(), restored.next_deadline());
    }
}

/// The generator is only useful if random runs reach every trade state and
/// both kinds of trade; this checks it does, with a fixed seed.
#[test]
fn random_runs_reach_every_trade_state() {
    use otc_engine::trade::TradeStateKind as K;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let mut seen = std::collections::BTreeSet::new();
    let mut fast = 0;
    let (mut verified, mut anomalies) = (0, 0);
    for _ in 0..200 {
        let ops = prop::collection::vec(op(), 150..160)
            .new_tree(&mut runner)
            .expect("ops")
            .current();
        let (e, log) = run(&ops).expect("run");
        // Ended trades leave the working set: count payments from the events.
        let mut replay = Engine::new(EngineConfig::default()).expect("config");
        for (cmd, now) in &log {
            for ev in replay.apply(cmd, *now).unwrap_or_default() {
                match ev.kind {
                    otc_engine::EventKind::PaymentVerified { .. } => verified += 1,
                    otc_engine::EventKind::PaymentAnomaly { .. } => anomalies += 1,
                    _ => {}
                }
            }
        }
        for t in e.state().trades.values() {
            for entry in &t.timeline {
                if let otc_engine::trade::TimelineWhat::Transition { to, .. } = entry.what {
                    seen.insert(to);
                }
            }
            fast += usize::from(t.fast_match.is_some());
        }
    }
    // Trades on a channel are rare here; `gateway.rs` has its own property.
    assert!(
        verified + anomalies > 0,
        "no random run applied a gateway payment"
    );
    for k in [
        K::AwaitingPayment,
        K::Paid,
        K::Appealed,
        K::Released,
        K::Cancelled,
    ] {
        assert!(
            seen.contains(&k),
            "no random run reached {k:?}; seen {seen:?}"
        );
    }
    assert!(fast > 0, "no random run made a fast-match trade");
}
