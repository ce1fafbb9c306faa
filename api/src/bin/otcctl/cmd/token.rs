//! `otcctl token`: development tokens.

use clap::Subcommand;
use otc_api::auth::{Role, mint};
use serde_json::json;

use super::Failure;
use crate::Cli;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Print a signed token.
    Mint {
        /// The server's HS256 secret.
        #[arg(long, env = "OTC_JWT_SECRET", hide_env_values = true)]
        secret: String,
        /// The user's UUID.
        #[arg(long)]
        user: uuid::Uuid,
        /// user, merchant, support, support_viewer or admin.
        #[arg(long)]
        role: String,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// Runs a `token` command (offline: no server involved).
pub fn run(cli: &Cli, cmd: &TokenCmd) -> Result<(), Failure> {
    match cmd {
        TokenCmd::Mint {
            secret,
            user,
            role,
            ttl,
        } => {
            let role = Role::parse(role).map_err(Failure)?;
            let ttl = otc_api::server::parse_duration(ttl).map_err(Failure)?;
            let token = mint(secret.as_bytes(), *user, role, ttl.as_secs()).map_err(Failure)?;
            if cli.json {
                println!("{}", json!({ "token": token }));
            } else {
                println!("{token}");
            }
            Ok(())
        }
    }
}
