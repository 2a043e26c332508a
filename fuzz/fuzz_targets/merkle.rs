//! Merkle trees and proofs (`backhaul_core::tree` and `merkle`), as the oracle builds them and
//! the program verifies them.
//!
//! Properties: building refuses duplicate accounts and totals that overflow, and nothing else;
//! the root and total match the entries; every entry's proof verifies against the root, is no
//! deeper than the tree, and fits the program's depth limit for any tree the oracle can build; a
//! proof never verifies once anything is changed: the amount, the account, the epoch, the
//! deployment, the tree kind, one sibling, the proof's length, or when the leaf is offered as an
//! inner node (second preimage) or against another epoch's root.
#![no_main]

use arbitrary::Arbitrary;
use backhaul_core::merkle::{
    compute_root, empty_root, leaf_hash, node_hash, verify, TreeKind, MAX_PROOF_DEPTH,
};
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
    Sibling { index: u8, byte: u8, mask: u8 },
    Truncate(u8),
    Extend([u8; 32]),
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
    if tree.entries.is_empty() {
        assert_eq!(tree.root, empty_root(kind, &input.config, input.epoch));
        return;
    }
    let depth = tree.tree.as_ref().expect("a tree").depth();
    assert!(depth <= MAX_PROOF_DEPTH);
    assert!(1usize << depth >= tree.entries.len());

    // Every proof verifies.
    for e in &tree.entries {
        let (found, proof) = tree.proof_for(&e.account).expect("a proof");
        assert_eq!(found, *e);
        assert_eq!(proof.len(), depth);
        let leaf = leaf_hash(kind, &input.config, input.epoch, &e.account, e.cumulative);
        assert!(
            verify(&proof, &tree.root, leaf),
            "a built proof does not verify"
        );
    }

    // One proof, changed.
    let e = tree.entries[usize::from(input.pick) % tree.entries.len()];
    let (_, proof) = tree.proof_for(&e.account).expect("a proof");
    let (mut cfg, mut epoch, mut acct, mut amount, mut k) =
        (input.config, input.epoch, e.account, e.cumulative, kind);
    let mut p = proof.clone();
    match input.mutation {
        Mutation::Amount(a) => amount = a,
        Mutation::Account(b) => acct[1] = b,
        Mutation::Epoch(x) => epoch = x,
        Mutation::Config(b) => cfg[7] ^= b,
        Mutation::Kind => {
            k = match kind {
                TreeKind::Reward => TreeKind::Usage,
                TreeKind::Usage => TreeKind::Reward,
            }
        }
        Mutation::Sibling { index, byte, mask } => {
            if !p.is_empty() {
                let i = usize::from(index) % p.len();
                p[i][usize::from(byte) % 32] ^= mask;
            }
        }
        Mutation::Truncate(n) => {
            let keep = usize::from(n) % (p.len() + 1);
            p.truncate(keep);
        }
        Mutation::Extend(sibling) => p.push(sibling),
        Mutation::InnerNode => {
            // Offer the leaf's parent as if it were the leaf, with the rest of the proof.
            if !p.is_empty() {
                let leaf = leaf_hash(kind, &input.config, input.epoch, &e.account, e.cumulative);
                let parent = node_hash(&leaf, &p[0]);
                assert!(verify(&p[1..], &tree.root, parent), "inner nodes link up");
                // No (account, amount) can have that parent as its leaf hash without breaking
                // sha256; the parent's bytes as an account with the same proof must fail.
                acct = parent;
                p.remove(0);
            }
        }
    }
    let unchanged = (cfg, epoch, acct, amount, k == kind, &p)
        == (
            input.config,
            input.epoch,
            e.account,
            e.cumulative,
            true,
            &proof,
        );
    let leaf = leaf_hash(k, &cfg, epoch, &acct, amount);
    let ok = verify(&p, &tree.root, leaf);
    if unchanged {
        assert!(ok);
    } else if !ok {
        // The expected outcome.
    } else {
        // Only a change that keeps the same leaf and the same path may still verify: the other
        // entries' leaves are legitimately provable too (an account changed into another entry
        // of the tree with that entry's amount and proof is that entry's own claim).
        let same_entry = tree
            .entries
            .iter()
            .any(|x| x.account == acct && x.cumulative == amount);
        assert!(
            same_entry && k == kind && cfg == input.config && epoch == input.epoch,
            "a changed proof verified: {:?}",
            input.mutation
        );
        assert_eq!(compute_root(leaf, &p), tree.root);
    }
});
