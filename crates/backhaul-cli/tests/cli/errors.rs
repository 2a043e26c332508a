//! Failures a user meets first: a cluster that is down, a missing or garbage keypair file, a
//! wrong moniker, and amounts that do not parse; all through the real binary where it matters.

use crate::common::*;
use backhaul_cli::amount::{format_tokens, parse_tokens};
use backhaul_cli::context::{read_keypair, resolve_url};
use solana_sdk::pubkey::Pubkey;

#[test]
fn a_cluster_that_is_down_is_named_with_what_to_check() {
    let url = format!("http://127.0.0.1:{}", unused_port());
    let mint = Pubkey::new_unique().to_string();
    let out = run_binary(&["admin", "show", "--url", &url, "--mint", &mint]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach the cluster at {url}")) && err.contains("check --url"),
        "{err}"
    );
    assert!(!err.contains("reqwest"), "no raw HTTP client dump: {err}");
    assert!(stdout(&out).is_empty());

    // With JSON output the error is JSON on stdout.
    let out = run_binary(&[
        "admin", "show", "--url", &url, "--mint", &mint, "--output", "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach the cluster"),
        "{v}"
    );
}

#[test]
fn missing_and_garbage_keypair_files_say_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("http://127.0.0.1:{}", unused_port());
    let mint = Pubkey::new_unique().to_string();
    let missing = dir.path().join("nope.json");
    let run = |keypair: &std::path::Path| {
        run_binary(&[
            "firm",
            "buy",
            "--tokens",
            "1",
            "--url",
            &url,
            "--mint",
            &mint,
            "--keypair",
            &path_str(keypair),
        ])
    };
    let out = run(&missing);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot read the keypair file {}",
            missing.display()
        )) && err.contains("--keypair"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "this is not a keypair").expect("write");
    let out = run(&garbage);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a Solana CLI keypair file"),
        "{}",
        stderr(&out)
    );

    let short = dir.path().join("short.json");
    std::fs::write(&short, serde_json::to_string(&vec![7u8; 63]).expect("json")).expect("write");
    let e = read_keypair(&short).unwrap_err();
    assert!(format!("{e}").contains("holds 63 bytes, not the 64"), "{e}");

    // 64 bytes whose public half does not match the secret half.
    let mismatched = dir.path().join("mismatched.json");
    std::fs::write(
        &mismatched,
        serde_json::to_string(&vec![7u8; 64]).expect("json"),
    )
    .expect("write");
    let e = read_keypair(&mismatched).unwrap_err();
    assert!(
        format!("{e}").contains("does not hold a valid keypair"),
        "{e}"
    );
}

#[test]
fn urls_take_the_solana_cli_monikers() {
    assert_eq!(resolve_url("l").unwrap(), "http://127.0.0.1:8899");
    assert_eq!(
        resolve_url("devnet").unwrap(),
        "https://api.devnet.solana.com"
    );
    assert_eq!(
        resolve_url("mainnet-beta").unwrap(),
        "https://api.mainnet-beta.solana.com"
    );
    assert_eq!(resolve_url("http://x:1").unwrap(), "http://x:1");
    let out = run_binary(&["admin", "show", "--url", "moon", "--mint", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is neither a URL nor a moniker"),
        "{}",
        stderr(&out)
    );
    // Bad usage is clap's exit code 2.
    let out = run_binary(&["firm", "buy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tokens"), "{}", stderr(&out));
}

#[test]
fn token_amounts_follow_the_mints_decimals() {
    assert_eq!(parse_tokens("12", 6).unwrap(), 12_000_000);
    assert_eq!(parse_tokens("12.5", 6).unwrap(), 12_500_000);
    assert_eq!(parse_tokens("0.000001", 6).unwrap(), 1);
    assert_eq!(parse_tokens(".5", 6).unwrap(), 500_000);
    assert_eq!(parse_tokens("1_000", 0).unwrap(), 1_000);
    assert_eq!(parse_tokens("18446744073709.551615", 6).unwrap(), u64::MAX);
    for (bad, says) in [
        ("", "empty"),
        ("1.2.3", "not an amount"),
        ("-1", "not an amount"),
        ("1e6", "not an amount"),
        (".", "not an amount"),
        ("0.0000001", "7 digits after the point"),
        ("18446744073709.551616", "more than a 64-bit amount"),
        ("99999999999999999999", "too large"),
    ] {
        let e = parse_tokens(bad, 6).unwrap_err();
        assert!(format!("{e}").contains(says), "{bad:?}: {e}");
    }
    assert_eq!(format_tokens(12_500_000, 6), "12.5");
    assert_eq!(format_tokens(1, 6), "0.000001");
    assert_eq!(format_tokens(5_000_000, 6), "5");
    assert_eq!(format_tokens(0, 6), "0");
    assert_eq!(format_tokens(u64::MAX, 18), "18.446744073709551615");
    assert_eq!(format_tokens(7, 0), "7");
    // They round-trip.
    for v in [0u64, 1, 999_999, 1_000_000, 123_456_789, u64::MAX] {
        assert_eq!(parse_tokens(&format_tokens(v, 6), 6).unwrap(), v);
    }
}
