//! One pipeline for every mutating RPC (SPEC §14, §15):
//!
//! 1. **authenticate** (the handler, with [`crate::common::caller`]);
//! 2. **look the request id up** before any other work: the key is (caller,
//!    request id), the fingerprint a canonical form of the request *as the
//!    client sent it* (its protobuf encoding without `request_id`, which
//!    prost writes in field order). The same fingerprint gets the stored
//!    first reply, the whole message; another gets ALREADY_EXISTS.
//!    Passwords are taken out of the request before it is encoded: the
//!    fingerprint is a fast hash kept on disk for a day, and must not let
//!    anyone test guesses at a password without argon2. They count through
//!    [`crate::passwords::FundPasswords::print_tag`], a keyed tag, so the
//!    same id with another password is refused as any other change is;
//! 3. **convert** the request into a command (`prepare`: field checks that
//!    need no state, argon2, reading a file's bytes);
//! 4. **submit** it to the writer with the bytes of any attachment, which
//!    the writer stores in the same commit only if the command is applied,
//!    and the ticket of a fund password argon2 matched, remembered only if
//!    the command is applied (see [`crate::passwords`]);
//! 5. **view**: the writer renders the reply with [`crate::views::render`]
//!    right after applying, from the state the command left, and stores it
//!    with the commit; the handler decodes what the writer returns.
//!
//! A replayed reply carries the response header `otc-replayed: true`.

use std::future::Future;

use otc_engine::command::FundPasswordProof;
use otc_engine::{Command, UserId};
use otc_storage::{Call, Earlier, Outcome};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Code, Response, Status};

use crate::convert::request_id;
use crate::core::Core;
use crate::passwords::Matched;

/// The response header that marks a replayed first reply.
pub const REPLAYED_HEADER: &str = "otc-replayed";

/// What `prepare` hands the writer.
pub struct Prepared {
    /// The command.
    pub command: Command,
    /// Bytes of the file the command's attachment references.
    pub attachment: Option<Vec<u8>>,
    /// The fund password argon2 matched for the command's verdict, to
    /// remember once the command is applied (see [`crate::passwords`]).
    pub password: Option<Matched>,
    /// The room the gate reserved for the request that brought the
    /// attachment: kept until the writer is done with it ([`crate::gate`]).
    pub hold: Option<crate::gate::Hold>,
}

impl From<Command> for Prepared {
    fn from(command: Command) -> Self {
        Self {
            command,
            attachment: None,
            password: None,
            hold: None,
        }
    }
}

impl Prepared {
    /// With the ticket of the password its verdict came from, if any.
    #[must_use]
    pub fn with_password(mut self, password: Option<Matched>) -> Self {
        self.password = password;
        self
    }
}

/// A client request carrying a request id (every mutating RPC's).
pub trait ClientRequest: Message {
    /// Takes the request id out, leaving the rest to fingerprint.
    fn take_request_id(&mut self) -> String;
}

macro_rules! client_requests {
    ($($t:ident),* $(,)?) => {
        $(impl ClientRequest for crate::proto::$t {
            fn take_request_id(&mut self) -> String {
                std::mem::take(&mut self.request_id)
            }
        })*
    };
}

client_requests!(
    BindPaymentMethodRequest,
    RemovePaymentMethodRequest,
    SetFundPasswordRequest,
    BlockUserRequest,
    PublishListingRequest,
    ListingActionRequest,
    PlaceBuyRequest,
    CancelBuyOrderRequest,
    FastSellRequest,
    TradeActionRequest,
    ReleaseRequest,
    OpenAppealRequest,
    AddEvidenceRequest,
    SendChatRequest,
    SetCapacityRequest,
    SetOnlineRequest,
    AppealActionRequest,
    ResolveAppealRequest,
    TransferRequest,
    RegisterMerchantRequest,
    AssignChannelRequest,
    ResolveAnomalyRequest,
    SetReferencePriceRequest,
    HandleMistakeRequest,
);

/// A request for a command the fund password protects (SPEC §6).
pub trait ProtectedRequest: ClientRequest {
    /// Takes the fund password out, leaving the rest to fingerprint.
    fn take_fund_password(&mut self) -> String;
}

macro_rules! protected_requests {
    ($($t:ident),* $(,)?) => {
        $(impl ProtectedRequest for crate::proto::$t {
            fn take_fund_password(&mut self) -> String {
                std::mem::take(&mut self.fund_password)
            }
        })*
    };
}

protected_requests!(PublishListingRequest, FastSellRequest, ReleaseRequest);

/// [`mutate`] for a request whose conversion needs no await: `make` builds
/// the command from the request (its request id already taken out).
///
/// # Errors
/// As [`mutate`].
pub async fn command<Req, Resp>(
    core: &Core,
    caller: UserId,
    method: &'static str,
    mut request: Req,
    make: impl FnOnce(&Req) -> Result<Command, Status>,
) -> Result<Response<Resp>, Status>
where
    Req: ClientRequest,
    Resp: Message + Default,
{
    let rid = request.take_request_id();
    mutate(core, caller, method, &rid, &request, async {
        make(&request).map(Prepared::from)
    })
    .await
}

/// [`command`] for a command the fund password protects (SPEC §6). The
/// password, taken out of the request, counts in the
/// fingerprint only through its keyed tag. `convert` checks the rest first
/// (malformed input spends no argon2); then the password is checked off the
/// writer and its proof completes the command, and a password the user's
/// hash matched is remembered after the commit.
///
/// # Errors
/// As [`mutate`]; INVALID_ARGUMENT for a missing password.
pub async fn protected_command<Req, Resp, Build>(
    core: &Core,
    caller: UserId,
    method: &'static str,
    mut request: Req,
    convert: impl FnOnce(&Req) -> Result<Build, Status>,
) -> Result<Response<Resp>, Status>
where
    Req: ProtectedRequest,
    Resp: Message + Default,
    Build: FnOnce(FundPasswordProof) -> Command,
{
    let rid = request.take_request_id();
    let fund_password = request.take_fund_password();
    let passwords = [fund_password.as_str()];
    mutate_with_passwords(core, caller, method, &rid, &request, &passwords, async {
        let build = convert(&request)?;
        let given = crate::requests::password("fund_password", &fund_password)?;
        let checked = core.check_password(caller, given).await?;
        Ok(Prepared::from(build(checked.proof)).with_password(checked.matched))
    })
    .await
}

/// The fingerprint of a request as the client sent it: `method` and the
/// message's encoding (its `request_id` already taken out).
pub fn fingerprint(method: &str, request: &impl Message) -> u64 {
    fingerprint_tagged(method, request, None)
}

/// [`fingerprint`], with the keyed tag of the passwords taken out of
/// `request` (see [`crate::passwords::FundPasswords::print_tag`]).
fn fingerprint_tagged(method: &str, request: &impl Message, tag: Option<&[u8; 32]>) -> u64 {
    let mut bytes = Vec::with_capacity(method.len() + 33 + request.encoded_len());
    bytes.extend_from_slice(method.as_bytes());
    bytes.push(0);
    request.encode_raw(&mut bytes);
    if let Some(tag) = tag {
        bytes.extend_from_slice(tag);
    }
    otc_storage::writer::idem::fnv1a(&bytes)
}

/// Runs one mutating call through the pipeline (see the module docs).
/// `request` is the client's message with its `request_id` taken out
/// (`rid`); `prepare` converts it once no committed group is known to
/// have used the id (a retry racing its first use, still in flight or just
/// answered, runs `prepare` too; the writer then answers it the first
/// reply without applying it).
///
/// # Errors
/// INVALID_ARGUMENT for a bad request id or field; ALREADY_EXISTS for a
/// reused id; whatever the first reply was, for a retry; UNAVAILABLE or
/// RESOURCE_EXHAUSTED from the writer.
pub async fn mutate<Req, Resp, F>(
    core: &Core,
    caller: UserId,
    method: &'static str,
    rid: &str,
    request: &Req,
    prepare: F,
) -> Result<Response<Resp>, Status>
where
    Req: Message,
    Resp: Message + Default,
    F: Future<Output = Result<Prepared, Status>>,
{
    mutate_with_passwords(core, caller, method, rid, request, &[], prepare).await
}

/// [`mutate`] for a request whose `passwords` were taken out of `request`:
/// they count in its fingerprint through a keyed tag, so a retry with
/// another password is refused as one with any other field is.
///
/// # Errors
/// As [`mutate`].
pub async fn mutate_with_passwords<Req, Resp, F>(
    core: &Core,
    caller: UserId,
    method: &'static str,
    rid: &str,
    request: &Req,
    passwords: &[&str],
    prepare: F,
) -> Result<Response<Resp>, Status>
where
    Req: Message,
    Resp: Message + Default,
    F: Future<Output = Result<Prepared, Status>>,
{
    let rid = request_id(rid)?;
    let tag = (!passwords.is_empty()).then(|| core.passwords.print_tag(method, passwords));
    let print = fingerprint_tagged(method, request, tag.as_ref());
    // An id no committed group used needs no look under the writer's lock
    // (which it holds through each commit); a first use still in flight is
    // caught by the writer, which checks every request.
    let earlier = if core.known_ids.contains(caller, &rid) {
        // Replay or conflict must not become a free test of passwords.
        let retries = &core.passwords.retries;
        if tag.is_some()
            && let Some(left) = retries.locked_for(caller, std::time::Instant::now())
        {
            return Err(Status::failed_precondition(format!(
                "request ids were retried with other passwords too often; try again in {} s",
                left.as_secs().max(1)
            )));
        }
        let w = core.read().await?;
        // Nor while the engine has the user locked out for wrong passwords.
        if tag.is_some()
            && let Some(until) = w
                .engine()
                .user(caller)
                .and_then(|u| u.lock_at(crate::core::clock_now()))
        {
            return Err(crate::convert::status_of(
                &otc_engine::Rejection::FundPasswordLocked { until },
            ));
        }
        let earlier = w
            .earlier(caller, &rid, print)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        drop(w);
        if tag.is_some() && matches!(earlier, Some(Earlier::Conflict)) {
            retries.note(caller, std::time::Instant::now());
        }
        earlier
    } else {
        None
    };
    if let Some(earlier) = earlier {
        return replay(earlier);
    }
    let prepared = prepare.await?;
    let call = Call {
        caller,
        fingerprint: print,
        attachment: prepared.attachment,
    };
    let done = core
        .submit_with(
            Some(rid),
            prepared.command,
            Some(call),
            prepared.password,
            prepared.hold,
        )
        .await?;
    match done.outcome {
        Outcome::IdConflict => {
            // The id's first use was committed while this one was prepared
            // (its id not yet among the known ones): it counts as above.
            if tag.is_some() {
                core.passwords
                    .retries
                    .note(caller, std::time::Instant::now());
            }
            Err(id_conflict())
        }
        // Two tries of one id raced; the second got the first's reply.
        Outcome::Repeated(first, _) => replay(Earlier::Same(first, done.reply)),
        Outcome::Applied(_) | Outcome::Rejected(_) => match done.reply {
            Some(bytes) => decode_reply(&bytes).map(Response::new),
            None => Err(Status::internal("the writer rendered no reply")),
        },
    }
}

fn id_conflict() -> Status {
    Status::already_exists(
        "request_id was already used with other parameters; use a new request_id for a new request",
    )
}

fn replay<Resp: Message + Default>(earlier: Earlier) -> Result<Response<Resp>, Status> {
    match earlier {
        Earlier::Conflict => Err(id_conflict()),
        Earlier::Same(_, Some(bytes)) => {
            let mut reply = decode_reply(&bytes).map(Response::new);
            let metadata = match &mut reply {
                Ok(r) => r.metadata_mut(),
                Err(s) => s.metadata_mut(),
            };
            metadata.insert(REPLAYED_HEADER, MetadataValue::from_static("true"));
            reply
        }
        Earlier::Same(_, None) => Err(Status::internal(
            "this request id's first reply was not stored; use a new request_id",
        )),
    }
}

/// Encodes a reply for storage: `0` + the message, or `1` + the status
/// code (4 bytes, little-endian) + the message text.
pub fn encode_reply<Resp: Message>(reply: Result<Resp, Status>) -> Vec<u8> {
    match reply {
        Ok(m) => {
            let mut out = Vec::with_capacity(1 + m.encoded_len());
            out.push(0);
            m.encode_raw(&mut out);
            out
        }
        Err(s) => {
            let mut out = vec![1];
            out.extend_from_slice(&(s.code() as i32).to_le_bytes());
            out.extend_from_slice(s.message().as_bytes());
            out
        }
    }
}

/// Decodes a stored reply.
///
/// # Errors
/// The stored status; INTERNAL if the bytes are not a reply.
pub fn decode_reply<Resp: Message + Default>(bytes: &[u8]) -> Result<Resp, Status> {
    match bytes.split_first() {
        Some((0, body)) => Resp::decode(body)
            .map_err(|e| Status::internal(format!("stored reply does not decode: {e}"))),
        Some((1, rest)) if rest.len() >= 4 => {
            let (code, msg) = rest.split_at(4);
            let code = i32::from_le_bytes([code[0], code[1], code[2], code[3]]);
            Err(Status::new(
                Code::from_i32(code),
                String::from_utf8_lossy(msg).into_owned(),
            ))
        }
        _ => Err(Status::internal("stored reply is damaged")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto as pb;

    #[test]
    fn replies_round_trip() {
        let r = pb::Receipt {
            first_seq: 3,
            last_seq: 9,
        };
        let back: pb::Receipt = decode_reply(&encode_reply(Ok(r))).unwrap();
        assert_eq!(back, r);
        let err = decode_reply::<pb::Receipt>(&encode_reply::<pb::Receipt>(Err(
            Status::failed_precondition("wrong fund password (1 wrong in a row)"),
        )))
        .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(err.message(), "wrong fund password (1 wrong in a row)");
        assert!(decode_reply::<pb::Receipt>(&[7]).is_err());
    }

    #[test]
    fn fingerprints_ignore_nothing_but_the_request_id() {
        let a = pb::BlockUserRequest {
            request_id: String::new(),
            user_id: "x".into(),
        };
        let mut b = a.clone();
        assert_eq!(fingerprint("Block", &a), fingerprint("Block", &b));
        assert_ne!(fingerprint("Block", &a), fingerprint("Unblock", &a));
        b.user_id = "y".into();
        assert_ne!(fingerprint("Block", &a), fingerprint("Block", &b));
    }
}
