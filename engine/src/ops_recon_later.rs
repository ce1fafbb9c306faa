//! Findings later facts decide (SPEC §20): a later bill of the day that
//! shows a payment an earlier one did not (settling its MISSING_THERE), and
//! a repeated notification that disagrees with the bill a payment was
//! applied from (another order or amount: a finding, not a silent
//! duplicate).

use crate::engine::Engine;
use crate::ids::Timestamp;
use crate::payment::GatewayPayment;
use crate::recon::MistakeKind;

impl Engine {
    /// Settles an open MISSING_THERE of `txn` that the bill of `day` shows,
    /// as a late notification settles a MISSING_HERE (at another amount,
    /// the bill's AMOUNT_MISMATCH says so).
    pub(crate) fn settle_missing_there(
        &mut self,
        channel: &str,
        txn: &str,
        day: &str,
        now: Timestamp,
    ) {
        let key = (
            channel.to_owned(),
            txn.to_owned(),
            MistakeKind::MissingThere,
        );
        if !self.state.mistake_keys.contains(&key) {
            return;
        }
        let open = self.state.open_mistakes.iter().copied().find(|id| {
            self.state.mistakes.get(id).is_some_and(|m| {
                m.channel == channel
                    && m.facts.txn_id == txn
                    && m.facts.kind == MistakeKind::MissingThere
            })
        });
        if let Some(id) = open {
            let note = format!("settled: {channel}'s bill of {day}, imported later, shows it");
            self.handle_mistake(None, id, note, now);
        }
    }

    /// A notification of a transaction recorded here already (a duplicate)
    /// that disagrees with the bill that showed it (the payment was applied
    /// from that bill, then the gateway's own notification came): another
    /// order is a REFERENCE_MISMATCH, another amount an AMOUNT_MISMATCH, as
    /// had the notification come before CS applied it; recorded once;
    /// whether it was.
    pub(crate) fn dispute_duplicate(&mut self, p: &GatewayPayment, now: Timestamp) -> bool {
        let key = (p.channel.clone(), p.txn_id.clone());
        let Some(logged) = self.state.payment_log.get(&key) else {
            return false;
        };
        if logged.reference == p.reference && logged.amount == p.amount {
            return false;
        }
        let Some((_, day, bill)) = self.bill_showed(&p.channel, &p.txn_id) else {
            return false;
        };
        // (A refund row's amount is the refund's: only its order compares.)
        match bill.against(&p.reference, p.amount) {
            Some(found)
                if bill.kind == MistakeKind::MissingHere
                    || found.kind == MistakeKind::ReferenceMismatch =>
            {
                self.record_mistake(&p.channel, &day, found, now)
            }
            _ => false,
        }
    }
}
