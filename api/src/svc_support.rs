//! `otc.v1.SupportService`: the customer-service console (SPEC §11).
//! `support` may do everything here; `support_viewer` may only read.

use std::sync::Arc;

use otc_engine::appeal::AppealStatus;
use otc_engine::command::AttachmentRef;
use otc_engine::{Command, Event, EventKind, Timestamp, TradeId, UserId};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::Role;
use crate::common::{self, SUPPORT_READ, caller};
use crate::convert as cv;
use crate::core::Core;
use crate::pipeline::{command, mutate};
use crate::proto as pb;
use crate::proto::support_service_server::SupportService;
use crate::requests;

/// The support service.
pub struct Support {
    /// Shared state.
    pub core: Arc<Core>,
    /// The declared payment channels (their bills).
    pub channels: Arc<crate::channels::Channels>,
    /// Reconciliation settings.
    pub recon: crate::recon::ReconConfig,
}

const SUPPORT_WRITE: &[Role] = &[Role::Support];

/// A trade's chat, as messages.
///
/// # Errors
/// INVALID_ARGUMENT for a bad page size; UNAVAILABLE on storage failure.
pub async fn chat_page(
    core: &Core,
    id: TradeId,
    after_seq: u64,
    page_size: u32,
) -> Result<Response<pb::ListChatResponse>, Status> {
    let size = common::page_size(core, page_size).await?;
    let events = {
        let w = core.read().await?;
        w.store()
            .chat(id, after_seq, size)
            .map_err(|e| Status::unavailable(e.to_string()))?
    };
    let messages = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ChatPosted {
                author,
                text,
                attachment,
                ..
            } => Some(pb::ChatMessage {
                seq: e.seq,
                author_id: author.to_string(),
                at: Some(cv::ts(e.at)),
                text: text.clone(),
                attachment: attachment.as_ref().map(|a| pb::AttachmentInfo {
                    id: format!("chat-{}", e.seq),
                    content_type: a.content_type.clone(),
                    file_name: a.file_name.clone(),
                    size_bytes: a.size_bytes,
                }),
            }),
            _ => None,
        })
        .collect();
    Ok(Response::new(pb::ListChatResponse { messages }))
}

/// Finds an attachment of a trade: evidence `E-n` or chat `chat-<seq>`.
/// `viewer`: a party (who may fetch only their own evidence files, and chat
/// files of their trade); `None` for CS, who may fetch all.
///
/// # Errors
/// NOT_FOUND when missing or not visible to the viewer.
pub async fn find_attachment(
    core: &Core,
    trade: TradeId,
    id: &str,
    viewer: Option<UserId>,
) -> Result<AttachmentRef, Status> {
    let malformed = || Status::invalid_argument("attachment_id must be \"E-n\" or \"chat-<seq>\"");
    if id.strip_prefix("E-").and_then(cv::digits).is_none() && !id.starts_with("chat-") {
        return Err(malformed());
    }
    let missing = || Status::not_found(format!("attachment {id} not found on trade {trade}"));
    if let Some(seq) = id.strip_prefix("chat-") {
        let seq = cv::digits(seq).ok_or_else(malformed)?;
        let w = core.read().await?;
        let events = w
            .store()
            .chat(trade, seq.saturating_sub(1), 1)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        return events
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::ChatPosted {
                    attachment: Some(a),
                    ..
                } if e.seq == seq => Some(a),
                _ => None,
            })
            .ok_or_else(missing);
    }
    let appeal = common::load_appeal(core, trade)
        .await
        .map_err(|_| missing())?;
    appeal
        .evidence
        .iter()
        .find(|e| e.id.to_string() == id && viewer.is_none_or(|v| v == e.by))
        .and_then(|e| e.attachment.clone())
        .ok_or_else(missing)
}

impl Support {
    async fn appeal_view(&self, id: TradeId) -> Result<pb::Appeal, Status> {
        let t = common::load_trade(&self.core, id).await?;
        let a = common::load_appeal(&self.core, id).await?;
        let w = self.core.read().await?;
        let now = crate::core::clock_now();
        Ok(crate::views::appeal_for_support(w.engine(), &t, &a, now))
    }

    async fn act(
        &self,
        agent: UserId,
        method: &'static str,
        req: pb::AppealActionRequest,
        make: fn(UserId, TradeId) -> Command,
    ) -> Result<Response<pb::Appeal>, Status> {
        command(&self.core, agent, method, req, |r| {
            Ok(make(agent, cv::trade_id(&r.trade_id)?))
        })
        .await
    }
}

type EventStream = ReceiverStream<Result<pb::Event, Status>>;

/// A page token of `ListAppeals`: "T-12@<opened at, ms>" for the queue, or
/// a bare trade id (closed appeals, and tokens from before the key).
fn queue_token(token: &str) -> Result<(TradeId, Option<Timestamp>), Status> {
    let Some((trade, at)) = token.split_once('@') else {
        return Ok((cv::trade_id_in("page_token", token)?, None));
    };
    let at = cv::digits(at)
        .and_then(|ms| i64::try_from(ms).ok())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "page_token must be one a list returned, got {}",
                otc_engine::shown(token)
            ))
        })?;
    Ok((cv::trade_id_in("page_token", trade)?, Some(Timestamp(at))))
}

#[tonic::async_trait]
impl SupportService for Support {
    async fn list_appeals(
        &self,
        req: Request<pb::ListAppealsRequest>,
    ) -> Result<Response<pb::ListAppealsResponse>, Status> {
        let c = caller(&self.core, &req, SUPPORT_READ)?;
        let r = req.into_inner();
        let size = common::page_size(&self.core, r.page_size).await?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(queue_token(&r.page_token)?)
        };
        let status = match pb::AppealStatus::try_from(r.status) {
            Ok(pb::AppealStatus::Unspecified) => None,
            Ok(pb::AppealStatus::Open) => Some(AppealStatus::Open),
            Ok(pb::AppealStatus::Claimed) => Some(AppealStatus::Claimed),
            Ok(pb::AppealStatus::Closed) => Some(AppealStatus::Closed),
            Err(_) => return Err(Status::invalid_argument("status must be an AppealStatus")),
        };
        let w = self.core.read().await?;
        let e = w.engine();
        // The queue (open and claimed) pages by its (opened at, trade) key;
        // closed appeals by trade id.
        let candidates: Box<dyn Iterator<Item = &otc_engine::appeal::Appeal>> = match status {
            Some(AppealStatus::Closed) => Box::new(
                e.appeals_with(AppealStatus::Closed)
                    .into_iter()
                    .filter(move |a| after.is_none_or(|(t, _)| a.trade > t)),
            ),
            _ => match after {
                Some((t, Some(opened_at))) => Box::new(e.appeal_queue_past(opened_at, t)),
                Some((t, None)) => Box::new(e.appeal_queue_after(t)),
                None => Box::new(e.appeal_queue()),
            },
        };
        let closed = status == Some(AppealStatus::Closed);
        let mut last_key = None;
        let mut appeals = Vec::new();
        for a in candidates {
            if status.is_some_and(|s| a.status() != s) {
                continue;
            }
            if r.mine && a.claimed_by != Some(c.user) {
                continue;
            }
            if let Some(t) = e.trade(a.trade) {
                appeals.push(cv::appeal_pb(a, t, None));
                last_key = Some((a.trade, a.opened_at));
            }
            if appeals.len() == size {
                break;
            }
        }
        // The stream of the queue resumes from here with no gap.
        let as_of_seq = e.last_seq();
        // The queue's token holds its key, so it stays good after the
        // appeal it names is resolved and forgotten; closed pages by id.
        let next_page_token = match last_key {
            Some((t, opened_at)) if appeals.len() == size => {
                if closed {
                    t.to_string()
                } else {
                    format!("{t}@{}", opened_at.0)
                }
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAppealsResponse {
            appeals,
            next_page_token,
            as_of_seq,
        }))
    }

    async fn get_appeal(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::Appeal>, Status> {
        caller(&self.core, &req, SUPPORT_READ)?;
        let id = cv::trade_id(&req.get_ref().trade_id)?;
        Ok(Response::new(self.appeal_view(id).await?))
    }

    async fn get_trade(
        &self,
        req: Request<pb::GetTradeRequest>,
    ) -> Result<Response<pb::Trade>, Status> {
        caller(&self.core, &req, SUPPORT_READ)?;
        let id = cv::trade_id(&req.get_ref().trade_id)?;
        let t = common::load_trade(&self.core, id).await?;
        Ok(Response::new(cv::trade_pb(&t, cv::Audience::Support)))
    }

    async fn list_chat(
        &self,
        req: Request<pb::ListChatRequest>,
    ) -> Result<Response<pb::ListChatResponse>, Status> {
        caller(&self.core, &req, SUPPORT_READ)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        common::load_trade(&self.core, id).await?;
        chat_page(&self.core, id, r.after_seq, r.page_size).await
    }

    async fn get_attachment(
        &self,
        req: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::Attachment>, Status> {
        caller(&self.core, &req, SUPPORT_READ)?;
        let r = req.into_inner();
        let id = cv::trade_id(&r.trade_id)?;
        let file = find_attachment(&self.core, id, &r.attachment_id, None).await?;
        Ok(Response::new(
            common::read_attachment(&self.core, &file).await?,
        ))
    }

    async fn claim_appeal(
        &self,
        req: Request<pb::AppealActionRequest>,
    ) -> Result<Response<pb::Appeal>, Status> {
        let c = caller(&self.core, &req, SUPPORT_WRITE)?;
        self.act(c.user, "ClaimAppeal", req.into_inner(), |agent, trade| {
            Command::ClaimAppeal { agent, trade }
        })
        .await
    }

    async fn unclaim_appeal(
        &self,
        req: Request<pb::AppealActionRequest>,
    ) -> Result<Response<pb::Appeal>, Status> {
        let c = caller(&self.core, &req, SUPPORT_WRITE)?;
        self.act(c.user, "UnclaimAppeal", req.into_inner(), |agent, trade| {
            Command::UnclaimAppeal { agent, trade }
        })
        .await
    }

    async fn resolve_appeal(
        &self,
        req: Request<pb::ResolveAppealRequest>,
    ) -> Result<Response<pb::Appeal>, Status> {
        let c = caller(&self.core, &req, SUPPORT_WRITE)?;
        command(&self.core, c.user, "ResolveAppeal", req.into_inner(), |r| {
            Ok(Command::ResolveAppeal {
                agent: c.user,
                trade: cv::trade_id(&r.trade_id)?,
                resolution: requests::resolution(r.resolution)?,
                note: r.note.clone(),
            })
        })
        .await
    }

    async fn list_anomalies(
        &self,
        req: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        caller(&self.core, &req, SUPPORT_READ)?;
        let r = req.into_inner();
        let size = common::page_size(&self.core, r.page_size).await?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(cv::anomaly_id("page_token", &r.page_token)?)
        };
        let w = self.core.read().await?;
        let mut anomalies: Vec<pb::PaymentAnomaly> = w
            .engine()
            .anomalies(r.include_resolved, after)
            .take(size + 1)
            .map(cv::anomaly_pb)
            .collect();
        let next_page_token = if anomalies.len() > size {
            anomalies.truncate(size);
            anomalies.last().map(|a| a.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAnomaliesResponse {
            anomalies,
            next_page_token,
        }))
    }

    async fn resolve_anomaly(
        &self,
        req: Request<pb::ResolveAnomalyRequest>,
    ) -> Result<Response<pb::PaymentAnomaly>, Status> {
        let c = caller(&self.core, &req, SUPPORT_WRITE)?;
        command(
            &self.core,
            c.user,
            "ResolveAnomaly",
            req.into_inner(),
            |r| {
                Ok(Command::ResolveAnomaly {
                    agent: c.user,
                    anomaly: cv::anomaly_id("anomaly_id", &r.anomaly_id)?,
                    note: r.note.clone(),
                })
            },
        )
        .await
    }

    async fn import_bill(
        &self,
        req: Request<tonic::Streaming<pb::BillChunk>>,
    ) -> Result<Response<pb::ReconReport>, Status> {
        let c = caller(&self.core, &req, &[Role::Support, Role::Admin])?;
        crate::recon::import_bill(
            &self.core,
            &self.channels,
            c.user,
            self.recon,
            req.into_inner(),
        )
        .await
    }

    async fn list_recon_mistakes(
        &self,
        req: Request<pb::ListReconMistakesRequest>,
    ) -> Result<Response<pb::ListReconMistakesResponse>, Status> {
        caller(
            &self.core,
            &req,
            &[Role::Support, Role::SupportViewer, Role::Admin],
        )?;
        let r = req.into_inner();
        let size = common::page_size(&self.core, r.page_size).await?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(cv::mistake_id("page_token", &r.page_token)?)
        };
        let w = self.core.read().await?;
        let mut mistakes: Vec<pb::ReconMistake> = w
            .engine()
            .recon_mistakes(r.include_handled, after)
            .take(size + 1)
            .map(cv::mistake_pb)
            .collect();
        let next_page_token = if mistakes.len() > size {
            mistakes.truncate(size);
            mistakes.last().map(|m| m.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListReconMistakesResponse {
            mistakes,
            next_page_token,
        }))
    }

    async fn close_recon_mistake(
        &self,
        req: Request<pb::HandleMistakeRequest>,
    ) -> Result<Response<pb::ReconMistake>, Status> {
        let c = caller(&self.core, &req, SUPPORT_WRITE)?;
        command(
            &self.core,
            c.user,
            "CloseReconMistake",
            req.into_inner(),
            |r| {
                Ok(Command::CloseMistake {
                    agent: c.user,
                    mistake: cv::mistake_id("mistake_id", &r.mistake_id)?,
                    note: r.note.clone(),
                })
            },
        )
        .await
    }

    async fn apply_missed_payment(
        &self,
        req: Request<pb::HandleMistakeRequest>,
    ) -> Result<Response<pb::ReconMistake>, Status> {
        let c = caller(&self.core, &req, SUPPORT_WRITE)?;
        let mut r = req.into_inner();
        let rid = std::mem::take(&mut r.request_id);
        let mistake = cv::mistake_id("mistake_id", &r.mistake_id)?;
        mutate(&self.core, c.user, "ApplyMissedPayment", &rid, &r, async {
            // What history says of the trade, when the engine forgot it.
            let reference = {
                let w = self.core.read().await?;
                w.engine()
                    .recon_mistake(mistake)
                    .map(|m| m.facts.reference.clone())
                    .unwrap_or_default()
            };
            let (history_checked, ended) = crate::http::ended_trade(&self.core, &reference)
                .await
                .map_err(Status::unavailable)?;
            Ok(Command::ApplyMissedPayment {
                agent: c.user,
                mistake,
                note: r.note.clone(),
                history_checked,
                ended,
            }
            .into())
        })
        .await
    }

    async fn get_statement(
        &self,
        req: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::Statement>, Status> {
        caller(
            &self.core,
            &req,
            &[Role::Support, Role::SupportViewer, Role::Admin],
        )?;
        crate::recon::statement(&self.core, req.get_ref())
            .await
            .map(Response::new)
    }

    type StreamAppealQueueStream = EventStream;

    async fn stream_appeal_queue(
        &self,
        req: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let c = caller(&self.core, &req, SUPPORT_READ)?;
        let keep = |e: &Event| e.audience().support;
        let stream = crate::streams::event_stream(
            Arc::clone(&self.core),
            c.user,
            c.expires,
            req.get_ref().after_seq,
            keep,
        )
        .await?;
        Ok(Response::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue's page token holds its key; a bare id still reads (closed
    /// appeals, older tokens); anything else names page_token.
    #[test]
    fn list_appeals_page_tokens_read_back() {
        assert_eq!(
            queue_token("T-12@1700000000000").ok(),
            Some((TradeId(12), Some(Timestamp(1_700_000_000_000))))
        );
        assert_eq!(queue_token("T-12").ok(), Some((TradeId(12), None)));
        for bad in ["T-12@", "T-12@-5", "T-12@1e3", "X@5", "@5"] {
            let e = queue_token(bad).expect_err(bad);
            assert!(e.message().starts_with("page_token"), "{bad}: {e:?}");
        }
    }
}
