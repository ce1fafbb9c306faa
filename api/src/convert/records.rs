//! Trades, listings, appeals and receiving methods for the wire.

use otc_engine::appeal::{Appeal, AppealOutcome, AppealStatus};
use otc_engine::command::Resolution;
use otc_engine::event::SettledBy;
use otc_engine::listing::{Listing, ListingState};
use otc_engine::pricing::Pricing;
use otc_engine::record::SellerRecord;
use otc_engine::trade::{Actor, TimelineWhat, Trade, TradeState, TradeStateKind, TransitionReason};
use otc_engine::users::MethodDetails;
use otc_engine::{MethodId, Timestamp, UserId};

use crate::proto as pb;

use super::{kind_pb, ts};

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
    let (bank, holder, account, channel, provider) = match shown {
        MethodDetails::Bank {
            bank,
            holder,
            card_number,
        } => (bank, holder, card_number, String::new(), ""),
        MethodDetails::Alipay { holder, account } | MethodDetails::WeChat { holder, account } => {
            (String::new(), holder, account, String::new(), "")
        }
        MethodDetails::Channel { channel, provider } => (
            String::new(),
            String::new(),
            String::new(),
            channel,
            provider.name(),
        ),
    };
    pb::PaymentMethod {
        id: id.to_string(),
        kind: kind_pb(details.kind()),
        holder,
        bank,
        account,
        channel,
        provider: provider.to_owned(),
    }
}

pub(super) fn actor_text(a: Actor) -> String {
    match a {
        Actor::Buyer(u) => format!("buyer:{u}"),
        Actor::Seller(u) => format!("seller:{u}"),
        Actor::Support(u) => format!("support:{u}"),
        Actor::System => "system".into(),
        Actor::Gateway => "gateway".into(),
        Actor::Reconciliation => "reconciliation".into(),
    }
}

/// An actor on a trade's timeline: the gateway is named by the trade's
/// channel (SPEC §19: actor `gateway <channel>`).
fn trade_actor(t: &Trade, a: Actor) -> String {
    match (a, &*t.method_details) {
        (Actor::Gateway, MethodDetails::Channel { channel, .. }) => format!("gateway {channel}"),
        _ => actor_text(a),
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

pub(super) fn reason_text(r: TransitionReason) -> String {
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
            actor: trade_actor(t, e.actor),
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
                TimelineWhat::PaymentVerified {
                    channel,
                    txn_id,
                    amount,
                    ..
                } => format!("payment of {amount} verified by {channel} (transaction {txn_id})"),
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
        release_on_verified_payment: t.release_on_verified,
        payment_reference: otc_engine::payment::payment_reference(t.id),
        payments: t
            .payments
            .iter()
            .map(super::payments::verified_pb)
            .collect(),
        reference_price: t
            .basis
            .as_ref()
            .map(|b| b.reference.to_string())
            .unwrap_or_default(),
        reference_at: t.basis.as_ref().map(|b| ts(b.reference_at)),
        reference_source: t
            .basis
            .as_ref()
            .map(|b| b.source.clone())
            .unwrap_or_default(),
        premium_bps: t.basis.as_ref().map_or(0, |b| b.premium_bps),
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

/// A listing for the wire, priced at `now` (SPEC §22), with its seller's
/// record.
pub fn listing_view(e: &otc_engine::Engine, l: &Listing, now: Timestamp) -> pb::Listing {
    let record = e.seller_record(l.seller, now);
    let mut view = listing_pb(l, listing_kinds(e, l), Some(&record));
    let price = e.effective_price(l, now);
    view.price = price.map(|p| p.to_string()).unwrap_or_default();
    if let Pricing::Floating(f) = l.pricing {
        view.floating = true;
        view.premium_bps = f.premium_bps;
        view.floor = f.floor.map(|p| p.to_string()).unwrap_or_default();
        view.ceiling = f.ceiling.map(|p| p.to_string()).unwrap_or_default();
        match e.state().references.get(&l.market()) {
            Some(r) => {
                view.reference_price = r.price.to_string();
                view.reference_at = Some(ts(r.at));
                if price.is_none() {
                    view.unpriced_reason = format!(
                        "the {}/{} reference price set at {} is older than the allowed {}; floating listings match again when it is renewed",
                        l.asset,
                        l.fiat,
                        r.at,
                        otc_engine::ids::human_duration(e.config().reference_max_age_ms)
                    );
                }
            }
            None => {
                view.unpriced_reason = format!("{}/{} has no reference price yet", l.asset, l.fiat);
            }
        }
    }
    view
}

/// A listing for the wire, without prices that depend on the reference.
fn listing_pb(l: &Listing, kinds: Vec<i32>, record: Option<&SellerRecord>) -> pb::Listing {
    pb::Listing {
        id: l.id.to_string(),
        seller_id: l.seller.to_string(),
        asset: l.asset.to_string(),
        fiat: l.fiat.to_string(),
        price: match l.pricing {
            Pricing::Fixed(p) => p.to_string(),
            Pricing::Floating(_) => String::new(),
        },
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
        release_on_verified_payment: l.release_on_verified,
        ..pb::Listing::default()
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
        opened_by: trade_actor(t, a.opened_by),
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
