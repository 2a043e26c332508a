//! The test vectors printed in `docs/merkle.md` are the ones this crate computes.

use backhaul_core::merkle::{empty_root, leaf_hash, sha256v, TreeKind, REWARD_TAG};
use backhaul_core::sum_tree::{self, Leaf, Scope, SumTree, EMPTY_NODE_HASH};
use backhaul_core::tree::{Entry, EpochTree};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vectors() -> Vec<(&'static str, String)> {
    let config = [0x11u8; 32];
    let operator = [0x22u8; 32];
    let inner = sha256v(&[
        REWARD_TAG,
        &config,
        &7u64.to_le_bytes(),
        &operator,
        &1_000_000u64.to_le_bytes(),
    ]);
    let leaf = leaf_hash(TreeKind::Reward, &config, 7, &operator, 1_000_000);
    let usage_leaf = leaf_hash(TreeKind::Usage, &config, 7, &operator, 1_000_000);
    let entries = vec![
        Entry {
            account: [0x03; 32],
            cumulative: 300,
        },
        Entry {
            account: [0x01; 32],
            cumulative: 100,
        },
        Entry {
            account: [0x02; 32],
            cumulative: 200,
        },
    ];
    let tree = EpochTree::build(TreeKind::Reward, &config, 7, entries).unwrap();
    let (_, proof) = tree.proof_for(&[0x03; 32]).unwrap();
    vec![
        ("inner", hex(&inner)),
        ("leaf", hex(&leaf)),
        ("usage leaf", hex(&usage_leaf)),
        ("three-leaf root", hex(&tree.root)),
        ("proof[0] for 0x03…", hex(&proof[0])),
        ("proof[1] for 0x03…", hex(&proof[1])),
        (
            "empty reward root",
            hex(&empty_root(TreeKind::Reward, &config, 7)),
        ),
    ]
}

/// Format v2 (`sum_tree`): the same deployment and epoch as v1's vectors.
fn vectors_v2() -> Vec<(&'static str, String)> {
    let scope = Scope {
        kind: TreeKind::Reward,
        config: [0x11; 32],
        epoch: 7,
    };
    let usage = Scope {
        kind: TreeKind::Usage,
        ..scope
    };
    let leaf = |b: u8, amount: u64| Leaf {
        account: [b; 32],
        amount,
    };
    let operator = leaf(0x22, 1_000_000);
    let one = SumTree::build(scope, vec![operator]).unwrap();
    let two = SumTree::build(scope, vec![leaf(0x02, 200), leaf(0x01, 100)]).unwrap();
    let three = SumTree::build(
        scope,
        vec![leaf(0x03, 300), leaf(0x01, 100), leaf(0x02, 200)],
    )
    .unwrap();
    assert_eq!((two.total(), three.total()), (300, 600));
    let proof = three.proof_for(&[0x03; 32]).unwrap();
    assert_eq!(proof.index, 2);
    assert_eq!(
        proof.siblings.iter().map(|s| s.sum).collect::<Vec<_>>(),
        [0, 300]
    );
    vec![
        ("empty node", hex(&EMPTY_NODE_HASH)),
        ("v2 leaf", hex(&sum_tree::leaf_node(&scope, &operator).hash)),
        (
            "v2 usage leaf",
            hex(&sum_tree::leaf_node(&usage, &operator).hash),
        ),
        ("v2 one-leaf root", hex(&one.root())),
        ("v2 two-leaf root", hex(&two.root())),
        ("v2 three-leaf root", hex(&three.root())),
        ("v2 proof[1] for 0x03…", hex(&proof.siblings[1].hash)),
        (
            "v2 empty reward root",
            hex(&sum_tree::empty_root(TreeKind::Reward)),
        ),
        (
            "v2 empty usage root",
            hex(&sum_tree::empty_root(TreeKind::Usage)),
        ),
    ]
}

fn assert_doc_carries(doc: &str, section: &str, all: &[(&'static str, String)]) {
    let listing: String = all.iter().map(|(n, v)| format!("  {n}: {v}\n")).collect();
    for (name, value) in all {
        assert!(
            doc.contains(value.as_str()),
            "docs/merkle.md ({section}) lacks the {name} vector {value}; \
             the computed vectors are:\n{listing}"
        );
    }
}

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/merkle.md"))
        .expect("docs/merkle.md exists")
}

#[test]
fn docs_carry_the_computed_vectors() {
    assert_doc_carries(&doc(), "format v1", &vectors());
}

#[test]
fn docs_carry_the_computed_v2_vectors_in_the_v2_section() {
    let doc = doc();
    let v2 = doc
        .find("## Format v2")
        .map(|at| &doc[at..])
        .expect("docs/merkle.md has a section \"Format v2: the Merkle-sum tree\"");
    assert_doc_carries(v2, "format v2", &vectors_v2());
}
