//! `backhaul demo` through the real binary, small: every epoch finalized, minted = claimed +
//! vault, the guardian's watcher checked every proposal, the audit passed; `--keep` leaves the data and the report behind; the same seed gives
//! the same datasets; through pipes it prints no warning and no colour code; the options it
//! would not use are refused.

use crate::common::{json, run_binary, stderr, stdout};
use std::path::Path;

/// Runs a small demo with `seed`, keeping its data in `keep`, with simulated traffic only (real
/// bytes, the default, are tested in `nodes.rs`; they make session ids depend on the run).
fn demo(seed: &str, keep: &Path) -> std::process::Output {
    let keep = keep.display().to_string();
    run_binary(&[
        "demo",
        "--epochs",
        "2",
        "--nodes",
        "8",
        "--firms",
        "2",
        "--seed",
        seed,
        "--keep",
        &keep,
        "--simulated-only",
        "--output",
        "json",
    ])
}

/// The report without its timings.
fn without_timings(r: &serde_json::Value) -> serde_json::Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("elapsed_secs");
        o.remove("data_dir");
    }
    for e in r["epochs"].as_array_mut().into_iter().flatten() {
        if let Some(o) = e.as_object_mut() {
            o.remove("close_to_finalize_secs");
        }
    }
    r
}

#[test]
fn the_demo_runs_every_epoch_to_finalization_and_its_audit_passes() {
    let keep = tempfile::tempdir().expect("tempdir");
    let out = demo("5", &keep.path().join("data"));
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let r = json(&out);

    assert_eq!(
        (r["nodes"].as_u64(), r["firms"].as_u64()),
        (Some(8), Some(2))
    );
    let epochs = r["epochs"].as_array().expect("epochs");
    assert_eq!(epochs.len(), 2);
    let mut minted = 0;
    for e in epochs {
        assert_eq!(e["status"], "finalized", "{e}");
        let m = e["tokens_minted"].as_u64().expect("minted");
        // Rewards come only from what the firms paid for the credits they consumed: at most
        // k = 0.9 times it (the schedule's 1,000 tokens per epoch are far above).
        let paid = e["usage_cost"].as_u64().expect("usage cost");
        assert!(m > 0 && paid > 0, "{e}");
        assert!(u128::from(m) * 10_000 <= u128::from(paid) * 9_000, "{e}");
        assert!(e["receipts"].as_u64().expect("receipts") > 0);
        assert!(e["credits_consumed"].as_u64().expect("consumed") > 0);
        assert!(e["tokens_burned"].as_u64().expect("burned") > 0);
        assert!(!e["top_earners"].as_array().expect("top earners").is_empty());
        minted += m;
    }
    let t = &r["totals"];
    let (total, claimed, vault) = (
        t["minted"].as_u64().expect("minted"),
        t["claimed"].as_u64().expect("claimed"),
        t["vault"].as_u64().expect("vault"),
    );
    assert_eq!(total, minted);
    assert_eq!(total, claimed + vault, "minted = claimed + vault");
    assert_eq!(
        t["supply"].as_u64().expect("supply"),
        t["initial_supply"].as_u64().expect("initial") + total
            - t["burned"].as_u64().expect("burned")
    );
    // The guardian's watcher checked each proposal in its challenge period, live, and found
    // nothing to refute or veto.
    let checked = r["guardian"]["checked"]
        .as_array()
        .expect("guardian checks");
    assert_eq!(checked.len(), 2, "{}", r["guardian"]);
    for (e, c) in checked.iter().enumerate() {
        assert_eq!(
            (c["epoch"].as_u64(), c["round"].as_u64()),
            (Some(e as u64), Some(0))
        );
        assert_eq!(c["action"], "passed", "{c}");
        assert!(c["checks"].as_u64().expect("checks") >= 18, "{c}");
        assert_eq!(c["failed"].as_array().map(Vec::len), Some(0), "{c}");
    }
    assert_eq!(
        (
            r["guardian"]["proofs_sent"].as_u64(),
            r["guardian"]["vetoes_sent"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(r["audit"]["passed"], true, "{}", r["audit"]);
    assert_eq!(r["audit"]["failed"].as_array().expect("failed").len(), 0);

    // Progress went to stderr, step by step.
    let err = stderr(&out);
    assert!(
        err.contains("epoch 1: finalized after the challenge period"),
        "{err}"
    );
    assert!(err.contains("audit passed"), "{err}");

    // --keep: the oracles' datasets and the same report stay behind.
    let data = keep.path().join("data");
    assert!(data.join("oracle-0/datasets/epoch-1.json").is_file());
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    assert_eq!(kept["totals"], r["totals"]);
    assert_eq!(kept["epochs"], r["epochs"]);

    // A used folder is refused: its databases would not match a new chain.
    let again = demo("5", &data);
    assert_eq!(again.status.code(), Some(1));
    // With --output json the error is JSON on stdout.
    let error = json(&again)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("not empty"), "{error}");

    // The same seed again: the same keys, traffic, datasets (byte for byte) and report.
    let second = demo("5", &keep.path().join("again"));
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(without_timings(&json(&second)), without_timings(&r));
    for e in 0..2 {
        let name = format!("oracle-0/datasets/epoch-{e}.json");
        assert_eq!(
            std::fs::read(data.join(&name)).expect("first run's dataset"),
            std::fs::read(keep.path().join("again").join(&name)).expect("second run's dataset"),
            "{name}"
        );
    }
}

#[test]
fn the_demo_refuses_empty_sizes_before_starting_anything() {
    for (flag, value) in [("--nodes", "0"), ("--firms", "0"), ("--epochs", "0")] {
        let out = run_binary(&["demo", flag, value]);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        assert!(
            stderr(&out).contains("must each be at least 1"),
            "{flag} {value}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("local endpoint at"),
            "nothing started"
        );
    }
}

/// Lines of `text` that a warning or an error log would print.
fn alarms(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains(" WARN ") || l.contains("ERROR"))
        .collect()
}

#[test]
fn the_demo_prints_no_warning_and_no_colour_through_pipes() {
    // As a user runs it (display output, default verbosity), with both streams piped; the
    // environment's BACKHAUL_URL is for the other commands and is left alone.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backhaul"))
        .args([
            "demo", "--epochs", "2", "--nodes", "6", "--firms", "1", "--seed", "9",
        ])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("BACKHAUL_MINT")
        .env_remove("BACKHAUL_ORACLES")
        .env("BACKHAUL_URL", "http://127.0.0.1:1")
        .output()
        .expect("the backhaul binary runs");
    let (out_text, err_text) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "exit {:?}\n{err_text}", out.status);
    assert!(out_text.contains("audit: passed"), "{out_text}");
    assert!(
        out_text.contains("guardian: checked 2 proposals"),
        "{out_text}"
    );
    assert!(
        err_text.contains("epoch 1: finalized after the challenge period"),
        "{err_text}"
    );
    for (name, text) in [("stdout", &out_text), ("stderr", &err_text)] {
        assert!(
            alarms(text).is_empty(),
            "{name} has warnings: {:#?}",
            alarms(text)
        );
        assert!(!text.contains("\x1b["), "{name} has colour codes:\n{text}");
    }
}

#[test]
fn the_demo_refuses_the_options_it_would_not_use() {
    for args in [
        &["demo", "--url", "http://x"][..],
        &["--url", "http://x", "demo", "--epochs", "1"][..],
    ] {
        let out = run_binary(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: bad usage");
        let err = stderr(&out);
        assert!(
            err.contains("the demo starts its own local network; --url is not used by `demo`"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("local endpoint at"), "nothing started: {err}");
        assert!(
            !err.contains("\x1b["),
            "no colour codes through a pipe: {err}"
        );
    }
    let out = run_binary(&["demo", "--mint", "x", "--with-compute-unit-price", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--mint and --with-compute-unit-price are not used by `demo`"),
        "{}",
        stderr(&out)
    );
}
