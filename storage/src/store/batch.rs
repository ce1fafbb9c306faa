//! What one commit writes: inserts and removes, written whole to the
//! journal first (one record), then applied to sled change by change.

use crate::error::StorageError;

/// One commit's changes to the tree, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

const INSERT: u8 = 1;
const REMOVE: u8 = 0;

impl Batch {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.ops
            .push((key.as_ref().to_vec(), Some(value.as_ref().to_vec())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// Operations in it.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The journal's bytes of it: `count: u32`, then per operation
    /// `tag: u8 | key_len: u32 | key [| value_len: u32 | value]`.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .ops
            .iter()
            .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let mut out = Vec::with_capacity(4 + size);
        out.extend_from_slice(&(self.ops.len() as u32).to_le_bytes());
        for (key, value) in &self.ops {
            out.push(if value.is_some() { INSERT } else { REMOVE });
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            if let Some(v) = value {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
        out
    }

    /// Reads [`Batch::encode`]'s bytes back.
    ///
    /// # Errors
    /// The bytes are not a batch (a journal record that passed its checksum
    /// but does not parse: a bug or another format).
    pub fn decode(bytes: &[u8]) -> Result<Batch, StorageError> {
        let bad = |what: &str| StorageError::Corrupt {
            key: "journal record".into(),
            what: what.to_owned(),
        };
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], StorageError> {
            let s = bytes.get(at..at + n).ok_or_else(|| bad("cut short"))?;
            at += n;
            Ok(s)
        };
        let u32_at = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        let count = u32_at(take(4)?);
        let mut ops = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let tag = take(1)?[0];
            let klen = u32_at(take(4)?);
            let key = take(klen)?.to_vec();
            let value = match tag {
                INSERT => {
                    let vlen = u32_at(take(4)?);
                    Some(take(vlen)?.to_vec())
                }
                REMOVE => None,
                _ => return Err(bad("unknown operation")),
            };
            ops.push((key, value));
        }
        if at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Batch { ops })
    }

    /// Applies the changes to `tree` one by one, in order (not as a sled
    /// batch: see the store's module comment for why that is enough, and
    /// cheaper).
    ///
    /// # Errors
    /// sled failed; the tree may hold a prefix of the changes.
    pub fn apply_in_order(&self, tree: &sled::Tree) -> Result<(), StorageError> {
        self.apply_prefix(tree, self.ops.len())
    }

    /// The first `n` changes of [`Batch::apply_in_order`].
    ///
    /// # Errors
    /// sled failed.
    pub(super) fn apply_prefix(&self, tree: &sled::Tree, n: usize) -> Result<(), StorageError> {
        for (key, value) in self.ops.iter().take(n) {
            match value {
                Some(v) => tree.insert(key.as_slice(), v.as_slice())?,
                None => tree.remove(key.as_slice())?,
            };
        }
        Ok(())
    }

    /// The keys from `start` to `end` (inclusive) this batch sets to a
    /// value (its last change to them may still remove them).
    pub(super) fn set_between<'a>(
        &'a self,
        start: &'a [u8],
        end: &'a [u8],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.ops
            .iter()
            .filter(move |(key, value)| {
                value.is_some() && start <= key.as_slice() && key.as_slice() <= end
            })
            .map(|(key, _)| key.as_slice())
    }

    /// The same changes as a sled batch.
    pub fn to_sled(&self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for (key, value) in &self.ops {
            match value {
                Some(v) => b.insert(key.as_slice(), v.as_slice()),
                None => b.remove(key.as_slice()),
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_as_written() {
        let mut b = Batch::default();
        b.insert(b"k1", b"v1");
        b.remove([7u8; 25]);
        b.insert(Vec::from(&b"k2"[..]), vec![0u8; 5000]);
        b.insert(b"", b"");
        let bytes = b.encode();
        assert_eq!(Batch::decode(&bytes).expect("decodes"), b);
        assert!(Batch::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Batch::decode(&longer).is_err());
        assert_eq!(
            Batch::decode(&Batch::default().encode()).expect("empty"),
            Batch::default()
        );
    }
}
