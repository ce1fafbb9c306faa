//! At the door: connections that go quiet (a peer gone without a word, a
//! phone that changed networks, stops answering the server's keepalive
//! pings, and its connection is closed, freeing its event streams: SPEC §13,
//! §18), and what a call passes before its body is read (a token; room in
//! the upload budget: `api/src/gate.rs`).

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::{Server, token, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `target` that, once `silent` is set, stops passing bytes
/// either way and holds its sockets open: to each side, the other went
/// quiet without closing.
async fn proxy(target: String, silent: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&target).await.expect("connect");
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pass(cr, sw, Arc::clone(&silent)));
            tokio::spawn(pass(sr, cw, Arc::clone(&silent)));
        }
    });
    format!("http://{addr}")
}

/// Copies `from` to `to` until `silent`, then holds both forever.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if silent.load(Ordering::Relaxed) {
            // Swallow everything from now on, answering nothing.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn events(url: &str, tok: &str) -> Result<tonic::Streaming<pb::Event>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut t = TradingServiceClient::new(otc_api::client::authed(channel, tok).expect("token"));
    t.stream_events(pb::StreamEventsRequest { after_seq: 0 })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_a_peer_gone_quiet_are_freed_by_keepalive() {
    let s = Server::start(&[
        "--streams-per-user",
        "2",
        // Long enough that a loaded machine answers a live peer's pings in
        // time: only the quiet connections may close.
        "--keepalive",
        "2s",
        "--keepalive-timeout",
        "3s",
    ])
    .await;
    let tok = token(uuid::Uuid::new_v4(), Role::User);
    let silent = Arc::new(AtomicBool::new(false));
    let via = proxy(host(&s.url), Arc::clone(&silent)).await;
    // Two streams, each on its own connection through the proxy: the limit.
    let held = [
        events(&via, &tok).await.expect("first"),
        events(&via, &tok).await.expect("second"),
    ];
    let e = events(&s.url, &tok).await.expect_err("a third");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // The peer goes quiet; the server's pings go unanswered, it closes
    // both connections, and a stream can be opened again.
    silent.store(true, Ordering::Relaxed);
    let started = Instant::now();
    loop {
        match events(&s.url, &tok).await {
            Ok(_) => break,
            Err(e) if e.code() == tonic::Code::ResourceExhausted => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the quiet connections still hold their streams: {e:?}"
                );
                wait_ms(250).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    drop(held);
}

/// A call to the unary `method` whose request body sends `first` (if any)
/// and then never ends, as a client still uploading: the server has the
/// headers and that much of the body.
async fn unended<Req>(
    url: &str,
    tok: Option<&str>,
    method: &'static str,
    first: Option<Req>,
) -> Result<(), tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
{
    use tokio_stream::StreamExt;
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(16 << 20);
    grpc.ready().await.expect("ready");
    let body = tokio_stream::iter(first).chain(tokio_stream::pending());
    let mut req = tonic::Request::new(body);
    if let Some(tok) = tok {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {tok}").parse().expect("header"),
        );
    }
    let codec = tonic_prost::ProstCodec::<Req, pb::Receipt>::default();
    grpc.client_streaming(
        req,
        tonic::codegen::http::uri::PathAndQuery::from_static(method),
        codec,
    )
    .await
    .map(drop)
}

/// A chat message carrying a PNG of `bytes` bytes, on a trade that does not
/// exist: a call that passes the door fails NOT_FOUND in the handler.
fn chat_with_file(bytes: usize) -> pb::SendChatRequest {
    let mut data = harness::PNG_HEAD.to_vec();
    data.resize(bytes, 0);
    pb::SendChatRequest {
        request_id: harness::rid(),
        trade_id: "999999".into(),
        text: "receipt".into(),
        attachment: Some(pb::Attachment {
            content_type: "image/png".into(),
            file_name: "receipt.png".into(),
            data,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_valid_token_is_refused_before_its_body_is_read() {
    let s = Server::start(&[]).await;
    // Headers only, and a body that never comes: without the gate the
    // server would wait for the body (until the 30-second request timeout).
    for tok in [None, Some("not-a-token")] {
        let refused = tokio::time::timeout(
            Duration::from_secs(10),
            unended::<pb::SendChatRequest>(&s.url, tok, "/otc.v1.TradingService/SendChat", None),
        )
        .await
        .expect("answered before the body came");
        let e = refused.expect_err("no valid token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    }
    // Health checks need no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_held_at_once_are_bounded_by_the_budget() {
    const MIB: usize = 1 << 20;
    // A budget of 7 MiB: one 4 MiB upload fits, two do not.
    let s = Server::start(&["--uploads-in-flight-max", "7MiB"]).await;
    let user = uuid::Uuid::new_v4();
    let tok = token(user, Role::User);
    // A 4 MiB upload whose call has not ended holds its bytes.
    let hold = || {
        let (url, tok) = (s.url.clone(), tok.clone());
        tokio::spawn(async move {
            unended(
                &url,
                Some(&tok),
                "/otc.v1.TradingService/SendChat",
                Some(chat_with_file(4 * MIB)),
            )
            .await
        })
    };
    let mut held = hold();
    let mut t = s.trading(user, Role::User).await;
    // Another 4 MiB does not fit beside it (once the first is in; if this
    // one came in first, the held one was the one refused: hold again).
    let started = Instant::now();
    let e = loop {
        if held.is_finished() {
            let refused = held.await.expect("task").expect_err("never ends");
            assert_eq!(
                refused.code(),
                tonic::Code::ResourceExhausted,
                "{refused:?}"
            );
            held = hold();
        }
        let e = t
            .send_chat(chat_with_file(4 * MIB))
            .await
            .expect_err("no trade");
        if e.code() == tonic::Code::ResourceExhausted {
            break e;
        }
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the held upload never filled the budget"
        );
        wait_ms(100).await;
    };
    assert!(e.message().contains("--uploads-in-flight-max"), "{e:?}");
    // Calls without a file pass: their bytes are within the free part.
    let small = t.send_chat(pb::SendChatRequest {
        request_id: harness::rid(),
        trade_id: "999999".into(),
        text: "hello".into(),
        attachment: None,
    });
    assert_eq!(
        small.await.expect_err("no trade").code(),
        tonic::Code::NotFound
    );
    // The held upload is abandoned; its bytes come back, and the same
    // upload reaches the handler (which finds no trade).
    held.abort();
    let started = Instant::now();
    loop {
        let e = t
            .send_chat(chat_with_file(4 * MIB))
            .await
            .expect_err("no trade");
        if e.code() == tonic::Code::NotFound {
            break;
        }
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the abandoned upload still holds its bytes"
        );
        wait_ms(100).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_smaller_than_one_message_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otcd"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--console-listen",
            "127.0.0.1:0",
            "--attachment-max",
            "5MiB",
            "--uploads-in-flight-max",
            "4MiB",
        ])
        .output()
        .expect("run otcd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uploads_in_flight_max"), "{err}");
}

/// The client's side of starting HTTP/2: its preface and empty settings.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Starts HTTP/2 on a fresh gRPC connection and says whether the server
/// kept it: it answers with its settings; one it refused is closed at
/// once (the read ends).
async fn kept(tcp: &mut TcpStream) -> bool {
    let _ = tcp.write_all(H2_PREFACE).await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => false,
        Ok(Ok(_)) => true,
        Err(_) => panic!("the server neither answered nor closed a new connection"),
    }
}

async fn healthy(url: &str) -> bool {
    let Ok(channel) = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
    else {
        return false;
    };
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_budget_are_closed_until_one_ends() {
    let s = Server::start(&["--connections-max", "3"]).await;
    let grpc = host(&s.url);
    // Connections until one is refused, with all three places ours (the
    // harness's health-check connection may still hold one a moment).
    let mut held = Vec::new();
    let started = Instant::now();
    loop {
        let mut tcp = TcpStream::connect(&grpc).await.expect("connect");
        if kept(&mut tcp).await {
            held.push(tcp);
            assert!(
                held.len() <= 3,
                "more connections kept than --connections-max"
            );
        } else if held.len() == 3 {
            break;
        } else {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "a connection refused with {} of 3 places taken",
                held.len()
            );
            wait_ms(100).await;
        }
    }
    assert!(!healthy(&s.url).await, "a call on a fourth connection");
    // The console's listener has a budget of its own (16 at this size):
    // it still answers, and past its own budget it closes too.
    let (status, _) = harness::http_get(&format!("{}limits.json", s.console)).await;
    assert_eq!(status, 200, "the console answers while gRPC is full");
    let mut console = Vec::new();
    for _ in 0..16 {
        console.push(TcpStream::connect(host(&s.console)).await.expect("connect"));
    }
    wait_ms(500).await;
    let mut tcp = TcpStream::connect(host(&s.console)).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .ok();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    drop(console);
    // One ends: the next call gets its place.
    drop(held.pop());
    let started = Instant::now();
    while !healthy(&s.url).await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ended connection's place never came back"
        );
        wait_ms(100).await;
    }
}

/// `host:port` of a listener's URL (`http://host:port/`).
fn host(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Sends `bytes` on a new connection to `addr`, then nothing: how long
/// until the server closes it (at most `within`), and what it answered.
async fn closed_after(addr: String, bytes: Vec<u8>, within: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    tcp.write_all(&bytes).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{addr}: kept open after {bytes:?}");
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_too_little_are_closed() {
    let s = Server::start(&[]).await;
    let (console, grpc, gateway) = (host(&s.console), host(&s.url), host(&s.http));
    let (console, grpc, gateway) = (console.as_str(), grpc.as_str(), gateway.as_str());
    let long = Duration::from_secs(90);
    let mut cases = Vec::new();
    // Silent, or a byte and then silent: closed by the first-bytes deadline
    // (10 s: otc_api::listen::FIRST_BYTES_WITHIN), on every listener.
    for (addr, bytes) in [
        (console, &b""[..]),
        (console, b"G"),
        (grpc, b""),
        (grpc, b"P"),
        (gateway, b"P"),
    ] {
        cases.push((
            tokio::spawn(closed_after(addr.to_owned(), bytes.to_vec(), long)),
            Duration::from_secs(5),
        ));
    }
    // Headers that never end: closed by the header deadline (30 s:
    // otc_api::listen::HEADERS_WITHIN).
    for addr in [console, gateway] {
        let head = b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: 1".to_vec();
        cases.push((
            tokio::spawn(closed_after(addr.to_owned(), head, long)),
            Duration::from_secs(20),
        ));
    }
    // HTTP/2's preface and then silence on the console's listener: closed
    // when the server's pings go unanswered (20 s + 10 s by default).
    cases.push((
        tokio::spawn(closed_after(console.to_owned(), H2_PREFACE.to_vec(), long)),
        Duration::from_secs(15),
    ));
    // The gateway's listener speaks HTTP/1 only: the preface is refused at
    // once, and no HTTP/2 SETTINGS frame comes back.
    let (took, answer) = closed_after(gateway.to_owned(), H2_PREFACE.to_vec(), long).await;
    assert!(took < Duration::from_secs(5), "refused at once: {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 "),
        "not HTTP/2: {answer:?}"
    );
    for (case, least) in cases {
        let (took, _) = case.await.expect("task");
        assert!(took >= least, "closed after {took:?}, before its deadline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_whose_body_never_ends_is_answered_408() {
    let s = Server::start(&[]).await;
    // 100 bytes announced, 10 sent, then silence.
    let mut head = b"POST /notify/any HTTP/1.1\r\nhost: x\r\n\
        content-type: application/json\r\ncontent-length: 100\r\n\r\n"
        .to_vec();
    head.extend_from_slice(b"{\"id\":\"12");
    let (took, answer) = closed_after(host(&s.http), head, Duration::from_secs(60)).await;
    // otc_api::http::BODY_WITHIN (10 s), well before the header deadline (30 s).
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(25),
        "answered after {took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A whole body that is merely too large is still 413, not a timeout.
    let big = vec![b'x'; otc_gateway::BODY_BYTES_MAX + 1];
    let answer = otc_api::webhook::post(&format!("{}/notify/any", s.http), &[], &big)
        .await
        .expect("answered");
    assert_eq!(answer.status, 413, "{answer:?}");
    // One announced past the bound is refused at once, before any of it.
    let head = b"POST /notify/any HTTP/1.1\r\nhost: x\r\n\
        content-type: application/json\r\ncontent-length: 100000000\r\n\r\nx"
        .to_vec();
    let (took, answer) = closed_after(host(&s.http), head, Duration::from_secs(60)).await;
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_call_whose_body_never_ends_is_cancelled() {
    let s = Server::start(&[]).await;
    let console = host(&s.console);
    let tok = token(uuid::Uuid::new_v4(), Role::User);
    // gRPC-Web over HTTP/1.1: a message of 100 bytes announced, 10 sent.
    let mut head = format!(
        "POST /otc.v1.TradingService/GetAccount HTTP/1.1\r\nhost: x\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         authorization: Bearer {tok}\r\ncontent-length: 105\r\n\r\n"
    )
    .into_bytes();
    head.extend_from_slice(&[0, 0, 0, 0, 100]);
    head.extend_from_slice(&[0u8; 10]);
    let (took, answer) = closed_after(console, head, Duration::from_secs(90)).await;
    // The gate's deadline (30 s, as tonic's on the gRPC listener).
    assert!(took >= Duration::from_secs(20), "answered after {took:?}");
    assert!(answer.contains("grpc-status: 1"), "{answer}");
}
