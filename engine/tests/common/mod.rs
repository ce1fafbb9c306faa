//! A small world for engine scenarios: a simulated clock, named users, and
//! helpers that check the invariants after every command.
#![allow(dead_code)]

use std::str::FromStr;

use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec};
use otc_engine::ids::MS_PER_MIN;
use otc_engine::users::{MethodDetails, MethodKind};
use otc_engine::{
    Asset, Command, Engine, EngineConfig, Event, EventKind, Fiat, ListingId, MethodId, Rejection,
    Timestamp, TradeId, UserId,
};
use rust_decimal::Decimal;

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

pub const T0: Timestamp = Timestamp(1_700_000_000_000);

pub fn minutes(n: i64) -> i64 {
    n * MS_PER_MIN
}

pub fn alipay() -> MethodDetails {
    MethodDetails::Alipay {
        holder: "Wang Fang".into(),
        account: "wang@example.com".into(),
    }
}

pub fn bank() -> MethodDetails {
    MethodDetails::Bank {
        bank: "ICBC".into(),
        holder: "Li Lei".into(),
        card_number: "6222020200112233".into(),
    }
}

pub struct World {
    pub e: Engine,
    pub now: Timestamp,
}

impl Default for World {
    fn default() -> Self {
        Self::new(EngineConfig::default())
    }
}

impl World {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            e: Engine::new(config).expect("config"),
            now: T0,
        }
    }

    /// Moves the clock forward by `ms` and fires what is due.
    pub fn advance(&mut self, ms: i64) -> Vec<Event> {
        self.now = self.now.plus_ms(ms);
        let events = self.e.fire_due(self.now);
        self.check();
        events
    }

    pub fn check(&self) {
        if let Err(e) = self.e.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    /// Applies a command that must succeed.
    pub fn ok(&mut self, cmd: Command) -> Vec<Event> {
        let r = self.e.apply(&cmd, self.now);
        self.check();
        match r {
            Ok(events) => events,
            Err(e) => panic!("{} was rejected: {e}", cmd.name()),
        }
    }

    /// Applies a command that must be rejected, and checks it changed nothing.
    pub fn err(&mut self, cmd: Command) -> Rejection {
        let before = self.e.digest();
        let r = self.e.apply(&cmd, self.now);
        assert_eq!(
            before,
            self.e.digest(),
            "a rejected {} changed the state",
            cmd.name()
        );
        self.check();
        match r {
            Ok(events) => panic!("{} was accepted: {events:?}", cmd.name()),
            Err(e) => e,
        }
    }

    pub fn proof(&self, u: UserId) -> FundPasswordProof {
        FundPasswordProof::matched(self.e.fund_password(u).map_or(0, |(_, v)| v))
    }

    /// A verdict that the password typed was wrong.
    pub fn wrong_proof(&self, u: UserId) -> FundPasswordProof {
        FundPasswordProof::wrong(self.e.fund_password(u).map_or(0, |(_, v)| v))
    }

    /// Publishing with a wrong fund password: applied as a recorded failure.
    pub fn wrong_password(&mut self, u: UserId) -> Vec<Event> {
        let spec = self.spec(u, "7", "1", "1", "7");
        let proof = self.wrong_proof(u);
        self.ok(Command::PublishListing {
            seller: u,
            proof,
            spec,
        })
    }

    pub fn deposit(&mut self, u: UserId, amount: &str) {
        let external_ref = format!("dep-{}-{}", u, self.e.last_seq());
        self.ok(Command::Deposit {
            user: u,
            asset: eb(),
            amount: d(amount),
            external_ref,
        });
    }

    pub fn bind(&mut self, u: UserId, details: MethodDetails) -> MethodId {
        let events = self.ok(Command::BindMethod { user: u, details });
        events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::MethodBound { method, .. } => Some(method),
                _ => None,
            })
            .expect("method bound")
    }

    pub fn set_password(&mut self, u: UserId) {
        self.ok(Command::SetFundPassword {
            user: u,
            hash: "$argon2id$test".into(),
            current: None,
        });
    }

    /// A seller with `amount` EB, an Alipay method and a fund password.
    pub fn seller(&mut self, u: UserId, amount: &str) -> MethodId {
        self.deposit(u, amount);
        let m = self.bind(u, alipay());
        self.set_password(u);
        m
    }

    pub fn spec(&self, u: UserId, price: &str, total: &str, min: &str, max: &str) -> ListingSpec {
        let methods = self
            .e
            .user(u)
            .map(|s| s.methods.keys().copied().collect())
            .unwrap_or_default();
        ListingSpec {
            asset: eb(),
            fiat: cny(),
            price: otc_engine::command::PriceSpec::Fixed(d(price)),
            total: d(total),
            min_fiat: d(min),
            max_fiat: d(max),
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
        listing_of(&events)
    }

    pub fn publish(
        &mut self,
        u: UserId,
        price: &str,
        total: &str,
        min: &str,
        max: &str,
    ) -> ListingId {
        let spec = self.spec(u, price, total, min, max);
        self.publish_spec(u, spec)
    }

    pub fn buy_request(amount: BuyAmount) -> BuyRequest {
        BuyRequest {
            asset: eb(),
            fiat: cny(),
            amount,
            max_price: None,
            methods: Vec::new(),
            rest: None,
        }
    }

    pub fn buy_coin(&mut self, buyer: UserId, amount: &str) -> TradeId {
        let request = Self::buy_request(BuyAmount::Coin(d(amount)));
        let events = self.ok(Command::PlaceBuy { buyer, request });
        trade_of(&events)
    }

    pub fn release(&mut self, seller: UserId, trade: TradeId) -> Vec<Event> {
        let proof = self.proof(seller);
        self.ok(Command::Release {
            seller,
            trade,
            proof,
        })
    }

    /// (available, escrowed) of EB as decimals.
    pub fn bal(&self, u: UserId) -> (Decimal, Decimal) {
        let b = self.e.balance(u, eb());
        (b.available.value(), b.escrowed.value())
    }

    pub fn state_of(&self, t: TradeId) -> &'static str {
        self.e.trade(t).expect("trade").state.kind().name()
    }

    pub fn remaining(&self, l: ListingId) -> Decimal {
        self.e.listing(l).expect("listing").remaining.value()
    }
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

pub fn listing_of(events: &[Event]) -> ListingId {
    events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::ListingChanged { listing, .. } => Some(listing),
            _ => None,
        })
        .expect("a listing event")
}

pub fn kinds_filter(methods: &[MethodKind]) -> Vec<MethodKind> {
    methods.to_vec()
}
