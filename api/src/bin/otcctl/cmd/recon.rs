//! `otcctl recon` (support: importing a gateway's bill, the mistakes it
//! found, closing them or applying a missed payment) and `otcctl statement`
//! (the daily statement of an asset, as CSV) — SPEC §20.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use otc_api::proto as pb;
use serde_json::{Value, json};

use super::{Failure, rid};
use crate::Cli;
use crate::render::{print_json_or, table, ts};

/// Bytes per chunk of an imported bill.
const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Subcommand)]
pub enum ReconCmd {
    /// Import a gateway's bill for a channel and a day.
    Import {
        /// The channel.
        #[arg(long)]
        channel: String,
        /// The bill's day, YYYY-MM-DD (the gateway's time zone).
        #[arg(long)]
        date: String,
        /// The bill file as the gateway delivered it.
        file: PathBuf,
    },
    /// Reconciliation mistakes, oldest first (open ones unless --all).
    Mistakes {
        /// Handled ones too.
        #[arg(long)]
        all: bool,
        /// Most to show (0: the server's default page, within its
        /// --page-size-max).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Close a mistake with a note of what was done.
    Close {
        /// The mistake (R-n).
        id: String,
        /// What was done (mandatory).
        #[arg(long)]
        note: String,
    },
    /// Apply a payment missing here from the bill (paid, as a verified notification).
    Apply {
        /// The mistake (R-n).
        id: String,
    },
}

/// `otcctl statement`.
#[derive(Args)]
pub struct StatementArgs {
    /// Asset code.
    #[arg(long, default_value = "EB")]
    asset: String,
    /// The UTC day, YYYY-MM-DD.
    #[arg(long)]
    date: String,
}

fn mistake_json(m: &pb::ReconMistake) -> Value {
    json!({
        "id": m.id, "kind": m.kind, "channel": m.channel, "date": m.date, "txn_id": m.txn_id,
        "reference": m.reference, "bill_reference": m.bill_reference, "ours_amount": m.ours_amount, "bill_amount": m.bill_amount,
        "bill_status": m.bill_status, "at": ts(m.at.as_ref()), "handled": m.handled, "note": m.note,
    })
}

fn mistake_rows(ms: &[pb::ReconMistake]) {
    let rows: Vec<Vec<String>> = ms
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.kind.clone(),
                m.txn_id.clone(),
                if m.bill_reference.is_empty() {
                    m.reference.clone()
                } else {
                    format!("{} (bill: {})", m.reference, m.bill_reference)
                },
                m.ours_amount.clone(),
                m.bill_amount.clone(),
                if m.handled { "handled" } else { "open" }.into(),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "TXN", "REFERENCE", "OURS", "BILL", "STATUS"],
        &rows,
    );
}

/// Runs a `recon` command.
pub async fn run(cli: &Cli, cmd: &ReconCmd) -> Result<(), Failure> {
    let mut c = super::support(cli).await?;
    match cmd {
        ReconCmd::Import {
            channel,
            date,
            file,
        } => {
            let mut f = std::fs::File::open(file)
                .map_err(|e| Failure(format!("{}: {e}", file.display())))?;
            let mut chunks = Vec::new();
            loop {
                let mut buf = vec![0u8; CHUNK_BYTES];
                let n = f
                    .read(&mut buf)
                    .map_err(|e| Failure(format!("{}: {e}", file.display())))?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                chunks.push(pb::BillChunk {
                    data: buf,
                    ..pb::BillChunk::default()
                });
            }
            let first = pb::BillChunk {
                request_id: rid(),
                channel: channel.clone(),
                date: date.clone(),
                data: Vec::new(),
            };
            let stream = tokio_stream::iter(std::iter::once(first).chain(chunks));
            let r = c.import_bill(stream).await?.into_inner();
            if cli.json {
                let ms: Vec<Value> = r.mistakes.iter().map(mistake_json).collect();
                println!(
                    "{}",
                    json!({"channel": r.channel, "date": r.date, "digest": r.digest, "lines": r.lines,
                           "matched": r.matched, "pending": r.pending, "mistakes": ms})
                );
            } else {
                outln!(
                    "{} {}: {} lines, {} matched, {} pending, {} new mistakes",
                    r.channel,
                    r.date,
                    r.lines,
                    r.matched,
                    r.pending,
                    r.mistakes.len()
                );
                mistake_rows(&r.mistakes);
            }
        }
        ReconCmd::Mistakes { all, limit } => {
            let r = c
                .list_recon_mistakes(pb::ListReconMistakesRequest {
                    include_handled: *all,
                    page_size: *limit,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            if cli.json {
                let v: Vec<Value> = r.mistakes.iter().map(mistake_json).collect();
                println!("{}", Value::Array(v));
            } else {
                mistake_rows(&r.mistakes);
            }
        }
        ReconCmd::Close { id, note } => {
            let m = c
                .close_recon_mistake(pb::HandleMistakeRequest {
                    request_id: rid(),
                    mistake_id: id.clone(),
                    note: note.clone(),
                })
                .await?
                .into_inner();
            print_json_or(cli.json, mistake_json(&m), format!("{} closed", m.id));
        }
        ReconCmd::Apply { id } => {
            let m = c
                .apply_missed_payment(pb::HandleMistakeRequest {
                    request_id: rid(),
                    mistake_id: id.clone(),
                    note: String::new(),
                })
                .await?
                .into_inner();
            print_json_or(
                cli.json,
                mistake_json(&m),
                format!("{} applied: {} paid from the bill", m.id, m.reference),
            );
        }
    }
    Ok(())
}

/// Runs `statement`: CSV (header and one row), or JSON.
pub async fn statement(cli: &Cli, a: &StatementArgs) -> Result<(), Failure> {
    let mut c = super::support(cli).await?;
    let s = c
        .get_statement(pb::GetStatementRequest {
            asset: a.asset.clone(),
            date: a.date.clone(),
        })
        .await?
        .into_inner();
    if cli.json {
        println!(
            "{}",
            json!({"asset": s.asset, "date": s.date, "opening": s.opening, "deposits": s.deposits,
                   "withdrawals": s.withdrawals, "released_to_buyers": s.released_to_buyers,
                   "returned_to_sellers": s.returned_to_sellers, "closing": s.closing,
                   "balances": s.balances, "balanced": s.balanced})
        );
    } else {
        outln!(
            "asset,date,opening,deposits,withdrawals,released_to_buyers,returned_to_sellers,closing,balances,balanced"
        );
        outln!(
            "{},{},{},{},{},{},{},{},{},{}",
            s.asset,
            s.date,
            s.opening,
            s.deposits,
            s.withdrawals,
            s.released_to_buyers,
            s.returned_to_sellers,
            s.closing,
            s.balances,
            s.balanced
        );
    }
    Ok(())
}
