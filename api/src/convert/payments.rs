//! Payment channels for the wire (SPEC §19): verified payments and anomalies.

use otc_engine::AnomalyId;
use otc_engine::payment::{Anomaly, AnomalyKind, VerifiedPayment};
use tonic::Status;

use crate::proto as pb;

use super::ts;

/// A payment a channel proved.
pub fn verified_pb(p: &VerifiedPayment) -> pb::VerifiedPayment {
    pb::VerifiedPayment {
        channel: p.channel.clone(),
        txn_id: p.txn_id.clone(),
        amount: p.amount.to_string(),
        paid_at: p.paid_at.map(ts),
        received_at: Some(ts(p.received_at)),
    }
}

/// A payment anomaly as CS sees it.
pub fn anomaly_pb(a: &Anomaly) -> pb::PaymentAnomaly {
    let expected_amount = match &a.kind {
        AnomalyKind::WrongAmount { expected, .. } => expected.to_string(),
        _ => String::new(),
    };
    let r = a.resolution.as_ref();
    pb::PaymentAnomaly {
        id: a.id.to_string(),
        kind: a.kind.name().into(),
        trade_id: a.trade.map(|t| t.to_string()).unwrap_or_default(),
        reference: a.reference.clone(),
        payment: Some(verified_pb(&a.payment)),
        fiat: a.currency.clone(),
        expected_amount,
        resolved: r.is_some(),
        resolved_by: r.map(|r| r.agent.to_string()).unwrap_or_default(),
        resolved_at: r.map(|r| ts(r.at)),
        note: r.map(|r| r.note.clone()).unwrap_or_default(),
    }
}

/// An anomaly id field ("A-12" or "12").
///
/// # Errors
/// INVALID_ARGUMENT naming `field`.
pub fn anomaly_id(field: &str, text: &str) -> Result<AnomalyId, Status> {
    super::id_number(field, "A", text).map(AnomalyId)
}

/// A reconciliation mistake for CS.
pub fn mistake_pb(m: &otc_engine::recon::Mistake) -> pb::ReconMistake {
    let f = &m.facts;
    let h = m.handled.as_ref();
    pb::ReconMistake {
        id: m.id.to_string(),
        kind: f.kind.name().into(),
        channel: m.channel.clone(),
        date: m.day.clone(),
        txn_id: f.txn_id.clone(),
        reference: f.reference.clone(),
        bill_reference: f.bill_reference.clone().unwrap_or_default(),
        ours_amount: f.ours.map(|a| a.to_string()).unwrap_or_default(),
        bill_amount: f.theirs.map(|a| a.to_string()).unwrap_or_default(),
        bill_status: f
            .bill_status
            .map(|s| s.name().to_owned())
            .unwrap_or_default(),
        at: Some(ts(f.at)),
        handled: h.is_some(),
        handled_by: h
            .map(|h| {
                h.agent
                    .map_or_else(|| "reconciliation".to_owned(), |a| a.to_string())
            })
            .unwrap_or_default(),
        handled_at: h.map(|h| ts(h.at)),
        note: h.map(|h| h.note.clone()).unwrap_or_default(),
    }
}

/// A mistake id field ("R-12" or "12").
///
/// # Errors
/// INVALID_ARGUMENT naming `field`.
pub fn mistake_id(field: &str, text: &str) -> Result<otc_engine::MistakeId, Status> {
    super::id_number(field, "R", text).map(otc_engine::MistakeId)
}
