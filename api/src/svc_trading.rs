//! `otc.v1.TradingService`: what buyers, sellers and merchants call.

use std::sync::Arc;

use otc_engine::command::{BuyAmount, BuyRequest, FastSellRequest, ListingSpec};
use otc_engine::users::MethodDetails;
use otc_engine::{Command, Event, EventKind, ListingId, TradeId, UserId};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::common::{self, TRADERS, caller};
use crate::convert::{self as cv, receipt, request_id};
use crate::core::{Core, clock_now};
use crate::proto as pb;
use crate::proto::trading_service_server::TradingService;

/// The trading service.
pub struct Trading {
    /// Shared state.
    pub core: Arc<Core>,
}

fn created_trades(events: &[Event]) -> Vec<TradeId> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TradeCreated { trade, .. } => Some(trade),
            _ => None,
        })
        .collect()
}

impl Trading {
    async fn listing_view(&self, id: ListingId) -> Result<pb::Listing, Status> {
        let w = self.core.writer.read().await;
        let e = w.engine();
        let listing = match e.listing(id) {
            Some(l) => l.clone(),
            None => w
                .store()
                .listing(id)
                .map_err(|x| Status::unavailable(x.to_string()))?
                .ok_or_else(|| Status::not_found(format!("listing {id} not found")))?,
        };
        let kinds = listing_kinds(e, &listing);
        let record = e.seller_record(listing.seller, clock_now());
        Ok(cv::listing_pb(&listing, kinds, Some(&record)))
    }

    async fn listing_action(
        &self,
        req: Request<pb::ListingActionRequest>,
        make: fn(UserId, ListingId) -> Command,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::listing_id(&r.listing_id)?;
        let out = self
            .core
            .submit(Some(request_id(&r.request_id)?), make(c.user, id))
            .await?;
        let (receipt, _) = receipt(out)?;
        let listing = self.listing_view(id).await?;
        Ok(Response::new(pb::ListingResponse {
            receipt: Some(receipt),
            listing: Some(listing),
        }))
    }

    async fn trade_action(
        &self,
        c: crate::auth::Caller,
        id: TradeId,
        rid: &str,
        cmd: Command,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let out = self.core.submit(Some(request_id(rid)?), cmd).await?;
        let (receipt, _) = receipt(out)?;
        let t = common::party_trade(&self.core, c.user, id).await?;
        let full = common::sees_method(&t, c.user);
        Ok(Response::new(pb::TradeResponse {
            receipt: Some(receipt),
            trade: Some(cv::trade_pb(&t, full)),
        }))
    }

    async fn simple(&self, rid: &str, cmd: Command) -> Result<Response<pb::Receipt>, Status> {
        let out = self.core.submit(Some(request_id(rid)?), cmd).await?;
        Ok(Response::new(receipt(out)?.0))
    }
}

type EventStream = ReceiverStream<Result<pb::Event, Status>>;

/// The payment kinds a listing accepts, for the wire.
fn listing_kinds(e: &otc_engine::Engine, l: &otc_engine::listing::Listing) -> Vec<i32> {
    let Some(u) = e.user(l.seller) else {
        return Vec::new();
    };
    l.methods
        .iter()
        .filter_map(|m| u.methods.get(m))
        .map(|m| cv::kind_pb(m.details.kind()))
        .collect()
}

#[tonic::async_trait]
impl TradingService for Trading {
    async fn get_account(
        &self,
        req: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let w = self.core.writer.read().await;
        let e = w.engine();
        let balances = e
            .config()
            .assets
            .keys()
            .map(|asset| {
                let b = e.balance(c.user, *asset);
                pb::Balance {
                    asset: asset.to_string(),
                    available: b.available.to_string(),
                    escrowed: b.escrowed.to_string(),
                }
            })
            .collect();
        let u = e.user(c.user);
        let methods = u
            .map(|u| {
                u.methods
                    .iter()
                    .map(|(id, m)| cv::method_pb(*id, &m.details, true))
                    .collect()
            })
            .unwrap_or_default();
        let blocked = e
            .state()
            .blocks
            .range((c.user, UserId(uuid::Uuid::nil()))..)
            .take_while(|(a, _)| *a == c.user)
            .map(|(_, b)| b.to_string())
            .collect();
        Ok(Response::new(pb::GetAccountResponse {
            user_id: c.user.to_string(),
            role: c.role.as_str().into(),
            balances,
            methods,
            fund_password_set: u.is_some_and(|u| u.fund_password.is_some()),
            locked_until: u.and_then(|u| u.lock_at(clock_now())).map(cv::ts),
            blocked_user_ids: blocked,
        }))
    }

    async fn bind_payment_method(
        &self,
        req: Request<pb::BindPaymentMethodRequest>,
    ) -> Result<Response<pb::BindPaymentMethodResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let details = match cv::method_kind("kind", r.kind)? {
            otc_engine::users::MethodKind::Bank => MethodDetails::Bank {
                bank: r.bank,
                holder: r.holder,
                card_number: r.account,
            },
            otc_engine::users::MethodKind::Alipay => MethodDetails::Alipay {
                holder: r.holder,
                account: r.account,
            },
            otc_engine::users::MethodKind::WeChat => MethodDetails::WeChat {
                holder: r.holder,
                account: r.account,
            },
        };
        let out = self
            .core
            .submit(
                Some(request_id(&r.request_id)?),
                Command::BindMethod {
                    user: c.user,
                    details,
                },
            )
            .await?;
        let (receipt, events) = receipt(out)?;
        let method_id = events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::MethodBound { method, .. } => Some(method.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pb::BindPaymentMethodResponse {
            receipt: Some(receipt),
            method_id,
        }))
    }

    async fn remove_payment_method(
        &self,
        req: Request<pb::RemovePaymentMethodRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let method = cv::method_id(&r.method_id)?;
        self.simple(
            &r.request_id,
            Command::RemoveMethod {
                user: c.user,
                method,
            },
        )
        .await
    }

    async fn set_fund_password(
        &self,
        req: Request<pb::SetFundPasswordRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let rid = request_id(&r.request_id)?;
        let n = r.new_password.chars().count();
        if !(6..=128).contains(&n) {
            return Err(Status::invalid_argument(
                "new_password must be 6 to 128 characters",
            ));
        }
        let has_one = self
            .core
            .writer
            .read()
            .await
            .engine()
            .fund_password(c.user)
            .is_some();
        let current = if has_one {
            if r.current_password.is_empty() {
                return Err(Status::failed_precondition(
                    "changing the fund password requires current_password",
                ));
            }
            Some(
                self.core
                    .verify_password(c.user, &r.current_password)
                    .await?,
            )
        } else {
            None
        };
        let hash = self.core.hash_password(r.new_password).await?;
        self.simple(
            &rid,
            Command::SetFundPassword {
                user: c.user,
                hash,
                current,
            },
        )
        .await
    }

    async fn block_user(
        &self,
        req: Request<pb::BlockUserRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let target = cv::user_id("user_id", &r.user_id)?;
        self.simple(
            &r.request_id,
            Command::Block {
                user: c.user,
                target,
            },
        )
        .await
    }

    async fn unblock_user(
        &self,
        req: Request<pb::BlockUserRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let target = cv::user_id("user_id", &r.user_id)?;
        self.simple(
            &r.request_id,
            Command::Unblock {
                user: c.user,
                target,
            },
        )
        .await
    }

    async fn publish_listing(
        &self,
        req: Request<pb::PublishListingRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let rid = request_id(&r.request_id)?;
        let methods = r
            .method_ids
            .iter()
            .map(|m| cv::method_id(m))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = ListingSpec {
            asset: cv::asset("asset", &r.asset)?,
            fiat: cv::fiat("fiat", &r.fiat)?,
            price: cv::dec("price", &r.price)?,
            total: cv::dec("total", &r.total)?,
            min_fiat: cv::dec("min_fiat", &r.min_fiat)?,
            max_fiat: cv::dec("max_fiat", &r.max_fiat)?,
            methods,
            payment_window_ms: match r.payment_window_secs {
                0 => None,
                s if s < 0 => {
                    return Err(Status::invalid_argument(
                        "payment_window_secs must not be negative",
                    ));
                }
                s => Some(s.saturating_mul(1000)),
            },
            terms: r.terms,
        };
        {
            // Say what is missing before asking for a password (SPEC §7).
            let w = self.core.writer.read().await;
            let u = w.engine().user(c.user);
            let has_method = u.is_some_and(|u| !u.methods.is_empty());
            let has_password = u.is_some_and(|u| u.fund_password.is_some());
            let missing = match (has_method, has_password) {
                (true, true) => None,
                (false, false) => Some("bind a payment method and set a fund password first"),
                (false, true) => Some("bind a payment method first"),
                (true, false) => Some("set a fund password first"),
            };
            if let Some(m) = missing {
                return Err(Status::failed_precondition(format!("cannot sell yet: {m}")));
            }
        }
        let proof = self.core.verify_password(c.user, &r.fund_password).await?;
        let out = self
            .core
            .submit(
                Some(rid),
                Command::PublishListing {
                    seller: c.user,
                    proof,
                    spec,
                },
            )
            .await?;
        let (receipt, events) = receipt(out)?;
        let id = events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::ListingChanged { listing, .. } => Some(listing),
                _ => None,
            })
            .ok_or_else(|| Status::internal("publish produced no listing"))?;
        let listing = self.listing_view(id).await?;
        Ok(Response::new(pb::ListingResponse {
            receipt: Some(receipt),
            listing: Some(listing),
        }))
    }

    async fn pause_listing(
        &self,
        req: Request<pb::ListingActionRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        self.listing_action(req, |seller, listing| Command::PauseListing {
            seller,
            listing,
        })
        .await
    }

    async fn resume_listing(
        &self,
        req: Request<pb::ListingActionRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        self.listing_action(req, |seller, listing| Command::ResumeListing {
            seller,
            listing,
        })
        .await
    }

    async fn cancel_listing(
        &self,
        req: Request<pb::ListingActionRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        self.listing_action(req, |seller, listing| Command::CancelListing {
            seller,
            listing,
        })
        .await
    }

    async fn list_my_listings(
        &self,
        req: Request<pb::PageRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let size = cv::page_size(r.page_size)?;
        let before = if r.page_token.is_empty() {
            None
        } else {
            Some(cv::listing_id(&r.page_token)?.0)
        };
        let ids = {
            let w = self.core.writer.read().await;
            w.store()
                .user_items(otc_storage::codec::kind::USER_LISTING, c.user, before, size)
                .map_err(|e| Status::unavailable(e.to_string()))?
        };
        let mut listings = Vec::with_capacity(ids.len());
        for id in &ids {
            listings.push(self.listing_view(ListingId(*id)).await?);
        }
        let next_page_token = if ids.len() == size {
            ids.last()
                .map(|i| ListingId(*i).to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListListingsResponse {
            listings,
            next_page_token,
        }))
    }

    async fn browse_book(
        &self,
        req: Request<pb::BrowseBookRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        let _c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let size = cv::page_size(r.page_size)?;
        let (asset, fiat) = (cv::asset("asset", &r.asset)?, cv::fiat("fiat", &r.fiat)?);
        let after = if r.page_token.is_empty() {
            None
        } else {
            let id = cv::listing_id(&r.page_token)?;
            let w = self.core.writer.read().await;
            let l = w.engine().listing(id).ok_or_else(|| {
                Status::invalid_argument(
                    "page_token no longer names a listing; browse from the start",
                )
            })?;
            Some(l.book_key())
        };
        let w = self.core.writer.read().await;
        let e = w.engine();
        let page = e.book_page(asset, fiat, after, size, clock_now());
        let listings: Vec<pb::Listing> = page
            .iter()
            .map(|entry| {
                let l = entry.listing;
                let kinds = listing_kinds(e, l);
                cv::listing_pb(l, kinds, Some(&entry.record))
            })
            .collect();
        let next_page_token = if page.len() == size {
            page.last()
                .map(|p| p.listing.id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListListingsResponse {
            listings,
            next_page_token,
        }))
    }

    async fn place_buy(
        &self,
        req: Request<pb::PlaceBuyRequest>,
    ) -> Result<Response<pb::PlaceBuyResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let rid = request_id(&r.request_id)?;
        let amount = match (r.coin_amount.is_empty(), r.fiat_amount.is_empty()) {
            (false, true) => BuyAmount::Coin(cv::dec("coin_amount", &r.coin_amount)?),
            (true, false) => BuyAmount::Fiat(cv::dec("fiat_amount", &r.fiat_amount)?),
            _ => {
                return Err(Status::invalid_argument(
                    "give exactly one of coin_amount and fiat_amount",
                ));
            }
        };
        let methods = r
            .methods
            .iter()
            .map(|k| cv::method_kind("methods", *k))
            .collect::<Result<Vec<_>, _>>()?;
        if r.rest_secs < 0 {
            return Err(Status::invalid_argument("rest_secs must not be negative"));
        }
        let request = BuyRequest {
            asset: cv::asset("asset", &r.asset)?,
            fiat: cv::fiat("fiat", &r.fiat)?,
            amount,
            max_price: cv::opt_dec("max_price", &r.max_price)?,
            methods,
            rest: r
                .rest
                .then_some((r.rest_secs > 0).then(|| r.rest_secs.saturating_mul(1000))),
        };
        let out = self
            .core
            .submit(
                Some(rid),
                Command::PlaceBuy {
                    buyer: c.user,
                    request,
                },
            )
            .await?;
        let (receipt, events) = receipt(out)?;
        let buy_order_id = events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::BuyOrderChanged { order, .. } => Some(order.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let trade_ids = created_trades(&events)
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok(Response::new(pb::PlaceBuyResponse {
            receipt: Some(receipt),
            trade_ids,
            buy_order_id,
        }))
    }

    async fn cancel_buy_order(
        &self,
        req: Request<pb::CancelBuyOrderRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let order = cv::buy_order_id(&r.buy_order_id)?;
        self.simple(
            &r.request_id,
            Command::CancelBuyOrder {
                buyer: c.user,
                order,
            },
        )
        .await
    }

    async fn fast_sell(
        &self,
        req: Request<pb::FastSellRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let rid = request_id(&r.request_id)?;
        let request = FastSellRequest {
            asset: cv::asset("asset", &r.asset)?,
            fiat: cv::fiat("fiat", &r.fiat)?,
            amount: cv::dec("coin_amount", &r.coin_amount)?,
            method: cv::method_id(&r.method_id)?,
        };
        let proof = self.core.verify_password(c.user, &r.fund_password).await?;
        let out = self
            .core
            .submit(
                Some(rid),
                Command::FastSell {
                    seller: c.user,
                    proof,
                    request,
                },
            )
            .await?;
        let (receipt, events) = receipt(out)?;
        let id = created_trades(&events)
            .first()
            .copied()
            .ok_or_else(|| Status::internal("fast sell produced no trade"))?;
        let t = common::party_trade(&self.core, c.user, id).await?;
        Ok(Response::new(pb::TradeResponse {
            receipt: Some(receipt),
            trade: Some(cv::trade_pb(&t, true)),
        }))
    }

    async fn get_trade(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::Trade>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let id = cv::trade_id(&req.get_ref().trade_id)?;
        let t = common::party_trade(&self.core, c.user, id).await?;
        Ok(Response::new(cv::trade_pb(
            &t,
            common::sees_method(&t, c.user),
        )))
    }

    async fn list_my_trades(
        &self,
        req: Request<pb::PageRequest>,
    ) -> Result<Response<pb::ListTradesResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let size = cv::page_size(r.page_size)?;
        let before = if r.page_token.is_empty() {
            None
        } else {
            Some(cv::trade_id(&r.page_token)?.0)
        };
        let ids = {
            let w = self.core.writer.read().await;
            w.store()
                .user_items(otc_storage::codec::kind::USER_TRADE, c.user, before, size)
                .map_err(|e| Status::unavailable(e.to_string()))?
        };
        let mut trades = Vec::with_capacity(ids.len());
        for id in &ids {
            let t = common::load_trade(&self.core, TradeId(*id)).await?;
            trades.push(cv::trade_pb(&t, common::sees_method(&t, c.user)));
        }
        let next_page_token = if ids.len() == size {
            ids.last()
                .map(|i| TradeId(*i).to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListTradesResponse {
            trades,
            next_page_token,
        }))
    }

    async fn mark_paid(
        &self,
        req: Request<pb::TradeActionRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        self.trade_action(
            c,
            id,
            &r.request_id,
            Command::MarkPaid {
                buyer: c.user,
                trade: id,
            },
        )
        .await
    }

    async fn cancel_trade(
        &self,
        req: Request<pb::TradeActionRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        self.trade_action(
            c,
            id,
            &r.request_id,
            Command::CancelTrade {
                buyer: c.user,
                trade: id,
            },
        )
        .await
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        request_id(&r.request_id)?;
        // Refuse strangers and wrong states before asking for the password.
        let t = common::party_trade(&self.core, c.user, id).await?;
        if t.seller != c.user {
            return Err(Status::permission_denied(
                "only the seller can release the coin",
            ));
        }
        let proof = self.core.verify_password(c.user, &r.fund_password).await?;
        self.trade_action(
            c,
            id,
            &r.request_id,
            Command::Release {
                seller: c.user,
                trade: id,
                proof,
            },
        )
        .await
    }

    async fn open_appeal(
        &self,
        req: Request<pb::OpenAppealRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        self.trade_action(
            c,
            id,
            &r.request_id,
            Command::OpenAppeal {
                user: c.user,
                trade: id,
                reason: r.reason,
            },
        )
        .await
    }

    async fn add_evidence(
        &self,
        req: Request<pb::AddEvidenceRequest>,
    ) -> Result<Response<pb::AddEvidenceResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let rid = request_id(&r.request_id)?;
        let id = cv::trade_id(&r.trade_id)?;
        common::party_trade(&self.core, c.user, id).await?;
        let attachment = match &r.attachment {
            Some(a) => Some(common::store_attachment(&self.core, c.user, a).await?),
            None => None,
        };
        let cmd = Command::AddEvidence {
            user: c.user,
            trade: id,
            description: r.description,
            attachment,
        };
        let out = self.core.submit(Some(rid), cmd).await?;
        let (receipt, events) = receipt(out)?;
        let evidence_id = events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::EvidenceAdded { evidence, .. } => Some(evidence.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pb::AddEvidenceResponse {
            receipt: Some(receipt),
            evidence_id,
        }))
    }

    async fn get_appeal(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::Appeal>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let id = cv::trade_id(&req.get_ref().trade_id)?;
        let t = common::party_trade(&self.core, c.user, id).await?;
        let a = common::load_appeal(&self.core, id).await?;
        Ok(Response::new(cv::appeal_pb(&a, &t, Some(c.user))))
    }

    async fn get_attachment(
        &self,
        req: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        common::party_trade(&self.core, c.user, id).await?;
        let file =
            crate::svc_support::find_attachment(&self.core, id, &r.attachment_id, Some(c.user))
                .await?;
        Ok(Response::new(
            common::read_attachment(&self.core, &file).await?,
        ))
    }

    async fn send_chat(
        &self,
        req: Request<pb::SendChatRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let rid = request_id(&r.request_id)?;
        let id = cv::trade_id(&r.trade_id)?;
        common::party_trade(&self.core, c.user, id).await?;
        let attachment = match &r.attachment {
            Some(a) => Some(common::store_attachment(&self.core, c.user, a).await?),
            None => None,
        };
        self.simple(
            &rid,
            Command::PostChat {
                user: c.user,
                trade: id,
                text: r.text,
                attachment,
            },
        )
        .await
    }

    async fn list_chat(
        &self,
        req: Request<pb::ListChatRequest>,
    ) -> Result<Response<pb::ListChatResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        common::party_trade(&self.core, c.user, id).await?;
        crate::svc_support::chat_page(&self.core, id, r.after_seq, r.page_size).await
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        req: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let me = c.user;
        let keep = move |e: &Event| e.audience().users.contains(&Some(me));
        let stream =
            common::event_stream(Arc::clone(&self.core), me, req.get_ref().after_seq, keep).await?;
        Ok(Response::new(stream))
    }
}
