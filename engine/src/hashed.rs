//! A map hashed by its key with the engine's fixed hasher
//! ([`IdHasher`](crate::per_user::IdHasher)), that compares and serializes
//! as the `BTreeMap` it replaces (entries in key order). For keys looked up
//! on every command among many (balances per user and asset); nothing reads
//! it in hash order where the order could show.

use std::collections::HashMap;
use std::hash::Hash;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::per_user::IdBuild;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct HashedMap<K, V>(HashMap<K, V, IdBuild>);

impl<K, V> Default for HashedMap<K, V> {
    fn default() -> Self {
        Self(HashMap::default())
    }
}

impl<K: Hash + Eq + Ord + Copy, V> HashedMap<K, V> {
    /// The key's value.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.get(key)
    }

    /// The key's value, created with `V::default()` on first use.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.0.entry(key).or_default()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every entry in key order (sorts: for checks, statements, snapshots).
    pub fn sorted(&self) -> Vec<(&K, &V)> {
        self.sorted_where(|_| true)
    }

    /// The entries whose key passes `keep`, in key order (only those are
    /// sorted).
    pub fn sorted_where(&self, keep: impl Fn(&K) -> bool) -> Vec<(&K, &V)> {
        let mut some: Vec<_> = self.0.iter().filter(|(k, _)| keep(k)).collect();
        some.sort_unstable_by_key(|(k, _)| **k);
        some
    }
}

impl<K: Hash + Eq, V: PartialEq> PartialEq for HashedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Hash + Eq, V: Eq> Eq for HashedMap<K, V> {}

impl<K: Hash + Eq + Ord + Copy + Serialize, V: Serialize> Serialize for HashedMap<K, V> {
    /// As the `BTreeMap` it replaces: entries in key order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.sorted() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Hash + Eq + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de>
    for HashedMap<K, V>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        HashMap::<K, V, IdBuild>::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn serializes_as_the_btree_map() {
        let mut hashed: HashedMap<(u64, u8), u32> = HashedMap::default();
        let mut ordered: BTreeMap<(u64, u8), u32> = BTreeMap::new();
        for n in 0..1_000u64 {
            let key = (n * 7919 % 500, (n % 3) as u8);
            *hashed.get_or_default(key) += 1;
            *ordered.entry(key).or_default() += 1;
        }
        let old = bincode::serialize(&ordered).unwrap_or_default();
        let new = bincode::serialize(&hashed).unwrap_or_default();
        assert_eq!(old, new);
        let back: HashedMap<(u64, u8), u32> = bincode::deserialize(&new).unwrap_or_default();
        assert_eq!(back, hashed);
        assert_eq!(back.len(), ordered.len());
    }
}
