//! `otcd`: configuration and `run(listener, config, shutdown)`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use otc_engine::EngineConfig;
use otc_storage::{Writer, WriterOptions};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::auth::Authenticator;
use crate::core::{Core, HashCost, clock_now};
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::merchant_service_server::MerchantServiceServer;
use crate::proto::support_service_server::SupportServiceServer;
use crate::proto::trading_service_server::TradingServiceServer;
use crate::svc_admin::{Admin, Merchants};
use crate::svc_support::Support;
use crate::svc_trading::Trading;

/// Largest request or response message (attachments are up to 5 MiB).
pub const MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Requests served at once on one connection.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;
/// Deadline for one unary request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepted connections with Nagle's algorithm off: small gRPC frames must
/// not wait for a delayed ACK (it added ~40 ms to every call).
pub fn nodelay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Parses "500ms", "10s", "30m", "24h".
///
/// # Errors
/// A message saying the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 500ms, 10s, 30m or 24h");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(bad()),
    };
    if ms == 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// Everything `otcd` can be told (flags, or the environment).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "otcd",
    version,
    about = "The otc P2P OTC trading server (gRPC, embedded sled store)"
)]
pub struct ServerConfig {
    /// Address to serve gRPC on.
    #[arg(long, env = "OTC_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Directory of the sled store (created if missing).
    #[arg(long, env = "OTC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HS256 secret for bearer tokens; without one, a secret is created in the data dir.
    #[arg(long, env = "OTC_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Address for the Prometheus metrics endpoint (off when unset).
    #[arg(long, env = "OTC_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Time after "paid" before either side may appeal.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub appeal_after: Duration,
    /// Time after "paid" when an unreleased trade is appealed by the system.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub auto_appeal_after: Duration,
    /// Payment window of fast-match trades.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub merchant_window: Duration,
    /// Payment window of listings that name none.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub payment_window_default: Duration,
    /// Shortest payment window a listing may set.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub payment_window_min: Duration,
    /// Longest payment window a listing may set.
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    pub payment_window_max: Duration,
    /// Life of a resting buy that names none.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub resting_buy_default: Duration,
    /// Requests waiting for the writer before RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 65_536)]
    pub queue_len: usize,
    /// argon2id memory cost for fund passwords, KiB.
    #[arg(long, default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id passes for fund passwords.
    #[arg(long, default_value_t = 2)]
    pub argon2_iterations: u32,
    /// Journal entries between snapshots.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_every: u64,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

impl ServerConfig {
    /// The engine configuration these flags describe.
    ///
    /// # Errors
    /// Incoherent windows (e.g. a minimum above the maximum).
    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut c = EngineConfig::default();
        c.appeal_after_ms = ms(self.appeal_after);
        c.auto_appeal_after_ms = ms(self.auto_appeal_after);
        c.merchant_window_ms = ms(self.merchant_window);
        c.payment_window_ms_default = ms(self.payment_window_default);
        c.payment_window_ms_min = ms(self.payment_window_min);
        c.payment_window_ms_max = ms(self.payment_window_max);
        c.resting_buy_ms_default = ms(self.resting_buy_default);
        c.resting_buy_ms_max = c.resting_buy_ms_max.max(c.resting_buy_ms_default);
        c.validate()?;
        Ok(c)
    }
}

/// The token secret: from the flag, else from `<data>/jwt-secret`, created on
/// first start (then the log says how to mint tokens).
fn secret(cfg: &ServerConfig) -> std::io::Result<Vec<u8>> {
    if let Some(s) = &cfg.jwt_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = cfg.data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(&cfg.data_dir)?;
    let s = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&path, &s)?;
    tracing::warn!(
        path = %path.display(),
        "no --jwt-secret given: created one; mint a development token with \
         `cargo run --bin otcctl -- token mint --secret $(cat {}) --user <uuid> --role user`",
        path.display()
    );
    Ok(s.into_bytes())
}

fn open_writer(dir: &Path, config: EngineConfig, snapshot_every: u64) -> Result<Writer, String> {
    let options = WriterOptions {
        snapshot_every,
        ..WriterOptions::default()
    };
    Writer::open(dir, config, options)
        .map_err(|e| format!("cannot open the store in {}: {e}", dir.display()))
}

/// Serves until `shutdown` completes: opens the store (recovering), fires
/// overdue deadlines, then reports SERVING. On shutdown: NOT_SERVING, finish
/// in-flight calls, end streams, drain the writer, snapshot.
///
/// # Errors
/// The store cannot be opened or the configuration is incoherent.
pub async fn run(
    listener: TcpListener,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let engine_config = cfg.engine_config()?;
    let secret =
        secret(&cfg).map_err(|e| format!("cannot read or create the token secret: {e}"))?;
    let (dir, every) = (cfg.data_dir.clone(), cfg.snapshot_every);
    let started = std::time::Instant::now();
    let mut writer = tokio::task::spawn_blocking(move || open_writer(&dir, engine_config, every))
        .await
        .map_err(|e| e.to_string())??;
    let overdue = writer
        .fire_due(clock_now())
        .map_err(|e| format!("firing overdue deadlines failed: {e}"))?;
    tracing::info!(
        recovered_in_ms = started.elapsed().as_millis() as u64,
        last_seq = writer.engine().last_seq(),
        overdue_fired = overdue.len(),
        "store open"
    );
    let hash_cost = HashCost {
        memory_kib: cfg.argon2_memory_kib,
        iterations: cfg.argon2_iterations,
    };
    let (core, writer_thread) = Core::start(
        writer,
        Authenticator::new(&secret),
        hash_cost,
        cfg.queue_len,
    );

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<TradingServiceServer<Trading>>()
        .await;
    reporter
        .set_serving::<MerchantServiceServer<Merchants>>()
        .await;
    reporter
        .set_serving::<SupportServiceServer<Support>>()
        .await;
    reporter.set_serving::<AdminServiceServer<Admin>>().await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| e.to_string())?;

    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "serving gRPC");
    let closing = core.closing.clone();
    let stop_reporter = reporter.clone();
    let on_shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: NOT_SERVING, finishing in-flight calls");
        stop_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        stop_reporter
            .set_not_serving::<TradingServiceServer<Trading>>()
            .await;
        let _ = closing.send(true);
    };
    let serve = Server::builder()
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .timeout(REQUEST_TIMEOUT)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            TradingServiceServer::new(Trading {
                core: Arc::clone(&core),
            })
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(MerchantServiceServer::new(Merchants {
            core: Arc::clone(&core),
        }))
        .add_service(
            SupportServiceServer::new(Support {
                core: Arc::clone(&core),
            })
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(AdminServiceServer::new(Admin {
            core: Arc::clone(&core),
        }))
        .serve_with_incoming_shutdown(nodelay(listener), on_shutdown);
    let result = serve.await.map_err(|e| format!("server failed: {e}"));
    // Every service is dropped; dropping the last core closes the queue and
    // the writer drains, snapshots and exits.
    drop(core);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the writer thread panicked".to_string())?;
    tracing::info!("stopped cleanly");
    result
}
