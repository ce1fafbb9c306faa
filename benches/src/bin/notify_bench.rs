//! Verified notifications against the gRPC `MarkPaid` path, in one run
//! (SPEC §19; issue "Verified payment channels").
//!
//! Starts a release `otcd` with the sandbox channels, opens 2 × `--trades`
//! trades on one channel, then marks half of them paid over gRPC and pays
//! the other half with notifications the sandbox gateway signed beforehand
//! (signing is the gateway's cost, not ours), POSTed to the gateway
//! listener, `--clients` at a time. Each notification is verified (RSA2 for
//! Alipay), applied durably and answered; each `MarkPaid` is authenticated,
//! applied durably and answered. Prints rate and latency percentiles of both.
//!
//! ```text
//! cargo build --release -p otc-api --bin otcd
//! cargo run --release -p otc-benches --bin notify_bench -- --trades 5000 --clients 32
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use otc_api::auth::{Role, mint};
use otc_api::client::{self, Authed};
use otc_api::proto as pb;
use otc_api::proto::trading_service_client::TradingServiceClient;
use otc_gateway::sandbox::{SandboxCharset, SandboxGateway, SandboxPayment, SandboxStatus};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;

const SECRET: &str = "notify-bench-secret";
const PASSWORD: &str = "bench-pass";

#[derive(Parser)]
struct Args {
    /// The otcd binary (build it in release first).
    #[arg(long, default_value = "target/release/otcd")]
    otcd: PathBuf,
    /// Trades per path (MarkPaid and notifications each get this many).
    #[arg(long, default_value_t = 5_000)]
    trades: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// The sandbox channel: sandbox-alipay, sandbox-wechatpay or sandbox-hmac.
    #[arg(long, default_value = "sandbox-alipay")]
    channel: String,
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("{what}: {e}")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let data = tempfile::tempdir().unwrap_or_else(|e| fail("temp dir", e));
    let sandbox = tempfile::tempdir().unwrap_or_else(|e| fail("temp dir", e));
    let (_child, grpc, http) = start(&args, data.path(), sandbox.path()).await;
    let channel = client::connect(&format!("http://{grpc}"), Some(Duration::from_secs(5)))
        .await
        .unwrap_or_else(|e| fail("connect", e));
    let authed = |user: uuid::Uuid, role: Role| {
        let token = mint(SECRET.as_bytes(), user, role, 3600).unwrap_or_else(|e| fail("mint", e));
        client::authed(channel.clone(), &token).unwrap_or_else(|e| fail("token", e))
    };
    let seller = uuid::Uuid::new_v4();
    setup_seller(
        &args,
        seller,
        authed(uuid::Uuid::new_v4(), Role::Admin),
        authed(seller, Role::User),
    )
    .await;

    // Open 2 × trades, one per buyer call, spread over buyers.
    let started = Instant::now();
    let buyers: Vec<uuid::Uuid> = (0..args.clients).map(|_| uuid::Uuid::new_v4()).collect();
    let trades = Arc::new(Mutex::new(Vec::with_capacity(2 * args.trades)));
    let mut tasks = Vec::new();
    for (i, b) in buyers.iter().enumerate() {
        let n = (2 * args.trades).div_ceil(args.clients);
        let mut t = TradingServiceClient::new(authed(*b, Role::User));
        let trades = Arc::clone(&trades);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let r = t
                    .place_buy(pb::PlaceBuyRequest {
                        request_id: uuid::Uuid::new_v4().to_string(),
                        asset: "EB".into(),
                        fiat: "CNY".into(),
                        coin_amount: "1".into(),
                        methods: vec![
                            pb::PaymentKind::Alipay as i32,
                            pb::PaymentKind::Wechat as i32,
                            pb::PaymentKind::Bank as i32,
                        ],
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| fail("buy", e))
                    .into_inner();
                trades.lock().await.push((i, r.trade_ids[0].clone()));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap_or_else(|e| fail("buyer task", e));
    }
    let mut trades = std::mem::take(&mut *trades.lock().await);
    trades.truncate(2 * args.trades);
    println!(
        "opened {} trades in {:.1} s",
        trades.len(),
        started.elapsed().as_secs_f64()
    );
    let (clicked, notified) = trades.split_at(args.trades);

    // gRPC MarkPaid, by each trade's buyer.
    let clients: Vec<_> = buyers
        .iter()
        .map(|b| TradingServiceClient::new(authed(*b, Role::User)))
        .collect();
    let mark = run_paced(args.clients, clicked.to_vec(), move |(i, id)| {
        let mut t = clients[i].clone();
        async move {
            t.mark_paid(pb::TradeActionRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                trade_id: id,
            })
            .await
            .is_ok()
        }
    })
    .await;
    report("gRPC MarkPaid", &mark);

    // Notifications, signed beforehand as the gateway would.
    let gateway = SandboxGateway::open(sandbox.path()).unwrap_or_else(|e| fail("sandbox", e));
    let mut signed = Vec::with_capacity(notified.len());
    for (n, (_, id)) in notified.iter().enumerate() {
        let trade = id
            .strip_prefix("T-")
            .and_then(|d| d.parse().ok())
            .map(otc_engine::TradeId)
            .unwrap_or_else(|| fail("trade id", id));
        let reference = otc_engine::payment::payment_reference(trade);
        let p = SandboxPayment {
            txn_id: format!("bench-{n}"),
            reference,
            amount: "7.00".parse().unwrap_or_else(|e| fail("amount", e)),
            status: SandboxStatus::Paid,
            charset: SandboxCharset::Utf8,
            subject: String::new(),
        };
        signed.push(
            gateway
                .notify(&args.channel, &p, chrono::Utc::now())
                .unwrap_or_else(|e| fail("sign", e)),
        );
    }
    let url = format!("http://{http}/notify/{}", args.channel);
    let notes = run_paced(args.clients, signed, move |(headers, body)| {
        let url = url.clone();
        async move {
            otc_api::webhook::post(&url, &headers, &body)
                .await
                .is_ok_and(|a| (200..300).contains(&a.status))
        }
    })
    .await;
    report(
        &format!("verified notifications ({})", args.channel),
        &notes,
    );
    println!(
        "notifications / MarkPaid throughput: {:.2}",
        notes.rate() / mark.rate()
    );
}

async fn setup_seller(args: &Args, seller: uuid::Uuid, admin: Authed, user: Authed) {
    let mut admin = otc_api::proto::admin_service_client::AdminServiceClient::new(admin);
    admin
        .deposit(pb::TransferRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            user_id: seller.to_string(),
            asset: "EB".into(),
            amount: (4 * args.trades + 100).to_string(),
            external_ref: "bench".into(),
        })
        .await
        .unwrap_or_else(|e| fail("deposit", e));
    admin
        .assign_channel(pb::AssignChannelRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            user_id: seller.to_string(),
            channel: args.channel.clone(),
        })
        .await
        .unwrap_or_else(|e| fail("assign", e));
    let mut t = TradingServiceClient::new(user);
    let method = t
        .bind_payment_method(pb::BindPaymentMethodRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            kind: pb::PaymentKind::Channel as i32,
            channel: args.channel.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| fail("bind", e))
        .into_inner()
        .method_id;
    t.set_fund_password(pb::SetFundPasswordRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        new_password: PASSWORD.into(),
        current_password: String::new(),
    })
    .await
    .unwrap_or_else(|e| fail("password", e));
    t.publish_listing(pb::PublishListingRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        asset: "EB".into(),
        fiat: "CNY".into(),
        price: "7".into(),
        total: (4 * args.trades + 100).to_string(),
        min_fiat: "7".into(),
        max_fiat: "700".into(),
        method_ids: vec![method],
        payment_window_secs: 3600,
        fund_password: PASSWORD.into(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| fail("publish", e));
}

struct Run {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `f` over `items`, `clients` at a time, timing each.
async fn run_paced<T, F, Fut>(clients: usize, items: Vec<T>, f: F) -> Run
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let queue = Arc::new(Mutex::new(items));
    let f = Arc::new(f);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (queue, f) = (Arc::clone(&queue), Arc::clone(&f));
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap_or_else(|e| fail("histogram", e));
            let (mut ok, mut failed) = (0, 0);
            loop {
                let Some(item) = queue.lock().await.pop() else {
                    break;
                };
                let t = Instant::now();
                if f(item).await {
                    ok += 1;
                } else {
                    failed += 1;
                }
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            (ok, failed, h)
        }));
    }
    let mut run = Run {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new(3).unwrap_or_else(|e| fail("histogram", e)),
    };
    for task in tasks {
        let (ok, failed, h) = task.await.unwrap_or_else(|e| fail("task", e));
        run.ok += ok;
        run.failed += failed;
        let _ = run.latency_us.add(h);
    }
    run.elapsed = started.elapsed();
    run
}

fn report(what: &str, r: &Run) {
    let ms = |q: f64| r.latency_us.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{what}: {} ok, {} failed in {:.2} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.ok,
        r.failed,
        r.elapsed.as_secs_f64(),
        r.rate(),
        ms(0.5),
        ms(0.99),
        r.latency_us.max() as f64 / 1000.0
    );
}

async fn start(
    args: &Args,
    data: &std::path::Path,
    sandbox: &std::path::Path,
) -> (tokio::process::Child, String, String) {
    let mut child = tokio::process::Command::new(&args.otcd)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--console-listen",
            "127.0.0.1:0",
            "--jwt-secret",
            SECRET,
        ])
        .args([
            "--argon2-memory-kib",
            "64",
            "--argon2-iterations",
            "1",
            "--sandbox-channels",
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--sandbox-dir")
        .arg(sandbox)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("start {}", args.otcd.display()), e));
    let stdout = child
        .stdout
        .take()
        .unwrap_or_else(|| fail("stdout", "none"));
    let mut lines = BufReader::new(stdout).lines();
    let mut http = String::new();
    let grpc = loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Some(a) = line.strip_prefix("otcd gateway listener on ") {
                    http = a.to_owned();
                }
                if let Some(a) = line.strip_prefix("otcd listening on ") {
                    break a.to_owned();
                }
            }
            _ => fail("otcd", "exited before listening"),
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // Wait for SERVING: the first calls would otherwise race recovery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (child, grpc, http)
}
