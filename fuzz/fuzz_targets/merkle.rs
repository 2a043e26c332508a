//! Merkle-sum trees and proofs (`backhaul_core::tree` and `sum_tree`, format v2 of
//! `docs/merkle.md`), as the oracle builds them and the program verifies them.
//!
//! Properties: building refuses duplicate accounts and totals that overflow, and nothing else;
//! the root's total and leaf count match the entries; every entry's proof verifies against the
//! tree's commitment, is exactly as deep as the tree, and fits the program's depth limit; a proof
//! never verifies once anything is changed: the amount, the account, the epoch, the deployment,
//! the tree kind, the index, one sibling's hash or sum, the proof's length, the declared total or
//! leaf count, or when the leaf's parent is offered as a leaf (second preimage).
#![no_main]

use arbitrary::Arbitrary;
use backhaul_core::merkle::{TreeKind, MAX_PROOF_DEPTH};
use backhaul_core::sum_tree::{empty_root, leaf_node, node, verify_leaf, Leaf, SumNode};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_core::CoreError;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    usage: bool,
    config: [u8; 32],
    epoch: u64,
    /// Accounts come from a small alphabet so that duplicates occur.
    entries: Vec<(u8, u8, u64)>,
    pick: u16,
    mutation: Mutation,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Amount(u64),
    Account(u8),
    Epoch(u64),
    Config(u8),
    Kind,
    Index(u64),
    SiblingHash { index: u8, byte: u8, mask: u8 },
    SiblingSum { index: u8, sum: u64 },
    Truncate(u8),
    Extend([u8; 32], u64),
    Total(u64),
    LeafCount(u64),
    InnerNode,
}

fn account(a: u8, b: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = a;
    k[31] = b;
    k
}

fuzz_target!(|input: Input| {
    let kind = if input.usage {
        TreeKind::Usage
    } else {
        TreeKind::Reward
    };
    let entries: Vec<Entry> = input
        .entries
        .iter()
        .map(|&(a, b, cumulative)| Entry {
            account: account(a, b),
            cumulative,
        })
        .collect();
    let mut sorted = entries.clone();
    sorted.sort_unstable_by_key(|e| e.account);
    let duplicate = sorted.windows(2).any(|w| w[0].account == w[1].account);
    let sum = entries
        .iter()
        .try_fold(0u64, |acc, e| acc.checked_add(e.cumulative));

    let tree = match EpochTree::build(kind, &input.config, input.epoch, entries.clone()) {
        Ok(t) => t,
        Err(CoreError::DuplicateLeaf) => {
            assert!(duplicate);
            return;
        }
        Err(CoreError::Overflow) => {
            assert!(!duplicate && sum.is_none());
            return;
        }
        Err(e) => panic!("unexpected error {e:?}"),
    };
    assert!(!duplicate, "duplicate accounts were accepted");
    assert_eq!(Some(tree.total), sum);
    assert_eq!(tree.entries, sorted);
    let commitment = *tree.commitment();
    assert_eq!(commitment.total, tree.total);
    assert_eq!(commitment.leaf_count, tree.entries.len() as u64);
    if tree.entries.is_empty() {
        assert_eq!(tree.root, empty_root(kind));
        return;
    }
    let depth = tree.depth();
    assert!(depth <= MAX_PROOF_DEPTH);
    assert!(1usize << depth >= tree.entries.len());
    let scope = *tree.scope();

    // Every proof verifies.
    for (i, e) in tree.entries.iter().enumerate() {
        let proof = tree.proof_for(&e.account).expect("a proof");
        assert_eq!(proof.index, i as u64);
        assert_eq!(proof.leaf.amount, e.cumulative);
        assert_eq!(proof.siblings.len(), depth);
        assert!(
            verify_leaf(
                &scope,
                &commitment,
                &proof.leaf,
                proof.index,
                &proof.siblings
            ),
            "a built proof does not verify"
        );
    }

    // One proof, changed.
    let e = tree.entries[usize::from(input.pick) % tree.entries.len()];
    let proof = tree.proof_for(&e.account).expect("a proof");
    let mut s = scope;
    let mut c = commitment;
    let mut leaf = proof.leaf;
    let mut index = proof.index;
    let mut p: Vec<SumNode> = proof.siblings.clone();
    match input.mutation {
        Mutation::Amount(a) => leaf.amount = a,
        Mutation::Account(b) => leaf.account[1] = b,
        Mutation::Epoch(x) => s.epoch = x,
        Mutation::Config(b) => s.config[7] ^= b,
        Mutation::Kind => {
            s.kind = match kind {
                TreeKind::Reward => TreeKind::Usage,
                TreeKind::Usage => TreeKind::Reward,
            }
        }
        Mutation::Index(i) => index = i,
        Mutation::SiblingHash { index, byte, mask } => {
            if !p.is_empty() {
                let i = usize::from(index) % p.len();
                p[i].hash[usize::from(byte) % 32] ^= mask;
            }
        }
        Mutation::SiblingSum { index, sum } => {
            if !p.is_empty() {
                let i = usize::from(index) % p.len();
                p[i].sum = sum;
            }
        }
        Mutation::Truncate(n) => {
            let keep = usize::from(n) % (p.len() + 1);
            p.truncate(keep);
        }
        Mutation::Extend(hash, sum) => p.push(SumNode { hash, sum }),
        Mutation::Total(t) => c.total = t,
        Mutation::LeafCount(n) => c.leaf_count = n,
        Mutation::InnerNode => {
            // Offer the leaf's parent as if it were a leaf, with the rest of the proof.
            if !p.is_empty() {
                let own = leaf_node(&scope, &proof.leaf);
                let parent = if index % 2 == 0 {
                    node(&own, &p[0])
                } else {
                    node(&p[0], &own)
                };
                if let Ok(parent) = parent {
                    leaf = Leaf {
                        account: parent.hash,
                        amount: parent.sum,
                    };
                    index /= 2;
                    p.remove(0);
                }
            }
        }
    }
    let unchanged =
        (s, c, leaf, index, &p) == (scope, commitment, proof.leaf, proof.index, &proof.siblings);
    let ok = verify_leaf(&s, &c, &leaf, index, &p);
    if unchanged {
        assert!(ok);
    } else if ok {
        // Only the same leaf at the same place of the same tree may still verify (a mutation
        // that changes nothing in effect, such as a padding sibling set to what it was).
        assert!(
            s == scope
                && c == commitment
                && usize::try_from(index)
                    .ok()
                    .and_then(|i| tree.entries.get(i))
                    .is_some_and(|x| x.account == leaf.account && x.cumulative == leaf.amount),
            "a changed proof verified: {:?}",
            input.mutation
        );
    }
});
