//! # otc-storage
//!
//! Makes every applied command durable on sled before anyone is told it
//! happened, and brings the engine back exactly as it was.
//!
//! - [`writer`]: the single writer. Applies a *group* of requests to the
//!   engine, stages their journal entries, events, idempotency records and
//!   history records in one `Batch`, and commits it (one journal record,
//!   `fdatasync`) before returning any result: group commit.
//! - [`wal`]: our own write-ahead journal: one framed, checksummed record
//!   per commit, `fdatasync`ed before anything is acknowledged; torn and
//!   damaged records told apart at recovery.
//! - [`store`]: the commit (journal, then sled in memory, flushed in the
//!   background), snapshots, history, attachments.
//! - [`codec`]: record framing (format version + crc32) and keys.
//! - [`error`]: storage errors; any of them stops the writer.
//! - [`workload`]: a seeded, realistic command mix for tests and benchmarks.
//!
//! Recovery loads the latest snapshot and replays the journal after it; the
//! engine is deterministic, so replay rebuilds exactly the state (and event
//! sequence) that was acknowledged.

#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod store;
pub mod wal;
pub mod workload;
pub mod writer;

pub use error::StorageError;
pub use store::Store;
pub use writer::{
    Call, Done, Earlier, IdemRecord, JournalEntry, KnownIds, Outcome, Replier, Request, StoredKind,
    StoredOutcome, Writer, WriterOptions, WriterStats,
};
