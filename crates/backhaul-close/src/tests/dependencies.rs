//! The close stays a pure library: it builds on the shared pure crates and two small utilities
//! only, never on a database, the network, the chain's RPC, the program or an async runtime.

#[test]
fn the_close_builds_on_the_pure_crates_only() {
    let manifest = include_str!("../../Cargo.toml");
    let section = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] section");
    let names: Vec<&str> = section
        .lines()
        .filter_map(|l| l.split('=').next().map(str::trim))
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    assert_eq!(
        names,
        [
            "backhaul-core",
            "backhaul-protocol",
            "foldhash",
            "thiserror"
        ],
        "a new dependency of the close must keep it free of I/O"
    );
}
