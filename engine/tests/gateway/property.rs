//! Random interleavings of verified payments (right, wrong, repeated),
//! clicks, releases, appeals and time on channel trades, half of them
//! opted in to release: invariants hold after every step (`World`
//! checks L1/L2 and the indexes), a rejection changes nothing, and a
//! transaction id never pays twice — also after the engine forgot the
//! trade, given what history says of it, as the shell gives it.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Pay { t: usize, amount: u8, txn: u8 },
    MarkPaid(usize),
    Release(usize),
    Appeal(usize),
    Cancel(usize),
    Buy,
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..8usize, 0..4u8, 0..4u8).prop_map(|(t, amount, txn)| Op::Pay { t, amount, txn }),
        2 => (0..8usize).prop_map(Op::MarkPaid),
        2 => (0..8usize).prop_map(Op::Release),
        1 => (0..8usize).prop_map(Op::Appeal),
        1 => (0..8usize).prop_map(Op::Cancel),
        2 => Just(Op::Buy),
        2 => (0..4u8).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn verified_payments_keep_every_invariant(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::default();
        let first = trade(&mut w, true);
        let mut trades = vec![first];
        // Applied payments as (txn, trade, amount): a gateway's retry
        // repeats all three.
        let mut applied: Vec<(String, TradeId, &str)> = Vec::new();
        // What storage's history would hold: each trade as last seen.
        let mut history: std::collections::BTreeMap<TradeId, otc_engine::trade::Trade> =
            std::collections::BTreeMap::new();
        let mut n = 0u32;
        for op in ops {
            for t in w.e.state().trades.values() {
                history.insert(t.id, (**t).clone());
            }
            n += 1;
            let pick = |i: usize| trades[i % trades.len()];
            let cmd = match op {
                Op::Pay { t, amount, txn } => {
                    let (txn_id, id, amount) = if txn == 0 && !applied.is_empty() {
                        applied[n as usize % applied.len()].clone()
                    } else {
                        (format!("tx{n}"), pick(t), ["14.00", "14", "13.99", "7.00"][usize::from(amount)])
                    };
                    let ended = match (w.e.trade(id), history.get(&id)) {
                        (None, Some(t)) => Some(EndedTrade {
                            trade: id,
                            state: t.state.kind(),
                            channel: Some(CH.into()),
                            payments: t
                                .payments
                                .iter()
                                .map(|p| (p.channel.clone(), p.txn_id.clone()))
                                .collect(),
                        }),
                        _ => None,
                    };
                    let history_checked = w.e.trade(id).is_none();
                    Command::GatewayPayment(GatewayPayment {
                        history_checked,
                        ended,
                        ..pay(id, &txn_id, amount)
                    })
                }
                Op::MarkPaid(t) => Command::MarkPaid { buyer: user(B), trade: pick(t) },
                Op::Release(t) => Command::Release {
                    seller: user(S),
                    trade: pick(t),
                    proof: w.proof(user(S)),
                },
                Op::Appeal(t) => Command::OpenAppeal {
                    user: user(B),
                    trade: pick(t),
                    reason: "no coin".into(),
                },
                Op::Cancel(t) => Command::CancelTrade { buyer: user(B), trade: pick(t) },
                Op::Buy => {
                    let r = w.e.apply(
                        &Command::PlaceBuy {
                            buyer: user(B),
                            request: World::buy_request(otc_engine::command::BuyAmount::Coin(d("2"))),
                        },
                        w.now,
                    );
                    w.check();
                    if let Ok(events) = r {
                        trades.extend(trades_of(&events));
                    }
                    continue;
                }
                Op::Advance(j) => {
                    w.advance([1_000, minutes(16), minutes(31), 24 * 60 * minutes(1)][usize::from(j)]);
                    continue;
                }
            };
            let before = w.e.digest();
            let txn = match &cmd {
                Command::GatewayPayment(p) => Some((
                    p.txn_id.clone(),
                    otc_engine::payment::trade_of_reference(&p.reference).unwrap_or(TradeId(0)),
                    if p.amount == d("13.99") { "13.99" } else if p.amount == d("7.00") { "7.00" } else { "14.00" },
                )),
                _ => None,
            };
            match w.e.apply(&cmd, w.now) {
                Ok(_) => {
                    if let Some(txn) = txn {
                        prop_assert!(!applied.iter().any(|a| a.0 == txn.0), "{} applied twice", txn.0);
                        applied.push(txn);
                    }
                }
                Err(r) => {
                    prop_assert_eq!(before, w.e.digest(), "rejected {} changed state: {}", cmd.name(), r);
                }
            }
            w.check();
        }
    }
}
