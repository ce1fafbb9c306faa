//! `otcd`: the server. Parse flags, set up logs and metrics, serve until
//! SIGTERM or SIGINT, then shut down cleanly (exit 0).

use clap::Parser;
use otc_api::server::{Listeners, ServerConfig, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = ServerConfig::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if cfg.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    if let Some(addr) = cfg.metrics_listen {
        let installed = metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install();
        match installed {
            Ok(()) => tracing::info!(%addr, "metrics at http://{addr}/metrics"),
            Err(e) => {
                eprintln!("otcd: cannot serve metrics on {addr}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let http = match tokio::net::TcpListener::bind(cfg.http_listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "otcd: cannot listen for payment gateways on {}: {e} (see --http-listen)",
                cfg.http_listen
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    // Tests read this line (before the next) to find the gateway port.
    if let Ok(addr) = http.local_addr() {
        println!("otcd gateway listener on {addr}");
    }
    let console = match tokio::net::TcpListener::bind(cfg.console_listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "otcd: cannot serve the web console on {}: {e} (see --console-listen)",
                cfg.console_listen
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    // Tests read this line (before the next) to find the console's port.
    if let Ok(addr) = console.local_addr() {
        println!("otcd web console on http://{addr}/");
    }
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("otcd: cannot listen on {}: {e}", cfg.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    // Tests read this line to find the port when they pass 127.0.0.1:0.
    if let Ok(addr) = listener.local_addr() {
        println!("otcd listening on {addr}");
    }
    let listeners = Listeners {
        grpc: listener,
        http,
        console,
    };
    match run(listeners, cfg, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otcd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
