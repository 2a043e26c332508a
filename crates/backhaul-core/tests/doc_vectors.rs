//! The test vectors printed in `docs/merkle.md` are the ones this crate computes.

use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{self, Leaf, Scope, SumTree, EMPTY_NODE_HASH};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `config = 0x11 × 32`, `epoch = 7`.
fn vectors() -> Vec<(&'static str, String)> {
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
        ("leaf", hex(&sum_tree::leaf_node(&scope, &operator).hash)),
        (
            "usage leaf",
            hex(&sum_tree::leaf_node(&usage, &operator).hash),
        ),
        ("one-leaf root", hex(&one.root())),
        ("two-leaf root", hex(&two.root())),
        ("three-leaf root", hex(&three.root())),
        ("proof[1] for 0x03…", hex(&proof.siblings[1].hash)),
        (
            "empty reward root",
            hex(&sum_tree::empty_root(TreeKind::Reward)),
        ),
        (
            "empty usage root",
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
    assert_doc_carries(&doc(), "test vectors", &vectors());
}
