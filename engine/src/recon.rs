//! Reconciliation (对账, SPEC §20): matching a gateway's daily bill against
//! the verified payments recorded here, both ways, and the mistakes CS
//! handles.
//!
//! The shell parses the bill (streaming) and feeds its lines to a
//! [`Matcher`] built from the engine's payment log; the matcher is pure and
//! its memory is the day's recorded payments plus the mistakes, never the
//! bill. The engine then records the outcome with `Command::RecordBill`,
//! re-checking what may have changed meanwhile.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{MistakeId, Timestamp, UserId};

/// Most mistakes one bill may record: beyond it, the bill is most likely
/// another channel's or another day's, and is refused whole.
pub const MISTAKES_PER_BILL_MAX: usize = 10_000;

/// What a bill line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillStatus {
    /// Paid.
    Paid,
    /// Refunded.
    Refund,
    /// Closed unpaid.
    Closed,
}

impl BillStatus {
    /// The name the wire uses.
    pub fn name(self) -> &'static str {
        match self {
            BillStatus::Paid => "PAID",
            BillStatus::Refund => "REFUND",
            BillStatus::Closed => "CLOSED",
        }
    }
}

/// One line of a gateway's bill, as the shell parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    /// The provider's transaction id.
    pub txn_id: String,
    /// Our payment reference.
    pub reference: String,
    /// The amount (refunded amount for a refund).
    pub amount: Decimal,
    /// What happened.
    pub status: BillStatus,
    /// When, in engine time.
    pub at: Timestamp,
}

/// A verified payment as the engine logs it for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedPayment {
    /// Our payment reference.
    pub reference: String,
    /// The amount verified.
    pub amount: Decimal,
    /// When it was paid (the gateway's time, else when it was applied).
    pub at: Timestamp,
    /// Matched by a bill already.
    pub reconciled: bool,
}

/// The kinds of mistakes (差错).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MistakeKind {
    /// The bill shows a payment no verified notification brought (the
    /// classic missed notify).
    MissingHere,
    /// A verified payment here that the bill does not show.
    MissingThere,
    /// Both have it, with other amounts.
    AmountMismatch,
    /// The bill says refunded or closed where we have it paid.
    StatusMismatch,
    /// Both have the transaction, paying other orders: the bill gives it
    /// another reference (商户订单号) than the notification did.
    ReferenceMismatch,
}

impl MistakeKind {
    /// The name the wire uses.
    pub fn name(self) -> &'static str {
        match self {
            MistakeKind::MissingHere => "MISSING_HERE",
            MistakeKind::MissingThere => "MISSING_THERE",
            MistakeKind::AmountMismatch => "AMOUNT_MISMATCH",
            MistakeKind::StatusMismatch => "STATUS_MISMATCH",
            MistakeKind::ReferenceMismatch => "REFERENCE_MISMATCH",
        }
    }
}

/// What a mistake is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MistakeFacts {
    /// Its kind.
    pub kind: MistakeKind,
    /// The provider's transaction id.
    pub txn_id: String,
    /// The payment reference: the bill line's, or ours where the bill has
    /// none (MISSING_THERE) or gives another (REFERENCE_MISMATCH).
    pub reference: String,
    /// The bill's reference when it differs from ours (REFERENCE_MISMATCH).
    pub bill_reference: Option<String>,
    /// The amount recorded here, if any.
    pub ours: Option<Decimal>,
    /// The amount on the bill, if any.
    pub theirs: Option<Decimal>,
    /// The bill's status, if the bill has it.
    pub bill_status: Option<BillStatus>,
    /// When it happened.
    pub at: Timestamp,
}

impl MistakeFacts {
    /// A bill's line of a payment (these facts, as the bill states them)
    /// against the payment recorded here (`reference`, `amount`): `None`
    /// when they agree; another order is a REFERENCE_MISMATCH, another
    /// amount an AMOUNT_MISMATCH. Wherever the two meet: at the import,
    /// during it, or in a notification after it.
    pub(crate) fn against(&self, reference: &str, amount: Decimal) -> Option<MistakeFacts> {
        let (kind, bill_reference) = if self.reference != reference {
            (MistakeKind::ReferenceMismatch, Some(self.reference.clone()))
        } else if self.theirs != Some(amount) {
            (MistakeKind::AmountMismatch, None)
        } else {
            return None;
        };
        Some(MistakeFacts {
            kind,
            reference: reference.to_owned(),
            bill_reference,
            ours: Some(amount),
            ..self.clone()
        })
    }
}

/// How a mistake was handled: by CS, or settled by the gateway's own late
/// notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handled {
    /// The agent; `None` when later facts settled the finding: the
    /// notification the bill was missing came after it, or a later bill of
    /// the day showed a payment missing there.
    pub agent: Option<UserId>,
    /// When.
    pub at: Timestamp,
    /// What was done.
    pub note: String,
}

/// A recorded mistake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mistake {
    /// Its id.
    pub id: MistakeId,
    /// The channel.
    pub channel: String,
    /// The bill's day (`YYYY-MM-DD`, in the gateway's time zone); for a
    /// payment missing there, the day it was paid (near midnight, the other
    /// day's bill may have completed the finding).
    pub day: String,
    /// What.
    pub facts: MistakeFacts,
    /// Set once CS handled it.
    pub handled: Option<Handled>,
}

/// A bill imported for a channel and a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillRecord {
    /// SHA-256 of the file, hex: the same bill again changes nothing.
    pub digest: String,
    /// When it was imported.
    pub imported_at: Timestamp,
    /// Lines read.
    pub lines: u64,
    /// Lines matched.
    pub matched: u64,
    /// Mistakes it recorded.
    pub mistakes: u64,
    /// Payments it did not show still waiting for the other day's bill.
    pub pending: u64,
    /// The day it covers, so a payment recorded after the import (a late
    /// notification) that falls in it and it did not show is missing there.
    pub window: Option<DayWindow>,
}

/// The span of a bill day in engine time, and the window around midnight
/// within which payments wait for the next day's bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayWindow {
    /// The day's first instant.
    pub start: Timestamp,
    /// The next day's first instant.
    pub end: Timestamp,
    /// The window around midnight.
    pub window_ms: i64,
}

impl DayWindow {
    /// The recorded payments a bill of this day is matched against:
    /// unreconciled ones from `start − window` to `end + window`.
    pub fn span(&self) -> (Timestamp, Timestamp) {
        (
            self.start.plus_ms(-self.window_ms),
            self.end.plus_ms(self.window_ms),
        )
    }
}

/// The outcome of matching one bill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Lines read.
    pub lines: u64,
    /// Lines matched to a payment here.
    pub matched: u64,
    /// The mistakes found.
    pub mistakes: Vec<MistakeFacts>,
    /// Payments here the bill did not show that may be in the other day's
    /// bill (near midnight), each missing there unless that bill shows it: decided when the bill is recorded, against the
    /// bills recorded by then (bills may come in any order, or at once).
    pub waiting: Vec<(MistakeFacts, Around)>,
    /// Transaction ids here the bill showed (matched or not): marked
    /// reconciled, so no later bill calls them missing there.
    pub reconciled: Vec<String>,
    /// More than [`MISTAKES_PER_BILL_MAX`] mistakes: the rest were not kept.
    pub overflow: bool,
    /// The day the bill was matched as.
    pub window: Option<DayWindow>,
}

/// The other day whose bill a payment near midnight may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Around {
    /// The day before (a payment within the window after this day began).
    Before,
    /// The day after (within the window before this day ends, or later).
    After,
}

/// Matches a bill's lines, one at a time, against the payments recorded
/// here (see the module docs).
pub struct Matcher {
    /// Transaction id → (payment, a line of the bill named it, what its
    /// paid lines said: none yet, all at our amount, or one at another).
    ours: BTreeMap<String, (LoggedPayment, bool, Option<bool>)>,
    day: DayWindow,
    report: Report,
}

impl Matcher {
    /// A matcher over `ours` (transaction id → payment), for `day`.
    pub fn new(ours: impl IntoIterator<Item = (String, LoggedPayment)>, day: DayWindow) -> Self {
        Self {
            ours: ours
                .into_iter()
                .map(|(k, v)| (k, (v, false, None)))
                .collect(),
            day,
            report: Report::default(),
        }
    }

    /// Takes one bill line.
    pub fn line(&mut self, l: &BillLine) {
        self.report.lines += 1;
        let mistake = |kind, ours: Option<&LoggedPayment>| MistakeFacts {
            kind,
            txn_id: l.txn_id.clone(),
            reference: l.reference.clone(),
            bill_reference: None,
            ours: ours.map(|p| p.amount),
            theirs: Some(l.amount),
            bill_status: Some(l.status),
            at: l.at,
        };
        let mut found = self.ours.get_mut(&l.txn_id);
        if let Some((p, _, paid @ Some(_))) = found.as_deref_mut()
            && l.status == BillStatus::Paid
        {
            // The same payment listed again: counted once; listed again for
            // another order or amount than ours, the bill disagrees with us
            // (once).
            if *paid == Some(true)
                && let Some(m) =
                    mistake(MistakeKind::MissingHere, None).against(&p.reference, p.amount)
            {
                *paid = Some(false);
                self.push(m);
            }
            return;
        }
        let m = match (l.status, found) {
            (BillStatus::Paid, Some((p, seen, paid))) => {
                if !*seen {
                    self.report.reconciled.push(l.txn_id.clone());
                }
                *seen = true;
                let m = mistake(MistakeKind::MissingHere, None).against(&p.reference, p.amount);
                *paid = Some(m.is_none());
                if m.is_none() {
                    self.report.matched += 1;
                }
                m
            }
            (BillStatus::Paid, None) => Some(mistake(MistakeKind::MissingHere, None)),
            (BillStatus::Refund | BillStatus::Closed, Some((p, seen, _))) => {
                if !*seen {
                    self.report.reconciled.push(l.txn_id.clone());
                }
                *seen = true;
                Some(mistake(MistakeKind::StatusMismatch, Some(p)))
            }
            // A refund of a payment we never had; a closed order never paid.
            (BillStatus::Refund, None) => Some(mistake(MistakeKind::StatusMismatch, None)),
            (BillStatus::Closed, None) => None,
        };
        if let Some(m) = m {
            self.push(m);
        }
    }

    fn push(&mut self, m: MistakeFacts) {
        if self.kept() < MISTAKES_PER_BILL_MAX {
            self.report.mistakes.push(m);
        } else {
            self.report.overflow = true;
        }
    }

    /// Mistakes and waiting payments kept, bounded together.
    fn kept(&self) -> usize {
        self.report.mistakes.len() + self.report.waiting.len()
    }

    /// The report: recorded payments the bill did not show are missing
    /// there, but one within the window of either midnight may be in the
    /// other day's bill: it waits on that day ([`Report::waiting`]).
    pub fn finish(mut self) -> Report {
        self.report.window = Some(self.day);
        let before_until = self.day.start.plus_ms(self.day.window_ms);
        let after_from = self.day.end.plus_ms(-self.day.window_ms);
        for (txn, (p, seen, _)) in std::mem::take(&mut self.ours) {
            // Shown by this bill, or matched by an earlier one (the other
            // day's, for a payment near midnight).
            if seen || p.reconciled {
                continue;
            }
            let facts = MistakeFacts {
                kind: MistakeKind::MissingThere,
                txn_id: txn,
                reference: p.reference.clone(),
                bill_reference: None,
                ours: Some(p.amount),
                theirs: None,
                bill_status: None,
                at: p.at,
            };
            let waits = if p.at < before_until {
                Some(Around::Before)
            } else if p.at >= after_from {
                Some(Around::After)
            } else {
                None
            };
            match waits {
                Some(around) if self.kept() < MISTAKES_PER_BILL_MAX => {
                    self.report.waiting.push((facts, around));
                }
                Some(_) => self.report.overflow = true,
                None => self.push(facts),
            }
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn day() -> DayWindow {
        DayWindow {
            start: Timestamp(100 * 24 * H),
            end: Timestamp(101 * 24 * H),
            window_ms: H / 2,
        }
    }

    fn ours(txn: &str, amount: &str, at: Timestamp) -> (String, LoggedPayment) {
        (
            txn.into(),
            LoggedPayment {
                reference: format!("ref-{txn}"),
                amount: amount.parse().expect("amount"),
                at,
                reconciled: false,
            },
        )
    }

    fn line(txn: &str, amount: &str, status: BillStatus, at: Timestamp) -> BillLine {
        BillLine {
            txn_id: txn.into(),
            reference: format!("ref-{txn}"),
            amount: amount.parse().expect("amount"),
            status,
            at,
        }
    }

    #[test]
    fn a_bill_that_disagrees_on_everything_overflows() {
        let d = day();
        let mut m = Matcher::new(Vec::new(), d);
        for i in 0..=MISTAKES_PER_BILL_MAX {
            m.line(&line(&format!("t{i}"), "1.00", BillStatus::Paid, d.start));
        }
        let r = m.finish();
        assert!(r.overflow);
        assert_eq!(r.mistakes.len(), MISTAKES_PER_BILL_MAX);
    }

    #[test]
    fn both_ways_with_the_midnight_window() {
        let d = day();
        let noon = d.start.plus_ms(12 * H);
        let late = d.end.plus_ms(-H / 4); // within the window before midnight
        let m = Matcher::new(
            [
                ours("a", "14.00", noon),
                ours("b", "7.00", noon),
                ours("c", "9.00", noon),
                ours("d", "5.00", noon),
                ours("late", "3.00", late),
                ours("e", "2.00", noon),
            ],
            d,
        );
        let mut m = m;
        m.line(&line("a", "14", BillStatus::Paid, noon)); // matched (14 == 14.00)
        m.line(&line("b", "7.01", BillStatus::Paid, noon)); // amount
        m.line(&line("x", "1.00", BillStatus::Paid, noon)); // missing here
        m.line(&line("d", "5.00", BillStatus::Refund, noon)); // status
        m.line(&line("y", "1.00", BillStatus::Closed, noon)); // nothing
        m.line(&line("e", "2.00", BillStatus::Closed, noon)); // status
        let r = m.finish();
        assert_eq!((r.lines, r.matched, r.waiting.len()), (6, 1, 1));
        // Every payment here the bill showed, matched or not.
        assert_eq!(r.reconciled, ["a", "b", "d", "e"]);
        let mut kinds: Vec<_> = r
            .mistakes
            .iter()
            .map(|m| (m.txn_id.as_str(), m.kind))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("b", MistakeKind::AmountMismatch),
                ("c", MistakeKind::MissingThere),
                ("d", MistakeKind::StatusMismatch),
                ("e", MistakeKind::StatusMismatch),
                ("x", MistakeKind::MissingHere),
            ]
        );
    }
}
