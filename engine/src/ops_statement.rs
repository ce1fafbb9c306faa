//! Daily statements (SPEC §20): each day's flows of coin per asset, the
//! balances a day opened with, and the statement whose closing total must
//! equal the sum of balances (L1 for the day).

use crate::engine::{Engine, invariant};
use crate::ids::Timestamp;
use crate::money::{Asset, CoinAmount};

/// Money in and out of the books on one UTC day, per asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayFlows {
    /// Deposited.
    pub deposits: CoinAmount,
    /// Withdrawn.
    pub withdrawals: CoinAmount,
    /// Released to buyers.
    pub released: CoinAmount,
    /// Returned to sellers (cancelled trades, refunds).
    pub returned: CoinAmount,
}

/// A daily statement (SPEC §20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The asset.
    pub asset: Asset,
    /// The UTC day (days since the epoch).
    pub day: i64,
    /// Coin on the books when the day began.
    pub opening: rust_decimal::Decimal,
    /// The day's flows.
    pub flows: DayFlows,
    /// `opening + deposits − withdrawals`.
    pub closing: rust_decimal::Decimal,
    /// Σ balances (available + escrowed) at the day's end (or now, for
    /// today).
    pub balances: rust_decimal::Decimal,
    /// L1 for the day: `closing == balances`.
    pub balanced: bool,
}

impl Engine {
    /// Counts a flow of coin on `now`'s UTC day.
    pub(crate) fn count_flow(
        &mut self,
        asset: Asset,
        now: Timestamp,
        f: impl FnOnce(&mut DayFlows) -> &mut CoinAmount,
        amount: CoinAmount,
    ) {
        let flows = self.state.days.entry((asset, now.utc_day())).or_default();
        let slot = f(flows);
        *slot = invariant(slot.checked_add(amount), "daily flow overflow");
    }

    /// At the first command of a new UTC day: Σ balances per asset as the
    /// day began (the previous days ended with them), for the statements'
    /// L1 check. Empty on any other command. The very first command's day
    /// opens at zero: every day before it ended with nothing on the books.
    pub(crate) fn day_opening(&self, now: Timestamp) -> Vec<((Asset, i64), rust_decimal::Decimal)> {
        let day = now.utc_day();
        if self.state.clock.utc_day() >= day {
            return Vec::new();
        }
        self.config
            .assets
            .keys()
            .map(|asset| ((*asset, day), self.total_balances(*asset)))
            .collect()
    }

    fn total_balances(&self, asset: Asset) -> rust_decimal::Decimal {
        // Only this asset's balances are sorted (in key order, so the sum
        // is computed the same way in every run).
        self.state
            .balances
            .sorted_where(|(_, a)| *a == asset)
            .into_iter()
            .map(|(_, b)| b.available.value() + b.escrowed.value())
            .sum()
    }

    /// The statement of `asset` for UTC day `day` (days since the epoch).
    pub fn statement(&self, asset: Asset, day: i64) -> Statement {
        let before: rust_decimal::Decimal = self
            .state
            .days
            .range((asset, i64::MIN)..(asset, day))
            .map(|(_, f)| f.deposits.value() - f.withdrawals.value())
            .sum();
        let flows = self
            .state
            .days
            .get(&(asset, day))
            .copied()
            .unwrap_or_default();
        let closing = before + flows.deposits.value() - flows.withdrawals.value();
        // Balances only change with commands: the day ended with what the
        // first later day with commands opened with, or what they are now.
        let balances = self
            .state
            .day_opening_balances
            .range((asset, day + 1)..=(asset, i64::MAX))
            .next()
            .map_or_else(|| self.total_balances(asset), |(_, b)| *b);
        Statement {
            asset,
            day,
            opening: before,
            flows,
            closing,
            balances,
            balanced: closing == balances,
        }
    }
}
