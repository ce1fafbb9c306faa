//! `otcctl channels` (admin: the declared payment channels, assigning one to
//! a seller or merchant) and `otcctl anomalies` (CS: payment anomalies,
//! SPEC §19).

use clap::Subcommand;
use otc_api::proto as pb;
use serde_json::{Value, json};

use super::{Failure, rid};
use crate::Cli;
use crate::render::{print_json_or, table, ts};

#[derive(Subcommand)]
pub enum ChannelsCmd {
    /// The channels this server declares, with the URL their gateways post to.
    List,
    /// Let a seller or merchant bind a channel as a receiving method.
    Assign {
        /// The user's UUID.
        #[arg(long)]
        user: String,
        /// The channel's name.
        #[arg(long)]
        channel: String,
    },
}

#[derive(Subcommand)]
pub enum AnomaliesCmd {
    /// Payment anomalies, oldest first (open ones unless --all).
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// Most to show (0: the server's default page, within its
        /// --page-size-max).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Close an anomaly with a note of what was done.
    Resolve {
        /// The anomaly (A-n).
        id: String,
        /// What was done (mandatory).
        #[arg(long)]
        note: String,
    },
}

/// Runs a `channels` command.
pub async fn run_channels(cli: &Cli, cmd: &ChannelsCmd) -> Result<(), Failure> {
    let mut c = super::admin(cli).await?;
    match cmd {
        ChannelsCmd::List => {
            let r = c
                .list_channels(pb::ListChannelsRequest {})
                .await?
                .into_inner();
            if cli.json {
                let v: Vec<Value> = r
                    .channels
                    .iter()
                    .map(|c| json!({"name": c.name, "provider": c.provider, "notify_url": c.notify_url}))
                    .collect();
                println!("{}", Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = r
                    .channels
                    .iter()
                    .map(|c| vec![c.name.clone(), c.provider.clone(), c.notify_url.clone()])
                    .collect();
                table(&["CHANNEL", "PROVIDER", "NOTIFY URL"], &rows);
            }
        }
        ChannelsCmd::Assign { user, channel } => {
            c.assign_channel(pb::AssignChannelRequest {
                request_id: rid(),
                user_id: user.clone(),
                channel: channel.clone(),
            })
            .await?;
            print_json_or(
                cli.json,
                json!({"user_id": user, "channel": channel}),
                format!("{channel} assigned to {user}"),
            );
        }
    }
    Ok(())
}

fn anomaly_json(a: &pb::PaymentAnomaly) -> Value {
    let p = a.payment.clone().unwrap_or_default();
    json!({
        "id": a.id, "kind": a.kind, "trade_id": a.trade_id, "reference": a.reference,
        "channel": p.channel, "txn_id": p.txn_id, "amount": p.amount, "fiat": a.fiat,
        "expected_amount": a.expected_amount, "received_at": ts(p.received_at.as_ref()),
        "resolved": a.resolved, "resolved_by": a.resolved_by, "note": a.note,
    })
}

/// Runs an `anomalies` command.
pub async fn run_anomalies(cli: &Cli, cmd: &AnomaliesCmd) -> Result<(), Failure> {
    let mut c = super::support(cli).await?;
    match cmd {
        AnomaliesCmd::List { all, limit } => {
            let r = c
                .list_anomalies(pb::ListAnomaliesRequest {
                    include_resolved: *all,
                    page_size: *limit,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            if cli.json {
                let v: Vec<Value> = r.anomalies.iter().map(anomaly_json).collect();
                println!("{}", Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = r
                    .anomalies
                    .iter()
                    .map(|a| {
                        let p = a.payment.clone().unwrap_or_default();
                        vec![
                            a.id.clone(),
                            a.kind.clone(),
                            a.trade_id.clone(),
                            p.channel,
                            p.txn_id,
                            format!("{} {}", p.amount, a.fiat),
                            a.expected_amount.clone(),
                            if a.resolved { "resolved" } else { "open" }.into(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID", "KIND", "TRADE", "CHANNEL", "TXN", "PAID", "EXPECTED", "STATUS",
                    ],
                    &rows,
                );
            }
        }
        AnomaliesCmd::Resolve { id, note } => {
            let a = c
                .resolve_anomaly(pb::ResolveAnomalyRequest {
                    request_id: rid(),
                    anomaly_id: id.clone(),
                    note: note.clone(),
                })
                .await?
                .into_inner();
            print_json_or(cli.json, anomaly_json(&a), format!("{} resolved", a.id));
        }
    }
    Ok(())
}
