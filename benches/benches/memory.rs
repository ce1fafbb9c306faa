//! Resident memory per open listing and per open trade in the engine.
//!
//! Builds 100,000 live listings, then 100,000 open trades (awaiting
//! payment), reading the process's resident set size (`/proc/self/statm`)
//! before and after each step.
//!
//! Run: `cargo bench -p otc-benches --bench memory`

use std::str::FromStr;

use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec};
use otc_engine::users::MethodDetails;
use otc_engine::{Asset, Command, Engine, EngineConfig, EventKind, Fiat, Timestamp, UserId};
use rust_decimal::Decimal;

const N: u64 = 100_000;
const LISTINGS_PER_SELLER: u64 = 10;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn uid(n: u64) -> UserId {
    UserId(uuid::Uuid::from_u64_pair(0x6d656d, n))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dec = |s: &str| Decimal::from_str(s).unwrap_or(Decimal::ONE);
    let mut e = Engine::new(EngineConfig::default()).unwrap_or_else(|x| panic!("{x}"));
    let (asset, fiat) = (
        Asset::new("EB").unwrap_or_else(|x| panic!("{x}")),
        Fiat::new("CNY").unwrap_or_else(|x| panic!("{x}")),
    );
    let now = Timestamp(1_700_000_000_000);
    let apply = |e: &mut Engine, c: Command| e.apply(&c, now).unwrap_or_else(|r| panic!("{r}"));
    let sellers = N / LISTINGS_PER_SELLER;
    let mut methods = Vec::new();
    for s in 0..sellers {
        let user = uid(s);
        apply(
            &mut e,
            Command::Deposit {
                user,
                asset,
                amount: dec("1000000"),
                external_ref: format!("d{s}"),
            },
        );
        let ev = apply(
            &mut e,
            Command::BindMethod {
                user,
                details: MethodDetails::Alipay {
                    holder: "S".into(),
                    account: format!("s{s}"),
                },
            },
        );
        let m = ev.iter().find_map(|x| match x.kind {
            EventKind::MethodBound { method, .. } => Some(method),
            _ => None,
        });
        apply(
            &mut e,
            Command::SetFundPassword {
                user,
                hash: "$argon2id$m".into(),
                current: None,
            },
        );
        methods.push((user, m.unwrap_or_else(|| panic!("method"))));
    }
    let proof = FundPasswordProof::matched(1);
    let before = rss_bytes();
    for i in 0..N {
        let (seller, method) = methods[(i % sellers) as usize];
        let spec = ListingSpec {
            asset,
            fiat,
            price: otc_engine::command::PriceSpec::Fixed(Decimal::new(700 + (i as i64 % 100), 2)),
            total: dec("1000"),
            min_fiat: dec("1"),
            max_fiat: dec("100000"),
            methods: vec![method],
            payment_window_ms: None,
            terms: String::new(),
            release_on_verified: false,
        };
        apply(
            &mut e,
            Command::PublishListing {
                seller,
                proof,
                spec,
            },
        );
    }
    let listed = rss_bytes();
    for i in 0..N {
        let request = BuyRequest {
            asset,
            fiat,
            amount: BuyAmount::Coin(Decimal::ONE),
            max_price: None,
            methods: Vec::new(),
            rest: None,
        };
        apply(
            &mut e,
            Command::PlaceBuy {
                buyer: uid(1_000_000 + i),
                request,
            },
        );
    }
    let traded = rss_bytes();
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / N as f64;
    println!(
        "resident bytes per live listing: {:.0}",
        per(before, listed)
    );
    println!(
        "resident bytes per open trade:   {:.0} (includes its deadline, indexes and the buyer's new account)",
        per(listed, traded)
    );
    println!(
        "engine: {} listings in book, {} open trades",
        e.state().book.len(),
        e.state().trades.len()
    );
}
