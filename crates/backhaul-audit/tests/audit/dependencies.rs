//! The audit is a pure library: nothing it builds on reads the chain, an oracle, a database or
//! the network. `cargo tree -e normal` of the crate must name none of the crates that do.

use std::process::Command;

/// Crates that do I/O, or the services and tools built on them.
const FORBIDDEN: &[&str] = &[
    "axum",
    "backhaul-cli",
    "backhaul-client",
    "backhaul-localnet",
    "backhaul-oracle",
    "hyper",
    "reqwest",
    "solana-client",
    "solana-rpc-client",
    "sqlx",
    "tokio",
];

#[test]
fn the_normal_dependency_tree_holds_no_io_crate() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "--package",
            "backhaul-audit",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("cargo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.first() == Some(&"backhaul-audit") && names.contains(&"backhaul-core"),
        "not the audit's tree:\n{text}"
    );
    let found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| FORBIDDEN.contains(n) || n.starts_with("sqlx-"))
        .collect();
    assert!(found.is_empty(), "the audit depends on {found:?}:\n{text}");
}
