//! The retry check every test in `api_retries.rs` runs on each mutating RPC,
//! and the few helpers it needs.

use std::fmt::Debug;

use crate::harness::{Authed, Server};
use otc_api::auth::Role;
use otc_api::proto as pb;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tonic::{Response, Status};
use uuid::Uuid;

/// Everything a client can see of these users: balances, methods, lock,
/// blocks, and their trades with timelines. A replay must change none of it.
pub async fn observed(s: &Server, users: &[(Uuid, Role)]) -> Vec<String> {
    let mut out = Vec::new();
    for (u, role) in users {
        let mut t = s.trading(*u, *role).await;
        let acc = t
            .get_account(pb::GetAccountRequest {})
            .await
            .expect("account")
            .into_inner();
        out.push(format!("{acc:?}"));
        let trades = t
            .list_my_trades(pb::PageRequest::default())
            .await
            .expect("trades")
            .into_inner();
        out.push(format!("{trades:?}"));
    }
    out
}

pub fn replayed<T>(r: &Result<Response<T>, Status>) -> bool {
    let md = match r {
        Ok(r) => r.metadata(),
        Err(s) => s.metadata(),
    };
    md.get("otc-replayed").is_some_and(|v| v == "true")
}

pub fn same<T: PartialEq + Debug>(
    what: &str,
    first: &Result<Response<T>, Status>,
    again: &Result<Response<T>, Status>,
) {
    match (first, again) {
        (Ok(a), Ok(b)) => assert_eq!(a.get_ref(), b.get_ref(), "{what}: the first reply"),
        (Err(a), Err(b)) => assert_eq!(
            (a.code(), a.message()),
            (b.code(), b.message()),
            "{what}: the first error"
        ),
        _ => panic!("{what}: first {first:?}, retry {again:?}"),
    }
    assert!(replayed(again), "{what}: a retry is marked replayed");
}

/// Sends `$req`, then again: the identical first result, marked replayed,
/// and no change. With `$other`, then sends that with the same id: ALREADY_EXISTS.
macro_rules! check {
    ($s:expr, $users:expr, $client:expr, $rpc:ident, $req:expr) => {{
        let req = $req;
        let first = $client.$rpc(req.clone()).await;
        assert!(
            !crate::check::replayed(&first),
            "{}: a first call is not a replay",
            stringify!($rpc)
        );
        let before = crate::check::observed($s, $users).await;
        let again = $client.$rpc(req.clone()).await;
        crate::check::same(stringify!($rpc), &first, &again);
        assert_eq!(
            before,
            crate::check::observed($s, $users).await,
            "{}: a retry changes nothing",
            stringify!($rpc)
        );
        (req, first.map(::tonic::Response::into_inner))
    }};
    ($s:expr, $users:expr, $client:expr, $rpc:ident, $req:expr, $other:expr) => {{
        let (req, first) = crate::check::check!($s, $users, $client, $rpc, $req);
        let mut other = $other;
        other.request_id = req.request_id.clone();
        let conflict = $client.$rpc(other).await;
        assert_eq!(
            conflict.as_ref().err().map(::tonic::Status::code),
            Some(::tonic::Code::AlreadyExists),
            "{}: same id, other fields",
            stringify!($rpc)
        );
        first
    }};
}

pub fn file(name: &str, byte: u8) -> pb::Attachment {
    pb::Attachment {
        content_type: "image/png".into(),
        file_name: name.into(),
        data: [crate::harness::PNG_HEAD, &[byte; 4088]].concat(),
    }
}

pub async fn trader(s: &Server, u: Uuid) -> TradingServiceClient<Authed> {
    s.trading(u, Role::User).await
}

/// The user behind a trading client.
pub async fn user_of(mut t: TradingServiceClient<Authed>) -> Uuid {
    let acc = t
        .get_account(pb::GetAccountRequest {})
        .await
        .expect("account")
        .into_inner();
    Uuid::parse_str(&acc.user_id).expect("uuid")
}

pub(crate) use check;
