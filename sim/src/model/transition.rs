//! One trade transition checked against SPEC §10, §12 and §19, and the
//! checks made once all of a step's events are in.

use otc_engine::command::Resolution;
use otc_engine::event::SettledBy;
use otc_engine::trade::{Actor, TradeStateKind, TransitionReason};
use otc_engine::{Command, Event, Timestamp, TradeId};

use super::Model;
use super::apply::{Seen, describe_change, summary};
use super::expect::{Change, Expect, Needed};

use TradeStateKind as S;
use TransitionReason as R;

impl Model {
    /// The engine moved trade `id` from `from` by `step`: check and apply.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn transition(
        &mut self,
        now: Timestamp,
        expect: &Expect,
        change: Option<Change>,
        id: TradeId,
        from: TradeStateKind,
        step: Change,
        seen: &mut Seen,
    ) -> Result<(), String> {
        let w = self.windows;
        let t = self
            .trades
            .get(&id)
            .ok_or_else(|| format!("{id} moved, but was never created"))?;
        let moved = format!(
            "{}→{} by {:?} ({:?})",
            from.name(),
            step.to.name(),
            step.actor,
            step.reason
        );
        if t.is_terminal() {
            if step.reason == R::PaymentTimeout && t.last_reason == R::PaymentTimeout {
                return Err(format!(
                    "{id} timed out twice ({moved}): SPEC §12 fires each deadline exactly once"
                ));
            }
            return Err(format!(
                "{id} is {}, terminal (§10), but the engine moved it {moved}",
                t.state.name()
            ));
        }
        if from != t.state {
            return Err(format!(
                "{id} moved {moved}, but the model has it {}",
                t.state.name()
            ));
        }
        // Due timers may move a trade in any command (SPEC §12 only asks
        // that they fire when due, once); learned: the engine fires them
        // only on FireDue, and a click at a due deadline is decided by the
        // click alone (see expect.rs).
        match (step.actor, step.reason) {
            (Actor::System, R::PaymentTimeout) => {
                if (from, step.to) != (S::AwaitingPayment, S::Cancelled) {
                    return Err(format!(
                        "{id}: a payment timeout cancels an unpaid trade (§10), engine did {moved}"
                    ));
                }
                if now < t.pay_by {
                    let early = t.pay_by.ms_since(now);
                    return Err(format!(
                        "early: {id} timed out {early} ms before its window ends at {:?} ({moved})",
                        t.pay_by
                    ));
                }
                if t.listing.is_none() {
                    seen.timed_out_fast.push((t.seller, t.release_on_verified));
                }
            }
            (Actor::System, R::AutoAppealed) => {
                let due = t.auto_appeal_at(&w);
                if (from, step.to) != (S::Paid, S::Appealed) {
                    return Err(format!(
                        "{id}: the system appeals a PAID trade (§10), engine did {moved}"
                    ));
                }
                if due.is_none_or(|due| now < due) {
                    return Err(format!(
                        "early: {id} auto-appealed at {now:?}, due {due:?} (auto_appeal_after after paid)"
                    ));
                }
            }
            (actor, reason) if expect.gateway == Some(actor) => {
                // A notification says when it was paid (or not: now). A
                // payment applied from a bill was paid at its line's time,
                // which the model does not track: taken as in time, so either
                // outcome the engine may choose passes.
                let paid_at = match actor {
                    Actor::Reconciliation => Timestamp(i64::MIN),
                    _ => expect.paid_at.unwrap_or(now),
                };
                self.check_gateway((now, paid_at), id, from, step, seen, &moved, reason)?;
            }
            _ => match change {
                Some(c) if expect.trade == Some(id) && !seen.own_done => {
                    if c != step {
                        return Err(format!(
                            "SPEC expects {} ({}), but the engine did {moved}",
                            describe_change(&c),
                            expect.why
                        ));
                    }
                    seen.own_done = true;
                }
                _ => {
                    return Err(format!(
                        "unexpected: {id} {moved}; SPEC allows no such change here ({})",
                        expect.why
                    ));
                }
            },
        }
        self.apply_transition(now, id, from, step, seen);
        Ok(())
    }

    /// A transition a payment channel drove (SPEC §19).
    #[allow(clippy::too_many_arguments)]
    fn check_gateway(
        &self,
        (now, paid_at): (Timestamp, Timestamp),
        id: TradeId,
        from: TradeStateKind,
        step: Change,
        seen: &Seen,
        moved: &str,
        reason: TransitionReason,
    ) -> Result<(), String> {
        let Some(t) = self.trades.get(&id) else {
            return Err(format!("{id} moved, but was never created"));
        };
        match (from, step.to, reason) {
            // Learned: a payment proved at or after `pay_by`, and made then
            // by the gateway's clock too, pays a trade whose window has
            // elapsed: the engine records an anomaly ("paid after cancel")
            // and lets the timer cancel it, as for MarkPaid. Paid in time and
            // notified late, it pays.
            (S::AwaitingPayment, S::Paid, R::GatewayVerified)
                if now >= t.pay_by && paid_at >= t.pay_by =>
            {
                Err(format!(
                    "{id} paid by a channel ({moved}) after its window closed at {:?}: §19 makes that an anomaly",
                    t.pay_by
                ))
            }
            // The same for a wrong amount: an anomaly, no appeal holding the
            // seller's coin.
            (S::AwaitingPayment, S::Appealed, R::GatewayAmountMismatch)
                if now >= t.pay_by && paid_at >= t.pay_by =>
            {
                Err(format!(
                    "{id} appealed by a channel's wrong amount ({moved}) after its window closed at {:?}: an anomaly only",
                    t.pay_by
                ))
            }
            (S::AwaitingPayment, S::Paid, R::GatewayVerified) => Ok(()),
            (S::Paid, S::Released, R::ReleasedOnVerifiedPayment) => {
                if t.release_on_verified == Some(false) {
                    Err(format!(
                        "{id} released on verified payment ({moved}), but its seller did not opt in (§19)"
                    ))
                } else if !seen.verified.contains(&id) {
                    Err(format!(
                        "{id} released on verified payment ({moved}) with no payment verified in this step"
                    ))
                } else {
                    Ok(())
                }
            }
            (S::AwaitingPayment | S::Paid, S::Appealed, R::GatewayAmountMismatch) => Ok(()),
            _ => Err(format!(
                "{id}: {moved} is not an effect §19 gives a verified payment"
            )),
        }
    }

    fn apply_transition(
        &mut self,
        now: Timestamp,
        id: TradeId,
        from: TradeStateKind,
        step: Change,
        seen: &mut Seen,
    ) {
        let Some(t) = self.trades.get_mut(&id) else {
            return;
        };
        t.state = step.to;
        t.last_reason = step.reason;
        if step.to == S::Paid {
            // Learned: a trade paid through a channel runs its appeal timers
            // from when the notification was applied, not the gateway's
            // stated payment time.
            t.paid_at = Some(now);
        }
        if matches!(step.to, S::Released | S::Cancelled) {
            t.ended_at = Some(now);
            t.holder = None;
        }
        if step.to == S::Appealed {
            seen.appealed.push((id, step.actor));
        }
        if from == S::Appealed {
            seen.left_appeal.push((id, step.actor, step.reason));
        }
    }

    /// Checks made once every event of an applied command is in.
    pub(super) fn after_events(
        &self,
        now: Timestamp,
        cmd: &Command,
        expect: &Expect,
        (change, needed): (Option<Change>, Option<Needed>),
        seen: &Seen,
        events: &[Event],
    ) -> Result<(), String> {
        let own = expect.trade.and_then(|id| self.trades.get(&id));
        // Learned (Engine::apply docs, and its events): a Release with a
        // wrong fund password is applied as a recorded failure (SPEC §6,
        // `FundPasswordFailed`) and changes no trade; checked last, so only
        // when the release itself would have been allowed.
        let recorded_failure = seen.password_failed && matches!(cmd, Command::Release { .. });
        if let Some(c) = change
            && !seen.own_done
            && !recorded_failure
            // A due timer in the same step already took it there.
            && own.is_none_or(|t| t.state != c.to)
        {
            return Err(format!(
                "SPEC expects {} ({}), but the engine accepted it without that change ({})",
                describe_change(&c),
                expect.why,
                summary(events)
            ));
        }
        if let Some(n) = needed
            && !seen.needed_done
            && !recorded_failure
        {
            return Err(format!(
                "SPEC expects a {n:?} event ({}), got: {}",
                expect.why,
                summary(events)
            ));
        }
        check_appeal_events(seen)?;
        for id in &seen.verified {
            if let Some(t) = self.trades.get(id)
                && t.state == S::Paid
                && t.release_on_verified == Some(true)
            {
                return Err(format!(
                    "{id}: its seller opted in to release on verified payment (§19), but it stayed PAID"
                ));
            }
        }
        if matches!(cmd, Command::FireDue) {
            self.check_nothing_missed(now)?;
        }
        Ok(())
    }
}

/// Every appeal opened, resolved or settled in a step has its transition,
/// and every transition into or out of APPEALED its appeal event (SPEC §11).
fn check_appeal_events(seen: &Seen) -> Result<(), String> {
    for (id, actor) in &seen.appealed {
        if !seen.opened.contains(&(*id, *actor)) {
            return Err(format!(
                "{id} became APPEALED by {actor:?} without an AppealOpened by the same actor"
            ));
        }
    }
    for (id, by) in &seen.opened {
        if !seen.appealed.contains(&(*id, *by)) {
            return Err(format!(
                "AppealOpened on {id} by {by:?} without its transition to APPEALED"
            ));
        }
    }
    for (id, actor, reason) in &seen.left_appeal {
        let recorded = match (actor, reason) {
            (Actor::Support(agent), R::ResolvedRelease) => {
                seen.resolved.contains(&(*id, *agent, Resolution::Release))
            }
            (Actor::Support(agent), R::ResolvedRefund) => {
                seen.resolved.contains(&(*id, *agent, Resolution::Refund))
            }
            (_, R::SettledBySellerRelease) => {
                seen.settled.contains(&(*id, SettledBy::SellerReleased))
            }
            (_, R::BuyerWithdrewAppeal) => seen.settled.contains(&(*id, SettledBy::BuyerCancelled)),
            _ => false,
        };
        if !recorded {
            return Err(format!(
                "{id}'s appeal ended ({reason:?} by {actor:?}) without recording how (§11: resolved or settled)"
            ));
        }
    }
    let ended: Vec<TradeId> = seen.left_appeal.iter().map(|(id, _, _)| *id).collect();
    for id in seen
        .resolved
        .iter()
        .map(|r| r.0)
        .chain(seen.settled.iter().map(|s| s.0))
    {
        if !ended.contains(&id) {
            return Err(format!(
                "{id}'s appeal recorded as ended, but the trade did not leave APPEALED"
            ));
        }
    }
    Ok(())
}
