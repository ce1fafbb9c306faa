//! Connections that go quiet: a peer gone without a word (a phone that
//! changed networks) stops answering the server's keepalive pings, and its
//! connection is closed, freeing its event streams (SPEC §13, §18).

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
    let via = proxy(
        s.url.trim_start_matches("http://").to_owned(),
        Arc::clone(&silent),
    )
    .await;
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
