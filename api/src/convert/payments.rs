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
    let digits = text.strip_prefix("A-").unwrap_or(text);
    digits
        .parse::<u64>()
        .map(AnomalyId)
        .map_err(|_| Status::invalid_argument(format!("{field} must look like A-12")))
}
