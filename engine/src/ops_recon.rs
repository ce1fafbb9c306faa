//! Reconciliation (SPEC §20): the payment log bills are matched against,
//! recording a bill's outcome, CS handling mistakes (applying a missed
//! notification from the bill). Daily statements: `ops_statement.rs`.

use crate::engine::{Engine, invariant};
use crate::event::EventKind;
use crate::ids::{MistakeId, Timestamp, UserId};
use crate::ops_recon_unseen::Unseen;
use crate::payment::{EndedTrade, GatewayPayment};
use crate::recon::{
    Around, BillRecord, DayWindow, Handled, LoggedPayment, Matcher, Mistake, MistakeFacts,
    MistakeKind, Report,
};
use crate::rejection::Rejection;
use crate::trade::Actor;

impl Engine {
    /// Logs a verified payment for reconciliation, dropping entries older
    /// than the configured retention. A payment the gateway notified after
    /// its bill settles the bill's MISSING_HERE; one reconciliation applies
    /// from the bill (`actor`) leaves that finding to `apply_missed`, which
    /// handles it once, by its agent.
    pub(crate) fn log_payment(&mut self, p: &GatewayPayment, actor: Actor, now: Timestamp) {
        let at = p.paid_at.unwrap_or(now);
        let key = (p.channel.clone(), p.txn_id.clone());
        self.state
            .payment_times
            .insert((p.channel.clone(), at, p.txn_id.clone()));
        self.state
            .payment_expiry
            .insert((now, p.channel.clone(), p.txn_id.clone()));
        // A bill already showed it (the notification came after the import,
        // as a gateway retrying for a day may): no later bill calls it missing
        // there. Its MISSING_HERE is settled, as it would not have been
        // recorded had the notification come first; at another amount, the
        // two disagree, and that is a finding of its own.
        let shown = self.bill_showed(&p.channel, &p.txn_id);
        let reconciled = shown.is_some();
        // Its day's bill is in and did not show it (a bill that had would
        // have left a finding above): missing there, as the import would have
        // said had the notification come first.
        if !reconciled {
            let unseen = Unseen {
                txn_id: &p.txn_id,
                reference: &p.reference,
                amount: p.amount,
                at,
            };
            self.missing_there_if_billed(&p.channel, unseen, now);
        }
        // (A refund row's amount is the refund's: no payment to compare.)
        if let Some((id, day, facts)) = shown
            && facts.kind == MistakeKind::MissingHere
            && actor != Actor::Reconciliation
        {
            let note = match facts.against(&p.reference, p.amount) {
                None => {
                    "settled: the gateway's notification came after the bill, at the bill's amount"
                        .to_owned()
                }
                Some(found) => {
                    let kind = found.kind.name();
                    self.record_mistake(&p.channel, &day, found, now);
                    format!(
                        "settled: the gateway's notification came after the bill and disagrees with it (see its {kind})"
                    )
                }
            };
            // Unless CS closed it first.
            if self.state.open_mistakes.contains(&id) {
                self.handle_mistake(None, id, note, now);
            }
        }
        self.state.payment_log.insert(
            key,
            LoggedPayment {
                reference: p.reference.clone(),
                amount: p.amount,
                at,
                reconciled,
            },
        );
        // Expire by when they were logged, across every channel.
        let horizon = now.plus_ms(-self.config.payment_log_retention_ms);
        while let Some((logged, channel, txn)) = self.state.payment_expiry.first().cloned() {
            if logged >= horizon {
                break;
            }
            self.state.payment_expiry.pop_first();
            if let Some(p) = self
                .state
                .payment_log
                .remove(&(channel.clone(), txn.clone()))
            {
                self.state.payment_times.remove(&(channel, p.at, txn));
            }
        }
    }

    /// A matcher for `channel`'s bill of the day `d`, over the payments
    /// recorded here around that day (those an earlier bill matched are
    /// never missing there).
    pub fn bill_matcher(&self, channel: &str, d: DayWindow) -> Matcher {
        let (from, to) = d.span();
        let ours = self
            .state
            .payment_times
            .range(
                (channel.to_owned(), from, String::new())..(channel.to_owned(), to, String::new()),
            )
            .filter_map(|(c, _, txn)| {
                let p = self.state.payment_log.get(&(c.clone(), txn.clone()))?;
                Some((txn.clone(), p.clone()))
            });
        Matcher::new(ours, d)
    }

    /// Whether `channel`'s bill of `day` with this digest was imported.
    pub fn bill(&self, channel: &str, day: &str) -> Option<&BillRecord> {
        self.state.bills.get(&(channel.to_owned(), day.to_owned()))
    }

    /// Records a bill's outcome. The same bill again changes nothing; a
    /// "missing here" whose notification arrived meanwhile is not one; a
    /// mistake already recorded for the same transaction is not repeated.
    pub(crate) fn record_bill(
        &mut self,
        channel: &str,
        day: &str,
        digest: &str,
        report: &Report,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        crate::payment::check_channel_name(channel).map_err(|w| Rejection::field("channel", w))?;
        let Some(day_number) = chrono_day(day) else {
            return Err(Rejection::field("date", "must be YYYY-MM-DD"));
        };
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Rejection::field("digest", "must be a SHA-256 in hex"));
        }
        if report.overflow
            || report.mistakes.len() + report.waiting.len() > crate::recon::MISTAKES_PER_BILL_MAX
        {
            return Err(Rejection::field(
                "data",
                format!(
                    "the bill disagrees on more than {} payments; is it this channel's bill of this day?",
                    crate::recon::MISTAKES_PER_BILL_MAX
                ),
            ));
        }
        if self.bill(channel, day).is_some_and(|b| b.digest == digest) {
            return Ok(());
        }
        // Whether any payment of this channel is open as missing there (an
        // earlier bill did not show it): else nothing below can settle one,
        // and a large bill's lines skip the look-up.
        let settle = self.state.open_mistakes.iter().any(|id| {
            self.state
                .mistakes
                .get(id)
                .is_some_and(|m| m.channel == channel && m.facts.kind == MistakeKind::MissingThere)
        });
        for txn in &report.reconciled {
            if let Some(p) = self
                .state
                .payment_log
                .get_mut(&(channel.to_owned(), txn.clone()))
            {
                p.reconciled = true;
            }
            // An earlier bill (of this day, since corrected, or one taken
            // before the day was over) did not show it: this one does.
            if settle {
                self.settle_missing_there(channel, txn, day, now);
            }
        }
        // A payment near midnight this bill did not show is missing there
        // once the other day's bill is in too (recorded before this one, in
        // any order) and did not show it either; until then it waits.
        let (before_billed, after_billed) = (
            self.billed_on(channel, day_number - 1),
            self.billed_on(channel, day_number + 1),
        );
        let mut pending = 0;
        let decided: Vec<&MistakeFacts> = report
            .waiting
            .iter()
            .filter_map(|(facts, around)| {
                let other_billed = match around {
                    Around::Before => before_billed,
                    Around::After => after_billed,
                };
                if !other_billed {
                    pending += 1;
                }
                other_billed.then_some(facts)
            })
            .collect();
        let (mut recorded, mut other_days) = (0, 0);
        for facts in report.mistakes.iter().chain(decided) {
            let logged = self
                .state
                .payment_log
                .get_mut(&(channel.to_owned(), facts.txn_id.clone()));
            let mut facts = facts.clone();
            // The notification arrived meanwhile, and the bill shows it.
            let mut shown = false;
            let settled = match (facts.kind, logged) {
                // The bill shows it, for its order at its amount, or not.
                (MistakeKind::MissingHere, Some(p)) => {
                    (p.reconciled, shown) = (true, true);
                    match facts.against(&p.reference, p.amount) {
                        None => true,
                        Some(found) => {
                            facts = found;
                            false
                        }
                    }
                }
                // A refund row for a payment whose notification arrived
                // meanwhile: still a mismatch of status, now with ours; the
                // bill showed the transaction, so no bill is missing it.
                (MistakeKind::StatusMismatch, Some(p)) if facts.ours.is_none() => {
                    (p.reconciled, shown) = (true, true);
                    facts.ours = Some(p.amount);
                    false
                }
                // Another bill (the next or the previous day's) showed it.
                (MistakeKind::MissingThere, Some(p)) => p.reconciled,
                _ => false,
            };
            // Missing there is the payment's day's: near midnight, the
            // bill of the day before or after this one may complete the pair.
            let on = match report.window {
                Some(w) if facts.kind == MistakeKind::MissingThere && facts.at < w.start => {
                    day_name(day_number - 1)
                }
                Some(w) if facts.kind == MistakeKind::MissingThere && facts.at >= w.end => {
                    day_name(day_number + 1)
                }
                _ => day.to_owned(),
            };
            let txn = facts.txn_id.clone();
            if !settled && self.record_mistake(channel, &on, facts, now) {
                // Counted on the bill of the day it is dated (that one is in,
                // or it would still wait), and in this import's event.
                match self.state.bills.get_mut(&(channel.to_owned(), on.clone())) {
                    Some(b) if on != day => {
                        b.mistakes += 1;
                        other_days += 1;
                    }
                    _ => recorded += 1,
                }
            }
            // A MISSING_THERE an earlier bill of the day left for it is
            // settled, as for a payment the matcher read.
            if settle && shown {
                self.settle_missing_there(channel, &txn, day, now);
            }
        }
        self.state.bills.insert(
            (channel.to_owned(), day.to_owned()),
            BillRecord {
                digest: digest.to_owned(),
                imported_at: now,
                lines: report.lines,
                matched: report.matched,
                mistakes: recorded,
                pending,
                window: report.window,
            },
        );
        let key = (channel.to_owned(), day.to_owned());
        self.judge_unseen_by(channel, report, now);
        let recorded = self.state.bills.get(&key).map_or(recorded, |b| b.mistakes);
        self.emit(
            now,
            EventKind::BillImported {
                channel: channel.to_owned(),
                day: day.to_owned(),
                mistakes: recorded + other_days,
            },
        );
        Ok(())
    }

    /// Whether `channel`'s bill of day `day` (days since the epoch) is in.
    pub(crate) fn billed_on(&self, channel: &str, day: i64) -> bool {
        self.bill(channel, &day_name(day)).is_some()
    }

    /// Stores a finding of `day`'s bill, unless the same one (channel,
    /// transaction, kind) was found before; whether it was new.
    pub(crate) fn record_mistake(
        &mut self,
        channel: &str,
        day: &str,
        facts: MistakeFacts,
        now: Timestamp,
    ) -> bool {
        let key = (channel.to_owned(), facts.txn_id.clone(), facts.kind);
        if self.state.mistake_keys.contains(&key) {
            return false;
        }
        let id = MistakeId(self.next_id());
        self.state.mistake_keys.insert(key);
        self.state.open_mistakes.insert(id);
        let kind = facts.kind;
        self.state.mistakes.insert(
            id,
            Mistake {
                id,
                channel: channel.to_owned(),
                day: day.to_owned(),
                facts,
                handled: None,
            },
        );
        self.emit(
            now,
            EventKind::ReconMistake {
                mistake: id,
                kind,
                channel: channel.to_owned(),
            },
        );
        true
    }

    fn open_mistake(&self, id: MistakeId) -> Result<&Mistake, Rejection> {
        let m = self
            .state
            .mistakes
            .get(&id)
            .ok_or(Rejection::MistakeNotFound(id))?;
        if m.handled.is_some() {
            return Err(Rejection::WrongState {
                what: "reconciliation mistake",
                id: id.to_string(),
                state: "HANDLED",
                action: "handle",
            });
        }
        Ok(m)
    }

    pub(crate) fn handle_mistake(
        &mut self,
        agent: Option<UserId>,
        id: MistakeId,
        note: String,
        now: Timestamp,
    ) {
        let m = invariant(self.state.mistakes.get_mut(&id), "mistake vanished");
        m.handled = Some(Handled {
            agent,
            at: now,
            note,
        });
        self.state.open_mistakes.remove(&id);
        self.emit(now, EventKind::MistakeHandled { mistake: id, agent });
    }

    /// CS closes a mistake with a note.
    pub(crate) fn close_mistake(
        &mut self,
        agent: UserId,
        id: MistakeId,
        note: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.text_arg("note", note, true)?;
        let m = self.open_mistake(id)?;
        // Closing it buries the finding: not on the agent's own trade (the
        // bill's, for a REFERENCE_MISMATCH, as much as ours).
        let why = "an agent cannot close a reconciliation mistake of their own trade";
        self.not_own_trade(agent, &m.facts.reference, why)?;
        if let Some(theirs) = &m.facts.bill_reference {
            self.not_own_trade(agent, theirs, why)?;
        }
        self.handle_mistake(Some(agent), id, note.to_owned(), now);
        Ok(())
    }

    /// CS applies a missed notification from the bill: the effects of
    /// SPEC §19, with actor `reconciliation`.
    pub(crate) fn apply_missed(
        &mut self,
        agent: UserId,
        id: MistakeId,
        note: &str,
        history: (bool, Option<EndedTrade>),
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.text_arg("note", note, false)?;
        let m = self.open_mistake(id)?;
        if m.facts.kind != MistakeKind::MissingHere {
            return Err(Rejection::Precondition(
                "only a payment missing here can be applied from the bill; close the others with a note",
            ));
        }
        // WeChat Pay settles an order paid wholly by merchant-funded coupons
        // at 0.00: no money reached us, nothing can mark the trade paid.
        if m.facts
            .theirs
            .is_none_or(|a| a <= rust_decimal::Decimal::ZERO)
        {
            return Err(Rejection::Precondition(
                "the bill settled nothing (0.00) for this payment: there is nothing to apply; close it with a note",
            ));
        }
        // The bill also shows it refunded: the money went back, and applying
        // it could release coin for nothing.
        let reversed = (
            m.channel.clone(),
            m.facts.txn_id.clone(),
            MistakeKind::StatusMismatch,
        );
        if self.state.mistake_keys.contains(&reversed) {
            return Err(Rejection::Precondition(
                "the bill also shows this payment refunded: it cannot be applied; close it with a note",
            ));
        }
        // The payment would mark the trade paid, and may release its coin.
        self.not_own_trade(
            agent,
            &m.facts.reference,
            "an agent cannot apply a missed payment to their own trade",
        )?;
        let payment = GatewayPayment {
            channel: m.channel.clone(),
            reference: m.facts.reference.clone(),
            txn_id: m.facts.txn_id.clone(),
            amount: m.facts.theirs.unwrap_or_default(),
            currency: self.payment_currency(&m.facts.reference),
            paid_at: Some(m.facts.at),
            history_checked: history.0,
            ended: history.1,
        };
        let key = (payment.channel.clone(), payment.txn_id.clone());
        self.gateway_payment_as(&payment, Actor::Reconciliation, now)?;
        // The bill showed it: no later bill calls it missing there.
        if let Some(p) = self.state.payment_log.get_mut(&key) {
            p.reconciled = true;
        }
        let record = if note.trim().is_empty() {
            "applied from the bill".to_owned()
        } else {
            format!("applied from the bill: {note}")
        };
        self.handle_mistake(Some(agent), id, record, now);
        Ok(())
    }

    /// Refuses (`why`) an agent who is the buyer or seller of the trade
    /// `reference` names, while the engine holds it.
    fn not_own_trade(
        &self,
        agent: UserId,
        reference: &str,
        why: &'static str,
    ) -> Result<(), Rejection> {
        match crate::payment::trade_of_reference(reference).and_then(|t| self.trade(t)) {
            Some(t) if t.buyer == agent || t.seller == agent => Err(Rejection::NotAllowed(why)),
            _ => Ok(()),
        }
    }

    /// The currency a bill's payment was in. Alipay and WeChat Pay settle
    /// CNY only, whatever the trade's currency; the `hmac` channel's bill
    /// states none, so its payment is taken to be in the trade's own.
    fn payment_currency(&self, reference: &str) -> String {
        const CNY: &str = "CNY";
        let Some(t) = crate::payment::trade_of_reference(reference).and_then(|id| self.trade(id))
        else {
            return CNY.to_owned();
        };
        match &*t.method_details {
            crate::users::MethodDetails::Channel { provider, .. }
                if provider.settles_cny_only() =>
            {
                CNY.to_owned()
            }
            _ => t.fiat.as_str().to_owned(),
        }
    }
}

/// A `YYYY-MM-DD` day as days since the epoch.
pub fn chrono_day(day: &str) -> Option<i64> {
    let b = day.as_bytes();
    // Digits only around the two dashes: `i64::parse` alone would take
    // "+1" or "-001" for a number.
    let digits = b.iter().enumerate().all(|(i, c)| {
        if i == 4 || i == 7 {
            *c == b'-'
        } else {
            c.is_ascii_digit()
        }
    });
    if b.len() != 10 || !digits {
        return None;
    }
    let num = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (num(&day[..4])?, num(&day[5..7])?, num(&day[8..])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), checked by round trip.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (civil(days) == (y, m, d)).then_some(days)
}

/// Days since the epoch as (year, month, day).
pub fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A day (days since the epoch) as a bill names it: `YYYY-MM-DD`.
fn day_name(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(chrono_day("1970-01-01"), Some(0));
        assert_eq!(chrono_day("2026-12-01"), Some(20_788));
        assert_eq!(civil(20_788), (2026, 12, 1));
        assert_eq!(chrono_day("2024-02-29"), Some(19_782));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026/12/01",
            "26-12-01",
            "",
            "2024-+1-+1",
            "+024-01-01",
            "-001-01-01",
            "2024-01- 1",
        ] {
            assert_eq!(chrono_day(bad), None, "{bad}");
        }
    }
}
