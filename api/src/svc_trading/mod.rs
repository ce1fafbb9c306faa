//! `otc.v1.TradingService`: what buyers, sellers and merchants call.
//!
//! Every mutating call runs the one pipeline of [`crate::pipeline`]:
//! authenticate, look the request id up, convert, submit, and answer with
//! the reply the writer rendered ([`crate::views`]). Reads are in
//! [`crate::reads`].

use std::sync::Arc;

use otc_engine::command::{BuyRequest, FastSellRequest, ListingSpec};
use otc_engine::{Command, Event, ListingId, TradeId, UserId};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::common::{TRADERS, caller};
use crate::convert as cv;
use crate::core::Core;
use crate::pipeline::{ClientRequest, Prepared, command, mutate, protected_command};
use crate::proto as pb;
use crate::proto::trading_service_server::TradingService;
use crate::{reads, requests};

mod password;

/// The trading service.
pub struct Trading {
    /// Shared state.
    pub core: Arc<Core>,
    /// The declared payment channels.
    pub channels: Arc<crate::channels::Channels>,
}

impl Trading {
    async fn listing_action(
        &self,
        req: Request<pb::ListingActionRequest>,
        method: &'static str,
        make: fn(UserId, ListingId) -> Command,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(&self.core, c.user, method, req.into_inner(), |r| {
            Ok(make(c.user, cv::listing_id(&r.listing_id)?))
        })
        .await
    }

    async fn trade_action(
        &self,
        req: Request<pb::TradeActionRequest>,
        method: &'static str,
        make: fn(UserId, TradeId) -> Command,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(&self.core, c.user, method, req.into_inner(), |r| {
            Ok(make(c.user, cv::trade_id(&r.trade_id)?))
        })
        .await
    }

    async fn block(
        &self,
        req: Request<pb::BlockUserRequest>,
        method: &'static str,
        make: fn(UserId, UserId) -> Command,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(&self.core, c.user, method, req.into_inner(), |r| {
            Ok(make(c.user, cv::user_id("user_id", &r.user_id)?))
        })
        .await
    }
}

type EventStream = ReceiverStream<Result<pb::Event, Status>>;

#[tonic::async_trait]
impl TradingService for Trading {
    async fn get_account(
        &self,
        req: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        reads::account(&self.core, &c).await.map(Response::new)
    }

    async fn bind_payment_method(
        &self,
        req: Request<pb::BindPaymentMethodRequest>,
    ) -> Result<Response<pb::BindPaymentMethodResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(
            &self.core,
            c.user,
            "BindPaymentMethod",
            req.into_inner(),
            |r| {
                let details = requests::method_details(r, &self.channels)?;
                Ok(Command::BindMethod {
                    user: c.user,
                    details,
                })
            },
        )
        .await
    }

    async fn remove_payment_method(
        &self,
        req: Request<pb::RemovePaymentMethodRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(
            &self.core,
            c.user,
            "RemovePaymentMethod",
            req.into_inner(),
            |r| {
                Ok(Command::RemoveMethod {
                    user: c.user,
                    method: cv::method_id(&r.method_id)?,
                })
            },
        )
        .await
    }

    async fn set_fund_password(
        &self,
        req: Request<pb::SetFundPasswordRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        self.change_fund_password(req).await
    }

    async fn block_user(
        &self,
        req: Request<pb::BlockUserRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        self.block(req, "BlockUser", |user, target| Command::Block {
            user,
            target,
        })
        .await
    }

    async fn unblock_user(
        &self,
        req: Request<pb::BlockUserRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        self.block(req, "UnblockUser", |user, target| Command::Unblock {
            user,
            target,
        })
        .await
    }

    async fn publish_listing(
        &self,
        req: Request<pb::PublishListingRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        protected_command(
            &self.core,
            c.user,
            "PublishListing",
            req.into_inner(),
            |r| {
                let spec = ListingSpec::try_from(r)?;
                Ok(move |proof| Command::PublishListing {
                    seller: c.user,
                    proof,
                    spec,
                })
            },
        )
        .await
    }

    async fn pause_listing(
        &self,
        req: Request<pb::ListingActionRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        self.listing_action(req, "PauseListing", |seller, listing| {
            Command::PauseListing { seller, listing }
        })
        .await
    }

    async fn resume_listing(
        &self,
        req: Request<pb::ListingActionRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        self.listing_action(req, "ResumeListing", |seller, listing| {
            Command::ResumeListing { seller, listing }
        })
        .await
    }

    async fn cancel_listing(
        &self,
        req: Request<pb::ListingActionRequest>,
    ) -> Result<Response<pb::ListingResponse>, Status> {
        self.listing_action(req, "CancelListing", |seller, listing| {
            Command::CancelListing { seller, listing }
        })
        .await
    }

    async fn list_my_listings(
        &self,
        req: Request<pb::PageRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        reads::my_listings(&self.core, c.user, req.get_ref())
            .await
            .map(Response::new)
    }

    async fn browse_book(
        &self,
        req: Request<pb::BrowseBookRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        caller(&self.core, &req, TRADERS)?;
        reads::book(&self.core, req.get_ref())
            .await
            .map(Response::new)
    }

    async fn place_buy(
        &self,
        req: Request<pb::PlaceBuyRequest>,
    ) -> Result<Response<pb::PlaceBuyResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(&self.core, c.user, "PlaceBuy", req.into_inner(), |r| {
            Ok(Command::PlaceBuy {
                buyer: c.user,
                request: BuyRequest::try_from(r)?,
            })
        })
        .await
    }

    async fn cancel_buy_order(
        &self,
        req: Request<pb::CancelBuyOrderRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(
            &self.core,
            c.user,
            "CancelBuyOrder",
            req.into_inner(),
            |r| {
                Ok(Command::CancelBuyOrder {
                    buyer: c.user,
                    order: cv::buy_order_id(&r.buy_order_id)?,
                })
            },
        )
        .await
    }

    async fn fast_sell(
        &self,
        req: Request<pb::FastSellRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        protected_command(&self.core, c.user, "FastSell", req.into_inner(), |r| {
            let request = FastSellRequest::try_from(r)?;
            Ok(move |proof| Command::FastSell {
                seller: c.user,
                proof,
                request,
            })
        })
        .await
    }

    async fn get_trade(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::Trade>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        reads::party_trade(&self.core, c.user, &req.get_ref().trade_id)
            .await
            .map(Response::new)
    }

    async fn list_my_trades(
        &self,
        req: Request<pb::PageRequest>,
    ) -> Result<Response<pb::ListTradesResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        reads::my_trades(&self.core, c.user, req.get_ref())
            .await
            .map(Response::new)
    }

    async fn mark_paid(
        &self,
        req: Request<pb::TradeActionRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        self.trade_action(req, "MarkPaid", |buyer, trade| Command::MarkPaid {
            buyer,
            trade,
        })
        .await
    }

    async fn cancel_trade(
        &self,
        req: Request<pb::TradeActionRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        self.trade_action(req, "CancelTrade", |buyer, trade| Command::CancelTrade {
            buyer,
            trade,
        })
        .await
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        protected_command(&self.core, c.user, "Release", req.into_inner(), |r| {
            let trade = cv::trade_id(&r.trade_id)?;
            Ok(move |proof| Command::Release {
                seller: c.user,
                trade,
                proof,
            })
        })
        .await
    }

    async fn create_payment_order(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::PaymentOrder>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let trade = cv::trade_id(&req.get_ref().trade_id)?;
        crate::payments::payment_order(&self.core, &self.channels, c.user, trade)
            .await
            .map(Response::new)
    }

    async fn open_appeal(
        &self,
        req: Request<pb::OpenAppealRequest>,
    ) -> Result<Response<pb::TradeResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        command(&self.core, c.user, "OpenAppeal", req.into_inner(), |r| {
            Ok(Command::OpenAppeal {
                user: c.user,
                trade: cv::trade_id(&r.trade_id)?,
                reason: r.reason.clone(),
            })
        })
        .await
    }

    async fn add_evidence(
        &self,
        req: Request<pb::AddEvidenceRequest>,
    ) -> Result<Response<pb::AddEvidenceResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let hold = crate::gate::Hold::of(&req);
        let mut r = req.into_inner();
        let rid = r.take_request_id();
        mutate(&self.core, c.user, "AddEvidence", &rid, &r, async {
            let trade = cv::trade_id(&r.trade_id)?;
            let (attachment, bytes) = requests::attachment(c.user, r.attachment.as_ref())?;
            Ok(Prepared {
                password: None,
                command: Command::AddEvidence {
                    user: c.user,
                    trade,
                    description: r.description.clone(),
                    attachment,
                },
                attachment: bytes,
                hold,
            })
        })
        .await
    }

    async fn get_appeal(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::Appeal>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        reads::party_appeal(&self.core, c.user, &req.get_ref().trade_id)
            .await
            .map(Response::new)
    }

    async fn get_attachment(
        &self,
        req: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        crate::common::party_trade(&self.core, c.user, id).await?;
        let file =
            crate::svc_support::find_attachment(&self.core, id, &r.attachment_id, Some(c.user))
                .await?;
        Ok(Response::new(
            crate::common::read_attachment(&self.core, &file).await?,
        ))
    }

    async fn send_chat(
        &self,
        req: Request<pb::SendChatRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let hold = crate::gate::Hold::of(&req);
        let mut r = req.into_inner();
        let rid = r.take_request_id();
        mutate(&self.core, c.user, "SendChat", &rid, &r, async {
            let trade = cv::trade_id(&r.trade_id)?;
            let (attachment, bytes) = requests::attachment(c.user, r.attachment.as_ref())?;
            Ok(Prepared {
                password: None,
                command: Command::PostChat {
                    user: c.user,
                    trade,
                    text: r.text.clone(),
                    attachment,
                },
                attachment: bytes,
                hold,
            })
        })
        .await
    }

    async fn list_chat(
        &self,
        req: Request<pb::ListChatRequest>,
    ) -> Result<Response<pb::ListChatResponse>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        crate::common::party_trade(&self.core, c.user, id).await?;
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
        let stream = crate::streams::event_stream(
            Arc::clone(&self.core),
            me,
            c.expires,
            req.get_ref().after_seq,
            keep,
        )
        .await?;
        Ok(Response::new(stream))
    }
}
