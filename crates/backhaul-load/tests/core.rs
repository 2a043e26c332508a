//! The measurement core against a real oracle (HTTP server, SQLite in a temporary directory)
//! started in this process over an in-memory chain: a short ingest phase, the epoch's close, a
//! short proof phase, and the failures the generator must count rather than hide. No timing is
//! asserted.

use backhaul_client::OracleClient;
use backhaul_close::BuyerCredits;
use backhaul_load::drive::{self, IngestLoad, PhaseReport, ProofLoad};
use backhaul_load::monitor::RssMonitor;
use backhaul_load::run::proof_check;
use backhaul_load::workload::{self, Shape, Workload};
use backhaul_oracle::chain::examples::{example_config, example_ledger};
use backhaul_oracle::chain::{MemoryChain, MemoryState};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::api::ItemStatus;
use backhaul_protocol::Deployment;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use solana_sdk::pubkey::Pubkey;
use std::sync::Arc;
use std::time::Duration;

const EPOCH: u64 = 3_600;

fn deployment() -> Deployment {
    Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: [0xC0; 32],
    }
}

fn buyers() -> Vec<SigningKey> {
    (0..3).map(|i| workload::key(5, 9, i)).collect()
}

struct Net {
    oracle: Oracle,
    chain: Arc<MemoryChain>,
    url: String,
    genesis: i64,
    _dir: tempfile::TempDir,
}

async fn start() -> Net {
    let dir = tempfile::tempdir().unwrap();
    let genesis = backhaul_oracle::clock::now() - 100;
    // The oracle's grace period on the chain too.
    let mut config = example_config(genesis, EPOCH, 0);
    config.consensus.grace_secs = 5;
    let mut state = MemoryState {
        config: Some(config),
        clock: Some(genesis + 50),
        ..Default::default()
    };
    state
        .ledgers
        .insert(0, example_ledger(Pubkey::default(), 0, false, 0, 0));
    for b in buyers() {
        state.credits.insert(
            b.verifying_key().to_bytes(),
            BuyerCredits {
                issued: u64::MAX / 4,
                tokens_burned: u64::MAX / 8,
                ..Default::default()
            },
        );
    }
    let chain = Arc::new(MemoryChain::new(state));
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        config: Pubkey::new_from_array(deployment().config).to_string(),
        ..Settings::default()
    };
    let oracle = Oracle::start(settings, chain.clone()).await.unwrap();
    let url = format!("http://{}", oracle.addr);
    Net {
        oracle,
        chain,
        url,
        genesis,
        _dir: dir,
    }
}

fn prepare(d: Deployment, receipts: usize, started_at: i64) -> Workload {
    let shape = Shape {
        nodes: 40,
        sessions_per_node: 3,
        clients: 30,
        batch: 50,
        receipts,
        epoch: 0,
        started_at,
        seed: 5,
    };
    workload::prepare(&shape, d, &buyers(), 2).unwrap()
}

fn ingest_load(url: &str, w: &Workload, secs: f64) -> IngestLoad {
    IngestLoad {
        url: url.to_string(),
        bodies: Arc::new(w.bodies.clone()),
        items: Arc::new(w.items.clone()),
        connections: 3,
        duration: Duration::from_secs_f64(secs),
        rate: None,
        timeout: Duration::from_secs(30),
        progress_every: Duration::from_millis(300),
    }
}

fn errors(r: &PhaseReport, kind: &str) -> u64 {
    r.errors.get(kind).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_close_and_proofs_against_a_real_oracle() {
    let net = start().await;
    let w = prepare(deployment(), 600, net.genesis);
    let api = OracleClient::new(&net.url).unwrap();
    let b = api.submit_bindings(&w.bindings).await.unwrap();
    assert!(b.results.iter().all(|r| r.status == ItemStatus::Accepted));
    let g = api.submit_grants(&w.grants).await.unwrap();
    assert!(g.results.iter().all(|r| r.status == ItemStatus::Accepted));
    // Before any close there is nothing to ask proofs for.
    assert!(proof_check(&api).await.unwrap().is_none());

    // 600 receipts: 120 sessions, 5 rounds; the phase runs out of work before its deadline.
    // One connection keeps the rounds in order, so no receipt arrives after its successor.
    // The oracle runs in this process, so this process's memory and CPU are followed.
    let monitor = RssMonitor::start(std::process::id(), Duration::from_millis(100)).unwrap();
    let r = drive::ingest(
        IngestLoad {
            connections: 1,
            ..ingest_load(&net.url, &w, 30.0)
        },
        Some(monitor.clone()),
    )
    .await
    .unwrap();
    assert!(r.oracle_cpu_secs.is_some_and(|c| c > 0.0), "{r:?}");
    assert!(r.oracle_cpu_us_per_item.is_some_and(|c| c > 0.0));
    let rss = monitor.finish();
    assert_eq!(rss.phases.last().map(|(p, _)| p.as_str()), Some("ingest"));
    assert!(rss.overall.max_kib > 0);
    assert!(r.exhausted, "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.requests, r.items), (12, 600));
    assert_eq!(r.latency.count, 12);
    assert!(r.latency.p50_ms > 0.0 && r.latency.max_ms >= r.latency.p99_ms);
    // The first round opens 120 sessions; every later receipt supersedes its session's last.
    assert_eq!(r.outcomes.get("accepted"), Some(&600), "{:?}", r.outcomes);

    // Sending the same bodies again: the last round's receipts are duplicates, the earlier
    // rounds' are superseded by them, and the answers are counted as such.
    let again = drive::ingest(ingest_load(&net.url, &w, 30.0), None)
        .await
        .unwrap();
    assert_eq!(
        again.outcomes.get("duplicate"),
        Some(&120),
        "{:?}",
        again.outcomes
    );
    assert_eq!(
        again.outcomes.get("superseded"),
        Some(&480),
        "{:?}",
        again.outcomes
    );

    // Close epoch 0: the chain's clock passes its end and grace, its ledger is sealed.
    let now = net.genesis + EPOCH as i64 + 6;
    net.chain.update(|s| {
        s.clock = Some(now);
        if let Some(l) = s.ledgers.get_mut(&0) {
            l.sealed = true;
        }
    });
    let closed = net.oracle.closer.close(0, now).await.unwrap();
    assert_eq!(closed.dataset.rewards.leaves.len(), 40);

    let (check, keys) = proof_check(&api).await.unwrap().expect("a closed epoch");
    assert_eq!(keys.len(), 40);
    let load = ProofLoad {
        url: net.url.clone(),
        check: Arc::new(check.clone()),
        keys: Arc::new(keys.clone()),
        connections: 8,
        duration: Duration::from_millis(1_500),
        timeout: Duration::from_secs(10),
        verify_every: 1,
        progress_every: Duration::from_millis(500),
    };
    let p = drive::proofs(load.clone(), None).await.unwrap();
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert!(p.requests > 0);
    assert_eq!(p.items, p.requests);
    assert_eq!(p.outcomes.get("verified"), Some(&p.requests));
    assert_eq!(p.latency.count, p.requests);
    assert!(!p.timeline.is_empty());

    // A proof that does not lead to the expected root is an error, never a served proof.
    let mut wrong = check.clone();
    wrong.root[0] ^= 1;
    let bad = drive::proofs(
        ProofLoad {
            check: Arc::new(wrong),
            duration: Duration::from_millis(300),
            ..load.clone()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(bad.requests, 0);
    assert!(errors(&bad, "proof_mismatch") > 0, "{:?}", bad.errors);
    // So is one with another cumulative amount.
    let mut wrong = check.clone();
    for v in wrong.cumulative.values_mut() {
        *v += 1;
    }
    let bad = drive::proofs(
        ProofLoad {
            check: Arc::new(wrong),
            duration: Duration::from_millis(300),
            ..load.clone()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(bad.requests, 0);
    assert!(errors(&bad, "proof_mismatch") > 0);
    // An operator without a leaf is a 404, counted by kind.
    let missing = drive::proofs(
        ProofLoad {
            keys: Arc::new(vec![backhaul_protocol::dataset::b58(&[7u8; 32])]),
            duration: Duration::from_millis(300),
            ..load.clone()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(missing.requests, 0);
    assert!(errors(&missing, "http_404") > 0, "{:?}", missing.errors);

    // After the close, the epoch's receipts are refused as not open, and counted so.
    let late = prepare(deployment(), 50, net.genesis);
    let r = drive::ingest(ingest_load(&net.url, &late, 5.0), None)
        .await
        .unwrap();
    assert_eq!(
        r.outcomes.get("rejected:epoch_not_open"),
        Some(&50),
        "{:?}",
        r.outcomes
    );
    net.oracle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signatures_malformed_bodies_and_dead_servers_are_counted() {
    let net = start().await;
    // Signed for another deployment: every signature is wrong for this oracle.
    let other = Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: [0xC1; 32],
    };
    let w = prepare(other, 100, net.genesis);
    let r = drive::ingest(ingest_load(&net.url, &w, 5.0), None)
        .await
        .unwrap();
    assert_eq!(
        r.outcomes.get("rejected:bad_signature"),
        Some(&100),
        "{:?}",
        r.outcomes
    );

    // Truncated bodies are refused as a whole: 400, by kind, and no items are counted.
    let good = prepare(deployment(), 100, net.genesis);
    let truncated: Vec<Bytes> = good.bodies.iter().map(|b| b.slice(..b.len() - 1)).collect();
    let r = drive::ingest(
        IngestLoad {
            bodies: Arc::new(truncated),
            ..ingest_load(&net.url, &good, 5.0)
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(errors(&r, "http_400"), 2, "{:?}", r.errors);
    assert_eq!((r.requests, r.items), (0, 0));

    // An answer with the wrong number of results is an error too: claim more items than sent.
    let r = drive::ingest(
        IngestLoad {
            items: Arc::new(good.items.iter().map(|n| n + 1).collect()),
            ..ingest_load(&net.url, &good, 5.0)
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(errors(&r, "result_count"), 2, "{:?}", r.errors);
    net.oracle.stop().await;

    // Nobody listening: connection errors until the deadline, and the phase still ends.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = drive::ingest(
        IngestLoad {
            bodies: Arc::new(vec![good.bodies[0].clone(); 1_000_000]),
            items: Arc::new(vec![good.items[0]; 1_000_000]),
            ..ingest_load(&format!("http://127.0.0.1:{port}"), &good, 0.5)
        },
        None,
    )
    .await
    .unwrap();
    assert!(errors(&r, "connect") > 0, "{:?}", r.errors);
    assert_eq!(r.requests, 0);
    assert!(!r.exhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offered_rate_paces_the_requests() {
    let net = start().await;
    let w = prepare(deployment(), 500, net.genesis);
    let api = OracleClient::new(&net.url).unwrap();
    api.submit_bindings(&w.bindings).await.unwrap();
    api.submit_grants(&w.grants).await.unwrap();
    // 50 receipts per second for 3 s: requests of 50 are due at 0, 1 and 2 s (three
    // connections, so none waits for another's answer); the fourth, due at 3 s, is not sent.
    let r = drive::ingest(
        IngestLoad {
            rate: Some(50.0),
            ..ingest_load(&net.url, &w, 3.0)
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.requests, 3, "{r:?}");
    assert_eq!(r.outcomes.get("accepted"), Some(&150), "{:?}", r.outcomes);
    assert!(!r.exhausted);
    assert!(r.elapsed_secs >= 2.0, "{r:?}");
    net.oracle.stop().await;
}
