//! The gateway listener (`--http-listen`, SPEC §19): one notification route
//! per channel, the Alipay `return_url` page, and nothing else.
//!
//! A notification is verified first (signature, timestamp, account ids, by
//! `otc_gateway`), then submitted to the writer as verified facts; the engine
//! decides what they mean. The gateway hears success only after the effect
//! (or the anomaly) is durable, or when the payment was applied before.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use otc_engine::payment::{EndedTrade, GatewayPayment, trade_of_reference};
use otc_engine::users::MethodDetails;
use otc_engine::{Command, EventKind, Rejection, Timestamp};
use otc_gateway::{Answer, Channel, Notification, Refusal};

use crate::channels::Channels;
use crate::core::Core;

/// What the listener's handlers share.
#[derive(Clone)]
pub struct Gateways {
    /// The writer and the engine.
    pub core: Arc<Core>,
    /// The declared channels.
    pub channels: Arc<Channels>,
}

/// How long a request's body may take to arrive once its headers have
/// (they have [`crate::listen::HEADERS_WITHIN`]). A gateway sends a few KiB
/// at once; a peer that announces a body and goes quiet must not hold its
/// place in the listener's budget.
pub const BODY_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The listener's routes, bodies bounded to `body_max` bytes (larger → 413)
/// and to [`BODY_WITHIN`] (slower → 408).
pub fn router(state: Gateways, body_max: usize) -> Router {
    Router::new()
        .route("/notify/{channel}", post(notify))
        .route("/return/{channel}", get(return_page))
        .layer(axum::middleware::from_fn_with_state(body_max, body_within))
        .with_state(state)
}

/// Reads the whole body, at most `body_max` bytes, within [`BODY_WITHIN`]
/// before the route runs: the one bound on a body's size here (axum's own
/// default, 2 MiB, is far above any `body_max`).
async fn body_within(
    State(body_max): State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // A length announced past the bound is refused before a byte is waited
    // for: the peer would otherwise hold its place until BODY_WITHIN.
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > u64::try_from(body_max).unwrap_or(u64::MAX)) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "the body is too large",
        )
            .into_response();
    }
    let read = tokio::time::timeout(BODY_WITHIN, axum::body::to_bytes(body, body_max)).await;
    match read {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                .await
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").into_response()
            } else {
                (StatusCode::BAD_REQUEST, "the body could not be read").into_response()
            }
        }
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "the body did not arrive in time",
        )
            .into_response(),
    }
}

/// How a notification ended, for metrics and logs.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Verified,
    Duplicate,
    Anomaly,
    NotPaid,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::Duplicate => "duplicate",
            Outcome::Anomaly => "anomaly",
            Outcome::NotPaid => "not_paid",
        }
    }
}

fn count(channel: &str, outcome: &'static str) {
    metrics::counter!(
        "otc_gateway_notifications_total",
        "channel" => channel.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

fn reply(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, a.body).into_response();
    if let Some(v) = a.content_type {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
    }
    r
}

async fn notify(
    State(g): State<Gateways>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(channel) = g.channels.get(&name) else {
        return (StatusCode::NOT_FOUND, "no such channel").into_response();
    };
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let n = match channel.verify(&pairs, &body, chrono::Utc::now()) {
        Ok(n) => n,
        Err(refusal) => {
            count(&name, refusal.kind());
            // The refusal names a field, never a key, signature or body.
            tracing::warn!(channel = %name, kind = refusal.kind(), %refusal, "notification refused");
            return reply(channel.refused(&refusal));
        }
    };
    if !n.paid {
        // Verified, but not a payment (e.g. WAIT_BUYER_PAY, TRADE_CLOSED).
        count(&name, Outcome::NotPaid.name());
        tracing::info!(channel = %name, status = %n.status, reference = %n.reference, "notification is not a payment");
        return reply(channel.accepted());
    }
    match apply(&g.core, channel, &n).await {
        Ok(outcome) => {
            count(&name, outcome.name());
            tracing::info!(channel = %name, outcome = outcome.name(), reference = %n.reference, txn = %n.txn_id, "notification applied");
            reply(channel.accepted())
        }
        Err(Failure::Refused(why)) => {
            count(&name, "malformed");
            tracing::warn!(channel = %name, %why, "verified notification refused by the engine");
            reply(channel.refused(&Refusal::Malformed {
                field: "notification".into(),
                why,
            }))
        }
        Err(Failure::Unavailable(why)) => {
            // Not durable: the gateway must retry.
            count(&name, "unavailable");
            tracing::error!(channel = %name, %why, "notification not applied");
            reply(channel.unavailable())
        }
    }
}

enum Failure {
    Refused(String),
    Unavailable(String),
}

/// Submits the verified facts and waits for them to be durable.
async fn apply(core: &Core, channel: &Channel, n: &Notification) -> Result<Outcome, Failure> {
    let mut outcome = submit(core, channel, n).await?;
    if matches!(
        outcome,
        otc_storage::Outcome::Rejected(Rejection::HistoryNeeded(_))
    ) {
        // The engine forgot the trade after we looked: look again (now in
        // history) and submit once more.
        outcome = submit(core, channel, n).await?;
    }
    match outcome {
        otc_storage::Outcome::Applied(events) => {
            let any = |f: fn(&EventKind) -> bool| events.iter().any(|e| f(&e.kind));
            Ok(if any(|k| matches!(k, EventKind::PaymentAnomaly { .. })) {
                Outcome::Anomaly
            } else if any(|k| matches!(k, EventKind::PaymentVerified { .. })) {
                Outcome::Verified
            } else {
                // A transaction seen before, for another order than its
                // bill said: the finding is recorded, nothing is paid.
                Outcome::Duplicate
            })
        }
        otc_storage::Outcome::Rejected(Rejection::DuplicatePayment(_)) => Ok(Outcome::Duplicate),
        otc_storage::Outcome::Rejected(r) => Err(Failure::Refused(r.to_string())),
        // Notifications carry no request id.
        otc_storage::Outcome::Repeated(..) | otc_storage::Outcome::IdConflict => {
            Err(Failure::Refused("not a notification outcome".into()))
        }
    }
}

/// One submission of the verified facts, with what history says of the
/// trade when the engine no longer holds it.
async fn submit(
    core: &Core,
    channel: &Channel,
    n: &Notification,
) -> Result<otc_storage::Outcome, Failure> {
    let (history_checked, ended) = ended_trade(core, &n.reference)
        .await
        .map_err(Failure::Unavailable)?;
    let payment = GatewayPayment {
        channel: channel.name().to_owned(),
        reference: n.reference.clone(),
        txn_id: n.txn_id.clone(),
        amount: n.amount,
        currency: n.currency.clone(),
        paid_at: n.paid_at.map(|t| Timestamp(t.timestamp_millis())),
        history_checked,
        ended,
    };
    core.submit(None, Command::GatewayPayment(payment), None)
        .await
        .map(|done| done.outcome)
        .map_err(|s| Failure::Unavailable(s.message().to_owned()))
}

/// What history says of the trade a reference names, when the engine no
/// longer holds it (it ended long ago): whether we looked, and its end, its
/// channel and its verified payments.
pub(crate) async fn ended_trade(
    core: &Core,
    reference: &str,
) -> Result<(bool, Option<EndedTrade>), String> {
    let Some(id) = trade_of_reference(reference) else {
        return Ok((false, None));
    };
    let w = core.read().await.map_err(|s| s.message().to_owned())?;
    if w.engine().trade(id).is_some() {
        return Ok((false, None));
    }
    let trade = w.store().trade(id).map_err(|e| e.to_string())?;
    Ok((
        true,
        trade.map(|t| EndedTrade {
            trade: id,
            state: t.state.kind(),
            channel: match &*t.method_details {
                MethodDetails::Channel { channel, .. } => Some(channel.clone()),
                _ => None,
            },
            payments: t
                .payments
                .iter()
                .map(|p| (p.channel.clone(), p.txn_id.clone()))
                .collect(),
        }),
    ))
}

/// The Alipay `return_url`: the payer's browser comes back here. It only
/// displays where the trade stands, and only when the query Alipay signed
/// verifies (anyone may type a reference); nothing here changes state (the
/// notification does that).
async fn return_page(
    State(g): State<Gateways>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(channel) = g.channels.get(&name) else {
        return (StatusCode::NOT_FOUND, "no such channel").into_response();
    };
    let reference = match channel.verify_return(query.unwrap_or_default().as_bytes()) {
        Ok(reference) => Some(reference),
        Err(refusal) => {
            tracing::debug!(channel = %name, %refusal, "return not verified");
            None
        }
    };
    let state = match reference.as_deref().and_then(trade_of_reference) {
        Some(id) => {
            // Storage failed: nothing it holds is shown.
            let unavailable = || {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage failed; the server stopped until it is restarted",
                )
                    .into_response()
            };
            let Ok(w) = g.core.read().await else {
                return unavailable();
            };
            match w.engine().trade(id) {
                Some(t) => Some(t.state.kind().name()),
                // An ended trade's history: a failed read is not "unknown".
                None => match w.store().trade(id) {
                    Ok(t) => t.map(|t| t.state.kind().name()),
                    Err(e) => {
                        tracing::error!(channel = %name, error = %e, "the return page could not read a trade's history");
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the payment's state cannot be read now; try again later",
                        )
                            .into_response();
                    }
                },
            }
        }
        None => None,
    };
    let line = match (&reference, state) {
        (None, _) => {
            "This return could not be verified; the app shows the payment. 无法验证，请在应用内查看。"
        }
        (Some(_), Some("AWAITING_PAYMENT")) => {
            "We are waiting for the payment notification. 正在确认付款。"
        }
        (Some(_), Some("PAID")) => "Payment verified. 付款已确认。",
        (Some(_), Some("RELEASED")) => {
            "Payment verified; the coin is released. 付款已确认，已放币。"
        }
        (Some(_), Some(_)) => {
            "This trade is in the hands of customer service or has ended. 请在应用内查看。"
        }
        (Some(_), None) => "Unknown payment reference. 未知订单。",
    };
    let reference = reference
        .map(|r| format!("<p>Reference: <code>{}</code></p>", escape(&r)))
        .unwrap_or_default();
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>otc payment</title></head>\
         <body><h1>otc</h1><p>{}</p>{reference}<p>Return to the app to continue. 请返回应用。</p></body></html>",
        escape(line),
    );
    let mut r = (StatusCode::OK, page).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// HTML text escaping: what the query held is shown as text.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
