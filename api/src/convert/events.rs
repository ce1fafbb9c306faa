//! Events for the wire.

use otc_engine::command::Resolution;
use otc_engine::trade::{Actor, TradeStateKind};
use otc_engine::{Event, EventKind, UserId};

use crate::proto as pb;

use super::records::{actor_text, reason_text};
use super::ts;

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
            out.actor = party_actor(*by, *seller, *buyer);
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
            out.actor = party_actor(*author, *seller, *buyer);
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
        EventKind::ChannelAssigned { user, channel, .. } => {
            out.user_id = user.to_string();
            out.channel = channel.clone();
            T::ChannelAssigned
        }
        EventKind::PaymentVerified {
            trade,
            seller,
            buyer,
            channel,
            txn_id,
            amount,
            actor,
        } => {
            out.trade_id = trade.to_string();
            out.user_id = seller.to_string();
            out.counterparty_id = buyer.to_string();
            out.channel = channel.clone();
            out.txn_id = txn_id.clone();
            out.fiat_amount = amount.to_string();
            out.actor = actor_text(*actor);
            T::PaymentVerified
        }
        EventKind::PaymentAnomaly {
            anomaly,
            kind,
            trade,
            channel,
            actor,
        } => {
            out.anomaly_id = anomaly.to_string();
            out.trade_id = trade.map(|t| t.to_string()).unwrap_or_default();
            out.channel = channel.clone();
            out.reason = kind.name().into();
            out.actor = actor_text(*actor);
            T::PaymentAnomaly
        }
        EventKind::ReferencePriceSet {
            asset,
            fiat,
            price,
            source,
        } => {
            out.asset = asset.to_string();
            out.state = fiat.to_string();
            out.price = price.to_string();
            out.reason = source.clone();
            T::ReferencePriceSet
        }
        EventKind::ReconMistake {
            mistake,
            kind,
            channel,
        } => {
            out.mistake_id = mistake.to_string();
            out.reason = kind.name().into();
            out.channel = channel.clone();
            out.actor = "reconciliation".into();
            T::ReconMistake
        }
        EventKind::BillImported {
            channel,
            day,
            mistakes,
        } => {
            out.channel = channel.clone();
            out.state = day.clone();
            out.amount = mistakes.to_string();
            T::BillImported
        }
        EventKind::MistakeHandled { mistake, agent } => {
            out.mistake_id = mistake.to_string();
            out.actor = match agent {
                Some(agent) => format!("support:{agent}"),
                None => "reconciliation".to_owned(),
            };
            T::MistakeHandled
        }
        EventKind::AnomalyResolved { anomaly, agent } => {
            out.anomaly_id = anomaly.to_string();
            out.actor = format!("support:{agent}");
            T::AnomalyResolved
        }
    };
    out.r#type = ty as i32;
    out
}

/// Who acted on a trade, as every event names actors: a party by role, else
/// an agent.
fn party_actor(who: UserId, seller: UserId, buyer: UserId) -> String {
    let role = if who == buyer {
        Actor::Buyer(who)
    } else if who == seller {
        Actor::Seller(who)
    } else {
        Actor::Support(who)
    };
    actor_text(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chat and evidence name their author as every other event names an
    /// actor, by role (the proto's `Event.actor`).
    #[test]
    fn chat_and_evidence_name_the_author_by_role() {
        let (seller, buyer, agent) = (
            UserId(uuid::Uuid::from_u128(1)),
            UserId(uuid::Uuid::from_u128(2)),
            UserId(uuid::Uuid::from_u128(3)),
        );
        let chat = |author| Event {
            seq: 1,
            at: otc_engine::Timestamp(0),
            kind: EventKind::ChatPosted {
                trade: otc_engine::TradeId(1),
                seller,
                buyer,
                author,
                text: "hi".into(),
                attachment: None,
            },
        };
        assert_eq!(event_pb(&chat(buyer)).actor, format!("buyer:{buyer}"));
        assert_eq!(event_pb(&chat(seller)).actor, format!("seller:{seller}"));
        assert_eq!(event_pb(&chat(agent)).actor, format!("support:{agent}"));
    }
}
