//! Payment orders (SPEC §19): what a buyer's app opens to pay a trade on a
//! channel. The engine decides whether the caller may pay this trade now and
//! what the amount is; the channel signs the order.

use otc_engine::ids::MS_PER_MIN;
use otc_engine::{Rejection, TradeId, UserId};
use otc_gateway::OrderRequest;
use tonic::Status;

use crate::channels::Channels;
use crate::convert as cv;
use crate::core::{Core, clock_now};
use crate::proto as pb;

/// The payment order of `trade` for its buyer.
///
/// # Errors
/// As the engine decides (not the buyer's, not awaiting payment, not on a
/// channel); FAILED_PRECONDITION when less than a minute of the window is
/// left (gateways count whole minutes) or the channel is no longer declared.
pub async fn payment_order(
    core: &Core,
    channels: &Channels,
    buyer: UserId,
    trade: TradeId,
) -> Result<pb::PaymentOrder, Status> {
    let now = clock_now();
    let facts = {
        let w = core.read().await?;
        match w.engine().payment_order(buyer, trade, now) {
            // Ended and forgotten by the engine: refused as it was before,
            // from history.
            Err(Rejection::TradeNotFound(id)) if w.engine().trade(id).is_none() => {
                let ended = w
                    .store()
                    .trade(id)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                Err(ended.map_or(Rejection::TradeNotFound(id), |t| {
                    w.engine().payment_order_ended(buyer, &t)
                }))
            }
            other => other,
        }
        .map_err(|r| cv::status_of(&r))?
    };
    let channel = channels.get(&facts.channel).ok_or_else(|| {
        Status::failed_precondition(format!(
            "payment channel {} is not served here any more; pay as the trade's terms say",
            facts.channel
        ))
    })?;
    // The gateway closes the order when the window ends (whole minutes,
    // rounded down so it never outlives ours).
    let timeout_minutes = facts.pay_by.ms_since(now) / MS_PER_MIN;
    if timeout_minutes < 1 {
        return Err(Status::failed_precondition(format!(
            "less than a minute of trade {trade}'s payment window is left"
        )));
    }
    let notify_url = channels.notify_url(&facts.channel);
    let order = channel
        .payment_order(&OrderRequest {
            reference: facts.reference.clone(),
            amount: facts.amount,
            subject: format!("otc trade {trade}"),
            notify_url: notify_url.clone(),
            return_url: channels.return_url(&facts.channel),
            timeout_minutes,
            now: chrono::Utc::now(),
        })
        .map_err(|e| Status::internal(format!("cannot sign the payment order: {e}")))?;
    Ok(pb::PaymentOrder {
        trade_id: trade.to_string(),
        channel: facts.channel,
        provider: channel.provider().to_string(),
        reference: facts.reference,
        amount: order.amount,
        fiat: facts.currency,
        pay_by: Some(cv::ts(facts.pay_by)),
        pay_url: order.pay_url.unwrap_or_default(),
        notify_url,
    })
}
