//! Receipts waiting for their binding or grant: held in memory, in a bounded area, never stored.
//!
//! A receipt whose node has no binding, or whose client has no grant of the buyer it names, can
//! count only if that binding or grant arrives before the epoch's cutoff. Storing it at once
//! would let anyone fill the database with sessions signed by free keys; refusing it would lose
//! a node's receipts that overtook its binding. So it waits here: the binding or grant that
//! completes it releases it to be stored as if it had just arrived, and the cutoff drops what is
//! left. Each session keeps only its highest sequence, and the area holds at most `capacity`
//! receipts (then more are refused `held_full`); a crash forgets it (the answer said `held`).

use crate::db::SessionKey;
use backhaul_protocol::{Key, SignedReceipt};
use std::collections::{HashMap, HashSet};

/// A held receipt and its body hash.
pub type HeldReceipt = (SignedReceipt, [u8; 32]);

pub struct Held {
    capacity: usize,
    receipts: HashMap<SessionKey, HeldReceipt>,
    by_node: HashMap<Key, HashSet<SessionKey>>,
    by_pair: HashMap<(Key, Key), HashSet<SessionKey>>,
}

/// What holding a receipt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold {
    Held,
    /// The session's held receipt is at this sequence or a higher one.
    Superseded,
    /// The same receipt is held already.
    Duplicate,
    Full,
}

fn session_key(r: &SignedReceipt) -> SessionKey {
    (
        r.receipt.epoch,
        r.receipt.client,
        r.receipt.node,
        r.receipt.session_id,
    )
}

impl Held {
    pub fn new(capacity: usize) -> Self {
        Held {
            capacity,
            receipts: HashMap::new(),
            by_node: HashMap::new(),
            by_pair: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.receipts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.receipts.is_empty()
    }

    /// Holds `r` (the session's highest sequence only; an equivocation at the held sequence is
    /// not held: the first one waits, and the other is sent again once both can be stored).
    pub fn hold(&mut self, r: SignedReceipt, hash: [u8; 32]) -> Hold {
        let key = session_key(&r);
        if let Some((held, held_hash)) = self.receipts.get(&key) {
            if *held_hash == hash {
                return Hold::Duplicate;
            }
            if held.receipt.sequence >= r.receipt.sequence {
                return Hold::Superseded;
            }
            self.receipts.insert(key, (r, hash));
            return Hold::Held;
        }
        if self.receipts.len() >= self.capacity {
            return Hold::Full;
        }
        self.by_node.entry(r.receipt.node).or_default().insert(key);
        self.by_pair
            .entry((r.receipt.buyer, r.receipt.client))
            .or_default()
            .insert(key);
        self.receipts.insert(key, (r, hash));
        Hold::Held
    }

    /// Takes out every receipt `ready` accepts among those of `node`.
    pub fn release_node(
        &mut self,
        node: &Key,
        ready: impl FnMut(&SignedReceipt) -> bool,
    ) -> Vec<HeldReceipt> {
        let keys: Vec<SessionKey> = self
            .by_node
            .get(node)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        self.release(keys, ready)
    }

    /// Takes out every receipt `ready` accepts among those of the (buyer, client) pair.
    pub fn release_pair(
        &mut self,
        pair: &(Key, Key),
        ready: impl FnMut(&SignedReceipt) -> bool,
    ) -> Vec<HeldReceipt> {
        let keys: Vec<SessionKey> = self
            .by_pair
            .get(pair)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        self.release(keys, ready)
    }

    fn release(
        &mut self,
        mut keys: Vec<SessionKey>,
        mut ready: impl FnMut(&SignedReceipt) -> bool,
    ) -> Vec<HeldReceipt> {
        // In a fixed order, so that what is stored does not depend on hashing.
        keys.sort_unstable();
        let mut out = Vec::new();
        for key in keys {
            if self.receipts.get(&key).is_some_and(|(r, _)| ready(r)) {
                if let Some(held) = self.remove(&key) {
                    out.push(held);
                }
            }
        }
        out
    }

    fn remove(&mut self, key: &SessionKey) -> Option<HeldReceipt> {
        let (r, hash) = self.receipts.remove(key)?;
        let node = r.receipt.node;
        if let Some(s) = self.by_node.get_mut(&node) {
            s.remove(key);
            if s.is_empty() {
                self.by_node.remove(&node);
            }
        }
        let pair = (r.receipt.buyer, r.receipt.client);
        if let Some(s) = self.by_pair.get_mut(&pair) {
            s.remove(key);
            if s.is_empty() {
                self.by_pair.remove(&pair);
            }
        }
        Some((r, hash))
    }

    /// Drops every receipt of epochs up to `epoch` (their cutoff passed). Returns how many.
    pub fn drop_through(&mut self, epoch: u64) -> usize {
        let keys: Vec<SessionKey> = self
            .receipts
            .keys()
            .filter(|k| k.0 <= epoch)
            .copied()
            .collect();
        for k in &keys {
            self.remove(k);
        }
        keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_protocol::UsageReceipt;

    fn receipt(node: u8, session: u8, sequence: u64) -> SignedReceipt {
        SignedReceipt {
            receipt: UsageReceipt {
                epoch: 1,
                session_id: [session; 16],
                node: [node; 32],
                client: [9; 32],
                buyer: [8; 32],
                sequence,
                cumulative_bytes: sequence * 10,
                session_age_secs: 1,
            },
            client_signature: [0; 64],
            node_signature: [0; 64],
        }
    }

    #[test]
    fn a_session_keeps_only_its_highest_sequence_and_the_area_is_bounded() {
        let mut h = Held::new(2);
        assert_eq!(h.hold(receipt(1, 1, 1), [1; 32]), Hold::Held);
        assert_eq!(h.hold(receipt(1, 1, 1), [1; 32]), Hold::Duplicate);
        assert_eq!(h.hold(receipt(1, 1, 3), [3; 32]), Hold::Held);
        assert_eq!(h.hold(receipt(1, 1, 2), [2; 32]), Hold::Superseded);
        assert_eq!(h.hold(receipt(2, 1, 1), [4; 32]), Hold::Held);
        assert_eq!(h.hold(receipt(3, 1, 1), [5; 32]), Hold::Full);
        // A higher sequence of a held session still replaces it when full.
        assert_eq!(h.hold(receipt(2, 1, 5), [6; 32]), Hold::Held);
        assert_eq!(h.len(), 2);
        let out = h.release_node(&[1; 32], |_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.receipt.sequence, 3);
        assert_eq!(h.release_pair(&([8; 32], [9; 32]), |_| false).len(), 0);
        assert_eq!(h.drop_through(1), 1);
        assert!(h.is_empty());
    }
}
