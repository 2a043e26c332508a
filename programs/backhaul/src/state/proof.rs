//! Merkle-sum proofs (format v2, `docs/merkle.md`) as claims and settlements carry them.

use crate::error::BackhaulError;
use anchor_lang::prelude::*;
use backhaul_core::merkle::{TreeKind, MAX_PROOF_DEPTH};
use backhaul_core::sum_tree::{verify_leaf, Commitment, Leaf, Scope, SumNode, SIBLING_LEN};

/// One level of a proof: the sibling's hash and the sum of the amounts below it, 40 bytes
/// (`SIBLING_LEN`) in instruction data.
#[derive(AnchorSerialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProofNode {
    pub hash: [u8; 32],
    pub sum: u64,
}

/// Borsh's layout (`hash`, then `sum` little-endian), as derived. A proof (a `Vec` of at most
/// [`MAX_PROOF_DEPTH`] nodes) is read with one copy of all its bytes rather than two per node:
/// a claim decodes one node per level. Longer lists take borsh's node-by-node path, so that
/// `check_leaf` refuses them (`ProofTooLong`) as before.
impl AnchorDeserialize for ProofNode {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            hash: <[u8; 32]>::deserialize_reader(reader)?,
            sum: u64::deserialize_reader(reader)?,
        })
    }

    fn vec_from_reader<R: std::io::Read>(
        len: u32,
        reader: &mut R,
    ) -> std::io::Result<Option<Vec<Self>>> {
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        if n > MAX_PROOF_DEPTH {
            return Ok(None);
        }
        let mut bytes = [0u8; MAX_PROOF_DEPTH * SIBLING_LEN];
        let bytes = n
            .checked_mul(SIBLING_LEN)
            .and_then(|end| bytes.get_mut(..end))
            .ok_or(std::io::ErrorKind::InvalidData)?;
        reader.read_exact(bytes)?;
        Ok(Some(
            bytes
                .chunks_exact(SIBLING_LEN)
                .map(|c| {
                    let (hash, sum) = c.split_at(32);
                    let mut node = ProofNode::default();
                    node.hash.copy_from_slice(hash);
                    let mut le = [0u8; 8];
                    le.copy_from_slice(sum);
                    node.sum = u64::from_le_bytes(le);
                    node
                })
                .collect(),
        ))
    }
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

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn proofs_decode_what_borsh_encodes() {
        for len in [0usize, 1, 5, MAX_PROOF_DEPTH, MAX_PROOF_DEPTH + 1, 40] {
            let nodes: Vec<ProofNode> = (0..len)
                .map(|i| ProofNode {
                    hash: [(i as u8).wrapping_mul(37); 32],
                    sum: u64::MAX - (i as u64) * 0x0102_0304_0506,
                })
                .collect();
            let mut bytes = vec![];
            nodes.serialize(&mut bytes).expect("serialize");
            assert_eq!(bytes.len(), 4 + len * SIBLING_LEN);
            let decoded = Vec::<ProofNode>::try_from_slice(&bytes).expect("deserialize");
            assert_eq!(decoded, nodes);
            // Cut short, or with bytes left over, it is refused.
            if len > 0 {
                assert!(Vec::<ProofNode>::try_from_slice(&bytes[..bytes.len() - 1]).is_err());
            }
            bytes.push(0);
            assert!(Vec::<ProofNode>::try_from_slice(&bytes).is_err());
        }
        // A length beyond what follows is refused, not allocated.
        assert!(Vec::<ProofNode>::try_from_slice(&[255, 255, 255, 255, 1, 2]).is_err());
        assert!(Vec::<ProofNode>::try_from_slice(&[3, 0, 0, 0, 1, 2]).is_err());
    }
}
