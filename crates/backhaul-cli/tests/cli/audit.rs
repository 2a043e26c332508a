//! `backhaul audit` through the real binary, against the local endpoint and three real oracles
//! that ran two epochs (the demo's network, kept running for these tests): a clean audit passes;
//! a dataset altered by one byte, or re-encoded, fails its sha256 check; `--recompute` rebuilds
//! every dataset from its agreed input, and a tampered input fails it.

use crate::common::{json, run_binary, stderr, stdout};
use backhaul_cli::demo::{DemoOptions, Network};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What the tests need of the running network.
struct Shared {
    url: String,
    mint: String,
    oracles: Vec<String>,
    /// Where oracle 0 published its datasets.
    datasets: PathBuf,
}

static NETWORK: OnceLock<Shared> = OnceLock::new();

/// Starts the network once for all the tests of this file, on a thread of its own that keeps
/// the endpoint and the oracles running until the test process exits.
fn network() -> &'static Shared {
    NETWORK.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("audit-network");
        let _ = std::fs::remove_dir_all(&dir);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let opts = DemoOptions {
                    epochs: 2,
                    nodes: 6,
                    firms: 2,
                    seed: 11,
                    keep: Some(dir),
                    progress: false,
                };
                let mut net = Network::start(&opts).await.expect("the network starts");
                for e in 0..opts.epochs {
                    net.run_epoch(e).await.expect("the epoch runs");
                }
                tx.send(Shared {
                    url: net.localnet.url(),
                    mint: net.deployment.mint.to_string(),
                    oracles: net.urls.clone(),
                    datasets: net.datasets_dir(0),
                })
                .expect("the tests wait");
                // Keep serving the other tests.
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("the network started")
    })
}

fn base_args(n: &Shared) -> Vec<String> {
    vec![
        "audit".into(),
        "--url".into(),
        n.url.clone(),
        "--mint".into(),
        n.mint.clone(),
    ]
}

/// The audit of the datasets in `dir`, reported as JSON.
fn audit_json(n: &Shared, dir: &Path) -> std::process::Output {
    let mut args = base_args(n);
    args.extend([
        "--datasets".into(),
        dir.display().to_string(),
        "--output".into(),
        "json".into(),
    ]);
    run(args)
}

fn run(args: Vec<String>) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_binary(&refs)
}

/// A copy of the published datasets in a fresh folder.
fn copy_datasets(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(from).expect("the datasets folder") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("epoch-") {
            std::fs::copy(entry.path(), dir.path().join(name)).expect("copy");
        }
    }
    dir
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report}"))
}

fn evidence<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    check(report, id)["evidence"]
        .as_str()
        .unwrap_or_else(|| panic!("no evidence for {id} in {report}"))
}

fn failed(report: &serde_json::Value) -> Vec<String> {
    report["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect()
}

#[test]
fn a_clean_audit_passes_with_datasets_from_the_oracles() {
    let n = network();
    let report_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut args = base_args(n);
    for o in &n.oracles {
        args.extend(["--oracle".to_string(), o.clone()]);
    }
    args.extend([
        "--output".into(),
        "json".into(),
        "--report".into(),
        report_file.path().display().to_string(),
    ]);
    let out = run(args);
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    let report = json(&out);
    assert_eq!(report["passed"], true, "{report}");
    assert!(failed(&report).is_empty());
    assert_eq!(report["finalized_epochs"], 2);
    // 18 checks per epoch, 13 for the deployment, all passed.
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 2 * 18 + 13);
    assert!(checks.iter().all(|c| c["passed"] == true));
    // Who can replace the program's code is named, read from its ProgramData account.
    let upgrade = evidence(&report, "program.upgrade_authority");
    assert!(
        upgrade.contains("can be upgraded by") || upgrade.contains("immutable"),
        "{upgrade}"
    );
    assert!(evidence(&report, "epoch-1/dataset.sha256").contains("equals the chain's dataset_hash"));
    assert!(evidence(&report, "epoch-1/dataset.available").contains("/v1/epochs/1/dataset"));
    // The same report was written to the file.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_file.path()).expect("report file"))
            .expect("the report file is JSON");
    assert_eq!(written, report);
}

#[test]
fn a_clean_audit_passes_with_a_datasets_folder_and_prints_a_table() {
    let n = network();
    let dir = copy_datasets(&n.datasets);
    let mut args = base_args(n);
    args.extend(["--datasets".into(), dir.path().display().to_string()]);
    let out = run(args);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("audit passed: 49 checks over 2 finalized epochs"),
        "{text}"
    );
    assert!(text.contains("pass   epoch-0/root.rewards"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn a_dataset_altered_by_one_byte_fails_the_sha256_check() {
    let n = network();
    let dir = copy_datasets(&n.datasets);
    let path = dir.path().join("epoch-1.json");
    let mut bytes = std::fs::read(&path).expect("epoch-1.json");
    // One digit of the session count: the file still decodes, only its hash gives it away.
    let key = b"\"sessions\":";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("a session count")
        + key.len();
    bytes[at] = if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    std::fs::write(&path, &bytes).expect("write");

    let out = audit_json(n, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["passed"], false);
    let failed = failed(&report);
    assert!(
        failed.contains(&"epoch-1/dataset.sha256".to_string()),
        "{failed:?}"
    );
    let said = evidence(&report, "epoch-1/dataset.sha256");
    assert!(
        said.contains("is not the dataset the oracles committed"),
        "{said}"
    );
    // Epoch 0's file is untouched, and epoch 1's still decodes as a canonical dataset.
    assert_eq!(check(&report, "epoch-0/dataset.sha256")["passed"], true);
    assert_eq!(check(&report, "epoch-1/dataset.format")["passed"], true);
}

#[test]
fn a_re_encoded_dataset_fails_the_sha256_check() {
    let n = network();
    let dir = copy_datasets(&n.datasets);
    let path = dir.path().join("epoch-0.json");
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("epoch-0.json")).expect("JSON");
    // The same content, pretty-printed: every figure is right, the bytes are not.
    std::fs::write(&path, serde_json::to_vec_pretty(&value).expect("encode")).expect("write");

    let out = audit_json(n, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    let failed = failed(&report);
    assert!(
        failed.contains(&"epoch-0/dataset.sha256".to_string()),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"epoch-0/dataset.format".to_string()),
        "{failed:?}"
    );
    assert!(evidence(&report, "epoch-0/dataset.format").contains("not the canonical encoding"));
    // The roots rebuilt from its leaves still match the chain: only the bytes changed.
    assert_eq!(check(&report, "epoch-0/root.rewards")["passed"], true);
    assert_eq!(check(&report, "epoch-1/dataset.sha256")["passed"], true);
}

#[test]
fn a_missing_dataset_or_no_source_fails() {
    let n = network();
    let dir = copy_datasets(&n.datasets);
    std::fs::remove_file(dir.path().join("epoch-1.json")).expect("remove");
    let out = audit_json(n, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let failed = failed(&json(&out));
    assert!(
        failed.contains(&"epoch-1/dataset.available".to_string()),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"epochs.contiguous".to_string()),
        "{failed:?}"
    );

    // Without --datasets or --oracle the audit says what it needs.
    let out = run(base_args(n));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--datasets"), "{}", stderr(&out));
}

/// The audit with `--recompute` over a copy of the published files, as JSON.
fn recompute_json(n: &Shared, dir: &Path) -> serde_json::Value {
    let mut args = base_args(n);
    args.extend([
        "--datasets".into(),
        dir.display().to_string(),
        "--recompute".into(),
        "--output".into(),
        "json".into(),
    ]);
    json(&run(args))
}

#[test]
fn recompute_rebuilds_every_dataset_byte_for_byte_from_its_agreed_input() {
    let n = network();
    // From the oracles.
    let mut args = base_args(n);
    for o in &n.oracles {
        args.extend(["--oracle".to_string(), o.clone()]);
    }
    args.extend(["--recompute".into(), "--output".into(), "json".into()]);
    let out = run(args);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["passed"], true, "{report}");
    for e in 0..2 {
        let ev = evidence(&report, &format!("epoch-{e}/dataset.recomputed"));
        assert!(ev.contains("rebuilt byte for byte"), "{ev}");
    }
    // From the published folder (datasets and inputs side by side).
    let dir = copy_datasets(&n.datasets);
    let report = recompute_json(n, dir.path());
    assert_eq!(report["passed"], true, "{report}");
}

#[test]
fn recompute_fails_on_a_tampered_receipt_file() {
    let n = network();
    let dir = copy_datasets(&n.datasets);
    let path = dir.path().join("epoch-1.input");
    let bytes = std::fs::read(&path).expect("epoch-1.input");
    let mut input = backhaul_protocol::input::EpochInput::from_bytes(&bytes).expect("an input");
    assert!(
        !input.receipts.is_empty(),
        "the demo's epoch 1 has receipts"
    );

    // One receipt's bytes raised: the file no longer hashes to the dataset's input_hash.
    input.receipts[0].receipt.cumulative_bytes += 1 << 30;
    std::fs::write(&path, input.to_bytes()).expect("write");
    let report = recompute_json(n, dir.path());
    assert_eq!(report["passed"], false);
    let ev = evidence(&report, "epoch-1/dataset.recomputed");
    assert!(
        ev.contains("does not hash to the dataset's input_hash"),
        "{ev}"
    );
    assert!(failed(&report).contains(&"epoch-1/dataset.recomputed".to_string()));
    assert_eq!(check(&report, "epoch-0/dataset.recomputed")["passed"], true);

    // A receipt dropped from the input of epoch 0 fails it, and epoch 1, which builds on it.
    let path0 = dir.path().join("epoch-0.input");
    let mut input0 =
        backhaul_protocol::input::EpochInput::from_bytes(&std::fs::read(&path0).expect("epoch-0"))
            .expect("an input");
    input0.receipts.pop();
    std::fs::write(&path0, input0.to_bytes()).expect("write");
    let report = recompute_json(n, dir.path());
    assert_eq!(
        check(&report, "epoch-0/dataset.recomputed")["passed"],
        false
    );
    assert!(evidence(&report, "epoch-1/dataset.recomputed").contains("builds on it"));
}
