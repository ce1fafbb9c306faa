//! The soak's clients. A *desk* is a seller and a buyer trading with each
//! other through the real book (the seller blocks every other desk's buyer,
//! so each desk's trades stay its own); the *agent* is customer service
//! working the appeal queue; the *back office* deposits and withdraws. Each
//! runs as one tokio task until its first call without an answer (the
//! server was killed), recording every answered mutating call in a [`Log`].
//! The desk lives in `desk.rs`.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use otc_api::proto as pb;
use rust_decimal::Decimal;
use tonic::Status;
use uuid::Uuid;

use super::{As, Call, Clients, Got, Ids, Log, Rng, Who, within};
use crate::harness::ADMIN;

/// Coin in each listing a desk publishes.
pub const LOT_COIN: u64 = 60;
/// Price of every listing (CNY per coin); trades of 1–4 coin are 7–28 CNY.
pub(crate) const PRICE: &str = "7";
/// Trades a desk's buyer keeps awaiting payment or paid at once.
pub(crate) const OPEN_TRADES_MAX: usize = 3;
/// Appealed trades a desk lets wait for customer service before it stops buying.
pub(crate) const APPEALED_MAX: usize = 6;
/// Margin past `appeal_from` before a party appeals (clocks are the same
/// machine's; this only avoids a refusal for a few milliseconds).
pub(crate) const APPEAL_MARGIN_MS: i64 = 30;

/// The back office.
pub fn admin_who() -> Who {
    Who {
        user: ADMIN,
        role: As::Admin,
    }
}

/// What every actor of a round shares.
#[derive(Clone)]
pub struct Ctx {
    /// The run's seed.
    pub seed: u64,
    /// The data dir's generation (a fresh data dir starts a new epoch).
    pub epoch: u32,
    /// The round.
    pub round: u32,
    /// The server.
    pub url: String,
    /// Set just before the kill: a client that loses the server before
    /// then saw something other than the kill.
    pub killed: Arc<AtomicBool>,
}

impl Ctx {
    pub(crate) fn ids(&self, actor: &str) -> Ids {
        Ids::new(self.seed, self.epoch, self.round, actor)
    }

    pub(crate) fn rng(&self, actor: u64) -> Rng {
        Rng::new(&[
            self.seed,
            u64::from(self.epoch),
            u64::from(self.round),
            actor,
        ])
    }
}

/// How an actor's round ended.
pub struct Ended {
    /// Its acknowledged calls.
    pub log: Log,
    /// The status that stopped it, when the server was still up then
    /// (anything but the kill: worth a look).
    pub while_up: Option<String>,
    /// Trades its buys created (acknowledged).
    pub trades: u64,
}

impl Ended {
    pub(crate) fn new(log: Log, stop: Status, ctx: &Ctx, trades: u64) -> Ended {
        let while_up = (!ctx.killed.load(Ordering::SeqCst))
            .then(|| format!("{:?}: {}", stop.code(), stop.message()));
        Ended {
            log,
            while_up,
            trades,
        }
    }
}

/// Turns a call without an answer into the actor's stop.
macro_rules! answered {
    ($got:expr) => {
        match $got {
            Got::Down(s) => return Err(s),
            other => other,
        }
    };
}
pub(crate) use answered;

/// A read: any failure stops the actor (reads are not recorded).
pub(crate) async fn read<T>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    within(fut).await.map(tonic::Response::into_inner)
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn ms(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
}

pub(crate) fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not a decimal: {e}"))
}

/// A trade a desk has open.
pub use super::desk::Desk;

/// A deposit or withdrawal request (the external reference is the request
/// id: unique, as the wallet's would be).
pub fn transfer(request_id: String, user: Uuid, amount: &str) -> pb::TransferRequest {
    pb::TransferRequest {
        external_ref: format!("ext-{request_id}"),
        request_id,
        user_id: user.to_string(),
        asset: "EB".into(),
        amount: amount.into(),
    }
}

/// Customer service: resolves the appeals it holds, claims open ones
/// (sometimes handing one back), resolves release or refund at random.
pub async fn agent(agent: Uuid, ctx: Ctx) -> Ended {
    let mut log = Log::new(ctx.round);
    let stop = match Clients::connect(&ctx.url).await {
        Ok(mut c) => match agent_work(agent, &ctx, &mut c, &mut log).await {
            Err(s) => s,
            Ok(never) => match never {},
        },
        Err(e) => Status::unavailable(e),
    };
    Ended::new(log, stop, &ctx, 0)
}

async fn agent_work(
    agent: Uuid,
    ctx: &Ctx,
    c: &mut Clients,
    log: &mut Log,
) -> Result<std::convert::Infallible, Status> {
    let who = Who {
        user: agent,
        role: As::Support,
    };
    let mut cs = c.support(who);
    let mut rng = ctx.rng(1_000);
    let mut ids = ctx.ids("cs");
    loop {
        let mine = read(cs.list_appeals(pb::ListAppealsRequest {
            status: pb::AppealStatus::Claimed as i32,
            mine: true,
            page_size: 5,
            page_token: String::new(),
        }))
        .await?;
        if let Some(a) = mine.appeals.first() {
            let r = pb::ResolveAppealRequest {
                request_id: ids.next_id(),
                trade_id: a.trade_id.clone(),
                resolution: if rng.chance(500) {
                    pb::Resolution::Release
                } else {
                    pb::Resolution::Refund
                } as i32,
                note: format!("soak round {}", ctx.round),
            };
            answered!(
                log.send(who, r.clone(), Call::ResolveAppeal, cs.resolve_appeal(r))
                    .await
            );
            continue;
        }
        let open = read(cs.list_appeals(pb::ListAppealsRequest {
            status: pb::AppealStatus::Open as i32,
            mine: false,
            page_size: 10,
            page_token: String::new(),
        }))
        .await?;
        if open.appeals.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let a = &open.appeals[rng.below(open.appeals.len() as u64) as usize];
        let r = pb::AppealActionRequest {
            request_id: ids.next_id(),
            trade_id: a.trade_id.clone(),
        };
        let claimed = answered!(
            log.send(who, r.clone(), Call::ClaimAppeal, cs.claim_appeal(r))
                .await
        );
        if matches!(claimed, Got::Ok(_)) && rng.chance(100) {
            let r = pb::AppealActionRequest {
                request_id: ids.next_id(),
                trade_id: a.trade_id.clone(),
            };
            answered!(
                log.send(who, r.clone(), Call::UnclaimAppeal, cs.unclaim_appeal(r))
                    .await
            );
        }
    }
}

/// The back office: deposits to wallet users, withdrawals from them and
/// from the desks' buyers (refused when short, which is an answer too).
pub async fn back_office(wallets: Vec<Uuid>, buyers: Vec<Uuid>, ctx: Ctx) -> Ended {
    let mut log = Log::new(ctx.round);
    let stop = match Clients::connect(&ctx.url).await {
        Ok(mut c) => match back_office_work(&wallets, &buyers, &ctx, &mut c, &mut log).await {
            Err(s) => s,
            Ok(never) => match never {},
        },
        Err(e) => Status::unavailable(e),
    };
    Ended::new(log, stop, &ctx, 0)
}

async fn back_office_work(
    wallets: &[Uuid],
    buyers: &[Uuid],
    ctx: &Ctx,
    c: &mut Clients,
    log: &mut Log,
) -> Result<std::convert::Infallible, Status> {
    let mut admin = c.admin(admin_who());
    let mut rng = ctx.rng(2_000);
    let mut ids = ctx.ids("bo");
    let everyone: Vec<Uuid> = wallets.iter().chain(buyers).copied().collect();
    loop {
        if rng.chance(500) {
            let user = wallets[rng.below(wallets.len() as u64) as usize];
            let r = transfer(ids.next_id(), user, &rng.coin(100, 10_000));
            log.sent_deposits += dec(&r.amount);
            answered!(
                log.send(admin_who(), r.clone(), Call::Deposit, admin.deposit(r))
                    .await
            );
        } else {
            let user = everyone[rng.below(everyone.len() as u64) as usize];
            let r = transfer(ids.next_id(), user, &rng.coin(100, 8_000));
            log.sent_withdrawals += dec(&r.amount);
            answered!(
                log.send(admin_who(), r.clone(), Call::Withdraw, admin.withdraw(r))
                    .await
            );
        }
        tokio::time::sleep(Duration::from_millis(rng.range(1, 4))).await;
    }
}
