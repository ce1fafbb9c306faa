//! `otcctl`: the customer-service and back-office console, over the same gRPC
//! API the apps use. Human tables by default, `--json` for scripts.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use otc_api::auth::{Role, mint};
use otc_api::proto as pb;
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::support_service_client::SupportServiceClient;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(
    name = "otcctl",
    version,
    about = "Console for otc customer service and back office"
)]
struct Cli {
    /// Server URL.
    #[arg(
        long,
        env = "OTC_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    server: String,
    /// Bearer token (JWT).
    #[arg(long, env = "OTC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The appeal queue (support, support_viewer).
    #[command(subcommand)]
    Appeals(AppealsCmd),
    /// Evidence files.
    #[command(subcommand)]
    Evidence(EvidenceCmd),
    /// Trades.
    #[command(subcommand)]
    Trades(TradesCmd),
    /// Credit a user's coin (admin).
    Deposit(Transfer),
    /// Debit a user's available coin (admin).
    Withdraw(Transfer),
    /// Partner merchants (admin).
    #[command(subcommand)]
    Merchant(MerchantCmd),
    /// A user's own actions (for demos and the walkthrough): methods,
    /// password, listings, buying, paying, releasing, appealing.
    #[command(subcommand)]
    User(UserCmd),
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a signed token.
    Mint {
        /// The server's HS256 secret.
        #[arg(long, env = "OTC_JWT_SECRET", hide_env_values = true)]
        secret: String,
        /// The user's UUID.
        #[arg(long)]
        user: uuid::Uuid,
        /// user, merchant, support, support_viewer or admin.
        #[arg(long)]
        role: String,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Open,
    Claimed,
    Resolved,
}

#[derive(Subcommand)]
enum AppealsCmd {
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

#[derive(Subcommand)]
enum EvidenceCmd {
    /// Download an evidence file.
    Get {
        /// Evidence id (E-n), or chat-<seq> for a chat attachment.
        id: String,
        /// The trade it belongs to (T-n); found from the appeals when omitted.
        #[arg(long)]
        trade: Option<String>,
        /// Write here (default: the uploaded file name).
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum TradesCmd {
    /// A trade with its timeline.
    Show {
        /// Trade id (T-n).
        id: String,
    },
}

#[derive(clap::Args)]
struct Transfer {
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

#[derive(Subcommand)]
enum MerchantCmd {
    /// Make a user a partner merchant.
    Register {
        /// The user's UUID.
        user: String,
    },
}

type Client = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A failure to report: the server's message, or ours.
struct Failure(String);

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Failure(format!("{:?}: {}", s.code(), s.message()))
    }
}

async fn connect(cli: &Cli) -> Result<Client, Failure> {
    let token = cli
        .token
        .as_deref()
        .ok_or_else(|| Failure("no token: pass --token or set OTC_TOKEN".into()))?;
    let channel = Channel::from_shared(cli.server.clone())
        .map_err(|e| Failure(format!("bad --server: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| Failure(format!("cannot reach {}: {e}", cli.server)))?;
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Failure("the token is not valid header text".into()))?;
    Ok(InterceptedService::new(channel, Bearer(value)))
}

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn age(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else { return String::new() };
    let secs = chrono::Utc::now().timestamp() - t.seconds;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// Prints rows as an aligned table.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn record_json(r: &pb::SellerRecord) -> Value {
    json!({"completed_30d": r.completed_30d, "completion_rate_30d": r.completion_rate_30d, "median_release_secs": r.median_release_secs})
}

fn record_text(r: Option<&pb::SellerRecord>) -> String {
    r.map_or_else(String::new, |r| {
        let rate = if r.completion_rate_30d.is_empty() {
            "-".to_owned()
        } else {
            r.completion_rate_30d.clone()
        };
        format!(
            "{} completed in 30 days, completion rate {rate}, median release {} s",
            r.completed_30d, r.median_release_secs
        )
    })
}

fn appeal_json(a: &pb::Appeal) -> Value {
    json!({
        "trade_id": a.trade_id,
        "status": pb::AppealStatus::try_from(a.status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN"),
        "opened_by": a.opened_by,
        "reason": a.reason,
        "opened_at": ts(a.opened_at.as_ref()),
        "claimed_by": a.claimed_by,
        "asset": a.asset,
        "coin_amount": a.coin_amount,
        "fiat_amount": a.fiat_amount,
        "seller_id": a.seller_id,
        "buyer_id": a.buyer_id,
        "outcome": a.outcome,
        "seller_record": a.seller_record.as_ref().map(record_json),
        "buyer_record": a.buyer_record.as_ref().map(record_json),
        "evidence": a.evidence.iter().map(|e| json!({
            "id": e.id,
            "by": e.by_user_id,
            "at": ts(e.at.as_ref()),
            "description": e.description,
            "file": e.attachment.as_ref().map(|f| json!({"name": f.file_name, "type": f.content_type, "bytes": f.size_bytes})),
        })).collect::<Vec<_>>(),
    })
}

fn trade_json(t: &pb::Trade) -> Value {
    let m = t.seller_method.clone().unwrap_or_default();
    json!({
        "id": t.id,
        "state": pb::TradeState::try_from(t.state).map(|s| s.as_str_name()).unwrap_or("UNKNOWN"),
        "seller_id": t.seller_id,
        "buyer_id": t.buyer_id,
        "listing_id": t.listing_id,
        "asset": t.asset,
        "fiat": t.fiat,
        "price": t.price,
        "coin_amount": t.coin_amount,
        "fiat_amount": t.fiat_amount,
        "cancel_reason": t.cancel_reason,
        "created_at": ts(t.created_at.as_ref()),
        "paid_at": ts(t.paid_at.as_ref()),
        "seller_method": {"id": m.id, "kind": pb::PaymentKind::try_from(m.kind).map(|k| k.as_str_name()).unwrap_or(""), "holder": m.holder, "bank": m.bank, "account": m.account},
        "timeline": t.timeline.iter().map(|e| json!({"at": ts(e.at.as_ref()), "actor": e.actor, "what": e.what})).collect::<Vec<_>>(),
    })
}

fn print_trade(t: &pb::Trade) {
    let j = trade_json(t);
    println!(
        "trade {}  {}  {} {} at {} = {} {}",
        t.id,
        j["state"].as_str().unwrap_or(""),
        t.coin_amount,
        t.asset,
        t.price,
        t.fiat_amount,
        t.fiat
    );
    println!("seller {}  buyer {}", t.seller_id, t.buyer_id);
    if let Some(m) = &t.seller_method {
        println!(
            "receiving method (as the buyer saw it): {} {} {} {}",
            j["seller_method"]["kind"].as_str().unwrap_or(""),
            m.holder,
            m.bank,
            m.account
        );
    }
    let rows: Vec<Vec<String>> = t
        .timeline
        .iter()
        .map(|e| vec![ts(e.at.as_ref()), e.actor.clone(), e.what.clone()])
        .collect();
    table(&["AT", "ACTOR", "WHAT"], &rows);
}

// ---- user-side commands (the walkthrough uses them to make an appeal) ----

#[derive(Subcommand)]
enum UserCmd {
    /// Your balances and bound methods.
    Account,
    /// Bind a receiving method.
    BindMethod {
        /// alipay, wechat or bank.
        #[arg(long)]
        kind: String,
        /// Holder name.
        #[arg(long)]
        holder: String,
        /// Account handle or card number.
        #[arg(long)]
        account: String,
        /// Bank name (bank cards).
        #[arg(long, default_value = "")]
        bank: String,
    },
    /// Set (or change, with --current) the fund password.
    SetPassword {
        /// The new password.
        new: String,
        /// The current one, when changing.
        #[arg(long, default_value = "")]
        current: String,
    },
    /// Publish a listing (escrows the total).
    Publish {
        /// Asset code.
        #[arg(long, default_value = "EB")]
        asset: String,
        #[arg(long, default_value = "CNY")]
        fiat: String,
        #[arg(long)]
        price: String,
        #[arg(long)]
        total: String,
        #[arg(long)]
        min: String,
        #[arg(long)]
        max: String,
        /// Method ids (M-n), repeatable.
        #[arg(long = "method", required = true)]
        methods: Vec<String>,
        /// Fund password.
        #[arg(long)]
        password: String,
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
        /// Fund password.
        #[arg(long)]
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

fn print_json_or(cli: &Cli, value: Value, text: String) {
    if cli.json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

async fn user(cli: &Cli, cmd: &UserCmd) -> Result<(), Failure> {
    use otc_api::proto::trading_service_client::TradingServiceClient;
    let mut t = TradingServiceClient::new(connect(cli).await?);
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
                println!("user {} ({})", a.user_id, a.role);
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
            bank,
        } => {
            let kind = match kind.as_str() {
                "alipay" => pb::PaymentKind::Alipay,
                "wechat" => pb::PaymentKind::Wechat,
                "bank" => pb::PaymentKind::Bank,
                other => {
                    return Err(Failure(format!(
                        "--kind {other:?}: use alipay, wechat or bank"
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
                })
                .await?
                .into_inner();
            print_json_or(cli, json!({"method_id": r.method_id}), r.method_id.clone());
        }
        UserCmd::SetPassword { new, current } => {
            t.set_fund_password(pb::SetFundPasswordRequest {
                request_id: rid(),
                new_password: new.clone(),
                current_password: current.clone(),
            })
            .await?;
            print_json_or(
                cli,
                json!({"fund_password_set": true}),
                "fund password set".into(),
            );
        }
        UserCmd::Publish {
            asset,
            fiat,
            price,
            total,
            min,
            max,
            methods,
            password,
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
                    payment_window_secs: 0,
                    terms: String::new(),
                    fund_password: password.clone(),
                })
                .await?
                .into_inner();
            let l = r.listing.unwrap_or_default();
            print_json_or(
                cli,
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
            print_json_or(cli, json!({"trade_id": id}), id.clone());
        }
        UserCmd::Paid { id } => {
            t.mark_paid(pb::TradeActionRequest {
                request_id: rid(),
                trade_id: id.clone(),
            })
            .await?;
            print_json_or(
                cli,
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
                cli,
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
                cli,
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
                cli,
                json!({"evidence_id": r.evidence_id}),
                r.evidence_id.clone(),
            );
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Cmd::Token(TokenCmd::Mint {
            secret,
            user,
            role,
            ttl,
        }) => {
            let role = Role::parse(role).map_err(Failure)?;
            let ttl = otc_api::server::parse_duration(ttl).map_err(Failure)?;
            let token = mint(secret.as_bytes(), *user, role, ttl.as_secs()).map_err(Failure)?;
            if cli.json {
                println!("{}", json!({ "token": token }));
            } else {
                println!("{token}");
            }
            Ok(())
        }
        Cmd::Appeals(cmd) => appeals(&cli, cmd).await,
        Cmd::User(cmd) => user(&cli, cmd).await,
        Cmd::Evidence(EvidenceCmd::Get { id, trade, output }) => {
            let mut c = SupportServiceClient::new(connect(&cli).await?);
            let trade = match trade {
                Some(t) => t.clone(),
                None => find_evidence_trade(&mut c, id).await?,
            };
            let file = c
                .get_attachment(pb::GetAttachmentRequest {
                    trade_id: trade,
                    attachment_id: id.clone(),
                })
                .await?
                .into_inner();
            let path = output.clone().unwrap_or_else(|| {
                std::path::PathBuf::from(if file.file_name.is_empty() {
                    id.as_str()
                } else {
                    file.file_name.as_str()
                })
            });
            std::fs::write(&path, &file.data)
                .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
            if cli.json {
                println!(
                    "{}",
                    json!({"path": path.display().to_string(), "bytes": file.data.len(), "type": file.content_type})
                );
            } else {
                println!(
                    "wrote {} ({} bytes, {})",
                    path.display(),
                    file.data.len(),
                    file.content_type
                );
            }
            Ok(())
        }
        Cmd::Trades(TradesCmd::Show { id }) => {
            let mut c = SupportServiceClient::new(connect(&cli).await?);
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
        Cmd::Deposit(t) | Cmd::Withdraw(t) => {
            let mut c = AdminServiceClient::new(connect(&cli).await?);
            let req = pb::TransferRequest {
                request_id: format!("otcctl-{}", t.external_ref),
                user_id: t.user.clone(),
                asset: t.asset.clone(),
                amount: t.amount.clone(),
                external_ref: t.external_ref.clone(),
            };
            let deposit = matches!(cli.command, Cmd::Deposit(_));
            let r = if deposit {
                c.deposit(req).await?
            } else {
                c.withdraw(req).await?
            }
            .into_inner();
            let b = r.balance.unwrap_or_default();
            let repeated = r.receipt.is_some_and(|x| x.repeated);
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
                println!(
                    "{what} {} {} for {}{again}; available {}, escrowed {}",
                    t.amount, b.asset, t.user, b.available, b.escrowed
                );
            }
            Ok(())
        }
        Cmd::Merchant(MerchantCmd::Register { user }) => {
            let mut c = AdminServiceClient::new(connect(&cli).await?);
            c.register_merchant(pb::RegisterMerchantRequest {
                request_id: format!("otcctl-merchant-{user}"),
                user_id: user.clone(),
            })
            .await?;
            if cli.json {
                println!("{}", json!({"user_id": user, "merchant": true}));
            } else {
                println!("{user} is a partner merchant");
            }
            Ok(())
        }
    }
}

/// The trade whose appeal holds evidence `id` (open, claimed or closed).
async fn find_evidence_trade(
    c: &mut SupportServiceClient<Client>,
    id: &str,
) -> Result<String, Failure> {
    for status in [pb::AppealStatus::Unspecified, pb::AppealStatus::Closed] {
        let mut page_token = String::new();
        loop {
            let r = c
                .list_appeals(pb::ListAppealsRequest {
                    status: status as i32,
                    mine: false,
                    page_size: 200,
                    page_token,
                })
                .await?
                .into_inner();
            if let Some(a) = r
                .appeals
                .iter()
                .find(|a| a.evidence.iter().any(|e| e.id == id))
            {
                return Ok(a.trade_id.clone());
            }
            if r.next_page_token.is_empty() {
                break;
            }
            page_token = r.next_page_token;
        }
    }
    Err(Failure(format!(
        "no appeal holds evidence {id}; pass --trade T-n"
    )))
}

async fn appeals(cli: &Cli, cmd: &AppealsCmd) -> Result<(), Failure> {
    let mut c = SupportServiceClient::new(connect(cli).await?);
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
                        page_size: 200,
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
            let chat = c
                .list_chat(pb::ListChatRequest {
                    trade_id: id.clone(),
                    after_seq: 0,
                    page_size: 200,
                })
                .await?
                .into_inner()
                .messages;
            if cli.json {
                let chat: Vec<Value> = chat.iter().map(|m| json!({"seq": m.seq, "author": m.author_id, "at": ts(m.at.as_ref()), "text": m.text, "file": m.attachment.as_ref().map(|f| f.id.clone())})).collect();
                println!(
                    "{}",
                    json!({"appeal": appeal_json(&a), "trade": trade_json(&t), "chat": chat})
                );
                return Ok(());
            }
            print_trade(&t);
            println!();
            println!(
                "appeal opened by {} at {}: {}",
                a.opened_by,
                ts(a.opened_at.as_ref()),
                a.reason
            );
            println!(
                "held by {}",
                if a.claimed_by.is_empty() {
                    "nobody"
                } else {
                    &a.claimed_by
                }
            );
            println!("seller's record: {}", record_text(a.seller_record.as_ref()));
            println!("buyer's record:  {}", record_text(a.buyer_record.as_ref()));
            if !a.outcome.is_empty() {
                println!("outcome: {}", a.outcome);
            }
            println!("\nevidence:");
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
            println!("\nchat:");
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
                println!(
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
                println!("appeal on {} {}", a.trade_id, a.outcome);
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
                    println!(
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            if json {
                eprintln!("{}", json!({ "error": msg }));
            } else {
                eprintln!("otcctl: {msg}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
