//! What SPEC §10–§11 allow a command to do, predicted from the model's
//! state before the command, and the check of a refusal against it.

use otc_engine::command::Resolution;
use otc_engine::payment::trade_of_reference;
use otc_engine::trade::{Actor, TradeStateKind, TransitionReason};
use otc_engine::{Command, Rejection, RejectionKind, Timestamp, TradeId, UserId};

use super::{Model, Trade};

const FAILED: RejectionKind = RejectionKind::FailedPrecondition;
const NOT_FOUND: RejectionKind = RejectionKind::NotFound;
const DENIED: RejectionKind = RejectionKind::PermissionDenied;

/// Which side of a trade a user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Party {
    /// The trade's buyer.
    Buyer,
    /// The trade's seller.
    Seller,
}

/// A party action on a trade (SPEC §10, §11, §11a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    MarkPaid,
    Cancel,
    Release,
    Appeal,
    Evidence,
    Chat,
}

/// A state change SPEC expects an accepted command to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Change {
    /// The new state.
    pub to: TradeStateKind,
    /// Who the transition names.
    pub actor: Actor,
    /// Why.
    pub reason: TransitionReason,
}

/// An event an accepted command must emit besides any transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Needed {
    /// `AppealClaimed` by this agent.
    Claimed(UserId),
    /// `AppealUnclaimed` by this agent.
    Unclaimed(UserId),
    /// `EvidenceAdded` by this party.
    Evidence(UserId),
    /// `ChatPosted` by this party.
    Chat(UserId),
}

/// What the model allows for one command.
#[derive(Debug, Clone)]
pub(super) struct Expect {
    /// The trade the command names, if it names one.
    pub trade: Option<TradeId>,
    /// May it be applied? If so, the change it must make and the event it
    /// must emit (on `trade`).
    pub accept: Option<(Option<Change>, Option<Needed>)>,
    /// May it be refused? If so, with which kinds (empty: any kind, where
    /// SPEC does not say).
    pub refuse: Option<Vec<RejectionKind>>,
    /// The command comes from a payment channel (SPEC §19): it may move its
    /// trade as §19 says, with this actor.
    pub gateway: Option<Actor>,
    /// When the gateway says it was paid (a notification's `paid_at`).
    pub paid_at: Option<Timestamp>,
    /// The SPEC rule behind the expectation, in words.
    pub why: String,
}

impl Expect {
    fn accept(trade: TradeId, change: Option<Change>, needed: Option<Needed>, why: String) -> Self {
        Self {
            trade: Some(trade),
            accept: Some((change, needed)),
            refuse: None,
            gateway: None,
            paid_at: None,
            why,
        }
    }

    fn refuse(trade: TradeId, kinds: Vec<RejectionKind>, why: String) -> Self {
        Self {
            trade: Some(trade),
            accept: None,
            refuse: Some(kinds),
            gateway: None,
            paid_at: None,
            why,
        }
    }

    fn either(
        trade: Option<TradeId>,
        change: Option<Change>,
        kinds: Vec<RejectionKind>,
        why: String,
    ) -> Self {
        Self {
            trade,
            accept: Some((change, None)),
            refuse: Some(kinds),
            gateway: None,
            paid_at: None,
            why,
        }
    }

    /// Compares a refusal with the expectation.
    pub(super) fn check_refusal(&self, r: &Rejection, cmd: &Command) -> Result<(), String> {
        let got = || format!("the engine refused it ({:?}: {r})", r.kind());
        match &self.refuse {
            None if out_of_scope(r, cmd) => Ok(()),
            None => Err(format!(
                "SPEC expects acceptance ({}), but {}",
                self.why,
                got()
            )),
            Some(kinds)
                if kinds.is_empty() || kinds.contains(&r.kind()) || out_of_scope(r, cmd) =>
            {
                Ok(())
            }
            Some(kinds) => Err(format!(
                "SPEC expects a refusal of kind {kinds:?} ({}), but {}",
                self.why,
                got()
            )),
        }
    }
}

/// Refusals for reasons outside the model's scope: a bad text field or
/// attachment, a per-appeal bound (SPEC §11, §18), the fund password
/// (SPEC §6), and anything a payment channel's notification is refused for.
/// They are fine whatever the model predicted, as long as nothing changed.
/// Each is allowed only for the commands it can concern: a MarkPaid refused
/// for a bad field, or a FireDue refused at all, is a disagreement.
fn out_of_scope(r: &Rejection, cmd: &Command) -> bool {
    use Command as C;
    use Rejection as R;
    let texts = matches!(
        cmd,
        C::OpenAppeal { .. } | C::AddEvidence { .. } | C::PostChat { .. } | C::ResolveAppeal { .. }
    );
    let attachments = matches!(cmd, C::AddEvidence { .. } | C::PostChat { .. });
    match r {
        _ if matches!(cmd, C::GatewayPayment(_) | C::ApplyMissedPayment { .. }) => true,
        R::InvalidAmount { .. } | R::InvalidField { .. } => texts,
        R::LimitReached { .. } => attachments,
        R::NoFundPassword
        | R::StaleFundPasswordProof
        | R::FundPasswordUnchecked
        | R::FundPasswordLocked { .. }
        | R::WrongFundPassword => cmd.password_proof().is_some(),
        _ => false,
    }
}

impl Model {
    /// What SPEC allows `cmd` to do at `now`, from the model's state.
    pub(super) fn expect(&self, cmd: &Command, now: Timestamp) -> Expect {
        use Command as C;
        match cmd {
            C::MarkPaid { buyer, trade } => {
                self.party_action(*trade, *buyer, Action::MarkPaid, now)
            }
            C::CancelTrade { buyer, trade } => {
                self.party_action(*trade, *buyer, Action::Cancel, now)
            }
            C::Release { seller, trade, .. } => {
                self.party_action(*trade, *seller, Action::Release, now)
            }
            C::OpenAppeal { user, trade, .. } => {
                self.party_action(*trade, *user, Action::Appeal, now)
            }
            C::AddEvidence { user, trade, .. } => {
                self.party_action(*trade, *user, Action::Evidence, now)
            }
            C::PostChat { user, trade, .. } => self.party_action(*trade, *user, Action::Chat, now),
            C::ClaimAppeal { agent, trade } => self.claim(*trade, *agent, true),
            C::UnclaimAppeal { agent, trade } => self.claim(*trade, *agent, false),
            C::ResolveAppeal {
                agent,
                trade,
                resolution,
                ..
            } => self.resolve(*trade, *agent, *resolution),
            C::GatewayPayment(payment) => Expect {
                gateway: Some(Actor::Gateway),
                paid_at: payment.paid_at,
                ..Expect::either(
                    trade_of_reference(&payment.reference),
                    None,
                    Vec::new(),
                    "§19 verified payment".into(),
                )
            },
            C::ApplyMissedPayment { .. } => Expect {
                gateway: Some(Actor::Reconciliation),
                ..Expect::either(
                    None,
                    None,
                    Vec::new(),
                    "§20 missed payment applied as §19".into(),
                )
            },
            // FireDue "validates nothing, so it cannot be rejected" (Engine
            // docs); §12 needs every due deadline fired.
            C::FireDue => Expect {
                refuse: None,
                ..Expect::either(None, None, Vec::new(), "§12 fire every due deadline".into())
            },
            // Everything else is outside the model's scope: it may do what
            // it likes except move a trade (only due timers may, §12).
            _ => Expect::either(
                None,
                None,
                Vec::new(),
                "outside the trade state machine".into(),
            ),
        }
    }

    /// The trade `id`, or the refusal an unknown id gets (SPEC §15).
    fn known(&self, id: TradeId) -> Result<&Trade, Box<Expect>> {
        self.trades.get(&id).ok_or_else(|| {
            Box::new(Expect::refuse(
                id,
                vec![NOT_FOUND],
                "§15: unknown trade id".into(),
            ))
        })
    }

    /// Kinds a refusal "wrong state" may have: FAILED_PRECONDITION (§10),
    /// plus `extra`; the same once the engine has forgotten an ended trade
    /// (its history names the state).
    fn state_kinds(&self, extra: &[RejectionKind]) -> Vec<RejectionKind> {
        let mut kinds = vec![FAILED];
        kinds.extend_from_slice(extra);
        kinds
    }

    fn party_action(&self, id: TradeId, user: UserId, action: Action, now: Timestamp) -> Expect {
        let t = match self.known(id) {
            Ok(t) => t,
            Err(refusal) => return *refusal,
        };
        let Some(party) = t.party(user) else {
            let why = "§15: not the caller's trade: PERMISSION_DENIED or NOT_FOUND".into();
            return Expect::refuse(id, vec![DENIED, NOT_FOUND], why);
        };
        let actor = match party {
            Party::Buyer => Actor::Buyer(user),
            Party::Seller => Actor::Seller(user),
        };
        let change = |to, reason| Some(Change { to, actor, reason });
        let state = t.state.name();
        use Action as A;
        use Party::{Buyer, Seller};
        use TradeStateKind as S;
        match (action, party, t.state) {
            (A::MarkPaid, Buyer, S::AwaitingPayment) if now < t.pay_by => Expect::accept(
                id,
                change(S::Paid, TransitionReason::MarkedPaid),
                None,
                "§10 buyer marks paid".into(),
            ),
            // Race decision: at or after `pay_by` the window has elapsed
            // (§10 "within the payment window"), so a click is refused even
            // if FireDue has not yet cancelled the trade. Learned: the engine
            // refuses it (PaymentWindowClosed, FAILED_PRECONDITION).
            (A::MarkPaid, Buyer, S::AwaitingPayment) => {
                let why = format!("§10: the payment window closed at {:?}", t.pay_by);
                Expect::refuse(id, vec![FAILED], why)
            }
            (A::Cancel, Buyer, S::AwaitingPayment) if now < t.pay_by => Expect::accept(
                id,
                change(S::Cancelled, TransitionReason::BuyerCancelled),
                None,
                "§10 buyer cancels".into(),
            ),
            // Race decision: the window has elapsed but FireDue has not run.
            // Either outcome ends CANCELLED, so SPEC is indifferent: the
            // buyer's cancel may win (learned: the engine accepts it, reason
            // BuyerCancelled) or be refused.
            (A::Cancel, Buyer, S::AwaitingPayment) => {
                let why = format!(
                    "§10/§12 race: buyer cancel after the window closed at {:?}",
                    t.pay_by
                );
                Expect::either(
                    Some(id),
                    change(S::Cancelled, TransitionReason::BuyerCancelled),
                    vec![FAILED],
                    why,
                )
            }
            (A::Cancel, Buyer, S::Appealed) => Expect::accept(
                id,
                change(S::Cancelled, TransitionReason::BuyerWithdrewAppeal),
                None,
                "§10 buyer withdraws the appeal".into(),
            ),
            // A release at or after the auto-appeal deadline but before
            // FireDue: the seller's click wins (learned from the engine's
            // events; SPEC only says escrow never silently times out).
            (A::Release, Seller, S::Paid) => Expect::accept(
                id,
                change(S::Released, TransitionReason::SellerReleased),
                None,
                "§10 seller releases".into(),
            ),
            (A::Release, Seller, S::Appealed) => Expect::accept(
                id,
                change(S::Released, TransitionReason::SettledBySellerRelease),
                None,
                "§10 seller release settles the appeal".into(),
            ),
            (A::Appeal, _, S::Paid) => match t.appeal_from(&self.windows) {
                // "once appeal_after has passed": from paid_at + appeal_after
                // inclusive (learned: the engine accepts at exactly that ms).
                Some(from) if now >= from => Expect::accept(
                    id,
                    change(S::Appealed, TransitionReason::AppealOpened),
                    None,
                    "§10 a party appeals after appeal_after".into(),
                ),
                from => {
                    let why = format!("§10: appeal too early, allowed from {from:?}");
                    Expect::refuse(id, vec![FAILED], why)
                }
            },
            (A::Evidence, _, S::Appealed) => Expect::accept(
                id,
                None,
                Some(Needed::Evidence(user)),
                "§11 a party adds evidence".into(),
            ),
            // Evidence without an open appeal: the appeal does not exist, so
            // NOT_FOUND is as defensible as FAILED_PRECONDITION.
            (A::Evidence, _, _) => {
                let why = format!("§11: evidence only while APPEALED, trade is {state}");
                Expect::refuse(id, self.state_kinds(&[NOT_FOUND]), why)
            }
            (A::Chat, _, S::AwaitingPayment | S::Paid | S::Appealed) => Expect::accept(
                id,
                None,
                Some(Needed::Chat(user)),
                "§11a a party chats on an open trade".into(),
            ),
            (action, party, _) => {
                let why = format!(
                    "§10: the {party:?} cannot {action:?} a {state} trade: FAILED_PRECONDITION"
                );
                Expect::refuse(id, self.state_kinds(&[]), why)
            }
        }
    }

    /// ClaimAppeal (`claim`) or UnclaimAppeal by `agent` (SPEC §11).
    fn claim(&self, id: TradeId, agent: UserId, claim: bool) -> Expect {
        let t = match self.known(id) {
            Ok(t) => t,
            Err(refusal) => return *refusal,
        };
        if t.state != TradeStateKind::Appealed {
            let why = format!("§11: no open appeal, trade is {}", t.state.name());
            return Expect::refuse(id, self.state_kinds(&[NOT_FOUND]), why);
        }
        match (claim, t.holder) {
            // A party may not resolve its own appeal (§11: CS decides), so
            // it may not hold it either: that would lock every agent out.
            // (The engine let it, until the simulator's model found it.)
            (true, _) if t.party(agent).is_some() => Expect::refuse(
                id,
                vec![DENIED],
                "§11: a party cannot claim its own appeal: PERMISSION_DENIED".into(),
            ),
            (true, None) => Expect::accept(
                id,
                None,
                Some(Needed::Claimed(agent)),
                "§11 an agent claims".into(),
            ),
            // Learned (SPEC silent): claiming again is a no-op; either is fine.
            (true, Some(holder)) if holder == agent => Expect::either(
                Some(id),
                None,
                Vec::new(),
                "§11 silent: claiming an appeal one holds".into(),
            ),
            (true, Some(holder)) => {
                let why = format!("§11: the appeal is held by {holder:?}");
                Expect::refuse(id, Vec::new(), why)
            }
            (false, Some(holder)) if holder == agent => Expect::accept(
                id,
                None,
                Some(Needed::Unclaimed(agent)),
                "§11 the holder hands back".into(),
            ),
            (false, holder) => {
                let why = format!("§11: only the holder hands an appeal back (holder {holder:?})");
                Expect::refuse(id, Vec::new(), why)
            }
        }
    }

    /// ResolveAppeal by `agent` (SPEC §10, §11).
    fn resolve(&self, id: TradeId, agent: UserId, resolution: Resolution) -> Expect {
        let t = match self.known(id) {
            Ok(t) => t,
            Err(refusal) => return *refusal,
        };
        // Learned (SPEC silent): a party may not decide its own appeal.
        if t.party(agent).is_some() {
            return Expect::refuse(
                id,
                Vec::new(),
                "a party cannot resolve its own trade's appeal".into(),
            );
        }
        if t.state != TradeStateKind::Appealed {
            let why = format!(
                "§10: only an APPEALED trade is resolved, trade is {}",
                t.state.name()
            );
            return Expect::refuse(id, self.state_kinds(&[]), why);
        }
        // Learned (SPEC silent): resolving needs no claim, but an appeal
        // another agent holds is theirs to decide.
        if let Some(holder) = t.holder.filter(|h| *h != agent) {
            return Expect::refuse(
                id,
                Vec::new(),
                format!("§11: the appeal is held by {holder:?}"),
            );
        }
        let (to, reason) = match resolution {
            Resolution::Release => (TradeStateKind::Released, TransitionReason::ResolvedRelease),
            Resolution::Refund => (TradeStateKind::Cancelled, TransitionReason::ResolvedRefund),
        };
        let change = Change {
            to,
            actor: Actor::Support(agent),
            reason,
        };
        Expect::accept(
            id,
            Some(change),
            None,
            format!("§10 CS resolves ({resolution:?})"),
        )
    }
}
