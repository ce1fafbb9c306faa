//! Load generator: full trade lifecycles against a real `otcd`, and a tonic
//! transport baseline measured the same way in the same run.
//!
//! It starts both servers itself on loopback (optionally pinned to core 0
//! while it runs on core 1), drives C concurrent clients for T seconds each,
//! and prints trades/s, RPC/s, latency percentiles (HdrHistogram), errors,
//! the ratio to the baseline, and group-commit figures scraped from otcd's
//! metrics endpoint. Every loop is bounded in time; it stops by itself.
//!
//! ```sh
//! cargo build --release --bin otcd -p otc-api
//! cargo run --release -p otc-benches --bin loadgen -- --clients 64 --seconds 20 --pin
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use otc_api::auth::{Role, mint};
use otc_api::client::Authed;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tonic::transport::Channel;

mod lifecycle;
mod stats;

use lifecycle::{Sellers, lifecycle_client};
use stats::Stats;

#[derive(Parser, Clone)]
#[command(
    name = "loadgen",
    about = "Drive full trade lifecycles against otcd and a tonic baseline"
)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// gRPC connections shared by the clients.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Pin the servers to core 0 and the load generator to core 1.
    #[arg(long)]
    pin: bool,
    /// The otcd binary.
    #[arg(long, default_value = "target/release/otcd")]
    otcd: PathBuf,
    /// Share of buys the buyer cancels instead of paying, in percent.
    #[arg(long, default_value_t = 10)]
    cancel_percent: u64,
    /// Share of paid trades that go to appeal (resolved by CS), in percent.
    #[arg(long, default_value_t = 2)]
    appeal_percent: u64,
    /// Internal: serve the baseline on this address and exit when stdin closes.
    #[arg(long, hide = true)]
    serve_baseline: Option<String>,
}

const SECRET: &str = "loadgen-secret";

fn authed(ch: &Channel, user: uuid::Uuid, role: Role) -> Authed {
    let token = mint(SECRET.as_bytes(), user, role, 3_600).unwrap_or_else(|e| panic!("mint: {e}"));
    otc_api::client::authed(ch.clone(), &token).unwrap_or_else(|e| panic!("header: {e}"))
}

/// Starts a server process (optionally on core 0) and returns it with its address.
async fn spawn(
    cmd: &PathBuf,
    args: &[String],
    pin: bool,
    marker: &str,
) -> (tokio::process::Child, String) {
    let mut c = if pin {
        let mut c = tokio::process::Command::new("taskset");
        c.arg("-c").arg("0").arg(cmd);
        c
    } else {
        tokio::process::Command::new(cmd)
    };
    let mut child = c
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", cmd.display()));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(a) = line.strip_prefix(marker) {
                return a.trim().to_owned();
            }
        }
        panic!("{} exited before listening", cmd.display())
    })
    .await
    .unwrap_or_else(|_| panic!("{} did not start", cmd.display()));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

async fn channels(addr: &str, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        out.push(ch);
    }
    out
}

/// The baseline: a trivial unary RPC (gRPC health check) on a tonic server.
async fn serve_baseline(addr: &str) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    println!(
        "baseline listening on {}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let stop = async {
        let mut buf = String::new();
        let _ = tokio::io::AsyncBufReadExt::read_line(
            &mut BufReader::new(tokio::io::stdin()),
            &mut buf,
        )
        .await;
    };
    let _ = tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(otc_api::server::nodelay(listener), stop)
        .await;
}

async fn run_baseline(args: &Args) -> f64 {
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let (_child, addr) = spawn(
        &me,
        &["--serve-baseline".into(), "127.0.0.1:0".into()],
        args.pin,
        "baseline listening on ",
    )
    .await;
    let chans = channels(&addr, args.connections).await;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let ch = chans[i % chans.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            let mut stats = Stats::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                stats.record("health", t, r.map(|_| ()).map_err(|e| e.code()));
            }
            stats
        }));
    }
    let mut total = Stats::new();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(&s);
        }
    }
    total.report("tonic baseline (health check)", args.seconds as f64)
}

async fn scrape(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(mut stream) = tokio::net::TcpStream::connect(metrics).await else {
        return out;
    };
    use tokio::io::AsyncWriteExt;
    let _ = stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {metrics}\r\n\r\n").as_bytes())
        .await;
    let mut body = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut body).await;
    for line in body.lines().filter(|l| l.starts_with("otc_")) {
        if let Some((k, v)) = line.rsplit_once(' ')
            && let Ok(v) = v.parse::<f64>()
        {
            out.insert(k.to_owned(), v);
        }
    }
    out
}

async fn run_otcd(args: &Args) -> f64 {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let metrics_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    let metrics = format!("127.0.0.1:{metrics_port}");
    let server_args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--console-listen",
        "127.0.0.1:0",
        "--data-dir",
        &dir.path().display().to_string(),
        "--jwt-secret",
        SECRET,
        "--metrics-listen",
        &metrics,
        "--appeal-after",
        "1s",
        // Each client's one buyer keeps its appealed trades open for a
        // second while it goes on buying (at one client, a dozen at once):
        // the per-user bound on open trades is not what this measures.
        "--open-buys-per-user",
        "10000",
        // Fund-password hashing is slow on purpose; a cheap cost keeps the
        // load generator measuring the engine and storage, not argon2.
        "--argon2-memory-kib",
        "64",
        "--argon2-iterations",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (_child, addr) = spawn(&args.otcd, &server_args, args.pin, "otcd listening on ").await;
    let chans = channels(&addr, args.connections).await;
    let admin = authed(&chans[0], uuid::Uuid::new_v4(), Role::Admin);
    let before = scrape(&metrics).await;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    {
        let (progress, done) = (Arc::clone(&progress), Arc::clone(&done));
        tokio::spawn(async move {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = progress.load(Ordering::Relaxed);
                eprint!(
                    "\r  {:>4.0}s  {n} trades  {:.0} trades/s   ",
                    start.elapsed().as_secs_f64(),
                    n as f64 / start.elapsed().as_secs_f64()
                );
            }
            eprintln!();
        });
    }
    let mut tasks = Vec::new();
    let sellers: Sellers = Arc::default();
    for i in 0..args.clients {
        let ch = chans[i % chans.len()].clone();
        let client = lifecycle_client(
            ch,
            admin.clone(),
            args.clone(),
            deadline,
            Arc::clone(&progress),
            Arc::clone(&sellers),
        );
        tasks.push(tokio::spawn(client));
    }
    let total = Arc::new(Mutex::new(Stats::new()));
    for t in tasks {
        if let Ok(s) = t.await {
            total.lock().await.merge(&s);
        }
    }
    done.store(true, Ordering::Relaxed);
    let after = scrape(&metrics).await;
    let total = total.lock().await;
    let rps = total.report("otcd (durable lifecycles)", args.seconds as f64);
    let d = |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let (commits, reqs) = (d("otc_commits_total"), d("otc_committed_requests_total"));
    if commits > 0.0 {
        println!(
            "group commit: {:.1} commands per commit (fdatasync); apply (engine + encoding the records) {:.2} µs per command; commit (write + flush + fdatasync) {:.2} ms per group",
            reqs / commits,
            d("otc_engine_nanoseconds_total") / reqs.max(1.0) / 1_000.0,
            d("otc_commit_nanoseconds_total") / commits / 1_000_000.0
        );
    }
    rps
}

fn pin_self() {
    pin_thread(1);
}

/// Pins the calling thread (and threads it starts later) to `core`.
fn pin_thread(core: usize) {
    // SAFETY: sched_setaffinity on the calling thread with a zeroed, then filled, cpu set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() {
    let args = Args::parse();
    // Before the runtime starts its threads: they inherit the core.
    if args.pin && args.serve_baseline.is_none() {
        pin_self();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if args.pin { 1 } else { 2 })
        .enable_all()
        .build();
    let rt = rt.unwrap_or_else(|e| panic!("runtime: {e}"));
    if let Some(addr) = args.serve_baseline.clone() {
        rt.block_on(serve_baseline(&addr));
        return;
    }
    println!(
        "loadgen: {} clients over {} connections, {} s per phase, pinned: {}",
        args.clients, args.connections, args.seconds, args.pin
    );
    let baseline = rt.block_on(run_baseline(&args));
    let ours = rt.block_on(run_otcd(&args));
    println!(
        "ratio: otcd durable RPC/s = {:.1}% of the tonic baseline",
        100.0 * ours / baseline.max(1.0)
    );
    // On the servers' core when pinned: where the disk's interrupts are
    // taken decides how soon a thread waiting in fdatasync runs again.
    let pin = args.pin;
    let probe = std::thread::spawn(move || {
        if pin {
            pin_thread(0);
        }
        fdatasync_probe()
    })
    .join();
    match probe {
        Ok(Ok((p50, p99))) => println!(
            "disk: one pwrite (1 KiB, into a zero-filled file) + fdatasync, 1,000 in a row where otcd's data dir was{}: p50 {:.3} ms  p99 {:.3} ms",
            if pin { ", on otcd's core" } else { "" },
            p50 * 1e3,
            p99 * 1e3
        ),
        Ok(Err(e)) => println!("disk: the fdatasync probe failed: {e}"),
        Err(_) => println!("disk: the fdatasync probe panicked"),
    }
}

/// What one journal commit costs the disk at least: a small `pwrite` into a
/// zero-filled file and its `fdatasync`, as the journal does, timed 1,000
/// times on the file system of the run's data dir (seconds: p50, p99).
fn fdatasync_probe() -> std::io::Result<(f64, f64)> {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir()?;
    let file = std::fs::File::create(dir.path().join("probe"))?;
    let record = [7u8; 1024];
    file.write_all_at(&vec![0u8; 1024 * 1024 + 4096], 0)?;
    file.sync_all()?;
    let mut took = Vec::with_capacity(1_000);
    for i in 0..1_000u64 {
        let t = Instant::now();
        file.write_all_at(&record, i * 1024)?;
        file.sync_data()?;
        took.push(t.elapsed().as_secs_f64());
    }
    took.sort_by(f64::total_cmp);
    Ok((took[500], took[990]))
}
