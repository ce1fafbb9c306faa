//! `otcctl user`: a user's own actions (for demos and the walkthrough; it
//! uses them to make an appeal): account, methods, fund password, listings,
//! buying, paying, releasing, appealing, evidence.

use clap::Subcommand;
use otc_api::proto as pb;
use serde_json::{Value, json};

use super::{Failure, rid};
use crate::Cli;
use crate::render::{print_json_or, table};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Your balances and bound methods.
    Account,
    /// Bind a receiving method.
    BindMethod {
        /// alipay, wechat, bank, or channel (a payment channel an admin assigned you).
        #[arg(long)]
        kind: String,
        /// Holder name.
        #[arg(long, default_value = "")]
        holder: String,
        /// Account handle or card number.
        #[arg(long, default_value = "")]
        account: String,
        /// The channel's name (--kind channel).
        #[arg(long, default_value = "")]
        channel: String,
        /// Bank name (bank cards).
        #[arg(long, default_value = "")]
        bank: String,
    },
    /// Set (or change, with --current) the fund password.
    SetPassword {
        /// The new password (or OTC_NEW_FUND_PASSWORD, kept off the command line).
        #[arg(env = "OTC_NEW_FUND_PASSWORD", hide_env_values = true)]
        new: String,
        /// The current one, when changing (or OTC_CURRENT_FUND_PASSWORD).
        #[arg(
            long,
            default_value = "",
            env = "OTC_CURRENT_FUND_PASSWORD",
            hide_env_values = true
        )]
        current: String,
    },
    /// Publish a listing (escrows the total).
    Publish {
        /// Asset code.
        #[arg(long, default_value = "EB")]
        asset: String,
        #[arg(long, default_value = "CNY")]
        fiat: String,
        /// A fixed price per coin (or give --premium-bps).
        #[arg(long, default_value = "", required_unless_present = "premium_bps")]
        price: String,
        /// A floating price: basis points over the market's reference (SPEC §22).
        #[arg(long, allow_hyphen_values = true, conflicts_with = "price")]
        premium_bps: Option<i32>,
        /// A floating price's floor.
        #[arg(long, default_value = "", requires = "premium_bps")]
        floor: String,
        /// A floating price's ceiling.
        #[arg(long, default_value = "", requires = "premium_bps")]
        ceiling: String,
        #[arg(long)]
        total: String,
        #[arg(long)]
        min: String,
        #[arg(long)]
        max: String,
        /// Method ids (M-n), repeatable.
        #[arg(long = "method", required = true)]
        methods: Vec<String>,
        /// Fund password (or OTC_FUND_PASSWORD, kept off the command line).
        #[arg(long, env = "OTC_FUND_PASSWORD", hide_env_values = true)]
        password: String,
        /// Release as soon as a payment channel proves payment (SPEC §19).
        #[arg(long)]
        release_on_verified_payment: bool,
        /// Payment window of its trades in seconds (0: the server's default).
        #[arg(long, default_value_t = 0)]
        payment_window_secs: i64,
    },
    /// Buy from the best listing.
    Buy {
        /// Asset code.
        #[arg(long, default_value = "EB")]
        asset: String,
        #[arg(long, default_value = "CNY")]
        fiat: String,
        /// Coin amount.
        #[arg(long)]
        coin: String,
    },
    /// Mark a trade paid (buyer).
    Paid {
        /// Trade id.
        id: String,
    },
    /// Release a trade (seller).
    Release {
        /// Trade id.
        id: String,
        /// Fund password (or OTC_FUND_PASSWORD, kept off the command line).
        #[arg(long, env = "OTC_FUND_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Appeal a paid trade.
    Appeal {
        /// Trade id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Add evidence to an appeal.
    Evidence {
        /// Trade id.
        id: String,
        /// What it shows.
        #[arg(long)]
        description: String,
        /// A PNG/JPEG/WebP/PDF file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

/// The MIME type of an evidence file, from its extension.
fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Runs a `user` command.
pub async fn run(cli: &Cli, cmd: &UserCmd) -> Result<(), Failure> {
    let mut t = super::trading(cli).await?;
    match cmd {
        UserCmd::Account => {
            let a = t.get_account(pb::GetAccountRequest {}).await?.into_inner();
            let balances: Vec<Value> = a
                .balances
                .iter()
                .map(
                    |b| json!({"asset": b.asset, "available": b.available, "escrowed": b.escrowed}),
                )
                .collect();
            let methods: Vec<Value> = a
                .methods
                .iter()
                .map(|m| json!({"id": m.id, "holder": m.holder, "account": m.account}))
                .collect();
            if cli.json {
                println!(
                    "{}",
                    json!({"user_id": a.user_id, "role": a.role, "balances": balances, "methods": methods, "fund_password_set": a.fund_password_set})
                );
            } else {
                outln!("user {} ({})", a.user_id, a.role);
                table(
                    &["ASSET", "AVAILABLE", "ESCROWED"],
                    &a.balances
                        .iter()
                        .map(|b| vec![b.asset.clone(), b.available.clone(), b.escrowed.clone()])
                        .collect::<Vec<_>>(),
                );
                table(
                    &["METHOD", "HOLDER", "ACCOUNT"],
                    &a.methods
                        .iter()
                        .map(|m| vec![m.id.clone(), m.holder.clone(), m.account.clone()])
                        .collect::<Vec<_>>(),
                );
            }
        }
        UserCmd::BindMethod {
            kind,
            holder,
            account,
            channel,
            bank,
        } => {
            let kind = match kind.as_str() {
                "alipay" => pb::PaymentKind::Alipay,
                "wechat" => pb::PaymentKind::Wechat,
                "bank" => pb::PaymentKind::Bank,
                "channel" => pb::PaymentKind::Channel,
                other => {
                    return Err(Failure(format!(
                        "--kind {other:?}: use alipay, wechat, bank or channel"
                    )));
                }
            };
            let r = t
                .bind_payment_method(pb::BindPaymentMethodRequest {
                    request_id: rid(),
                    kind: kind as i32,
                    holder: holder.clone(),
                    bank: bank.clone(),
                    account: account.clone(),
                    channel: channel.clone(),
                })
                .await?
                .into_inner();
            print_json_or(
                cli.json,
                json!({"method_id": r.method_id}),
                r.method_id.clone(),
            );
        }
        UserCmd::SetPassword { new, current } => {
            t.set_fund_password(pb::SetFundPasswordRequest {
                request_id: rid(),
                new_password: new.clone(),
                current_password: current.clone(),
            })
            .await?;
            print_json_or(
                cli.json,
                json!({"fund_password_set": true}),
                "fund password set".into(),
            );
        }
        UserCmd::Publish {
            asset,
            fiat,
            price,
            premium_bps,
            floor,
            ceiling,
            total,
            min,
            max,
            methods,
            password,
            release_on_verified_payment,
            payment_window_secs,
        } => {
            let r = t
                .publish_listing(pb::PublishListingRequest {
                    request_id: rid(),
                    asset: asset.clone(),
                    fiat: fiat.clone(),
                    price: price.clone(),
                    total: total.clone(),
                    min_fiat: min.clone(),
                    max_fiat: max.clone(),
                    method_ids: methods.clone(),
                    payment_window_secs: *payment_window_secs,
                    terms: String::new(),
                    fund_password: password.clone(),
                    release_on_verified_payment: *release_on_verified_payment,
                    floating: premium_bps.is_some(),
                    premium_bps: premium_bps.unwrap_or(0),
                    floor: floor.clone(),
                    ceiling: ceiling.clone(),
                })
                .await?
                .into_inner();
            let l = r.listing.unwrap_or_default();
            print_json_or(
                cli.json,
                json!({"listing_id": l.id, "remaining": l.remaining}),
                l.id.clone(),
            );
        }
        UserCmd::Buy { asset, fiat, coin } => {
            let r = t
                .place_buy(pb::PlaceBuyRequest {
                    request_id: rid(),
                    asset: asset.clone(),
                    fiat: fiat.clone(),
                    coin_amount: coin.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let id = r.trade_ids.first().cloned().unwrap_or_default();
            print_json_or(cli.json, json!({"trade_id": id}), id.clone());
        }
        UserCmd::Paid { id } => {
            t.mark_paid(pb::TradeActionRequest {
                request_id: rid(),
                trade_id: id.clone(),
            })
            .await?;
            print_json_or(
                cli.json,
                json!({"trade_id": id, "state": "PAID"}),
                format!("{id} marked paid"),
            );
        }
        UserCmd::Release { id, password } => {
            t.release(pb::ReleaseRequest {
                request_id: rid(),
                trade_id: id.clone(),
                fund_password: password.clone(),
            })
            .await?;
            print_json_or(
                cli.json,
                json!({"trade_id": id, "state": "RELEASED"}),
                format!("{id} released"),
            );
        }
        UserCmd::Appeal { id, reason } => {
            t.open_appeal(pb::OpenAppealRequest {
                request_id: rid(),
                trade_id: id.clone(),
                reason: reason.clone(),
            })
            .await?;
            print_json_or(
                cli.json,
                json!({"trade_id": id, "state": "APPEALED"}),
                format!("{id} appealed"),
            );
        }
        UserCmd::Evidence {
            id,
            description,
            file,
        } => {
            let attachment = match file {
                None => None,
                Some(path) => {
                    let data = std::fs::read(path)
                        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
                    let file_name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    Some(pb::Attachment {
                        content_type: content_type(path).into(),
                        file_name,
                        data,
                    })
                }
            };
            let r = t
                .add_evidence(pb::AddEvidenceRequest {
                    request_id: rid(),
                    trade_id: id.clone(),
                    description: description.clone(),
                    attachment,
                })
                .await?
                .into_inner();
            print_json_or(
                cli.json,
                json!({"evidence_id": r.evidence_id}),
                r.evidence_id.clone(),
            );
        }
    }
    Ok(())
}
