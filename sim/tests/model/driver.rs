//! The random walk's driver: a seeded PRNG picking honest and hostile
//! commands, the clock jumping, each command fed to the engine and the model.

use std::collections::BTreeMap;

use otc_engine::command::{
    BuyAmount, BuyRequest, FastSellRequest, FundPasswordProof, ListingSpec, PriceSpec, Resolution,
};
use otc_engine::ids::MS_PER_DAY;
use otc_engine::trade::TradeStateKind;
use otc_engine::{Command, EngineConfig, Event, EventKind, TradeId, UserId};
use rust_decimal::Decimal;

use super::common::*;

/// xorshift64*: a tiny deterministic PRNG, so a failing seed replays.
struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A trade the driver saw created.
#[derive(Clone, Copy)]
struct Seen {
    id: TradeId,
    seller: UserId,
    buyer: UserId,
    fiat: Decimal,
    /// When it was created: a gateway may say it was paid then.
    at: otc_engine::Timestamp,
}

pub struct Driver {
    rng: Rng,
    pub w: World,
    traders: Vec<UserId>,
    merchants: Vec<UserId>,
    agents: Vec<UserId>,
    stranger: UserId,
    channel_seller: UserId,
    channel_method: otc_engine::MethodId,
    trades: Vec<Seen>,
    last: Option<Command>,
    txn: u64,
    /// Applied commands by name, and transitions by reason.
    pub stats: BTreeMap<String, u64>,
}

impl Driver {
    pub fn new(seed: u64, config: EngineConfig) -> Self {
        let mut w = World::with(config);
        let traders: Vec<UserId> = (1..=6).map(user).collect();
        for &u in &traders {
            w.setup(u);
        }
        let merchants: Vec<UserId> = (20..=22).map(user).collect();
        for &m in &merchants {
            w.setup(m);
        }
        w.merchants(&merchants);
        let channel_seller = traders[0];
        let channel_method = w.channel(channel_seller, "ali");
        Self {
            rng: Rng::new(seed),
            w,
            traders,
            merchants,
            agents: vec![user(30), user(31)],
            stranger: user(40),
            channel_seller,
            channel_method,
            trades: Vec::new(),
            last: None,
            txn: 0,
            stats: BTreeMap::new(),
        }
    }

    /// How far the clock moves before the next command: mostly little,
    /// sometimes past windows, now and then days.
    fn advance(&mut self) -> i64 {
        match self.rng.below(100) {
            0..=39 => 0,
            40..=69 => self.rng.below(1_000) as i64,
            70..=89 => self.rng.below(60_000) as i64,
            90..=97 => self.rng.below(20 * MIN as u64) as i64,
            98 => self.rng.below(25 * HOUR as u64) as i64,
            _ => self.rng.below(3 * MS_PER_DAY as u64) as i64,
        }
    }

    fn anyone(&mut self) -> UserId {
        match self.rng.below(10) {
            0 => self.stranger,
            1 => self.rng.pick(&self.agents.clone()),
            2 => self.rng.pick(&self.merchants.clone()),
            _ => self.rng.pick(&self.traders.clone()),
        }
    }

    /// A trade to act on: mostly a recent one, sometimes any, sometimes
    /// an id that never existed.
    fn trade(&mut self) -> Option<Seen> {
        if self.trades.is_empty() || self.rng.chance(3) {
            let id = TradeId(self.w.e.last_seq() + 1_000 + self.rng.below(50));
            let u = self.anyone();
            return Some(Seen {
                id,
                seller: u,
                buyer: u,
                fiat: Decimal::ONE,
                at: self.w.now,
            });
        }
        let n = self.trades.len() as u64;
        let i = if self.rng.chance(70) {
            n - 1 - self.rng.below(n.min(12))
        } else {
            self.rng.below(n)
        };
        Some(self.trades[i as usize])
    }

    /// The acting user: usually the right one, else the other party or anyone.
    fn actor(&mut self, right: UserId, other: UserId) -> UserId {
        match self.rng.below(10) {
            0..=6 => right,
            7 | 8 => other,
            _ => self.anyone(),
        }
    }

    fn proof(&mut self, u: UserId) -> FundPasswordProof {
        let version = self.w.e.fund_password(u).map_or(0, |(_, v)| v);
        match self.rng.below(40) {
            0 => FundPasswordProof::wrong(version),
            1 => FundPasswordProof::matched(version + 1),
            _ => FundPasswordProof::matched(version),
        }
    }

    fn publish(&mut self) -> Command {
        let seller = self.rng.pick(&self.traders.clone());
        let on_channel = seller == self.channel_seller && self.rng.chance(60);
        let methods = if on_channel {
            vec![self.channel_method]
        } else {
            self.w.methods(seller)
        };
        let window = match self.rng.below(5) {
            0 => Some(5 * MIN),
            1 => Some(60 * MIN),
            2 => Some(MIN), // below the minimum: refused
            _ => None,
        };
        let spec = ListingSpec {
            payment_window_ms: window,
            release_on_verified: on_channel && self.rng.chance(50),
            price: PriceSpec::Fixed(Decimal::new(690 + self.rng.below(30) as i64, 2)),
            total: Decimal::from(5 + self.rng.below(40)),
            ..self.w.spec(methods)
        };
        Command::PublishListing {
            seller,
            proof: self.proof(seller),
            spec,
        }
    }

    fn buy(&mut self) -> Command {
        let buyer = self.rng.pick(&self.traders.clone());
        let request = BuyRequest {
            asset: eb(),
            fiat: cny(),
            amount: BuyAmount::Coin(Decimal::from(1 + self.rng.below(4))),
            max_price: None,
            methods: Vec::new(),
            rest: self.rng.chance(15).then_some(None),
        };
        Command::PlaceBuy { buyer, request }
    }

    fn fast_sell(&mut self) -> Command {
        let seller = self.rng.pick(&self.traders.clone());
        let on_channel = seller == self.channel_seller && self.rng.chance(50);
        let method = if on_channel {
            self.channel_method
        } else {
            self.w.methods(seller)[0]
        };
        let request = FastSellRequest {
            asset: eb(),
            fiat: cny(),
            amount: Decimal::from(1 + self.rng.below(3)),
            method,
            release_on_verified: on_channel && self.rng.chance(50),
        };
        Command::FastSell {
            seller,
            proof: self.proof(seller),
            request,
        }
    }

    fn gateway(&mut self, t: Seen) -> Command {
        self.txn += 1;
        let txn = if self.rng.chance(10) {
            self.txn.saturating_sub(1)
        } else {
            self.txn
        };
        let amount = if self.rng.chance(15) {
            t.fiat + Decimal::ONE
        } else {
            t.fiat
        };
        let mut payment = gateway("ali", t.id, &format!("txn-{txn}"), amount);
        // Now and then paid in time and notified late (after the window, the
        // timer not yet run): the gateway's clock says when.
        if self.rng.chance(30)
            && let Command::GatewayPayment(p) = &mut payment
        {
            p.paid_at = Some(t.at);
        }
        payment
    }

    fn on_trade(&mut self) -> Option<Command> {
        let t = self.trade()?;
        let agent = if self.rng.chance(85) {
            self.rng.pick(&self.agents.clone())
        } else {
            self.anyone()
        };
        Some(match self.rng.below(100) {
            0..=21 => Command::MarkPaid {
                buyer: self.actor(t.buyer, t.seller),
                trade: t.id,
            },
            22..=31 => Command::CancelTrade {
                buyer: self.actor(t.buyer, t.seller),
                trade: t.id,
            },
            32..=49 => {
                let seller = self.actor(t.seller, t.buyer);
                Command::Release {
                    seller,
                    proof: self.proof(seller),
                    trade: t.id,
                }
            }
            50..=61 => {
                let user = if self.rng.chance(50) {
                    t.buyer
                } else {
                    t.seller
                };
                let user = self.actor(user, self.stranger);
                Command::OpenAppeal {
                    user,
                    trade: t.id,
                    reason: "dispute".into(),
                }
            }
            62..=65 => Command::AddEvidence {
                user: self.actor(t.buyer, t.seller),
                trade: t.id,
                description: "proof".into(),
                attachment: None,
            },
            66..=69 => Command::PostChat {
                user: self.actor(t.seller, t.buyer),
                trade: t.id,
                text: "hello".into(),
                attachment: None,
            },
            70..=76 => Command::ClaimAppeal { agent, trade: t.id },
            77..=80 => Command::UnclaimAppeal { agent, trade: t.id },
            81..=91 => {
                let resolution = if self.rng.chance(50) {
                    Resolution::Release
                } else {
                    Resolution::Refund
                };
                let note = if self.rng.chance(5) {
                    String::new()
                } else {
                    "decided".into()
                };
                Command::ResolveAppeal {
                    agent,
                    trade: t.id,
                    resolution,
                    note,
                }
            }
            _ => self.gateway(t),
        })
    }

    /// The next step a party or CS would take on an open trade, if any.
    fn honest(&mut self) -> Option<Command> {
        let open: Vec<(TradeId, TradeStateKind)> = self
            .w
            .e
            .state()
            .trades
            .values()
            .filter(|t| t.state.is_open())
            .map(|t| (t.id, t.state.kind()))
            .collect();
        if open.is_empty() {
            return None;
        }
        let (id, state) = self.rng.pick(&open);
        let t = *self.trades.iter().find(|t| t.id == id)?;
        let agent = self.rng.pick(&self.agents.clone());
        let roll = self.rng.below(100);
        Some(match state {
            TradeStateKind::AwaitingPayment if roll < 75 => Command::MarkPaid {
                buyer: t.buyer,
                trade: id,
            },
            TradeStateKind::AwaitingPayment if roll < 88 => Command::CancelTrade {
                buyer: t.buyer,
                trade: id,
            },
            TradeStateKind::AwaitingPayment => self.gateway(t),
            TradeStateKind::Paid if roll < 45 => Command::Release {
                seller: t.seller,
                proof: self.proof(t.seller),
                trade: id,
            },
            TradeStateKind::Paid if roll < 90 => {
                let user = if roll.is_multiple_of(2) {
                    t.buyer
                } else {
                    t.seller
                };
                Command::OpenAppeal {
                    user,
                    trade: id,
                    reason: "no answer".into(),
                }
            }
            TradeStateKind::Paid => self.gateway(t),
            _ => match roll {
                0..=19 => Command::ClaimAppeal { agent, trade: id },
                20..=29 => Command::UnclaimAppeal { agent, trade: id },
                30..=39 => Command::AddEvidence {
                    user: t.buyer,
                    trade: id,
                    description: "receipt".into(),
                    attachment: None,
                },
                40..=74 => {
                    let resolution = if roll.is_multiple_of(2) {
                        Resolution::Release
                    } else {
                        Resolution::Refund
                    };
                    Command::ResolveAppeal {
                        agent,
                        trade: id,
                        resolution,
                        note: "decided".into(),
                    }
                }
                75..=87 => Command::Release {
                    seller: t.seller,
                    proof: self.proof(t.seller),
                    trade: id,
                },
                _ => Command::CancelTrade {
                    buyer: t.buyer,
                    trade: id,
                },
            },
        })
    }

    fn next_command(&mut self) -> Command {
        if let Some(last) = self.last.clone().filter(|_| self.rng.chance(5)) {
            return last; // a repeated click
        }
        match self.rng.below(100) {
            0..=9 => Command::FireDue,
            10..=13 => self.publish(),
            14..=22 => self.buy(),
            23..=24 => self.fast_sell(),
            25..=64 => self.honest().unwrap_or(Command::FireDue),
            65 => {
                let user = self.rng.pick(&self.traders.clone());
                Command::Deposit {
                    user,
                    asset: eb(),
                    amount: Decimal::from(500),
                    external_ref: format!("top-{}", self.w.e.last_seq()),
                }
            }
            _ => self.on_trade().unwrap_or(Command::FireDue),
        }
    }

    fn learn(&mut self, events: &[Event]) {
        for e in events {
            match &e.kind {
                EventKind::TradeCreated {
                    trade,
                    seller,
                    buyer,
                    fiat,
                    ..
                } => {
                    self.trades.push(Seen {
                        id: *trade,
                        seller: *seller,
                        buyer: *buyer,
                        fiat: fiat.value(),
                        at: e.at,
                    });
                }
                EventKind::TradeTransitioned { reason, .. } => {
                    *self.stats.entry(format!("~{reason:?}")).or_default() += 1;
                }
                _ => {}
            }
        }
    }

    pub fn run(&mut self, seed: u64, steps: usize) {
        for i in 0..steps {
            self.w.now = self.w.now.plus_ms(self.advance());
            let cmd = self.next_command();
            // Now and then a caller's clock lags: the engine treats an
            // earlier `now` as its own clock, and so must the model.
            let now = if self.rng.chance(2) {
                self.w.now.plus_ms(-(self.rng.below(HOUR as u64) as i64))
            } else {
                self.w.now
            };
            let result = self.w.history.apply(&mut self.w.e, &cmd, now);
            let fed = match &result {
                Ok(events) => Ok(events.as_slice()),
                Err(r) => Err(r),
            };
            if let Err(why) = self.w.m.step(now, &cmd, fed) {
                panic!(
                    "seed {seed}, step {i}: model disagrees: {why}\ncommand: {cmd:?}\nresult: {result:?}"
                );
            }
            let outcome = if result.is_ok() { "ok" } else { "refused" };
            *self
                .stats
                .entry(format!("{} {outcome}", cmd.name()))
                .or_default() += 1;
            if let Ok(events) = &result {
                self.learn(events);
            }
            self.last = Some(cmd);
        }
    }

    /// The open trades the engine holds, per state, against the model's counts.
    pub fn check_counts(&self) {
        let mut engine = BTreeMap::new();
        for t in self.w.e.state().trades.values() {
            *engine.entry(t.state.kind()).or_insert(0usize) += 1;
        }
        let c = self.w.m.counts();
        let get = |k| engine.get(&k).copied().unwrap_or(0);
        assert_eq!(c.awaiting_payment, get(TradeStateKind::AwaitingPayment));
        assert_eq!(c.paid, get(TradeStateKind::Paid));
        assert_eq!(c.appealed, get(TradeStateKind::Appealed));
        assert_eq!(c.total(), self.trades.len());
    }
}
