//! The soak's clients. A *desk* is a seller and a buyer trading with each
//! other through the real book (the seller blocks every other desk's buyer,
//! so each desk's trades stay its own); the *agent* is customer service
//! working the appeal queue; the *back office* deposits and withdraws. Each
//! runs as one tokio task until its first call without an answer (the
//! server was killed), recording every answered mutating call in a [`Log`].

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use otc_api::proto as pb;
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::trading_service_client::TradingServiceClient;
use rust_decimal::Decimal;
use tonic::{Code, Status};
use uuid::Uuid;

use super::{As, Call, Clients, Got, Ids, Log, Rng, Who, within};
use crate::harness::{ADMIN, Authed, steps::PASSWORD};

/// Coin in each listing a desk publishes.
pub const LOT_COIN: u64 = 60;
/// Price of every listing (CNY per coin); trades of 1–4 coin are 7–28 CNY.
const PRICE: &str = "7";
/// Trades a desk's buyer keeps awaiting payment or paid at once.
const OPEN_TRADES_MAX: usize = 3;
/// Appealed trades a desk lets wait for customer service before it stops buying.
const APPEALED_MAX: usize = 6;
/// Margin past `appeal_from` before a party appeals (clocks are the same
/// machine's; this only avoids a refusal for a few milliseconds).
const APPEAL_MARGIN_MS: i64 = 30;

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
    fn ids(&self, actor: &str) -> Ids {
        Ids::new(self.seed, self.epoch, self.round, actor)
    }

    fn rng(&self, actor: u64) -> Rng {
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
    fn new(log: Log, stop: Status, ctx: &Ctx, trades: u64) -> Ended {
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

/// A read: any failure stops the actor (reads are not recorded).
async fn read<T>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    within(fut).await.map(tonic::Response::into_inner)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not a decimal: {e}"))
}

/// A trade a desk has open.
#[derive(Debug, Clone)]
struct Open {
    state: pb::TradeState,
    /// Paid trades the desk disputes instead of releasing.
    dispute: bool,
    /// When either party may appeal (paid trades).
    appeal_from_ms: i64,
}

/// A seller and a buyer (see the module docs).
pub struct Desk {
    /// Its number (0-based).
    pub idx: usize,
    /// The seller.
    pub seller: Uuid,
    /// The buyer.
    pub buyer: Uuid,
    /// The seller's receiving method.
    method: String,
    /// Open trades by id, as last seen.
    open: BTreeMap<String, Open>,
    /// The seller's live listing, as last seen.
    listing: Option<(String, pb::ListingState)>,
}

enum Action {
    MarkPaid(String),
    CancelAwaiting(String),
    Release(String),
    Appeal(String),
    Settle(String),
    Withdraw(String),
    Buy,
    Chat(String),
    Evidence(String),
    PauseOrResume,
    CancelListing,
}

fn pick(rng: &mut Rng, ids: &[String]) -> String {
    ids[rng.below(ids.len() as u64) as usize].clone()
}

impl Desk {
    /// Desk `idx` of an epoch, its users drawn from `rng`.
    pub fn new(idx: usize, rng: &mut Rng) -> Desk {
        Desk {
            idx,
            seller: rng.uuid(),
            buyer: rng.uuid(),
            method: String::new(),
            open: BTreeMap::new(),
            listing: None,
        }
    }

    /// The first round of an epoch, before the load: funds, a method, a
    /// fund password, blocks of `others` (every other desk's buyer), a
    /// listing. The server is up: any failure fails the test.
    pub async fn setup(&mut self, c: &mut Clients, log: &mut Log, ids: &mut Ids, others: &[Uuid]) {
        let sw = Who::user(self.seller);
        let mut admin = c.admin(admin_who());
        let mut seller = c.trading(sw);
        let dep = transfer(ids.next_id(), self.seller, &format!("{}", 2 * LOT_COIN));
        log.sent_deposits += dec(&dep.amount);
        let got = log
            .send(admin_who(), dep.clone(), Call::Deposit, admin.deposit(dep))
            .await;
        assert!(matches!(got, Got::Ok(_)), "setup deposit");
        let bind = pb::BindPaymentMethodRequest {
            request_id: ids.next_id(),
            kind: pb::PaymentKind::Alipay as i32,
            holder: format!("Desk {}", self.idx),
            account: format!("desk{}@example.com", self.idx),
            ..Default::default()
        };
        let Got::Ok(bound) = log
            .send(
                sw,
                bind.clone(),
                Call::BindPaymentMethod,
                seller.bind_payment_method(bind),
            )
            .await
        else {
            panic!("setup: bind a method")
        };
        self.method = bound.method_id;
        let pw = pb::SetFundPasswordRequest {
            request_id: ids.next_id(),
            new_password: PASSWORD.into(),
            current_password: String::new(),
        };
        let got = log
            .send(
                sw,
                pw.clone(),
                Call::SetFundPassword,
                seller.set_fund_password(pw),
            )
            .await;
        assert!(matches!(got, Got::Ok(_)), "setup: fund password");
        for other in others {
            let block = pb::BlockUserRequest {
                request_id: ids.next_id(),
                user_id: other.to_string(),
            };
            let got = log
                .send(sw, block.clone(), Call::BlockUser, seller.block_user(block))
                .await;
            assert!(matches!(got, Got::Ok(_)), "setup: block {other}");
        }
        let req = self.listing_request(ids.next_id());
        let got = log
            .send(
                sw,
                req.clone(),
                Call::PublishListing,
                seller.publish_listing(req),
            )
            .await;
        let Got::Ok(r) = got else {
            panic!("setup: publish")
        };
        self.note_listing(r.listing.as_ref());
    }

    fn listing_request(&self, request_id: String) -> pb::PublishListingRequest {
        pb::PublishListingRequest {
            request_id,
            asset: "EB".into(),
            fiat: "CNY".into(),
            price: PRICE.into(),
            total: LOT_COIN.to_string(),
            min_fiat: "7".into(),
            max_fiat: "7000".into(),
            method_ids: vec![self.method.clone()],
            fund_password: PASSWORD.into(),
            ..Default::default()
        }
    }

    fn note_listing(&mut self, l: Option<&pb::Listing>) {
        self.listing = l.and_then(|l| {
            let state = pb::ListingState::try_from(l.state).ok()?;
            matches!(state, pb::ListingState::Active | pb::ListingState::Paused)
                .then(|| (l.id.clone(), state))
        });
    }

    fn note_trade(&mut self, t: &pb::Trade, rng: &mut Rng) {
        let state = pb::TradeState::try_from(t.state).unwrap_or(pb::TradeState::Unspecified);
        if !matches!(
            state,
            pb::TradeState::AwaitingPayment | pb::TradeState::Paid | pb::TradeState::Appealed
        ) {
            self.open.remove(&t.id);
            return;
        }
        let dispute_now = rng.chance(250);
        let e = self.open.entry(t.id.clone()).or_insert(Open {
            state,
            dispute: false,
            appeal_from_ms: 0,
        });
        // A trade just paid: dispute it (appeal once allowed) or release it.
        if state == pb::TradeState::Paid && e.state != pb::TradeState::Paid {
            e.dispute = dispute_now;
        }
        e.state = state;
        e.appeal_from_ms = ms(t.appeal_from.as_ref());
    }

    /// Runs until the server is gone; gives the desk back with its round.
    pub async fn run(mut self, ctx: Ctx) -> (Desk, Ended) {
        let mut log = Log::new(ctx.round);
        let mut rng = ctx.rng(self.idx as u64 + 1);
        let mut ids = ctx.ids(&format!("d{}", self.idx));
        let mut trades = 0;
        let stop = match Clients::connect(&ctx.url).await {
            Ok(mut c) => {
                match self
                    .work(&mut c, &mut log, &mut rng, &mut ids, &mut trades)
                    .await
                {
                    Err(s) => s,
                    Ok(never) => match never {},
                }
            }
            Err(e) => Status::unavailable(e),
        };
        let ended = Ended::new(log, stop, &ctx, trades);
        (self, ended)
    }

    async fn work(
        &mut self,
        c: &mut Clients,
        log: &mut Log,
        rng: &mut Rng,
        ids: &mut Ids,
        trades: &mut u64,
    ) -> Result<std::convert::Infallible, Status> {
        let mut buyer = c.trading(Who::user(self.buyer));
        let mut seller = c.trading(Who::user(self.seller));
        let mut admin = c.admin(admin_who());
        self.refresh(&mut buyer, &mut seller, rng).await?;
        loop {
            let action = self.choose(rng);
            let Some(action) = action else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let mut s = Sides {
                buyer: &mut buyer,
                seller: &mut seller,
                admin: &mut admin,
                log,
                ids,
                rng,
            };
            *trades += self.act(action, &mut s).await?;
            let pause = rng.below(3);
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }

    /// Re-reads the desk's open trades and live listing (a killed round
    /// leaves calls whose outcome the desk never heard, and timers fired).
    async fn refresh(
        &mut self,
        buyer: &mut TradingServiceClient<Authed>,
        seller: &mut TradingServiceClient<Authed>,
        rng: &mut Rng,
    ) -> Result<(), Status> {
        let page = read(buyer.list_my_trades(pb::PageRequest {
            page_size: 50,
            page_token: String::new(),
        }))
        .await?;
        let mut seen = std::collections::BTreeSet::new();
        for t in &page.trades {
            seen.insert(t.id.clone());
            self.note_trade(t, rng);
        }
        let older: Vec<String> = self
            .open
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in older {
            let t = read(buyer.get_trade(pb::GetTradeRequest { trade_id: id })).await?;
            self.note_trade(&t, rng);
        }
        let listings = read(seller.list_my_listings(pb::PageRequest {
            page_size: 50,
            page_token: String::new(),
        }))
        .await?;
        self.listing = None;
        for l in &listings.listings {
            self.note_listing(Some(l));
            if self.listing.is_some() {
                break;
            }
        }
        Ok(())
    }

    fn choose(&self, rng: &mut Rng) -> Option<Action> {
        let now = now_ms();
        let of = |f: &dyn Fn(&Open) -> bool| -> Vec<String> {
            self.open
                .iter()
                .filter(|(_, o)| f(o))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let awaiting = of(&|o| o.state == pb::TradeState::AwaitingPayment);
        let to_release = of(&|o| o.state == pb::TradeState::Paid && !o.dispute);
        let to_appeal = of(&|o| {
            o.state == pb::TradeState::Paid
                && o.dispute
                && now >= o.appeal_from_ms + APPEAL_MARGIN_MS
        });
        let paid = of(&|o| o.state == pb::TradeState::Paid);
        let appealed = of(&|o| o.state == pb::TradeState::Appealed);
        let all: Vec<String> = self.open.keys().cloned().collect();
        let mut menu: Vec<(u64, Action)> = Vec::new();
        if !awaiting.is_empty() {
            menu.push((60, Action::MarkPaid(pick(rng, &awaiting))));
            menu.push((8, Action::CancelAwaiting(pick(rng, &awaiting))));
        }
        if !to_release.is_empty() {
            menu.push((60, Action::Release(pick(rng, &to_release))));
        }
        if !to_appeal.is_empty() {
            menu.push((40, Action::Appeal(pick(rng, &to_appeal))));
        }
        if !appealed.is_empty() {
            menu.push((3, Action::Settle(pick(rng, &appealed))));
            menu.push((3, Action::Withdraw(pick(rng, &appealed))));
            menu.push((6, Action::Evidence(pick(rng, &appealed))));
        }
        if awaiting.len() + paid.len() < OPEN_TRADES_MAX && appealed.len() < APPEALED_MAX {
            menu.push((40, Action::Buy));
        }
        if !all.is_empty() {
            menu.push((8, Action::Chat(pick(rng, &all))));
        }
        if self.listing.is_some() {
            menu.push((3, Action::PauseOrResume));
            menu.push((1, Action::CancelListing));
        }
        let total: u64 = menu.iter().map(|(w, _)| w).sum();
        if total == 0 {
            return None;
        }
        let mut at = rng.below(total);
        for (w, a) in menu {
            if at < w {
                return Some(a);
            }
            at -= w;
        }
        None
    }

    /// Carries out `action`; the number of trades it created.
    async fn act(&mut self, action: Action, s: &mut Sides<'_>) -> Result<u64, Status> {
        let (bw, sw) = (Who::user(self.buyer), Who::user(self.seller));
        let trade_act = |id: &str, s: &mut Sides<'_>| pb::TradeActionRequest {
            request_id: s.ids.next_id(),
            trade_id: id.to_owned(),
        };
        let got = match action {
            Action::Buy => return self.buy(s).await,
            Action::MarkPaid(id) => {
                let r = trade_act(&id, s);
                answered!(
                    s.log
                        .send(bw, r.clone(), Call::MarkPaid, s.buyer.mark_paid(r))
                        .await
                )
            }
            Action::CancelAwaiting(id) | Action::Withdraw(id) => {
                let r = trade_act(&id, s);
                answered!(
                    s.log
                        .send(bw, r.clone(), Call::CancelTrade, s.buyer.cancel_trade(r))
                        .await
                )
            }
            Action::Release(id) | Action::Settle(id) => {
                let r = pb::ReleaseRequest {
                    request_id: s.ids.next_id(),
                    trade_id: id,
                    fund_password: PASSWORD.into(),
                };
                answered!(
                    s.log
                        .send(sw, r.clone(), Call::Release, s.seller.release(r))
                        .await
                )
            }
            Action::Appeal(id) => {
                let by_seller = s.rng.chance(500);
                let r = pb::OpenAppealRequest {
                    request_id: s.ids.next_id(),
                    trade_id: id,
                    reason: if by_seller {
                        "fiat not received".into()
                    } else {
                        "paid, coin not released".into()
                    },
                };
                let (who, client) = if by_seller {
                    (sw, &mut *s.seller)
                } else {
                    (bw, &mut *s.buyer)
                };
                answered!(
                    s.log
                        .send(who, r.clone(), Call::OpenAppeal, client.open_appeal(r))
                        .await
                )
            }
            Action::Chat(id) => return self.chat(id, s).await.map(|()| 0),
            Action::Evidence(id) => return self.evidence(id, s).await.map(|()| 0),
            Action::PauseOrResume | Action::CancelListing => {
                return self.listing_action(action, s).await.map(|()| 0);
            }
        };
        match got {
            Got::Ok(r) => {
                if let Some(t) = r.trade.as_ref() {
                    self.note_trade(t, s.rng);
                }
            }
            Got::Refused(status) => self.refused(status, s).await?,
            Got::Down(s) => return Err(s),
        }
        Ok(0)
    }

    /// A trade action was refused (the trade moved on: a timer, customer
    /// service, the other side): re-read the desk's trades.
    async fn refused(&mut self, status: Status, s: &mut Sides<'_>) -> Result<(), Status> {
        assert!(
            matches!(
                status.code(),
                Code::FailedPrecondition | Code::NotFound | Code::PermissionDenied
            ),
            "desk {}: unexpected refusal {status:?}",
            self.idx
        );
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            let t = read(s.buyer.get_trade(pb::GetTradeRequest { trade_id: id })).await?;
            self.note_trade(&t, s.rng);
        }
        Ok(())
    }

    async fn buy(&mut self, s: &mut Sides<'_>) -> Result<u64, Status> {
        let r = pb::PlaceBuyRequest {
            request_id: s.ids.next_id(),
            asset: "EB".into(),
            fiat: "CNY".into(),
            coin_amount: s.rng.coin(100, 400),
            ..Default::default()
        };
        let bw = Who::user(self.buyer);
        match answered!(
            s.log
                .send(bw, r.clone(), Call::PlaceBuy, s.buyer.place_buy(r))
                .await
        ) {
            Got::Ok(resp) => {
                for id in &resp.trade_ids {
                    self.open.insert(
                        id.clone(),
                        Open {
                            state: pb::TradeState::AwaitingPayment,
                            dispute: false,
                            appeal_from_ms: 0,
                        },
                    );
                }
                Ok(resp.trade_ids.len() as u64)
            }
            Got::Refused(status) => {
                assert_eq!(
                    status.code(),
                    Code::FailedPrecondition,
                    "desk {}: a buy refused: {status:?}",
                    self.idx
                );
                self.restock(s).await.map(|()| 0)
            }
            Got::Down(st) => Err(st),
        }
    }

    /// Nothing could fill the buy: resume a paused listing, or cancel what
    /// is left of the live one and publish a new lot (depositing if short).
    async fn restock(&mut self, s: &mut Sides<'_>) -> Result<(), Status> {
        let sw = Who::user(self.seller);
        let listings = read(s.seller.list_my_listings(pb::PageRequest {
            page_size: 50,
            page_token: String::new(),
        }))
        .await?;
        for l in &listings.listings {
            let state = pb::ListingState::try_from(l.state).unwrap_or(pb::ListingState::Closed);
            let act = pb::ListingActionRequest {
                request_id: s.ids.next_id(),
                listing_id: l.id.clone(),
            };
            let got = match state {
                pb::ListingState::Paused => answered!(
                    s.log
                        .send(
                            sw,
                            act.clone(),
                            Call::ResumeListing,
                            s.seller.resume_listing(act)
                        )
                        .await
                ),
                pb::ListingState::Active => answered!(
                    s.log
                        .send(
                            sw,
                            act.clone(),
                            Call::CancelListing,
                            s.seller.cancel_listing(act)
                        )
                        .await
                ),
                _ => continue,
            };
            if state == pb::ListingState::Paused
                && let Got::Ok(r) = got
            {
                self.note_listing(r.listing.as_ref());
                if self.listing.is_some() {
                    return Ok(());
                }
            }
        }
        let account = read(s.seller.get_account(pb::GetAccountRequest {})).await?;
        let available = account
            .balances
            .iter()
            .find(|b| b.asset == "EB")
            .map_or(Decimal::ZERO, |b| dec(&b.available));
        let lot = Decimal::from(LOT_COIN);
        if available < lot {
            let dep = transfer(s.ids.next_id(), self.seller, &(lot - available).to_string());
            s.log.sent_deposits += dec(&dep.amount);
            answered!(
                s.log
                    .send(
                        admin_who(),
                        dep.clone(),
                        Call::Deposit,
                        s.admin.deposit(dep)
                    )
                    .await
            );
        }
        let req = self.listing_request(s.ids.next_id());
        if let Got::Ok(r) = answered!(
            s.log
                .send(
                    sw,
                    req.clone(),
                    Call::PublishListing,
                    s.seller.publish_listing(req)
                )
                .await
        ) {
            self.note_listing(r.listing.as_ref());
        }
        Ok(())
    }

    async fn listing_action(&mut self, action: Action, s: &mut Sides<'_>) -> Result<(), Status> {
        let Some((id, state)) = self.listing.clone() else {
            return Ok(());
        };
        let sw = Who::user(self.seller);
        let r = pb::ListingActionRequest {
            request_id: s.ids.next_id(),
            listing_id: id,
        };
        let got = match (action, state) {
            (Action::CancelListing, _) => {
                s.log
                    .send(
                        sw,
                        r.clone(),
                        Call::CancelListing,
                        s.seller.cancel_listing(r),
                    )
                    .await
            }
            (_, pb::ListingState::Paused) => {
                s.log
                    .send(
                        sw,
                        r.clone(),
                        Call::ResumeListing,
                        s.seller.resume_listing(r),
                    )
                    .await
            }
            _ => {
                s.log
                    .send(sw, r.clone(), Call::PauseListing, s.seller.pause_listing(r))
                    .await
            }
        };
        match got {
            Got::Ok(r) => self.note_listing(r.listing.as_ref()),
            // Closed meanwhile (fully traded): the next buy restocks.
            Got::Refused(_) => self.listing = None,
            Got::Down(st) => return Err(st),
        }
        Ok(())
    }

    async fn chat(&mut self, id: String, s: &mut Sides<'_>) -> Result<(), Status> {
        let by_seller = s.rng.chance(500);
        let r = pb::SendChatRequest {
            request_id: s.ids.next_id(),
            trade_id: id,
            text: format!("soak chat {}", s.rng.below(1_000_000)),
            attachment: None,
        };
        let (who, client) = if by_seller {
            (Who::user(self.seller), &mut *s.seller)
        } else {
            (Who::user(self.buyer), &mut *s.buyer)
        };
        answered!(
            s.log
                .send(who, r.clone(), Call::SendChat, client.send_chat(r))
                .await
        );
        Ok(())
    }

    async fn evidence(&mut self, id: String, s: &mut Sides<'_>) -> Result<(), Status> {
        let by_seller = s.rng.chance(500);
        let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
        data.extend_from_slice(&s.rng.next_u64().to_le_bytes());
        data.resize(256, 0x5a);
        let r = pb::AddEvidenceRequest {
            request_id: s.ids.next_id(),
            trade_id: id,
            description: "bank slip".into(),
            attachment: Some(pb::Attachment {
                content_type: "image/png".into(),
                file_name: "slip.png".into(),
                data,
            }),
        };
        let (who, client) = if by_seller {
            (Who::user(self.seller), &mut *s.seller)
        } else {
            (Who::user(self.buyer), &mut *s.buyer)
        };
        answered!(
            s.log
                .send(who, r.clone(), Call::AddEvidence, client.add_evidence(r))
                .await
        );
        Ok(())
    }
}

/// What a desk's action works with.
struct Sides<'a> {
    buyer: &'a mut TradingServiceClient<Authed>,
    seller: &'a mut TradingServiceClient<Authed>,
    admin: &'a mut AdminServiceClient<Authed>,
    log: &'a mut Log,
    ids: &'a mut Ids,
    rng: &'a mut Rng,
}

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
