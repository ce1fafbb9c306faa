//! The balance moves every handler uses (SPEC §4): credit, debit, escrow,
//! unescrow and settle, each marking the balance touched so the command
//! emits one `BalanceChanged` per balance with its final values.

use crate::engine::{Balance, Engine, invariant};
use crate::ids::UserId;
use crate::money::{Asset, CoinAmount};
use crate::rejection::Rejection;

impl Engine {
    /// A user's balance of an asset (zero if never touched).
    pub fn balance(&self, user: UserId, asset: Asset) -> Balance {
        self.state
            .balances
            .get(&(user, asset))
            .copied()
            .unwrap_or_default()
    }

    fn balance_mut(&mut self, user: UserId, asset: Asset) -> &mut Balance {
        if !self.touched.contains(&(user, asset)) {
            self.touched.push((user, asset));
        }
        self.state.balances.get_or_default((user, asset))
    }

    /// `available += amount`.
    pub(crate) fn credit_available(&mut self, user: UserId, asset: Asset, amount: CoinAmount) {
        let b = self.balance_mut(user, asset);
        b.available = invariant(b.available.checked_add(amount), "available overflow");
    }

    /// `available −= amount`; the caller checked it is there.
    pub(crate) fn debit_available(&mut self, user: UserId, asset: Asset, amount: CoinAmount) {
        let b = self.balance_mut(user, asset);
        b.available = invariant(
            b.available.checked_sub(amount),
            "debit of coin not available",
        );
    }

    /// `available → escrowed`; the caller checked it is there.
    pub(crate) fn escrow(&mut self, user: UserId, asset: Asset, amount: CoinAmount) {
        let b = self.balance_mut(user, asset);
        b.available = invariant(
            b.available.checked_sub(amount),
            "escrow of coin not available",
        );
        b.escrowed = invariant(b.escrowed.checked_add(amount), "escrow overflow");
    }

    /// `escrowed → available` (a cancel returns coin to the seller).
    pub(crate) fn unescrow(&mut self, user: UserId, asset: Asset, amount: CoinAmount) {
        let b = self.balance_mut(user, asset);
        b.escrowed = invariant(
            b.escrowed.checked_sub(amount),
            "unescrow of coin not escrowed",
        );
        b.available = invariant(b.available.checked_add(amount), "available overflow");
    }

    /// Seller's escrow → buyer's available (a release).
    pub(crate) fn settle(
        &mut self,
        seller: UserId,
        buyer: UserId,
        asset: Asset,
        amount: CoinAmount,
    ) {
        let s = self.balance_mut(seller, asset);
        s.escrowed = invariant(
            s.escrowed.checked_sub(amount),
            "release of coin not escrowed",
        );
        self.credit_available(buyer, asset, amount);
    }

    /// Checks `available ≥ needed`.
    pub(crate) fn require_available(
        &self,
        user: UserId,
        asset: Asset,
        needed: CoinAmount,
    ) -> Result<(), Rejection> {
        let available = self.balance(user, asset).available;
        if available < needed {
            return Err(Rejection::InsufficientBalance {
                asset,
                needed: needed.value(),
                available: available.value(),
            });
        }
        Ok(())
    }
}
