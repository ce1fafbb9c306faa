//! `otcctl`: the customer-service and back-office console, over the same gRPC
//! API the apps use. Human tables by default, `--json` for scripts.
//!
//! `main.rs` holds the top-level flags and the dispatch; each command group
//! lives in [`cmd`] (its clap subcommand and its handler), the output helpers
//! in [`render`], and the gRPC client in `otc_api::client`.

#[macro_use]
mod render;
mod cmd;

use clap::{Parser, Subcommand};
use serde_json::json;

use cmd::Failure;
use cmd::appeals::AppealsCmd;
use cmd::channels::{AnomaliesCmd, ChannelsCmd};
use cmd::evidence::EvidenceCmd;
use cmd::gateway::GatewayCmd;
use cmd::merchant::MerchantCmd;
use cmd::price::PriceCmd;
use cmd::recon::{ReconCmd, StatementArgs};
use cmd::token::TokenCmd;
use cmd::trades::TradesCmd;
use cmd::transfer::{Direction, Transfer};
use cmd::user::UserCmd;

#[derive(Parser)]
#[command(
    name = "otcctl",
    version,
    about = "Console for otc customer service and back office"
)]
struct Cli {
    /// Server URL.
    #[arg(
        long,
        env = "OTC_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    server: String,
    /// Bearer token (JWT).
    #[arg(long, env = "OTC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The appeal queue (support, support_viewer).
    #[command(subcommand)]
    Appeals(AppealsCmd),
    /// Evidence files.
    #[command(subcommand)]
    Evidence(EvidenceCmd),
    /// Trades.
    #[command(subcommand)]
    Trades(TradesCmd),
    /// Credit a user's coin (admin).
    Deposit(Transfer),
    /// Debit a user's available coin (admin).
    Withdraw(Transfer),
    /// Partner merchants (admin).
    #[command(subcommand)]
    Merchant(MerchantCmd),
    /// A user's own actions (for demos and the walkthrough): methods,
    /// password, listings, buying, paying, releasing, appealing.
    #[command(subcommand)]
    User(UserCmd),
    /// Payment channels (admin): list, assign to a seller or merchant.
    #[command(subcommand)]
    Channels(ChannelsCmd),
    /// Payment anomalies (support): list, resolve with a note.
    #[command(subcommand)]
    Anomalies(AnomaliesCmd),
    /// The sandbox gateway: pay a trade as its channel's gateway would notify.
    #[command(subcommand)]
    Gateway(GatewayCmd),
    /// Reference prices for floating listings (admin, price_feed).
    #[command(subcommand)]
    Price(PriceCmd),
    /// Reconciliation against gateways' bills (support).
    #[command(subcommand)]
    Recon(ReconCmd),
    /// An asset's daily statement, as CSV (support, admin).
    Statement(StatementArgs),
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Cmd::Token(cmd) => cmd::token::run(&cli, cmd),
        Cmd::Appeals(cmd) => cmd::appeals::run(&cli, cmd).await,
        Cmd::User(cmd) => cmd::user::run(&cli, cmd).await,
        Cmd::Evidence(cmd) => cmd::evidence::run(&cli, cmd).await,
        Cmd::Trades(cmd) => cmd::trades::run(&cli, cmd).await,
        Cmd::Deposit(t) => cmd::transfer::run(&cli, t, Direction::Deposit).await,
        Cmd::Withdraw(t) => cmd::transfer::run(&cli, t, Direction::Withdraw).await,
        Cmd::Merchant(cmd) => cmd::merchant::run(&cli, cmd).await,
        Cmd::Channels(cmd) => cmd::channels::run_channels(&cli, cmd).await,
        Cmd::Anomalies(cmd) => cmd::channels::run_anomalies(&cli, cmd).await,
        Cmd::Gateway(cmd) => cmd::gateway::run(&cli, cmd).await,
        Cmd::Price(cmd) => cmd::price::run(&cli, cmd).await,
        Cmd::Recon(cmd) => cmd::recon::run(&cli, cmd).await,
        Cmd::Statement(a) => cmd::recon::statement(&cli, a).await,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            if json {
                eprintln!("{}", json!({ "error": msg }));
            } else {
                eprintln!("otcctl: {msg}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
