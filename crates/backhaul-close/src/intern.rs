//! Small dense ids for the keys met during a close, so that ten million sessions fit in memory.

use backhaul_protocol::Key;
use std::collections::HashMap;

/// A hash map with a fast hasher, for lookups whose iteration order never matters.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Keys seen during a close, each given a small dense id.
#[derive(Default)]
pub(crate) struct Interner {
    ids: FastMap<Key, u32>,
    pub(crate) keys: Vec<Key>,
}

impl Interner {
    /// The key's id, and whether it was new.
    pub(crate) fn id(&mut self, key: &Key) -> (u32, bool) {
        if let Some(id) = self.ids.get(key) {
            return (*id, false);
        }
        let id = self.keys.len() as u32;
        self.keys.push(*key);
        self.ids.insert(*key, id);
        (id, true)
    }

    /// For each id, its position in key order.
    pub(crate) fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by_key(|i| self.keys[*i as usize]);
        let mut rank = vec![0u32; order.len()];
        for (r, id) in order.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }
}
