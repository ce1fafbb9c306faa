//! A desk: a seller and a buyer trading with each other through the real
//! book (see [`super::actors`]). This file: the desk's state and how it
//! picks its next action; `desk/acts.rs`: the actions that take more than a
//! call.

use std::collections::BTreeMap;
use std::time::Duration;

use otc_api::proto as pb;
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tonic::{Code, Status};
use uuid::Uuid;

use super::actors::{
    APPEAL_MARGIN_MS, APPEALED_MAX, Ctx, Ended, LOT_COIN, OPEN_TRADES_MAX, PRICE, admin_who,
    answered, dec, ms, now_ms, read, transfer,
};
use super::{Call, Clients, Got, Ids, Log, Rng, Who};
use crate::harness::{Authed, steps::PASSWORD};

mod acts;

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
