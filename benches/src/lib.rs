//! Shared helpers for the benches live in the bench files; this crate has no library API.
