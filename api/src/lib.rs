//! # otc-api
//!
//! The edge of the system: the only crate that knows protobuf and gRPC.
//!
//! - [`server`]: `otcd`'s configuration and `run(listener, config, shutdown)`.
//! - [`core`]: the single writer thread behind a bounded queue, the event
//!   bus, fund-password hashing off the writer.
//! - [`auth`]: bearer JWTs (HS256) and roles.
//! - [`convert`]: proto ↔ domain conversions; rejections → statuses.
//! - [`common`]: role checks, trade visibility, attachments, resumable streams.
//! - [`svc_trading`], [`svc_support`], [`svc_admin`]: one module per service.
//! - [`client`]: the gRPC client side: bearer-token interceptor, channels,
//!   service clients (used by `otcctl`, the tests and the load generator).
//! - [`proto`]: generated code.

#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod common;
pub mod convert;
pub mod core;
pub mod proto;
pub mod server;
pub mod svc_admin;
pub mod svc_support;
pub mod svc_trading;
