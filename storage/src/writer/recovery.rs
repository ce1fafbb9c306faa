//! Recovery: open the data dir, load the latest snapshot, replay the
//! journal after it, and check everything before serving.

use crate::store::Batch;
use std::path::Path;

use otc_engine::{Engine, EngineConfig};

use super::idem::Idempotency;
use super::{JournalEntry, JournalRef, Writer, WriterOptions, WriterStats};
use crate::codec::{self, kind};
use crate::error::StorageError;
use crate::store::Store;

impl Writer {
    /// Opens the data dir and recovers the engine: the latest snapshot, then
    /// every journal entry after it. Checks record formats and checksums, the
    /// event sequence and the ledger invariants; refuses to start (naming the
    /// key or invariant) rather than serve wrong balances.
    ///
    /// # Errors
    /// Storage cannot be opened, a record is damaged, or the state is inconsistent.
    pub fn open(
        dir: &Path,
        config: EngineConfig,
        options: WriterOptions,
    ) -> Result<Self, StorageError> {
        let store = Store::open_with(dir, &options.store)?;
        let (mut engine, journal_start) = match store.load_snapshot()? {
            Some((h, stored_config, state)) => (
                Engine::from_state(stored_config, state).map_err(StorageError::Inconsistent)?,
                h.journal_pos,
            ),
            None => (
                Engine::new(config.clone()).map_err(StorageError::Inconsistent)?,
                0,
            ),
        };
        let mut journal_next = journal_start;
        let mut scratch = Vec::new();
        loop {
            let entries = store.journal_from(journal_next, 4096)?;
            if entries.is_empty() {
                break;
            }
            for (pos, entry) in entries {
                if pos != journal_next {
                    return Err(StorageError::Corrupt {
                        key: codec::show_key(&codec::key_u64(kind::JOURNAL, journal_next)),
                        what: format!("journal jumps from {journal_next} to {pos}"),
                    });
                }
                scratch.clear();
                let applied = match entry {
                    JournalEntry::Apply { now, command } => {
                        engine.apply_into(&command, now, &mut scratch).map_err(|r| {
                            format!(
                                "journal entry {pos} ({}) no longer applies: {r}",
                                command.name()
                            )
                        })
                    }
                    JournalEntry::Configure(c) => engine
                        .set_config(c)
                        .map_err(|e| format!("journal entry {pos}: {e}")),
                };
                applied.map_err(StorageError::Inconsistent)?;
                journal_next += 1;
            }
        }
        if let Some((_, last)) = store.event_bounds()?
            && last != engine.last_seq()
        {
            return Err(StorageError::Inconsistent(format!(
                "stored events end at sequence {last} but the recovered engine is at {}",
                engine.last_seq()
            )));
        }
        engine
            .check_invariants()
            .map_err(StorageError::Inconsistent)?;
        let idem = Idempotency::load(&store)?;
        if journal_next == 0 || engine.config() != &config {
            let mut batch = Batch::default();
            Store::stage_record(
                &mut batch,
                &codec::key_u64(kind::JOURNAL, journal_next),
                [JournalRef::Configure(&config)].as_slice(),
            )?;
            store.commit(batch)?;
            engine
                .set_config(config)
                .map_err(StorageError::Inconsistent)?;
            journal_next += 1;
        }
        Ok(Self {
            engine,
            store: std::sync::Arc::new(store),
            options,
            journal_next,
            since_snapshot: journal_next - journal_start,
            snapshotting: None,
            idem,
            replier: None,
            stopped: None,
            events: Vec::new(),
            stats: WriterStats::default(),
        })
    }
}
