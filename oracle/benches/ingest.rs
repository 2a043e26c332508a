//! End-to-end ingest throughput (HTTP batches, verification, durable SQLite storage) next to the
//! raw batch-verification throughput of the same signatures, measured in the same run.
//!
//! `cargo bench -p backhaul-oracle --bench ingest` (set `BACKHAUL_BENCH_RECEIPTS` to change the
//! count; 200,000 by default).

use backhaul_oracle::chain::{MemoryChain, MemoryState};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::api::{BatchResponse, ItemStatus};
use backhaul_protocol::{
    verify_each_strict, ClientGrant, Deployment, NodeBinding, SigCheck, SignedReceipt, UsageReceipt,
};
use ed25519_dalek::SigningKey;
use solana_sdk::pubkey::Pubkey;
use std::sync::Arc;
use std::time::Instant;

const BATCH: usize = 5_000;
const CONNECTIONS: usize = 4;
/// Receipts in the equivocating request (the most one request may hold).
const EQUIVOCATING: usize = 10_000;

fn key(i: u64, tag: u8) -> SigningKey {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&b)
}

fn main() {
    let count: usize = std::env::var("BACKHAUL_BENCH_RECEIPTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let deployment = Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: [0xC0; 32],
    };
    let nodes: Vec<SigningKey> = (0..1_000).map(|i| key(i, 1)).collect();
    let clients: Vec<SigningKey> = (0..1_000).map(|i| key(i, 2)).collect();

    // Sign everything up front, on every core.
    let started = Instant::now();
    let receipts: Vec<SignedReceipt> = std::thread::scope(|s| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per = count.div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (nodes, clients) = (&nodes, &clients);
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(count))
                        .map(|i| {
                            let (n, c) =
                                (&nodes[i % nodes.len()], &clients[(i / 7) % clients.len()]);
                            let mut session_id = [0u8; 16];
                            session_id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                            UsageReceipt {
                                epoch: 0,
                                session_id,
                                node: n.verifying_key().to_bytes(),
                                client: c.verifying_key().to_bytes(),
                                buyer: key(((i / 7) % clients.len()) as u64, 4)
                                    .verifying_key()
                                    .to_bytes(),
                                sequence: 1,
                                cumulative_bytes: 10_000_000,
                                session_age_secs: 60,
                            }
                            .sign_both(&deployment, c, n)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signer"))
            .collect()
    });
    println!("ingest: {count} receipts from {} nodes and {} clients, batches of {BATCH}, {CONNECTIONS} connections", nodes.len(), clients.len());
    println!(
        "  signing (setup): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Baseline: raw strict verification of the same signatures, on all cores.
    let checks: Vec<Vec<SigCheck>> = receipts
        .chunks(BATCH)
        .map(|b| b.iter().flat_map(|r| r.checks(&deployment)).collect())
        .collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let raw = |threads: usize| {
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let checks = &checks;
                s.spawn(move || {
                    for batch in checks.iter().skip(t).step_by(threads) {
                        assert!(verify_each_strict(batch).iter().all(Result::is_ok));
                    }
                });
            }
        });
        count as f64 / started.elapsed().as_secs_f64()
    };
    let raw_one = raw(1);
    let raw_all = raw(cores);

    // End to end: a real oracle on loopback with SQLite in a temporary directory.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let e2e = rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = backhaul_oracle::clock::now() - 10;
        // No rate limit (a consensus parameter, on the chain).
        let mut config = backhaul_oracle::chain::examples::example_config(genesis, 1_000_000, 0);
        config.consensus.max_rate_bytes_per_sec = u64::MAX;
        let mut state = MemoryState {
            config: Some(config),
            ..Default::default()
        };
        state.ledgers.insert(
            0,
            backhaul_oracle::chain::examples::example_ledger(Pubkey::default(), 0, false, 0, 0),
        );
        // Grants are kept only for buyers with a credit account.
        for i in 0..clients.len() {
            state.credits.insert(
                key(i as u64, 4).verifying_key().to_bytes(),
                backhaul_close::BuyerCredits {
                    issued: u64::MAX / 4,
                    tokens_burned: 1,
                    ..Default::default()
                },
            );
        }
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            config: Pubkey::new_from_array(deployment.config).to_string(),
            per_key_items_per_sec: 10_000_000,
            ..Settings::default()
        };
        let oracle = Oracle::start(settings, Arc::new(MemoryChain::new(state)))
            .await
            .expect("oracle");
        let url = format!("http://{}", oracle.addr);
        let http = reqwest::Client::new();
        let post = move |path: &'static str, body: Vec<u8>| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let resp = http
                    .post(format!("{url}{path}"))
                    .header("content-type", "application/octet-stream")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert!(
                    resp.status().is_success(),
                    "{}",
                    resp.text().await.unwrap_or_default()
                );
                resp.json::<BatchResponse>().await.expect("json")
            }
        };
        let bindings: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let op = key(i as u64, 3);
                NodeBinding {
                    node: n.verifying_key().to_bytes(),
                    operator: op.verifying_key().to_bytes(),
                    epoch: 0,
                    issued_at: backhaul_oracle::clock::now(),
                }
                .sign(&deployment, n, &op)
            })
            .collect();
        let grants: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let b = key(i as u64, 4);
                ClientGrant {
                    buyer: b.verifying_key().to_bytes(),
                    client: c.verifying_key().to_bytes(),
                    epoch: 0,
                    issued_at: 1,
                    expires_at: i64::MAX,
                    credit_limit: 0,
                }
                .sign(&deployment, &b)
            })
            .collect();
        post("/v1/bindings", borsh::to_vec(&bindings).expect("encode")).await;
        post("/v1/grants", borsh::to_vec(&grants).expect("encode")).await;
        let bodies: Vec<Vec<u8>> = receipts
            .chunks(BATCH)
            .map(|b| borsh::to_vec(&b.to_vec()).expect("encode"))
            .collect();
        let started = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let bodies = Arc::new(bodies);
        let mut tasks = vec![];
        for _ in 0..CONNECTIONS {
            let (next, bodies, post) = (next.clone(), bodies.clone(), post.clone());
            tasks.push(tokio::spawn(async move {
                let mut stored = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let resp = post("/v1/receipts", body.clone()).await;
                    stored += resp
                        .results
                        .iter()
                        .filter(|r| r.status == ItemStatus::Accepted)
                        .count();
                }
                stored
            }));
        }
        let mut stored = 0;
        for t in tasks {
            stored += t.await.expect("task");
        }
        let elapsed = started.elapsed();
        assert_eq!(stored, count, "every receipt is accepted and stored");
        // One request of receipts that all equivocate at one session and sequence: the writer's
        // work must stay linear in it.
        let (n, c) = (&nodes[0], &clients[0]);
        let equivocating: Vec<SignedReceipt> = (0..EQUIVOCATING as u64)
            .map(|i| {
                UsageReceipt {
                    epoch: 0,
                    session_id: [0xee; 16],
                    node: n.verifying_key().to_bytes(),
                    client: c.verifying_key().to_bytes(),
                    buyer: key(0, 4).verifying_key().to_bytes(),
                    sequence: 9,
                    cumulative_bytes: 1 + i,
                    session_age_secs: 60,
                }
                .sign_both(&deployment, c, n)
            })
            .collect();
        let t = Instant::now();
        let resp = post(
            "/v1/receipts",
            borsh::to_vec(&equivocating).expect("encode"),
        )
        .await;
        let equivocation_secs = t.elapsed().as_secs_f64();
        assert_eq!(resp.results.len(), EQUIVOCATING);
        oracle.stop().await;
        (count as f64 / elapsed.as_secs_f64(), equivocation_secs)
    });
    let (e2e, equivocation_secs) = e2e;

    println!("  raw strict verification, 1 core: {raw_one:.0} receipts/s (2 signatures each)");
    println!("  raw strict verification, {cores} cores: {raw_all:.0} receipts/s");
    println!("  end to end (HTTP, verification, durable SQLite commit): {e2e:.0} receipts/s");
    println!(
        "  one request of {EQUIVOCATING} receipts equivocating at one session: {equivocation_secs:.2} s \
         ({:.0} receipts/s, {:.0}% of the honest rate)",
        EQUIVOCATING as f64 / equivocation_secs,
        100.0 * EQUIVOCATING as f64 / equivocation_secs / e2e
    );
    println!(
        "  end to end / raw verification on {cores} cores: {:.0}%",
        100.0 * e2e / raw_all
    );
}
