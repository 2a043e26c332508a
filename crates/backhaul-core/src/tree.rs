//! An epoch's tree as the oracle, the command line and the audit use it (off-chain; needs
//! `alloc`): the entries it was built from and the Merkle-sum tree over them
//! ([`crate::sum_tree::SumTree`], format v2; see `docs/merkle.md`).

use crate::merkle::TreeKind;
use crate::sum_tree::{Commitment, Leaf, OwnedProof, Scope, SumTree};
use crate::{CoreError, Hash32};
use alloc::vec::Vec;

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
    /// The root; it commits to `total` and the number of entries.
    pub root: Hash32,
    /// The sum of all cumulative amounts.
    pub total: u64,
    tree: SumTree,
}

impl EpochTree {
    /// Sorts `entries`, refuses duplicate accounts and an overflowing total, and builds the tree.
    pub fn build(
        kind: TreeKind,
        config: &Hash32,
        epoch: u64,
        entries: Vec<Entry>,
    ) -> Result<Self, CoreError> {
        let scope = Scope {
            kind,
            config: *config,
            epoch,
        };
        let leaves = entries
            .iter()
            .map(|e| Leaf {
                account: e.account,
                amount: e.cumulative,
            })
            .collect();
        let tree = SumTree::build(scope, leaves)?;
        let entries = tree
            .leaves()
            .iter()
            .map(|l| Entry {
                account: l.account,
                cumulative: l.amount,
            })
            .collect();
        Ok(Self {
            kind,
            epoch,
            entries,
            root: tree.root(),
            total: tree.total(),
            tree,
        })
    }

    /// How many leaves the tree holds.
    pub fn leaf_count(&self) -> u64 {
        self.tree.leaf_count()
    }

    /// The root, total and leaf count, as a proposal declares them.
    pub fn commitment(&self) -> &Commitment {
        self.tree.commitment()
    }

    /// The kind, deployment and epoch its leaves are bound to.
    pub fn scope(&self) -> &Scope {
        self.tree.scope()
    }

    /// The number of siblings in each of its proofs.
    pub fn depth(&self) -> usize {
        self.tree.depth()
    }

    /// The proof for `account`'s leaf (its amount, index and siblings), if it has one.
    pub fn proof_for(&self, account: &Hash32) -> Option<OwnedProof> {
        self.tree.proof_for(account)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::sum_tree::{compute_root, empty_root, verify, verify_leaf, SumNode};
    use alloc::vec;
    use proptest::prelude::*;

    fn h(b: u8) -> Hash32 {
        [b; 32]
    }

    #[test]
    fn empty_epoch_trees_get_the_empty_root() {
        let t = EpochTree::build(TreeKind::Reward, &h(1), 4, vec![]).unwrap();
        assert_eq!(t.root, empty_root(TreeKind::Reward));
        assert_eq!((t.total, t.leaf_count()), (0, 0));
        assert!(t.proof_for(&h(2)).is_none());
    }

    #[test]
    fn duplicates_and_overflowing_totals_are_refused() {
        let e = |b: u8, cumulative: u64| Entry {
            account: h(b),
            cumulative,
        };
        assert_eq!(
            EpochTree::build(TreeKind::Reward, &h(0), 0, vec![e(1, 1), e(1, 2)]),
            Err(CoreError::DuplicateLeaf)
        );
        assert_eq!(
            EpochTree::build(TreeKind::Reward, &h(0), 0, vec![e(1, u64::MAX), e(2, 1)]),
            Err(CoreError::Overflow)
        );
    }

    /// The theft the sums stop: a tree over `a: 300, b: 700, thief: 1000` whose root is voted
    /// with the total 1000. Every proof of it leads to a top summing to 2000, so none verifies
    /// against the voted commitment, although each links its leaf to the voted root hash's tree.
    #[test]
    fn a_tree_summing_above_the_declared_total_proves_nothing() {
        let e = |b: u8, cumulative: u64| Entry {
            account: h(b),
            cumulative,
        };
        let t = EpochTree::build(
            TreeKind::Reward,
            &h(9),
            3,
            vec![e(1, 300), e(2, 700), e(3, 1000)],
        )
        .unwrap();
        assert_eq!(t.total, 2000);
        let voted = Commitment {
            total: 1000,
            ..*t.commitment()
        };
        for entry in &t.entries {
            let proof = t.proof_for(&entry.account).unwrap();
            assert!(verify(t.scope(), t.commitment(), &proof));
            assert!(!verify(t.scope(), &voted, &proof));
        }
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
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random trees: every proof verifies; the root's sum is the sum of the leaves; changing
        /// the leaf's amount, a sibling's hash or sum, the index, or the declared total fails.
        #[test]
        fn every_proof_verifies_and_any_tampering_fails(
            entries in entries(),
            config in any::<[u8; 32]>(),
            epoch in any::<u64>(),
            pick in any::<prop::sample::Index>(),
            level in any::<prop::sample::Index>(),
            other in any::<prop::sample::Index>(),
            bit in 0u8..64,
        ) {
            let t = EpochTree::build(TreeKind::Reward, &config, epoch, entries.clone()).unwrap();
            let sum: u64 = entries.iter().map(|e| e.cumulative).sum();
            prop_assert_eq!(t.total, sum);
            prop_assert_eq!(t.commitment().total, sum);
            prop_assert_eq!(t.leaf_count(), entries.len() as u64);
            let scope = *t.scope();
            let c = *t.commitment();
            for e in &t.entries {
                let p = t.proof_for(&e.account).unwrap();
                prop_assert_eq!(p.leaf.amount, e.cumulative);
                prop_assert!(verify_leaf(&scope, &c, &p.leaf, p.index, &p.siblings));
                // The top the proof leads to sums to the total.
                let top = compute_root(&scope, &p.leaf, p.index, c.leaf_count, &p.siblings).unwrap();
                prop_assert_eq!(top, c);
            }
            let n = t.entries.len();
            let e = t.entries[pick.index(n)];
            let p = t.proof_for(&e.account).unwrap();
            let mut leaf = p.leaf;
            leaf.amount ^= 1 << bit;
            prop_assert!(!verify_leaf(&scope, &c, &leaf, p.index, &p.siblings));
            let j = other.index(n) as u64;
            if j != p.index {
                prop_assert!(!verify_leaf(&scope, &c, &p.leaf, j, &p.siblings));
            }
            prop_assert!(!verify_leaf(&scope, &c, &p.leaf, p.index ^ (1 << (bit % 32)), &p.siblings));
            if !p.siblings.is_empty() {
                let k = level.index(p.siblings.len());
                let mut s: Vec<SumNode> = p.siblings.clone();
                s[k].hash[(bit / 2) as usize] ^= 1 << (bit % 8);
                prop_assert!(!verify_leaf(&scope, &c, &p.leaf, p.index, &s));
                let mut s: Vec<SumNode> = p.siblings.clone();
                s[k].sum ^= 1 << bit;
                prop_assert!(!verify_leaf(&scope, &c, &p.leaf, p.index, &s));
            }
            let declared = Commitment { total: c.total ^ (1 << bit), ..c };
            prop_assert!(!verify_leaf(&scope, &declared, &p.leaf, p.index, &p.siblings));
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
