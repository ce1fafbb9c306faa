//! Payments a bill's import did not see (SPEC §20): notified after it, or
//! while the bill was being matched (between the matcher's read of the
//! payment log and the bill's record). Each is judged as the import would
//! have judged it: missing there once its day's bill is in and no other
//! bill may show it; a bill that showed it first (as paid: a `MISSING_HERE`
//! finding the payment settles; or refunded: a `STATUS_MISMATCH`) counts it
//! as shown.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use crate::engine::Engine;
use crate::ids::{MistakeId, Timestamp};
use crate::ops_recon::chrono_day;
use crate::recon::{MistakeFacts, MistakeKind, Report};

/// A verified payment no import of its day's bill saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unseen<'a> {
    pub(crate) txn_id: &'a str,
    pub(crate) reference: &'a str,
    pub(crate) amount: Decimal,
    pub(crate) at: Timestamp,
}

impl Engine {
    /// Records `p` missing there when the bill of the day it was paid is
    /// in and no other bill may show it (near midnight it waits for the
    /// other day's bill, whose import will see it).
    pub(crate) fn missing_there_if_billed(&mut self, channel: &str, p: Unseen<'_>, now: Timestamp) {
        let Some(day) = self.billed_day_of(channel, p.at) else {
            return;
        };
        let facts = MistakeFacts {
            kind: MistakeKind::MissingThere,
            txn_id: p.txn_id.to_owned(),
            reference: p.reference.to_owned(),
            bill_reference: None,
            ours: Some(p.amount),
            theirs: None,
            bill_status: None,
            at: p.at,
        };
        if self.record_mistake(channel, &day, facts, now)
            && let Some(b) = self.state.bills.get_mut(&(channel.to_owned(), day))
        {
            b.mistakes += 1;
        }
    }

    /// Judges, once `report`'s bill is recorded, the payments logged while
    /// it was matched: in its span, not reconciled, and named nowhere in
    /// the report (the matcher names every unreconciled payment it read;
    /// those the bill showed are marked reconciled by then, so only its
    /// findings, at most `MISTAKES_PER_BILL_MAX`, need looking up).
    pub(crate) fn judge_unseen_by(&mut self, channel: &str, report: &Report, now: Timestamp) {
        let Some(window) = report.window else {
            return;
        };
        let named: BTreeSet<&str> = report
            .mistakes
            .iter()
            .chain(report.waiting.iter().map(|(facts, _)| facts))
            .map(|facts| facts.txn_id.as_str())
            .collect();
        let (from, to) = window.span();
        let unseen: Vec<(String, String, Decimal, Timestamp)> = self
            .state
            .payment_times
            .range(
                (channel.to_owned(), from, String::new())..(channel.to_owned(), to, String::new()),
            )
            .filter(|(_, _, txn)| !named.contains(txn.as_str()))
            .filter_map(|(c, _, txn)| {
                let p = self.state.payment_log.get(&(c.clone(), txn.clone()))?;
                (!p.reconciled).then(|| (txn.clone(), p.reference.clone(), p.amount, p.at))
            })
            .collect();
        for (txn_id, reference, amount, at) in &unseen {
            let p = Unseen {
                txn_id,
                reference,
                amount: *amount,
                at: *at,
            };
            self.missing_there_if_billed(channel, p, now);
        }
    }

    /// The day of `channel`'s imported bill whose day holds `at`, when no
    /// other bill may show a payment made then: `at` is not within the
    /// window of a midnight whose other day's bill is still to come.
    pub(crate) fn billed_day_of(&self, channel: &str, at: Timestamp) -> Option<String> {
        let bills = self.state.bills.range(
            (channel.to_owned(), String::new())..(channel.to_owned(), "\u{10ffff}".to_owned()),
        );
        // Latest day first; days are keyed YYYY-MM-DD, so in order.
        for ((_, day), b) in bills.rev() {
            let Some(w) = b.window else { continue };
            if w.end <= at {
                return None;
            }
            if w.start > at {
                continue;
            }
            let billed =
                |offset: i64| chrono_day(day).is_some_and(|n| self.billed_on(channel, n + offset));
            let near_start = at < w.start.plus_ms(w.window_ms);
            let near_end = at >= w.end.plus_ms(-w.window_ms);
            let settled = (!near_start || billed(-1)) && (!near_end || billed(1));
            return settled.then(|| day.clone());
        }
        None
    }

    /// The id, day and finding (`MISSING_HERE`, or a refund's
    /// `STATUS_MISMATCH`) of an imported bill that showed a payment no
    /// notification had brought then.
    pub(crate) fn bill_showed(
        &self,
        channel: &str,
        txn_id: &str,
    ) -> Option<(MistakeId, String, MistakeFacts)> {
        // A bill that listed it as paid (MISSING_HERE then), or refunded (a
        // STATUS_MISMATCH with no amount of ours): either way it showed it.
        let kinds = [MistakeKind::MissingHere, MistakeKind::StatusMismatch];
        // The keys first: the scan runs only for such a payment.
        let kind = kinds.into_iter().find(|kind| {
            self.state
                .mistake_keys
                .contains(&(channel.to_owned(), txn_id.to_owned(), *kind))
        })?;
        self.state
            .mistakes
            .values()
            .find(|m| m.channel == channel && m.facts.txn_id == txn_id && m.facts.kind == kind)
            .map(|m| (m.id, m.day.clone(), m.facts.clone()))
    }
}
