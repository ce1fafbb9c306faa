//! Helpers every service uses: role checks, reading trades with
//! visibility rules, attachments, and resumable event streams.

use std::sync::Arc;

use otc_engine::command::AttachmentRef;
use otc_engine::trade::Trade;
use otc_engine::{Event, TradeId, UserId};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::auth::{Caller, Role};
use crate::convert;
use crate::core::Core;
use crate::proto as pb;

/// Events read from storage per step while catching up a stream.
const BACKFILL_BATCH: usize = 1_000;

/// Authenticates and checks the caller's role is one of `roles`.
///
/// # Errors
/// UNAUTHENTICATED for a bad token; PERMISSION_DENIED for another role;
/// UNAVAILABLE after a storage failure.
pub fn caller<T>(core: &Core, req: &tonic::Request<T>, roles: &[Role]) -> Result<Caller, Status> {
    core.check_up()?;
    let c = core.auth.caller(req)?;
    if !roles.contains(&c.role) {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(Status::permission_denied(format!(
            "this call needs the role {}; your token has {}",
            names.join(" or "),
            c.role.as_str()
        )));
    }
    Ok(c)
}

/// Roles that trade.
pub const TRADERS: &[Role] = &[Role::User, Role::Merchant];
/// Roles that may read any trade and appeal.
pub const SUPPORT_READ: &[Role] = &[Role::Support, Role::SupportViewer];

/// A trade from the engine's working set or, once forgotten there, from history.
///
/// # Errors
/// NOT_FOUND; UNAVAILABLE on storage failure.
pub async fn load_trade(core: &Core, id: TradeId) -> Result<Trade, Status> {
    let w = core.read().await?;
    if let Some(t) = w.engine().trade(id) {
        return Ok(t.clone());
    }
    w.store()
        .trade(id)
        .map_err(|e| Status::unavailable(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("trade {id} not found")))
}

/// A trade's appeal from the working set or, once forgotten there, from history.
///
/// # Errors
/// NOT_FOUND when the trade has none; UNAVAILABLE on storage failure.
pub async fn load_appeal(core: &Core, id: TradeId) -> Result<otc_engine::appeal::Appeal, Status> {
    let w = core.read().await?;
    if let Some(a) = w.engine().appeal(id) {
        return Ok(a.clone());
    }
    w.store()
        .appeal(id)
        .map_err(|e| Status::unavailable(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("trade {id} has no appeal")))
}

/// A trade the caller is a party to (others get NOT_FOUND, hiding existence).
///
/// # Errors
/// NOT_FOUND when missing or not the caller's.
pub async fn party_trade(core: &Core, user: UserId, id: TradeId) -> Result<Trade, Status> {
    let t = load_trade(core, id).await?;
    if t.buyer != user && t.seller != user {
        return Err(Status::not_found(format!("trade {id} not found")));
    }
    Ok(t)
}

/// A page size from a request: 0 means the default; above the configured
/// maximum (SPEC §18) is refused.
///
/// # Errors
/// INVALID_ARGUMENT naming `page_size`.
pub async fn page_size(core: &Core, n: u32) -> Result<usize, Status> {
    let max = core.read().await?.engine().config().page_size_max;
    convert::page_size(n, max)
}

/// Reads a stored attachment's bytes.
///
/// # Errors
/// NOT_FOUND when missing; UNAVAILABLE on storage failure.
pub async fn read_attachment(core: &Core, a: &AttachmentRef) -> Result<pb::Attachment, Status> {
    let w = core.read().await?;
    let data = w
        .store()
        .blob(&a.blob_id)
        .map_err(|e| Status::unavailable(e.to_string()))?
        .ok_or_else(|| Status::not_found("attachment not found"))?;
    Ok(pb::Attachment {
        content_type: a.content_type.clone(),
        file_name: a.file_name.clone(),
        data,
    })
}

/// Longest a stream's token can keep it open (a token far in the future is
/// held to ten years: a timer past that would overflow).
const MAX_STREAM_SECS: u64 = 10 * 365 * 86_400;

/// Releases a stream slot when the stream ends.
struct Slot {
    core: Arc<Core>,
    user: UserId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut n) = self.core.subscribers.get_mut(&self.user) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A stream of events passing `keep`, from after `after_seq`: first what
/// storage holds, then live ones from the bus, with no gap and no repeat.
///
/// # Errors
/// OUT_OF_RANGE when `after_seq` is older than the retained events;
/// RESOURCE_EXHAUSTED past the per-user subscriber limit.
pub async fn event_stream(
    core: Arc<Core>,
    user: UserId,
    expires: u64,
    after_seq: u64,
    keep: impl Fn(&Event) -> bool + Send + Sync + 'static,
) -> Result<ReceiverStream<Result<pb::Event, Status>>, Status> {
    {
        let w = core.read().await?;
        let first = w
            .first_retained_seq()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if after_seq > 0 && after_seq.saturating_add(1) < first {
            return Err(Status::out_of_range(format!(
                "events after {after_seq} are no longer kept (the oldest kept is {first}); re-read your state and resume from the newest sequence"
            )));
        }
        if after_seq > w.engine().last_seq() {
            return Err(Status::out_of_range(format!(
                "after_seq {after_seq} is ahead of the newest event {}",
                w.engine().last_seq()
            )));
        }
    }
    {
        let mut n = core.subscribers.entry(user).or_insert(0);
        let max = core.subscribers_max;
        if *n >= max {
            return Err(Status::resource_exhausted(format!(
                "at most {max} event streams per user; close one first"
            )));
        }
        *n += 1;
    }
    let slot = Slot {
        core: Arc::clone(&core),
        user,
    };
    let mut live = core.bus.subscribe();
    let mut closing = core.closing.subscribe();
    let (tx, rx) = mpsc::channel(256);
    // The token is valid through its `exp` second; the stream ends after it.
    let left = expires
        .saturating_add(1)
        .saturating_sub(crate::auth::now_secs());
    let expiry = tokio::time::sleep(std::time::Duration::from_secs(left.min(MAX_STREAM_SECS)));
    tokio::spawn(async move {
        let _slot = slot;
        tokio::pin!(expiry);
        let mut last = after_seq;
        if backfill(&core, &mut last, &keep, &tx, &mut closing)
            .await
            .is_err()
        {
            return;
        }
        loop {
            // A client that went away (a closed tab, a reload) frees its slot
            // now, not at the next event it would have been sent; shutdown
            // ends every stream, even one opened after it began.
            let next = tokio::select! {
                next = live.recv() => Some(next),
                _ = tx.closed() => return,
                _ = closing.wait_for(|closing| *closing) => return,
                () = &mut expiry => None,
            };
            let Some(next) = next else {
                // Sent after what is queued, so the client learns why (a
                // client that stopped reading does not hold up shutdown).
                let expired = Status::unauthenticated(
                    "the token expired; sign in again and resume after the last sequence received",
                );
                send_unless_closing(&tx, Err(expired), &mut closing).await;
                return;
            };
            match next {
                Ok(e) if e.seq <= last => continue,
                Ok(e) => {
                    if e.seq > last + 1
                        && backfill(&core, &mut last, &keep, &tx, &mut closing)
                            .await
                            .is_err()
                    {
                        return;
                    }
                    if e.seq == last + 1 {
                        last = e.seq;
                        if keep(&e)
                            && !send_unless_closing(&tx, Ok(convert::event_pb(&e)), &mut closing)
                                .await
                        {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if backfill(&core, &mut last, &keep, &tx, &mut closing)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

type Tx = mpsc::Sender<Result<pb::Event, Status>>;

/// Sends `item` unless shutdown begins first: a client that stopped reading
/// does not hold up shutdown. False when it was not sent.
async fn send_unless_closing(
    tx: &Tx,
    item: Result<pb::Event, Status>,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        sent = tx.send(item) => sent.is_ok(),
        _ = closing.wait_for(|closing| *closing) => false,
    }
}

/// Sends stored events after `*last` until storage has no more (or
/// shutdown begins).
async fn backfill(
    core: &Core,
    last: &mut u64,
    keep: &(impl Fn(&Event) -> bool + Send + Sync),
    tx: &Tx,
    closing: &mut watch::Receiver<bool>,
) -> Result<(), ()> {
    loop {
        // The read lock is let go before anything is sent.
        let batch = match core.read().await {
            Ok(w) => w
                .store()
                .events_from(*last + 1, BACKFILL_BATCH)
                .map_err(|e| Status::unavailable(e.to_string())),
            Err(status) => Err(status),
        };
        let batch = match batch {
            Ok(b) => b,
            Err(status) => {
                send_unless_closing(tx, Err(status), closing).await;
                return Err(());
            }
        };
        let n = batch.len();
        for e in batch {
            *last = e.seq;
            if keep(&e) && !send_unless_closing(tx, Ok(convert::event_pb(&e)), closing).await {
                return Err(());
            }
        }
        if n < BACKFILL_BATCH {
            return Ok(());
        }
    }
}
