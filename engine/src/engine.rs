//! The engine: state, the one `apply` entry point, and event emission.
//! Balance moves are in `balances.rs`, field checks in `args.rs`.
//!
//! Every command is validated completely before anything changes; once a
//! handler starts mutating it cannot fail. So a rejected command changes
//! nothing, and an accepted one applies whole — the atomicity storage relies
//! on (SPEC §10: "either all of it is durable, or none of it is").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::appeal::Appeal;
use crate::book::Book;
use crate::buy::BuyOrder;
use crate::changed::Changed;
use crate::command::Command;
use crate::config::EngineConfig;
use crate::event::{Event, EventKind};
use crate::hashed::HashedMap;
use crate::ids::{AnomalyId, BuyOrderId, ListingId, MistakeId, Timestamp, TradeId, UserId};
use crate::listing::Listing;
use crate::merchant::Merchant;
use crate::money::{Asset, CoinAmount, Fiat};
use crate::ops_statement::DayFlows;
use crate::payment::Anomaly;
use crate::per_user::{PerUser, UserMap};
use crate::pricing::Reference;
use crate::recon::{BillRecord, LoggedPayment, Mistake, MistakeKind};
use crate::record::SellerHistory;
use crate::rejection::Rejection;
use crate::slab::IdSlab;
use crate::timers::Deadlines;
use crate::trade::Trade;
use crate::users::UserState;

/// Above this many entries, debug builds skip the full invariant check after
/// each command (it is O(state)); tests call [`Engine::check_invariants`].
pub const DEBUG_FULL_CHECK_ENTRIES_MAX: usize = 2_000;

/// One account's coin of one asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Spendable.
    pub available: CoinAmount,
    /// Locked for live listings and open trades as seller.
    pub escrowed: CoinAmount,
}

/// Back-office money in and out of the platform, per asset (for L1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Σ deposits.
    pub deposited: CoinAmount,
    /// Σ withdrawals.
    pub withdrawn: CoinAmount,
}

/// Whether an external reference was a deposit or a withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// Coin in.
    Deposit,
    /// Coin out.
    Withdraw,
}

/// What an external reference was used for, to answer repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRecord {
    /// Deposit or withdrawal.
    pub kind: TransferKind,
    /// Whose account.
    pub user: UserId,
    /// Which asset.
    pub asset: Asset,
    /// How much.
    pub amount: CoinAmount,
}

/// The engine's whole state. Serializable, so storage can snapshot it and
/// tests can compare digests before a crash and after recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Latest `now` applied; time never runs backwards inside the engine.
    pub clock: Timestamp,
    /// Sequence number the next event gets (the first is 1).
    pub next_seq: u64,
    /// Next id for listings, trades, buy orders, methods and evidence.
    pub next_id: u64,
    /// Balances per (user, asset).
    pub balances: HashedMap<(UserId, Asset), Balance>,
    /// Deposits and withdrawals per asset.
    pub totals: BTreeMap<Asset, Totals>,
    /// Used external references (deposit/withdraw idempotency).
    pub external_refs: BTreeMap<String, ExternalRecord>,
    /// Non-money user state.
    pub users: UserMap<UserState>,
    /// `(blocker, blocked)` pairs.
    pub blocks: BTreeSet<(UserId, UserId)>,
    /// Every listing ever published.
    pub listings: IdSlab<ListingId, Box<Listing>>,
    /// Active listings in matching order.
    pub book: Book,
    /// Every buy order that rested.
    pub buy_orders: BTreeMap<BuyOrderId, BuyOrder>,
    /// Resting buy orders per market, oldest first.
    pub resting: BTreeMap<(Asset, Fiat), BTreeSet<BuyOrderId>>,
    /// Every trade (in a slab by id, serialized as the ordered map).
    pub trades: IdSlab<TradeId, Box<Trade>>,
    /// Appeals by trade.
    pub appeals: BTreeMap<TradeId, Appeal>,
    /// Open appeals, oldest first: the CS queue.
    pub appeal_queue: BTreeSet<(Timestamp, TradeId)>,
    /// Partner merchants.
    pub merchants: BTreeMap<UserId, Merchant>,
    /// Pending deadlines.
    pub deadlines: Deadlines,
    /// Paid trades' outcomes per seller, for the seller record.
    pub seller_history: BTreeMap<UserId, SellerHistory>,
    /// Each user's trades (as either party), for listing them.
    pub user_trades: PerUser<TradeId>,
    /// Each user's listings.
    pub user_listings: PerUser<ListingId>,
    /// Each user's buy orders.
    pub user_buy_orders: PerUser<BuyOrderId>,
    /// Payment anomalies (SPEC §19), kept for good: they are rare and each
    /// is money someone must account for.
    pub anomalies: BTreeMap<AnomalyId, Anomaly>,
    /// Anomalies by (channel, provider transaction id), to recognise repeats.
    pub anomaly_txns: BTreeMap<(String, String), AnomalyId>,
    /// Anomalies CS has not closed, oldest first.
    pub open_anomalies: BTreeSet<AnomalyId>,
    /// Each payment channel's one owner (SPEC §19).
    pub channel_owners: BTreeMap<String, UserId>,
    /// Each market's reference price (SPEC §22).
    pub references: BTreeMap<(Asset, Fiat), Reference>,
    /// Verified payments kept for reconciliation (SPEC §20), by (channel, txn).
    pub payment_log: BTreeMap<(String, String), LoggedPayment>,
    /// The same, by (channel, paid at, txn), for a day's range.
    pub payment_times: BTreeSet<(String, Timestamp, String)>,
    /// The same, by (logged at, channel, txn), for expiry.
    pub payment_expiry: BTreeSet<(Timestamp, String, String)>,
    /// Bills imported, by (channel, day).
    pub bills: BTreeMap<(String, String), BillRecord>,
    /// Reconciliation mistakes.
    pub mistakes: BTreeMap<MistakeId, Mistake>,
    /// Mistakes CS has not handled, oldest first.
    pub open_mistakes: BTreeSet<MistakeId>,
    /// (channel, txn, kind) of every mistake, so a bill imported again (or
    /// corrected) does not repeat one.
    pub mistake_keys: BTreeSet<(String, String, MistakeKind)>,
    /// Coin flows per (asset, UTC day), for statements.
    pub days: BTreeMap<(Asset, i64), DayFlows>,
    /// Σ balances per asset when each UTC day's first command came.
    pub day_opening_balances: BTreeMap<(Asset, i64), rust_decimal::Decimal>,
}

/// The deterministic P2P OTC engine.
///
/// Drive it with [`Engine::apply`]; ask [`Engine::next_deadline`] when to
/// call it with [`Command::FireDue`] next. It never reads a clock, spawns,
/// locks or touches disk.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) state: State,
    /// Events of the command being applied.
    pub(crate) events: Vec<Event>,
    /// Balances touched by the command being applied, in first-touch order.
    pub(crate) touched: Vec<(UserId, Asset)>,
    /// Records changed since the shell last took them.
    pub(crate) changed: Changed,
    /// Buyers an ended trade of the command being applied took below the
    /// open-buys bound: their resting buys are offered the book again.
    pub(crate) reoffer: Vec<UserId>,
}

/// Panics with a clear message: a broken engine invariant is a bug, and
/// continuing would risk money (TIGER_STYLE: programmer errors crash).
#[track_caller]
pub(crate) fn invariant<T>(value: Option<T>, what: &str) -> T {
    match value {
        Some(v) => v,
        None => panic!("engine invariant broken: {what}"),
    }
}

impl Engine {
    /// A fresh engine.
    ///
    /// # Errors
    /// The configuration is incoherent (see [`EngineConfig::validate`]).
    pub fn new(config: EngineConfig) -> Result<Self, String> {
        config.validate()?;
        let state = State {
            next_seq: 1,
            next_id: 1,
            ..State::default()
        };
        Ok(Self {
            config,
            state,
            events: Vec::new(),
            touched: Vec::new(),
            changed: Changed::default(),
            reoffer: Vec::new(),
        })
    }

    /// Rebuilds an engine from a persisted state, checking it first.
    ///
    /// # Errors
    /// The configuration is incoherent or the state breaks an invariant;
    /// the message names what is wrong.
    pub fn from_state(config: EngineConfig, state: State) -> Result<Self, String> {
        config.validate()?;
        let engine = Self {
            config,
            state,
            events: Vec::new(),
            touched: Vec::new(),
            changed: Changed::default(),
            reoffer: Vec::new(),
        };
        engine.check_invariants()?;
        Ok(engine)
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Replaces the configuration (new windows apply to deadlines set from
    /// now on). Storage journals the change so replay uses the same rules.
    ///
    /// # Errors
    /// The configuration is incoherent.
    pub fn set_config(&mut self, config: EngineConfig) -> Result<(), String> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The whole state (read-only).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Consumes the engine, returning its state (for snapshots).
    pub fn into_state(self) -> State {
        self.state
    }

    /// The sequence number of the last event emitted (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.state.next_seq - 1
    }

    /// Applies one command at `now`.
    ///
    /// `now` earlier than the engine's clock is treated as the clock, so time
    /// never runs backwards. On success, returns the events it caused (maybe
    /// none, for an idempotent repeat); on rejection nothing changed.
    ///
    /// # Errors
    /// A [`Rejection`] saying what was wrong, in words a user can act on.
    pub fn apply(&mut self, command: &Command, now: Timestamp) -> Result<Vec<Event>, Rejection> {
        let mut events = Vec::new();
        self.apply_into(command, now, &mut events).map(|()| events)
    }

    /// [`Engine::apply`], appending the events to `out` instead of allocating:
    /// the writer loop reuses one buffer.
    ///
    /// # Errors
    /// As [`Engine::apply`]; `out` is left as it was.
    pub fn apply_into(
        &mut self,
        command: &Command,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let now = now.max(self.state.clock);
        let seq_before = self.state.next_seq;
        let out_len = out.len();
        // `changed` speaks of the last applied command only.
        self.changed.clear();
        debug_assert!(self.events.is_empty() && self.touched.is_empty());
        std::mem::swap(&mut self.events, out);
        // Balances as the day began, kept only if this command is applied
        // (a refused command changes nothing, and is never replayed).
        let day_opening = self.day_opening(now);
        self.reoffer.clear();
        let mut result = self.dispatch(command, now);
        if matches!(result, Err(Rejection::WrongFundPassword))
            && let Some((user, _)) = command.password_proof()
        {
            // A wrong fund password on an otherwise valid protected command:
            // the command is applied as a recorded failure (SPEC §6). The
            // password is checked last, so nothing has changed yet.
            debug_assert!(
                self.events.len() == out_len
                    && self.state.next_seq == seq_before
                    && self.touched.is_empty(),
                "engine bug: {} changed state before its password check",
                command.name()
            );
            result = self.record_password_failure(user, now);
        }
        if result.is_ok() {
            self.reoffer_freed_buyers(now);
            for (key, total) in day_opening {
                self.state.day_opening_balances.insert(key, total);
            }
            self.state.clock = now;
            self.emit_balances(now);
            self.debug_check();
        }
        std::mem::swap(&mut self.events, out);
        match result {
            Ok(()) => {
                debug_assert_eq!(
                    self.state.next_seq - seq_before,
                    (out.len() - out_len) as u64
                );
                Ok(())
            }
            Err(rejection) => {
                assert!(
                    out.len() == out_len
                        && self.state.next_seq == seq_before
                        && self.touched.is_empty()
                        && self.changed.is_empty(),
                    "engine bug: {} was rejected after changing state ({rejection})",
                    command.name()
                );
                Err(rejection)
            }
        }
    }

    /// The earliest pending deadline: when the shell should next apply
    /// [`Command::FireDue`].
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.state.deadlines.next().map(|(at, _)| at)
    }

    /// Fires every deadline due at `now`; shorthand for `apply(FireDue)`.
    pub fn fire_due(&mut self, now: Timestamp) -> Vec<Event> {
        // FireDue validates nothing, so it cannot be rejected.
        self.apply(&Command::FireDue, now).unwrap_or_default()
    }

    fn dispatch(&mut self, command: &Command, now: Timestamp) -> Result<(), Rejection> {
        use Command as C;
        match command {
            C::Deposit {
                user,
                asset,
                amount,
                external_ref,
            } => self.deposit(*user, *asset, *amount, external_ref, now),
            C::Withdraw {
                user,
                asset,
                amount,
                external_ref,
            } => self.withdraw(*user, *asset, *amount, external_ref, now),
            C::RegisterMerchant { user } => self.register_merchant(*user, now),
            C::BindMethod { user, details } => self.bind_method(*user, details, now),
            C::RemoveMethod { user, method } => self.remove_method(*user, *method, now),
            C::SetFundPassword {
                user,
                hash,
                current,
            } => self.set_fund_password(*user, hash, *current, now),
            C::Block { user, target } => self.block(*user, *target, now),
            C::Unblock { user, target } => self.unblock(*user, *target, now),
            C::PublishListing {
                seller,
                proof,
                spec,
            } => self.publish(*seller, *proof, spec, now),
            C::PauseListing { seller, listing } => self.pause_listing(*seller, *listing, now),
            C::ResumeListing { seller, listing } => self.resume_listing(*seller, *listing, now),
            C::CancelListing { seller, listing } => self.cancel_listing(*seller, *listing, now),
            C::PlaceBuy { buyer, request } => self.place_buy(*buyer, request, now),
            C::CancelBuyOrder { buyer, order } => self.cancel_buy_order(*buyer, *order, now),
            C::SetMerchantCapacity { merchant, capacity } => {
                self.set_capacity(*merchant, capacity, now)
            }
            C::SetMerchantOnline { merchant, online } => self.set_online(*merchant, *online, now),
            C::FastSell {
                seller,
                proof,
                request,
            } => self.fast_sell(*seller, *proof, request, now),
            C::MarkPaid { buyer, trade } => self.mark_paid(*buyer, *trade, now),
            C::CancelTrade { buyer, trade } => self.cancel_trade(*buyer, *trade, now),
            C::Release {
                seller,
                trade,
                proof,
            } => self.release(*seller, *trade, *proof, now),
            C::OpenAppeal {
                user,
                trade,
                reason,
            } => self.open_appeal(*user, *trade, reason, now),
            C::AddEvidence {
                user,
                trade,
                description,
                attachment,
            } => self.add_evidence(*user, *trade, description, attachment.as_ref(), now),
            C::PostChat {
                user,
                trade,
                text,
                attachment,
            } => self.post_chat(*user, *trade, text, attachment.as_ref(), now),
            C::ClaimAppeal { agent, trade } => self.claim_appeal(*agent, *trade, now),
            C::UnclaimAppeal { agent, trade } => self.unclaim_appeal(*agent, *trade, now),
            C::ResolveAppeal {
                agent,
                trade,
                resolution,
                note,
            } => self.resolve_appeal(*agent, *trade, *resolution, note, now),
            C::AssignChannel {
                user,
                channel,
                provider,
            } => self.assign_channel(*user, channel, *provider, now),
            C::GatewayPayment(payment) => self.gateway_payment(payment, now),
            C::SetReferencePrice {
                asset,
                fiat,
                price,
                source,
            } => self.set_reference(*asset, *fiat, *price, source, now),
            C::RecordBill {
                channel,
                day,
                digest,
                report,
            } => self.record_bill(channel, day, digest, report, now),
            C::CloseMistake {
                agent,
                mistake,
                note,
            } => self.close_mistake(*agent, *mistake, note, now),
            C::ApplyMissedPayment {
                agent,
                mistake,
                note,
                history_checked,
                ended,
            } => self.apply_missed(
                *agent,
                *mistake,
                note,
                (*history_checked, ended.clone()),
                now,
            ),
            C::ResolveAnomaly {
                agent,
                anomaly,
                note,
            } => self.resolve_anomaly(*agent, *anomaly, note, now),
            C::FireDue => {
                self.fire_deadlines(now);
                Ok(())
            }
        }
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            let s = &self.state;
            let size = s.balances.len() + s.listings.len() + s.trades.len() + s.buy_orders.len();
            if size <= DEBUG_FULL_CHECK_ENTRIES_MAX
                && let Err(e) = self.check_invariants()
            {
                panic!("engine invariant broken after a command: {e}");
            }
        }
    }

    // ---- events -----------------------------------------------------------

    /// Records an event with the next sequence number.
    pub(crate) fn emit(&mut self, now: Timestamp, kind: EventKind) {
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.events.push(Event { seq, at: now, kind });
    }

    /// One `BalanceChanged` per balance the command touched, with final values.
    fn emit_balances(&mut self, now: Timestamp) {
        let touched = std::mem::take(&mut self.touched);
        for (user, asset) in &touched {
            let b = self.balance(*user, *asset);
            self.emit(
                now,
                EventKind::BalanceChanged {
                    user: *user,
                    asset: *asset,
                    available: b.available.value(),
                    escrowed: b.escrowed.value(),
                },
            );
        }
        let mut touched = touched;
        touched.clear();
        self.touched = touched;
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.state.next_id;
        self.state.next_id += 1;
        id
    }

    // ---- users ------------------------------------------------------------

    /// A user's non-money state, if they ever did anything.
    pub fn user(&self, user: UserId) -> Option<&UserState> {
        self.state.users.get(&user)
    }

    /// The user's state, created on first use (SPEC §4: the account exists
    /// from the first call its token makes).
    pub(crate) fn user_mut(&mut self, user: UserId) -> &mut UserState {
        self.state.users.get_or_default(user)
    }

    /// Whether either user blocked the other.
    pub fn is_blocked(&self, a: UserId, b: UserId) -> bool {
        self.state.blocks.contains(&(a, b)) || self.state.blocks.contains(&(b, a))
    }
}
