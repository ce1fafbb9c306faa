#![allow(dead_code)]
//! Harness for the end-to-end tests (shared by `tests/*.rs`, which are test
//! targets of the `otc-api` package so Cargo builds `otcd` fresh for them): starts the real `otcd` binary on
//! `127.0.0.1:0` with a temporary data dir and short windows, and gives
//! authenticated gRPC clients.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use otc_api::auth::{Role, mint};
use otc_api::proto::admin_service_client::AdminServiceClient;
use otc_api::proto::merchant_service_client::MerchantServiceClient;
use otc_api::proto::support_service_client::SupportServiceClient;
use otc_api::proto::trading_service_client::TradingServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

pub mod browser;
pub mod console;
pub mod gateway;

/// The back-office user of [`Server::admin`].
pub const ADMIN: uuid::Uuid = uuid::Uuid::from_u128(0xad11_0000_0000_4000_8000_0000_0000_0001);

/// A PNG's signature and `IHDR` chunk (a 1 × 1 image): the first bytes an
/// `image/png` attachment needs, its size read from them.
pub const PNG_HEAD: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// The secret every test server signs tokens with.
pub const SECRET: &str = "e2e-test-secret";

/// Windows short enough that tests wait seconds, never minutes.
pub const FAST_WINDOWS: &[&str] = &[
    "--appeal-after",
    "2s",
    "--auto-appeal-after",
    "5s",
    "--merchant-window",
    "2s",
    "--payment-window-min",
    "1s",
    "--payment-window-default",
    "4s",
    "--resting-buy-default",
    "4s",
    "--argon2-memory-kib",
    "64",
    "--argon2-iterations",
    "1",
];

/// An authenticated channel (the bearer interceptor is the library's).
pub use otc_api::client::Authed;

/// A running `otcd`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The gateway listener, `http://127.0.0.1:PORT`.
    pub http: String,
    /// The web console, `http://127.0.0.1:PORT/`.
    pub console: String,
    /// Its data dir.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    args: Vec<String>,
}

fn otcd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_otcd"))
}

impl Server {
    /// Starts a server on a fresh temporary data dir.
    pub async fn start(extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_owned();
        let mut s = Self::start_in(&dir, extra).await;
        s._temp = Some(temp);
        s
    }

    /// Starts a server on `dir` (for restarts).
    pub async fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--http-listen".into(),
            "127.0.0.1:0".into(),
            "--console-listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--jwt-secret".into(),
            SECRET.into(),
        ];
        args.extend(FAST_WINDOWS.iter().map(|s| (*s).to_owned()));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut child = Command::new(otcd_path())
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("OTC_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start otcd");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (http, console, addr) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut http = String::new();
            let mut console = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("otcd gateway listener on ") {
                    http = format!("http://{a}");
                }
                if let Some(a) = line.strip_prefix("otcd web console on ") {
                    console = a.to_owned();
                }
                if let Some(a) = line.strip_prefix("otcd listening on ") {
                    return (http, console, a.to_owned());
                }
            }
            panic!("otcd exited before listening")
        })
        .await
        .expect("otcd did not start within 60 s");
        // otcd logs to standard output; OTC_TEST_LOG=info shows it.
        let show = std::env::var_os("OTC_TEST_LOG").is_some();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if show {
                    eprintln!("otcd: {line}");
                }
            }
        });
        let url = format!("http://{addr}");
        let s = Server {
            child: Some(child),
            url,
            http,
            console,
            dir: dir.to_owned(),
            _temp: None,
            args,
        };
        s.wait_serving().await;
        s
    }

    /// Waits until health says SERVING.
    pub async fn wait_serving(&self) {
        use tonic_health::pb::health_client::HealthClient;
        for _ in 0..200 {
            if let Ok(ch) = Channel::from_shared(self.url.clone())
                .expect("url")
                .connect()
                .await
            {
                let mut h = HealthClient::new(ch);
                if let Ok(r) = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    && r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("otcd never reported SERVING");
    }

    /// A plain channel.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    /// A channel that sends `token`.
    pub async fn authed(&self, token: &str) -> Authed {
        otc_api::client::authed(self.channel().await, token).expect("header value")
    }

    /// Trading client as `user` with `role`.
    pub async fn trading(&self, user: uuid::Uuid, role: Role) -> TradingServiceClient<Authed> {
        TradingServiceClient::new(self.authed(&token(user, role)).await)
    }

    /// Merchant client.
    pub async fn merchant(&self, user: uuid::Uuid) -> MerchantServiceClient<Authed> {
        MerchantServiceClient::new(self.authed(&token(user, Role::Merchant)).await)
    }

    /// Support client.
    pub async fn support(&self, user: uuid::Uuid, role: Role) -> SupportServiceClient<Authed> {
        SupportServiceClient::new(self.authed(&token(user, role)).await)
    }

    /// Admin client, always the same back-office user ([`ADMIN`]): request
    /// ids are scoped by the caller, so a retry must come from the same one.
    pub async fn admin(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::new(self.authed(&token(ADMIN, Role::Admin)).await)
    }

    /// SIGKILL: no shutdown, no flush.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGTERM, and the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        if let Some(pid) = c.id() {
            // SAFETY: sending a signal to our own child process by pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .expect("otcd did not stop within 30 s")
            .expect("wait")
    }

    /// The flags this server runs with, parsed as `otcd` parses them: the
    /// engine and storage settings to open its data dir with in-process
    /// (so the reopen journals no configuration change).
    pub fn config(&self) -> otc_api::config::ServerConfig {
        use clap::Parser;
        otc_api::config::ServerConfig::try_parse_from(
            std::iter::once("otcd".to_owned()).chain(self.args.iter().cloned()),
        )
        .expect("otcd's own flags parse")
    }

    /// Starts again on the same data dir with the same flags.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate().await;
            assert!(status.success(), "otcd exited with {status} on SIGTERM");
        }
        let extra: Vec<String> = self
            .args
            .iter()
            .skip(10 + FAST_WINDOWS.len())
            .cloned()
            .collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let temp = self._temp.take();
        let mut s = Server::start_in(&self.dir, &extra).await;
        s._temp = temp;
        *self = s;
    }
}

/// A token for `user` as `role`, valid for an hour.
pub fn token(user: uuid::Uuid, role: Role) -> String {
    mint(SECRET.as_bytes(), user, role, 3600).expect("mint")
}

/// A fresh request id.
pub fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Sleeps for `ms` of real time (windows are seconds in these tests).
pub async fn wait_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Common steps of the flows.
pub mod steps {
    use otc_api::auth::Role;
    use otc_api::proto as pb;
    use otc_api::proto::trading_service_client::TradingServiceClient;

    use super::{Authed, Server, rid};

    /// The fund password every test user sets.
    pub const PASSWORD: &str = "secret-123";

    /// Deposits `amount` EB for `user` (admin call).
    pub async fn deposit(s: &Server, user: uuid::Uuid, amount: &str) {
        let mut admin = s.admin().await;
        admin
            .deposit(pb::TransferRequest {
                request_id: rid(),
                user_id: user.to_string(),
                asset: "EB".into(),
                amount: amount.into(),
                external_ref: format!("ext-{}", rid()),
            })
            .await
            .expect("deposit");
    }

    /// A seller with `amount` EB, an Alipay method and a fund password; returns
    /// its client and the method id.
    pub async fn seller(
        s: &Server,
        user: uuid::Uuid,
        amount: &str,
    ) -> (TradingServiceClient<Authed>, String) {
        deposit(s, user, amount).await;
        let mut t = s.trading(user, Role::User).await;
        let m = t
            .bind_payment_method(pb::BindPaymentMethodRequest {
                request_id: rid(),
                kind: pb::PaymentKind::Alipay as i32,
                holder: "Wang Fang".into(),
                bank: String::new(),
                account: "wang@example.com".into(),
                ..Default::default()
            })
            .await
            .expect("bind")
            .into_inner()
            .method_id;
        t.set_fund_password(pb::SetFundPasswordRequest {
            request_id: rid(),
            new_password: PASSWORD.into(),
            current_password: String::new(),
        })
        .await
        .expect("set password");
        (t, m)
    }

    /// A listing request with sensible defaults.
    pub fn listing(
        method: &str,
        price: &str,
        total: &str,
        min: &str,
        max: &str,
        window_secs: i64,
    ) -> pb::PublishListingRequest {
        pb::PublishListingRequest {
            request_id: rid(),
            asset: "EB".into(),
            fiat: "CNY".into(),
            price: price.into(),
            total: total.into(),
            min_fiat: min.into(),
            max_fiat: max.into(),
            method_ids: vec![method.into()],
            payment_window_secs: window_secs,
            terms: String::new(),
            fund_password: PASSWORD.into(),
            ..Default::default()
        }
    }

    /// Publishes and returns the listing id.
    pub async fn publish(
        t: &mut TradingServiceClient<Authed>,
        req: pb::PublishListingRequest,
    ) -> String {
        t.publish_listing(req)
            .await
            .expect("publish")
            .into_inner()
            .listing
            .expect("listing")
            .id
    }

    /// A seller with 100 EB listed at 7 (7 – 700 CNY) and a buyer who bought
    /// `coin` from it: (seller, buyer, trade id).
    pub async fn open_trade(
        s: &Server,
        coin: &str,
    ) -> (
        TradingServiceClient<Authed>,
        TradingServiceClient<Authed>,
        String,
    ) {
        let (mut seller, method) = seller(s, uuid::Uuid::new_v4(), "100").await;
        publish(&mut seller, listing(&method, "7", "100", "7", "700", 0)).await;
        let mut buyer = s.trading(uuid::Uuid::new_v4(), Role::User).await;
        let trade = bought(&mut buyer, coin).await;
        (seller, buyer, trade)
    }

    /// A coin buy request.
    pub fn buy(amount: &str) -> pb::PlaceBuyRequest {
        pb::PlaceBuyRequest {
            request_id: rid(),
            asset: "EB".into(),
            fiat: "CNY".into(),
            coin_amount: amount.into(),
            ..pb::PlaceBuyRequest::default()
        }
    }

    /// (available, escrowed) of EB.
    pub async fn balance(t: &mut TradingServiceClient<Authed>) -> (String, String) {
        let acc = t
            .get_account(pb::GetAccountRequest {})
            .await
            .expect("account")
            .into_inner();
        let b = acc
            .balances
            .into_iter()
            .find(|b| b.asset == "EB")
            .expect("EB balance");
        (b.available, b.escrowed)
    }

    /// The trade's state.
    pub async fn state(t: &mut TradingServiceClient<Authed>, id: &str) -> pb::TradeState {
        let tr = t
            .get_trade(pb::GetTradeRequest {
                trade_id: id.into(),
            })
            .await
            .expect("get trade")
            .into_inner();
        pb::TradeState::try_from(tr.state).expect("state")
    }

    /// Buys `coin` from the best listing: the one trade's id.
    pub async fn bought(t: &mut TradingServiceClient<Authed>, coin: &str) -> String {
        t.place_buy(buy(coin))
            .await
            .expect("buy")
            .into_inner()
            .trade_ids
            .swap_remove(0)
    }

    /// Marks paid.
    pub async fn mark_paid(t: &mut TradingServiceClient<Authed>, id: &str) {
        t.mark_paid(pb::TradeActionRequest {
            request_id: rid(),
            trade_id: id.into(),
        })
        .await
        .expect("mark paid");
    }

    /// Releases with the fund password.
    pub async fn release(
        t: &mut TradingServiceClient<Authed>,
        id: &str,
    ) -> Result<pb::TradeResponse, tonic::Status> {
        t.release(pb::ReleaseRequest {
            request_id: rid(),
            trade_id: id.into(),
            fund_password: PASSWORD.into(),
        })
        .await
        .map(tonic::Response::into_inner)
    }
}

/// A plain HTTP GET of `url` (`http://host:port/path`): status and body.
pub async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, text)
}
