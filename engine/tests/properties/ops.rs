//! The random operations the properties run: users, amounts (bad ones
//! included), prices and time jumps, and the `Command` each becomes.

use super::*;

pub(crate) const USERS: u8 = 6;
const AMOUNTS: [&str; 10] = [
    "0",
    "-1",
    "0.000000001",
    "0.5",
    "1",
    "2.5",
    "10",
    "33.33333333",
    "100",
    "999999999999",
];
const PRICES: [&str; 5] = ["6.95", "7", "7.05", "7.1", "0"];
pub(crate) const JUMPS_MS: [i64; 7] = [
    1_000,
    60_000,
    5 * 60_000,
    11 * 60_000,
    16 * 60_000,
    31 * 60_000,
    25 * MS_PER_HOUR,
];

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Deposit(u8, usize),
    Withdraw(u8, usize),
    Bind(u8, u8),
    RemoveMethod(u8, u8),
    SetPassword(u8),
    WrongPassword(u8),
    Publish {
        u: u8,
        price: usize,
        total: usize,
        min: usize,
        max: usize,
    },
    Pause(u8, u8),
    Resume(u8, u8),
    CancelListing(u8, u8),
    Buy {
        u: u8,
        amount: usize,
        by_fiat: bool,
        rest: bool,
        capped: bool,
    },
    CancelBuy(u8, u8),
    MarkPaid(u8, u8),
    CancelTrade(u8, u8),
    Release(u8, u8),
    Appeal(u8, u8),
    Evidence(u8, u8, bool),
    Claim(u8, u8),
    Unclaim(u8, u8),
    Resolve(u8, u8, bool),
    Block(u8, u8),
    Unblock(u8, u8),
    Merchant(u8, usize),
    Online(u8, bool),
    FastSell(u8, usize),
    AssignChannel(u8),
    GatewayPay {
        i: u8,
        amount: u8,
        txn: u8,
    },
    ResolveAnomaly(u8, u8, bool),
    Advance(usize),
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS + 1; // one more than the users: a stranger
    let a = 0..AMOUNTS.len();
    let i = any::<u8>();
    prop_oneof![
        3 => (u.clone(), a.clone()).prop_map(|(u, a)| Op::Deposit(u, a)),
        1 => (u.clone(), a.clone()).prop_map(|(u, a)| Op::Withdraw(u, a)),
        2 => (u.clone(), 0..4u8).prop_map(|(u, k)| Op::Bind(u, k)),
        1 => u.clone().prop_map(Op::AssignChannel),
        4 => (i, 0..4u8, 0..6u8).prop_map(|(i, amount, txn)| Op::GatewayPay { i, amount, txn }),
        1 => (0..2u8, i, any::<bool>()).prop_map(|(a, i, n)| Op::ResolveAnomaly(a, i, n)),
        1 => (u.clone(), i).prop_map(|(u, i)| Op::RemoveMethod(u, i)),
        2 => u.clone().prop_map(Op::SetPassword),
        1 => u.clone().prop_map(Op::WrongPassword),
        5 => (u.clone(), 0..PRICES.len(), a.clone(), 0..4usize, 0..4usize)
            .prop_map(|(u, price, total, min, max)| Op::Publish { u, price, total, min, max }),
        1 => (u.clone(), i).prop_map(|(u, i)| Op::Pause(u, i)),
        1 => (u.clone(), i).prop_map(|(u, i)| Op::Resume(u, i)),
        1 => (u.clone(), i).prop_map(|(u, i)| Op::CancelListing(u, i)),
        6 => (u.clone(), a.clone(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(u, amount, by_fiat, rest, capped)| Op::Buy { u, amount, by_fiat, rest, capped }),
        1 => (u.clone(), i).prop_map(|(u, i)| Op::CancelBuy(u, i)),
        4 => (u.clone(), i).prop_map(|(u, i)| Op::MarkPaid(u, i)),
        2 => (u.clone(), i).prop_map(|(u, i)| Op::CancelTrade(u, i)),
        4 => (u.clone(), i).prop_map(|(u, i)| Op::Release(u, i)),
        2 => (u.clone(), i).prop_map(|(u, i)| Op::Appeal(u, i)),
        1 => (u.clone(), i, any::<bool>()).prop_map(|(u, i, f)| Op::Evidence(u, i, f)),
        1 => (0..2u8, i).prop_map(|(a, i)| Op::Claim(a, i)),
        1 => (0..2u8, i).prop_map(|(a, i)| Op::Unclaim(a, i)),
        2 => (0..2u8, i, any::<bool>()).prop_map(|(a, i, r)| Op::Resolve(a, i, r)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Block(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unblock(a, b)),
        3 => (4..USERS + 1, 0..PRICES.len()).prop_map(|(u, p)| Op::Merchant(u, p)),
        1 => (u.clone(), any::<bool>()).prop_map(|(u, on)| Op::Online(u, on)),
        2 => (u.clone(), a.clone()).prop_map(|(u, a)| Op::FastSell(u, a)),
        4 => (0..JUMPS_MS.len()).prop_map(Op::Advance),
    ]
}

fn pick<T: Copy>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(i) % items.len()])
}

fn agent(a: u8) -> UserId {
    user(100 + a)
}

/// Turns an op into a command against the current state (ids are picked
/// from what exists, so most commands are meaningful; some are not).
pub(crate) fn command(e: &Engine, op: &Op) -> Command {
    let s = e.state();
    let trades: Vec<TradeId> = s.trades.keys().collect();
    let listings: Vec<_> = s.listings.keys().collect();
    let orders: Vec<_> = s.buy_orders.keys().copied().collect();
    let trade = |i| pick(&trades, i).unwrap_or(TradeId(999_999));
    // Mostly the right party of the picked trade, sometimes whoever `u` is.
    let party = |u: u8, i: u8, seller: bool| match (u % 3, e.trade(trade(i))) {
        (0, _) | (_, None) => user(u),
        (_, Some(t)) => {
            if seller {
                t.seller
            } else {
                t.buyer
            }
        }
    };
    let proof = |u: UserId| FundPasswordProof::matched(e.fund_password(u).map_or(0, |(_, v)| v));
    let amount = |a: usize| d(AMOUNTS[a]);
    match *op {
        Op::Deposit(u, a) => Command::Deposit {
            user: user(u),
            asset: eb(),
            amount: amount(a),
            external_ref: format!("r{}", s.next_seq % 50),
        },
        Op::Withdraw(u, a) => Command::Withdraw {
            user: user(u),
            asset: eb(),
            amount: amount(a),
            external_ref: format!("w{}", s.next_seq % 50),
        },
        Op::Bind(u, k) => Command::BindMethod {
            user: user(u),
            details: match k {
                0 => alipay(),
                1 => bank(),
                3 => MethodDetails::Channel {
                    channel: format!("ch-{u}"),
                    provider: ChannelProvider::Alipay,
                },
                _ => MethodDetails::WeChat {
                    holder: "Zhang".into(),
                    account: "wx".into(),
                },
            },
        },
        Op::RemoveMethod(u, i) => {
            let methods: Vec<_> = e
                .user(user(u))
                .map(|s| s.methods.keys().copied().collect())
                .unwrap_or_default();
            Command::RemoveMethod {
                user: user(u),
                method: pick(&methods, i).unwrap_or(otc_engine::MethodId(0)),
            }
        }
        Op::SetPassword(u) => Command::SetFundPassword {
            user: user(u),
            hash: "$argon2id$h".into(),
            current: Some(proof(user(u))),
        },
        Op::WrongPassword(u) => Command::SetFundPassword {
            user: user(u),
            hash: "$argon2id$other".into(),
            current: Some(FundPasswordProof::wrong(
                e.fund_password(user(u)).map_or(0, |(_, v)| v),
            )),
        },
        Op::Publish {
            u,
            price,
            total,
            min,
            max,
        } => {
            // Half the listings opt in to release on verified payment and
            // name only the seller's channel (when bound).
            let release = price % 2 == 0;
            let all: Vec<_> = e
                .user(user(u))
                .map(|s| s.methods.iter().collect())
                .unwrap_or_default();
            let channels: Vec<_> = all
                .iter()
                .filter(|(_, m)| matches!(*m.details, MethodDetails::Channel { .. }))
                .map(|(id, _)| **id)
                .collect();
            let methods = if release && !channels.is_empty() {
                channels
            } else {
                all.iter().map(|(id, _)| **id).collect()
            };
            let spec = ListingSpec {
                asset: eb(),
                fiat: cny(),
                price: otc_engine::command::PriceSpec::Fixed(d(PRICES[price])),
                total: amount(total),
                min_fiat: d(["1", "10", "50", "0"][min]),
                max_fiat: d(["100", "1000", "5", "100000"][max]),
                methods,
                payment_window_ms: None,
                terms: String::new(),
                release_on_verified: release,
            };
            Command::PublishListing {
                seller: user(u),
                proof: proof(user(u)),
                spec,
            }
        }
        Op::AssignChannel(u) => Command::AssignChannel {
            user: user(u),
            channel: "ch-0".into(),
            provider: ChannelProvider::Alipay,
        },
        Op::GatewayPay { i, amount, txn } => {
            // Mostly an open trade on the channel.
            let on_channel: Vec<TradeId> = s
                .trades
                .values()
                .filter(|t| {
                    t.state.is_open() && matches!(*t.method_details, MethodDetails::Channel { .. })
                })
                .map(|t| t.id)
                .collect();
            let id = match pick(&on_channel, i) {
                Some(id) if amount < 3 => id,
                _ => trade(i),
            };
            let t = e.trade(id);
            let right = t.map_or(d("14"), |t| t.fiat_amount.value());
            let channel = match t.map(|t| &*t.method_details) {
                Some(MethodDetails::Channel { channel, .. }) => channel.clone(),
                _ => "ch-0".into(),
            };
            Command::GatewayPayment(GatewayPayment {
                channel,
                // Mostly the picked trade's reference; sometimes a stranger's.
                reference: if txn == 5 {
                    "ELSEWHERE-1".into()
                } else {
                    payment_reference(id)
                },
                // Fresh, or a recent one again (a gateway's retry).
                txn_id: format!("tx{}", s.next_seq.saturating_sub(u64::from(txn % 3))),
                amount: match amount {
                    0 | 1 => right,
                    2 => right + d("0.01"),
                    _ => d("-1"),
                },
                currency: "CNY".into(),
                paid_at: None,
                history_checked: true,
                ended: None,
            })
        }
        Op::ResolveAnomaly(a, i, note) => {
            let ids: Vec<_> = s.anomalies.keys().copied().collect();
            Command::ResolveAnomaly {
                agent: agent(a),
                anomaly: pick(&ids, i).unwrap_or(otc_engine::AnomalyId(0)),
                note: if note { "done".into() } else { String::new() },
            }
        }
        Op::Pause(u, i) => Command::PauseListing {
            seller: user(u),
            listing: pick(&listings, i).unwrap_or(otc_engine::ListingId(0)),
        },
        Op::Resume(u, i) => Command::ResumeListing {
            seller: user(u),
            listing: pick(&listings, i).unwrap_or(otc_engine::ListingId(0)),
        },
        Op::CancelListing(u, i) => Command::CancelListing {
            seller: user(u),
            listing: pick(&listings, i).unwrap_or(otc_engine::ListingId(0)),
        },
        Op::Buy {
            u,
            amount: a,
            by_fiat,
            rest,
            capped,
        } => {
            let amount = if by_fiat {
                BuyAmount::Fiat(amount(a))
            } else {
                BuyAmount::Coin(amount(a))
            };
            let request = BuyRequest {
                asset: eb(),
                fiat: cny(),
                amount,
                max_price: capped.then(|| d("7")),
                methods: if capped {
                    vec![MethodKind::Alipay]
                } else {
                    Vec::new()
                },
                rest: rest.then_some(None),
            };
            Command::PlaceBuy {
                buyer: user(u),
                request,
            }
        }
        Op::CancelBuy(u, i) => Command::CancelBuyOrder {
            buyer: user(u),
            order: pick(&orders, i).unwrap_or(otc_engine::BuyOrderId(0)),
        },
        Op::MarkPaid(u, i) => Command::MarkPaid {
            buyer: party(u, i, false),
            trade: trade(i),
        },
        Op::CancelTrade(u, i) => Command::CancelTrade {
            buyer: party(u, i, false),
            trade: trade(i),
        },
        Op::Release(u, i) => {
            let seller = party(u, i, true);
            Command::Release {
                seller,
                trade: trade(i),
                proof: proof(seller),
            }
        }
        Op::Appeal(u, i) => Command::OpenAppeal {
            user: party(u, i, u % 2 == 0),
            trade: trade(i),
            reason: "dispute".into(),
        },
        Op::Evidence(u, i, file) => Command::AddEvidence {
            user: party(u, i, file),
            trade: trade(i),
            description: "receipt".into(),
            attachment: file.then(|| AttachmentRef {
                blob_id: "b".into(),
                content_type: "application/pdf".into(),
                size_bytes: 10,
                file_name: "r.pdf".into(),
            }),
        },
        Op::Claim(a, i) => Command::ClaimAppeal {
            agent: agent(a),
            trade: trade(i),
        },
        Op::Unclaim(a, i) => Command::UnclaimAppeal {
            agent: agent(a),
            trade: trade(i),
        },
        Op::Resolve(a, i, release) => Command::ResolveAppeal {
            agent: agent(a),
            trade: trade(i),
            resolution: if release {
                Resolution::Release
            } else {
                Resolution::Refund
            },
            note: "decided".into(),
        },
        Op::Block(a, b) => Command::Block {
            user: user(a),
            target: user(b),
        },
        Op::Unblock(a, b) => Command::Unblock {
            user: user(a),
            target: user(b),
        },
        Op::Merchant(u, p) => {
            match e.merchant(user(u)) {
                None => return Command::RegisterMerchant { user: user(u) },
                Some(m) if m.capacity.is_some() && !m.online && p % 2 == 0 => {
                    return Command::SetMerchantOnline {
                        merchant: user(u),
                        online: true,
                    };
                }
                Some(_) => {}
            }
            let capacity = CapacityRequest {
                quotes: vec![MerchantQuote {
                    asset: eb(),
                    fiat: cny(),
                    bid: d(PRICES[p]),
                    min_fiat: d("1"),
                    max_fiat: d("5000"),
                }],
                methods: vec![MethodKind::Alipay, MethodKind::Bank],
                max_outstanding_fiat: d("2000"),
            };
            Command::SetMerchantCapacity {
                merchant: user(u),
                capacity,
            }
        }
        Op::Online(u, on) => Command::SetMerchantOnline {
            merchant: user(u),
            online: on,
        },
        Op::FastSell(u, a) => {
            let method = e
                .user(user(u))
                .and_then(|s| s.methods.keys().next().copied())
                .unwrap_or(otc_engine::MethodId(0));
            let request = FastSellRequest {
                asset: eb(),
                fiat: cny(),
                amount: amount(a),
                method,
                release_on_verified: false,
            };
            Command::FastSell {
                seller: user(u),
                proof: proof(user(u)),
                request,
            }
        }
        Op::Advance(_) => Command::FireDue,
    }
}
