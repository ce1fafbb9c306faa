//! Account commands: deposits and withdrawals (SPEC §4), payment methods
//! (§5), the fund password (§6), blocks (§8) and merchant registration (§9).

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::command::{FundPasswordProof, Verdict};
use crate::engine::{Engine, ExternalRecord, TransferKind};
use crate::event::EventKind;
use crate::ids::{MethodId, Timestamp, UserId};
use crate::merchant::Merchant;
use crate::money::{Asset, CoinAmount};
use crate::rejection::Rejection;
use crate::users::{FundPassword, Method, MethodDetails};

/// Longest external reference, in bytes.
pub const EXTERNAL_REF_BYTES_MAX: usize = 128;
/// Longest fund-password hash string accepted from the shell.
pub const PASSWORD_HASH_BYTES_MAX: usize = 512;

impl Engine {
    /// Validates a transfer and tells whether it repeats an earlier one.
    fn check_transfer(
        &self,
        kind: TransferKind,
        user: UserId,
        asset: Asset,
        amount: Decimal,
        external_ref: &str,
    ) -> Result<(CoinAmount, bool), Rejection> {
        if external_ref.is_empty() || external_ref.len() > EXTERNAL_REF_BYTES_MAX {
            return Err(Rejection::field(
                "external_ref",
                format!("must be 1 to {EXTERNAL_REF_BYTES_MAX} bytes"),
            ));
        }
        if let Some(why) = crate::args::control_in(external_ref, false) {
            return Err(Rejection::field("external_ref", why));
        }
        let amount = self.coin_arg("amount", amount, asset)?;
        match self.state.external_refs.get(external_ref) {
            None => Ok((amount, false)),
            Some(r)
                if r.kind == kind && r.user == user && r.asset == asset && r.amount == amount =>
            {
                Ok((amount, true))
            }
            Some(_) => Err(Rejection::ExternalRefReused(external_ref.to_owned())),
        }
    }

    pub(crate) fn deposit(
        &mut self,
        user: UserId,
        asset: Asset,
        amount: Decimal,
        external_ref: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let (amount, repeat) =
            self.check_transfer(TransferKind::Deposit, user, asset, amount, external_ref)?;
        if repeat {
            return Ok(());
        }
        self.user_mut(user);
        self.credit_available(user, asset, amount);
        self.count_flow(asset, now, |f| &mut f.deposits, amount);
        let totals = self.state.totals.entry(asset).or_default();
        totals.deposited = crate::engine::invariant(
            totals.deposited.checked_add(amount),
            "deposit total overflow",
        );
        let record = ExternalRecord {
            kind: TransferKind::Deposit,
            user,
            asset,
            amount,
        };
        self.state
            .external_refs
            .insert(external_ref.to_owned(), record);
        let external_ref = external_ref.to_owned();
        self.emit(
            now,
            EventKind::Deposited {
                user,
                asset,
                amount,
                external_ref,
            },
        );
        Ok(())
    }

    pub(crate) fn withdraw(
        &mut self,
        user: UserId,
        asset: Asset,
        amount: Decimal,
        external_ref: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let (amount, repeat) =
            self.check_transfer(TransferKind::Withdraw, user, asset, amount, external_ref)?;
        if repeat {
            return Ok(());
        }
        // Never takes escrowed coin (SPEC §4).
        self.require_available(user, asset, amount)?;
        self.debit_available(user, asset, amount);
        self.count_flow(asset, now, |f| &mut f.withdrawals, amount);
        let totals = self.state.totals.entry(asset).or_default();
        totals.withdrawn = crate::engine::invariant(
            totals.withdrawn.checked_add(amount),
            "withdraw total overflow",
        );
        let record = ExternalRecord {
            kind: TransferKind::Withdraw,
            user,
            asset,
            amount,
        };
        self.state
            .external_refs
            .insert(external_ref.to_owned(), record);
        let external_ref = external_ref.to_owned();
        self.emit(
            now,
            EventKind::Withdrawn {
                user,
                asset,
                amount,
                external_ref,
            },
        );
        Ok(())
    }

    pub(crate) fn register_merchant(
        &mut self,
        user: UserId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        if self.state.merchants.contains_key(&user) {
            return Ok(()); // Registering twice changes nothing.
        }
        self.user_mut(user);
        self.state.merchants.insert(user, Merchant::default());
        self.emit(now, EventKind::MerchantRegistered { merchant: user });
        Ok(())
    }

    pub(crate) fn bind_method(
        &mut self,
        user: UserId,
        details: &MethodDetails,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        details
            .validate()
            .map_err(|(field, reason)| Rejection::field(field, reason))?;
        self.check_channel_method(user, details)?;
        // One account bound once: a second copy would only split its
        // listings and trades between two ids.
        if let Some(bound) = self.user(user).and_then(|u| {
            u.methods
                .iter()
                .find(|(_, m)| m.details.same_account(details))
                .map(|(id, _)| *id)
        }) {
            let field = match details {
                MethodDetails::Channel { .. } => "channel",
                _ => "account",
            };
            return Err(Rejection::field(
                field,
                format!("is already bound as {bound}"),
            ));
        }
        let max = self.config.methods_per_user_max;
        let count = self.user(user).map_or(0, |u| u.methods.len());
        if count >= max as usize {
            return Err(Rejection::LimitReached {
                what: "payment methods per user",
                max: max.into(),
            });
        }
        let id = MethodId(self.next_id());
        let method = Method {
            details: Arc::new(details.clone()),
            open_trades: 0,
            live_listings: 0,
        };
        self.user_mut(user).methods.insert(id, method);
        self.emit(
            now,
            EventKind::MethodBound {
                user,
                method: id,
                kind: details.kind(),
            },
        );
        Ok(())
    }

    pub(crate) fn remove_method(
        &mut self,
        user: UserId,
        method: MethodId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let m = self
            .user(user)
            .and_then(|u| u.methods.get(&method))
            .ok_or(Rejection::UnknownMethod(method))?;
        if m.open_trades > 0 || m.live_listings > 0 {
            let uses = format!(
                "{} open trade(s) and {} live listing(s)",
                m.open_trades, m.live_listings
            );
            return Err(Rejection::MethodInUse { method, uses });
        }
        self.user_mut(user).methods.remove(&method);
        self.emit(now, EventKind::MethodRemoved { user, method });
        Ok(())
    }

    /// Checks a fund-password verdict (SPEC §6): a password is set, the
    /// user is not locked, the verdict is about the current hash, and the
    /// password matched. Each operation calls this last, after every other
    /// check, so a wrong password is recorded (by `apply_into`) only for a
    /// command that would otherwise have been carried out.
    pub(crate) fn check_proof(
        &self,
        user: UserId,
        proof: FundPasswordProof,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let u = self.user(user).ok_or(Rejection::NoFundPassword)?;
        let fund = u.fund_password.as_ref().ok_or(Rejection::NoFundPassword)?;
        if let Some(until) = u.lock_at(now) {
            return Err(Rejection::FundPasswordLocked { until });
        }
        if fund.version != proof.version {
            // Checked against a hash that changed since: not counted.
            return Err(Rejection::StaleFundPasswordProof);
        }
        match proof.verdict {
            Verdict::Matched => Ok(()),
            Verdict::Wrong => Err(Rejection::WrongFundPassword),
            // The lock ended between the shell's look and now.
            Verdict::Unchecked => Err(Rejection::FundPasswordUnchecked),
        }
    }

    /// A right password ends a run of wrong ones.
    pub(crate) fn password_succeeded(&mut self, user: UserId) {
        let u = self.user_mut(user);
        u.password_failures = 0;
    }

    /// Whether `user` may set a fund password now, giving the current one
    /// or not: one who has a password must give it, and not while locked
    /// (SPEC §6). The shell asks before it spends argon2 on the new one; the
    /// command asks again.
    pub fn may_set_fund_password(
        &self,
        user: UserId,
        current_given: bool,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let Some(u) = self.user(user).filter(|u| u.fund_password.is_some()) else {
            return Ok(());
        };
        if !current_given {
            return Err(Rejection::CurrentFundPasswordRequired);
        }
        match u.lock_at(now) {
            Some(until) => Err(Rejection::FundPasswordLocked { until }),
            None => Ok(()),
        }
    }

    pub(crate) fn set_fund_password(
        &mut self,
        user: UserId,
        hash: &str,
        current: Option<FundPasswordProof>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.may_set_fund_password(user, current.is_some(), now)?;
        let version = match self.user(user).and_then(|u| u.fund_password.as_ref()) {
            None => 1,
            Some(existing) => {
                let proof = current.ok_or(Rejection::CurrentFundPasswordRequired)?;
                self.check_proof(user, proof, now)?;
                existing.version + 1
            }
        };
        // The shell hashes every change it expects to apply; one it sends
        // unhashed (refused by the checks above when the shell looked) is
        // refused here, never applied.
        if hash.trim().is_empty() || hash.len() > PASSWORD_HASH_BYTES_MAX {
            return Err(Rejection::field(
                "new_password",
                "hash is missing or too long",
            ));
        }
        let u = self.user_mut(user);
        u.fund_password = Some(FundPassword {
            hash: hash.to_owned(),
            version,
        });
        u.password_failures = 0;
        self.emit(now, EventKind::FundPasswordSet { user });
        Ok(())
    }

    pub(crate) fn record_password_failure(
        &mut self,
        user: UserId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let u = self.user(user).ok_or(Rejection::NoFundPassword)?;
        if u.fund_password.is_none() {
            return Err(Rejection::NoFundPassword);
        }
        if let Some(until) = u.lock_at(now) {
            return Err(Rejection::FundPasswordLocked { until });
        }
        let attempts_max = self.config.fund_password_attempts_max;
        let lock_ms = self.config.fund_password_lock_ms;
        let u = self.user_mut(user);
        u.password_failures += 1;
        let failures_in_row = u.password_failures;
        let locked_until = (failures_in_row >= attempts_max).then(|| now.plus_ms(lock_ms));
        if locked_until.is_some() {
            u.locked_until = locked_until;
            u.password_failures = 0;
        }
        self.emit(
            now,
            EventKind::FundPasswordFailed {
                user,
                failures_in_row,
                locked_until,
            },
        );
        Ok(())
    }

    pub(crate) fn block(
        &mut self,
        user: UserId,
        target: UserId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        if user == target {
            return Err(Rejection::SelfAction("you cannot block yourself"));
        }
        if self.state.blocks.contains(&(user, target)) {
            return Ok(()); // Already blocked.
        }
        let max = self.config.blocks_per_user_max;
        if self.user(user).is_some_and(|u| u.blocked >= max) {
            return Err(Rejection::LimitReached {
                what: "blocked users",
                max: max.into(),
            });
        }
        self.state.blocks.insert((user, target));
        self.user_mut(user).blocked += 1;
        self.emit(now, EventKind::Blocked { user, target });
        Ok(())
    }

    pub(crate) fn unblock(
        &mut self,
        user: UserId,
        target: UserId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        if !self.state.blocks.remove(&(user, target)) {
            return Ok(()); // Nothing to lift.
        }
        let u = self.user_mut(user);
        u.blocked = u.blocked.saturating_sub(1);
        self.emit(now, EventKind::Unblocked { user, target });
        Ok(())
    }

    /// A seller's bound method, shared cheaply with the trades that use it.
    pub(crate) fn method_details(
        &self,
        user: UserId,
        method: MethodId,
    ) -> Option<Arc<MethodDetails>> {
        let m = self.user(user)?.methods.get(&method)?;
        Some(Arc::clone(&m.details))
    }

    /// Adjusts a method's use counters (by +1 or −1).
    pub(crate) fn method_uses(
        &mut self,
        user: UserId,
        method: MethodId,
        trades: i32,
        listings: i32,
    ) {
        let u = self.user_mut(user);
        let m = crate::engine::invariant(u.methods.get_mut(&method), "method in use was removed");
        m.open_trades = m.open_trades.saturating_add_signed(trades);
        m.live_listings = m.live_listings.saturating_add_signed(listings);
    }
}
