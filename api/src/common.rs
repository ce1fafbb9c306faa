//! Helpers every service uses: role checks, reading trades with
//! visibility rules, and attachments. Event streams: `streams.rs`.

use otc_engine::command::AttachmentRef;
use otc_engine::trade::Trade;
use otc_engine::{TradeId, UserId};
use tonic::Status;

use crate::auth::{Caller, Role};
use crate::convert;
use crate::core::Core;
use crate::proto as pb;

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
