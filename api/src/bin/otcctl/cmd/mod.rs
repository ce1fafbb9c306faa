//! The command groups, one module each: its clap subcommand and its handler.
//! Here: the failure every handler reports, and the service clients built
//! from `--server` and `--token` with `otc_api::client`.

pub mod appeals;
pub mod channels;
pub mod evidence;
pub mod gateway;
pub mod merchant;
pub mod price;
pub mod recon;
pub mod token;
pub mod trades;
pub mod transfer;
pub mod user;

use std::time::Duration;

use otc_api::client::{self, Authed, ConnectError, InvalidToken};
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::support_service_client::SupportServiceClient;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tonic::transport::Channel;

use crate::Cli;

/// A failure to report: the server's message, or ours.
pub struct Failure(pub String);

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        // A refusal stored for the request id (`otcctl` derives some ids
        // from what it was given, e.g. `--ref`) says it is not a new one.
        let replayed = s
            .metadata()
            .get(otc_api::pipeline::REPLAYED_HEADER)
            .is_some();
        let note = if replayed {
            " (the first answer to this same request, replayed: a new attempt needs a new \
             request, e.g. another --ref for a transfer)"
        } else {
            ""
        };
        Failure(format!("{:?}: {}{note}", s.code(), s.message()))
    }
}

impl From<InvalidToken> for Failure {
    fn from(e: InvalidToken) -> Self {
        Failure(e.to_string())
    }
}

/// The token to send and a channel to the server: the token is required
/// before the server is dialled.
async fn connect(cli: &Cli) -> Result<(Channel, &str), Failure> {
    let token = cli
        .token
        .as_deref()
        .ok_or_else(|| Failure("no token: pass --token or set OTC_TOKEN".into()))?;
    let channel = client::connect(&cli.server, Some(Duration::from_secs(5)))
        .await
        .map_err(|e| match e {
            ConnectError::BadUrl(e) => Failure(format!("bad --server: {e}")),
            ConnectError::Unreachable(e) => Failure(format!("cannot reach {}: {e}", cli.server)),
        })?;
    Ok((channel, token))
}

/// The trading service, as the `--token` user.
async fn trading(cli: &Cli) -> Result<TradingServiceClient<Authed>, Failure> {
    let (channel, token) = connect(cli).await?;
    Ok(client::trading(channel, token)?)
}

/// The support service, as the `--token` agent.
async fn support(cli: &Cli) -> Result<SupportServiceClient<Authed>, Failure> {
    let (channel, token) = connect(cli).await?;
    Ok(client::support(channel, token)?)
}

/// The admin service, as the `--token` admin.
async fn admin(cli: &Cli) -> Result<AdminServiceClient<Authed>, Failure> {
    let (channel, token) = connect(cli).await?;
    Ok(client::admin(channel, token)?)
}

/// A fresh request id.
fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}
