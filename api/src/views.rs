//! The view step of the pipeline: the reply of every mutating RPC, rendered
//! by the writer right after the command was applied (or refused), from the
//! state that command left. It is stored with the commit, so a retry gets
//! these bytes back (SPEC §14). Each command comes from exactly one RPC, so
//! the command says which reply to build.

use otc_engine::appeal::Appeal;
use otc_engine::trade::Trade;
use otc_engine::{Command, Engine, Event, EventKind, Rejection, Timestamp, TradeId, UserId};
use prost::Message;
use tonic::Status;

use crate::convert::{self as cv, Audience};
use crate::pipeline::encode_reply;
use crate::proto as pb;

/// Renders the reply of `command` (see the module docs); installed as the
/// writer's replier.
pub fn render(e: &Engine, command: &Command, result: Result<&[Event], &Rejection>) -> Vec<u8> {
    let events = match result {
        Ok(events) => events,
        Err(r) => return encode_reply::<pb::Receipt>(Err(cv::status_of(r))),
    };
    if let Some(status) = password_failure(events) {
        return encode_reply::<pb::Receipt>(Err(status));
    }
    let receipt = receipt(e, events);
    use Command as C;
    match command {
        C::Deposit { user, asset, .. } | C::Withdraw { user, asset, .. } => {
            let b = e.balance(*user, *asset);
            ok(pb::TransferResponse {
                receipt: Some(receipt),
                balance: Some(pb::Balance {
                    asset: asset.to_string(),
                    available: b.available.to_string(),
                    escrowed: b.escrowed.to_string(),
                }),
            })
        }
        C::BindMethod { .. } => ok(pb::BindPaymentMethodResponse {
            receipt: Some(receipt),
            method_id: events
                .iter()
                .find_map(|e| match e.kind {
                    EventKind::MethodBound { method, .. } => Some(method.to_string()),
                    _ => None,
                })
                .unwrap_or_default(),
        }),
        C::PublishListing { .. }
        | C::PauseListing { .. }
        | C::ResumeListing { .. }
        | C::CancelListing { .. } => {
            let listing = match command {
                C::PauseListing { listing, .. }
                | C::ResumeListing { listing, .. }
                | C::CancelListing { listing, .. } => Some(*listing),
                _ => events.iter().find_map(|e| match e.kind {
                    EventKind::ListingChanged { listing, .. } => Some(listing),
                    _ => None,
                }),
            };
            let listing = listing
                .and_then(|id| e.listing(id))
                .map(|l| cv::listing_view(e, l, e.state().clock));
            ok(pb::ListingResponse {
                receipt: Some(receipt),
                listing,
            })
        }
        C::PlaceBuy { .. } => ok(pb::PlaceBuyResponse {
            receipt: Some(receipt),
            trade_ids: created_trades(events)
                .iter()
                .map(ToString::to_string)
                .collect(),
            buy_order_id: events
                .iter()
                .find_map(|e| match e.kind {
                    EventKind::BuyOrderChanged { order, .. } => Some(order.to_string()),
                    _ => None,
                })
                .unwrap_or_default(),
        }),
        C::FastSell { seller, .. } => {
            trade_reply(e, receipt, created_trades(events).first().copied(), *seller)
        }
        C::MarkPaid { buyer, trade } | C::CancelTrade { buyer, trade } => {
            trade_reply(e, receipt, Some(*trade), *buyer)
        }
        C::Release { seller, trade, .. } => trade_reply(e, receipt, Some(*trade), *seller),
        C::OpenAppeal { user, trade, .. } => trade_reply(e, receipt, Some(*trade), *user),
        C::AddEvidence { .. } => ok(pb::AddEvidenceResponse {
            receipt: Some(receipt),
            evidence_id: events
                .iter()
                .find_map(|e| match e.kind {
                    EventKind::EvidenceAdded { evidence, .. } => Some(evidence.to_string()),
                    _ => None,
                })
                .unwrap_or_default(),
        }),
        C::ClaimAppeal { trade, .. }
        | C::UnclaimAppeal { trade, .. }
        | C::ResolveAppeal { trade, .. } => match support_appeal(e, *trade) {
            Some(view) => ok(view),
            None => encode_reply::<pb::Appeal>(Err(Status::internal(format!(
                "trade {trade} has no appeal after the action"
            )))),
        },
        C::ResolveAnomaly { anomaly, .. } => match e.anomaly(*anomaly) {
            Some(a) => ok(cv::anomaly_pb(a)),
            None => encode_reply::<pb::PaymentAnomaly>(Err(Status::internal(format!(
                "payment anomaly {anomaly} vanished after the action"
            )))),
        },
        C::CloseMistake { mistake, .. } | C::ApplyMissedPayment { mistake, .. } => {
            match e.recon_mistake(*mistake) {
                Some(m) => ok(cv::mistake_pb(m)),
                None => encode_reply::<pb::ReconMistake>(Err(Status::internal(format!(
                    "mistake {mistake} vanished after the action"
                )))),
            }
        }
        C::RecordBill {
            channel,
            day,
            digest,
            report,
        } => ok(pb::ReconReport {
            channel: channel.clone(),
            date: day.clone(),
            digest: digest.clone(),
            lines: report.lines,
            matched: report.matched,
            // As recorded: waiting payments the other day's bill decided
            // are no longer pending.
            pending: e
                .bill(channel, day)
                .map_or(report.waiting.len() as u64, |b| b.pending),
            mistakes: events
                .iter()
                .filter_map(|ev| match ev.kind {
                    EventKind::ReconMistake { mistake, .. } => e.recon_mistake(mistake),
                    _ => None,
                })
                .map(cv::mistake_pb)
                .collect(),
        }),
        C::RegisterMerchant { .. }
        | C::AssignChannel { .. }
        | C::SetReferencePrice { .. }
        | C::GatewayPayment(_)
        | C::RemoveMethod { .. }
        | C::SetFundPassword { .. }
        | C::Block { .. }
        | C::Unblock { .. }
        | C::CancelBuyOrder { .. }
        | C::SetMerchantCapacity { .. }
        | C::SetMerchantOnline { .. }
        | C::PostChat { .. }
        | C::FireDue => ok(receipt),
    }
}

fn ok<M: Message>(m: M) -> Vec<u8> {
    encode_reply(Ok(m))
}

/// The receipt of a command's events: the sequence range it took, or, for
/// a command that changed nothing, the engine's position then.
fn receipt(e: &Engine, events: &[Event]) -> pb::Receipt {
    match (events.first(), events.last()) {
        (Some(f), Some(l)) => pb::Receipt {
            first_seq: f.seq,
            last_seq: l.seq,
        },
        _ => pb::Receipt {
            first_seq: e.last_seq() + 1,
            last_seq: e.last_seq(),
        },
    }
}

/// A protected command applied as a wrong fund password (SPEC §6): the
/// caller hears FAILED_PRECONDITION, with the run or the lock.
fn password_failure(events: &[Event]) -> Option<Status> {
    events.iter().find_map(|e| match e.kind {
        EventKind::FundPasswordFailed {
            locked_until: Some(until),
            ..
        } => Some(Status::failed_precondition(format!(
            "wrong fund password; too many wrong attempts, protected actions are locked until {until}"
        ))),
        EventKind::FundPasswordFailed {
            failures_in_row, ..
        } => Some(Status::failed_precondition(format!(
            "wrong fund password ({failures_in_row} wrong in a row)"
        ))),
        _ => None,
    })
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

fn trade_reply(e: &Engine, receipt: pb::Receipt, id: Option<TradeId>, viewer: UserId) -> Vec<u8> {
    let trade = id
        .and_then(|id| e.trade(id))
        .map(|t| cv::trade_pb(t, Audience::of_trade(t, viewer)));
    ok(pb::TradeResponse {
        receipt: Some(receipt),
        trade,
    })
}

/// The appeal of trade `id` as CS sees it, from the working set.
fn support_appeal(e: &Engine, id: TradeId) -> Option<pb::Appeal> {
    Some(appeal_for_support(
        e,
        e.trade(id)?,
        e.appeal(id)?,
        e.state().clock,
    ))
}

/// An appeal as CS sees it, with both parties' records at `now`.
pub fn appeal_for_support(e: &Engine, t: &Trade, a: &Appeal, now: Timestamp) -> pb::Appeal {
    let mut view = cv::appeal_pb(a, t, None);
    view.seller_record = Some(cv::record_pb(&e.seller_record(t.seller, now)));
    view.buyer_record = Some(cv::record_pb(&e.seller_record(t.buyer, now)));
    view
}
