//! Commands: everything that can change the engine's state.
//!
//! Amounts arrive as `Decimal` (already parsed from the wire's decimal strings)
//! and are validated by the engine against the asset's configured scale and
//! maximum, so one place decides what a valid amount is.
//!
//! Role checks (is the caller CS? admin? a merchant?) happen in the API shell
//! from the token; the engine checks *ownership*: that the acting user is the
//! seller, buyer or owner of what it names.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{AnomalyId, BuyOrderId, ListingId, MethodId, MistakeId, TradeId, UserId};
use crate::money::{Asset, Fiat};
use crate::ops_ended::Target;
use crate::payment::{ChannelProvider, EndedTrade, GatewayPayment};
use crate::recon::Report;
use crate::users::{MethodDetails, MethodKind};

/// What the shell found when it checked the fund password typed with a
/// protected command (SPEC §6).
///
/// Hashing (argon2id) is slow on purpose, so it never runs on the single
/// writer. The shell reads the user's hash and its `version`, verifies the
/// password off the writer, and sends the verdict. Every rule about it lives
/// in the engine: a password must be set, a locked user is refused, a
/// verdict against an old hash is stale, and a wrong password counts toward
/// the lockout. The command is then *applied* as a recorded failure (its
/// events carry `FundPasswordFailed`), so a retry with the same request id
/// answers the same and does not count twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundPasswordProof {
    /// The version of the hash the password was checked against (0 when
    /// the user had none).
    pub version: u32,
    /// What the check found.
    pub verdict: Verdict,
}

/// What the shell's check of a typed fund password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// It matched the hash.
    Matched,
    /// It did not.
    Wrong,
    /// Not checked: the engine said the user was locked, so no argon2 was
    /// spent. The engine refuses it (locked, or "try again" if the lock
    /// ended meanwhile) and never counts it.
    Unchecked,
}

impl FundPasswordProof {
    /// The password matched the hash of `version`.
    pub fn matched(version: u32) -> Self {
        Self {
            version,
            verdict: Verdict::Matched,
        }
    }

    /// The password did not match the hash of `version`.
    pub fn wrong(version: u32) -> Self {
        Self {
            version,
            verdict: Verdict::Wrong,
        }
    }

    /// The password was not checked because the user was locked.
    pub fn unchecked(version: u32) -> Self {
        Self {
            version,
            verdict: Verdict::Unchecked,
        }
    }
}

/// What a listing offers (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingSpec {
    /// The coin sold.
    pub asset: Asset,
    /// The fiat paid.
    pub fiat: Fiat,
    /// Fixed fiat per coin, or a premium over the reference (SPEC §22).
    pub price: PriceSpec,
    /// Coin escrowed for this listing.
    pub total: Decimal,
    /// Smallest trade, in fiat.
    pub min_fiat: Decimal,
    /// Largest trade, in fiat.
    pub max_fiat: Decimal,
    /// Seller's bound methods the buyer may pay to.
    pub methods: Vec<MethodId>,
    /// Payment window; `None` for the configured default.
    pub payment_window_ms: Option<i64>,
    /// Free text shown to buyers.
    pub terms: String,
    /// Release as soon as a payment channel proves payment (SPEC §19);
    /// needs a channel among `methods`.
    pub release_on_verified: bool,
}

/// A listing's price as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PriceSpec {
    /// Fiat per coin.
    Fixed(Decimal),
    /// The reference × (1 + premium), clamped to floor and ceiling.
    Floating {
        /// Basis points over (or, negative, under) the reference.
        premium_bps: i32,
        /// Never below.
        floor: Option<Decimal>,
        /// Never above.
        ceiling: Option<Decimal>,
    },
}

/// How much a buyer wants: in coin, or in fiat to spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuyAmount {
    /// This much coin.
    Coin(Decimal),
    /// Coin worth this much fiat, rounded down to the coin scale.
    Fiat(Decimal),
}

/// A buy order (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyRequest {
    /// The coin wanted.
    pub asset: Asset,
    /// The fiat the buyer pays in.
    pub fiat: Fiat,
    /// How much.
    pub amount: BuyAmount,
    /// Highest acceptable price, if any.
    pub max_price: Option<Decimal>,
    /// Accepted payment kinds; empty means any.
    pub methods: Vec<MethodKind>,
    /// Rest in the book when nothing fills it now; `Some(None)` rests for the
    /// default time, `Some(Some(ms))` for `ms`.
    pub rest: Option<Option<i64>>,
}

/// One price a merchant bids for a coin (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantQuote {
    /// The coin bought.
    pub asset: Asset,
    /// The fiat paid.
    pub fiat: Fiat,
    /// Fiat per coin the merchant pays.
    pub bid: Decimal,
    /// Smallest trade, in fiat.
    pub min_fiat: Decimal,
    /// Largest trade, in fiat.
    pub max_fiat: Decimal,
}

/// A merchant's declared capacity (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityRequest {
    /// Prices per coin.
    pub quotes: Vec<MerchantQuote>,
    /// Payment kinds the merchant can pay with.
    pub methods: Vec<MethodKind>,
    /// Most fiat the merchant may owe across open trades.
    pub max_outstanding_fiat: Decimal,
}

/// A fast sell to a partner merchant (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastSellRequest {
    /// The coin sold.
    pub asset: Asset,
    /// The fiat wanted.
    pub fiat: Fiat,
    /// Coin to sell.
    pub amount: Decimal,
    /// The seller's bound method the merchant pays to.
    pub method: MethodId,
    /// Release as soon as the channel proves payment (SPEC §19); needs
    /// `method` to be a channel.
    pub release_on_verified: bool,
}

/// A stored file attached to evidence; the bytes live in storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Storage's key for the bytes.
    pub blob_id: String,
    /// Declared type (image/png, image/jpeg, application/pdf).
    pub content_type: String,
    /// Size of the bytes.
    pub size_bytes: u64,
    /// File name as uploaded.
    pub file_name: String,
}

/// Who decides an appeal, and how (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// Release the escrow to the buyer.
    Release,
    /// Refund the escrow to the seller.
    Refund,
}

/// Every state-changing request. One `match` in `Engine::apply` dispatches it.
///
/// Field names say what they hold: `user`/`seller`/`buyer`/`merchant`/`agent`
/// is the acting user from the token; ids name what is acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Command {
    /// Back office credits coin (idempotent on `external_ref`).
    Deposit {
        user: UserId,
        asset: Asset,
        amount: Decimal,
        external_ref: String,
    },
    /// Back office debits available coin (idempotent on `external_ref`).
    Withdraw {
        user: UserId,
        asset: Asset,
        amount: Decimal,
        external_ref: String,
    },
    /// Admin makes a user a partner merchant.
    RegisterMerchant { user: UserId },
    /// Bind a receiving method (SPEC §5).
    BindMethod {
        user: UserId,
        details: MethodDetails,
    },
    /// Remove a method no open trade or live listing uses.
    RemoveMethod { user: UserId, method: MethodId },
    /// Set (or, with proof of the current one, change) the fund password hash.
    SetFundPassword {
        user: UserId,
        hash: String,
        current: Option<FundPasswordProof>,
    },
    /// Never match with `target` again.
    Block { user: UserId, target: UserId },
    /// Lift a block.
    Unblock { user: UserId, target: UserId },
    /// Publish a listing, escrowing its total.
    PublishListing {
        seller: UserId,
        proof: FundPasswordProof,
        spec: ListingSpec,
    },
    /// Take a listing out of matching.
    PauseListing { seller: UserId, listing: ListingId },
    /// Put a paused listing back.
    ResumeListing { seller: UserId, listing: ListingId },
    /// End a listing; its unmatched remainder returns to `available`.
    CancelListing { seller: UserId, listing: ListingId },
    /// Buy now, or rest in the book.
    PlaceBuy { buyer: UserId, request: BuyRequest },
    /// Withdraw a resting buy.
    CancelBuyOrder { buyer: UserId, order: BuyOrderId },
    /// A merchant declares its capacity.
    SetMerchantCapacity {
        merchant: UserId,
        capacity: CapacityRequest,
    },
    /// A merchant goes on- or offline.
    SetMerchantOnline { merchant: UserId, online: bool },
    /// Sell at once to the best fitting merchant.
    FastSell {
        seller: UserId,
        proof: FundPasswordProof,
        request: FastSellRequest,
    },
    /// Buyer says the fiat is sent.
    MarkPaid { buyer: UserId, trade: TradeId },
    /// Buyer cancels (before paying, or withdrawing an appeal).
    CancelTrade { buyer: UserId, trade: TradeId },
    /// Seller confirms the fiat arrived and releases the coin.
    Release {
        seller: UserId,
        trade: TradeId,
        proof: FundPasswordProof,
    },
    /// Seller or buyer disputes a paid trade.
    OpenAppeal {
        user: UserId,
        trade: TradeId,
        reason: String,
    },
    /// A party adds evidence to an open appeal.
    AddEvidence {
        user: UserId,
        trade: TradeId,
        description: String,
        attachment: Option<AttachmentRef>,
    },
    /// A party posts to the trade's chat (SPEC §11a) while it is open.
    PostChat {
        user: UserId,
        trade: TradeId,
        text: String,
        attachment: Option<AttachmentRef>,
    },
    /// A CS agent takes an appeal.
    ClaimAppeal { agent: UserId, trade: TradeId },
    /// A CS agent hands an appeal back.
    UnclaimAppeal { agent: UserId, trade: TradeId },
    /// A CS agent decides an appeal.
    ResolveAppeal {
        agent: UserId,
        trade: TradeId,
        resolution: Resolution,
        note: String,
    },
    /// Admin assigns a payment channel to a seller or merchant (SPEC §19).
    AssignChannel {
        user: UserId,
        channel: String,
        provider: ChannelProvider,
    },
    /// A payment a channel's gateway proved (the shell verified it).
    GatewayPayment(GatewayPayment),
    /// Admin or the price feed sets a market's reference price (SPEC §22).
    SetReferencePrice {
        asset: Asset,
        fiat: Fiat,
        price: Decimal,
        source: String,
    },
    /// The outcome of matching a gateway's bill (SPEC §20).
    RecordBill {
        channel: String,
        day: String,
        digest: String,
        report: Report,
    },
    /// CS closes a reconciliation mistake with a note.
    CloseMistake {
        agent: UserId,
        mistake: MistakeId,
        note: String,
    },
    /// CS applies a payment missing here from the bill (SPEC §19's effects).
    ApplyMissedPayment {
        agent: UserId,
        mistake: MistakeId,
        /// Why, in the agent's words; optional (the mistake records it).
        note: String,
        history_checked: bool,
        ended: Option<EndedTrade>,
    },
    /// A CS agent closes a payment anomaly with a note.
    ResolveAnomaly {
        agent: UserId,
        anomaly: AnomalyId,
        note: String,
    },
    /// Fire every deadline due at `now`.
    FireDue,
}

impl Command {
    /// The user and fund-password verdict of a protected command (SPEC §6).
    pub fn password_proof(&self) -> Option<(UserId, FundPasswordProof)> {
        match self {
            Command::PublishListing { seller, proof, .. }
            | Command::FastSell { seller, proof, .. }
            | Command::Release { seller, proof, .. } => Some((*seller, *proof)),
            Command::SetFundPassword {
                user,
                current: Some(proof),
                ..
            } => Some((*user, *proof)),
            _ => None,
        }
    }

    /// The trade, listing or buy order the command acts on by its id: the
    /// record the shell looks up in history when the engine answered
    /// NOT_FOUND (see [`Engine::refusal_on_ended`](crate::Engine::refusal_on_ended)).
    pub fn target(&self) -> Option<Target> {
        use Command as C;
        match self {
            C::MarkPaid { trade, .. }
            | C::CancelTrade { trade, .. }
            | C::Release { trade, .. }
            | C::OpenAppeal { trade, .. }
            | C::AddEvidence { trade, .. }
            | C::PostChat { trade, .. }
            | C::ClaimAppeal { trade, .. }
            | C::UnclaimAppeal { trade, .. }
            | C::ResolveAppeal { trade, .. } => Some(Target::Trade(*trade)),
            C::PauseListing { listing, .. }
            | C::ResumeListing { listing, .. }
            | C::CancelListing { listing, .. } => Some(Target::Listing(*listing)),
            C::CancelBuyOrder { order, .. } => Some(Target::BuyOrder(*order)),
            _ => None,
        }
    }

    /// The user acting (or acted for, for back-office commands); `None` for timers.
    /// Storage scopes request ids by it, so users cannot collide.
    pub fn actor(&self) -> Option<UserId> {
        use Command as C;
        match self {
            C::Deposit { user, .. }
            | C::Withdraw { user, .. }
            | C::RegisterMerchant { user }
            | C::BindMethod { user, .. }
            | C::RemoveMethod { user, .. }
            | C::SetFundPassword { user, .. }
            | C::Block { user, .. }
            | C::Unblock { user, .. }
            | C::OpenAppeal { user, .. }
            | C::AddEvidence { user, .. }
            | C::PostChat { user, .. } => Some(*user),
            C::PublishListing { seller, .. }
            | C::PauseListing { seller, .. }
            | C::ResumeListing { seller, .. }
            | C::CancelListing { seller, .. }
            | C::FastSell { seller, .. }
            | C::Release { seller, .. } => Some(*seller),
            C::PlaceBuy { buyer, .. }
            | C::CancelBuyOrder { buyer, .. }
            | C::MarkPaid { buyer, .. }
            | C::CancelTrade { buyer, .. } => Some(*buyer),
            C::SetMerchantCapacity { merchant, .. } | C::SetMerchantOnline { merchant, .. } => {
                Some(*merchant)
            }
            C::ClaimAppeal { agent, .. }
            | C::UnclaimAppeal { agent, .. }
            | C::ResolveAppeal { agent, .. }
            | C::ResolveAnomaly { agent, .. } => Some(*agent),
            C::AssignChannel { user, .. } => Some(*user),
            C::CloseMistake { agent, .. } | C::ApplyMissedPayment { agent, .. } => Some(*agent),
            C::GatewayPayment(_)
            | C::SetReferencePrice { .. }
            | C::RecordBill { .. }
            | C::FireDue => None,
        }
    }

    /// A short name for logs, metrics and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Deposit { .. } => "deposit",
            Command::Withdraw { .. } => "withdraw",
            Command::RegisterMerchant { .. } => "register merchant",
            Command::BindMethod { .. } => "bind method",
            Command::RemoveMethod { .. } => "remove method",
            Command::SetFundPassword { .. } => "set fund password",
            Command::Block { .. } => "block",
            Command::Unblock { .. } => "unblock",
            Command::PublishListing { .. } => "publish listing",
            Command::PauseListing { .. } => "pause listing",
            Command::ResumeListing { .. } => "resume listing",
            Command::CancelListing { .. } => "cancel listing",
            Command::PlaceBuy { .. } => "buy",
            Command::CancelBuyOrder { .. } => "cancel buy order",
            Command::SetMerchantCapacity { .. } => "set merchant capacity",
            Command::SetMerchantOnline { .. } => "set merchant online",
            Command::FastSell { .. } => "fast sell",
            Command::MarkPaid { .. } => "mark paid",
            Command::CancelTrade { .. } => "cancel trade",
            Command::Release { .. } => "release",
            Command::OpenAppeal { .. } => "open appeal",
            Command::AddEvidence { .. } => "add evidence",
            Command::PostChat { .. } => "post chat",
            Command::ClaimAppeal { .. } => "claim appeal",
            Command::UnclaimAppeal { .. } => "unclaim appeal",
            Command::ResolveAppeal { .. } => "resolve appeal",
            Command::AssignChannel { .. } => "assign channel",
            Command::GatewayPayment(_) => "gateway payment",
            Command::SetReferencePrice { .. } => "set reference price",
            Command::RecordBill { .. } => "record bill",
            Command::CloseMistake { .. } => "close mistake",
            Command::ApplyMissedPayment { .. } => "apply missed payment",
            Command::ResolveAnomaly { .. } => "resolve anomaly",
            Command::FireDue => "fire due deadlines",
        }
    }
}
