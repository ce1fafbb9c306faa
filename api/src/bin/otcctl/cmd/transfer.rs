//! `otcctl deposit` and `otcctl withdraw`: moving a user's coin (admin).

use otc_api::proto as pb;
use serde_json::json;

use super::Failure;
use crate::Cli;

#[derive(clap::Args)]
pub struct Transfer {
    /// The user's UUID.
    user: String,
    /// Asset code, e.g. EB.
    asset: String,
    /// Decimal amount, e.g. 100.5.
    amount: String,
    /// The external (chain or bank) reference; repeats are idempotent.
    #[arg(long = "ref")]
    external_ref: String,
}

/// Which way the coin moves.
#[derive(Clone, Copy)]
pub enum Direction {
    /// Credit the user (`deposit`).
    Deposit,
    /// Debit the user's available coin (`withdraw`).
    Withdraw,
}

/// Runs `deposit` or `withdraw`.
pub async fn run(cli: &Cli, t: &Transfer, direction: Direction) -> Result<(), Failure> {
    let mut c = super::admin(cli).await?;
    let req = pb::TransferRequest {
        request_id: format!("otcctl-{}", t.external_ref),
        user_id: t.user.clone(),
        asset: t.asset.clone(),
        amount: t.amount.clone(),
        external_ref: t.external_ref.clone(),
    };
    let deposit = matches!(direction, Direction::Deposit);
    let r = if deposit {
        c.deposit(req).await?
    } else {
        c.withdraw(req).await?
    };
    // A retry gets the first reply, marked by this header.
    let repeated = r
        .metadata()
        .get(otc_api::pipeline::REPLAYED_HEADER)
        .is_some_and(|v| v == "true");
    let b = r.into_inner().balance.unwrap_or_default();
    if cli.json {
        println!(
            "{}",
            json!({"user_id": t.user, "asset": b.asset, "available": b.available, "escrowed": b.escrowed, "repeated": repeated})
        );
    } else {
        let what = if deposit { "deposited" } else { "withdrew" };
        let again = if repeated {
            " (already done earlier; nothing changed)"
        } else {
            ""
        };
        outln!(
            "{what} {} {} for {}{again}; available {}, escrowed {}",
            t.amount,
            b.asset,
            t.user,
            b.available,
            b.escrowed
        );
    }
    Ok(())
}
