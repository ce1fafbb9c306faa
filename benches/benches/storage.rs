//! Durable throughput and recovery time of the storage layer.
//!
//! - Durable commands/s: the same realistic workload committed one command
//!   per commit (one flush + fdatasync each) and in groups (group commit).
//! - Recovery: a data dir holding N completed trades (default 1,000,000;
//!   `OTC_BENCH_TRADES` to change) made over about three simulated days,
//!   then the time from starting `otcd` on it to its health check answering
//!   SERVING (cold: the first open after the writer stopped, as after a
//!   crash or deploy; needs `target/release/otcd`), the time `Writer::open`
//!   takes on its own, and the data dir's size.
//!
//! Run: `cargo build --release -p otc-api --bin otcd && cargo bench -p otc-benches --bench storage`

use std::str::FromStr;
use std::time::Instant;

use otc_engine::command::{BuyAmount, BuyRequest, FundPasswordProof, ListingSpec};
use otc_engine::users::MethodDetails;
use otc_engine::{Asset, Command, EngineConfig, EventKind, Fiat, Timestamp, TradeId, UserId};
use otc_storage::workload::{Workload, workload_user};
use otc_storage::{Outcome, Request, Writer, WriterOptions};
use rust_decimal::Decimal;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn durable(group: usize, total: usize) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = Writer::open(
        dir.path(),
        EngineConfig::default(),
        WriterOptions::default(),
    )
    .expect("open");
    let mut load = Workload::new(9, 64);
    let mut now = T0;
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let mut reqs = Vec::with_capacity(group);
        for _ in 0..group {
            let (command, advance) = load.next(w.engine(), now);
            now = now.plus_ms(advance);
            reqs.push(Request {
                request_id: Some(format!("r{}", load.count())),
                command,
                now,
                call: None,
            });
        }
        done += reqs.len();
        w.apply_group(&reqs).expect("commit");
    }
    let secs = started.elapsed().as_secs_f64();
    (done as f64 / secs, w.stats.commits)
}

fn build_completed_trades(dir: &std::path::Path, trades: usize) -> Timestamp {
    let mut w = Writer::open(dir, EngineConfig::default(), WriterOptions::default()).expect("open");
    let asset = Asset::new("EB").expect("EB");
    let fiat = Fiat::new("CNY").expect("CNY");
    let mut now = T0;
    let seller = workload_user(1);
    let setup = [
        Command::Deposit {
            user: seller,
            asset,
            amount: dec("90000000"),
            external_ref: "seed".into(),
        },
        Command::BindMethod {
            user: seller,
            details: MethodDetails::Alipay {
                holder: "S".into(),
                account: "s@pay".into(),
            },
        },
        Command::SetFundPassword {
            user: seller,
            hash: "$argon2id$bench".into(),
            current: None,
        },
    ];
    let reqs: Vec<Request> = setup
        .into_iter()
        .map(|command| Request {
            request_id: None,
            command,
            now,
            call: None,
        })
        .collect();
    w.apply_group(&reqs).expect("setup");
    let method = *w
        .engine()
        .user(seller)
        .expect("seller")
        .methods
        .keys()
        .next()
        .expect("method");
    let proof = FundPasswordProof::matched(1);
    let spec = ListingSpec {
        asset,
        fiat,
        price: otc_engine::command::PriceSpec::Fixed(dec("7")),
        total: dec("80000000"),
        min_fiat: dec("1"),
        max_fiat: dec("1000"),
        methods: vec![method],
        payment_window_ms: None,
        terms: String::new(),
        release_on_verified: false,
    };
    w.apply_group(&[Request {
        request_id: None,
        command: Command::PublishListing {
            seller,
            proof,
            spec,
        },
        now,
        call: None,
    }])
    .expect("publish");
    const BATCH: usize = 2_000;
    let mut made = 0;
    let started = Instant::now();
    while made < trades {
        let n = BATCH.min(trades - made);
        let buys: Vec<Request> = (0..n)
            .map(|i| {
                let buyer: UserId = workload_user(1_000 + (made + i) as u64 % 50_000);
                let request = BuyRequest {
                    asset,
                    fiat,
                    amount: BuyAmount::Coin(Decimal::ONE),
                    max_price: None,
                    methods: Vec::new(),
                    rest: None,
                };
                Request {
                    request_id: None,
                    command: Command::PlaceBuy { buyer, request },
                    now,
                    call: None,
                }
            })
            .collect();
        let out = w.apply_group(&buys).expect("buys");
        let ids: Vec<(UserId, TradeId)> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Applied(ev) => ev.iter().find_map(|e| match e.kind {
                    EventKind::TradeCreated { trade, buyer, .. } => Some((buyer, trade)),
                    _ => None,
                }),
                _ => None,
            })
            .collect();
        now = now.plus_ms(1_000);
        let paid: Vec<Request> = ids
            .iter()
            .map(|(buyer, trade)| Request {
                request_id: None,
                command: Command::MarkPaid {
                    buyer: *buyer,
                    trade: *trade,
                },
                now,
                call: None,
            })
            .collect();
        w.apply_group(&paid).expect("paid");
        let released: Vec<Request> = ids
            .iter()
            .map(|(_, trade)| Request {
                request_id: None,
                command: Command::Release {
                    seller,
                    trade: *trade,
                    proof,
                },
                now,
                call: None,
            })
            .collect();
        w.apply_group(&released).expect("released");
        // 2,000 trades every 10 minutes: a million trades span about three
        // days, so the engine's working set holds the last hour, as in life.
        now = now.plus_ms(600_000);
        w.fire_due(now).expect("timers");
        made += ids.len();
        if made % 100_000 < BATCH {
            eprintln!(
                "  {made} completed trades ({:.0} trades/s)",
                made as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    w.snapshot().expect("snapshot");
    now
}

/// Starts `otcd` on `dir` and returns how long it took to answer SERVING,
/// with the line it logged when its store was open.
fn otcd_to_serving(dir: &std::path::Path) -> Option<(std::time::Duration, String)> {
    use std::io::{BufRead, BufReader};
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/otcd");
    if !bin.exists() {
        println!(
            "({} not built: skipping the otcd recovery figure)",
            bin.display()
        );
        return None;
    }
    let started = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--console-listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "bench-secret",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start otcd");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = lines
        .find_map(|l| {
            l.ok()?
                .strip_prefix("otcd listening on ")
                .map(str::to_owned)
        })
        .expect("otcd printed its address");
    // otcd logs to standard output.
    let log = std::thread::spawn(move || {
        let mut lines = lines.map_while(Result::ok);
        let found = lines.find(|l| l.contains("store open")).unwrap_or_default();
        lines.for_each(drop); // keep reading until otcd exits, so it never hits a closed pipe
        found
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let serving = rt.block_on(async {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        loop {
            let answer = async {
                let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                let mut client = HealthClient::new(channel);
                let reply = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .ok()?;
                Some(reply.into_inner().status == ServingStatus::Serving as i32)
            };
            if let Ok(Some(true)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), answer).await
            {
                return started.elapsed();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    Some((serving, log.join().unwrap_or_default()))
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harness = false benches
    }
    let total = 20_000;
    let (single, c1) = durable(1, 2_000);
    println!("durable, one commit per command:  {single:>9.0} commands/s ({c1} commits)");
    for group in [16, 128, 1_024] {
        let (rate, commits) = durable(group, total);
        println!(
            "durable, groups of {group:>5}:          {rate:>9.0} commands/s ({commits} commits), {:.1}x one-per-command",
            rate / single
        );
    }
    let trades: usize = std::env::var("OTC_BENCH_TRADES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let built = Instant::now();
    let now = build_completed_trades(dir.path(), trades);
    println!(
        "built {trades} completed trades in {:.1} s; data dir {:.1} MiB",
        built.elapsed().as_secs_f64(),
        dir_bytes(dir.path()) as f64 / 1_048_576.0
    );
    if let Some((serving, log)) = otcd_to_serving(dir.path()) {
        println!(
            "otcd cold start on it to SERVING: {:.3} s (its log: {})",
            serving.as_secs_f64(),
            log.trim()
        );
    }
    let started = Instant::now();
    let mut w = Writer::open(
        dir.path(),
        EngineConfig::default(),
        WriterOptions::default(),
    )
    .expect("recover");
    let opened = started.elapsed();
    w.fire_due(now).expect("overdue timers");
    let ready = started.elapsed();
    println!(
        "Writer::open alone (warm, after otcd): open {:.3} s, ready to serve (overdue timers fired) {:.3} s; engine holds {} trades",
        opened.as_secs_f64(),
        ready.as_secs_f64(),
        w.engine().state().trades.len()
    );
}
