//! The seller record shown when browsing (SPEC §8): trades completed in 30
//! days, the 30-day completion rate and the median release time.
//!
//! Completion rate is `released by the seller ÷ all released` over trades
//! released in the window: a release CS had to force after an appeal is the
//! seller's failure. Cancels (before payment, refunds, withdrawn appeals) are
//! the buyer's doing and do not count against a seller.

use std::collections::VecDeque;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;

/// How one of a seller's paid trades ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// When it ended.
    pub ended_at: Timestamp,
    /// Milliseconds from paid to released by the seller; `None` when CS had to release it.
    pub release_ms: Option<i64>,
}

/// A seller's recent paid trades, oldest first, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerHistory {
    entries: VecDeque<RecordEntry>,
}

/// The figures shown next to a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerRecord {
    /// Trades released in the window.
    pub completed: u32,
    /// `completed ÷ ended after payment`, 0–1 to 4 places; `None` with no trades.
    pub completion_rate: Option<Decimal>,
    /// Median paid→released time; `None` with no releases.
    pub median_release_ms: Option<i64>,
}

impl SellerHistory {
    /// Records an ended paid trade, dropping the oldest past `entries_max`.
    pub fn push(&mut self, entry: RecordEntry, entries_max: usize) {
        self.entries.push_back(entry);
        while self.entries.len() > entries_max {
            self.entries.pop_front();
        }
    }

    /// The record over the `window_ms` before `now`.
    pub fn record(&self, now: Timestamp, window_ms: i64) -> SellerRecord {
        let since = now.plus_ms(-window_ms);
        let recent = self.entries.iter().filter(|e| e.ended_at > since);
        let mut releases: Vec<i64> = Vec::new();
        let mut ended = 0u32;
        for e in recent {
            ended += 1;
            if let Some(ms) = e.release_ms {
                releases.push(ms);
            }
        }
        releases.sort_unstable();
        let completed = u32::try_from(releases.len()).unwrap_or(u32::MAX);
        let completion_rate =
            (ended > 0).then(|| (Decimal::from(completed) / Decimal::from(ended)).round_dp(4));
        let median_release_ms = match releases.len() {
            0 => None,
            n if n % 2 == 1 => Some(releases[n / 2]),
            n => Some((releases[n / 2 - 1] + releases[n / 2]) / 2),
        };
        SellerRecord {
            completed,
            completion_rate,
            median_release_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_only_the_window_and_takes_the_median() {
        let mut h = SellerHistory::default();
        let day = crate::ids::MS_PER_DAY;
        h.push(
            RecordEntry {
                ended_at: Timestamp(0),
                release_ms: Some(1),
            },
            100,
        );
        h.push(
            RecordEntry {
                ended_at: Timestamp(40 * day),
                release_ms: Some(60_000),
            },
            100,
        );
        h.push(
            RecordEntry {
                ended_at: Timestamp(41 * day),
                release_ms: Some(120_000),
            },
            100,
        );
        h.push(
            RecordEntry {
                ended_at: Timestamp(42 * day),
                release_ms: None,
            },
            100,
        );
        let r = h.record(Timestamp(45 * day), 30 * day);
        assert_eq!(r.completed, 2);
        assert_eq!(r.completion_rate, Some(Decimal::new(6667, 4)));
        assert_eq!(r.median_release_ms, Some(90_000));
        assert_eq!(
            h.record(Timestamp(200 * day), 30 * day).completion_rate,
            None
        );
    }

    #[test]
    fn history_is_bounded() {
        let mut h = SellerHistory::default();
        for i in 0..10 {
            h.push(
                RecordEntry {
                    ended_at: Timestamp(i),
                    release_ms: Some(i),
                },
                3,
            );
        }
        assert_eq!(h.record(Timestamp(10), 1_000).completed, 3);
    }
}
