//! Engine throughput on a realistic mix, with 10k and 100k live listings.
//!
//! One round is 9 commands: publish a listing; three taker buys; mark one
//! paid and release it; the buyer cancels another; the third is left to time
//! out; the oldest bench listing is cancelled (keeping the book's size
//! steady); and `FireDue` fires whatever is due. Simulated time moves 1 s a
//! round, so after 15 simulated minutes every round's `FireDue` cancels one
//! unpaid trade.
//!
//! Run: `cargo bench -p otc-benches --bench engine`

use std::collections::VecDeque;
use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec};
use otc_engine::users::MethodDetails;
use otc_engine::{
    Asset, Command, Engine, EngineConfig, EventKind, Fiat, ListingId, MethodId, Timestamp, TradeId,
    UserId,
};
use rust_decimal::Decimal;

const COMMANDS_PER_ROUND: u64 = 9;
const LISTINGS_PER_SELLER: usize = 10;
const BUYERS: u64 = 200_000;

fn uid(n: u64) -> UserId {
    UserId(uuid::Uuid::from_u64_pair(0x0bc0_0000, n))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("bench decimal {s}: {e}"))
}

struct Mix {
    e: Engine,
    now: Timestamp,
    asset: Asset,
    fiat: Fiat,
    sellers: Vec<(UserId, MethodId)>,
    /// Listings published by the bench, oldest first, to cancel.
    published: VecDeque<(UserId, ListingId)>,
    round: u64,
    proof: FundPasswordProof,
    /// Reused event buffer, as the writer loop does.
    events: Vec<otc_engine::Event>,
}

fn created(events: &[otc_engine::Event]) -> Option<TradeId> {
    events.iter().find_map(|e| match e.kind {
        EventKind::TradeCreated { trade, .. } => Some(trade),
        _ => None,
    })
}

impl Mix {
    fn new(live_listings: usize) -> Self {
        let mut e = Engine::new(EngineConfig::default()).unwrap_or_else(|x| panic!("{x}"));
        let asset = Asset::new("EB").unwrap_or_else(|x| panic!("{x}"));
        let fiat = Fiat::new("CNY").unwrap_or_else(|x| panic!("{x}"));
        let now = Timestamp(1_700_000_000_000);
        let proof = FundPasswordProof { version: 1 };
        let mut sellers = Vec::new();
        let n_sellers = live_listings.div_ceil(LISTINGS_PER_SELLER);
        for s in 0..n_sellers as u64 {
            let user = uid(1_000_000 + s);
            let apply = |e: &mut Engine, c: Command| {
                e.apply(&c, now).unwrap_or_else(|r| panic!("setup: {r}"))
            };
            apply(
                &mut e,
                Command::Deposit {
                    user,
                    asset,
                    amount: dec("10000000"),
                    external_ref: format!("d{s}"),
                },
            );
            let details = MethodDetails::Alipay {
                holder: "Seller".into(),
                account: format!("s{s}"),
            };
            let ev = apply(&mut e, Command::BindMethod { user, details });
            let method = ev
                .iter()
                .find_map(|x| match x.kind {
                    EventKind::MethodBound { method, .. } => Some(method),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no method"));
            apply(
                &mut e,
                Command::SetFundPassword {
                    user,
                    hash: "$argon2id$bench".into(),
                    current: None,
                },
            );
            sellers.push((user, method));
        }
        let mut mix = Mix {
            e,
            now,
            asset,
            fiat,
            sellers,
            published: VecDeque::new(),
            round: 0,
            proof,
            events: Vec::new(),
        };
        for i in 0..live_listings {
            mix.publish(i);
        }
        mix.published.clear(); // the prefilled book stays
        mix
    }

    fn spec(&self, i: usize, method: MethodId) -> ListingSpec {
        // Prices spread over 7.00–7.99 so matching walks a realistic book.
        let price = Decimal::new(700 + (i as i64 * 37) % 100, 2);
        ListingSpec {
            asset: self.asset,
            fiat: self.fiat,
            price,
            total: dec("1000"),
            min_fiat: dec("1"),
            max_fiat: dec("10000"),
            methods: vec![method],
            payment_window_ms: None,
            terms: String::new(),
        }
    }

    fn publish(&mut self, i: usize) {
        let (seller, method) = self.sellers[i % self.sellers.len()];
        let spec = self.spec(i, method);
        self.apply(Command::PublishListing {
            seller,
            proof: self.proof,
            spec,
        });
        if let Some(listing) = self.events.iter().find_map(|x| match x.kind {
            EventKind::ListingChanged { listing, .. } => Some(listing),
            _ => None,
        }) {
            self.published.push_back((seller, listing));
        }
    }

    fn apply(&mut self, c: Command) {
        self.events.clear();
        // Refusals (a seller at its listing limit, say) are part of the mix.
        let _ = self.e.apply_into(&c, self.now, &mut self.events);
    }

    fn buy(&mut self, buyer: UserId) -> Option<TradeId> {
        let request = BuyRequest {
            asset: self.asset,
            fiat: self.fiat,
            amount: BuyAmount::Coin(Decimal::ONE),
            max_price: None,
            methods: Vec::new(),
            rest: None,
        };
        self.apply(Command::PlaceBuy { buyer, request });
        created(&self.events)
    }

    /// One round of the mix: 9 commands.
    fn round(&mut self) {
        self.round += 1;
        let r = self.round;
        self.now = self.now.plus_ms(1_000);
        self.publish(r as usize);
        let buyer = uid(r % BUYERS);
        let paid = self.buy(buyer);
        let cancelled = self.buy(uid((r + 1) % BUYERS));
        let _left_to_expire = self.buy(uid((r + 2) % BUYERS));
        if let Some(t) = paid {
            let seller = self.e.trade(t).map(|t| t.seller);
            self.apply(Command::MarkPaid { buyer, trade: t });
            if let Some(seller) = seller {
                self.apply(Command::Release {
                    seller,
                    trade: t,
                    proof: self.proof,
                });
            }
        }
        if let Some(t) = cancelled {
            self.apply(Command::CancelTrade {
                buyer: uid((r + 1) % BUYERS),
                trade: t,
            });
        }
        if let Some((seller, listing)) = self.published.pop_front() {
            self.apply(Command::CancelListing { seller, listing });
        }
        self.apply(Command::FireDue);
    }
}

fn bench_mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_mix");
    group.throughput(Throughput::Elements(COMMANDS_PER_ROUND));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(4));
    for live in [10_000usize, 100_000] {
        let mut mix = Mix::new(live);
        // Warm into steady state: past the first payment timeouts.
        for _ in 0..2_000 {
            mix.round();
        }
        group.bench_function(format!("{live}_live_listings"), |b| {
            b.iter(|| {
                mix.round();
                black_box(mix.e.last_seq())
            })
        });
        let s = mix.e.state();
        eprintln!(
            "after bench: {} listings in book, {} trades, {} deadlines, seq {}",
            s.book.len(),
            s.trades.len(),
            s.deadlines.len(),
            mix.e.last_seq()
        );
    }
    group.finish();
}

criterion_group!(benches, bench_mix);
criterion_main!(benches);
