//! # otc-api
//!
//! The edge of the system: the only crate that knows protobuf and gRPC.
//!
//! - [`server`]: `run(listeners, config, shutdown)`; [`config`]: its flags.
//! - [`conn`]: the gRPC listener's connections, so h2 sends a reply and
//!   its trailers in one write.
//! - [`core`]: the single writer thread behind a bounded queue, the event
//!   bus, fund-password hashing off the writer; [`passwords`]: fund
//!   passwords verified lately; [`argon2_turns`]: argon2 runs bounded.
//! - [`auth`]: bearer JWTs (HS256) and roles.
//! - [`channels`]: the payment channels declared at start (SPEC §19).
//! - [`http`]: the gateway listener: notifications and the return page.
//! - [`console`]: the web console listener: embedded pages and the same
//!   services as gRPC-Web (SPEC §21).
//! - [`pipeline`]: the one path of every mutating RPC: authenticate, look
//!   the request id up, convert ([`requests`]), submit, answer with the
//!   reply the writer rendered ([`views`]) and stored with the commit.
//! - [`convert`]: domain → proto views, masking by [`convert::Audience`];
//!   rejections → statuses.
//! - [`reads`]: read-only trading views; [`payments`]: payment orders;
//!   [`recon`]: bill import and statements (SPEC §20).
//! - [`common`]: role checks, loading trades, attachments, resumable streams.
//! - [`svc_trading`], [`svc_support`], [`svc_admin`]: one module per service.
//! - [`client`]: the gRPC client side: bearer-token interceptor, channels,
//!   service clients (used by `otcctl`, the tests and the load generator).
//! - [`webhook`]: a minimal HTTP POST, as a gateway sends notifications
//!   (the sandbox gateway of `otcctl`, tests, benches).
//! - [`proto`]: generated code.

#![deny(missing_docs)]

pub mod argon2_turns;
pub mod auth;
pub mod channels;
pub mod client;
pub mod codec;
pub mod common;
pub mod config;
pub mod conn;
pub mod console;
pub mod convert;
pub mod core;
pub mod gate;
pub mod http;
pub mod image_size;
pub mod listen;
pub mod passwords;
pub mod payments;
pub mod pipeline;
pub mod proto;
pub mod reads;
pub mod recon;
pub mod requests;
pub mod retry_guard;
pub mod secret_file;
pub mod server;
pub mod streams;
pub mod svc_admin;
pub mod svc_support;
pub mod svc_trading;
pub mod views;
pub mod webhook;
