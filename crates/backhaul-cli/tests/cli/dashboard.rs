//! `backhaul dashboard` through the real binary and in a real browser: the demo's network runs
//! three epochs (operators claim every other epoch, so rewards wait to be claimed); one dashboard
//! reads the oracles, another a copy of the datasets with one amount changed; headless Chromium
//! (tests/browser/dashboard.mjs, playwright-core) checks the pages against the audit report and
//! `operator rewards`, the CSV exports against the tables, the links to the checks, and the
//! tampered epoch shown as failed. Screenshots of every page are kept in
//! `target/tmp/dashboard-screenshots`.

use crate::common::{stderr, stdout, unused_port};
use backhaul_cli::context::Context;
use backhaul_cli::demo::{DemoOptions, Network};
use backhaul_sdk::state::CreditAccount;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium, as the script finds it.
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `backhaul dashboard` on a free port, killed when dropped.
struct Dashboard {
    child: Child,
    url: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_dashboard(net: &Network, datasets: Option<&Path>) -> Dashboard {
    let port = unused_port();
    let mut args = vec![
        "dashboard".to_string(),
        "--url".into(),
        net.localnet.url(),
        "--mint".into(),
        net.deployment.mint.to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--refresh".into(),
        "2".into(),
    ];
    match datasets {
        Some(dir) => args.extend(["--datasets".into(), dir.display().to_string()]),
        None => args.extend(["--oracle".into(), net.urls.join(",")]),
    }
    let child = Command::new(env!("CARGO_BIN_EXE_backhaul"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("backhaul dashboard starts");
    let d = Dashboard {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready once the first read is published.
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/api/status", d.url)).send().await {
            if r.status().is_success() {
                return d;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the dashboard at {} did not publish a read within a minute",
            d.url
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A copy of `from`'s datasets with one reward amount of epoch `e` raised by one and an
/// operator's key replaced by markup.
fn tampered_copy(from: &Path, e: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(from).expect("the datasets folder") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("epoch-") {
            std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy");
        }
    }
    let path = dir.path().join(format!("epoch-{e}.json"));
    let mut ds = backhaul_protocol::dataset::Dataset::from_bytes(
        &std::fs::read(&path).expect("the dataset"),
    )
    .expect("the dataset decodes");
    ds.rewards.leaves[0].cumulative += 1;
    // A hostile dataset's strings reach the page: they must stay text.
    ds.rewards.leaves[1].operator = "<img src=x onerror=\"window.pwned=1\">".into();
    std::fs::write(&path, ds.to_bytes()).expect("write the tampered dataset");
    dir
}

/// Malformed keys, unknown accounts, hostile paging and unknown paths get a clear error (or an
/// empty page) and the server keeps answering.
async fn refuses_bad_requests_with_clear_errors(base: &str, operators: usize) {
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let http = http.clone();
        async move {
            let r = http.get(&url).send().await.expect("the dashboard answers");
            let status = r.status().as_u16();
            (status, r.text().await.expect("a body"))
        }
    };
    let unknown = bs58::encode([7u8; 32]).into_string();
    for (path, status, says) in [
        (
            "/api/operators/not-a-key",
            400,
            "is not a base58 public key",
        ),
        ("/api/operators/0OIl", 400, "is not a base58 public key"),
        (
            "/api/firms/%3Cscript%3E/history.csv",
            400,
            "is not a base58 public key",
        ),
        (&format!("/api/operators/{unknown}"), 404, "no operator"),
        (&format!("/api/firms/{unknown}"), 404, "no firm"),
        (
            &format!("/api/operators/{unknown}/proof"),
            404,
            "no reward leaf",
        ),
        ("/api/operators?page=-1", 400, ""),
        ("/wp-login.php", 404, "the dashboard is at /"),
    ] {
        let (got, body) = get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // Paging is bounded: a huge page size is cut to 200, a page past the end is empty.
    let page: serde_json::Value =
        serde_json::from_str(&get("/api/operators?page=0&per_page=100000000").await.1)
            .expect("a page");
    assert_eq!(page["per_page"], 200);
    assert_eq!(page["total"].as_u64(), Some(operators as u64));
    let far: serde_json::Value = serde_json::from_str(
        &get(&format!("/api/operators?page={}&per_page=50", u64::MAX))
            .await
            .1,
    )
    .expect("a page");
    assert_eq!(far["rows"].as_array().map(Vec::len), Some(0));
    assert_eq!(get("/api/status").await.0, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_chromium_shows_the_audits_figures_and_a_tampered_dataset_as_failed() {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{} has no installed packages: run `npm ci` there",
        dir.display()
    );
    assert!(
        chromium().is_file(),
        "no Chromium at {}: install Debian's chromium package (`apt-get install chromium`) or \
         set CHROMIUM",
        chromium().display()
    );
    let keep = tempfile::tempdir().expect("tempdir");
    let opts = DemoOptions {
        epochs: 3,
        nodes: 6,
        firms: 2,
        seed: 5,
        keep: Some(keep.path().join("net")),
        progress: false,
    };
    let mut net = Network::start(&opts).await.expect("the network starts");
    for e in 0..opts.epochs {
        net.run_epoch(e).await.expect("the epoch runs");
    }
    // A queued change of the guardian set, for the guardian's page.
    backhaul_cli::admin::queue_guardians(
        &net.admin,
        &backhaul_cli::admin::QueueGuardiansArgs {
            guardians: vec![
                net.guardian.key.to_string(),
                solana_sdk::pubkey::Pubkey::new_unique().to_string(),
            ],
        },
    )
    .await
    .expect("the admin queues a change of the guardians");
    let live = start_dashboard(&net, None).await;
    let last = opts.epochs - 1;
    let tampered_dir = tampered_copy(&net.datasets_dir(0), last);
    let tampered = start_dashboard(&net, Some(tampered_dir.path())).await;

    refuses_bad_requests_with_clear_errors(&live.url, net.operators.len()).await;

    // What the command line says.
    let ctx = Context::new(&net.global).expect("context");
    let audit = backhaul_cli::audit::audit(&ctx, None, false)
        .await
        .expect("the audit runs");
    assert!(audit.passed, "the audit passes: {:?}", audit.failed);
    let mut waiting = None;
    for o in &net.operators {
        let r = backhaul_cli::operator::rewards(&ctx, Some(o.key))
            .await
            .expect("operator rewards");
        if r.claimable_now > 0 {
            waiting = Some(r);
            break;
        }
    }
    let rewards = waiting.expect("an operator has a reward waiting to be claimed");
    let firm = net.firms[0].key;
    let credits: CreditAccount = ctx
        .account(&net.deployment.credits(&firm))
        .await
        .expect("read the credit account")
        .expect("the firm has a credit account");

    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let expected = serde_json::json!({
        "url": live.url,
        "audit": audit,
        "rewards": rewards,
        "firm": firm.to_string(),
        "firm_balance": credits.balance,
        "tampered": { "url": tampered.url, "epoch": last },
        "queued_change": "guardian set",
        "screenshots": screenshots,
    });
    let file = keep.path().join("expected.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&expected).expect("json")).expect("write");

    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("dashboard.mjs"))
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 18 or newer"))
    })
    .await
    .expect("the browser check ran");
    println!("{}", stdout(&out));
    assert!(
        out.status.success(),
        "the browser check failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("8 passed, 0 failed"),
        "every browser check ran:\n{}",
        stdout(&out)
    );
    for page in [
        "network",
        "operator",
        "firm",
        "guardian",
        "checks",
        "tampered-checks",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).is_file(),
            "no screenshot of the {page} page"
        );
    }
    drop((live, tampered));
    net.stop().await;
}
