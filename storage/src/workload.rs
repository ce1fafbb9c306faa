//! A seeded, realistic workload for tests and benchmarks: users deposit,
//! bind methods and set passwords, publish, buy, pay, release, cancel,
//! appeal and get resolved, while time moves on. Pure: it reads the engine
//! to pick meaningful commands and returns them; it never applies anything.

use std::str::FromStr;

use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec, Resolution};
use otc_engine::trade::TradeState;
use otc_engine::users::MethodDetails;
use otc_engine::{Asset, Command, Engine, Fiat, Timestamp, UserId};
use rust_decimal::Decimal;

/// xorshift64*: a tiny deterministic PRNG, so workloads replay exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Picks the next command of a mixed workload.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    users: u64,
    setup_done: u64,
    asset: Asset,
    fiat: Fiat,
    n: u64,
}

/// A user id of the workload.
pub fn workload_user(n: u64) -> UserId {
    UserId(uuid_from(n))
}

fn uuid_from(n: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(0x5eed_0000_0000_0000, n)
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or(Decimal::ONE)
}

impl Workload {
    /// A workload over `users` users from `seed`.
    pub fn new(seed: u64, users: u64) -> Self {
        let asset = Asset::new("EB").unwrap_or_else(|e| panic!("{e}"));
        let fiat = Fiat::new("CNY").unwrap_or_else(|e| panic!("{e}"));
        Self {
            rng: Rng::new(seed),
            users: users.max(2),
            setup_done: 0,
            asset,
            fiat,
            n: 0,
        }
    }

    /// The next command, and how far to move the clock before it (ms).
    pub fn next(&mut self, e: &Engine, now: Timestamp) -> (Command, i64) {
        self.n += 1;
        if self.setup_done < self.users * 3 {
            let step = self.setup_done;
            self.setup_done += 1;
            return (self.setup(step), 0);
        }
        // Mostly small steps; now and then minutes pass (payment windows and
        // appeal windows run out) and, rarely, half an hour.
        let advance = match self.rng.below(200) {
            0 => 31 * 60_000,
            1..=4 => 6 * 60_000,
            5..=14 => 60_000,
            _ => 10,
        };
        let user = workload_user(self.rng.below(self.users));
        let cmd = match self.rng.below(10) {
            0 => self.publish(e, user),
            1 | 2 => self.buy(user),
            _ => self.act_on_trade(e, now).unwrap_or_else(|| self.buy(user)),
        };
        (cmd, advance)
    }

    fn setup(&self, step: u64) -> Command {
        let user = workload_user(step / 3);
        match step % 3 {
            0 => Command::Deposit {
                user,
                asset: self.asset,
                amount: dec("1000000"),
                external_ref: format!("seed-{step}"),
            },
            1 => Command::BindMethod {
                user,
                details: MethodDetails::Alipay {
                    holder: format!("User {}", step / 3),
                    account: format!("u{step}@pay"),
                },
            },
            _ => Command::SetFundPassword {
                user,
                hash: "$argon2id$workload".into(),
                current: None,
            },
        }
    }

    fn proof(e: &Engine, user: UserId) -> FundPasswordProof {
        FundPasswordProof::matched(e.fund_password(user).map_or(0, |(_, v)| v))
    }

    fn publish(&mut self, e: &Engine, seller: UserId) -> Command {
        let methods = e
            .user(seller)
            .map(|u| u.methods.keys().copied().collect())
            .unwrap_or_default();
        let price = Decimal::new(690 + self.rng.below(30) as i64, 2);
        let spec = ListingSpec {
            asset: self.asset,
            fiat: self.fiat,
            price: otc_engine::command::PriceSpec::Fixed(price),
            total: Decimal::from(10 + self.rng.below(90)),
            min_fiat: dec("5"),
            max_fiat: dec("2000"),
            methods,
            payment_window_ms: None,
            terms: String::new(),
            release_on_verified: false,
        };
        Command::PublishListing {
            seller,
            proof: Self::proof(e, seller),
            spec,
        }
    }

    fn buy(&mut self, buyer: UserId) -> Command {
        let amount = BuyAmount::Coin(Decimal::from(1 + self.rng.below(5)));
        let rest = (self.rng.below(8) == 0).then_some(None);
        let request = BuyRequest {
            asset: self.asset,
            fiat: self.fiat,
            amount,
            max_price: None,
            methods: Vec::new(),
            rest,
        };
        Command::PlaceBuy { buyer, request }
    }

    /// Moves an open trade along: pay, release, cancel, appeal or resolve.
    fn act_on_trade(&mut self, e: &Engine, now: Timestamp) -> Option<Command> {
        let open: Vec<_> = e
            .state()
            .trades
            .values()
            .filter(|t| t.state.is_open())
            .collect();
        if open.is_empty() {
            return None;
        }
        // Half the time the oldest open trade, so few wait out their window.
        let pick = if self.rng.below(2) == 0 {
            0
        } else {
            self.rng.below(open.len() as u64) as usize
        };
        let t = open[pick];
        let roll = self.rng.below(10);
        Some(match t.state {
            TradeState::AwaitingPayment { .. } if roll < 9 => Command::MarkPaid {
                buyer: t.buyer,
                trade: t.id,
            },
            TradeState::AwaitingPayment { .. } => Command::CancelTrade {
                buyer: t.buyer,
                trade: t.id,
            },
            TradeState::Paid { appeal_from, .. } if roll == 0 && now >= appeal_from => {
                Command::OpenAppeal {
                    user: t.buyer,
                    trade: t.id,
                    reason: "not released".into(),
                }
            }
            TradeState::Paid { .. } => Command::Release {
                seller: t.seller,
                trade: t.id,
                proof: Self::proof(e, t.seller),
            },
            TradeState::Appealed { .. } => Command::ResolveAppeal {
                agent: workload_user(u64::MAX),
                trade: t.id,
                resolution: if roll < 5 {
                    Resolution::Release
                } else {
                    Resolution::Refund
                },
                note: "checked the statements".into(),
            },
            TradeState::Released { .. } | TradeState::Cancelled { .. } => return None,
        })
    }

    /// How many commands it produced.
    pub fn count(&self) -> u64 {
        self.n
    }
}
