//! # otc-engine
//!
//! The pure heart of the P2P OTC exchange: a deterministic state machine. It
//! takes commands and an explicit `now`, and returns events or a typed
//! [`Rejection`]. It never reads a clock, spawns, locks or touches disk;
//! `storage` persists it and `api` serves it.
//!
//! ```text
//! Engine::apply(&Command, now) -> Result<Vec<Event>, Rejection>
//! Engine::next_deadline()      -> when to apply Command::FireDue next
//! Engine::check_invariants()   -> SPEC §4 L1/L2 and index consistency
//! Engine::digest()             -> deterministic hash of the whole state
//! ```
//!
//! Modules:
//! - [`money`]: asset/fiat codes, `CoinAmount`, `FiatAmount`, `Price`, rounding.
//! - [`ids`]: user and engine ids, `Timestamp`.
//! - [`config`]: windows, limits, assets.
//! - [`command`], [`event`], [`rejection`]: the engine's inputs and outputs.
//! - [`users`]: payment methods, fund password, blocks, cancel counts.
//! - [`pricing`], [`book`]: fixed and floating prices, the book in matching order (SPEC §22).
//! - [`listing`], [`buy`], [`trade`], [`appeal`], [`merchant`]: domain records.
//! - [`timers`]: deadlines as data.
//! - [`slab`]: records by dense engine id (trades), ordered as a map.
//! - [`record`]: the seller's 30-day record.
//! - [`payment`]: verified payment channels: gateway facts and anomalies (SPEC §19).
//! - [`recon`]: reconciliation against gateways' bills, and daily statements (SPEC §20).
//! - `engine` (re-exported): the state and `apply`; `ops_*`: the handlers;
//!   `invariants`: the checks and digest; `query`: read views.

#![deny(missing_docs)]

pub mod appeal;
mod args;
mod balances;
pub mod book;
pub mod buy;
mod changed;
pub mod command;
pub mod config;
mod engine;
pub mod event;
pub mod hashed;
pub mod ids;
mod invariants;
pub mod listing;
pub mod merchant;
pub mod money;
mod ops_account;
mod ops_appeal;
mod ops_buy;
mod ops_ended;
mod ops_fast;
mod ops_gateway;
mod ops_listing;
mod ops_price;
mod ops_recon;
mod ops_recon_later;
mod ops_recon_unseen;
mod ops_resting;
mod ops_statement;
mod ops_trade;
pub mod payment;
pub mod per_user;
pub mod pricing;
mod query;
pub mod recon;
pub mod record;
pub mod rejection;
pub mod slab;
pub mod timers;
pub mod trade;
pub mod users;

pub use changed::Changed;
pub use command::Command;
pub use config::EngineConfig;
pub use engine::{
    Balance, DEBUG_FULL_CHECK_ENTRIES_MAX, Engine, ExternalRecord, State, Totals, TransferKind,
};
pub use event::{Event, EventKind};
pub use ids::{
    AnomalyId, BuyOrderId, EvidenceId, ListingId, MethodId, MistakeId, Timestamp, TradeId, UserId,
};
pub use invariants::state_digest;
pub use money::{Asset, CoinAmount, Fiat, FiatAmount, Price};
pub use ops_appeal::ATTACHMENT_TYPES;
pub use ops_ended::{EndedRecord, Target};
pub use ops_recon::{chrono_day, civil};
pub use ops_statement::{DayFlows, Statement};
pub use query::BookEntry;
pub use rejection::{Rejection, RejectionKind, shown};
