//! `otcctl merchant`: partner merchants (admin).

use clap::Subcommand;
use otc_api::proto as pb;
use serde_json::json;

use super::Failure;
use crate::Cli;

#[derive(Subcommand)]
pub enum MerchantCmd {
    /// Make a user a partner merchant.
    Register {
        /// The user's UUID.
        user: String,
    },
}

/// Runs a `merchant` command.
pub async fn run(cli: &Cli, cmd: &MerchantCmd) -> Result<(), Failure> {
    match cmd {
        MerchantCmd::Register { user } => {
            let mut c = super::admin(cli).await?;
            c.register_merchant(pb::RegisterMerchantRequest {
                request_id: format!("otcctl-merchant-{user}"),
                user_id: user.clone(),
            })
            .await?;
            if cli.json {
                println!("{}", json!({"user_id": user, "merchant": true}));
            } else {
                outln!("{user} is a partner merchant");
            }
            Ok(())
        }
    }
}
