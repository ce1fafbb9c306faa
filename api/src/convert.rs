//! Conversions between protobuf and domain types, and errors to statuses.
//! A bad field becomes INVALID_ARGUMENT naming the field (SPEC §15).

use otc_engine::appeal::{Appeal, AppealOutcome, AppealStatus};
use otc_engine::command::Resolution;
use otc_engine::event::SettledBy;
use otc_engine::listing::{Listing, ListingState};
use otc_engine::money::parse_decimal;
use otc_engine::record::SellerRecord;
use otc_engine::trade::{Actor, TimelineWhat, Trade, TradeState, TradeStateKind, TransitionReason};
use otc_engine::users::{MethodDetails, MethodKind};
use otc_engine::{
    Asset, BuyOrderId, Event, EventKind, Fiat, ListingId, MethodId, Rejection, RejectionKind,
    Timestamp, TradeId, UserId,
};
use rust_decimal::Decimal;
use tonic::Status;

use crate::proto as pb;

/// Longest request id.
pub const REQUEST_ID_CHARS_MAX: usize = 128;
/// Page size when a request names none (the largest is a setting, SPEC §18).
pub const PAGE_SIZE_DEFAULT: usize = 50;

/// The status for a rejection (SPEC §15).
pub fn status_of(r: &Rejection) -> Status {
    let msg = r.to_string();
    match r.kind() {
        RejectionKind::InvalidArgument => Status::invalid_argument(msg),
        RejectionKind::FailedPrecondition => Status::failed_precondition(msg),
        RejectionKind::NotFound => Status::not_found(msg),
        RejectionKind::PermissionDenied => Status::permission_denied(msg),
        RejectionKind::ResourceExhausted => Status::resource_exhausted(msg),
        RejectionKind::AlreadyExists => Status::already_exists(msg),
    }
}

/// Checks a request id.
///
/// # Errors
/// INVALID_ARGUMENT when missing or too long.
pub fn request_id(id: &str) -> Result<String, Status> {
    let n = id.chars().count();
    if n == 0 || n > REQUEST_ID_CHARS_MAX {
        return Err(Status::invalid_argument(format!(
            "request_id is required (1 to {REQUEST_ID_CHARS_MAX} characters) on every mutating call"
        )));
    }
    Ok(id.to_owned())
}

/// A required decimal field.
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn dec(field: &str, text: &str) -> Result<Decimal, Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    parse_decimal(text).map_err(|e| Status::invalid_argument(format!("{field} {e}")))
}

/// An optional decimal field (empty means absent).
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn opt_dec(field: &str, text: &str) -> Result<Option<Decimal>, Status> {
    if text.is_empty() {
        Ok(None)
    } else {
        dec(field, text).map(Some)
    }
}

/// An asset code field.
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn asset(field: &str, text: &str) -> Result<Asset, Status> {
    Asset::new(text).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// A fiat code field.
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn fiat(field: &str, text: &str) -> Result<Fiat, Status> {
    Fiat::new(text).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

fn id_number(field: &str, prefix: &str, text: &str) -> Result<u64, Status> {
    let digits = text
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix('-'))
        .unwrap_or(text);
    digits.parse::<u64>().map_err(|_| {
        Status::invalid_argument(format!(
            "{field} must look like \"{prefix}-123\", got {text:?}"
        ))
    })
}

/// A trade id field ("T-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn trade_id(text: &str) -> Result<TradeId, Status> {
    id_number("trade_id", "T", text).map(TradeId)
}

/// A listing id field ("L-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn listing_id(text: &str) -> Result<ListingId, Status> {
    id_number("listing_id", "L", text).map(ListingId)
}

/// A method id field ("M-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn method_id(text: &str) -> Result<MethodId, Status> {
    method_id_field("method_id", text)
}

/// A method id in the field `field` ("M-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn method_id_field(field: &str, text: &str) -> Result<MethodId, Status> {
    id_number(field, "M", text).map(MethodId)
}

/// A buy order id field ("B-12").
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn buy_order_id(text: &str) -> Result<BuyOrderId, Status> {
    id_number("buy_order_id", "B", text).map(BuyOrderId)
}

/// A user id field (UUID).
///
/// # Errors
/// INVALID_ARGUMENT naming the field.
pub fn user_id(field: &str, text: &str) -> Result<UserId, Status> {
    uuid::Uuid::parse_str(text)
        .map(UserId)
        .map_err(|_| Status::invalid_argument(format!("{field} must be a user UUID")))
}

/// Page size from a request (0 → default; at most `max`).
///
/// # Errors
/// INVALID_ARGUMENT above the maximum.
pub fn page_size(n: u32, max: u32) -> Result<usize, Status> {
    match n {
        0 => Ok(PAGE_SIZE_DEFAULT.min(max as usize)),
        n if n > max => Err(Status::invalid_argument(format!(
            "page_size must be at most {max}"
        ))),
        n => Ok(n as usize),
    }
}

/// A protobuf timestamp.
pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        nanos: i32::try_from(t.0.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// A payment kind from the wire.
///
/// # Errors
/// INVALID_ARGUMENT for UNSPECIFIED or unknown values.
pub fn method_kind(field: &str, v: i32) -> Result<MethodKind, Status> {
    match pb::PaymentKind::try_from(v) {
        Ok(pb::PaymentKind::Bank) => Ok(MethodKind::Bank),
        Ok(pb::PaymentKind::Alipay) => Ok(MethodKind::Alipay),
        Ok(pb::PaymentKind::Wechat) => Ok(MethodKind::WeChat),
        _ => Err(Status::invalid_argument(format!(
            "{field} must be PAYMENT_KIND_BANK, PAYMENT_KIND_ALIPAY or PAYMENT_KIND_WECHAT"
        ))),
    }
}

/// A payment kind for the wire.
pub fn kind_pb(k: MethodKind) -> i32 {
    match k {
        MethodKind::Bank => pb::PaymentKind::Bank as i32,
        MethodKind::Alipay => pb::PaymentKind::Alipay as i32,
        MethodKind::WeChat => pb::PaymentKind::Wechat as i32,
    }
}

/// Who is looking at a receiving method: SPEC §5 decides, in this one
/// place, what each sees. Only its owner, the buyer of an open trade that
/// pays to it, and CS see it whole; everyone else sees it masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The user who bound the method.
    Owner,
    /// The buyer of a trade paying to it, while the trade is open or not.
    Counterparty {
        /// Whether that trade is still open.
        trade_open: bool,
    },
    /// Customer service.
    Support,
    /// Anyone else.
    Public,
}

impl Audience {
    /// How `viewer` sees the seller's method of trade `t`.
    pub fn of_trade(t: &Trade, viewer: UserId) -> Self {
        if viewer == t.seller {
            Audience::Owner
        } else if viewer == t.buyer {
            Audience::Counterparty {
                trade_open: t.state.is_open(),
            }
        } else {
            Audience::Public
        }
    }

    /// Whether this audience sees receiving details unmasked.
    pub fn sees_details(self) -> bool {
        matches!(
            self,
            Audience::Owner | Audience::Support | Audience::Counterparty { trade_open: true }
        )
    }
}

/// A bound method for the wire, as `audience` may see it.
pub fn method_pb(id: MethodId, details: &MethodDetails, audience: Audience) -> pb::PaymentMethod {
    let shown = if audience.sees_details() {
        details.clone()
    } else {
        details.masked()
    };
    let (bank, holder, account) = match shown {
        MethodDetails::Bank {
            bank,
            holder,
            card_number,
        } => (bank, holder, card_number),
        MethodDetails::Alipay { holder, account } | MethodDetails::WeChat { holder, account } => {
            (String::new(), holder, account)
        }
    };
    pb::PaymentMethod {
        id: id.to_string(),
        kind: kind_pb(details.kind()),
        holder,
        bank,
        account,
    }
}

fn actor_text(a: Actor) -> String {
    match a {
        Actor::Buyer(u) => format!("buyer:{u}"),
        Actor::Seller(u) => format!("seller:{u}"),
        Actor::Support(u) => format!("support:{u}"),
        Actor::System => "system".into(),
    }
}

fn trade_state_pb(k: TradeStateKind) -> i32 {
    (match k {
        TradeStateKind::AwaitingPayment => pb::TradeState::AwaitingPayment,
        TradeStateKind::Paid => pb::TradeState::Paid,
        TradeStateKind::Appealed => pb::TradeState::Appealed,
        TradeStateKind::Released => pb::TradeState::Released,
        TradeStateKind::Cancelled => pb::TradeState::Cancelled,
    }) as i32
}

fn reason_text(r: TransitionReason) -> String {
    format!("{r:?}")
}

/// A trade for the wire, its seller's method as `audience` may see it.
pub fn trade_pb(t: &Trade, audience: Audience) -> pb::Trade {
    let (pay_by, paid_at, appeal_from, cancel_reason) = match t.state {
        TradeState::AwaitingPayment { pay_by } => (Some(pay_by), None, None, String::new()),
        TradeState::Paid {
            paid_at,
            appeal_from,
            ..
        } => (None, Some(paid_at), Some(appeal_from), String::new()),
        TradeState::Appealed { paid_at } | TradeState::Released { paid_at, .. } => {
            (None, Some(paid_at), None, String::new())
        }
        TradeState::Cancelled { reason, .. } => (None, None, None, reason_text(reason)),
    };
    let timeline = t
        .timeline
        .iter()
        .map(|e| pb::TimelineEntry {
            at: Some(ts(e.at)),
            actor: actor_text(e.actor),
            what: match &e.what {
                TimelineWhat::Transition { from, to, reason } => match from {
                    Some(from) => format!(
                        "{} -> {} ({})",
                        from.name(),
                        to.name(),
                        reason_text(*reason)
                    ),
                    None => format!("created {} ({})", to.name(), reason_text(*reason)),
                },
                TimelineWhat::AppealClaimed => "appeal claimed".into(),
                TimelineWhat::AppealUnclaimed => "appeal handed back".into(),
                TimelineWhat::EvidenceAdded(id) => format!("evidence {id} added"),
            },
        })
        .collect();
    pb::Trade {
        id: t.id.to_string(),
        seller_id: t.seller.to_string(),
        buyer_id: t.buyer.to_string(),
        listing_id: t.listing.map(|l| l.to_string()).unwrap_or_default(),
        asset: t.asset.to_string(),
        fiat: t.fiat.to_string(),
        price: t.price.to_string(),
        coin_amount: t.coin.to_string(),
        fiat_amount: t.fiat_amount.to_string(),
        state: trade_state_pb(t.state.kind()),
        cancel_reason,
        created_at: Some(ts(t.created_at)),
        pay_by: pay_by.map(ts),
        paid_at: paid_at.map(ts),
        appeal_from: appeal_from.map(ts),
        seller_method: Some(method_pb(t.method, &t.method_details, audience)),
        timeline,
        fast_match_origin: t
            .fast_match
            .as_ref()
            .map(|f| f.origin.to_string())
            .unwrap_or_default(),
        fast_match_attempt: t.fast_match.as_ref().map_or(0, |f| f.attempt),
        buy_order_id: t.buy_order.map(|b| b.to_string()).unwrap_or_default(),
    }
}

fn listing_state_pb(s: ListingState) -> i32 {
    (match s {
        ListingState::Active => pb::ListingState::Active,
        ListingState::Paused => pb::ListingState::Paused,
        ListingState::Closed(_) => pb::ListingState::Closed,
        ListingState::Cancelled => pb::ListingState::Cancelled,
    }) as i32
}

/// A seller record for the wire.
pub fn record_pb(r: &SellerRecord) -> pb::SellerRecord {
    pb::SellerRecord {
        completed_30d: r.completed,
        completion_rate_30d: r
            .completion_rate
            .map(|d| format!("{d:.4}"))
            .unwrap_or_default(),
        median_release_secs: r.median_release_ms.map_or(0, |ms| ms / 1000),
    }
}

/// The payment kinds a listing accepts, for the wire.
pub fn listing_kinds(e: &otc_engine::Engine, l: &Listing) -> Vec<i32> {
    let Some(u) = e.user(l.seller) else {
        return Vec::new();
    };
    l.methods
        .iter()
        .filter_map(|m| u.methods.get(m))
        .map(|m| kind_pb(m.details.kind()))
        .collect()
}

/// A listing for the wire.
pub fn listing_pb(l: &Listing, kinds: Vec<i32>, record: Option<&SellerRecord>) -> pb::Listing {
    pb::Listing {
        id: l.id.to_string(),
        seller_id: l.seller.to_string(),
        asset: l.asset.to_string(),
        fiat: l.fiat.to_string(),
        price: l.price.to_string(),
        total: l.total.to_string(),
        remaining: l.remaining.to_string(),
        min_fiat: l.min_fiat.to_string(),
        max_fiat: l.max_fiat.to_string(),
        methods: kinds,
        payment_window_secs: l.payment_window_ms / 1000,
        terms: l.terms.clone(),
        state: listing_state_pb(l.state),
        created_at: Some(ts(l.created_at)),
        seller_record: record.map(record_pb),
        open_trades: l.open_trades,
    }
}

/// An appeal for the wire. `files_for`: whose attachments the viewer may
/// see (`None`: everyone's, for CS).
pub fn appeal_pb(a: &Appeal, t: &Trade, files_for: Option<UserId>) -> pb::Appeal {
    let status = match a.status() {
        AppealStatus::Open => pb::AppealStatus::Open,
        AppealStatus::Claimed => pb::AppealStatus::Claimed,
        AppealStatus::Closed => pb::AppealStatus::Closed,
    } as i32;
    let evidence = a
        .evidence
        .iter()
        .map(|e| pb::Evidence {
            id: e.id.to_string(),
            by_user_id: e.by.to_string(),
            at: Some(ts(e.at)),
            description: e.description.clone(),
            attachment: e
                .attachment
                .as_ref()
                .filter(|_| files_for.is_none_or(|u| u == e.by))
                .map(|f| pb::AttachmentInfo {
                    id: e.id.to_string(),
                    content_type: f.content_type.clone(),
                    file_name: f.file_name.clone(),
                    size_bytes: f.size_bytes,
                }),
        })
        .collect();
    let outcome = match &a.outcome {
        None => String::new(),
        Some(AppealOutcome::Resolved {
            agent,
            resolution,
            note,
            ..
        }) => {
            let what = if *resolution == Resolution::Release {
                "release"
            } else {
                "refund"
            };
            format!("resolved {what} by {agent}: {note}")
        }
        Some(AppealOutcome::Settled { how, .. }) => match how {
            SettledBy::SellerReleased => "settled: seller released".into(),
            SettledBy::BuyerCancelled => "settled: buyer cancelled".into(),
        },
    };
    pb::Appeal {
        trade_id: a.trade.to_string(),
        status,
        opened_by: actor_text(a.opened_by),
        reason: a.reason.clone(),
        opened_at: Some(ts(a.opened_at)),
        claimed_by: a.claimed_by.map(|u| u.to_string()).unwrap_or_default(),
        evidence,
        outcome,
        coin_amount: t.coin.to_string(),
        fiat_amount: t.fiat_amount.to_string(),
        asset: t.asset.to_string(),
        seller_id: t.seller.to_string(),
        buyer_id: t.buyer.to_string(),
        seller_record: None,
        buyer_record: None,
    }
}

/// An event for the wire.
pub fn event_pb(e: &Event) -> pb::Event {
    use pb::EventType as T;
    let mut out = pb::Event {
        seq: e.seq,
        at: Some(ts(e.at)),
        ..pb::Event::default()
    };
    let ty = match &e.kind {
        EventKind::BalanceChanged {
            user,
            asset,
            available,
            escrowed,
        } => {
            out.user_id = user.to_string();
            out.asset = asset.to_string();
            out.available = available.to_string();
            out.escrowed = escrowed.to_string();
            T::BalanceChanged
        }
        EventKind::Deposited {
            user,
            asset,
            amount,
            external_ref,
        }
        | EventKind::Withdrawn {
            user,
            asset,
            amount,
            external_ref,
        } => {
            out.user_id = user.to_string();
            out.asset = asset.to_string();
            out.amount = amount.to_string();
            out.reason = external_ref.clone();
            if matches!(e.kind, EventKind::Deposited { .. }) {
                T::Deposited
            } else {
                T::Withdrawn
            }
        }
        EventKind::MerchantRegistered { merchant }
        | EventKind::MerchantCapacitySet { merchant } => {
            out.user_id = merchant.to_string();
            T::MerchantChanged
        }
        EventKind::MerchantOnlineSet { merchant, online } => {
            out.user_id = merchant.to_string();
            out.state = if *online {
                "ONLINE".into()
            } else {
                "OFFLINE".into()
            };
            T::MerchantChanged
        }
        EventKind::MethodBound { user, method, .. } => {
            out.user_id = user.to_string();
            out.state = format!("BOUND {method}");
            T::MethodChanged
        }
        EventKind::MethodRemoved { user, method } => {
            out.user_id = user.to_string();
            out.state = format!("REMOVED {method}");
            T::MethodChanged
        }
        EventKind::FundPasswordSet { user } => {
            out.user_id = user.to_string();
            out.state = "SET".into();
            T::FundPasswordChanged
        }
        EventKind::FundPasswordFailed {
            user,
            failures_in_row,
            locked_until,
        } => {
            out.user_id = user.to_string();
            out.state = match locked_until {
                Some(t) => format!("LOCKED until {t}"),
                None => format!("WRONG {failures_in_row} in a row"),
            };
            T::FundPasswordChanged
        }
        EventKind::Blocked { user, target } | EventKind::Unblocked { user, target } => {
            out.user_id = user.to_string();
            out.counterparty_id = target.to_string();
            out.state = if matches!(e.kind, EventKind::Blocked { .. }) {
                "BLOCKED".into()
            } else {
                "UNBLOCKED".into()
            };
            T::BlockChanged
        }
        EventKind::ListingChanged {
            listing,
            seller,
            state,
            remaining,
        } => {
            out.user_id = seller.to_string();
            out.listing_id = listing.to_string();
            out.state = state.name().into();
            out.amount = remaining.to_string();
            T::ListingChanged
        }
        EventKind::BuyOrderChanged {
            order,
            buyer,
            state,
            remaining,
        } => {
            out.user_id = buyer.to_string();
            out.buy_order_id = order.to_string();
            out.state = format!("{state:?}").to_uppercase();
            out.amount = remaining.to_string();
            T::BuyOrderChanged
        }
        EventKind::TradeCreated {
            trade,
            seller,
            buyer,
            listing,
            coin,
            fiat,
            price,
            ..
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.listing_id = listing.map(|l| l.to_string()).unwrap_or_default();
            out.amount = coin.to_string();
            out.fiat_amount = fiat.to_string();
            out.price = price.to_string();
            out.state = TradeStateKind::AwaitingPayment.name().into();
            T::TradeCreated
        }
        EventKind::TradeTransitioned {
            trade,
            seller,
            buyer,
            from,
            to,
            actor,
            reason,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.from_state = from.name().into();
            out.state = to.name().into();
            out.actor = actor_text(*actor);
            out.reason = reason_text(*reason);
            T::TradeTransitioned
        }
        EventKind::AppealAvailable {
            trade,
            seller,
            buyer,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            T::AppealAvailable
        }
        EventKind::AppealOpened {
            trade,
            seller,
            buyer,
            by,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.actor = actor_text(*by);
            T::AppealOpened
        }
        EventKind::EvidenceAdded {
            trade,
            seller,
            buyer,
            evidence,
            by,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.actor = by.to_string();
            out.reason = evidence.to_string();
            T::EvidenceAdded
        }
        EventKind::ChatPosted {
            trade,
            seller,
            buyer,
            author,
            text,
            ..
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.actor = author.to_string();
            out.text = text.clone();
            T::ChatPosted
        }
        EventKind::AppealClaimed { trade, agent } | EventKind::AppealUnclaimed { trade, agent } => {
            out.trade_id = trade.to_string();
            out.actor = format!("support:{agent}");
            if matches!(e.kind, EventKind::AppealClaimed { .. }) {
                T::AppealClaimed
            } else {
                T::AppealUnclaimed
            }
        }
        EventKind::AppealResolved {
            trade,
            seller,
            buyer,
            agent,
            resolution,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.actor = format!("support:{agent}");
            out.state = if *resolution == Resolution::Release {
                "RELEASE".into()
            } else {
                "REFUND".into()
            };
            T::AppealResolved
        }
        EventKind::AppealSettled {
            trade,
            seller,
            buyer,
            how,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.state = format!("{how:?}");
            T::AppealSettled
        }
    };
    out.r#type = ty as i32;
    out
}
