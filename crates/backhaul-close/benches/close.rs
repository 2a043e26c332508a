//! Epoch close at scale: 1,000,000 operators and 10,000,000 receipts (sessions), against the raw
//! sha256 time for the same number of hashes, measured in the same run.
//!
//! `cargo bench -p backhaul-close --bench close` (set `BACKHAUL_BENCH_SCALE=0.1` for a tenth).

use backhaul_close::{
    Aggregator, BuyerCredits, ChainInputs, CloseContext, CloseParams, Stored, StoredReceipt,
};
use backhaul_core::merkle::sha256v;
use backhaul_protocol::{ClientGrant, Deployment, NodeBinding, UsageReceipt};
use std::collections::HashMap;
use std::time::Instant;

fn key(i: u64, tag: u8) -> [u8; 32] {
    // Spread keys over the key space like real public keys.
    sha256v(&[&i.to_le_bytes(), &[tag]])
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let scale: f64 = std::env::var("BACKHAUL_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let operators = (1_000_000.0 * scale) as u64;
    let clients = (100_000.0 * scale).max(1.0) as u64;
    let receipts = (10_000_000.0 * scale) as u64;
    println!("epoch close: {operators} operators (one node each), {clients} clients, {receipts} receipts (one per session)");

    let setup = Instant::now();
    let nodes: Vec<[u8; 32]> = (0..operators).map(|i| key(i, 1)).collect();
    let bindings: Vec<Stored<NodeBinding>> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Stored {
            body: NodeBinding {
                node: *n,
                operator: key(i as u64, 2),
                epoch: 0,
                issued_at: 1,
            },
            body_hash: key(i as u64, 3),
            position: 0,
        })
        .collect();
    let mut client_keys: Vec<[u8; 32]> = (0..clients).map(|i| key(i, 4)).collect();
    client_keys.sort_unstable();
    let grants: Vec<Stored<ClientGrant>> = client_keys
        .iter()
        .enumerate()
        .map(|(i, c)| Stored {
            body: ClientGrant {
                buyer: key(i as u64, 5),
                client: *c,
                epoch: 0,
                issued_at: 1,
                expires_at: i64::MAX,
                credit_limit: 0,
            },
            body_hash: key(i as u64, 6),
            position: 0,
        })
        .collect();
    let credits: HashMap<[u8; 32], BuyerCredits> = grants
        .iter()
        .map(|g| {
            (
                g.body.buyer,
                BuyerCredits {
                    issued: u64::MAX / 2,
                    tokens_burned: u64::MAX / 4,
                    ..Default::default()
                },
            )
        })
        .collect();
    let chain = ChainInputs {
        genesis_ts: 0,
        epoch_length_secs: 86_400,
        next_epoch: 0,
        initial_per_epoch: 1_000_000_000_000,
        decay_bps: 5_000,
        decay_period_epochs: 730,
        floor_per_epoch: 1,
        lifetime_cap: u64::MAX / 2,
        burn_smoothing_epochs: 7,
        decimals: 6,
        credits_per_token: 100_000,
        ledger_sealed: true,
        ..Default::default()
    };
    let ctx = CloseContext {
        input_hash: [0; 32],
        deployment: Deployment {
            program_id: [1; 32],
            config: [2; 32],
        },
        epoch: 0,
        epoch_start: 0,
        epoch_end: 86_400,
        params: CloseParams {
            credits_per_gib: 50_000,
            pair_cap_bytes: u64::MAX,
            max_rate_bytes_per_sec: u64::MAX,
        },
        chain: &chain,
        bindings: &bindings,
        grants: &grants,
        credits: &credits,
        previous: None,
    };
    println!(
        "  setup (keys, bindings, grants): {:.1} s, peak memory so far {:.0} MiB",
        setup.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let before = peak_rss_mib();

    // The close: receipts arrive in (client, node, session) order, as the agreed input holds
    // them.
    let started = Instant::now();
    let mut agg = Aggregator::new(&ctx).expect("context");
    let per_client = receipts / clients;
    let mut n = 0u64;
    let mut sessions: Vec<([u8; 32], u64, u64)> = Vec::new();
    for (ci, client) in client_keys.iter().enumerate() {
        let count = if ci as u64 == clients - 1 {
            receipts - n
        } else {
            per_client
        };
        sessions.clear();
        for s in 0..count {
            let i = n + s;
            let node = nodes[((i.wrapping_mul(2_654_435_761)) % operators) as usize];
            sessions.push((node, s, i));
        }
        sessions.sort_unstable();
        for &(node, s, i) in &sessions {
            let mut session_id = [0u8; 16];
            session_id[8..].copy_from_slice(&s.to_be_bytes());
            let receipt = UsageReceipt {
                epoch: 0,
                session_id,
                node,
                client: *client,
                buyer: grants[ci].body.buyer,
                sequence: 1,
                cumulative_bytes: 1_000_000 + (i % 977) * 4_096,
                session_age_secs: 600,
            };
            let mut body_hash = [0u8; 32];
            body_hash[..8].copy_from_slice(&i.to_le_bytes());
            agg.push(&StoredReceipt { receipt, body_hash })
                .expect("ordered");
        }
        n += count;
    }
    let pushed = started.elapsed();
    let dataset = agg.finish().expect("close");
    let bytes = dataset.to_bytes();
    let hash = sha256v(&[&bytes]);
    let total = started.elapsed();
    let peak = peak_rss_mib();
    assert_eq!(dataset.stats.sessions, receipts);
    assert_eq!(
        dataset.rewards.leaves.iter().map(|l| l.amount).sum::<u64>(),
        dataset.allocation
    );

    // Baseline: the raw sha256 work of the same trees, in the same run.
    let reward_leaves = dataset.rewards.leaf_count;
    let usage_leaves = dataset.usage.leaf_count;
    let internal = |leaves: u64| {
        let (mut level, mut count) = (leaves, 0u64);
        while level > 1 {
            level = level.div_ceil(2);
            count += level;
        }
        count
    };
    let hashes =
        2 * (reward_leaves + usage_leaves) + internal(reward_leaves) + internal(usage_leaves);
    let raw_started = Instant::now();
    let mut acc = [0u8; 32];
    for i in 0..hashes {
        acc = sha256v(&[b"backhaul:reward:v1", &acc, &i.to_le_bytes(), &acc]);
    }
    let raw = raw_started.elapsed();
    std::hint::black_box(acc);

    println!(
        "  aggregation of {receipts} receipts: {:.2} s",
        pushed.as_secs_f64()
    );
    println!("  whole close (aggregation, caps, split, both trees, {:.0} MB dataset and its hash): {:.2} s", bytes.len() as f64 / 1e6, total.as_secs_f64());
    println!(
        "  peak memory: {:.0} MiB ({:.0} MiB before the close started)",
        peak, before
    );
    println!(
        "  raw sha256 of the same {hashes} hashes: {:.2} s",
        raw.as_secs_f64()
    );
    println!(
        "  close time / raw hashing time: {:.1}x",
        total.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  dataset sha256 {}",
        backhaul_protocol::dataset::hex(&hash)
    );
}
