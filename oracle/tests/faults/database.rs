//! The database made unavailable (PostgreSQL: connections refused and every session terminated
//! while batches are in flight) or full (SQLite on a small tmpfs): ingest answers 503 with a JSON
//! error, `/health` says what is wrong, no batch is half-written, and once the database is back
//! ingest resumes with its view of what is stored intact (replays are duplicates, not new).

use crate::harness::*;
use backhaul_protocol::api::ItemStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A batch of fresh sessions.
struct Fresh {
    body: Vec<u8>,
    hashes: Vec<[u8; 32]>,
}

fn fresh(
    traffic: &Traffic,
    rng: &mut StdRng,
    n: usize,
    sent: &mut HashMap<[u8; 32], Sent>,
) -> Fresh {
    let mut signed = vec![];
    for _ in 0..n {
        let s = Session {
            epoch: 0,
            node: rng.gen_range(0..traffic.nodes.len()),
            client: rng.gen_range(0..traffic.clients.len()),
            session_id: rng.gen(),
            sequence: 1,
            bytes: rng.gen_range(1..=1u64 << 20),
        };
        let r = traffic.receipt(&s);
        sent.insert(
            r.receipt.body_hash(),
            Sent {
                epoch: 0,
                client: r.receipt.client,
                session_id: s.session_id,
                sequence: 1,
            },
        );
        signed.push(r);
    }
    Fresh {
        hashes: signed.iter().map(|r| r.receipt.body_hash()).collect(),
        body: borsh::to_vec(&signed).expect("borsh"),
    }
}

/// What became of a batch.
#[derive(Debug)]
enum Outcome {
    /// Every item answered accepted or duplicate.
    Acked,
    /// A JSON error with this code.
    Refused(u16, String),
    /// No answer at all.
    NoAnswer,
}

async fn send(http: &reqwest::Client, url: &str, b: &Fresh) -> Outcome {
    match post(http, &format!("{url}/v1/receipts"), b.body.clone()).await {
        Ok((200, BatchBody::Results(r))) => {
            assert_eq!(r.len(), b.hashes.len());
            assert!(
                r.iter()
                    .all(|x| matches!(x.status, ItemStatus::Accepted | ItemStatus::Duplicate)),
                "{r:?}"
            );
            Outcome::Acked
        }
        Ok((code, BatchBody::Error(e))) => Outcome::Refused(code, e),
        Ok((code, body)) => panic!("{code} with {body:?}"),
        Err(e) => {
            eprintln!("no answer: {e}");
            Outcome::NoAnswer
        }
    }
}

/// Statuses of one batch sent again.
async fn resend(http: &reqwest::Client, o: &OracleProc, b: &Fresh) -> Vec<ItemStatus> {
    match post(http, &format!("{}/v1/receipts", o.url), b.body.clone()).await {
        Ok((200, BatchBody::Results(r))) => r.iter().map(|x| x.status).collect(),
        other => panic!(
            "the batch is taken again once the database is back: {other:?}\n{}",
            o.log.tail(30)
        ),
    }
}

/// How many of a batch's receipts are stored: all or none, never part.
fn stored_part(b: &Fresh, sent: &HashMap<[u8; 32], Sent>, stored: &Stored) -> usize {
    b.hashes
        .iter()
        .filter(|h| {
            let x = &sent[*h];
            stored
                .get(&(x.epoch, x.client, x.session_id))
                .is_some_and(|v| v.iter().any(|(_, s)| s == *h))
        })
        .count()
}

/// The PostgreSQL server's admin URL, or `None` (with a note) when none is configured and none is
/// required.
fn postgres_admin_url() -> Option<String> {
    match std::env::var("BACKHAUL_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("BACKHAUL_REQUIRE_POSTGRES").is_some() => {
            panic!("BACKHAUL_REQUIRE_POSTGRES is set but BACKHAUL_TEST_POSTGRES_URL is not")
        }
        Err(_) => {
            eprintln!("note: PostgreSQL not configured (BACKHAUL_TEST_POSTGRES_URL); the PostgreSQL outage test did not run");
            None
        }
    }
}

async fn admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL as admin");
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_answers_503_writes_nothing_half_and_recovers() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let seed = seed("postgres outage");
    let mut rng = StdRng::seed_from_u64(seed);
    let name = format!("bh_fault_{:016x}", rng.gen::<u64>());
    admin(&admin_url, &format!("CREATE DATABASE {name}")).await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("a URL with a database");
    let url = format!("{base}/{name}");

    let chain = Chain::start(1, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = oracle_settings(
        &chain,
        &chain.net.url(),
        &dir.path().join("oracle"),
        free_addr(),
        None,
    );
    let mut o = OracleProc::new(dir.path(), "oracle", &s, Some(url.clone()));
    o.start().await;
    let traffic = Arc::new(Traffic::new(&chain, &mut rng, 3, 3));
    traffic.register(&o.url).await;

    // Batches in flight from four senders while the database goes away under them.
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let batches: Vec<Fresh> = {
        let mut s = sent.lock().expect("lock");
        (0..80)
            .map(|_| fresh(&traffic, &mut rng, 100, &mut s))
            .collect()
    };
    let batches = Arc::new(batches);
    let outcomes = Arc::new(Mutex::new(HashMap::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = vec![];
    for _ in 0..4 {
        let (batches, outcomes, next, stop, url) = (
            batches.clone(),
            outcomes.clone(),
            next.clone(),
            stop.clone(),
            o.url.clone(),
        );
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http");
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(b) = batches.get(i) else { return };
                let outcome = send(&http, &url, b).await;
                outcomes.lock().expect("lock").insert(i, outcome);
            }
        }));
    }
    wait_for("some batches stored", 120, || async {
        let o = outcomes.lock().ok()?;
        (o.values().filter(|x| matches!(x, Outcome::Acked)).count() >= 10).then_some(())
    })
    .await;
    // The outage: no new connections, and every open one terminated.
    admin(
        &admin_url,
        &format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"),
    )
    .await;
    admin(
        &admin_url,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in senders {
        s.await.expect("sender");
    }

    // Clear errors: 503 with a JSON body that says what happened and what to do.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http");
    let probe = {
        let mut s = sent.lock().expect("lock");
        fresh(&traffic, &mut rng, 10, &mut s)
    };
    match send(&http, &o.url, &probe).await {
        Outcome::Refused(503, e) => assert!(
            e.contains("nothing was stored") && e.contains("retry"),
            "{e}"
        ),
        other => panic!("ingest during the outage: {other:?}"),
    }
    let (code, h) = health(&o.url).await;
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["database"], "unavailable", "{h}");
    assert_eq!(h["storage"]["status"], "failing", "{h}");
    assert!(metric(&o.url, "backhaul_storage_errors_total").await >= 1.0);
    let outcomes: HashMap<usize, Outcome> = std::mem::take(&mut *outcomes.lock().expect("lock"));
    let refused: Vec<usize> = outcomes
        .iter()
        .filter(|(_, x)| !matches!(x, Outcome::Acked))
        .map(|(i, _)| *i)
        .collect();
    for i in &refused {
        assert!(
            matches!(&outcomes[i], Outcome::Refused(503, _)),
            "batch {i}: {:?}",
            outcomes[i]
        );
    }
    assert!(
        !refused.is_empty(),
        "some batches were refused during the outage"
    );

    // Back.
    admin(
        &admin_url,
        &format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"),
    )
    .await;
    wait_for("health to report the database back", 120, || async {
        let (code, h) = health(&o.url).await;
        (code == 200 && h["database"] == "ok").then_some(())
    })
    .await;
    let sent = std::mem::take(&mut *sent.lock().expect("lock"));
    // Nothing half-written: every refused batch is stored whole or not at all (a commit whose
    // answer was lost is whole), and every acknowledged one is stored.
    let stored = stored_receipts(&url).await;
    let mut whole_after_refusal = 0;
    for i in &refused {
        let n = stored_part(&batches[*i], &sent, &stored);
        assert!(
            n == 0 || n == batches[*i].hashes.len(),
            "batch {i}: {n} of {} stored",
            batches[*i].hashes.len()
        );
        whole_after_refusal += usize::from(n > 0);
    }
    let acked: Vec<usize> = outcomes
        .iter()
        .filter(|(_, x)| matches!(x, Outcome::Acked))
        .map(|(i, _)| *i)
        .collect();
    for i in &acked {
        assert_eq!(
            stored_part(&batches[*i], &sent, &stored),
            batches[*i].hashes.len(),
            "acknowledged batch {i}"
        );
    }
    // Ingest resumes, and the oracle still knows what it stored: replays are duplicates.
    for i in acked.iter().take(10) {
        let statuses = resend(&http, &o, &batches[*i]).await;
        assert!(
            statuses.iter().all(|s| *s == ItemStatus::Duplicate),
            "batch {i} again: {statuses:?}"
        );
    }
    for i in &refused {
        let statuses = resend(&http, &o, &batches[*i]).await;
        assert!(
            statuses
                .iter()
                .all(|s| matches!(s, ItemStatus::Accepted | ItemStatus::Duplicate)),
            "{statuses:?}"
        );
    }
    assert!(matches!(send(&http, &o.url, &probe).await, Outcome::Acked));
    let (code, h) = health(&o.url).await;
    assert_eq!(
        (code, h["storage"]["status"].as_str()),
        (200, Some("ok")),
        "{h}"
    );
    let stored = stored_receipts(&url).await;
    let sent_batches: Vec<usize> = outcomes.keys().copied().collect();
    for i in &sent_batches {
        assert_eq!(
            stored_part(&batches[*i], &sent, &stored),
            batches[*i].hashes.len(),
            "batch {i}"
        );
    }
    println!(
        "postgres outage: {} batches acknowledged, {} refused with 503 ({} of them had committed whole), 0 half-written, 0 lost",
        acked.len(),
        refused.len(),
        whole_after_refusal
    );
    o.kill();
    admin(&admin_url, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `path`; `Err` with the reason when mounting is not permitted.
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string());
        }
        Ok(Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Fills the file system at `dir` until a write fails for lack of space.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => {
                // ENOSPC: finish the last pages with small writes.
                if chunk.len() == 4096 {
                    break;
                }
                chunk.truncate(4096);
            }
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_on_a_full_disk_answers_503_stays_intact_and_recovers() {
    let seed = seed("sqlite full");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _mount = match Tmpfs::mount(&data, "24m") {
        Ok(m) => m,
        Err(e) if !is_root() => {
            eprintln!("note: mounting a tmpfs needs root ({e}); the full-disk test did not run");
            return;
        }
        Err(e) => panic!("mounting a tmpfs for the full-disk test failed: {e}"),
    };
    let chain = Chain::start(1, 1).await;
    let s = oracle_settings(&chain, &chain.net.url(), &data, free_addr(), None);
    let mut o = OracleProc::new(dir.path(), "oracle", &s, None);
    o.start().await;
    let traffic = Arc::new(Traffic::new(&chain, &mut rng, 3, 3));
    traffic.register(&o.url).await;
    // Generous: the first write after space returns may wait for SQLite to checkpoint a large
    // write-ahead log on a busy machine; this test is about what is stored, not how fast.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("http");
    let mut sent = HashMap::new();
    let mut acked = vec![];
    for _ in 0..5 {
        let b = fresh(&traffic, &mut rng, 250, &mut sent);
        assert!(matches!(send(&http, &o.url, &b).await, Outcome::Acked));
        acked.push(b);
    }

    // The disk fills up: batches go on until one no longer fits.
    let filler = fill(&data);
    let mut refused = vec![];
    for _ in 0..300 {
        let b = fresh(&traffic, &mut rng, 250, &mut sent);
        match send(&http, &o.url, &b).await {
            Outcome::Acked => acked.push(b),
            Outcome::Refused(503, e) => {
                assert!(e.contains("full") && e.contains("retry"), "{e}");
                refused.push(b);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused.len(), 1, "a batch is refused once the disk is full");
    // It stays refused while the disk is full, and the oracle says why.
    for _ in 0..3 {
        let b = fresh(&traffic, &mut rng, 250, &mut sent);
        match send(&http, &o.url, &b).await {
            Outcome::Refused(503, e) => assert!(e.contains("full"), "{e}"),
            other => panic!("{other:?}"),
        }
        refused.push(b);
    }
    let (code, h) = health(&o.url).await;
    assert_eq!(code, 200, "the database answers reads: {h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["storage"]["status"], "failing", "{h}");
    assert!(
        h["storage"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("full")),
        "{h}"
    );

    // Space returns.
    std::fs::remove_file(&filler).expect("remove the filler");
    let stored = stored_receipts(&backhaul_oracle::db::sqlite_url(&data)).await;
    for b in &refused {
        assert_eq!(
            stored_part(b, &sent, &stored),
            0,
            "a refused batch left nothing behind"
        );
    }
    for b in &acked {
        assert_eq!(stored_part(b, &sent, &stored), b.hashes.len());
    }
    for b in acked.iter().rev().take(3) {
        let statuses = resend(&http, &o, b).await;
        assert!(
            statuses.iter().all(|s| *s == ItemStatus::Duplicate),
            "{statuses:?}"
        );
    }
    for b in &refused {
        let statuses = resend(&http, &o, b).await;
        assert!(
            statuses.iter().all(|s| *s == ItemStatus::Accepted),
            "{statuses:?}"
        );
    }
    let (code, h) = health(&o.url).await;
    assert_eq!(
        (code, h["storage"]["status"].as_str()),
        (200, Some("ok")),
        "{h}"
    );

    // Killed and started again on the same file: intact, and it still knows every receipt.
    o.kill();
    let url = backhaul_oracle::db::sqlite_url(&data);
    {
        let pool = backhaul_oracle::db::connect(&url).await.expect("database");
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .expect("integrity check");
        assert_eq!(check, "ok");
        pool.close().await;
    }
    let stored = stored_receipts(&url).await;
    let all: HashMap<[u8; 32], ItemStatus> =
        sent.keys().map(|h| (*h, ItemStatus::Accepted)).collect();
    assert!(lost_receipts(&all, &sent, &stored).is_empty());
    o.start().await;
    let statuses = resend(&http, &o, &refused[0]).await;
    assert!(
        statuses.iter().all(|s| *s == ItemStatus::Duplicate),
        "{statuses:?}"
    );
    println!(
        "sqlite full: {} batches stored before the disk filled, {} refused while full, all stored after, integrity ok",
        acked.len(),
        refused.len()
    );
    o.kill();
}
