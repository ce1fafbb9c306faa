//! `otc.v1.MerchantService` (merchants' capacity) and `otc.v1.AdminService`
//! (the back office: deposits, withdrawals, merchant registration).

use std::sync::Arc;

use otc_engine::command::CapacityRequest;
use otc_engine::{Command, UserId};
use tonic::{Request, Response, Status};

use crate::auth::Role;
use crate::common::caller;
use crate::convert as cv;
use crate::core::Core;
use crate::pipeline::command;
use crate::proto as pb;
use crate::proto::admin_service_server::AdminService;
use crate::proto::merchant_service_server::MerchantService;

/// The merchant service.
pub struct Merchants {
    /// Shared state.
    pub core: Arc<Core>,
}

/// The admin service.
pub struct Admin {
    /// Shared state.
    pub core: Arc<Core>,
    /// The declared payment channels.
    pub channels: Arc<crate::channels::Channels>,
}

const MERCHANT: &[Role] = &[Role::Merchant];
const ADMIN: &[Role] = &[Role::Admin];

#[tonic::async_trait]
impl MerchantService for Merchants {
    async fn set_capacity(
        &self,
        req: Request<pb::SetCapacityRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, MERCHANT)?;
        command(&self.core, c.user, "SetCapacity", req.into_inner(), |r| {
            Ok(Command::SetMerchantCapacity {
                merchant: c.user,
                capacity: CapacityRequest::try_from(r)?,
            })
        })
        .await
    }

    async fn set_online(
        &self,
        req: Request<pb::SetOnlineRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, MERCHANT)?;
        command(&self.core, c.user, "SetOnline", req.into_inner(), |r| {
            Ok(Command::SetMerchantOnline {
                merchant: c.user,
                online: r.online,
            })
        })
        .await
    }

    async fn get_merchant(
        &self,
        req: Request<pb::GetMerchantRequest>,
    ) -> Result<Response<pb::GetMerchantResponse>, Status> {
        let c = caller(&self.core, &req, MERCHANT)?;
        let w = self.core.read().await?;
        let m = w.engine().merchant(c.user).ok_or_else(|| {
            Status::permission_denied("only registered partner merchants can do this")
        })?;
        let (quotes, methods, max) = match &m.capacity {
            None => (Vec::new(), Vec::new(), String::new()),
            Some(cap) => (
                cap.quotes
                    .iter()
                    .map(|q| pb::MerchantQuote {
                        asset: q.asset.to_string(),
                        fiat: q.fiat.to_string(),
                        bid: q.bid.to_string(),
                        min_fiat: q.min_fiat.to_string(),
                        max_fiat: q.max_fiat.to_string(),
                    })
                    .collect(),
                cap.methods.iter().map(|k| cv::kind_pb(*k)).collect(),
                cap.max_outstanding_fiat.to_string(),
            ),
        };
        Ok(Response::new(pb::GetMerchantResponse {
            online: m.online,
            quotes,
            methods,
            max_outstanding_fiat: max,
            // At 2 places whether or not the merchant ever traded ("0.00").
            outstanding_fiat: format!("{:.2}", m.outstanding_fiat.value()),
        }))
    }
}

impl Admin {
    async fn transfer(
        &self,
        req: Request<pb::TransferRequest>,
        deposit: bool,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        let c = caller(&self.core, &req, ADMIN)?;
        let method = if deposit { "Deposit" } else { "Withdraw" };
        command(&self.core, c.user, method, req.into_inner(), |r| {
            let user: UserId = cv::user_id("user_id", &r.user_id)?;
            let asset = cv::asset("asset", &r.asset)?;
            let amount = cv::dec("amount", &r.amount)?;
            let external_ref = r.external_ref.clone();
            Ok(if deposit {
                Command::Deposit {
                    user,
                    asset,
                    amount,
                    external_ref,
                }
            } else {
                Command::Withdraw {
                    user,
                    asset,
                    amount,
                    external_ref,
                }
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn deposit(
        &self,
        req: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        self.transfer(req, true).await
    }

    async fn withdraw(
        &self,
        req: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        self.transfer(req, false).await
    }

    async fn register_merchant(
        &self,
        req: Request<pb::RegisterMerchantRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, ADMIN)?;
        command(
            &self.core,
            c.user,
            "RegisterMerchant",
            req.into_inner(),
            |r| {
                Ok(Command::RegisterMerchant {
                    user: cv::user_id("user_id", &r.user_id)?,
                })
            },
        )
        .await
    }

    async fn list_channels(
        &self,
        req: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        caller(&self.core, &req, ADMIN)?;
        let channels = self
            .channels
            .iter()
            .map(|c| pb::Channel {
                name: c.name().to_owned(),
                provider: c.provider().to_string(),
                notify_url: self.channels.notify_url(c.name()),
            })
            .collect();
        Ok(Response::new(pb::ListChannelsResponse { channels }))
    }

    async fn set_reference_price(
        &self,
        req: Request<pb::SetReferencePriceRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, &[Role::Admin, Role::PriceFeed])?;
        command(
            &self.core,
            c.user,
            "SetReferencePrice",
            req.into_inner(),
            |r| {
                Ok(Command::SetReferencePrice {
                    asset: cv::asset("asset", &r.asset)?,
                    fiat: cv::fiat("fiat", &r.fiat)?,
                    price: cv::dec("price", &r.price)?,
                    source: r.source.clone(),
                })
            },
        )
        .await
    }

    async fn assign_channel(
        &self,
        req: Request<pb::AssignChannelRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, ADMIN)?;
        command(&self.core, c.user, "AssignChannel", req.into_inner(), |r| {
            let provider = self.channels.provider(&r.channel).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "channel: no channel named {} is declared (see ListChannels)",
                    otc_engine::shown(&r.channel)
                ))
            })?;
            Ok(Command::AssignChannel {
                user: cv::user_id("user_id", &r.user_id)?,
                channel: r.channel.clone(),
                provider,
            })
        })
        .await
    }
}
