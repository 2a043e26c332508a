//! `backhaul guardian prove` and `guardian watch` through the real binary, against a proposal
//! whose dataset nobody serves (data withholding): the proof finder has nothing to work on, so
//! the guardian waits for its dataset until a margin before the challenge period ends, then
//! vetoes; `--dry-run` only says so; a key that is not a guardian's cannot; the watcher exports
//! its metrics.

use crate::common::*;
use backhaul_sdk::state::{EpochRecord, EpochStatus};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_dataset_is_waited_for_then_vetoed() {
    let w = deploy(Net::start(false), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let guardian_file = path_str(&net.keypair_file("guardian", &w.guardian));
    let stranger = net.funded().await;
    let stranger_file = path_str(&net.keypair_file("stranger", &stranger));
    let empty = net.dir.path().join("nothing-here");
    std::fs::create_dir_all(&empty).expect("folder");
    let empty = path_str(&empty);

    // Epoch 0 ends; two oracles vote a proposal whose dataset (hash 0x07…) nobody publishes.
    net.warp_to(START + EPOCH_SECS as i64 + 10).await;
    w.seal(0).await;
    let p = w.empty_proposal(7);
    w.vote(0, 0, p).await;
    w.vote(1, 0, p).await;
    let record = || async {
        net.account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .expect("record")
    };
    let proposed = record().await;
    assert_eq!(proposed.status, EpochStatus::Proposed);

    // Early in the challenge period it keeps looking: nothing sent.
    let prove = |extra: &[&str], key: &str| {
        let mut args = vec![
            "guardian",
            "prove",
            "0",
            "--datasets-from",
            &empty,
            "--keypair",
            key,
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let (url, mint) = (net.url(), w.mint.to_string());
    let run = |mut args: Vec<String>| {
        args.extend(["--url".into(), url.clone(), "--mint".into(), mint.clone()]);
        run_binary_async(args)
    };
    let out = run(prove(&[], &guardian_file)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = json(&out);
    assert_eq!(o["action"], "waiting", "{o}");
    assert_eq!(record().await.status, EpochStatus::Proposed);

    // Within the margin: a veto, which a dry run only reports.
    let margin = ["--withhold-margin-secs", "3600"];
    let out = run(prove(
        &[&margin[..], &["--dry-run"]].concat(),
        &guardian_file,
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = json(&out);
    assert_eq!(o["action"], "would-veto", "{o}");
    let reason = o["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no proof fits: no dataset of epoch 0"),
        "{reason}"
    );
    assert_eq!(record().await.status, EpochStatus::Proposed);
    // A key that is not a guardian's cannot veto: it says so and exits non-zero.
    let out = run(prove(&margin, &stranger_file)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(json(&out)["action"], "cannot-veto");
    assert_eq!(record().await.status, EpochStatus::Proposed);

    // The watcher, with the guardian's key, vetoes it, once, and counts it.
    let port = unused_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backhaul"))
        .args([
            "guardian",
            "watch",
            "--poll-secs",
            "1",
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
            "--datasets-from",
            &empty,
            "--withhold-margin-secs",
            "3600",
            "--keypair",
            &guardian_file,
            "--url",
            &net.url(),
            "--mint",
            &w.mint.to_string(),
        ])
        .env_remove("RUST_LOG")
        .env_remove("BACKHAUL_ORACLES")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the watcher starts");
    let vetoed = wait_for("the watcher's veto", 60, || async {
        Some(record().await).filter(|r| r.status == EpochStatus::Vetoed)
    })
    .await;
    assert_eq!(
        (vetoed.vetoes, vetoed.vetoed_digest),
        (1, proposed.proposal_digest)
    );
    let metrics = wait_for("the watcher's metrics", 30, || async {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("backhaul_guardian_vetoes_sent_total 1")
            .then_some(text)
    })
    .await;
    for line in [
        "backhaul_guardian_epochs_watched_total 1",
        "backhaul_guardian_checks_failed_total 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("the watcher's output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a proposal in its challenge period: checking it"),
        "{err}"
    );
    assert!(err.contains("vetoing the proposal"), "{err}");
    assert_eq!(record().await.vetoes, 1);
}
