//! Merkle format v2, the Merkle-sum tree (see `docs/merkle.md`): the format the oracle builds
//! and the program verifies claims and settlements against.
//!
//! ```text
//! inner = sha256(tag ‖ config (32) ‖ epoch (u64 LE) ‖ account (32) ‖ amount (u64 LE))
//! leaf  = sha256(0x02 ‖ inner)                                with sum = amount
//! node  = sha256(0x03 ‖ left hash ‖ left sum (u64 LE) ‖ right hash ‖ right sum (u64 LE))
//!                                                             with sum = left sum + right sum
//! empty = sha256(0x04)                                        with sum = 0 (pads odd levels)
//! root  = sha256(0x05 ‖ tag ‖ top hash ‖ total (u64 LE) ‖ leaf count (u64 LE))
//! ```
//!
//! Every node carries the sum of the amounts below it and its parent hashes both children's hashes
//! and sums in position, so a proof fixes its leaf's index and the root fixes the total and the
//! number of leaves. Leaves are sorted by account, one per account, so two proofs at adjacent
//! indices show that no leaf lies between their accounts.
//!
//! Verification needs neither `alloc` nor `std`; the builder, `SumTree`, needs `alloc`.

use crate::merkle::{leaf_inner, sha256v, TreeKind, MAX_PROOF_DEPTH};
use crate::{CoreError, Hash32};
use core::borrow::Borrow;
use core::cmp::Ordering;

/// Domain tag of the v2 reward tree: leaves are (operator, cumulative tokens earned).
pub const REWARD_TAG: &[u8] = b"backhaul:reward:v2";
/// Domain tag of the v2 usage tree: leaves are (buyer, cumulative credits consumed).
pub const USAGE_TAG: &[u8] = b"backhaul:usage:v2";

/// Prefix of a v2 leaf hash (the retired format v1 used `0x00` and `0x01`; no prefix is shared
/// between formats).
pub const LEAF_PREFIX: u8 = 0x02;
/// Prefix of a v2 interior node hash.
pub const NODE_PREFIX: u8 = 0x03;
/// Prefix of the empty node, the whole of its preimage.
pub const EMPTY_PREFIX: u8 = 0x04;
/// Prefix of a v2 root.
pub const ROOT_PREFIX: u8 = 0x05;

/// `sha256(0x04)`: the hash of the empty node that pads a level with an odd count.
pub const EMPTY_NODE_HASH: Hash32 = [
    0xe5, 0x2d, 0x9c, 0x50, 0x8c, 0x50, 0x23, 0x47, 0x34, 0x4d, 0x8c, 0x07, 0xad, 0x91, 0xcb, 0xd6,
    0x06, 0x8a, 0xfc, 0x75, 0xff, 0x62, 0x92, 0xf0, 0x62, 0xa0, 0x9c, 0xa3, 0x81, 0xc8, 0x9e, 0x71,
];

/// The empty node: hash [`EMPTY_NODE_HASH`], sum zero.
pub const EMPTY_NODE: SumNode = SumNode {
    hash: EMPTY_NODE_HASH,
    sum: 0,
};

/// The bytes one proof level takes: the sibling's hash (32) and sum (8).
pub const SIBLING_LEN: usize = 40;

/// The v2 domain tag of a tree kind.
pub const fn tag(kind: TreeKind) -> &'static [u8] {
    match kind {
        TreeKind::Reward => REWARD_TAG,
        TreeKind::Usage => USAGE_TAG,
    }
}

/// What binds every leaf of one tree: its kind, the deployment's `Config` address and the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Reward or usage tree.
    pub kind: TreeKind,
    /// The deployment's `Config` account (a PDA of the program, so it also binds the program id).
    pub config: Hash32,
    /// The epoch the tree commits.
    pub epoch: u64,
}

/// One account's amount (cumulative tokens earned, or cumulative credits consumed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Leaf {
    /// The operator (reward tree) or buyer (usage tree).
    pub account: Hash32,
    /// The amount; the sum of the leaf's one-leaf subtree.
    pub amount: u64,
}

/// A node of the tree: its hash and the sum of the amounts below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SumNode {
    /// The node's hash.
    pub hash: Hash32,
    /// The sum of its subtree.
    pub sum: u64,
}

/// What a v2 tree commits to: the root hash, and the total and leaf count the root binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Commitment {
    /// `sha256(0x05 ‖ tag ‖ top hash ‖ total ‖ leaf count)`.
    pub root: Hash32,
    /// The sum of all amounts (the top node's sum).
    pub total: u64,
    /// How many leaves the tree holds.
    pub leaf_count: u64,
}

impl Commitment {
    /// The commitment of a tree whose top node is `top` and which holds `leaf_count` leaves.
    pub fn new(kind: TreeKind, top: &SumNode, leaf_count: u64) -> Self {
        Self {
            root: root_hash(kind, top, leaf_count),
            total: top.sum,
            leaf_count,
        }
    }

    /// The commitment of a tree with no leaves: the empty node on top, a zero total, no leaves.
    pub fn empty(kind: TreeKind) -> Self {
        Self::new(kind, &EMPTY_NODE, 0)
    }
}

/// A leaf, its index and its siblings from the leaf level up. `S` is a slice on-chain
/// (`&[SumNode]`) and a `Vec<SumNode>` from the builder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeafProof<S> {
    /// The leaf proven.
    pub leaf: Leaf,
    /// Its position among the leaves, from 0.
    pub index: u64,
    /// One sibling per level, leaf level first: exactly [`depth`]`(leaf_count)` of them.
    pub siblings: S,
}

/// Why an account has no leaf in a tree. Sound for a tree whose leaves are strictly ascending,
/// which [`verify_disorder`] can refute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Absence<P> {
    /// The tree has no leaves.
    Empty,
    /// The leaf at index 0 is above the account.
    BeforeFirst(P),
    /// The leaf at index `leaf_count − 1` is below the account.
    AfterLast(P),
    /// Leaves at indices `i` and `i + 1` are below and above the account.
    Between(P, P),
}

/// The leaf node of `leaf` in the tree `scope`.
pub fn leaf_node(scope: &Scope, leaf: &Leaf) -> SumNode {
    let inner = leaf_inner(
        tag(scope.kind),
        &scope.config,
        scope.epoch,
        &leaf.account,
        leaf.amount,
    );
    SumNode {
        hash: sha256v(&[&[LEAF_PREFIX], &inner]),
        sum: leaf.amount,
    }
}

/// The parent of `left` and `right` (in that order). Fails if the sum overflows.
pub fn node(left: &SumNode, right: &SumNode) -> Result<SumNode, CoreError> {
    let sum = left.sum.checked_add(right.sum).ok_or(CoreError::Overflow)?;
    let hash = sha256v(&[
        &[NODE_PREFIX],
        &left.hash,
        &left.sum.to_le_bytes(),
        &right.hash,
        &right.sum.to_le_bytes(),
    ]);
    Ok(SumNode { hash, sum })
}

/// The proven node's bytes, `hash ‖ sum (u64 LE)`, where its parent's preimage needs them: as the
/// left child right after the prefix (`0x03 ‖ node`), as the right child right after the
/// sibling's sum (`sibling sum ‖ node`). Each level of [`compute_root`] then hashes three slices
/// (`sol_sha256` charges per slice), and writes its result only where the next level needs it.
/// The node starts 8-byte aligned in both buffers, so writing it takes word copies.
#[repr(C, align(8))]
struct ProofBuffers {
    /// Seven unused bytes, the prefix, the node.
    left: [u8; 8 + SIBLING_LEN],
    /// The sibling's sum, the node.
    right: [u8; 8 + SIBLING_LEN],
}

impl ProofBuffers {
    fn new() -> Self {
        let mut left = [0u8; 8 + SIBLING_LEN];
        left[7] = NODE_PREFIX;
        Self {
            left,
            right: [0u8; 8 + SIBLING_LEN],
        }
    }

    /// Writes the node where a parent needs it when it is the right (or else the left) child.
    fn place(&mut self, right: bool, hash: &Hash32, sum: u64) {
        let buf = if right {
            &mut self.right
        } else {
            &mut self.left
        };
        buf[8..40].copy_from_slice(hash);
        buf[40..].copy_from_slice(&sum.to_le_bytes());
    }

    /// The hash last placed.
    fn hash(&self, right: bool) -> Hash32 {
        let buf = if right { &self.right } else { &self.left };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&buf[8..40]);
        hash
    }
}

/// The root of a tree whose top node is `top` and which holds `leaf_count` leaves.
pub fn root_hash(kind: TreeKind, top: &SumNode, leaf_count: u64) -> Hash32 {
    sha256v(&[
        &[ROOT_PREFIX],
        tag(kind),
        &top.hash,
        &top.sum.to_le_bytes(),
        &leaf_count.to_le_bytes(),
    ])
}

/// The root of a tree with no leaves: `sha256(0x05 ‖ tag ‖ sha256(0x04) ‖ 0 ‖ 0)`. No proof
/// verifies against it.
pub fn empty_root(kind: TreeKind) -> Hash32 {
    Commitment::empty(kind).root
}

/// The number of siblings in every proof of a tree of `leaf_count` leaves (⌈log2(leaf_count)⌉, 0
/// for one leaf or none), or `None` beyond [`MAX_PROOF_DEPTH`] (more than 2^32 leaves).
pub fn depth(leaf_count: u64) -> Option<usize> {
    let bits = u64::BITS.checked_sub(leaf_count.saturating_sub(1).leading_zeros())?;
    let depth = usize::try_from(bits).ok()?;
    (depth <= MAX_PROOF_DEPTH).then_some(depth)
}

/// The commitment that `siblings` lead to from `leaf` at `index` in a tree of `leaf_count`
/// leaves, or `None` if the proof cannot belong to such a tree: the index is not below the leaf
/// count, the number of siblings is not [`depth`]`(leaf_count)`, a padding position holds anything
/// but [`EMPTY_NODE`], or a sum overflows. `siblings` go from the leaf level up; they may be a
/// slice of nodes or an iterator that yields them (the program decodes them from instruction
/// data).
pub fn compute_root<I>(
    scope: &Scope,
    leaf: &Leaf,
    index: u64,
    leaf_count: u64,
    siblings: I,
) -> Option<Commitment>
where
    I: IntoIterator,
    I::Item: Borrow<SumNode>,
    I::IntoIter: ExactSizeIterator,
{
    let siblings = siblings.into_iter();
    if index >= leaf_count || depth(leaf_count)? != siblings.len() {
        return None;
    }
    let leaf = leaf_node(scope, leaf);
    let mut buffers = ProofBuffers::new();
    let mut sum = leaf.sum;
    // The node's position in its level and the level's width (before padding).
    let mut position = index;
    let mut width = leaf_count;
    let mut right = !position.is_multiple_of(2);
    buffers.place(right, &leaf.hash, sum);
    for sibling in siblings {
        let sibling = sibling.borrow();
        // The same bytes as `node`'s preimage, in three slices.
        let hash = if right {
            buffers.right[..8].copy_from_slice(&sibling.sum.to_le_bytes());
            sha256v(&[&[NODE_PREFIX], &sibling.hash, &buffers.right])
        } else {
            // The last node of an odd level: its sibling is the padding.
            if position.checked_add(1)? == width && *sibling != EMPTY_NODE {
                return None;
            }
            sha256v(&[
                &buffers.left[7..],
                &sibling.hash,
                &sibling.sum.to_le_bytes(),
            ])
        };
        sum = sum.checked_add(sibling.sum)?;
        position /= 2;
        width = width.div_ceil(2);
        right = !position.is_multiple_of(2);
        buffers.place(right, &hash, sum);
    }
    let top = SumNode {
        hash: buffers.hash(right),
        sum,
    };
    Some(Commitment::new(scope.kind, &top, leaf_count))
}

/// Whether `leaf` is at `index` in the tree `commitment` of `scope`: `siblings` (as in
/// [`compute_root`]) lead to the committed root, and the top they lead to sums to the committed
/// total over the committed leaf count. This is what the program checks for every claim and
/// settlement, against the root, total and leaf count the oracles voted, so a tree whose leaves
/// sum to more than the voted total pays nobody.
pub fn verify_leaf<I>(
    scope: &Scope,
    commitment: &Commitment,
    leaf: &Leaf,
    index: u64,
    siblings: I,
) -> bool
where
    I: IntoIterator,
    I::Item: Borrow<SumNode>,
    I::IntoIter: ExactSizeIterator,
{
    compute_root(scope, leaf, index, commitment.leaf_count, siblings)
        .is_some_and(|computed| computed == *commitment)
}

/// Whether `proof` shows its leaf at its index in the tree `commitment` of `scope`
/// ([`verify_leaf`]).
pub fn verify<S: AsRef<[SumNode]>>(
    scope: &Scope,
    commitment: &Commitment,
    proof: &LeafProof<S>,
) -> bool {
    verify_leaf(
        scope,
        commitment,
        &proof.leaf,
        proof.index,
        proof.siblings.as_ref(),
    )
}

/// Whether `left` and `right` are leaves of the tree `commitment` at indices `i` and `i + 1`.
pub fn verify_adjacent<S: AsRef<[SumNode]>>(
    scope: &Scope,
    commitment: &Commitment,
    left: &LeafProof<S>,
    right: &LeafProof<S>,
) -> bool {
    left.index.checked_add(1) == Some(right.index)
        && verify(scope, commitment, left)
        && verify(scope, commitment, right)
}

/// Whether `absence` shows that `key` has no leaf in the tree `commitment`, assuming the tree's
/// leaves are strictly ascending (a tree that breaks that rule is refuted by [`verify_disorder`]).
pub fn verify_absent<S: AsRef<[SumNode]>>(
    scope: &Scope,
    commitment: &Commitment,
    key: &Hash32,
    absence: &Absence<LeafProof<S>>,
) -> bool {
    match absence {
        Absence::Empty => *commitment == Commitment::empty(scope.kind),
        Absence::BeforeFirst(first) => {
            first.index == 0 && *key < first.leaf.account && verify(scope, commitment, first)
        }
        Absence::AfterLast(last) => {
            last.index.checked_add(1) == Some(commitment.leaf_count)
                && last.leaf.account < *key
                && verify(scope, commitment, last)
        }
        Absence::Between(left, right) => {
            left.leaf.account < *key
                && *key < right.leaf.account
                && verify_adjacent(scope, commitment, left, right)
        }
    }
}

/// Whether `left` and `right` are adjacent leaves of the tree `commitment` out of order (equal or
/// descending accounts): proof that the tree breaks the one-leaf-per-account, ascending rule.
pub fn verify_disorder<S: AsRef<[SumNode]>>(
    scope: &Scope,
    commitment: &Commitment,
    left: &LeafProof<S>,
    right: &LeafProof<S>,
) -> bool {
    left.leaf.account >= right.leaf.account && verify_adjacent(scope, commitment, left, right)
}

/// Checks that `leaves` are strictly ascending by account: a repeated account is
/// [`CoreError::DuplicateLeaf`], a descending pair [`CoreError::InvalidParameter`].
pub fn check_sorted(leaves: &[Leaf]) -> Result<(), CoreError> {
    for pair in leaves.windows(2) {
        if let [a, b] = pair {
            match a.account.cmp(&b.account) {
                Ordering::Less => {}
                Ordering::Equal => return Err(CoreError::DuplicateLeaf),
                Ordering::Greater => return Err(CoreError::InvalidParameter),
            }
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
pub use builder::{OwnedAbsence, OwnedProof, SumTree};

#[cfg(feature = "alloc")]
mod builder {
    use super::*;
    use alloc::vec::Vec;

    /// A proof as the builder hands it out.
    pub type OwnedProof = LeafProof<Vec<SumNode>>;
    /// An absence proof as the builder hands it out.
    pub type OwnedAbsence = Absence<OwnedProof>;

    /// A built v2 tree: its leaves (sorted, unless built [`SumTree::as_given`]), every level of
    /// nodes and its commitment.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SumTree {
        scope: Scope,
        leaves: Vec<Leaf>,
        /// `levels[0]` are the leaf nodes, the last level holds the top node alone; no levels
        /// when there are no leaves. Levels are stored unpadded.
        levels: Vec<Vec<SumNode>>,
        commitment: Commitment,
    }

    impl SumTree {
        /// Sorts `leaves` by account and builds the tree. Refuses a repeated account
        /// ([`CoreError::DuplicateLeaf`]), a total above `u64::MAX` ([`CoreError::Overflow`])
        /// and more than 2^32 leaves ([`CoreError::InvalidParameter`]). No leaves make the empty
        /// tree.
        pub fn build(scope: Scope, mut leaves: Vec<Leaf>) -> Result<Self, CoreError> {
            leaves.sort_unstable_by_key(|leaf| leaf.account);
            Self::from_sorted(scope, leaves)
        }

        /// Builds the tree over `leaves` as given, which must already be strictly ascending by
        /// account ([`check_sorted`]); otherwise as [`SumTree::build`].
        pub fn from_sorted(scope: Scope, leaves: Vec<Leaf>) -> Result<Self, CoreError> {
            check_sorted(&leaves)?;
            Self::as_given(scope, leaves)
        }

        /// Builds the tree over `leaves` in the order given, without sorting them and without
        /// checking that they are ascending or that each account has one leaf: the tree a
        /// hostile dataset lists, to build evidence against it (a fraud proof). Its commitment
        /// is what the leaves in that order hash to, by the same rules as every other tree, so
        /// [`SumTree::proof`] gives proofs that [`verify`] (and the program) accept against it,
        /// and two adjacent leaves out of order make a [`verify_disorder`] proof. Still refuses
        /// a total above `u64::MAX` ([`CoreError::Overflow`]) and more than 2^32 leaves
        /// ([`CoreError::InvalidParameter`]).
        ///
        /// [`SumTree::proof_for`] and [`SumTree::absence`] search the leaves by account and mean
        /// something only when they are strictly ascending ([`check_sorted`]); never build a tree
        /// to publish with this.
        pub fn as_given(scope: Scope, leaves: Vec<Leaf>) -> Result<Self, CoreError> {
            let leaf_count =
                u64::try_from(leaves.len()).map_err(|_| CoreError::InvalidParameter)?;
            depth(leaf_count).ok_or(CoreError::InvalidParameter)?;
            let mut levels = Vec::new();
            let mut current: Vec<SumNode> =
                leaves.iter().map(|leaf| leaf_node(&scope, leaf)).collect();
            while current.len() > 1 {
                let next = current
                    .chunks(2)
                    .map(|pair| match pair {
                        [left, right] => node(left, right),
                        [last] => node(last, &EMPTY_NODE),
                        _ => Err(CoreError::InvalidParameter),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                levels.push(core::mem::replace(&mut current, next));
            }
            let top = current.first().copied().unwrap_or(EMPTY_NODE);
            if !current.is_empty() {
                levels.push(current);
            }
            Ok(Self {
                scope,
                leaves,
                levels,
                commitment: Commitment::new(scope.kind, &top, leaf_count),
            })
        }

        /// The kind, deployment and epoch the leaves are bound to.
        pub fn scope(&self) -> &Scope {
            &self.scope
        }

        /// The leaves, ascending by account (in the order given, for [`SumTree::as_given`]).
        pub fn leaves(&self) -> &[Leaf] {
            &self.leaves
        }

        /// The root, total and leaf count.
        pub fn commitment(&self) -> &Commitment {
            &self.commitment
        }

        /// The root hash.
        pub fn root(&self) -> Hash32 {
            self.commitment.root
        }

        /// The sum of all amounts.
        pub fn total(&self) -> u64 {
            self.commitment.total
        }

        /// How many leaves the tree holds.
        pub fn leaf_count(&self) -> u64 {
            self.commitment.leaf_count
        }

        /// The number of siblings in each of its proofs.
        pub fn depth(&self) -> usize {
            self.levels.len().saturating_sub(1)
        }

        /// The proof for the leaf at `index`, or `None` if there is no such leaf.
        pub fn proof(&self, index: u64) -> Option<OwnedProof> {
            self.proof_at(usize::try_from(index).ok()?)
        }

        /// The proof for `account`'s leaf, or `None` if it has none.
        pub fn proof_for(&self, account: &Hash32) -> Option<OwnedProof> {
            self.proof_at(self.position(account).ok()?)
        }

        /// The proof that `account` has no leaf, or `None` if it has one.
        pub fn absence(&self, account: &Hash32) -> Option<OwnedAbsence> {
            let above = self.position(account).err()?;
            Some(if self.leaves.is_empty() {
                Absence::Empty
            } else if above == 0 {
                Absence::BeforeFirst(self.proof_at(0)?)
            } else {
                let below = self.proof_at(above.checked_sub(1)?)?;
                if above == self.leaves.len() {
                    Absence::AfterLast(below)
                } else {
                    Absence::Between(below, self.proof_at(above)?)
                }
            })
        }

        /// Where `account`'s leaf is (`Ok`), or where it would be inserted (`Err`).
        fn position(&self, account: &Hash32) -> Result<usize, usize> {
            self.leaves
                .binary_search_by(|leaf| leaf.account.cmp(account))
        }

        fn proof_at(&self, index: usize) -> Option<OwnedProof> {
            let leaf = *self.leaves.get(index)?;
            let (_, below_top) = self.levels.split_last()?;
            let mut position = index;
            let siblings = below_top
                .iter()
                .map(|level| {
                    // A missing right sibling is the padding of an odd level.
                    let sibling = *level.get(position ^ 1).unwrap_or(&EMPTY_NODE);
                    position /= 2;
                    sibling
                })
                .collect();
            Some(LeafProof {
                leaf,
                index: u64::try_from(index).ok()?,
                siblings,
            })
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const SCOPE: Scope = Scope {
        kind: TreeKind::Reward,
        config: [0x11; 32],
        epoch: 7,
    };

    fn leaf(b: u8, amount: u64) -> Leaf {
        Leaf {
            account: [b; 32],
            amount,
        }
    }

    fn root_of(top: &SumNode, leaf_count: u64) -> Hash32 {
        sha256v(&[
            &[0x05],
            b"backhaul:reward:v2",
            &top.hash,
            &top.sum.to_le_bytes(),
            &leaf_count.to_le_bytes(),
        ])
    }

    #[test]
    fn constants_are_what_the_docs_say() {
        assert_eq!(EMPTY_NODE_HASH, sha256v(&[&[EMPTY_PREFIX]]));
        // 0x00 and 0x01 were format v1's leaf and node prefixes; they are never reused.
        let prefixes = [
            0x00,
            0x01,
            LEAF_PREFIX,
            NODE_PREFIX,
            EMPTY_PREFIX,
            ROOT_PREFIX,
        ];
        for (i, a) in prefixes.iter().enumerate() {
            assert!(prefixes[i + 1..].iter().all(|b| a != b));
        }
    }

    #[test]
    fn depth_is_the_ceiling_of_log2() {
        let table = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (1 << 20, 20),
        ];
        for (count, d) in table {
            assert_eq!(depth(count), Some(d), "{count} leaves");
        }
        assert_eq!(depth((1 << 20) + 1), Some(21));
        assert_eq!(depth(1 << 32), Some(32));
        assert_eq!(depth((1 << 32) + 1), None);
        assert_eq!(depth(u64::MAX), None);
    }

    #[test]
    fn leaves_bind_kind_config_epoch_account_and_amount() {
        let base = leaf_node(&SCOPE, &leaf(0x22, 100));
        let inner = sha256v(&[
            b"backhaul:reward:v2",
            &[0x11; 32],
            &7u64.to_le_bytes(),
            &[0x22; 32],
            &100u64.to_le_bytes(),
        ]);
        assert_eq!(base.hash, sha256v(&[&[0x02], &inner]));
        assert_eq!(base.sum, 100);
        let usage = Scope {
            kind: TreeKind::Usage,
            ..SCOPE
        };
        let other_config = Scope {
            config: [0x12; 32],
            ..SCOPE
        };
        let other_epoch = Scope { epoch: 8, ..SCOPE };
        for scope in [usage, other_config, other_epoch] {
            assert_ne!(leaf_node(&scope, &leaf(0x22, 100)).hash, base.hash);
        }
        assert_ne!(leaf_node(&SCOPE, &leaf(0x23, 100)).hash, base.hash);
        assert_ne!(leaf_node(&SCOPE, &leaf(0x22, 101)).hash, base.hash);
    }

    #[test]
    fn one_leaf_tree_tops_with_its_leaf() {
        let l = leaf(0x22, 1_000_000);
        let tree = SumTree::build(SCOPE, vec![l]).unwrap();
        let top = leaf_node(&SCOPE, &l);
        assert_eq!(tree.root(), root_of(&top, 1));
        assert_eq!(
            (tree.total(), tree.leaf_count(), tree.depth()),
            (1_000_000, 1, 0)
        );
        let proof = tree.proof(0).unwrap();
        assert!(proof.siblings.is_empty());
        assert!(verify(&SCOPE, tree.commitment(), &proof));
        assert!(tree.proof(1).is_none());
        let beyond = LeafProof { index: 1, ..proof };
        assert!(!verify(&SCOPE, tree.commitment(), &beyond));
    }

    #[test]
    fn two_leaf_tree_hashes_children_in_position() {
        let (a, b) = (leaf(0x01, 100), leaf(0x02, 200));
        let tree = SumTree::build(SCOPE, vec![b, a]).unwrap();
        let (na, nb) = (leaf_node(&SCOPE, &a), leaf_node(&SCOPE, &b));
        let mut preimage = vec![0x03];
        preimage.extend_from_slice(&na.hash);
        preimage.extend_from_slice(&100u64.to_le_bytes());
        preimage.extend_from_slice(&nb.hash);
        preimage.extend_from_slice(&200u64.to_le_bytes());
        let top = SumNode {
            hash: sha256v(&[&preimage]),
            sum: 300,
        };
        assert_eq!(node(&na, &nb), Ok(top));
        assert_ne!(node(&nb, &na).unwrap().hash, top.hash);
        assert_eq!(tree.root(), root_of(&top, 2));
        assert_eq!(tree.leaves(), &[a, b]);
        assert_eq!(tree.proof(0).unwrap().siblings, vec![nb]);
        assert_eq!(tree.proof(1).unwrap().siblings, vec![na]);
        // Swapping the two leaves' proofs (each claiming the other's index) fails.
        let mut swapped = tree.proof(0).unwrap();
        swapped.index = 1;
        assert!(!verify(&SCOPE, tree.commitment(), &swapped));
    }

    #[test]
    fn three_leaf_tree_pads_with_the_empty_node() {
        let leaves = vec![leaf(0x03, 300), leaf(0x01, 100), leaf(0x02, 200)];
        let tree = SumTree::build(SCOPE, leaves).unwrap();
        let n: Vec<SumNode> = tree.leaves().iter().map(|l| leaf_node(&SCOPE, l)).collect();
        let left = node(&n[0], &n[1]).unwrap();
        let right = node(&n[2], &EMPTY_NODE).unwrap();
        assert_eq!(right.sum, 300);
        let top = node(&left, &right).unwrap();
        assert_eq!(tree.root(), root_of(&top, 3));
        assert_eq!(tree.total(), 600);
        assert_eq!(tree.depth(), 2);
        let proof = tree.proof(2).unwrap();
        assert_eq!(proof.siblings, vec![EMPTY_NODE, left]);
        assert!(verify(&SCOPE, tree.commitment(), &proof));
        // Duplicating the last leaf instead of padding (which would double its amount) fails,
        // and so does a padding sibling with a sum: neither leads to any root.
        for pad in [
            n[2],
            SumNode {
                sum: 1,
                ..EMPTY_NODE
            },
        ] {
            let bad = LeafProof {
                siblings: vec![pad, left],
                ..proof.clone()
            };
            assert!(!verify(&SCOPE, tree.commitment(), &bad));
            assert_eq!(compute_root(&SCOPE, &bad.leaf, 2, 3, &bad.siblings), None);
        }
        for i in 0..3 {
            assert!(verify(&SCOPE, tree.commitment(), &tree.proof(i).unwrap()));
        }
        assert!(tree.proof(3).is_none());
    }

    #[test]
    fn empty_tree_has_the_documented_root_and_proves_every_absence() {
        let tree = SumTree::build(SCOPE, vec![]).unwrap();
        let expected = root_of(&EMPTY_NODE, 0);
        assert_eq!(tree.root(), expected);
        assert_eq!(empty_root(TreeKind::Reward), expected);
        assert_ne!(empty_root(TreeKind::Usage), expected);
        assert_eq!(*tree.commitment(), Commitment::empty(TreeKind::Reward));
        assert_eq!((tree.total(), tree.leaf_count(), tree.depth()), (0, 0, 0));
        assert!(tree.proof(0).is_none());
        assert_eq!(
            compute_root(&SCOPE, &leaf(1, 0), 0, 0, &[] as &[SumNode]),
            None
        );
        let absence = tree.absence(&[9; 32]).unwrap();
        assert_eq!(absence, Absence::Empty);
        assert!(verify_absent(&SCOPE, tree.commitment(), &[9; 32], &absence));
        let one = SumTree::build(SCOPE, vec![leaf(1, 0)]).unwrap();
        let empty: Absence<OwnedProof> = Absence::Empty;
        assert!(!verify_absent(&SCOPE, one.commitment(), &[9; 32], &empty));
    }

    #[test]
    fn duplicates_disorder_overflow_and_size_are_refused() {
        assert_eq!(
            SumTree::build(SCOPE, vec![leaf(1, 1), leaf(1, 2)]),
            Err(CoreError::DuplicateLeaf)
        );
        assert_eq!(
            SumTree::from_sorted(SCOPE, vec![leaf(2, 1), leaf(1, 2)]),
            Err(CoreError::InvalidParameter)
        );
        assert!(SumTree::from_sorted(SCOPE, vec![leaf(1, 1), leaf(2, 2)]).is_ok());
        assert_eq!(
            SumTree::build(SCOPE, vec![leaf(1, u64::MAX), leaf(2, 1)]),
            Err(CoreError::Overflow)
        );
        assert_eq!(
            node(
                &SumNode {
                    sum: u64::MAX,
                    ..EMPTY_NODE
                },
                &SumNode {
                    sum: 1,
                    ..EMPTY_NODE
                }
            ),
            Err(CoreError::Overflow)
        );
        // A sibling whose sum would overflow the path is refused, not wrapped.
        let huge = SumNode {
            hash: [7; 32],
            sum: u64::MAX,
        };
        assert_eq!(compute_root(&SCOPE, &leaf(1, 1), 0, 2, [huge]), None);
        assert!(compute_root(&SCOPE, &leaf(1, 0), 0, 2, [huge]).is_some());
    }

    #[test]
    fn proofs_of_the_wrong_shape_are_refused() {
        let l = leaf(1, 5);
        let sib = [SumNode {
            hash: [3; 32],
            sum: 2,
        }; MAX_PROOF_DEPTH + 1];
        // Depth 32 (2^32 leaves) is the most a proof may have.
        assert!(compute_root(&SCOPE, &l, 0, 1 << 32, &sib[..32]).is_some());
        assert!(compute_root(&SCOPE, &l, (1 << 32) - 1, 1 << 32, &sib[..32]).is_some());
        assert_eq!(compute_root(&SCOPE, &l, 0, (1 << 32) + 1, sib), None);
        assert_eq!(compute_root(&SCOPE, &l, 0, u64::MAX, sib), None);
        // The length must be the depth of the leaf count.
        assert!(compute_root(&SCOPE, &l, 4, 5, [EMPTY_NODE, EMPTY_NODE, sib[0]]).is_some());
        assert_eq!(
            compute_root(&SCOPE, &l, 4, 5, [EMPTY_NODE, EMPTY_NODE]),
            None
        );
        assert_eq!(compute_root(&SCOPE, &l, 0, 5, &sib[..4]), None);
        // Not even when the extra siblings are padding, which would hash on above the top.
        assert_eq!(compute_root(&SCOPE, &l, 0, 1, [EMPTY_NODE]), None);
        assert_eq!(compute_root(&SCOPE, &l, 0, 2, [sib[0], EMPTY_NODE]), None);
        // The index must be below the leaf count.
        assert_eq!(compute_root(&SCOPE, &l, 5, 5, &sib[..3]), None);
        assert_eq!(compute_root(&SCOPE, &l, u64::MAX, 5, &sib[..3]), None);
    }

    #[test]
    fn adjacency_and_absence_in_a_small_tree() {
        let tree = SumTree::build(SCOPE, vec![leaf(2, 1), leaf(4, 2), leaf(6, 3)]).unwrap();
        let c = tree.commitment();
        let p: Vec<OwnedProof> = (0..3).map(|i| tree.proof(i).unwrap()).collect();
        assert!(verify_adjacent(&SCOPE, c, &p[0], &p[1]));
        assert!(verify_adjacent(&SCOPE, c, &p[1], &p[2]));
        assert!(!verify_adjacent(&SCOPE, c, &p[0], &p[2]));
        assert!(!verify_adjacent(&SCOPE, c, &p[1], &p[0]));
        assert!(!verify_adjacent(&SCOPE, c, &p[1], &p[1]));
        assert!(!verify_disorder(&SCOPE, c, &p[0], &p[1]));
        let cases = [
            (1, Some(Absence::BeforeFirst(p[0].clone()))),
            (2, None),
            (3, Some(Absence::Between(p[0].clone(), p[1].clone()))),
            (5, Some(Absence::Between(p[1].clone(), p[2].clone()))),
            (6, None),
            (7, Some(Absence::AfterLast(p[2].clone()))),
        ];
        for (b, expected) in cases {
            assert_eq!(tree.absence(&[b; 32]), expected, "key {b}");
            if let Some(absence) = expected {
                assert!(verify_absent(&SCOPE, c, &[b; 32], &absence));
            }
        }
        // The last leaf below the key proves nothing unless it is the last.
        let not_last = Absence::AfterLast(p[1].clone());
        assert!(!verify_absent(&SCOPE, c, &[5; 32], &not_last));
        let not_first = Absence::BeforeFirst(p[1].clone());
        assert!(!verify_absent(&SCOPE, c, &[3; 32], &not_first));
    }

    #[test]
    fn disorder_is_provable_in_a_tree_built_out_of_order() {
        // A tree nobody should commit: leaves descending. It is built here by hand.
        let leaves = [leaf(5, 1), leaf(3, 2)];
        let nodes = [leaf_node(&SCOPE, &leaves[0]), leaf_node(&SCOPE, &leaves[1])];
        let c = Commitment::new(TreeKind::Reward, &node(&nodes[0], &nodes[1]).unwrap(), 2);
        let left = LeafProof {
            leaf: leaves[0],
            index: 0,
            siblings: [nodes[1]],
        };
        let right = LeafProof {
            leaf: leaves[1],
            index: 1,
            siblings: [nodes[0]],
        };
        assert!(verify_disorder(&SCOPE, &c, &left, &right));
        assert!(!verify_disorder(&SCOPE, &c, &right, &left));
        // The builder over the leaves as given makes the same tree and the same proofs.
        let tree = SumTree::as_given(SCOPE, leaves.to_vec()).unwrap();
        assert_eq!(*tree.commitment(), c);
        assert_eq!(tree.leaves(), &leaves);
        let (p0, p1) = (tree.proof(0).unwrap(), tree.proof(1).unwrap());
        assert_eq!(
            (p0.siblings.as_slice(), p1.siblings.as_slice()),
            (&left.siblings[..], &right.siblings[..])
        );
        assert!(verify_disorder(&SCOPE, &c, &p0, &p1));
    }

    #[test]
    fn trees_as_given_keep_order_and_duplicates_and_refuse_only_overflow() {
        let sorted = vec![leaf(1, 10), leaf(2, 20), leaf(3, 30)];
        assert_eq!(
            SumTree::as_given(SCOPE, sorted.clone()),
            SumTree::from_sorted(SCOPE, sorted)
        );
        // A repeated account: a tree nobody should commit, built and proven as listed.
        let repeated = vec![leaf(1, 10), leaf(2, 20), leaf(2, 5)];
        assert_eq!(
            SumTree::build(SCOPE, repeated.clone()),
            Err(CoreError::DuplicateLeaf)
        );
        let tree = SumTree::as_given(SCOPE, repeated.clone()).unwrap();
        assert_eq!(tree.leaves(), &repeated);
        assert_eq!((tree.total(), tree.leaf_count()), (35, 3));
        let (p1, p2) = (tree.proof(1).unwrap(), tree.proof(2).unwrap());
        assert!(verify_disorder(&SCOPE, tree.commitment(), &p1, &p2));
        assert!(!verify_disorder(
            &SCOPE,
            tree.commitment(),
            &tree.proof(0).unwrap(),
            &p1
        ));
        assert_eq!(
            SumTree::as_given(SCOPE, vec![leaf(2, u64::MAX), leaf(1, 1)]),
            Err(CoreError::Overflow)
        );
        let empty = SumTree::as_given(SCOPE, vec![]).unwrap();
        assert_eq!(*empty.commitment(), Commitment::empty(TreeKind::Reward));
        let one = SumTree::as_given(SCOPE, vec![leaf(7, 3)]).unwrap();
        assert_eq!(one, SumTree::build(SCOPE, vec![leaf(7, 3)]).unwrap());
    }

    /// Up to `max` leaves with distinct accounts; amounts small enough that no total overflows.
    fn leaves(max: usize) -> impl Strategy<Value = Vec<Leaf>> {
        proptest::collection::btree_map(any::<[u8; 32]>(), 0u64..u64::MAX / 64, 1..max).prop_map(
            |m| {
                m.into_iter()
                    .map(|(account, amount)| Leaf { account, amount })
                    .collect()
            },
        )
    }

    /// Leaves whose accounts differ only in their first byte, and a key from the same space, so
    /// random keys often hit a leaf.
    fn dense_leaves_and_key() -> impl Strategy<Value = (Vec<Leaf>, Hash32)> {
        let leaves = proptest::collection::btree_map(0u8..48, 0u64..1_000, 0..24).prop_map(|m| {
            m.into_iter()
                .map(|(b, amount)| {
                    let mut account = [0u8; 32];
                    account[0] = b;
                    Leaf { account, amount }
                })
                .collect::<Vec<_>>()
        });
        let key = (0u8..50).prop_map(|b| {
            let mut key = [0u8; 32];
            key[0] = b;
            key
        });
        (leaves, key)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_proof_verifies_and_any_change_fails(
            leaves in leaves(40),
            scope_bits in (any::<[u8; 32]>(), any::<u64>()),
            pick in any::<prop::sample::Index>(),
            other in any::<prop::sample::Index>(),
            level in any::<prop::sample::Index>(),
            bit in 0u8..64,
        ) {
            let scope = Scope { kind: TreeKind::Usage, config: scope_bits.0, epoch: scope_bits.1 };
            let tree = SumTree::build(scope, leaves.clone()).unwrap();
            let c = *tree.commitment();
            let sum: u64 = leaves.iter().map(|l| l.amount).sum();
            prop_assert_eq!(c.total, sum);
            prop_assert_eq!(c.leaf_count, leaves.len() as u64);
            for i in 0..c.leaf_count {
                let proof = tree.proof(i).unwrap();
                prop_assert_eq!(proof.siblings.len(), depth(c.leaf_count).unwrap());
                prop_assert!(verify(&scope, &c, &proof));
            }

            let n = leaves.len();
            let i = pick.index(n);
            let proof = tree.proof(i as u64).unwrap();
            // Every tampered (proof, commitment) pair below must fail.
            let mut tampered: Vec<(&str, OwnedProof, Commitment)> = Vec::new();
            let mut p = proof.clone();
            p.leaf.account[(bit / 2) as usize] ^= 1 << (bit % 8);
            tampered.push(("account", p, c));
            let mut p = proof.clone();
            p.leaf.amount ^= 1 << bit;
            tampered.push(("amount", p, c));
            let j = other.index(n);
            if j != i {
                tampered.push(("other index", LeafProof { index: j as u64, ..proof.clone() }, c));
            }
            for index in [n as u64, n as u64 + 1, u64::MAX] {
                tampered.push(("index out of range", LeafProof { index, ..proof.clone() }, c));
            }
            if !proof.siblings.is_empty() {
                let k = level.index(proof.siblings.len());
                let mut p = proof.clone();
                p.siblings[k].hash[(bit / 2) as usize] ^= 1 << (bit % 8);
                tampered.push(("sibling hash", p, c));
                let mut p = proof.clone();
                p.siblings[k].sum ^= 1 << bit;
                tampered.push(("sibling sum", p, c));
                let mut p = proof.clone();
                p.siblings.pop();
                tampered.push(("shorter", p, c));
            }
            let mut p = proof.clone();
            p.siblings.push(EMPTY_NODE);
            tampered.push(("longer", p, c));
            let counts = [
                c.leaf_count - 1,
                c.leaf_count + 1,
                c.leaf_count * 2,
                c.leaf_count ^ (1 << (bit % 33)),
            ];
            for leaf_count in counts.into_iter().filter(|&k| k != c.leaf_count) {
                tampered.push(("leaf count", proof.clone(), Commitment { leaf_count, ..c }));
            }
            let total = c.total ^ (1 << bit);
            tampered.push(("total", proof.clone(), Commitment { total, ..c }));
            let mut root = c.root;
            root[(bit / 2) as usize] ^= 1 << (bit % 8);
            tampered.push(("root", proof.clone(), Commitment { root, ..c }));
            for (what, p, commitment) in &tampered {
                prop_assert!(!verify(&scope, commitment, p), "a changed {} verified", what);
            }
            for other_scope in [
                Scope { kind: TreeKind::Reward, ..scope },
                Scope { epoch: scope.epoch ^ (1 << bit), ..scope },
                Scope { config: [scope.config[0] ^ 1; 32], ..scope },
            ] {
                prop_assert!(!verify(&other_scope, &c, &proof));
            }
        }

        #[test]
        fn commitment_does_not_depend_on_input_order(leaves in leaves(40), seed in any::<u64>()) {
            let a = SumTree::build(SCOPE, leaves.clone()).unwrap();
            let mut shuffled = leaves;
            let n = shuffled.len();
            for i in 0..n {
                shuffled.swap(i, (seed as usize).wrapping_mul(i + 1) % n);
            }
            let b = SumTree::build(SCOPE, shuffled).unwrap();
            prop_assert_eq!(a.commitment(), b.commitment());
            prop_assert_eq!(a, b);
        }

        /// Leaves in any order, accounts repeated or not: every proof of the tree as given
        /// verifies against its commitment (what the program checks), each adjacent pair out of
        /// order is a disorder proof and each in order is not, and the same leaves sorted give
        /// the tree `build` makes.
        #[test]
        fn trees_as_given_prove_every_leaf_and_every_disorder(
            accounts in proptest::collection::vec(0u8..12, 0..24),
            amounts in proptest::collection::vec(0u64..1_000_000, 24),
            kind in prop_oneof![Just(TreeKind::Reward), Just(TreeKind::Usage)],
        ) {
            let scope = Scope { kind, ..SCOPE };
            let leaves: Vec<Leaf> = accounts.iter().zip(&amounts).map(|(&a, &x)| leaf(a, x)).collect();
            let tree = SumTree::as_given(scope, leaves.clone()).unwrap();
            let c = *tree.commitment();
            prop_assert_eq!(tree.leaves(), leaves.as_slice());
            prop_assert_eq!(c.leaf_count, leaves.len() as u64);
            prop_assert_eq!(c.total, leaves.iter().map(|l| l.amount).sum::<u64>());
            let proofs: Vec<OwnedProof> =
                (0..c.leaf_count).map(|i| tree.proof(i).unwrap()).collect();
            for (p, l) in proofs.iter().zip(&leaves) {
                prop_assert_eq!(p.leaf, *l);
                prop_assert!(verify(&scope, &c, p));
                prop_assert!(verify_leaf(&scope, &c, &p.leaf, p.index, &p.siblings));
            }
            for (i, pair) in proofs.windows(2).enumerate() {
                let out_of_order = leaves[i].account >= leaves[i + 1].account;
                prop_assert_eq!(verify_disorder(&scope, &c, &pair[0], &pair[1]), out_of_order);
            }
            if check_sorted(&leaves).is_ok() {
                prop_assert_eq!(&tree, &SumTree::build(scope, leaves).unwrap());
            }
        }

        #[test]
        fn totals_overflow_exactly_when_the_sum_does(
            amounts in proptest::collection::vec(any::<u64>(), 1..8),
        ) {
            let leaves: Vec<Leaf> =
                amounts.iter().enumerate().map(|(i, &a)| leaf(i as u8, a)).collect();
            let sum: u128 = amounts.iter().map(|&a| u128::from(a)).sum();
            match SumTree::build(SCOPE, leaves) {
                Ok(tree) => prop_assert_eq!(u128::from(tree.total()), sum),
                Err(e) => {
                    prop_assert_eq!(e, CoreError::Overflow);
                    prop_assert!(sum > u128::from(u64::MAX));
                }
            }
        }

        #[test]
        fn adjacency_holds_exactly_for_consecutive_indices(
            leaves in leaves(24),
            other in leaves(4),
            picks in proptest::collection::vec(
                (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
                8,
            ),
        ) {
            let tree = SumTree::build(SCOPE, leaves).unwrap();
            let c = tree.commitment();
            let n = tree.leaves().len();
            let proofs: Vec<OwnedProof> = (0..n as u64).map(|i| tree.proof(i).unwrap()).collect();
            for i in 0..n.saturating_sub(1) {
                prop_assert!(verify_adjacent(&SCOPE, c, &proofs[i], &proofs[i + 1]));
                prop_assert!(!verify_adjacent(&SCOPE, c, &proofs[i + 1], &proofs[i]));
                prop_assert!(!verify_disorder(&SCOPE, c, &proofs[i], &proofs[i + 1]));
            }
            for (a, b) in picks {
                let (i, j) = (a.index(n), b.index(n));
                prop_assert_eq!(verify_adjacent(&SCOPE, c, &proofs[i], &proofs[j]), j == i + 1);
            }
            // Proofs of another tree are not adjacent in this one.
            let foreign = SumTree::build(SCOPE, other).unwrap();
            if foreign.commitment() != c && foreign.leaves().len() >= 2 {
                let (p0, p1) = (foreign.proof(0).unwrap(), foreign.proof(1).unwrap());
                prop_assert!(!verify_adjacent(&SCOPE, c, &p0, &p1));
                prop_assert!(verify_adjacent(&SCOPE, foreign.commitment(), &p0, &p1));
            }
        }

        #[test]
        fn absence_is_proven_iff_the_key_has_no_leaf((leaves, key) in dense_leaves_and_key()) {
            let tree = SumTree::build(SCOPE, leaves).unwrap();
            let c = tree.commitment();
            let present = tree.leaves().iter().any(|l| l.account == key);
            match tree.absence(&key) {
                Some(absence) => {
                    prop_assert!(!present);
                    prop_assert!(verify_absent(&SCOPE, c, &key, &absence));
                }
                None => prop_assert!(present),
            }
            // When the key has a leaf, no witness made of this tree's leaves and proofs works.
            if present {
                let n = tree.leaves().len();
                let proofs: Vec<OwnedProof> =
                    (0..n as u64).map(|i| tree.proof(i).unwrap()).collect();
                let empty: Absence<OwnedProof> = Absence::Empty;
                prop_assert!(!verify_absent(&SCOPE, c, &key, &empty));
                for p in &proofs {
                    let first = Absence::BeforeFirst(p.clone());
                    prop_assert!(!verify_absent(&SCOPE, c, &key, &first));
                    let last = Absence::AfterLast(p.clone());
                    prop_assert!(!verify_absent(&SCOPE, c, &key, &last));
                    for q in &proofs {
                        let between = Absence::Between(p.clone(), q.clone());
                        prop_assert!(!verify_absent(&SCOPE, c, &key, &between));
                    }
                }
            }
        }
    }
}
