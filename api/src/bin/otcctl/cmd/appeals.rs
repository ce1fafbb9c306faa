//! `otcctl appeals`: the appeal queue (support, support_viewer).

use std::io::{BufRead, IsTerminal, Write};

use clap::{Subcommand, ValueEnum};
use otc_api::proto as pb;
use serde_json::{Value, json};

use super::{Failure, rid};
use crate::Cli;
use crate::render::{age, appeal_json, print_trade, record_text, table, trade_json, ts};

#[derive(Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Open,
    Claimed,
    Resolved,
}

#[derive(Subcommand)]
pub enum AppealsCmd {
    /// The queue, oldest first.
    List {
        /// Only this status (default: open and claimed).
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only appeals you hold.
        #[arg(long)]
        mine: bool,
    },
    /// One appeal: trade, timeline, receiving method, chat, evidence.
    Show {
        /// Trade id (T-n).
        id: String,
    },
    /// Take an appeal.
    Claim {
        /// Trade id.
        id: String,
    },
    /// Hand an appeal back.
    Unclaim {
        /// Trade id.
        id: String,
    },
    /// Decide an appeal.
    Resolve {
        /// Trade id.
        id: String,
        /// Release the coin to the buyer.
        #[arg(long, conflicts_with = "refund", required_unless_present = "refund")]
        release: bool,
        /// Refund the coin to the seller.
        #[arg(long)]
        refund: bool,
        /// Why (required, audit-logged).
        #[arg(long)]
        note: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Follow the queue live (new, claimed, resolved).
    Watch {
        /// Resume after this event sequence.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Runs an `appeals` command.
pub async fn run(cli: &Cli, cmd: &AppealsCmd) -> Result<(), Failure> {
    let mut c = super::support(cli).await?;
    match cmd {
        AppealsCmd::List { status, mine } => {
            let status = match status {
                None => pb::AppealStatus::Unspecified,
                Some(StatusArg::Open) => pb::AppealStatus::Open,
                Some(StatusArg::Claimed) => pb::AppealStatus::Claimed,
                Some(StatusArg::Resolved) => pb::AppealStatus::Closed,
            };
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let r = c
                    .list_appeals(pb::ListAppealsRequest {
                        status: status as i32,
                        mine: *mine,
                        // The server's default page, within its --page-size-max.
                        page_size: 0,
                        page_token,
                    })
                    .await?
                    .into_inner();
                all.extend(r.appeals);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            if cli.json {
                println!("{}", Value::Array(all.iter().map(appeal_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|a| {
                        vec![
                            a.trade_id.clone(),
                            age(a.opened_at.as_ref()),
                            format!("{} {}", a.coin_amount, a.asset),
                            a.fiat_amount.clone(),
                            a.opened_by.clone(),
                            a.reason.chars().take(40).collect(),
                            if a.claimed_by.is_empty() {
                                "-".into()
                            } else {
                                a.claimed_by.clone()
                            },
                        ]
                    })
                    .collect();
                table(
                    &[
                        "TRADE",
                        "AGE",
                        "AMOUNT",
                        "FIAT",
                        "OPENED BY",
                        "REASON",
                        "CLAIMED BY",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        AppealsCmd::Show { id } => {
            let a = c
                .get_appeal(pb::GetTradeRequest {
                    trade_id: id.clone(),
                })
                .await?
                .into_inner();
            let t = c
                .get_trade(pb::GetTradeRequest {
                    trade_id: id.clone(),
                })
                .await?
                .into_inner();
            // The whole chat, a page at a time, until a page comes back empty.
            let mut chat = Vec::new();
            loop {
                let page = c
                    .list_chat(pb::ListChatRequest {
                        trade_id: id.clone(),
                        after_seq: chat.last().map_or(0, |m: &pb::ChatMessage| m.seq),
                        page_size: 0,
                    })
                    .await?
                    .into_inner()
                    .messages;
                let last = chat.last().map_or(0, |m: &pb::ChatMessage| m.seq);
                // Each page starts past the last: one that does not ends it.
                if page.first().is_none_or(|m| m.seq <= last) {
                    break;
                }
                chat.extend(page);
            }
            if cli.json {
                let chat: Vec<Value> = chat.iter().map(|m| json!({"seq": m.seq, "author": m.author_id, "at": ts(m.at.as_ref()), "text": m.text, "file": m.attachment.as_ref().map(|f| f.id.clone())})).collect();
                println!(
                    "{}",
                    json!({"appeal": appeal_json(&a), "trade": trade_json(&t), "chat": chat})
                );
                return Ok(());
            }
            print_trade(&t);
            outln!();
            outln!(
                "appeal opened by {} at {}: {}",
                a.opened_by,
                ts(a.opened_at.as_ref()),
                a.reason
            );
            outln!(
                "held by {}",
                if a.claimed_by.is_empty() {
                    "nobody"
                } else {
                    &a.claimed_by
                }
            );
            outln!("seller's record: {}", record_text(a.seller_record.as_ref()));
            outln!("buyer's record:  {}", record_text(a.buyer_record.as_ref()));
            if !a.outcome.is_empty() {
                outln!("outcome: {}", a.outcome);
            }
            outln!();
            outln!("evidence:");
            let rows: Vec<Vec<String>> = a
                .evidence
                .iter()
                .map(|e| {
                    vec![
                        e.id.clone(),
                        e.by_user_id.clone(),
                        ts(e.at.as_ref()),
                        e.description.clone(),
                        e.attachment
                            .as_ref()
                            .map(|f| format!("{} ({} bytes)", f.file_name, f.size_bytes))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            table(&["ID", "BY", "AT", "DESCRIPTION", "FILE"], &rows);
            outln!();
            outln!("chat:");
            let rows: Vec<Vec<String>> = chat
                .iter()
                .map(|m| vec![ts(m.at.as_ref()), m.author_id.clone(), m.text.clone()])
                .collect();
            table(&["AT", "AUTHOR", "TEXT"], &rows);
            Ok(())
        }
        AppealsCmd::Claim { id } | AppealsCmd::Unclaim { id } => {
            let req = pb::AppealActionRequest {
                request_id: rid(),
                trade_id: id.clone(),
            };
            let claim = matches!(cmd, AppealsCmd::Claim { .. });
            let a = if claim {
                c.claim_appeal(req).await?
            } else {
                c.unclaim_appeal(req).await?
            }
            .into_inner();
            if cli.json {
                println!("{}", appeal_json(&a));
            } else {
                outln!(
                    "appeal on {} is {}",
                    a.trade_id,
                    if claim {
                        format!("held by {}", a.claimed_by)
                    } else {
                        "back in the queue".into()
                    }
                );
            }
            Ok(())
        }
        AppealsCmd::Resolve {
            id,
            release,
            refund: _,
            note,
            yes,
        } => {
            let what = if *release {
                "RELEASE the coin to the buyer"
            } else {
                "REFUND the coin to the seller"
            };
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(Failure(
                        "resolving needs confirmation: pass --yes when not at a terminal".into(),
                    ));
                }
                print!("{what} on trade {id}? This is final. Type yes to confirm: ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if line.trim() != "yes" {
                    return Err(Failure("not confirmed; nothing was changed".into()));
                }
            }
            let resolution = if *release {
                pb::Resolution::Release
            } else {
                pb::Resolution::Refund
            };
            let a = c
                .resolve_appeal(pb::ResolveAppealRequest {
                    request_id: rid(),
                    trade_id: id.clone(),
                    resolution: resolution as i32,
                    note: note.clone(),
                })
                .await?
                .into_inner();
            if cli.json {
                println!("{}", appeal_json(&a));
            } else {
                outln!("appeal on {} {}", a.trade_id, a.outcome);
            }
            Ok(())
        }
        AppealsCmd::Watch { after } => {
            let mut stream = c
                .stream_appeal_queue(pb::StreamEventsRequest { after_seq: *after })
                .await?
                .into_inner();
            while let Some(e) = stream.message().await? {
                let ty = pb::EventType::try_from(e.r#type)
                    .map(|t| t.as_str_name())
                    .unwrap_or("UNKNOWN");
                if cli.json {
                    println!(
                        "{}",
                        json!({"seq": e.seq, "at": ts(e.at.as_ref()), "type": ty, "trade_id": e.trade_id, "state": e.state, "actor": e.actor})
                    );
                } else {
                    outln!(
                        "{:>8}  {}  {:<32} {:<8} {} {}",
                        e.seq,
                        ts(e.at.as_ref()),
                        ty,
                        e.trade_id,
                        e.state,
                        e.actor
                    );
                }
            }
            Ok(())
        }
    }
}
