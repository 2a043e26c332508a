//! Hashing shared by the Merkle format and the proposal digest (see `docs/merkle.md`). The trees
//! themselves, their proofs and their verification are format v2, the Merkle-sum tree:
//! [`crate::sum_tree`].
//!
//! ```text
//! inner = sha256(tag ‖ config (32) ‖ epoch (u64 LE) ‖ account (32) ‖ amount (u64 LE))
//! ```
//!
//! The tag, config and epoch bind every leaf to one tree kind, one deployment and one epoch, so a
//! proof can never be replayed against another of them.

use crate::Hash32;
use solana_sha256_hasher::hashv;

/// Domain tag of an epoch proposal's digest (what oracles vote on).
pub const PROPOSAL_TAG: &[u8] = b"backhaul:proposal:v1";

/// The longest proof the program accepts. A tree of depth 32 holds four billion leaves; what
/// bounds a claim in practice is the transaction size (see `docs/merkle.md`, "Limits").
pub const MAX_PROOF_DEPTH: usize = 32;

/// Which of the two trees of an epoch a leaf belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TreeKind {
    /// Operators and the cumulative tokens they earned.
    Reward,
    /// Buyers and the cumulative credits they consumed.
    Usage,
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256v(parts: &[&[u8]]) -> Hash32 {
    hashv(parts).to_bytes()
}

/// `sha256(tag ‖ config ‖ epoch ‖ account ‖ amount)`: what a leaf binds, before its prefix
/// ([`crate::sum_tree::leaf_node`]).
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

/// The digest oracles vote on: the tagged hash of a proposal's canonical (borsh) bytes.
pub fn proposal_digest(config: &Hash32, epoch: u64, proposal_bytes: &[u8]) -> Hash32 {
    sha256v(&[PROPOSAL_TAG, config, &epoch.to_le_bytes(), proposal_bytes])
}
