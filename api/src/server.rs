//! `otcd`: `run(listeners, config, shutdown)`; the flags are in
//! [`crate::config`].

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use otc_engine::EngineConfig;
use otc_storage::{Writer, WriterOptions};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::auth::Authenticator;
pub use crate::config::{ServerConfig, parse_duration, parse_size};
use crate::core::{Core, clock_now};
use crate::passwords::{FundPasswords, HashCost};
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::merchant_service_server::MerchantServiceServer;
use crate::proto::support_service_server::SupportServiceServer;
use crate::proto::trading_service_server::TradingServiceServer;
use crate::svc_admin::{Admin, Merchants};
use crate::svc_support::Support;
use crate::svc_trading::Trading;

/// Room for the rest of a message beside its attachment.
pub const MESSAGE_OVERHEAD_BYTES: usize = 1024 * 1024;
/// Requests served at once on one connection.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;
/// Deadline for one request (but a streamed bill, whose chunks must come
/// each within [`crate::recon::CHUNK_WITHIN`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `otcd` listens: gRPC, the gateway listener, the web console.
pub struct Listeners {
    /// gRPC (`--listen`).
    pub grpc: TcpListener,
    /// Gateways' notifications (`--http-listen`).
    pub http: TcpListener,
    /// The web console (`--console-listen`).
    pub console: TcpListener,
}

/// The four services, built once and served both as gRPC and, to the web
/// console, as gRPC-Web: one set of handlers, one set of rules.
struct Services {
    trading: TradingServiceServer<Trading>,
    merchant: MerchantServiceServer<Merchants>,
    support: SupportServiceServer<Support>,
    admin: AdminServiceServer<Admin>,
}

impl Services {
    fn new(
        core: &Arc<Core>,
        channels: &Arc<crate::channels::Channels>,
        cfg: &ServerConfig,
    ) -> Self {
        // A message may carry one attachment of the configured size; one
        // limit for every service, which a refusal names.
        let message_max = cfg.message_max();
        Services {
            trading: TradingServiceServer::new(Trading {
                core: Arc::clone(core),
                channels: Arc::clone(channels),
            })
            .max_decoding_message_size(message_max)
            .max_encoding_message_size(message_max),
            merchant: MerchantServiceServer::new(Merchants {
                core: Arc::clone(core),
            })
            .max_decoding_message_size(message_max)
            .max_encoding_message_size(message_max),
            support: SupportServiceServer::new(Support {
                core: Arc::clone(core),
                channels: Arc::clone(channels),
                recon: crate::recon::ReconConfig {
                    bill_max: cfg.bill_max,
                    window_ms: i64::try_from(cfg.recon_window.as_millis()).unwrap_or(i64::MAX),
                },
            })
            .max_decoding_message_size(message_max)
            .max_encoding_message_size(message_max),
            admin: AdminServiceServer::new(Admin {
                core: Arc::clone(core),
                channels: Arc::clone(channels),
            })
            .max_decoding_message_size(message_max)
            .max_encoding_message_size(message_max),
        }
    }
}

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

/// The gRPC listener's connections, within the budget of open connections
/// ([`crate::listen`]), with Nagle's algorithm off, as otcd serves them: a
/// reply below 1 KiB and its trailers leave in one write, and the replies
/// ready with it share that write ([`crate::conn`]).
fn grpc_incoming(
    listener: TcpListener,
    connections: Arc<crate::listen::Connections>,
) -> impl tokio_stream::Stream<Item = std::io::Result<crate::conn::Conn<crate::listen::Admitted>>> {
    crate::listen::incoming(
        listener,
        connections,
        |tcp| {
            let _ = tcp.set_nodelay(true);
        },
        crate::conn::Conn::new,
    )
}

/// Turns on TCP keepalive: the first probe after `idle`, then probes
/// spread over `timeout`, the connection closed when three go unanswered.
/// Probes run only while nothing sent waits for its acknowledgement, so
/// data unacknowledged (or unsent) for `idle + timeout` closes it too: a
/// stream still pushing events to a peer that vanished.
fn tcp_keepalive(
    tcp: &tokio::net::TcpStream,
    idle: Duration,
    timeout: Duration,
) -> std::io::Result<()> {
    let probes = socket2::TcpKeepalive::new()
        .with_time(idle.max(Duration::from_secs(1)))
        .with_interval((timeout / 3).max(Duration::from_secs(1)))
        .with_retries(3);
    let socket = socket2::SockRef::from(tcp);
    socket.set_tcp_keepalive(&probes)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(idle + timeout))?;
    Ok(())
}

fn open_writer(dir: &Path, config: EngineConfig, options: WriterOptions) -> Result<Writer, String> {
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
    listeners: Listeners,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let Listeners {
        grpc: listener,
        http,
        console,
    } = listeners;
    let engine_config = cfg.engine_config()?;
    let upload_budget = Arc::new(crate::gate::Budget::new(
        cfg.upload_budget()?,
        u64::try_from(cfg.message_max()).unwrap_or(u64::MAX),
    ));
    let budgets = crate::listen::Budgets::fit(cfg.connections_max)?;
    let connections = crate::listen::Connections::new(budgets.grpc);

    let secret = crate::secret_file::token_secret(&cfg)
        .map_err(|e| format!("cannot read or create the token secret: {e}"))?;
    let dir = cfg.data_dir.clone();
    let options = cfg.writer_options()?;
    let started = std::time::Instant::now();
    let mut writer = tokio::task::spawn_blocking(move || open_writer(&dir, engine_config, options))
        .await
        .map_err(|e| e.to_string())??;
    // After the store: the data dir exists, so the sandbox can be kept out of it.
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    let channels = Arc::new(crate::channels::from_config(&cfg, http_addr)?);
    let overdue = writer
        .fire_due(clock_now())
        .map_err(|e| format!("firing overdue deadlines failed: {e}"))?;
    let journal = &writer.store().recovered;
    if let Some(why) = &journal.after_failure {
        tracing::warn!(
            last_failure = %why,
            "the last run stopped after a storage failure: the store was read back from the device, not the page cache"
        );
    }
    if let Some((segment, offset)) = &journal.torn_tail {
        tracing::warn!(
            segment = %segment.display(),
            offset,
            "the journal's last record was torn (written, never acknowledged): dropped"
        );
    }
    tracing::info!(
        journal_replayed = journal.replayed,
        recovered_in_ms = started.elapsed().as_millis() as u64,
        last_seq = writer.engine().last_seq(),
        overdue_fired = overdue.len(),
        "store open"
    );
    let hash_cost = HashCost {
        memory_kib: cfg.argon2_memory_kib,
        iterations: cfg.argon2_iterations,
    };
    let passwords = FundPasswords::new(hash_cost, cfg.fund_password_remember, &secret)
        .map_err(|e| e.to_string())?
        .with_retry_limit(cfg.fund_password_attempts, cfg.fund_password_lock);
    let (core, writer_thread) = Core::start(
        writer,
        Authenticator::new(&secret),
        passwords,
        cfg.queue_len,
        cfg.failpoint,
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
    let gateways = crate::http::Gateways {
        core: Arc::clone(&core),
        channels: Arc::clone(&channels),
    };
    // The verifiers read at most their own bound; a larger flag cannot raise it.
    let body_max = usize::try_from(cfg.http_body_max)
        .unwrap_or(usize::MAX)
        .min(otc_gateway::BODY_BYTES_MAX);
    let services = Services::new(&core, &channels, &cfg);
    let gate = crate::gate::GateLayer::new(Arc::new(core.auth.clone()), upload_budget);
    let http_closing = core.closing.subscribe();
    let http_connections = crate::listen::Connections::new(budgets.side);
    let http_keepalive = (cfg.keepalive, cfg.keepalive_timeout);
    let http_server = tokio::spawn(async move {
        let app = crate::http::router(gateways, body_max);
        let http = crate::listen::Limited {
            listener: http,
            connections: http_connections,
            name: "gateway",
            // A gateway whose link died mid-request is noticed, as on the console.
            setup: Box::new(move |tcp| {
                let _ = tcp_keepalive(tcp, http_keepalive.0, http_keepalive.1);
            }),
            http1_only: true,
        };
        crate::listen::serve_http(http, app, http_keepalive, http_closing).await
    });
    let console_closing = core.closing.subscribe();
    let console_routes = tonic::service::Routes::new(services.trading.clone())
        .add_service(services.merchant.clone())
        .add_service(services.support.clone())
        .add_service(services.admin.clone());
    let limits = crate::console::Limits {
        page_size_max: cfg.page_size_max,
        text_chars_max: cfg.text_chars_max,
    };
    let console_gate = gate.clone().with_deadline(REQUEST_TIMEOUT);
    let console_connections = crate::listen::Connections::new(budgets.side);
    let (keepalive, keepalive_timeout) = (cfg.keepalive, cfg.keepalive_timeout);
    let console_server = tokio::spawn(async move {
        let app = crate::console::router(console_routes, console_gate, limits);
        let console = crate::listen::Limited {
            listener: console,
            connections: console_connections,
            name: "console",
            // Small gRPC-Web frames must not wait for a delayed ACK either.
            setup: Box::new(move |tcp| {
                let _ = tcp.set_nodelay(true);
                let _ = tcp_keepalive(tcp, keepalive, keepalive_timeout);
            }),
            http1_only: false,
        };
        crate::listen::serve_http(
            console,
            app,
            (keepalive, keepalive_timeout),
            console_closing,
        )
        .await
    });
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
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive_timeout))
        // The gate's deadline, not tonic's `timeout`: a streamed bill is
        // exempt (it arrives for as long as its chunks keep coming), which
        // tonic's, applied to every call, cannot say. A client's own
        // `grpc-timeout` still holds.
        .layer(gate.with_deadline(REQUEST_TIMEOUT))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(services.trading)
        .add_service(services.merchant)
        .add_service(services.support)
        .add_service(services.admin)
        .serve_with_incoming_shutdown(grpc_incoming(listener, connections), on_shutdown);
    let aborts = [http_server.abort_handle(), console_server.abort_handle()];
    let serve_closing = core.closing.clone();
    let listeners = async move {
        let result = serve.await.map_err(|e| format!("server failed: {e}"));
        // A gRPC listener that failed before any signal stops the others too.
        let _ = serve_closing.send(true);
        // The HTTP listener stops on the same signal; its handlers hold the core.
        for (name, task) in [("HTTP", http_server), ("console", console_server)] {
            if let Err(e) = task.await {
                tracing::error!("the {name} listener panicked: {e}");
            }
        }
        result
    };
    // A connection that does not end (a client that stopped reading an
    // event stream: h2 cannot send the stream's end) is left behind after
    // the grace.
    let grace = cfg.shutdown_grace;
    let mut grace_closing = core.closing.subscribe();
    let grace_over = async move {
        let _ = grace_closing.wait_for(|closing| *closing).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = listeners => result,
        () = grace_over => {
            tracing::warn!(?grace, "connections still open after the shutdown grace; stopping without them");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
            Ok(())
        }
    };
    // Every service is dropped, or the writer is told to stop though some
    // are not: the writer drains what it took, snapshots and exits.
    core.stop_writer();
    drop(core);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the writer thread panicked".to_string())?;
    tracing::info!("stopped cleanly");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_human_units() {
        assert_eq!(parse_size("5MiB"), Ok(5 * 1024 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert!(parse_size("5MB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn storage_flags_reach_the_writer_and_a_repeated_flag_takes_its_last_value() {
        use clap::Parser;
        let cfg = ServerConfig::try_parse_from([
            "otcd",
            "--sled-flush-every",
            "250ms",
            "--console-listen",
            "127.0.0.1:1",
            "--console-listen",
            "127.0.0.1:2",
        ])
        .expect("flags");
        assert_eq!(cfg.console_listen.port(), 2);
        let w = cfg.writer_options().expect("writer options");
        assert_eq!(w.store.flush_every, Some(Duration::from_millis(250)));
    }

    #[test]
    fn every_limit_flag_reaches_the_engine_config() {
        use clap::Parser;
        let cfg = ServerConfig::try_parse_from([
            "otcd",
            "--fund-password-attempts",
            "3",
            "--fund-password-lock",
            "2m",
            "--buyer-cancels-per-day",
            "7",
            "--listings-per-user",
            "4",
            "--resting-buys-per-user",
            "2",
            "--methods-per-user",
            "6",
            "--page-size-max",
            "50",
            "--streams-per-user",
            "1",
            "--attachment-max",
            "64KiB",
            "--attachments-per-appeal",
            "3",
            "--chat-chars-max",
            "100",
            "--chat-messages-per-trade",
            "40",
            "--chat-files-per-trade",
            "4",
            "--event-retention",
            "2d",
            "--resting-buy-max",
            "2h",
            "--fast-match-tries",
            "5",
            "--methods-per-listing",
            "2",
            "--blocks-per-user",
            "9",
            "--quotes-per-merchant",
            "8",
            "--evidence-per-appeal",
            "12",
            "--text-chars-max",
            "300",
            "--open-buys-per-user",
            "4",
        ])
        .expect("flags");
        let c = cfg.engine_config().expect("coherent");
        assert_eq!(
            (
                c.fund_password_attempts_max,
                c.fund_password_lock_ms,
                c.buyer_cancels_per_day_max,
                c.live_listings_per_user_max,
                c.resting_buys_per_user_max,
                c.methods_per_user_max,
            ),
            (3, 120_000, 7, 4, 2, 6)
        );
        assert_eq!(
            (
                c.page_size_max,
                c.subscribers_per_user_max,
                c.attachment_bytes_max,
                c.attachments_per_appeal_max,
                c.chat_chars_max,
                c.event_retention_ms,
            ),
            (50, 1, 65_536, 3, 100, 2 * 86_400_000)
        );
        assert_eq!(
            (c.chat_messages_per_trade_max, c.chat_files_per_trade_max),
            (40, 4)
        );
        assert_eq!(
            (
                c.resting_buy_ms_max,
                c.fast_match_tries_max,
                c.methods_per_listing_max,
                c.blocks_per_user_max,
                c.quotes_per_merchant_max,
                c.evidence_per_appeal_max,
                c.text_chars_max,
                c.open_buys_per_user_max,
            ),
            (7_200_000, 5, 2, 9, 8, 12, 300, 4)
        );
        // Files are evidence: more of them than evidence items is refused,
        // not quietly capped by the other bound.
        let files = ServerConfig::try_parse_from(["otcd", "--attachments-per-appeal", "60"])
            .expect("flags");
        let err = files.engine_config().expect_err("over the evidence bound");
        assert!(err.contains("evidence_per_appeal"), "{err}");
        let short =
            ServerConfig::try_parse_from(["otcd", "--request-id-retention", "1h"]).expect("flags");
        let err = short.writer_options().expect_err("under a day");
        assert!(err.contains("at least 24h") && err.contains("1h"), "{err}");
        let zero = ServerConfig::try_parse_from(["otcd", "--page-size-max", "0"]).expect("flags");
        let err = zero.engine_config().expect_err("zero page size");
        assert!(err.contains("page_size"), "{err}");
    }
}
