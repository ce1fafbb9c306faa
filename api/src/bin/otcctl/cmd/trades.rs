//! `otcctl trades`: trades.

use clap::Subcommand;
use otc_api::proto as pb;

use super::Failure;
use crate::Cli;
use crate::render::{print_trade, trade_json};

#[derive(Subcommand)]
pub enum TradesCmd {
    /// A trade with its timeline.
    Show {
        /// Trade id (T-n).
        id: String,
    },
}

/// Runs a `trades` command.
pub async fn run(cli: &Cli, cmd: &TradesCmd) -> Result<(), Failure> {
    match cmd {
        TradesCmd::Show { id } => {
            let mut c = super::support(cli).await?;
            let t = c
                .get_trade(pb::GetTradeRequest {
                    trade_id: id.clone(),
                })
                .await?
                .into_inner();
            if cli.json {
                println!("{}", trade_json(&t));
            } else {
                print_trade(&t);
            }
            Ok(())
        }
    }
}
