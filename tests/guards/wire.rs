//! What arrives on the wire but is not the call's message: a request that
//! does not decode is INVALID_ARGUMENT naming the message (SPEC §15), as a
//! fresh client with a wrong or stale `.proto` would send it.

use super::*;

/// `GetTradeRequest`'s field 1 as bytes, so it can hold what a string may
/// not (bytes that are not UTF-8).
#[derive(Clone, PartialEq, prost::Message)]
struct RawTradeId {
    #[prost(bytes = "vec", tag = "1")]
    trade_id: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_does_not_decode_is_invalid_argument() {
    let s = Server::start(&[]).await;
    let channel = s.authed(&token(Uuid::new_v4(), Role::User)).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/otc.v1.TradingService/GetTrade");
    let bad = RawTradeId {
        trade_id: vec![0xff, 0xfe, 0x41],
    };
    let e = grpc
        .unary::<RawTradeId, pb::Trade, _>(
            tonic::Request::new(bad),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("not UTF-8");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("GetTradeRequest") && e.message().contains("not valid protobuf"),
        "the message names what did not decode: {}",
        e.message()
    );
    // The same connection still serves a well-formed call.
    let mut t = s.trading(Uuid::new_v4(), Role::User).await;
    let ok = t.get_account(pb::GetAccountRequest {}).await;
    assert!(ok.is_ok(), "{ok:?}");
}

/// Input far past any bound, echoed in the error: the caller still gets
/// INVALID_ARGUMENT naming the field, in a message clients take whole
/// (grpc-core drops a status whose metadata passes 8 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_field_is_named_in_a_bounded_message() {
    let s = Server::start(&[]).await;
    let mut t = s.trading(Uuid::new_v4(), Role::User).await;
    let mut admin = s.admin().await;
    let check = |what: &str, r: Result<(), tonic::Status>, field: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(e.message().starts_with(field), "{what}: {}", e.message());
        assert!(
            e.message().len() < 1_024,
            "{what}: {} bytes",
            e.message().len()
        );
    };
    let r = t
        .pause_listing(pb::ListingActionRequest {
            request_id: rid(),
            listing_id: "B".repeat(9_000),
        })
        .await;
    check("listing id", r.map(drop), "listing_id");
    let r = t
        .browse_book(pb::BrowseBookRequest {
            asset: "EB".into(),
            fiat: "CNY".into(),
            page_size: 10,
            page_token: "A".repeat(9_000),
        })
        .await;
    check("page token", r.map(drop), "page_token");
    let r = t
        .get_trade(pb::GetTradeRequest {
            trade_id: "中".repeat(9_000),
        })
        .await;
    check("trade id", r.map(drop), "trade_id");
    let r = admin
        .deposit(pb::TransferRequest {
            request_id: rid(),
            user_id: Uuid::new_v4().to_string(),
            asset: "E".repeat(20_000),
            amount: "1".into(),
            external_ref: "x".into(),
        })
        .await;
    check("asset", r.map(drop), "asset");
    // An attachment id of neither form is malformed, not missing.
    let mut cs = s.support(Uuid::new_v4(), Role::Support).await;
    for bad in ["", "E-", "x".repeat(9_000).as_str()] {
        let r = cs
            .get_attachment(pb::GetAttachmentRequest {
                trade_id: "T-1".into(),
                attachment_id: bad.into(),
            })
            .await;
        check("attachment id", r.map(drop), "attachment_id");
    }
}

/// A request message over the server's limit (`--attachment-max` plus
/// 1 MiB) is RESOURCE_EXHAUSTED, as other gRPC servers answer it, naming
/// both sizes; the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_resource_exhausted() {
    let s = Server::start(&["--attachment-max", "64KiB"]).await;
    let mut t = s.trading(Uuid::new_v4(), Role::User).await;
    let limit = 64 * 1024 + 1024 * 1024;
    let e = t
        .get_trade(pb::GetTradeRequest {
            trade_id: "T".repeat(limit + 1),
        })
        .await
        .expect_err("too large");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().starts_with("the request message is 11141")
            && e.message().contains(&format!("limit of {limit} bytes")),
        "{}",
        e.message()
    );
    let r = t
        .get_trade(pb::GetTradeRequest {
            trade_id: "T-1".into(),
        })
        .await;
    assert_eq!(r.expect_err("no such trade").code(), Code::NotFound);
}
