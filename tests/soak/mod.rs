//! The kill -9 soak's pieces (`tests/api_soak.rs` drives the rounds): a
//! seeded random source, the record of every acknowledged call, and the
//! replay that re-sends one and compares the answer with the first.

pub mod actors;
pub mod checks;
pub mod desk;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use otc_api::auth::Role;
use otc_api::client::{Authed, authed};
use otc_api::proto as pb;
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::support_service_client::SupportServiceClient;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};
use uuid::Uuid;

use crate::harness::token;

/// Longest a call may take before the client gives up on it (the server is
/// on loopback; a call this slow means it is gone or stuck).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// splitmix64: small, seedable, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source for `parts` of the run (seed, round, actor, …).
    pub fn new(parts: &[u64]) -> Rng {
        Rng(parts
            .iter()
            .fold(0x5eed_0f50_a4c3_u64, |acc, p| mix(acc ^ p)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }

    /// A version-4 UUID from the stream (deterministic per seed).
    pub fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// An amount of coin with two decimals in `lo_cents..=hi_cents`.
    pub fn coin(&mut self, lo_cents: u64, hi_cents: u64) -> String {
        let c = self.range(lo_cents, hi_cents);
        format!("{}.{:02}", c / 100, c % 100)
    }
}

/// splitmix64's finalizer.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fresh request ids for one actor in one round: `<prefix>-<n>`, where the
/// prefix names seed, epoch, round and actor, so a failure names the call.
#[derive(Debug, Clone)]
pub struct Ids {
    prefix: String,
    n: u64,
}

impl Ids {
    /// Ids of `actor` in `round` of `epoch`.
    pub fn new(seed: u64, epoch: u32, round: u32, actor: &str) -> Ids {
        Ids {
            prefix: format!("soak-{seed:x}-e{epoch}-r{round}-{actor}"),
            n: 0,
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        self.n += 1;
        format!("{}-{}", self.prefix, self.n)
    }
}

/// The role a recorded call was made in (request ids are scoped by caller,
/// so a retry must come from the same user; the role picks the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum As {
    /// A trader (`Role::User`).
    User,
    /// Customer service (`Role::Support`).
    Support,
    /// The back office (`Role::Admin`).
    Admin,
}

/// Who made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Who {
    /// The token's subject.
    pub user: Uuid,
    /// The token's role.
    pub role: As,
}

impl Who {
    /// A trader.
    pub fn user(user: Uuid) -> Who {
        Who {
            user,
            role: As::User,
        }
    }

    /// The role as the token says it.
    pub fn token_role(self) -> Role {
        match self.role {
            As::User => Role::User,
            As::Support => Role::Support,
            As::Admin => Role::Admin,
        }
    }
}

/// Service clients for any caller over one connection, tokens minted once.
#[derive(Clone)]
pub struct Clients {
    channel: Channel,
    tokens: HashMap<Who, String>,
}

impl Clients {
    /// Connects to `url`.
    ///
    /// # Errors
    /// When the server cannot be reached (it may have just been killed).
    pub async fn connect(url: &str) -> Result<Clients, String> {
        let channel = otc_api::client::connect(url, Some(Duration::from_secs(5)))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Clients {
            channel,
            tokens: HashMap::new(),
        })
    }

    fn authed(&mut self, who: Who) -> Authed {
        let token = self
            .tokens
            .entry(who)
            .or_insert_with(|| token(who.user, who.token_role()));
        authed(self.channel.clone(), token).expect("a minted token is header text")
    }

    /// The trading service as `who`.
    pub fn trading(&mut self, who: Who) -> TradingServiceClient<Authed> {
        TradingServiceClient::new(self.authed(who))
    }

    /// The support service as `who`.
    pub fn support(&mut self, who: Who) -> SupportServiceClient<Authed> {
        SupportServiceClient::new(self.authed(who))
    }

    /// The admin service as `who`.
    pub fn admin(&mut self, who: Who) -> AdminServiceClient<Authed> {
        AdminServiceClient::new(self.authed(who))
    }
}

/// What the server answered first: the message, or the status (code and
/// text) of a refusal, which is a first result too (SPEC §14).
pub type Reply<T> = Result<T, (Code, String)>;

/// Generates [`Call`], one variant per mutating RPC the soak makes (the
/// request as sent and the first reply), and [`replay_one`], which re-sends
/// it through the right service.
macro_rules! calls {
    ($($variant:ident: $svc:ident.$method:ident($req:ty) -> $resp:ty;)*) => {
        /// One acknowledged mutating call: the request and its first reply.
        #[derive(Debug, Clone)]
        pub enum Call {
            $(
                #[doc = concat!("`", stringify!($method), "`.")]
                $variant($req, Reply<$resp>),
            )*
        }

        impl Call {
            /// The RPC's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Call::$variant(..) => stringify!($variant),)*
                }
            }

            /// The request id it carried.
            pub fn request_id(&self) -> &str {
                match self {
                    $(Call::$variant(r, _) => &r.request_id,)*
                }
            }

            /// Whether the first reply was a refusal.
            pub fn refused(&self) -> bool {
                self.refusal().is_some()
            }

            /// The first reply's status, when it was a refusal.
            pub fn refusal(&self) -> Option<(Code, &str)> {
                match self {
                    $(Call::$variant(_, r) => r.as_ref().err().map(|(c, m)| (*c, m.as_str())),)*
                }
            }
        }

        /// Re-sends `call` as `who` and compares the answer with the first.
        ///
        /// # Errors
        /// What differs: no replay marker, another message, another status.
        pub async fn replay_one(c: &mut Clients, who: Who, call: &Call) -> Result<(), String> {
            match call {
                $(Call::$variant(req, first) => {
                    let again = within(c.$svc(who).$method(req.clone())).await;
                    compare(first, again)
                })*
            }
        }
    };
}

calls! {
    Deposit: admin.deposit(pb::TransferRequest) -> pb::TransferResponse;
    Withdraw: admin.withdraw(pb::TransferRequest) -> pb::TransferResponse;
    BindPaymentMethod: trading.bind_payment_method(pb::BindPaymentMethodRequest)
        -> pb::BindPaymentMethodResponse;
    SetFundPassword: trading.set_fund_password(pb::SetFundPasswordRequest) -> pb::Receipt;
    BlockUser: trading.block_user(pb::BlockUserRequest) -> pb::Receipt;
    PublishListing: trading.publish_listing(pb::PublishListingRequest) -> pb::ListingResponse;
    PauseListing: trading.pause_listing(pb::ListingActionRequest) -> pb::ListingResponse;
    ResumeListing: trading.resume_listing(pb::ListingActionRequest) -> pb::ListingResponse;
    CancelListing: trading.cancel_listing(pb::ListingActionRequest) -> pb::ListingResponse;
    PlaceBuy: trading.place_buy(pb::PlaceBuyRequest) -> pb::PlaceBuyResponse;
    MarkPaid: trading.mark_paid(pb::TradeActionRequest) -> pb::TradeResponse;
    CancelTrade: trading.cancel_trade(pb::TradeActionRequest) -> pb::TradeResponse;
    Release: trading.release(pb::ReleaseRequest) -> pb::TradeResponse;
    OpenAppeal: trading.open_appeal(pb::OpenAppealRequest) -> pb::TradeResponse;
    AddEvidence: trading.add_evidence(pb::AddEvidenceRequest) -> pb::AddEvidenceResponse;
    SendChat: trading.send_chat(pb::SendChatRequest) -> pb::Receipt;
    ClaimAppeal: support.claim_appeal(pb::AppealActionRequest) -> pb::Appeal;
    UnclaimAppeal: support.unclaim_appeal(pb::AppealActionRequest) -> pb::Appeal;
    ResolveAppeal: support.resolve_appeal(pb::ResolveAppealRequest) -> pb::Appeal;
}

/// One acknowledged call, as recorded.
#[derive(Debug, Clone)]
pub struct Acked {
    /// The round it was made in.
    pub round: u32,
    /// Its caller.
    pub who: Who,
    /// Request and first reply.
    pub call: Call,
}

/// Whether a reply carries the replay marker.
pub fn replayed(md: &tonic::metadata::MetadataMap) -> bool {
    md.get(otc_api::pipeline::REPLAYED_HEADER)
        .is_some_and(|v| v == "true")
}

/// Statuses that mean the server is gone (or never answered), not that it
/// refused: the client stops on the first one. Refusals (FAILED_PRECONDITION,
/// NOT_FOUND, …) are answers, recorded and replayed like messages.
pub fn is_transport(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Internal
    )
}

/// `fut` with [`CALL_TIMEOUT`]; a timeout reads as DEADLINE_EXCEEDED.
pub async fn within<T>(
    fut: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "no answer within the call timeout",
            ))
        })
}

fn compare<T: PartialEq + Debug>(
    first: &Reply<T>,
    again: Result<Response<T>, Status>,
) -> Result<(), String> {
    let (marked, got): (bool, Reply<T>) = match again {
        Ok(r) => (replayed(r.metadata()), Ok(r.into_inner())),
        Err(s) => (
            replayed(s.metadata()),
            Err((s.code(), s.message().to_owned())),
        ),
    };
    if !marked {
        return Err(format!(
            "the retry was not answered as a replay (the first call is lost?)\n  first: {first:?}\n  retry: {got:?}"
        ));
    }
    if got != *first {
        return Err(format!(
            "the replay differs from the first reply\n  first: {first:?}\n  retry: {got:?}"
        ));
    }
    Ok(())
}

/// What one call came to, for the actor that made it.
pub enum Got<T> {
    /// Answered with a message (recorded).
    Ok(T),
    /// Answered with a refusal (recorded).
    Refused(Status),
    /// No answer: the server is gone. The actor stops.
    Down(Status),
}

/// The acknowledged calls of one actor in one round.
pub struct Log {
    /// The round.
    pub round: u32,
    /// The calls, in the order their replies arrived.
    pub acked: Vec<Acked>,
    /// Σ amounts of every deposit sent, answered or not (the most the
    /// ledger may have taken in).
    pub sent_deposits: rust_decimal::Decimal,
    /// Σ amounts of every withdrawal sent, answered or not.
    pub sent_withdrawals: rust_decimal::Decimal,
}

impl Log {
    /// An empty log for `round`.
    pub fn new(round: u32) -> Log {
        Log {
            round,
            acked: Vec::new(),
            sent_deposits: rust_decimal::Decimal::ZERO,
            sent_withdrawals: rust_decimal::Decimal::ZERO,
        }
    }

    /// Awaits `fut` (the call of `req` as `who`) and records the answer, if
    /// one came, with `wrap` naming the RPC.
    pub async fn send<Req, Resp: Clone>(
        &mut self,
        who: Who,
        req: Req,
        wrap: fn(Req, Reply<Resp>) -> Call,
        fut: impl Future<Output = Result<Response<Resp>, Status>>,
    ) -> Got<Resp> {
        let answer = within(fut).await;
        let (got, reply) = match answer {
            Ok(r) => {
                assert!(
                    !replayed(r.metadata()),
                    "a first call was answered as a replay: {}",
                    wrap(req, Err((Code::Ok, String::new()))).request_id()
                );
                let m = r.into_inner();
                (Got::Ok(m.clone()), Ok(m))
            }
            Err(s) if is_transport(&s) => return Got::Down(s),
            Err(s) => {
                let reply = Err((s.code(), s.message().to_owned()));
                (Got::Refused(s), reply)
            }
        };
        self.acked.push(Acked {
            round: self.round,
            who,
            call: wrap(req, reply),
        });
        got
    }
}
