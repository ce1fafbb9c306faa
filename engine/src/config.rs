//! Engine configuration: windows, limits and the traded assets.
//!
//! Every limit is a named field with its unit last (`payment_window_ms_max`).
//! Windows are configurable so a demo or test can use seconds (SPEC §12).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MIN};
use crate::money::{Asset, AssetSpec, Fiat, FiatSpec};

/// All tunables of the engine. Part of the persisted state, so a restart
/// keeps the rules trades were opened under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Tradeable coins and their scale and maximum.
    pub assets: BTreeMap<Asset, AssetSpec>,
    /// Accepted fiat currencies.
    pub fiats: BTreeMap<Fiat, FiatSpec>,
    /// Time after `PAID` before either side may appeal (SPEC §10: 30 min).
    pub appeal_after_ms: i64,
    /// Time after `PAID` when an unreleased, unappealed trade is appealed by
    /// the system (SPEC §10: 24 h).
    pub auto_appeal_after_ms: i64,
    /// Payment window of fast-match trades (SPEC §9: 10 min).
    pub merchant_window_ms: i64,
    /// Payment window of a listing that names none (SPEC §7: 15 min).
    pub payment_window_ms_default: i64,
    /// Shortest payment window a listing may set (SPEC §7: 5 min).
    pub payment_window_ms_min: i64,
    /// Longest payment window a listing may set (SPEC §7: 60 min).
    pub payment_window_ms_max: i64,
    /// Life of a resting buy that names none (SPEC §8: 10 min).
    pub resting_buy_ms_default: i64,
    /// Longest life a resting buy may ask for.
    pub resting_buy_ms_max: i64,
    /// Merchants tried for one fast sell before the coin goes back (SPEC §9: 3).
    pub fast_match_tries_max: u32,
    /// Buyer cancels (own and timeouts) in one UTC day before buying stops
    /// until the next day (SPEC §8: 3).
    pub buyer_cancels_per_day_max: u32,
    /// Wrong fund passwords in a row before a lockout (SPEC §6: 5).
    pub fund_password_attempts_max: u32,
    /// How long a fund-password lockout lasts (SPEC §6: 15 min).
    pub fund_password_lock_ms: i64,
    /// Live (active or paused) listings per user (SPEC §18: 20).
    pub live_listings_per_user_max: u32,
    /// Resting buys per user (SPEC §18: 5).
    pub resting_buys_per_user_max: u32,
    /// Open trades a user has as the buyer of listings at once (SPEC §18:
    /// every list is bounded; without it one buyer could hold every listing
    /// of a market in unpaid trades for a whole payment window). Fast sells
    /// are bounded by the merchant's capacity instead.
    pub open_buys_per_user_max: u32,
    /// Bound payment methods per user (SPEC §18: 10).
    pub methods_per_user_max: u32,
    /// Longest text (appeal reason, evidence description, terms), in characters.
    pub text_chars_max: usize,
    /// Longest chat message, in characters (SPEC §18: 2,000).
    pub chat_chars_max: usize,
    /// Chat messages per trade (SPEC §18: every list is bounded).
    pub chat_messages_per_trade_max: u32,
    /// Chat messages with a file per trade (as attachments per appeal, §11).
    pub chat_files_per_trade_max: u32,
    /// Largest page a list call returns (SPEC §18: 200).
    pub page_size_max: u32,
    /// Event streams one user may hold open at once (SPEC §18: 5).
    pub subscribers_per_user_max: u32,
    /// How long events are kept for resuming streams (SPEC §13: 7 days).
    pub event_retention_ms: i64,
    /// Attachments per appeal (SPEC §11: 10).
    pub attachments_per_appeal_max: u32,
    /// Largest attachment (SPEC §11: 5 MiB).
    pub attachment_bytes_max: u64,
    /// Evidence items (text or file) per appeal; bounds the appeal's size.
    pub evidence_per_appeal_max: u32,
    /// Window over which the seller record is computed (SPEC §8: 30 days).
    pub seller_record_window_ms: i64,
    /// Ended trades remembered per seller for the record.
    pub seller_record_entries_max: usize,
    /// Users one user may block.
    pub blocks_per_user_max: u32,
    /// Payment methods one listing may name.
    pub methods_per_listing_max: usize,
    /// Price quotes one merchant may declare.
    pub quotes_per_merchant_max: usize,
    /// Listings one match attempt examines at most, in price order: a taker
    /// buy, a resting buy offered the book, and each resting buy at a new
    /// reference. Bounds what one command costs however large the book.
    pub match_scan_max: usize,
    /// How long ended trades, listings and buy orders stay in the engine's
    /// working set before it forgets them. History lives in storage; this
    /// keeps memory and snapshots bounded by activity, not by age.
    pub ended_retention_ms: i64,
    /// Lowest premium a floating listing may set, in basis points (−20%).
    pub premium_bps_min: i32,
    /// Highest premium a floating listing may set, in basis points (+20%).
    pub premium_bps_max: i32,
    /// A reference older than this stops floating listings from matching.
    pub reference_max_age_ms: i64,
    /// How long verified payments are kept for reconciliation (SPEC §20).
    pub payment_log_retention_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let mut assets = BTreeMap::new();
        for code in ["EB", "USDT"] {
            let asset = Asset::new(code).unwrap_or_else(|e| panic!("built-in asset: {e}"));
            assets.insert(
                asset,
                AssetSpec {
                    scale: 8,
                    amount_max: Decimal::from(100_000_000u64),
                },
            );
        }
        let mut fiats = BTreeMap::new();
        let cny = Fiat::new("CNY").unwrap_or_else(|e| panic!("built-in fiat: {e}"));
        fiats.insert(
            cny,
            FiatSpec {
                amount_max: Decimal::from(100_000_000u64),
                price_max: Decimal::from(1_000_000u64),
            },
        );
        Self {
            assets,
            fiats,
            appeal_after_ms: 30 * MS_PER_MIN,
            auto_appeal_after_ms: 24 * MS_PER_HOUR,
            merchant_window_ms: 10 * MS_PER_MIN,
            payment_window_ms_default: 15 * MS_PER_MIN,
            payment_window_ms_min: 5 * MS_PER_MIN,
            payment_window_ms_max: 60 * MS_PER_MIN,
            resting_buy_ms_default: 10 * MS_PER_MIN,
            resting_buy_ms_max: 24 * MS_PER_HOUR,
            fast_match_tries_max: 3,
            buyer_cancels_per_day_max: 3,
            fund_password_attempts_max: 5,
            fund_password_lock_ms: 15 * MS_PER_MIN,
            live_listings_per_user_max: 20,
            resting_buys_per_user_max: 5,
            open_buys_per_user_max: 10,
            methods_per_user_max: 10,
            text_chars_max: 2_000,
            chat_chars_max: 2_000,
            chat_messages_per_trade_max: 1_000,
            chat_files_per_trade_max: 10,
            page_size_max: 200,
            subscribers_per_user_max: 5,
            event_retention_ms: 7 * MS_PER_DAY,
            attachments_per_appeal_max: 10,
            attachment_bytes_max: 5 * 1024 * 1024,
            evidence_per_appeal_max: 50,
            seller_record_window_ms: 30 * MS_PER_DAY,
            seller_record_entries_max: 10_000,
            blocks_per_user_max: 1_000,
            methods_per_listing_max: 10,
            quotes_per_merchant_max: 20,
            match_scan_max: 1_000,
            ended_retention_ms: MS_PER_HOUR,
            premium_bps_min: -2_000,
            premium_bps_max: 2_000,
            reference_max_age_ms: 5 * MS_PER_MIN,
            payment_log_retention_ms: 35 * MS_PER_DAY,
        }
    }
}

impl EngineConfig {
    /// Checks the configuration is coherent (positive windows, min ≤ max).
    ///
    /// # Errors
    /// A sentence naming the first setting that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let windows = [
            ("appeal_after", self.appeal_after_ms),
            ("auto_appeal_after", self.auto_appeal_after_ms),
            ("merchant_window", self.merchant_window_ms),
            ("payment_window_default", self.payment_window_ms_default),
            ("payment_window_min", self.payment_window_ms_min),
            ("payment_window_max", self.payment_window_ms_max),
            ("resting_buy_default", self.resting_buy_ms_default),
            ("resting_buy_max", self.resting_buy_ms_max),
            ("fund_password_lock", self.fund_password_lock_ms),
            ("seller_record_window", self.seller_record_window_ms),
            ("ended_retention", self.ended_retention_ms),
            ("event_retention", self.event_retention_ms),
            ("reference_max_age", self.reference_max_age_ms),
            ("payment_log_retention", self.payment_log_retention_ms),
        ];
        if let Some((name, _)) = windows.iter().find(|(_, ms)| *ms <= 0) {
            return Err(format!("{name} must be longer than zero"));
        }
        if self.premium_bps_min > self.premium_bps_max
            || self.premium_bps_min <= -10_000
            || self.premium_bps_max > 10_000
        {
            return Err(
                "premium bounds must satisfy -10000 < premium_min <= premium_max <= 10000 (bps)"
                    .into(),
            );
        }
        if self.payment_window_ms_min > self.payment_window_ms_max {
            return Err("payment_window_min must not exceed payment_window_max".into());
        }
        let default_window = self.payment_window_ms_default;
        if default_window < self.payment_window_ms_min
            || default_window > self.payment_window_ms_max
        {
            return Err("payment_window_default must lie between the min and max windows".into());
        }
        if self.resting_buy_ms_default > self.resting_buy_ms_max {
            return Err("resting_buy_default must not exceed resting_buy_max".into());
        }
        if self.appeal_after_ms > self.auto_appeal_after_ms {
            return Err("appeal_after must not exceed auto_appeal_after".into());
        }
        if self.assets.is_empty() || self.fiats.is_empty() {
            return Err("at least one asset and one fiat currency must be configured".into());
        }
        if self
            .assets
            .values()
            .any(|a| a.scale > 18 || a.amount_max <= Decimal::ZERO)
        {
            return Err("every asset needs a scale of at most 18 and a positive maximum".into());
        }
        let counts = [
            (
                "buyer_cancels_per_day",
                u64::from(self.buyer_cancels_per_day_max),
            ),
            (
                "live_listings_per_user",
                u64::from(self.live_listings_per_user_max),
            ),
            (
                "resting_buys_per_user",
                u64::from(self.resting_buys_per_user_max),
            ),
            ("open_buys_per_user", u64::from(self.open_buys_per_user_max)),
            ("methods_per_user", u64::from(self.methods_per_user_max)),
            ("chat_chars", self.chat_chars_max as u64),
            (
                "chat_messages_per_trade",
                u64::from(self.chat_messages_per_trade_max),
            ),
            (
                "chat_files_per_trade",
                u64::from(self.chat_files_per_trade_max),
            ),
            ("page_size", u64::from(self.page_size_max)),
            (
                "subscribers_per_user",
                u64::from(self.subscribers_per_user_max),
            ),
            (
                "attachments_per_appeal",
                u64::from(self.attachments_per_appeal_max),
            ),
            ("attachment_size", self.attachment_bytes_max),
            (
                "evidence_per_appeal",
                u64::from(self.evidence_per_appeal_max),
            ),
            ("blocks_per_user", u64::from(self.blocks_per_user_max)),
            ("methods_per_listing", self.methods_per_listing_max as u64),
            ("quotes_per_merchant", self.quotes_per_merchant_max as u64),
            ("match_scan", self.match_scan_max as u64),
            ("text_chars", self.text_chars_max as u64),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.attachments_per_appeal_max > self.evidence_per_appeal_max {
            return Err(
                "attachments_per_appeal must not exceed evidence_per_appeal (files are evidence)"
                    .into(),
            );
        }
        if self.fast_match_tries_max == 0 || self.fund_password_attempts_max == 0 {
            return Err(
                "fast_match_tries_max and fund_password_attempts_max must be at least 1".into(),
            );
        }
        Ok(())
    }
}
