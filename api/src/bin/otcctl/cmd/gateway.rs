//! `otcctl gateway pay`: the sandbox gateway (SPEC §19). As the buyer
//! (`--token`), it asks for the trade's payment order, then signs a
//! notification with the sandbox gateway's key and POSTs it to the order's
//! notify URL, exactly as the channel's real gateway would. The order is kept
//! in the sandbox directory (`orders/T-n.json`), so a notification can be
//! sent again (`--txn`, a duplicate) once the trade is paid and the server
//! no longer gives out its order.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use otc_api::proto as pb;
use otc_gateway::sandbox::{SandboxCharset, SandboxGateway, SandboxPayment, SandboxStatus};
use rust_decimal::Decimal;
use serde_json::json;

use super::Failure;
use crate::Cli;
use crate::render::print_json_or;

#[derive(Subcommand)]
pub enum GatewayCmd {
    /// Pay a trade through its sandbox channel, as its buyer.
    Pay {
        /// The trade (T-n).
        trade: String,
        /// The sandbox directory `otcd --sandbox-channels` created.
        #[arg(long, env = "OTC_SANDBOX_DIR", default_value = "./sandbox")]
        sandbox_dir: PathBuf,
        /// Pay another amount than the order's (to see an anomaly).
        #[arg(long)]
        amount: Option<String>,
        /// The provider's transaction id (repeat one to send a duplicate).
        #[arg(long)]
        txn: Option<String>,
        /// The payment's status.
        #[arg(long, value_enum, default_value = "paid")]
        status: Status,
        /// Alipay only: send the notification in GBK.
        #[arg(long)]
        gbk: bool,
    },
}

/// A sandbox payment's status.
#[derive(Clone, Copy, ValueEnum)]
pub enum Status {
    /// Paid.
    Paid,
    /// Not paid yet.
    Pending,
    /// Closed unpaid.
    Closed,
}

/// Runs a `gateway` command.
pub async fn run(cli: &Cli, cmd: &GatewayCmd) -> Result<(), Failure> {
    let GatewayCmd::Pay {
        trade,
        sandbox_dir,
        amount,
        txn,
        status,
        gbk,
    } = cmd;
    let gateway = SandboxGateway::open(sandbox_dir)
        .map_err(|e| Failure(format!("--sandbox-dir {}: {e}", sandbox_dir.display())))?;
    let mut t = super::trading(cli).await?;
    let asked = t
        .create_payment_order(pb::GetTradeRequest {
            trade_id: trade.clone(),
        })
        .await;
    let order = match asked {
        Ok(order) => {
            let order = order.into_inner();
            keep_order(sandbox_dir, &order);
            order
        }
        // Paid (or ended) already: the order it was paid under, as the
        // gateway still holds it, for a retry of that notification.
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            kept_order(sandbox_dir, trade).ok_or(status)?
        }
        Err(status) => return Err(status.into()),
    };
    let amount: Decimal = amount
        .as_deref()
        .unwrap_or(&order.amount)
        .parse()
        .map_err(|_| Failure("--amount must be a decimal like 100.00".into()))?;
    let what = match status {
        Status::Paid => "paid",
        Status::Pending => "notified a pending payment of",
        Status::Closed => "notified a closed order of",
    };
    let txn_id = txn
        .clone()
        .unwrap_or_else(|| format!("SBX{}", uuid::Uuid::new_v4().simple()));
    let payment = SandboxPayment {
        txn_id: txn_id.clone(),
        reference: order.reference.clone(),
        amount,
        status: match status {
            Status::Paid => SandboxStatus::Paid,
            Status::Pending => SandboxStatus::Pending,
            Status::Closed => SandboxStatus::Closed,
        },
        charset: if *gbk {
            SandboxCharset::Gbk
        } else {
            SandboxCharset::Utf8
        },
        subject: format!("otc trade {}", order.trade_id),
    };
    let (headers, body) = gateway
        .notify(&order.channel, &payment, chrono::Utc::now())
        .map_err(Failure)?;
    let answer = otc_api::webhook::post(&order.notify_url, &headers, &body)
        .await
        .map_err(Failure)?;
    print_json_or(
        cli.json,
        json!({
            "trade_id": order.trade_id, "channel": order.channel, "reference": order.reference,
            "txn_id": txn_id, "amount": amount.to_string(), "notify_url": order.notify_url,
            "status": answer.status, "answer": answer.body,
        }),
        format!(
            "{} {what} {} {} through {} (txn {txn_id}): the server answered {} {}",
            order.trade_id, amount, order.fiat, order.channel, answer.status, answer.body
        ),
    );
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(Failure(format!(
            "the server refused the notification ({}): {}",
            answer.status, answer.body
        )))
    }
}

/// Where the order of `trade` is kept, under its id as the server writes
/// it (`T-n`, whether given as `T-012` or `12`); `None` for another id.
fn order_path(sandbox_dir: &std::path::Path, trade: &str) -> Option<PathBuf> {
    let digits = trade.strip_prefix("T-").unwrap_or(trade);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(sandbox_dir.join("orders").join(format!("T-{n}.json")))
}

/// Keeps `order` for a later notification of the same trade (best effort:
/// a sandbox directory that cannot hold it only loses that convenience).
fn keep_order(sandbox_dir: &std::path::Path, order: &pb::PaymentOrder) {
    let Some(path) = order_path(sandbox_dir, &order.trade_id) else {
        return;
    };
    let kept = json!({
        "trade_id": order.trade_id, "channel": order.channel, "reference": order.reference,
        "amount": order.amount, "fiat": order.fiat, "notify_url": order.notify_url,
    });
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(path, kept.to_string());
}

/// The order kept for `trade` by an earlier `gateway pay`.
fn kept_order(sandbox_dir: &std::path::Path, trade: &str) -> Option<pb::PaymentOrder> {
    let text = std::fs::read_to_string(order_path(sandbox_dir, trade)?).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let field = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Some(pb::PaymentOrder {
        trade_id: field("trade_id")?,
        channel: field("channel")?,
        reference: field("reference")?,
        amount: field("amount")?,
        fiat: field("fiat")?,
        notify_url: field("notify_url")?,
        ..pb::PaymentOrder::default()
    })
}
