//! What a fraud proof carries (the payload of a proof buffer consumed by `prove_fraud`), and
//! what each kind shows against the proposal under challenge. The verification itself is
//! `backhaul_core::sum_tree`'s, shared with the guardian that builds the proofs.

use crate::state::ProofNode;
use anchor_lang::prelude::*;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{Absence, Leaf, LeafProof, SumNode};

/// Which of an epoch's two trees a proof is about.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// Operators and the cumulative tokens they earned.
    Reward,
    /// Buyers and the cumulative credits they consumed.
    Usage,
}

impl From<Tree> for TreeKind {
    fn from(t: Tree) -> Self {
        match t {
            Tree::Reward => TreeKind::Reward,
            Tree::Usage => TreeKind::Usage,
        }
    }
}

/// A leaf of a tree and its Merkle-sum proof.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProvenLeaf {
    pub account: Pubkey,
    pub amount: u64,
    pub index: u64,
    /// From the leaf level up, as in `claim`.
    pub siblings: Vec<ProofNode>,
}

impl ProvenLeaf {
    /// The proof in the core's terms.
    pub fn to_core(&self) -> LeafProof<Vec<SumNode>> {
        LeafProof {
            leaf: Leaf {
                account: self.account.to_bytes(),
                amount: self.amount,
            },
            index: self.index,
            siblings: self.siblings.iter().map(SumNode::from).collect(),
        }
    }
}

/// What the proposed tree holds for an account: its leaf, or why it has none.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Its leaf.
    Present(ProvenLeaf),
    /// The tree has no leaves.
    Empty,
    /// The first leaf (index 0) is above the account.
    BeforeFirst(ProvenLeaf),
    /// The last leaf is below the account.
    AfterLast(ProvenLeaf),
    /// Two adjacent leaves bracket the account.
    Between(ProvenLeaf, ProvenLeaf),
}

impl Standing {
    /// The absence in the core's terms, or `None` for [`Standing::Present`].
    pub fn absence(&self) -> Option<Absence<LeafProof<Vec<SumNode>>>> {
        Some(match self {
            Standing::Present(_) => return None,
            Standing::Empty => Absence::Empty,
            Standing::BeforeFirst(p) => Absence::BeforeFirst(p.to_core()),
            Standing::AfterLast(p) => Absence::AfterLast(p.to_core()),
            Standing::Between(l, r) => Absence::Between(l.to_core(), r.to_core()),
        })
    }
}

/// A proof that the proposal under challenge is wrong. Anyone may send one.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub enum FraudProof {
    /// A cumulative amount went down: `earlier` is the account's leaf in an earlier finalized
    /// epoch (the `earlier_record` account), `later` its leaf in the proposed tree with a
    /// smaller amount, or its absence while `earlier` is above zero. Cumulative amounts only grow.
    Decrease {
        tree: Tree,
        earlier: ProvenLeaf,
        later: Standing,
    },
    /// Two adjacent leaves of the proposed tree are out of order or share an account: the tree
    /// breaks the one-leaf-per-account, ascending rule that absence proofs rely on.
    Disorder {
        tree: Tree,
        left: ProvenLeaf,
        right: ProvenLeaf,
    },
    /// A buyer's leaf in the proposed usage tree consumes more credits than the buyer had
    /// bought through the epoch (its credit account, or none at all).
    Overspend { leaf: ProvenLeaf },
}
