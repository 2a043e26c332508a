//! Merkle-sum proofs (format v2, `docs/merkle.md`) as claims and settlements carry them.

use crate::error::BackhaulError;
use anchor_lang::prelude::*;
use backhaul_core::merkle::{TreeKind, MAX_PROOF_DEPTH};
use backhaul_core::sum_tree::{verify_leaf, Commitment, Leaf, Scope, SumNode, SIBLING_LEN};

/// One level of a proof: the sibling's hash and the sum of the amounts below it, 40 bytes
/// (`SIBLING_LEN`) in instruction data.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProofNode {
    pub hash: [u8; 32],
    pub sum: u64,
}

const _: () =
    assert!(core::mem::size_of::<[u8; 32]>() + core::mem::size_of::<u64>() == SIBLING_LEN);

impl From<&ProofNode> for SumNode {
    fn from(n: &ProofNode) -> Self {
        SumNode {
            hash: n.hash,
            sum: n.sum,
        }
    }
}

impl From<&SumNode> for ProofNode {
    fn from(n: &SumNode) -> Self {
        ProofNode {
            hash: n.hash,
            sum: n.sum,
        }
    }
}

/// What a finalized epoch committed for one tree: the root, and the total and leaf count the
/// oracles declared with it.
pub struct TreeCommitment {
    pub kind: TreeKind,
    pub root: [u8; 32],
    pub total: u64,
    pub leaf_count: u64,
}

/// Checks that `(account, amount)` is the leaf at `index` of the tree `tree` of the deployment
/// `config` in `epoch`: at most [`MAX_PROOF_DEPTH`] siblings (`ProofTooLong`), and the siblings
/// lead to a top whose root is the committed one and whose sum is the *declared* total over the
/// declared leaf count (`InvalidProof`). A tree whose leaves sum to more than the total voted for
/// it therefore proves no leaf at all.
pub fn check_leaf(
    tree: &TreeCommitment,
    config: &Pubkey,
    epoch: u64,
    account: &Pubkey,
    amount: u64,
    index: u64,
    siblings: &[ProofNode],
) -> Result<()> {
    require!(
        siblings.len() <= MAX_PROOF_DEPTH,
        BackhaulError::ProofTooLong
    );
    let scope = Scope {
        kind: tree.kind,
        config: config.to_bytes(),
        epoch,
    };
    let commitment = Commitment {
        root: tree.root,
        total: tree.total,
        leaf_count: tree.leaf_count,
    };
    let leaf = Leaf {
        account: account.to_bytes(),
        amount,
    };
    require!(
        verify_leaf(
            &scope,
            &commitment,
            &leaf,
            index,
            siblings.iter().map(SumNode::from)
        ),
        BackhaulError::InvalidProof
    );
    Ok(())
}
