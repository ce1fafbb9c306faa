//! Events: what an applied command changed, numbered gap-free (SPEC §13).
//!
//! Each event names the users it concerns ([`Event::audience`]) so the API can
//! stream a user their own events, and whether CS's appeal queue cares.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::buy::BuyOrderState;
use crate::command::{AttachmentRef, Resolution};
use crate::ids::{
    AnomalyId, BuyOrderId, EvidenceId, ListingId, MethodId, MistakeId, Timestamp, TradeId, UserId,
};
use crate::listing::ListingState;
use crate::money::{Asset, CoinAmount, Fiat, FiatAmount, Price};
use crate::payment::{AnomalyKind, ChannelProvider};
use crate::recon::MistakeKind;
use crate::trade::{Actor, TradeStateKind, TransitionReason};
use crate::users::MethodKind;

/// One change, with its global sequence number and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global, gap-free, starting at 1.
    pub seq: u64,
    /// The engine time of the command that caused it.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

/// How an appeal ended without CS deciding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettledBy {
    /// The seller released the coin.
    SellerReleased,
    /// The buyer cancelled, admitting no payment.
    BuyerCancelled,
}

/// What happened. Amounts are the values after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Field names say what they hold; variants are documented.
pub enum EventKind {
    /// A balance changed; the new values.
    BalanceChanged {
        user: UserId,
        asset: Asset,
        available: Decimal,
        escrowed: Decimal,
    },
    /// Coin was deposited by the back office.
    Deposited {
        user: UserId,
        asset: Asset,
        amount: CoinAmount,
        external_ref: String,
    },
    /// Coin was withdrawn by the back office.
    Withdrawn {
        user: UserId,
        asset: Asset,
        amount: CoinAmount,
        external_ref: String,
    },
    /// A user became a partner merchant.
    MerchantRegistered { merchant: UserId },
    /// A merchant declared capacity.
    MerchantCapacitySet { merchant: UserId },
    /// A merchant went on- or offline.
    MerchantOnlineSet { merchant: UserId, online: bool },
    /// A receiving method was bound.
    MethodBound {
        user: UserId,
        method: MethodId,
        kind: MethodKind,
    },
    /// A receiving method was removed.
    MethodRemoved { user: UserId, method: MethodId },
    /// The fund password was set or changed.
    FundPasswordSet { user: UserId },
    /// A wrong fund password was recorded.
    FundPasswordFailed {
        user: UserId,
        failures_in_row: u32,
        locked_until: Option<Timestamp>,
    },
    /// A user blocked another.
    Blocked { user: UserId, target: UserId },
    /// A user lifted a block.
    Unblocked { user: UserId, target: UserId },
    /// A listing was published or changed state or remainder.
    ListingChanged {
        listing: ListingId,
        seller: UserId,
        state: ListingState,
        remaining: CoinAmount,
    },
    /// A buy order rested, filled, expired or was cancelled.
    BuyOrderChanged {
        order: BuyOrderId,
        buyer: UserId,
        state: BuyOrderState,
        remaining: Decimal,
    },
    /// A trade was matched.
    TradeCreated {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        listing: Option<ListingId>,
        coin: CoinAmount,
        fiat: FiatAmount,
        price: Price,
        pay_by: Timestamp,
    },
    /// A trade moved between states.
    TradeTransitioned {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        from: TradeStateKind,
        to: TradeStateKind,
        actor: Actor,
        reason: TransitionReason,
    },
    /// A paid trade may now be appealed.
    AppealAvailable {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
    },
    /// An appeal was opened.
    AppealOpened {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        by: Actor,
    },
    /// Evidence was added to an appeal.
    EvidenceAdded {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        evidence: EvidenceId,
        by: UserId,
    },
    /// A party posted to the trade chat; the event's `seq` is the message id.
    ChatPosted {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        author: UserId,
        text: String,
        attachment: Option<AttachmentRef>,
    },
    /// An agent claimed an appeal.
    AppealClaimed { trade: TradeId, agent: UserId },
    /// An agent handed an appeal back.
    AppealUnclaimed { trade: TradeId, agent: UserId },
    /// An agent resolved an appeal.
    AppealResolved {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        agent: UserId,
        resolution: Resolution,
    },
    /// An admin assigned a payment channel to a user.
    ChannelAssigned {
        user: UserId,
        channel: String,
        provider: ChannelProvider,
    },
    /// A payment channel proved a trade's payment (SPEC §19).
    PaymentVerified {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        channel: String,
        txn_id: String,
        amount: Decimal,
        /// The gateway's notification, or reconciliation applying the
        /// payment from the bill.
        actor: Actor,
    },
    /// A verified payment that could not simply pay its trade.
    PaymentAnomaly {
        anomaly: AnomalyId,
        kind: AnomalyKind,
        trade: Option<TradeId>,
        channel: String,
        /// As for [`EventKind::PaymentVerified`].
        actor: Actor,
    },
    /// A market's reference price was set (SPEC §22).
    ReferencePriceSet {
        asset: Asset,
        fiat: Fiat,
        price: Price,
        source: String,
    },
    /// Reconciliation recorded a mistake: a bill's import, or a notification
    /// that disagrees with a bill imported before it.
    ReconMistake {
        mistake: MistakeId,
        kind: MistakeKind,
        channel: String,
    },
    /// A gateway's bill was imported.
    BillImported {
        channel: String,
        day: String,
        mistakes: u64,
    },
    /// CS handled a reconciliation mistake (`agent`), or later facts
    /// settled it (`None`): a late notification, or a later bill of the day.
    MistakeHandled {
        mistake: MistakeId,
        agent: Option<UserId>,
    },
    /// CS closed a payment anomaly.
    AnomalyResolved { anomaly: AnomalyId, agent: UserId },
    /// The parties settled an appeal themselves.
    AppealSettled {
        trade: TradeId,
        seller: UserId,
        buyer: UserId,
        how: SettledBy,
    },
}

/// Who an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    /// Users whose own stream carries it (up to two).
    pub users: [Option<UserId>; 2],
    /// Whether the CS appeal queue stream carries it.
    pub support: bool,
}

impl Event {
    /// The users (and whether CS) that should see this event.
    pub fn audience(&self) -> Audience {
        use EventKind::*;
        let one = |u: UserId| Audience {
            users: [Some(u), None],
            support: false,
        };
        let two = |a: UserId, b: UserId, support: bool| Audience {
            users: [Some(a), Some(b)],
            support,
        };
        match &self.kind {
            BalanceChanged { user, .. }
            | Deposited { user, .. }
            | Withdrawn { user, .. }
            | MethodBound { user, .. }
            | MethodRemoved { user, .. }
            | FundPasswordSet { user }
            | FundPasswordFailed { user, .. }
            | Blocked { user, .. }
            | Unblocked { user, .. }
            | ChannelAssigned { user, .. } => one(*user),
            PaymentVerified { seller, buyer, .. } => two(*seller, *buyer, false),
            MerchantRegistered { merchant }
            | MerchantCapacitySet { merchant }
            | MerchantOnlineSet { merchant, .. } => one(*merchant),
            ListingChanged { seller, .. } => one(*seller),
            BuyOrderChanged { buyer, .. } => one(*buyer),
            TradeCreated { seller, buyer, .. }
            | AppealAvailable { seller, buyer, .. }
            | ChatPosted { seller, buyer, .. } => two(*seller, *buyer, false),
            TradeTransitioned {
                seller,
                buyer,
                from,
                to,
                ..
            } => {
                let support = *from == TradeStateKind::Appealed || *to == TradeStateKind::Appealed;
                two(*seller, *buyer, support)
            }
            AppealOpened { seller, buyer, .. }
            | EvidenceAdded { seller, buyer, .. }
            | AppealResolved { seller, buyer, .. }
            | AppealSettled { seller, buyer, .. } => two(*seller, *buyer, true),
            AppealClaimed { .. }
            | AppealUnclaimed { .. }
            | PaymentAnomaly { .. }
            | AnomalyResolved { .. }
            | ReconMistake { .. }
            | BillImported { .. }
            | MistakeHandled { .. }
            | ReferencePriceSet { .. } => Audience {
                users: [None, None],
                support: true,
            },
        }
    }
}
