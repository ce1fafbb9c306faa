//! Request-id records (`i/`) and the first replies of their requests
//! (`r/`), keyed by time so retention is a key range.

use super::Batch;
use super::Store;
use crate::codec::{self, kind};
use crate::error::StorageError;

impl Store {
    /// Visits every retained request-id record (read once at open), oldest
    /// group first, with the key of its group record; returns the next free
    /// counter for their keys. Replies are not read.
    ///
    /// # Errors
    /// A damaged record (named).
    pub fn idempotency_records(
        &self,
        mut visit: impl FnMut(&[u8], String, crate::IdemRecord),
    ) -> Result<u64, StorageError> {
        let mut next = 0;
        self.each_record(
            &[kind::IDEMPOTENCY],
            &[kind::IDEMPOTENCY + 1],
            |prefix, pieces| {
                next = next.max(codec::key_time_n(prefix).unwrap_or(0) + 1);
                let records: Vec<(String, crate::IdemRecord)> = codec::decode_pieces(pieces)?;
                for (id, rec) in records {
                    visit(prefix, id, rec);
                }
                Ok(true)
            },
        )?;
        Ok(next)
    }

    /// The record of request id `id` in the group record at `prefix` (the
    /// newest use of `id` there).
    ///
    /// # Errors
    /// A damaged record (named).
    pub fn idempotency_record(
        &self,
        prefix: &[u8],
        id: &str,
    ) -> Result<Option<crate::IdemRecord>, StorageError> {
        self.group_entry(prefix, id)
    }

    /// The stored first reply of request id `id` whose group record is at
    /// `prefix` (an `i/` key; its replies live under the same key as `r/`).
    ///
    /// # Errors
    /// A damaged record (named).
    pub fn idempotency_reply(
        &self,
        prefix: &[u8],
        id: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let mut key = prefix.to_vec();
        if let Some(k) = key.first_mut() {
            *k = kind::REPLY;
        }
        self.group_entry(&key, id)
    }

    /// The newest value for `id` in a group record of `(id, value)` pairs.
    fn group_entry<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        id: &str,
    ) -> Result<Option<T>, StorageError> {
        let entries: Option<Vec<(String, T)>> = self.get_record(prefix)?;
        Ok(entries
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|(seen, _)| seen == id)
            .map(|(_, v)| v))
    }

    /// Stages the removal of request-id records (and their replies) whose
    /// latest use is before `cutoff`, at most `limit` group records of each
    /// (each with all its pieces).
    ///
    /// # Errors
    /// sled fails.
    pub fn stage_idempotency_prune(
        &self,
        batch: &mut Batch,
        cutoff: otc_engine::Timestamp,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let ids = self.stage_prune_before(batch, kind::IDEMPOTENCY, cutoff, limit)?;
        self.stage_prune_before(batch, kind::REPLY, cutoff, limit)?;
        Ok(ids)
    }

    /// Stages the removal of whole time-keyed records of kind `k` before
    /// `cutoff`, at most `limit` records.
    fn stage_prune_before(
        &self,
        batch: &mut Batch,
        k: u8,
        cutoff: otc_engine::Timestamp,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let start = [k];
        let end = codec::key_time(k, cutoff.0, 0);
        let mut n = 0;
        let mut last_prefix: Vec<u8> = Vec::new();
        for key in self.tree()?.range(start.as_slice()..end.as_slice()).keys() {
            let key = key?;
            let prefix = codec::split_piece_key(&key).map_or(&key[..], |(p, _, _)| p);
            if prefix != last_prefix.as_slice() {
                // Stop only between records: never leave half of one.
                if n >= limit {
                    break;
                }
                last_prefix = prefix.to_vec();
                n += 1;
            }
            batch.remove(key);
        }
        Ok(n)
    }
}
