//! `backhaul demo` through the real binary, small: every epoch finalized, minted = claimed +
//! vault, the audit passed; `--keep` leaves the data and the report behind.

use crate::common::{json, run_binary, stderr};

#[test]
fn the_demo_runs_every_epoch_to_finalization_and_its_audit_passes() {
    let keep = tempfile::tempdir().expect("tempdir");
    let keep_arg = keep.path().join("data").display().to_string();
    let out = run_binary(&[
        "demo", "--epochs", "2", "--nodes", "8", "--firms", "2", "--seed", "5", "--keep",
        &keep_arg, "--output", "json",
    ]);
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
        // The schedule's 1,000 tokens plus net emissions, each epoch.
        assert!(m >= 1_000_000_000, "{e}");
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
}
