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
        /// The server's HS256 secret (or --secret-file; without either,
        /// OTC_JWT_SECRET).
        #[arg(long, conflicts_with = "secret_file")]
        secret: Option<String>,
        /// A file holding it, as otcd keeps it (`secrets/jwt-secret`): off the
        /// command line, where other users' `ps` would show it.
        #[arg(long)]
        secret_file: Option<std::path::PathBuf>,
        /// The user's UUID.
        #[arg(long)]
        user: uuid::Uuid,
        /// user, merchant, support, support_viewer, admin or price_feed.
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
            secret_file,
            user,
            role,
            ttl,
        } => {
            let secret = match (secret, secret_file) {
                (Some(s), _) => s.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| Failure(format!("--secret-file {}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
                // A flag given wins over the environment.
                (None, None) => std::env::var("OTC_JWT_SECRET").map_err(|_| {
                    Failure("give --secret-file (or --secret, or OTC_JWT_SECRET)".into())
                })?,
            };
            if secret.is_empty() {
                return Err(Failure(
                    "the secret is empty (otcd refuses one: any token would verify)".into(),
                ));
            }
            let role = Role::parse(role).map_err(Failure)?;
            let ttl = otc_api::server::parse_duration(ttl).map_err(Failure)?;
            let token = mint(secret.as_bytes(), *user, role, ttl.as_secs()).map_err(Failure)?;
            if cli.json {
                println!("{}", json!({ "token": token }));
            } else {
                outln!("{token}");
            }
            Ok(())
        }
    }
}
