//! Actions on a record the engine has forgotten. An ended trade, listing or
//! buy order leaves the working set `ended_retention_ms` after it ended; its
//! history stays in storage, and reads still show it. An action on it is
//! refused as it was while the engine held it: naming its state to its owner
//! or party (FAILED_PRECONDITION, SPEC §10), NOT_FOUND to anyone else. The
//! engine reads no storage, so when it answered NOT_FOUND the shell looks the
//! record up and hands it in here as a fact.

use crate::buy::BuyOrder;
use crate::command::Command;
use crate::engine::Engine;
use crate::ids::{Timestamp, UserId};
use crate::listing::Listing;
use crate::ops_appeal::{ADD_EVIDENCE, CHAT_ON, CLAIM, RESOLVE, UNCLAIM};
use crate::ops_gateway::PAYMENT_ORDER;
use crate::rejection::Rejection;
use crate::trade::{Party, Trade, TradeAction};

/// What a command acts on, by id: the record the shell looks up in history
/// when the engine no longer holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A trade (SPEC §10, §11, §11a).
    Trade(crate::TradeId),
    /// A listing (SPEC §7).
    Listing(crate::ListingId),
    /// A resting buy (SPEC §8).
    BuyOrder(crate::BuyOrderId),
}

/// History's record of what a command acts on.
#[derive(Debug, Clone, Copy)]
pub enum EndedRecord<'a> {
    /// An ended trade.
    Trade(&'a Trade),
    /// An ended listing.
    Listing(&'a Listing),
    /// An ended buy order.
    BuyOrder(&'a BuyOrder),
}

impl EndedRecord<'_> {
    /// The record's id, as a command names it.
    pub fn target(&self) -> Target {
        match self {
            EndedRecord::Trade(t) => Target::Trade(t.id),
            EndedRecord::Listing(l) => Target::Listing(l.id),
            EndedRecord::BuyOrder(o) => Target::BuyOrder(o.id),
        }
    }
}

impl Engine {
    /// Why `cmd` is refused when what it acts on has left the working set
    /// and history holds it as `ended`: the refusal it got while the engine
    /// still held the ended record, checked in the same order. `None` when
    /// `cmd` acts on another record, on none, or on one still held.
    pub fn refusal_on_ended(
        &self,
        cmd: &Command,
        ended: EndedRecord<'_>,
        now: Timestamp,
    ) -> Option<Rejection> {
        if cmd.target() != Some(ended.target()) || self.holds(ended.target()) {
            return None;
        }
        match ended {
            EndedRecord::Trade(t) => self.trade_refusal(cmd, t, now),
            EndedRecord::Listing(l) => listing_refusal(cmd, l),
            EndedRecord::BuyOrder(o) => order_refusal(cmd, o),
        }
    }

    /// Why the buyer's payment order for a forgotten trade is refused, as
    /// [`Engine::payment_order`] refused it while the engine held the trade.
    pub fn payment_order_ended(&self, buyer: UserId, ended: &Trade) -> Rejection {
        match ended.party_of(buyer) {
            None => Rejection::TradeNotFound(ended.id),
            Some(Party::Buyer) => ended.wrong_state(PAYMENT_ORDER),
            Some(_) => Rejection::NotAllowed("only the buyer pays a trade"),
        }
    }

    /// Whether the engine still holds what `target` names (then a NOT_FOUND
    /// for it is about the caller, and history has nothing to add).
    pub fn holds(&self, target: Target) -> bool {
        match target {
            Target::Trade(id) => self.trade(id).is_some(),
            Target::Listing(id) => self.state.listings.get(&id).is_some(),
            Target::BuyOrder(id) => self.state.buy_orders.contains_key(&id),
        }
    }

    fn trade_refusal(&self, cmd: &Command, ended: &Trade, now: Timestamp) -> Option<Rejection> {
        use Command as C;
        use TradeAction as A;
        let not_found = || Rejection::TradeNotFound(ended.id);
        // A party's transition: refused by the state machine, as when held.
        let step = |user: UserId, action: TradeAction| match ended.party_of(user) {
            None => not_found(),
            Some(party) => match ended.step(action, party, now, &self.config) {
                Err(r) => r,
                Ok(_) => ended.wrong_state(action.name()),
            },
        };
        // A party's action that needs the trade or its appeal open.
        let party_needs_open = |user: UserId, action| match ended.party_of(user) {
            None => not_found(),
            Some(_) => ended.wrong_state(action),
        };
        let refusal = match cmd {
            C::MarkPaid { buyer, .. } => step(*buyer, A::MarkPaid),
            C::CancelTrade { buyer, .. } => step(*buyer, A::Cancel),
            C::Release { seller, .. } => step(*seller, A::Release),
            C::OpenAppeal { user, reason, .. } => self
                .text_arg("reason", reason, true)
                .err()
                .unwrap_or_else(|| step(*user, A::OpenAppeal)),
            C::AddEvidence { user, .. } => party_needs_open(*user, ADD_EVIDENCE),
            C::PostChat { user, .. } => party_needs_open(*user, CHAT_ON),
            C::ClaimAppeal { .. } => ended.wrong_state(CLAIM),
            C::UnclaimAppeal { .. } => ended.wrong_state(UNCLAIM),
            C::ResolveAppeal { note, .. } => self
                .text_arg("note", note, true)
                .err()
                .unwrap_or_else(|| ended.wrong_state(RESOLVE)),
            _ => return None,
        };
        Some(refusal)
    }
}

/// A forgotten listing is cancelled or closed. Pausing or resuming needs it
/// live, as when held. Cancelling a cancelled one is refused as when held;
/// a closed one, which the engine held could still mark cancelled (nothing
/// moving), has nothing left to cancel once forgotten: refused naming
/// CLOSED.
fn listing_refusal(cmd: &Command, ended: &Listing) -> Option<Rejection> {
    use Command as C;
    let (seller, action) = match cmd {
        C::PauseListing { seller, .. } => (seller, "pause"),
        C::ResumeListing { seller, .. } => (seller, "resume"),
        C::CancelListing { seller, .. } => (seller, "cancel"),
        _ => return None,
    };
    Some(if *seller == ended.seller {
        Engine::listing_wrong_state(ended, action)
    } else {
        Rejection::ListingNotFound(ended.id)
    })
}

/// A forgotten buy order is filled, expired or cancelled.
fn order_refusal(cmd: &Command, ended: &BuyOrder) -> Option<Rejection> {
    let Command::CancelBuyOrder { buyer, .. } = cmd else {
        return None;
    };
    Some(if *buyer == ended.buyer {
        Engine::order_wrong_state(ended, "cancel")
    } else {
        Rejection::BuyOrderNotFound(ended.id)
    })
}
