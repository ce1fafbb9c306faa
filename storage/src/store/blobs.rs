//! Attachments: chunked under `b/<id>`, staged in the batch of the command
//! that references them.

use super::Batch;
use super::{CHUNK_BYTES, Store};
use crate::codec::{self, kind};
use crate::error::StorageError;

impl Store {
    /// Stages an attachment under `id` (chunked) in the batch of the
    /// command that references it: the file is durable exactly when that
    /// command is, and never without it.
    pub fn stage_blob(batch: &mut Batch, id: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let header = codec::key_str(kind::BLOB, id);
        let chunks = bytes.chunks(CHUNK_BYTES).count() as u64;
        batch.insert(
            header.as_slice(),
            codec::encode(&(chunks, bytes.len() as u64))?,
        );
        for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            batch.insert(Self::blob_chunk_key(id, i as u64), codec::frame(chunk));
        }
        Ok(())
    }

    /// Ids of every stored attachment (for tests and audits: each must be
    /// referenced by an applied command).
    ///
    /// # Errors
    /// sled fails.
    pub fn blob_ids(&self) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        for key in self.tree()?.scan_prefix([kind::BLOB]).keys() {
            let key = key?;
            // Headers are `b/<id>`; chunks are `b/<id>\0<n>`.
            if !key.contains(&0) {
                out.push(String::from_utf8_lossy(&key[1..]).into_owned());
            }
        }
        Ok(out)
    }

    fn blob_chunk_key(id: &str, i: u64) -> Vec<u8> {
        let mut k = codec::key_str(kind::BLOB, id);
        k.push(0);
        k.extend_from_slice(&i.to_be_bytes());
        k
    }

    /// Reads an attachment.
    ///
    /// # Errors
    /// A chunk is missing or damaged.
    pub fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let header = codec::key_str(kind::BLOB, id);
        let Some((chunks, len)) = self.get::<(u64, u64)>(&header)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let tree = self.tree()?;
        for i in 0..chunks {
            let key = Self::blob_chunk_key(id, i);
            let raw = tree.get(&key)?.ok_or_else(|| StorageError::Corrupt {
                key: codec::show_key(&key),
                what: "attachment chunk is missing".into(),
            })?;
            out.extend_from_slice(codec::unframe(&key, &raw)?);
        }
        Ok(Some(out))
    }
}
