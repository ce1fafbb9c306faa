//! `otcctl price`: a market's reference price (SPEC §22), for admins and
//! the `price_feed` role.

use clap::Subcommand;
use otc_api::proto as pb;
use serde_json::json;

use super::{Failure, rid};
use crate::Cli;
use crate::render::print_json_or;

#[derive(Subcommand)]
pub enum PriceCmd {
    /// Set a market's reference price; floating listings follow it.
    Set {
        /// Asset code.
        #[arg(long, default_value = "EB")]
        asset: String,
        /// Fiat code.
        #[arg(long, default_value = "CNY")]
        fiat: String,
        /// Fiat per coin.
        #[arg(long)]
        price: String,
        /// Where it came from.
        #[arg(long)]
        source: String,
    },
}

/// Runs a `price` command.
pub async fn run(cli: &Cli, cmd: &PriceCmd) -> Result<(), Failure> {
    let PriceCmd::Set {
        asset,
        fiat,
        price,
        source,
    } = cmd;
    let mut c = super::admin(cli).await?;
    let r = c
        .set_reference_price(pb::SetReferencePriceRequest {
            request_id: rid(),
            asset: asset.clone(),
            fiat: fiat.clone(),
            price: price.clone(),
            source: source.clone(),
        })
        .await?
        .into_inner();
    print_json_or(
        cli.json,
        json!({"asset": asset, "fiat": fiat, "price": price, "seq": r.last_seq}),
        format!("{asset}/{fiat} reference set to {price} ({source})"),
    );
    Ok(())
}
