//! The test vectors printed in `docs/merkle.md` are the ones this crate computes.

use backhaul_core::merkle::{empty_root, leaf_hash, sha256v, TreeKind, REWARD_TAG};
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

#[test]
fn docs_carry_the_computed_vectors() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/merkle.md"))
        .expect("docs/merkle.md exists");
    let all = vectors();
    let listing: String = all.iter().map(|(n, v)| format!("  {n}: {v}\n")).collect();
    for (name, value) in &all {
        assert!(
            doc.contains(value.as_str()),
            "docs/merkle.md lacks the {name} vector {value}; the computed vectors are:\n{listing}"
        );
    }
}
