//! A small world for model tests: the real engine and the model side by
//! side; every command goes to the engine, and its answer to the model.
#![allow(dead_code)]

use std::str::FromStr;

use otc_engine::command::{
    BuyAmount, BuyRequest, CapacityRequest, FastSellRequest, FundPasswordProof, ListingSpec,
    MerchantQuote, PriceSpec,
};
use otc_engine::ids::MS_PER_MIN;
use otc_engine::payment::{ChannelProvider, GatewayPayment, payment_reference};
use otc_engine::users::{MethodDetails, MethodKind};
use std::collections::BTreeMap;

use otc_engine::buy::BuyOrder;
use otc_engine::listing::Listing;
use otc_engine::trade::Trade;
use otc_engine::{
    Asset, BuyOrderId, Command, EndedRecord, Engine, EngineConfig, Event, EventKind, Fiat,
    ListingId, MethodId, Rejection, RejectionKind, Target, Timestamp, TradeId, UserId,
};
use otc_sim::model::Model;
use rust_decimal::Decimal;

pub mod fabricate;

pub const T0: Timestamp = Timestamp(1_700_000_000_000);
pub const MIN: i64 = MS_PER_MIN;
pub const HOUR: i64 = 60 * MIN;

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

pub fn user(n: u8) -> UserId {
    UserId(uuid::Uuid::from_bytes([n; 16]))
}

pub fn eb() -> Asset {
    Asset::new("EB").expect("EB")
}

pub fn cny() -> Fiat {
    Fiat::new("CNY").expect("CNY")
}

/// The engine and the model, fed the same commands.
pub struct World {
    pub e: Engine,
    pub m: Model,
    pub now: Timestamp,
    /// What storage's history would hold: the latest version of each trade,
    /// listing and buy order a command changed.
    pub history: History,
}

/// The shell's history, as the writer keeps it: it answers for records the
/// engine forgot (SPEC §10: an action on one is refused naming its state).
#[derive(Default)]
pub struct History {
    trades: BTreeMap<TradeId, Trade>,
    listings: BTreeMap<ListingId, Listing>,
    orders: BTreeMap<BuyOrderId, BuyOrder>,
}

impl History {
    /// Applies `cmd` as the writer does: the engine decides, history keeps
    /// what it changed, and a NOT_FOUND for a record only history holds is
    /// decided again with history's record of it.
    pub fn apply(
        &mut self,
        e: &mut Engine,
        cmd: &Command,
        now: Timestamp,
    ) -> Result<Vec<Event>, Rejection> {
        match e.apply(cmd, now) {
            Ok(events) => {
                let c = e.changed();
                for id in &c.trades {
                    if let Some(t) = e.trade(*id) {
                        self.trades.insert(*id, t.clone());
                    }
                }
                for id in &c.listings {
                    if let Some(l) = e.listing(*id) {
                        self.listings.insert(*id, l.clone());
                    }
                }
                for id in &c.orders {
                    if let Some(o) = e.buy_order(*id) {
                        self.orders.insert(*id, o.clone());
                    }
                }
                Ok(events)
            }
            Err(r) => {
                let record = match cmd.target() {
                    Some(Target::Trade(id)) => self.trades.get(&id).map(EndedRecord::Trade),
                    Some(Target::Listing(id)) => self.listings.get(&id).map(EndedRecord::Listing),
                    Some(Target::BuyOrder(id)) => self.orders.get(&id).map(EndedRecord::BuyOrder),
                    None => None,
                };
                let again = match record {
                    Some(rec) if r.kind() == RejectionKind::NotFound => {
                        e.refusal_on_ended(cmd, rec, now)
                    }
                    _ => None,
                };
                Err(again.unwrap_or(r))
            }
        }
    }
}

impl World {
    pub fn new() -> Self {
        Self::with(EngineConfig::default())
    }

    pub fn with(config: EngineConfig) -> Self {
        Self {
            m: Model::new(&config),
            e: Engine::new(config).expect("config"),
            now: T0,
            history: History::default(),
        }
    }

    /// An engine with `engine` and a model that believes `model`.
    pub fn mismatched(engine: EngineConfig, model: &EngineConfig) -> Self {
        Self {
            m: Model::new(model),
            e: Engine::new(engine).expect("config"),
            now: T0,
            history: History::default(),
        }
    }

    /// Applies `cmd` to the engine and the model; returns both answers.
    pub fn try_run(
        &mut self,
        cmd: &Command,
    ) -> (Result<Vec<Event>, Rejection>, Result<(), String>) {
        let result = self.history.apply(&mut self.e, cmd, self.now);
        let fed = match &result {
            Ok(events) => Ok(events.as_slice()),
            Err(r) => Err(r),
        };
        let verdict = self.m.step(self.now, cmd, fed);
        (result, verdict)
    }

    /// Applies `cmd` to the engine and the model; panics if they disagree.
    pub fn run(&mut self, cmd: Command) -> Result<Vec<Event>, Rejection> {
        let (result, verdict) = self.try_run(&cmd);
        if let Err(why) = verdict {
            panic!("model disagrees: {why}");
        }
        result
    }

    pub fn ok(&mut self, cmd: Command) -> Vec<Event> {
        let name = cmd.name();
        self.run(cmd)
            .unwrap_or_else(|r| panic!("{name} refused: {r}"))
    }

    pub fn refused(&mut self, cmd: Command) -> RejectionKind {
        let name = cmd.name();
        match self.run(cmd) {
            Ok(events) => panic!("{name} accepted: {events:?}"),
            Err(r) => r.kind(),
        }
    }

    /// Moves the clock by `ms` and fires what is due.
    pub fn advance(&mut self, ms: i64) -> Vec<Event> {
        self.now = self.now.plus_ms(ms);
        self.ok(Command::FireDue)
    }

    pub fn proof(&self, u: UserId) -> FundPasswordProof {
        FundPasswordProof::matched(self.e.fund_password(u).map_or(0, |(_, v)| v))
    }

    /// Deposit, an Alipay method and a fund password.
    pub fn setup(&mut self, u: UserId) {
        self.ok(Command::Deposit {
            user: u,
            asset: eb(),
            amount: d("100000"),
            external_ref: format!("dep-{u}"),
        });
        self.ok(Command::BindMethod {
            user: u,
            details: MethodDetails::Alipay {
                holder: "Wang".into(),
                account: format!("{u}@pay"),
            },
        });
        self.ok(Command::SetFundPassword {
            user: u,
            hash: "$argon2id$test".into(),
            current: None,
        });
    }

    pub fn methods(&self, u: UserId) -> Vec<MethodId> {
        self.e
            .user(u)
            .map(|s| s.methods.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn spec(&self, methods: Vec<MethodId>) -> ListingSpec {
        ListingSpec {
            asset: eb(),
            fiat: cny(),
            price: PriceSpec::Fixed(d("7")),
            total: d("100"),
            min_fiat: d("1"),
            max_fiat: d("7000"),
            methods,
            payment_window_ms: None,
            terms: String::new(),
            release_on_verified: false,
        }
    }

    pub fn publish_spec(&mut self, u: UserId, spec: ListingSpec) -> ListingId {
        let proof = self.proof(u);
        let events = self.ok(Command::PublishListing {
            seller: u,
            proof,
            spec,
        });
        events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::ListingChanged { listing, .. } => Some(listing),
                _ => None,
            })
            .expect("a listing")
    }

    pub fn publish(&mut self, u: UserId) -> ListingId {
        let spec = self.spec(self.methods(u));
        self.publish_spec(u, spec)
    }

    pub fn buy(&mut self, b: UserId) -> TradeId {
        let request = BuyRequest {
            asset: eb(),
            fiat: cny(),
            amount: BuyAmount::Coin(d("1")),
            max_price: None,
            methods: Vec::new(),
            rest: None,
        };
        let events = self.ok(Command::PlaceBuy { buyer: b, request });
        trade_of(&events)
    }

    pub fn mark_paid(&mut self, b: UserId, t: TradeId) -> Result<Vec<Event>, Rejection> {
        self.run(Command::MarkPaid { buyer: b, trade: t })
    }

    pub fn cancel(&mut self, b: UserId, t: TradeId) -> Result<Vec<Event>, Rejection> {
        self.run(Command::CancelTrade { buyer: b, trade: t })
    }

    pub fn release(&mut self, s: UserId, t: TradeId) -> Result<Vec<Event>, Rejection> {
        let proof = self.proof(s);
        self.run(Command::Release {
            seller: s,
            trade: t,
            proof,
        })
    }

    pub fn appeal(&mut self, u: UserId, t: TradeId) -> Result<Vec<Event>, Rejection> {
        self.run(Command::OpenAppeal {
            user: u,
            trade: t,
            reason: "fiat not received".into(),
        })
    }

    pub fn resolve(
        &mut self,
        agent: UserId,
        t: TradeId,
        resolution: otc_engine::command::Resolution,
    ) -> Result<Vec<Event>, Rejection> {
        self.run(Command::ResolveAppeal {
            agent,
            trade: t,
            resolution,
            note: "checked the bank statement".into(),
        })
    }

    pub fn state_of(&self, t: TradeId) -> &'static str {
        self.e.trade(t).expect("trade").state.kind().name()
    }

    /// Makes `merchants` partner merchants bidding 7 CNY per EB, online.
    pub fn merchants(&mut self, merchants: &[UserId]) {
        for &m in merchants {
            self.ok(Command::RegisterMerchant { user: m });
            let capacity = CapacityRequest {
                quotes: vec![MerchantQuote {
                    asset: eb(),
                    fiat: cny(),
                    bid: d("7"),
                    min_fiat: d("1"),
                    max_fiat: d("100000"),
                }],
                methods: vec![MethodKind::Alipay],
                max_outstanding_fiat: d("1000000"),
            };
            self.ok(Command::SetMerchantCapacity {
                merchant: m,
                capacity,
            });
            self.ok(Command::SetMerchantOnline {
                merchant: m,
                online: true,
            });
        }
    }

    pub fn fast_sell(
        &mut self,
        s: UserId,
        release_on_verified: bool,
    ) -> Result<Vec<Event>, Rejection> {
        let method = self.methods(s)[0];
        let proof = self.proof(s);
        self.run(Command::FastSell {
            seller: s,
            proof,
            request: FastSellRequest {
                asset: eb(),
                fiat: cny(),
                amount: d("2"),
                method,
                release_on_verified,
            },
        })
    }

    /// Assigns channel `name` to `u` and binds it; returns the method.
    pub fn channel(&mut self, u: UserId, name: &str) -> MethodId {
        self.ok(Command::AssignChannel {
            user: u,
            channel: name.into(),
            provider: ChannelProvider::Alipay,
        });
        let events = self.ok(Command::BindMethod {
            user: u,
            details: MethodDetails::Channel {
                channel: name.into(),
                provider: ChannelProvider::Alipay,
            },
        });
        events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::MethodBound { method, .. } => Some(method),
                _ => None,
            })
            .expect("method bound")
    }
}

pub fn gateway(channel: &str, t: TradeId, txn: &str, amount: Decimal) -> Command {
    Command::GatewayPayment(GatewayPayment {
        channel: channel.into(),
        reference: payment_reference(t),
        txn_id: txn.into(),
        amount,
        currency: "CNY".into(),
        paid_at: None,
        history_checked: false,
        ended: None,
    })
}

pub fn trade_of(events: &[Event]) -> TradeId {
    trades_of(events)
        .first()
        .copied()
        .expect("a trade was created")
}

pub fn trades_of(events: &[Event]) -> Vec<TradeId> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TradeCreated { trade, .. } => Some(trade),
            _ => None,
        })
        .collect()
}

/// The transitions in `events`, as (trade, to-state name).
pub fn moves(events: &[Event]) -> Vec<(TradeId, &'static str)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TradeTransitioned { trade, to, .. } => Some((trade, to.name())),
            _ => None,
        })
        .collect()
}
