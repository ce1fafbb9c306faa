//! The engine's realistic command mix, shared by the criterion bench
//! (`benches/engine.rs`) and `engine_rounds` (a fixed number of rounds, for
//! instruction counts under callgrind, which do not depend on machine noise).
//!
//! One round is 9 commands: publish a listing; three taker buys; mark one
//! paid and release it; the buyer cancels another; the third is left to time
//! out; the oldest bench listing is cancelled (keeping the book's size
//! steady); and `FireDue` fires whatever is due. Simulated time moves 1 s a
//! round, so after 15 simulated minutes every round's `FireDue` cancels one
//! unpaid trade.

use std::collections::VecDeque;
use std::str::FromStr;

use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec};
use otc_engine::users::MethodDetails;
use otc_engine::{
    Asset, Command, Engine, EngineConfig, EventKind, Fiat, ListingId, MethodId, Timestamp, TradeId,
    UserId,
};
use rust_decimal::Decimal;

/// Commands in one round of the mix.
pub const COMMANDS_PER_ROUND: u64 = 9;
const LISTINGS_PER_SELLER: usize = 10;
const BUYERS: u64 = 200_000;

fn uid(n: u64) -> UserId {
    UserId(uuid::Uuid::from_u64_pair(0x0bc0_0000, n))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("bench decimal {s}: {e}"))
}

/// The mix: an engine with a prefilled book and the bench's own state.
pub struct Mix {
    /// The engine under test.
    pub e: Engine,
    now: Timestamp,
    asset: Asset,
    fiat: Fiat,
    sellers: Vec<(UserId, MethodId)>,
    /// Listings published by the bench, oldest first, to cancel.
    published: VecDeque<(UserId, ListingId)>,
    round: u64,
    proof: FundPasswordProof,
    /// Half the listings float over the reference (SPEC §22).
    floating: bool,
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
    /// An engine whose book holds `live_listings` live listings, all fixed.
    pub fn new(live_listings: usize) -> Self {
        Self::with_floating(live_listings, false)
    }

    /// As [`Mix::new`]; with `floating`, every other listing floats over a
    /// reference price (which, for the bench, never goes stale).
    pub fn with_floating(live_listings: usize, floating: bool) -> Self {
        let config = EngineConfig {
            reference_max_age_ms: i64::MAX / 4,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config).unwrap_or_else(|x| panic!("{x}"));
        let asset = Asset::new("EB").unwrap_or_else(|x| panic!("{x}"));
        let fiat = Fiat::new("CNY").unwrap_or_else(|x| panic!("{x}"));
        let now = Timestamp(1_700_000_000_000);
        if floating {
            e.apply(&Self::reference(asset, fiat, "7.50"), now)
                .unwrap_or_else(|r| panic!("setup: {r}"));
        }
        let proof = FundPasswordProof::matched(1);
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
            floating,
            events: Vec::new(),
        };
        for i in 0..live_listings {
            mix.publish(i);
        }
        mix.published.clear(); // the prefilled book stays
        mix
    }

    /// Rests `n` buy orders (five per buyer) that no listing of the book can
    /// fill: they pay by bank card, which no listing takes, at any price.
    /// Each new reference offers them every floating listing again.
    pub fn rest_unfillable(&mut self, n: usize) {
        for i in 0..n as u64 {
            let request = BuyRequest {
                asset: self.asset,
                fiat: self.fiat,
                amount: BuyAmount::Coin(Decimal::ONE),
                max_price: None,
                methods: vec![otc_engine::users::MethodKind::Bank],
                rest: Some(Some(24 * 3_600_000)),
            };
            let buyer = uid(5_000_000 + i / 5);
            self.e
                .apply(&Command::PlaceBuy { buyer, request }, self.now)
                .unwrap_or_else(|r| panic!("setup: {r}"));
        }
    }

    /// The mix's clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Setting the reference price of `asset`/`fiat`.
    pub fn reference(asset: Asset, fiat: Fiat, price: &str) -> Command {
        Command::SetReferencePrice {
            asset,
            fiat,
            price: dec(price),
            source: "bench".into(),
        }
    }

    fn spec(&self, i: usize, method: MethodId) -> ListingSpec {
        // Prices spread over 7.00–7.99 so matching walks a realistic book;
        // floating ones over the same range around the 7.50 reference.
        let step = (i as i64 * 37) % 100;
        let price = if self.floating && i.is_multiple_of(2) {
            otc_engine::command::PriceSpec::Floating {
                premium_bps: (step as i32 - 50) * 13,
                floor: (step % 5 == 0).then(|| Decimal::new(705, 2)),
                ceiling: (step % 3 == 0).then(|| Decimal::new(780, 2)),
            }
        } else {
            otc_engine::command::PriceSpec::Fixed(Decimal::new(700 + step, 2))
        };
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
            release_on_verified: false,
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

    /// Runs 2,000 rounds: past the first payment timeouts, into steady state.
    pub fn warm(&mut self) {
        for _ in 0..2_000 {
            self.round();
        }
    }

    /// [`Mix::round`], never inlined, so callgrind can count just these.
    #[inline(never)]
    pub fn measured_round(&mut self) {
        self.round();
    }

    /// One round of the mix: 9 commands.
    pub fn round(&mut self) {
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
