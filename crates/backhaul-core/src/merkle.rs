//! The Merkle format that the oracle builds and the program verifies (see `docs/merkle.md`).
//!
//! ```text
//! inner = sha256(tag ‖ config (32) ‖ epoch (u64 LE) ‖ account (32) ‖ cumulative amount (u64 LE))
//! leaf  = sha256(0x00 ‖ inner)
//! node  = sha256(0x01 ‖ min(a, b) ‖ max(a, b))          (bytewise comparison)
//! ```
//!
//! The leaf is hashed twice and prefixed so that no leaf can pose as an internal node (second
//! preimage), and the tag, config and epoch bind every leaf to one tree kind, one deployment and
//! one epoch, so a proof can never be replayed against another of them.

use crate::Hash32;
use solana_sha256_hasher::hashv;

/// Domain tag of the reward tree: leaves are (operator, cumulative tokens earned).
pub const REWARD_TAG: &[u8] = b"backhaul:reward:v1";
/// Domain tag of the usage tree: leaves are (buyer, cumulative credits consumed).
pub const USAGE_TAG: &[u8] = b"backhaul:usage:v1";
/// Domain tag of an epoch proposal's digest (what oracles vote on).
pub const PROPOSAL_TAG: &[u8] = b"backhaul:proposal:v1";

/// Prefix of a leaf hash.
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an internal node hash.
pub const NODE_PREFIX: u8 = 0x01;

/// The longest proof the program accepts. A tree of depth 32 holds four billion leaves; what
/// bounds a claim in practice is the transaction size (see `docs/merkle.md`: depth 20, about a
/// million operators, fits a legacy transaction together with token-account creation).
pub const MAX_PROOF_DEPTH: usize = 32;

/// Which of the two trees of an epoch a leaf belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TreeKind {
    /// Operators and the cumulative tokens they earned.
    Reward,
    /// Buyers and the cumulative credits they consumed.
    Usage,
}

impl TreeKind {
    /// The domain tag hashed into every leaf of this kind.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            TreeKind::Reward => REWARD_TAG,
            TreeKind::Usage => USAGE_TAG,
        }
    }
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256v(parts: &[&[u8]]) -> Hash32 {
    hashv(parts).to_bytes()
}

/// The leaf for `account` holding `cumulative` in `epoch` of the deployment `config`.
pub fn leaf_hash(
    kind: TreeKind,
    config: &Hash32,
    epoch: u64,
    account: &Hash32,
    cumulative: u64,
) -> Hash32 {
    let inner = leaf_inner(kind.tag(), config, epoch, account, cumulative);
    sha256v(&[&[LEAF_PREFIX], &inner])
}

/// `sha256(tag ‖ config ‖ epoch ‖ account ‖ amount)`: what a leaf binds, before its prefix.
/// Formats v1 ([`leaf_hash`]) and v2 ([`crate::sum_tree::leaf_node`]) share it; they differ in
/// tag and prefix.
pub(crate) fn leaf_inner(
    tag: &[u8],
    config: &Hash32,
    epoch: u64,
    account: &Hash32,
    amount: u64,
) -> Hash32 {
    sha256v(&[
        tag,
        config,
        &epoch.to_le_bytes(),
        account,
        &amount.to_le_bytes(),
    ])
}

/// The parent of two nodes; the order of the children does not matter.
pub fn node_hash(a: &Hash32, b: &Hash32) -> Hash32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    sha256v(&[&[NODE_PREFIX], lo, hi])
}

/// The root of a tree with no leaves. It has neither prefix, so it can equal no leaf and no node,
/// and no proof verifies against it. It lets an epoch in which nobody has earned anything yet be
/// committed like any other.
pub fn empty_root(kind: TreeKind, config: &Hash32, epoch: u64) -> Hash32 {
    sha256v(&[kind.tag(), config, &epoch.to_le_bytes()])
}

/// The root that `proof` leads to from `leaf`.
pub fn compute_root(leaf: Hash32, proof: &[Hash32]) -> Hash32 {
    proof
        .iter()
        .fold(leaf, |node, sibling| node_hash(&node, sibling))
}

/// Whether `proof` links `leaf` to `root`. Proofs longer than [`MAX_PROOF_DEPTH`] are refused.
pub fn verify(proof: &[Hash32], root: &Hash32, leaf: Hash32) -> bool {
    proof.len() <= MAX_PROOF_DEPTH && compute_root(leaf, proof) == *root
}

/// The digest oracles vote on: the tagged hash of a proposal's canonical (borsh) bytes.
pub fn proposal_digest(config: &Hash32, epoch: u64, proposal_bytes: &[u8]) -> Hash32 {
    sha256v(&[PROPOSAL_TAG, config, &epoch.to_le_bytes(), proposal_bytes])
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn node_hash_is_symmetric_and_prefixed() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        assert_eq!(node_hash(&a, &b), node_hash(&b, &a));
        assert_eq!(node_hash(&a, &b), sha256v(&[&[1], &a, &b]));
        assert_ne!(node_hash(&a, &b), sha256v(&[&a, &b]));
    }

    #[test]
    fn leaves_are_bound_to_kind_config_epoch_account_and_amount() {
        let config = [7u8; 32];
        let op = [9u8; 32];
        let base = leaf_hash(TreeKind::Reward, &config, 3, &op, 100);
        assert_ne!(base, leaf_hash(TreeKind::Usage, &config, 3, &op, 100));
        assert_ne!(base, leaf_hash(TreeKind::Reward, &[8u8; 32], 3, &op, 100));
        assert_ne!(base, leaf_hash(TreeKind::Reward, &config, 4, &op, 100));
        assert_ne!(
            base,
            leaf_hash(TreeKind::Reward, &config, 3, &[10u8; 32], 100)
        );
        assert_ne!(base, leaf_hash(TreeKind::Reward, &config, 3, &op, 101));
    }

    #[test]
    fn overlong_proofs_are_refused() {
        let leaf = [3u8; 32];
        let proof = [[4u8; 32]; MAX_PROOF_DEPTH + 1];
        let root = compute_root(leaf, &proof);
        assert!(!verify(&proof, &root, leaf));
        assert!(verify(
            &proof[..MAX_PROOF_DEPTH],
            &compute_root(leaf, &proof[..MAX_PROOF_DEPTH]),
            leaf
        ));
    }
}
