//! Checking an applied command's events against the expectation, and
//! updating the model from them, one event at a time.

use otc_engine::command::Resolution;
use otc_engine::event::SettledBy;
use otc_engine::trade::{Actor, TradeStateKind, TransitionReason};
use otc_engine::{Command, Event, EventKind, ListingId, Timestamp, TradeId, UserId};

use super::expect::{Change, Expect, Needed};
use super::{ListingTerms, Model, Trade};

use TradeStateKind as S;

/// What one step's events showed, for the checks made after all of them.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The command's own change happened.
    pub(super) own_done: bool,
    /// Its needed event was emitted.
    pub(super) needed_done: bool,
    /// A wrong fund password was recorded for the acting user.
    pub(super) password_failed: bool,
    /// Transitions into APPEALED, with their actor.
    pub(super) appealed: Vec<(TradeId, Actor)>,
    /// `AppealOpened` events.
    pub(super) opened: Vec<(TradeId, Actor)>,
    /// Transitions out of APPEALED.
    pub(super) left_appeal: Vec<(TradeId, Actor, TransitionReason)>,
    /// `AppealResolved` events.
    pub(super) resolved: Vec<(TradeId, UserId, Resolution)>,
    /// `AppealSettled` events.
    pub(super) settled: Vec<(TradeId, SettledBy)>,
    /// Trades a payment channel proved paid in this step.
    pub(super) verified: Vec<TradeId>,
    /// Fast-match trades timed out in this step: (seller, their flag), so a
    /// re-dispatched try (SPEC §9) inherits release-on-verified.
    pub(super) timed_out_fast: Vec<(UserId, Option<bool>)>,
}

pub(super) fn describe_change(change: &Change) -> String {
    format!(
        "→{} by {:?} ({:?})",
        change.to.name(),
        change.actor,
        change.reason
    )
}

impl Model {
    /// Checks an applied command against `expect`, updating the model.
    pub(super) fn check_applied(
        &mut self,
        now: Timestamp,
        cmd: &Command,
        expect: &Expect,
        events: &[Event],
    ) -> Result<(), String> {
        let Some((change, needed)) = expect.accept else {
            return Err(format!(
                "SPEC expects a refusal {} ({}), but the engine accepted it ({} events: {})",
                match expect.refuse.as_deref() {
                    Some([]) | None => "of any kind".to_string(),
                    Some(kinds) => format!("{kinds:?}"),
                },
                expect.why,
                events.len(),
                summary(events)
            ));
        };
        if let Command::PublishListing { seller, spec, .. } = cmd {
            self.learn_listing(
                *seller,
                spec.payment_window_ms,
                spec.release_on_verified,
                events,
            );
        }
        let mut seen = Seen::default();
        for event in events {
            if event.at != now {
                return Err(format!(
                    "event {} is stamped {:?}, not the command's time",
                    event.seq, event.at
                ));
            }
            self.apply_event(now, cmd, expect, change, needed, &event.kind, &mut seen)?;
        }
        self.after_events(now, cmd, expect, (change, needed), &seen, events)
    }

    /// Remembers the terms of the listing a PublishListing created.
    fn learn_listing(&mut self, seller: UserId, window: Option<i64>, rov: bool, events: &[Event]) {
        let new = events.iter().find_map(|e| match e.kind {
            EventKind::ListingChanged {
                listing, seller: s, ..
            } if s == seller && !self.listings.contains_key(&listing) => Some(listing),
            _ => None,
        });
        if let Some(listing) = new {
            let window_ms = window.unwrap_or(self.windows.payment_window_ms_default);
            self.listings.insert(
                listing,
                ListingTerms {
                    window_ms,
                    release_on_verified: rov,
                },
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_event(
        &mut self,
        now: Timestamp,
        cmd: &Command,
        expect: &Expect,
        change: Option<Change>,
        needed: Option<Needed>,
        kind: &EventKind,
        seen: &mut Seen,
    ) -> Result<(), String> {
        use EventKind as K;
        match kind {
            K::TradeCreated {
                trade,
                seller,
                buyer,
                listing,
                pay_by,
                ..
            } => {
                let fast_flag = match cmd {
                    Command::FastSell { request, .. } => Some(request.release_on_verified),
                    _ => inherited(&seen.timed_out_fast, *seller),
                };
                self.create(now, *trade, *seller, *buyer, *listing, *pay_by, fast_flag)
            }
            K::TradeTransitioned {
                trade,
                seller,
                buyer,
                from,
                to,
                actor,
                reason,
            } => {
                let t = self
                    .trades
                    .get(trade)
                    .ok_or_else(|| format!("{trade} moved, but was never created"))?;
                if (t.seller, t.buyer) != (*seller, *buyer) {
                    return Err(format!(
                        "{trade} moved naming other parties than it was created with"
                    ));
                }
                let step = Change {
                    to: *to,
                    actor: *actor,
                    reason: *reason,
                };
                self.transition(now, expect, change, *trade, *from, step, seen)
            }
            K::AppealAvailable { trade, .. } => self.appeal_available(now, *trade),
            K::AppealOpened { trade, by, .. } => {
                seen.opened.push((*trade, *by));
                Ok(())
            }
            K::AppealResolved {
                trade,
                agent,
                resolution,
                ..
            } => {
                seen.resolved.push((*trade, *agent, *resolution));
                Ok(())
            }
            K::AppealSettled { trade, how, .. } => {
                seen.settled.push((*trade, *how));
                Ok(())
            }
            K::AppealClaimed { trade, agent } => {
                let t = self
                    .trades
                    .get_mut(trade)
                    .ok_or_else(|| format!("{trade} claimed, but never created"))?;
                if t.state != S::Appealed {
                    return Err(format!(
                        "{trade} claimed by {agent:?} while {}: SPEC §11 claims appeals",
                        t.state.name()
                    ));
                }
                t.holder = Some(*agent);
                seen.needed_done |=
                    needed == Some(Needed::Claimed(*agent)) && expect.trade == Some(*trade);
                Ok(())
            }
            K::AppealUnclaimed { trade, agent } => {
                let t = self
                    .trades
                    .get_mut(trade)
                    .ok_or_else(|| format!("{trade} unclaimed, but never created"))?;
                if t.holder != Some(*agent) {
                    return Err(format!(
                        "{trade} handed back by {agent:?}, but the holder is {:?}",
                        t.holder
                    ));
                }
                t.holder = None;
                seen.needed_done |=
                    needed == Some(Needed::Unclaimed(*agent)) && expect.trade == Some(*trade);
                Ok(())
            }
            K::EvidenceAdded { trade, by, .. } => {
                let t = self
                    .trades
                    .get(trade)
                    .ok_or_else(|| format!("evidence on {trade}, never created"))?;
                if t.state != S::Appealed || t.party(*by).is_none() {
                    return Err(format!(
                        "evidence by {by:?} on a {} trade: SPEC §11 lets the parties add it while APPEALED",
                        t.state.name()
                    ));
                }
                seen.needed_done |=
                    needed == Some(Needed::Evidence(*by)) && expect.trade == Some(*trade);
                Ok(())
            }
            K::ChatPosted { trade, author, .. } => {
                let t = self
                    .trades
                    .get(trade)
                    .ok_or_else(|| format!("chat on {trade}, never created"))?;
                if t.is_terminal() || t.party(*author).is_none() {
                    return Err(format!(
                        "chat by {author:?} on a {} trade: SPEC §11a lets the parties chat while open",
                        t.state.name()
                    ));
                }
                seen.needed_done |=
                    needed == Some(Needed::Chat(*author)) && expect.trade == Some(*trade);
                Ok(())
            }
            K::PaymentVerified { trade, .. } => {
                seen.verified.push(*trade);
                Ok(())
            }
            K::FundPasswordFailed { user, .. } => {
                seen.password_failed |= cmd.actor() == Some(*user);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A trade was created: track it, checking its payment window.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        now: Timestamp,
        id: TradeId,
        seller: UserId,
        buyer: UserId,
        listing: Option<ListingId>,
        pay_by: Timestamp,
        fast_flag: Option<bool>,
    ) -> Result<(), String> {
        if self.trades.contains_key(&id) {
            return Err(format!("{id} created twice"));
        }
        if seller == buyer {
            return Err(format!(
                "{id} created with the seller as its own buyer (SPEC §8)"
            ));
        }
        let w = self.windows;
        // Learned: a re-dispatched fast-match try (created by FireDue) gets
        // the full merchant window from that FireDue's `now`.
        let window = pay_by.ms_since(now);
        let terms = listing.and_then(|l| self.listings.get(&l).copied());
        let (ok, expected) = match (listing, terms) {
            (None, _) => (
                window == w.merchant_window_ms,
                format!("the merchant window {} ms (§9)", w.merchant_window_ms),
            ),
            (Some(_), Some(t)) => (
                window == t.window_ms,
                format!("its listing's window {} ms (§7)", t.window_ms),
            ),
            (Some(_), None) => (
                (w.payment_window_ms_min..=w.payment_window_ms_max).contains(&window),
                format!(
                    "a window within {}..={} ms (§7)",
                    w.payment_window_ms_min, w.payment_window_ms_max
                ),
            ),
        };
        if !ok {
            return Err(format!(
                "{id} created with pay_by {pay_by:?}, {window} ms from now; SPEC expects {expected}"
            ));
        }
        let release_on_verified = match terms {
            Some(t) => Some(t.release_on_verified),
            None if listing.is_none() => fast_flag,
            None => None,
        };
        let trade = Trade {
            seller,
            buyer,
            listing,
            pay_by,
            state: S::AwaitingPayment,
            paid_at: None,
            ended_at: None,
            last_reason: TransitionReason::Matched,
            appeal_available_seen: false,
            holder: None,
            release_on_verified,
        };
        self.trades.insert(id, trade);
        Ok(())
    }

    /// The appeal-eligibility timer fired for `id` (SPEC §12). Learned: the
    /// engine announces it with `AppealAvailable` when FireDue reaches
    /// `paid_at + appeal_after`; the model holds it to the timer rules
    /// (never early, once, only while PAID, never missed by a FireDue).
    fn appeal_available(&mut self, now: Timestamp, id: TradeId) -> Result<(), String> {
        let w = self.windows;
        let t = self
            .trades
            .get_mut(&id)
            .ok_or_else(|| format!("{id} became appealable, never created"))?;
        let from = t.appeal_from(&w);
        if t.state != S::Paid {
            return Err(format!(
                "{id} announced appealable while {}: only a PAID trade becomes appealable",
                t.state.name()
            ));
        }
        if t.appeal_available_seen {
            return Err(format!(
                "{id} announced appealable twice: SPEC §12 fires each deadline once"
            ));
        }
        match from {
            Some(from) if now >= from => {
                t.appeal_available_seen = true;
                Ok(())
            }
            _ => Err(format!(
                "early: {id} announced appealable at {now:?}, SPEC §10 allows appeals from {from:?}"
            )),
        }
    }
}

/// The release-on-verified flag a re-dispatched fast-match try of `seller`
/// inherits from the tries timed out in this step, if they agree.
fn inherited(timed_out: &[(UserId, Option<bool>)], seller: UserId) -> Option<bool> {
    let mut flags = timed_out
        .iter()
        .filter(|(s, _)| *s == seller)
        .map(|(_, f)| *f);
    let first = flags.next()??;
    flags.all(|f| f == Some(first)).then_some(first)
}

/// A short account of the trade events, for messages.
pub(super) fn summary(events: &[Event]) -> String {
    let parts: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TradeTransitioned {
                trade,
                from,
                to,
                actor,
                reason,
                ..
            } => Some(format!(
                "{trade} {}→{} by {actor:?} ({reason:?})",
                from.name(),
                to.name()
            )),
            EventKind::TradeCreated { trade, pay_by, .. } => {
                Some(format!("{trade} created, pay by {pay_by:?}"))
            }
            EventKind::FundPasswordFailed { .. } => Some("wrong fund password recorded".into()),
            EventKind::AppealClaimed { trade, agent } => {
                Some(format!("{trade} claimed by {agent:?}"))
            }
            EventKind::AppealUnclaimed { trade, agent } => {
                Some(format!("{trade} handed back by {agent:?}"))
            }
            EventKind::EvidenceAdded { trade, .. } => Some(format!("evidence on {trade}")),
            EventKind::ChatPosted { trade, .. } => Some(format!("chat on {trade}")),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        "no trade events".into()
    } else {
        parts.join("; ")
    }
}
