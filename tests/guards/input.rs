//! Bad input gets its status and changes nothing (SPEC §3, §15), fields
//! named as the proto names them, reflection, and limits that follow the
//! server's settings.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_status_and_changes_nothing() {
    let s = Server::start(&[]).await;
    let seller_id = Uuid::new_v4();
    let (mut t, method) = seller(&s, seller_id, "100").await;
    let before = t
        .get_account(pb::GetAccountRequest {})
        .await
        .unwrap()
        .into_inner();
    let bad_amounts = [
        "abc",
        "-1",
        "0",
        "1e5",
        "0.000000001",
        " 1",
        "1,5",
        "999999999999",
        "",
    ];
    for total in bad_amounts {
        let e = t
            .publish_listing(listing(&method, "7", total, "7", "700", 0))
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Code::InvalidArgument,
            "total {total:?}: {}",
            e.message()
        );
        assert!(
            e.message().contains("total"),
            "the message names the field: {}",
            e.message()
        );
        if total.starts_with('-') {
            assert!(
                e.message().contains("greater than zero"),
                "a negative amount is told what is wrong with it: {}",
                e.message()
            );
        }
    }
    let cases: Vec<(pb::PublishListingRequest, &str)> = vec![
        (listing(&method, "7.123456", "1", "7", "700", 0), "price"),
        (listing(&method, "7", "1", "7.001", "700", 0), "min_fiat"),
        (
            listing(&method, "7", "1", "7", "700", 99_999),
            "payment_window",
        ),
        (
            pb::PublishListingRequest {
                asset: "doge!".into(),
                ..listing(&method, "7", "1", "7", "700", 0)
            },
            "asset",
        ),
        (
            pb::PublishListingRequest {
                request_id: String::new(),
                ..listing(&method, "7", "1", "7", "700", 0)
            },
            "request_id",
        ),
        (
            pb::PublishListingRequest {
                fund_password: "p".repeat(129),
                ..listing(&method, "7", "1", "7", "700", 0)
            },
            "fund_password",
        ),
    ];
    for (req, field) in cases {
        let e = t.publish_listing(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {}", e.message());
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let e = t
        .bind_payment_method(pb::BindPaymentMethodRequest {
            request_id: rid(),
            kind: 99,
            holder: "x".into(),
            bank: String::new(),
            account: "y".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "unknown enum");
    let e = t
        .place_buy(pb::PlaceBuyRequest {
            fiat_amount: "10.001".into(),
            ..buy("")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = t
        .place_buy(pb::PlaceBuyRequest {
            fiat_amount: "10".into(),
            ..buy("1")
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("exactly one"), "{}", e.message());
    let e = t
        .get_trade(pb::GetTradeRequest {
            trade_id: "banana".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = t
        .get_trade(pb::GetTradeRequest {
            trade_id: "T-999999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mut admin = s.admin().await;
    let e = admin
        .deposit(pb::TransferRequest {
            request_id: rid(),
            user_id: "not-a-uuid".into(),
            asset: "EB".into(),
            amount: "1".into(),
            external_ref: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut cs = s.support(Uuid::new_v4(), Role::Support).await;
    let e = cs
        .resolve_appeal(pb::ResolveAppealRequest {
            request_id: rid(),
            trade_id: "T-1".into(),
            resolution: 99,
            note: "n".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // An oversize attachment (5 MiB + 1) on a real appeal.
    let buyer_id = Uuid::new_v4();
    publish(&mut t, listing(&method, "7", "10", "7", "700", 0)).await;
    let mut buyer = s.trading(buyer_id, Role::User).await;
    let trade = bought(&mut buyer, "2").await;
    let e = buyer
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            text: String::new(),
            attachment: Some(pb::Attachment {
                content_type: "image/png".into(),
                file_name: "big.png".into(),
                data: [
                    crate::harness::PNG_HEAD,
                    &vec![0; 5 * 1024 * 1024 + 1 - crate::harness::PNG_HEAD.len()],
                ]
                .concat(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    let e = buyer
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade,
            text: String::new(),
            attachment: Some(pb::Attachment {
                content_type: "text/html".into(),
                file_name: "x.html".into(),
                data: vec![1],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Nothing above changed the seller's account except the one listing.
    let after = t
        .get_account(pb::GetAccountRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.methods, after.methods);
    let eb = |a: &pb::GetAccountResponse| {
        a.balances
            .iter()
            .find(|b| b.asset == "EB")
            .cloned()
            .unwrap()
    };
    assert_eq!(eb(&after).available, "90");
    assert_eq!(eb(&before).available, "100");
    let listings = t
        .list_my_listings(pb::PageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .listings;
    assert_eq!(listings.len(), 1, "only the valid listing exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let s = Server::start(&[]).await;
    let mut r = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("no list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "otc.v1.TradingService",
        "otc.v1.SupportService",
        "otc.v1.AdminService",
        "otc.v1.MerchantService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaReq;
    let mut r = Alpha::new(s.channel().await);
    let req = AlphaRequest {
        host: String::new(),
        message_request: Some(AlphaReq::ListServices(String::new())),
    };
    let mut stream = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        stream.message().await.unwrap().is_some(),
        "v1alpha answers too (for common grpcurl builds)"
    );
}

/// Every bad field is named as the proto names it, for checks made in the
/// API (shape) and in the engine (values) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fields_are_named_as_the_proto_names_them() {
    let s = Server::start(&[]).await;
    let (mut t, method) = seller(&s, Uuid::new_v4(), "100").await;
    let mut buyer = s.trading(Uuid::new_v4(), Role::User).await;
    let expect = |what: &str, r: Result<(), tonic::Status>, field: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {}", e.message());
        assert!(
            e.message().contains(field),
            "{what}: the message names {field}: {}",
            e.message()
        );
    };
    let r = buyer.place_buy(buy("0.000000001")).await.map(|_| ());
    expect("buy coin", r, "coin_amount");
    let r = buyer
        .place_buy(pb::PlaceBuyRequest {
            coin_amount: String::new(),
            fiat_amount: "-3".into(),
            ..buy("1")
        })
        .await
        .map(|_| ());
    expect("buy fiat", r, "fiat_amount");
    let r = buyer
        .place_buy(pb::PlaceBuyRequest {
            rest: true,
            rest_secs: 999_999_999,
            ..buy("1")
        })
        .await
        .map(|_| ());
    expect("rest", r, "rest_secs");
    let r = buyer
        .place_buy(pb::PlaceBuyRequest {
            rest_secs: 60,
            ..buy("1")
        })
        .await
        .map(|_| ());
    expect("rest_secs without rest", r, "rest_secs");
    // A field the method's kind has no use for is refused, never dropped.
    let bind = |kind: pb::PaymentKind| pb::BindPaymentMethodRequest {
        request_id: rid(),
        kind: kind as i32,
        holder: "Li".into(),
        account: "li@example.com".into(),
        ..Default::default()
    };
    for (label, req, field) in [
        (
            "bank on alipay",
            pb::BindPaymentMethodRequest {
                bank: "ICBC".into(),
                ..bind(pb::PaymentKind::Alipay)
            },
            "bank",
        ),
        (
            "channel on wechat",
            pb::BindPaymentMethodRequest {
                channel: "sandbox-hmac".into(),
                ..bind(pb::PaymentKind::Wechat)
            },
            "channel",
        ),
        (
            "holder on channel",
            bind(pb::PaymentKind::Channel),
            "holder",
        ),
    ] {
        let r = t.bind_payment_method(req).await.map(|_| ());
        expect(label, r, field);
    }
    let r = t
        .fast_sell(pb::FastSellRequest {
            request_id: rid(),
            asset: "EB".into(),
            fiat: "CNY".into(),
            coin_amount: "1.123456789".into(),
            method_id: method.clone(),
            fund_password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .map(|_| ());
    expect("fast sell", r, "coin_amount");
    let r = t
        .bind_payment_method(pb::BindPaymentMethodRequest {
            request_id: rid(),
            kind: pb::PaymentKind::Bank as i32,
            holder: "Li".into(),
            bank: "ICBC".into(),
            account: "12ab".into(),
            ..Default::default()
        })
        .await
        .map(|_| ());
    expect("bank card", r, "account");
    let r = t
        .publish_listing(pb::PublishListingRequest {
            method_ids: vec!["nope".into()],
            ..listing(&method, "7", "1", "7", "700", 0)
        })
        .await
        .map(|_| ());
    expect("method ids", r, "method_ids");
    let r = t
        .publish_listing(listing(&method, "7", "1", "7", "700", 99_999))
        .await
        .map(|_| ());
    expect("window", r, "payment_window_secs");
    let r = t
        .set_fund_password(pb::SetFundPasswordRequest {
            request_id: rid(),
            new_password: "x".into(),
            current_password: String::new(),
        })
        .await
        .map(|_| ());
    expect("password", r, "new_password");
    let r = t
        .publish_listing(pb::PublishListingRequest {
            fund_password: String::new(),
            ..listing(&method, "7", "1", "7", "700", 0)
        })
        .await
        .map(|_| ());
    expect("fund password", r, "fund_password");
    // Control characters (a terminal's cursor moves, a C string's end) are
    // refused in what is stored; lines pass in free text.
    let r = t
        .bind_payment_method(pb::BindPaymentMethodRequest {
            holder: "Li\u{0}".into(),
            ..bind(pb::PaymentKind::Alipay)
        })
        .await
        .map(|_| ());
    expect("NUL in a holder", r, "holder");
    let r = t
        .publish_listing(pb::PublishListingRequest {
            terms: "pay \u{1b}[8mhidden".into(),
            ..listing(&method, "7", "1", "7", "700", 0)
        })
        .await
        .map(|_| ());
    expect("ESC in terms", r, "terms");
    let r = t
        .bind_payment_method(pb::BindPaymentMethodRequest {
            request_id: "\u{0}".into(),
            ..bind(pb::PaymentKind::Alipay)
        })
        .await
        .map(|_| ());
    expect("NUL request id", r, "request_id");
    let r = t
        .publish_listing(pb::PublishListingRequest {
            terms: "line one\r\n\tline two".into(),
            ..listing(&method, "7", "1", "7", "700", 0)
        })
        .await
        .map(|_| ());
    assert!(r.is_ok(), "lines in terms: {r:?}");
    // The nil UUID names nobody: not as a field, not as a token's subject.
    let r = s
        .admin()
        .await
        .deposit(pb::TransferRequest {
            request_id: rid(),
            user_id: Uuid::nil().to_string(),
            asset: "EB".into(),
            amount: "1".into(),
            external_ref: "nil-1".into(),
        })
        .await
        .map(|_| ());
    expect("nil user", r, "user_id");
    let e = s
        .trading(Uuid::nil(), Role::User)
        .await
        .get_account(pb::GetAccountRequest {})
        .await
        .expect_err("a token for the nil UUID");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    assert!(e.message().contains("sub"), "{}", e.message());
}

/// Limits are settings of the running server (SPEC §18), each refused with
/// a message that states the configured bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_follow_the_servers_settings() {
    let s = Server::start(&[
        "--chat-chars-max",
        "5",
        "--page-size-max",
        "3",
        "--streams-per-user",
        "1",
        "--attachment-max",
        "1KiB",
        "--chat-messages-per-trade",
        "3",
        "--chat-files-per-trade",
        "1",
    ])
    .await;
    let (_, mut buyer, trade) = open_trade(&s, "1").await;
    let chat = |text: &str, data: usize| pb::SendChatRequest {
        request_id: rid(),
        trade_id: trade.clone(),
        text: text.into(),
        attachment: (data > 0).then(|| pb::Attachment {
            content_type: "image/png".into(),
            file_name: "a.png".into(),
            data: [
                crate::harness::PNG_HEAD,
                &vec![1; data - crate::harness::PNG_HEAD.len()],
            ]
            .concat(),
        }),
    };
    buyer
        .send_chat(chat("hello", 0))
        .await
        .expect("5 characters");
    let e = buyer.send_chat(chat("hello!", 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("text") && e.message().contains("5"),
        "{e:?}"
    );
    buyer.send_chat(chat("f", 1024)).await.expect("1 KiB file");
    let e = buyer.send_chat(chat("f", 1025)).await.unwrap_err();
    assert!(
        e.message().contains("attachment.data") && e.message().contains("1024"),
        "{e:?}"
    );
    // The trade's chat: one file, three messages (refusals not counted).
    let e = buyer.send_chat(chat("f", 100)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("at most 1 chat files per trade"),
        "{e:?}"
    );
    buyer
        .send_chat(chat("third", 0))
        .await
        .expect("3rd message");
    let e = buyer.send_chat(chat("more", 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("at most 3 chat messages per trade"),
        "{e:?}"
    );
    let e = buyer
        .list_my_trades(pb::PageRequest {
            page_size: 4,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("at most 3"), "{e:?}");
    let _first = buyer
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .expect("one stream");
    let e = buyer
        .stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("at most 1"), "{e:?}");
}
