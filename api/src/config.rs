//! `otcd`'s flags (each also an environment variable), in human units, and
//! the engine and storage settings they describe.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use otc_engine::EngineConfig;
use otc_storage::WriterOptions;

/// A duration as [`parse_duration`] reads it, or `off` (zero).
///
/// # Errors
/// As [`parse_duration`].
pub fn parse_duration_or_off(text: &str) -> Result<Duration, String> {
    if text == "off" {
        return Ok(Duration::ZERO);
    }
    parse_duration(text).map_err(|e| format!("{e}, or off"))
}

/// Parses "500ms", "10s", "30m", "24h".
///
/// # Errors
/// A message saying the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 500ms, 10s, 30m or 24h");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let factor: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let ms = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    if ms == 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// Parses "512KiB", "5MiB", "1GiB" or a plain number of bytes.
///
/// # Errors
/// A message saying the accepted forms.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size like 512KiB, 5MiB or 1048576");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(factor).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("{text:?} must be more than zero"));
    }
    Ok(bytes)
}

/// Everything `otcd` can be told (flags, or the environment). No `Debug`:
/// it holds the token secret.
#[derive(Clone, clap::Parser)]
#[command(
    name = "otcd",
    version,
    about = "The otc P2P OTC trading server (gRPC, embedded sled store)",
    // A flag given twice takes its last value (scripts append overrides).
    args_override_self = true
)]
pub struct ServerConfig {
    /// Address to serve gRPC on.
    #[arg(long, env = "OTC_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Directory of the sled store (created if missing).
    #[arg(long, env = "OTC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HS256 secret for bearer tokens; without one, the secret in --jwt-secret-file.
    #[arg(long, env = "OTC_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Where the token secret is kept when --jwt-secret is not given
    /// [default: ./secrets/jwt-secret]: made on first start (owner-only),
    /// never inside the data dir. One an older build left in the data dir is
    /// moved to the file this flag names (without it, the start is refused).
    #[arg(long, env = "OTC_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Address for the Prometheus metrics endpoint (off when unset).
    #[arg(long, env = "OTC_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Time after "paid" before either side may appeal.
    #[arg(long, env = "OTC_APPEAL_AFTER", default_value = "30m", value_parser = parse_duration)]
    pub appeal_after: Duration,
    /// Time after "paid" when an unreleased trade is appealed by the system.
    #[arg(long, env = "OTC_AUTO_APPEAL_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub auto_appeal_after: Duration,
    /// Payment window of fast-match trades.
    #[arg(long, env = "OTC_MERCHANT_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub merchant_window: Duration,
    /// Payment window of listings that name none.
    #[arg(long, env = "OTC_PAYMENT_WINDOW_DEFAULT", default_value = "15m", value_parser = parse_duration)]
    pub payment_window_default: Duration,
    /// Shortest payment window a listing may set.
    #[arg(long, env = "OTC_PAYMENT_WINDOW_MIN", default_value = "5m", value_parser = parse_duration)]
    pub payment_window_min: Duration,
    /// Longest payment window a listing may set.
    #[arg(long, env = "OTC_PAYMENT_WINDOW_MAX", default_value = "60m", value_parser = parse_duration)]
    pub payment_window_max: Duration,
    /// Life of a resting buy that names none.
    #[arg(long, env = "OTC_RESTING_BUY_DEFAULT", default_value = "10m", value_parser = parse_duration)]
    pub resting_buy_default: Duration,
    /// Longest life a resting buy may ask for.
    #[arg(long, env = "OTC_RESTING_BUY_MAX", default_value = "24h", value_parser = parse_duration)]
    pub resting_buy_max: Duration,
    /// Merchants tried for one fast sell before the coin goes back (SPEC §9).
    #[arg(long, env = "OTC_FAST_MATCH_TRIES", default_value_t = 3)]
    pub fast_match_tries: u32,
    /// Wrong fund passwords in a row before protected actions lock (SPEC §6).
    #[arg(long, env = "OTC_FUND_PASSWORD_ATTEMPTS", default_value_t = 5)]
    pub fund_password_attempts: u32,
    /// How long a fund-password lock lasts.
    #[arg(long, env = "OTC_FUND_PASSWORD_LOCK", default_value = "15m", value_parser = parse_duration)]
    pub fund_password_lock: Duration,
    /// Buyer cancels (own and payment timeouts) per UTC day before buying stops (SPEC §8).
    #[arg(long, env = "OTC_BUYER_CANCELS_PER_DAY", default_value_t = 3)]
    pub buyer_cancels_per_day: u32,
    /// Live (active or paused) listings per user (SPEC §18).
    #[arg(long, env = "OTC_LISTINGS_PER_USER", default_value_t = 20)]
    pub listings_per_user: u32,
    /// Resting buy orders per user (SPEC §18).
    #[arg(long, env = "OTC_RESTING_BUYS_PER_USER", default_value_t = 5)]
    pub resting_buys_per_user: u32,
    /// Open trades a user may have as the buyer of listings at once (SPEC §18).
    #[arg(long, env = "OTC_OPEN_BUYS_PER_USER", default_value_t = 10)]
    pub open_buys_per_user: u32,
    /// Bound payment methods per user (SPEC §18).
    #[arg(long, env = "OTC_METHODS_PER_USER", default_value_t = 10)]
    pub methods_per_user: u32,
    /// Payment methods one listing may name (SPEC §18).
    #[arg(long, env = "OTC_METHODS_PER_LISTING", default_value_t = 10)]
    pub methods_per_listing: usize,
    /// Users one user may block (SPEC §18).
    #[arg(long, env = "OTC_BLOCKS_PER_USER", default_value_t = 1_000)]
    pub blocks_per_user: u32,
    /// Price quotes one merchant may declare (SPEC §18).
    #[arg(long, env = "OTC_QUOTES_PER_MERCHANT", default_value_t = 20)]
    pub quotes_per_merchant: usize,
    /// Listings one match attempt examines at most, best price first (a
    /// buy, a resting buy, each resting buy at a new reference).
    #[arg(long, env = "OTC_MATCH_SCAN_MAX", default_value_t = 1_000)]
    pub match_scan_max: usize,
    /// Largest page a list call returns (SPEC §18).
    #[arg(long, env = "OTC_PAGE_SIZE_MAX", default_value_t = 200)]
    pub page_size_max: u32,
    /// Event streams one user may hold open (SPEC §18).
    #[arg(long, env = "OTC_STREAMS_PER_USER", default_value_t = 5)]
    pub streams_per_user: u32,
    /// Largest attachment (evidence or chat file; SPEC §11).
    #[arg(long, env = "OTC_ATTACHMENT_MAX", default_value = "5MiB", value_parser = parse_size)]
    pub attachment_max: u64,
    /// Attachments per appeal (SPEC §11).
    #[arg(long, env = "OTC_ATTACHMENTS_PER_APPEAL", default_value_t = 10)]
    pub attachments_per_appeal: u32,
    /// Evidence items (text or file) per appeal; at least
    /// --attachments-per-appeal (SPEC §18).
    #[arg(long, env = "OTC_EVIDENCE_PER_APPEAL", default_value_t = 50)]
    pub evidence_per_appeal: u32,
    /// Longest other text (appeal reason, evidence description, listing
    /// terms, notes), in characters (SPEC §18).
    #[arg(long, env = "OTC_TEXT_CHARS_MAX", default_value_t = 2_000)]
    pub text_chars_max: usize,
    /// Longest chat message, in characters (SPEC §18).
    #[arg(long, env = "OTC_CHAT_CHARS_MAX", default_value_t = 2_000)]
    pub chat_chars_max: usize,
    /// Chat messages per trade (SPEC §18).
    #[arg(long, env = "OTC_CHAT_MESSAGES_PER_TRADE", default_value_t = 1_000)]
    pub chat_messages_per_trade: u32,
    /// Chat messages with a file per trade (as attachments per appeal, SPEC §11).
    #[arg(long, env = "OTC_CHAT_FILES_PER_TRADE", default_value_t = 10)]
    pub chat_files_per_trade: u32,
    /// How long an ended trade, listing or buy order stays in the engine's
    /// working set; past it, history answers for it (memory follows
    /// activity, not age).
    #[arg(long, env = "OTC_ENDED_RETENTION", default_value = "1h", value_parser = parse_duration)]
    pub ended_retention: Duration,
    /// How long events are kept for resuming streams (SPEC §13).
    #[arg(long, env = "OTC_EVENT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub event_retention: Duration,
    /// How long request ids are remembered for retries (SPEC §14: at least 24h).
    #[arg(long, env = "OTC_REQUEST_ID_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub request_id_retention: Duration,
    /// How often an idle connection is checked: an HTTP/2 ping on the gRPC
    /// listener, TCP keepalive probes on the console's and the gateway's. A
    /// peer gone without a word (a phone that changed networks) is closed,
    /// freeing its streams.
    #[arg(long, env = "OTC_KEEPALIVE", default_value = "20s", value_parser = parse_duration)]
    pub keepalive: Duration,
    /// gRPC connections open at once; past it a new one is closed at once.
    /// The gateway listener and the console's each have their own budget of
    /// an eighth of this (16 to 1,024). The open-file limit (`ulimit -n`)
    /// is raised at start to fit them all with 256 files to spare, within
    /// its hard limit; else the budgets are lowered to fit, with a warning.
    #[arg(long, env = "OTC_CONNECTIONS_MAX", default_value_t = 10_000)]
    pub connections_max: usize,
    /// How long an unanswered keepalive waits before the connection is closed.
    #[arg(long, env = "OTC_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
    /// How long shutdown waits for open connections to end (a client that
    /// stopped reading holds its stream's connection); then the writer
    /// stops without them.
    #[arg(long, env = "OTC_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Bytes of uploads (attachments) held at once, across all connections:
    /// past it a call with a file fails RESOURCE_EXHAUSTED, to retry. At
    /// least one largest message (--attachment-max plus 1MiB).
    #[arg(long, env = "OTC_UPLOADS_IN_FLIGHT_MAX", default_value = "1GiB", value_parser = parse_size)]
    pub uploads_in_flight_max: u64,
    /// Requests waiting for the writer before RESOURCE_EXHAUSTED.
    #[arg(long, env = "OTC_QUEUE_LEN", default_value_t = 65_536)]
    pub queue_len: usize,
    /// argon2id memory cost for fund passwords, KiB.
    #[arg(long, env = "OTC_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id passes for fund passwords.
    #[arg(long, env = "OTC_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// How long a fund password argon2 verified is remembered, in memory
    /// only, so the same password again skips argon2 (`off`: never).
    #[arg(long, env = "OTC_FUND_PASSWORD_REMEMBER", default_value = "15m", value_parser = parse_duration_or_off)]
    pub fund_password_remember: Duration,
    /// Journal entries between snapshots.
    #[arg(long, env = "OTC_SNAPSHOT_EVERY", default_value_t = 100_000)]
    pub snapshot_every: u64,
    /// How often sled is flushed and fdatasynced behind the write-ahead
    /// journal (the journal's records older than that are then recycled).
    #[arg(long, env = "OTC_SLED_FLUSH_EVERY", default_value = "100ms", value_parser = parse_duration)]
    pub sled_flush_every: Duration,
    /// Lowest premium a floating listing may set, in basis points (SPEC §22).
    #[arg(long, env = "OTC_PREMIUM_MIN_BPS", default_value_t = -2_000, allow_hyphen_values = true)]
    pub premium_min_bps: i32,
    /// Highest premium a floating listing may set, in basis points.
    #[arg(
        long,
        env = "OTC_PREMIUM_MAX_BPS",
        default_value_t = 2_000,
        allow_hyphen_values = true
    )]
    pub premium_max_bps: i32,
    /// A reference price older than this stops floating listings from matching.
    #[arg(long, env = "OTC_REFERENCE_MAX_AGE", default_value = "5m", value_parser = parse_duration)]
    pub reference_max_age: Duration,
    /// Address of the HTTP listener for payment gateways' notifications
    /// (`POST /notify/<channel>`) and the Alipay return page
    /// (`GET /return/<channel>`). Gateways must reach it at --public-url.
    #[arg(long, env = "OTC_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Address of the web console for customer service and admins (SPEC
    /// §21): its pages, and the gRPC services as gRPC-Web.
    #[arg(long, env = "OTC_CONSOLE_LISTEN", default_value = "127.0.0.1:8090")]
    pub console_listen: SocketAddr,
    /// The URL gateways and returning browsers reach the HTTP listener at
    /// (behind a proxy or a tunnel); `http://<http-listen>` when unset.
    #[arg(long, env = "OTC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Payment channels (SPEC §19): a TOML file declaring each channel and
    /// naming its key files (see README, "Payment channels"). Keys are read
    /// once and never written anywhere.
    #[arg(long, env = "OTC_CHANNELS")]
    pub channels: Option<PathBuf>,
    /// Also serve the sandbox channels sandbox-alipay, sandbox-wechatpay and
    /// sandbox-hmac, with key pairs created in --sandbox-dir on first use, so
    /// `otcctl gateway pay` can act as their gateway. For demos and tests.
    #[arg(long, env = "OTC_SANDBOX_CHANNELS")]
    pub sandbox_channels: bool,
    /// Where the sandbox keeps its keys (never inside the data dir).
    #[arg(long, env = "OTC_SANDBOX_DIR", default_value = "./sandbox")]
    pub sandbox_dir: PathBuf,
    /// Largest gateway bill `ImportBill` accepts (SPEC §20).
    #[arg(long, env = "OTC_BILL_MAX", default_value = "256MiB", value_parser = parse_size)]
    pub bill_max: u64,
    /// Payments this close to midnight wait for the next day's bill before
    /// they count as missing (SPEC §20).
    #[arg(long, env = "OTC_RECON_WINDOW", default_value = "30m", value_parser = parse_duration)]
    pub recon_window: Duration,
    /// Largest notification body the HTTP listener reads (larger → 413); at
    /// most 64KiB, what any gateway sends.
    #[arg(long, env = "OTC_HTTP_BODY_MAX", default_value = "64KiB", value_parser = parse_size)]
    pub http_body_max: u64,
    /// Log as JSON lines.
    #[arg(long, env = "OTC_LOG_JSON")]
    pub log_json: bool,
    /// Test-only fault injection (`crash-after-commit`); a flag only, so no
    /// environment can switch it on.
    #[arg(long, hide = true)]
    pub failpoint: Option<crate::core::Failpoint>,
}

impl ServerConfig {
    /// The engine configuration these flags describe.
    ///
    /// # Errors
    /// Incoherent windows (e.g. a minimum above the maximum).
    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let c = EngineConfig {
            appeal_after_ms: ms(self.appeal_after),
            auto_appeal_after_ms: ms(self.auto_appeal_after),
            merchant_window_ms: ms(self.merchant_window),
            payment_window_ms_default: ms(self.payment_window_default),
            payment_window_ms_min: ms(self.payment_window_min),
            payment_window_ms_max: ms(self.payment_window_max),
            resting_buy_ms_default: ms(self.resting_buy_default),
            resting_buy_ms_max: ms(self.resting_buy_max),
            fast_match_tries_max: self.fast_match_tries,
            fund_password_attempts_max: self.fund_password_attempts,
            fund_password_lock_ms: ms(self.fund_password_lock),
            buyer_cancels_per_day_max: self.buyer_cancels_per_day,
            live_listings_per_user_max: self.listings_per_user,
            resting_buys_per_user_max: self.resting_buys_per_user,
            open_buys_per_user_max: self.open_buys_per_user,
            methods_per_user_max: self.methods_per_user,
            methods_per_listing_max: self.methods_per_listing,
            blocks_per_user_max: self.blocks_per_user,
            quotes_per_merchant_max: self.quotes_per_merchant,
            match_scan_max: self.match_scan_max,
            page_size_max: self.page_size_max,
            subscribers_per_user_max: self.streams_per_user,
            attachment_bytes_max: self.attachment_max,
            attachments_per_appeal_max: self.attachments_per_appeal,
            evidence_per_appeal_max: self.evidence_per_appeal,
            text_chars_max: self.text_chars_max,
            chat_chars_max: self.chat_chars_max,
            chat_messages_per_trade_max: self.chat_messages_per_trade,
            chat_files_per_trade_max: self.chat_files_per_trade,
            ended_retention_ms: ms(self.ended_retention),
            event_retention_ms: ms(self.event_retention),
            premium_bps_min: self.premium_min_bps,
            premium_bps_max: self.premium_max_bps,
            reference_max_age_ms: ms(self.reference_max_age),
            ..EngineConfig::default()
        };
        c.validate()?;
        Ok(c)
    }
}

impl ServerConfig {
    /// The largest gRPC message: one attachment of `--attachment-max` and
    /// room for the rest.
    #[must_use]
    pub fn message_max(&self) -> usize {
        usize::try_from(self.attachment_max)
            .unwrap_or(usize::MAX)
            .saturating_add(crate::server::MESSAGE_OVERHEAD_BYTES)
    }

    /// The upload budget ([`crate::gate`]).
    ///
    /// # Errors
    /// A budget that one largest message would not fit.
    pub fn upload_budget(&self) -> Result<u64, String> {
        let message_max = u64::try_from(self.message_max()).unwrap_or(u64::MAX);
        if self.uploads_in_flight_max < message_max {
            return Err(format!(
                "uploads_in_flight_max must be at least one largest message \
                 (--attachment-max plus 1MiB: {message_max} bytes), not {}",
                self.uploads_in_flight_max
            ));
        }
        Ok(self.uploads_in_flight_max)
    }

    /// The storage options these flags describe.
    ///
    /// # Errors
    /// A request-id retention under SPEC §14's 24 hours.
    pub fn writer_options(&self) -> Result<WriterOptions, String> {
        let retention_ms = i64::try_from(self.request_id_retention.as_millis()).unwrap_or(i64::MAX);
        if retention_ms < otc_engine::ids::MS_PER_DAY {
            return Err(format!(
                "request_id_retention must be at least 24h (SPEC §14), not {}",
                otc_engine::ids::human_duration(retention_ms)
            ));
        }
        Ok(WriterOptions {
            snapshot_every: self.snapshot_every,
            snapshot_in_background: true,
            idempotency_retention_ms: retention_ms,
            store: otc_storage::store::StoreOptions {
                flush_every: Some(self.sled_flush_every),
                ..otc_storage::store::StoreOptions::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_or_off() {
        assert_eq!(parse_duration_or_off("off"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_off("15m"), Ok(Duration::from_secs(900)));
        for bad in ["0s", "15", "soon", ""] {
            let e = parse_duration_or_off(bad).expect_err(bad);
            assert!(e.ends_with(", or off"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_duration_too_long_for_milliseconds_is_refused_not_wrapped() {
        // 213503982335 days is more milliseconds than a u64 holds: it once
        // wrapped (release) to about 9.6 hours, or panicked (debug).
        let e = parse_duration("213503982335d").expect_err("overflow");
        assert!(e.contains("too long"), "{e}");
        let e = parse_duration("18446744073709552s").expect_err("overflow");
        assert!(e.contains("too long"), "{e}");
        assert_eq!(
            parse_duration("106751991167d"),
            Ok(Duration::from_millis(106_751_991_167 * 86_400_000))
        );
    }
}
