//! The desk's actions that take more than one call: buying (and restocking
//! when nothing fills), listing actions, chat and evidence.

use otc_api::proto as pb;
use rust_decimal::Decimal;
use tonic::{Code, Status};

use super::super::actors::{LOT_COIN, admin_who, answered, dec, read, transfer};
use super::super::{Call, Got, Who};
use super::{Action, Desk, Open, Sides};

impl Desk {
    pub(super) async fn buy(&mut self, s: &mut Sides<'_>) -> Result<u64, Status> {
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
    pub(super) async fn restock(&mut self, s: &mut Sides<'_>) -> Result<(), Status> {
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

    pub(super) async fn listing_action(
        &mut self,
        action: Action,
        s: &mut Sides<'_>,
    ) -> Result<(), Status> {
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

    pub(super) async fn chat(&mut self, id: String, s: &mut Sides<'_>) -> Result<(), Status> {
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

    pub(super) async fn evidence(&mut self, id: String, s: &mut Sides<'_>) -> Result<(), Status> {
        let by_seller = s.rng.chance(500);
        let mut data = crate::harness::PNG_HEAD.to_vec();
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
