//! Building Merkle trees and proofs (off-chain; needs `alloc`).
//!
//! Rules (see `docs/merkle.md`): one leaf per account, leaves ordered by account bytes ascending,
//! a level with an odd count duplicates its last node, and a one-leaf tree's root is its leaf.

use crate::merkle::{empty_root, leaf_hash, node_hash, TreeKind};
use crate::{CoreError, Hash32};
use alloc::vec::Vec;

/// A complete tree: `levels[0]` are the leaves, the last level holds the root alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash32>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`, in the order given.
    pub fn from_leaves(leaves: Vec<Hash32>) -> Result<Self, CoreError> {
        if leaves.is_empty() {
            return Err(CoreError::EmptyTree);
        }
        let mut levels = Vec::new();
        let mut current = leaves;
        while current.len() > 1 {
            let next = current
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => node_hash(a, b),
                    [last] => node_hash(last, last),
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(core::mem::replace(&mut current, next));
        }
        levels.push(current);
        Ok(Self { levels })
    }

    /// The root hash.
    pub fn root(&self) -> Hash32 {
        // The constructor guarantees at least one level with exactly one node at the top.
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_default()
    }

    /// How many leaves the tree holds.
    pub fn leaf_count(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The number of hashes in every proof of this tree.
    pub fn depth(&self) -> usize {
        self.levels.len().saturating_sub(1)
    }

    /// The sibling hashes from leaf `index` up to the root, or `None` if there is no such leaf.
    pub fn proof(&self, index: usize) -> Option<Vec<Hash32>> {
        if index >= self.leaf_count() {
            return None;
        }
        let mut proof = Vec::with_capacity(self.depth());
        let mut i = index;
        for level in &self.levels[..self.depth()] {
            let sibling = i ^ 1;
            // An odd level duplicates its last node, which is then its own sibling.
            proof.push(*level.get(sibling).unwrap_or(&level[i]));
            i /= 2;
        }
        Some(proof)
    }
}

/// One account's cumulative amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    /// The operator (reward tree) or buyer (usage tree).
    pub account: Hash32,
    /// Everything earned (or consumed) since genesis, including this epoch.
    pub cumulative: u64,
}

/// An epoch's tree of one kind, with the entries it was built from in leaf order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochTree {
    /// Which tree this is.
    pub kind: TreeKind,
    /// The epoch it commits.
    pub epoch: u64,
    /// Entries sorted by account bytes ascending, one per account.
    pub entries: Vec<Entry>,
    /// The tree, absent when there are no entries.
    pub tree: Option<MerkleTree>,
    /// The root: the tree's, or [`empty_root`] when there are no entries.
    pub root: Hash32,
    /// The sum of all cumulative amounts.
    pub total: u64,
}

impl EpochTree {
    /// Sorts `entries`, refuses duplicate accounts and an overflowing total, and builds the tree.
    pub fn build(
        kind: TreeKind,
        config: &Hash32,
        epoch: u64,
        mut entries: Vec<Entry>,
    ) -> Result<Self, CoreError> {
        entries.sort_unstable_by_key(|e| e.account);
        if entries.windows(2).any(|w| w[0].account == w[1].account) {
            return Err(CoreError::DuplicateLeaf);
        }
        let total = entries.iter().try_fold(0u64, |acc, e| {
            acc.checked_add(e.cumulative).ok_or(CoreError::Overflow)
        })?;
        if entries.is_empty() {
            return Ok(Self {
                kind,
                epoch,
                entries,
                tree: None,
                root: empty_root(kind, config, epoch),
                total,
            });
        }
        let leaves = entries
            .iter()
            .map(|e| leaf_hash(kind, config, epoch, &e.account, e.cumulative))
            .collect();
        let tree = MerkleTree::from_leaves(leaves)?;
        Ok(Self {
            kind,
            epoch,
            root: tree.root(),
            tree: Some(tree),
            entries,
            total,
        })
    }

    /// The entry and proof for `account`, if it has a leaf.
    pub fn proof_for(&self, account: &Hash32) -> Option<(Entry, Vec<Hash32>)> {
        let index = self
            .entries
            .binary_search_by(|e| e.account.cmp(account))
            .ok()?;
        let proof = self.tree.as_ref()?.proof(index)?;
        Some((self.entries[index], proof))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::merkle::{compute_root, verify};
    use alloc::vec;
    use proptest::prelude::*;

    fn h(b: u8) -> Hash32 {
        [b; 32]
    }

    #[test]
    fn one_leaf_tree_root_is_the_leaf() {
        let tree = MerkleTree::from_leaves(vec![h(5)]).unwrap();
        assert_eq!(tree.root(), h(5));
        assert_eq!(tree.proof(0), Some(vec![]));
        assert_eq!(tree.depth(), 0);
    }

    #[test]
    fn odd_levels_duplicate_their_last_node() {
        let tree = MerkleTree::from_leaves(vec![h(1), h(2), h(3)]).unwrap();
        let left = node_hash(&h(1), &h(2));
        let right = node_hash(&h(3), &h(3));
        assert_eq!(tree.root(), node_hash(&left, &right));
        assert_eq!(tree.proof(2), Some(vec![h(3), left]));
    }

    #[test]
    fn empty_trees_are_refused_and_epoch_trees_get_the_empty_root() {
        assert_eq!(MerkleTree::from_leaves(vec![]), Err(CoreError::EmptyTree));
        let t = EpochTree::build(TreeKind::Reward, &h(1), 4, vec![]).unwrap();
        assert_eq!(t.root, empty_root(TreeKind::Reward, &h(1), 4));
        assert_eq!(t.total, 0);
        assert!(t.proof_for(&h(2)).is_none());
    }

    #[test]
    fn duplicates_and_overflowing_totals_are_refused() {
        let dup = vec![
            Entry {
                account: h(1),
                cumulative: 1,
            },
            Entry {
                account: h(1),
                cumulative: 2,
            },
        ];
        assert_eq!(
            EpochTree::build(TreeKind::Reward, &h(0), 0, dup),
            Err(CoreError::DuplicateLeaf)
        );
        let big = vec![
            Entry {
                account: h(1),
                cumulative: u64::MAX,
            },
            Entry {
                account: h(2),
                cumulative: 1,
            },
        ];
        assert_eq!(
            EpochTree::build(TreeKind::Reward, &h(0), 0, big),
            Err(CoreError::Overflow)
        );
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::btree_map(any::<[u8; 32]>(), 0u64..u64::MAX / 4096, 1..300).prop_map(
            |m| {
                m.into_iter()
                    .map(|(account, cumulative)| Entry {
                        account,
                        cumulative,
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_any_tampering_fails(
            entries in entries(),
            config in any::<[u8; 32]>(),
            epoch in any::<u64>(),
            pick in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let t = EpochTree::build(TreeKind::Reward, &config, epoch, entries.clone()).unwrap();
            prop_assert_eq!(t.entries.len(), entries.len());
            for e in &t.entries {
                let (found, proof) = t.proof_for(&e.account).unwrap();
                let leaf = leaf_hash(TreeKind::Reward, &config, epoch, &e.account, found.cumulative);
                prop_assert!(verify(&proof, &t.root, leaf));
            }
            let e = t.entries[pick.index(t.entries.len())];
            let (_, proof) = t.proof_for(&e.account).unwrap();
            let leaf = leaf_hash(TreeKind::Reward, &config, epoch, &e.account, e.cumulative);
            // Another amount, epoch, tree kind or config never verifies.
            let more = leaf_hash(TreeKind::Reward, &config, epoch, &e.account, e.cumulative + 1);
            prop_assert!(!verify(&proof, &t.root, more));
            let later = leaf_hash(TreeKind::Reward, &config, epoch.wrapping_add(1), &e.account, e.cumulative);
            prop_assert!(!verify(&proof, &t.root, later));
            let usage = leaf_hash(TreeKind::Usage, &config, epoch, &e.account, e.cumulative);
            prop_assert!(!verify(&proof, &t.root, usage));
            // Flipping any bit of any proof element breaks it.
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let i = flip.index(bad.len());
                bad[i][(i * 7) % 32] ^= 1 << bit;
                prop_assert!(!verify(&bad, &t.root, leaf));
                // Dropping or appending an element breaks it too.
                prop_assert!(!verify(&proof[..proof.len() - 1], &t.root, leaf));
            }
            let mut longer = proof.clone();
            longer.push(t.root);
            prop_assert!(!verify(&longer, &t.root, leaf));
            prop_assert_eq!(compute_root(leaf, &proof), t.root);
        }

        #[test]
        fn root_does_not_depend_on_input_order(mut entries in entries(), seed in any::<u64>()) {
            let a = EpochTree::build(TreeKind::Usage, &[1; 32], 9, entries.clone()).unwrap();
            let n = entries.len();
            for i in 0..n {
                let j = (seed as usize).wrapping_mul(i + 1) % n;
                entries.swap(i, j);
            }
            let b = EpochTree::build(TreeKind::Usage, &[1; 32], 9, entries).unwrap();
            prop_assert_eq!(a.root, b.root);
        }
    }
}
