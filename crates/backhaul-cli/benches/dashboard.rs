//! The dashboard over a network of a million operators: how long a read takes to audit and
//! build (once per refresh, off the request path), and how fast the pages answer afterwards,
//! over real HTTP on loopback, against a static asset served by the same server in the same run.
//! Two epochs (one finalized, one in its challenge period), each dataset with a reward leaf per
//! operator; half the operators have claimed. The data is synthetic: the audit's checks run over
//! it in full but do not pass (the figures are not a closed epoch's), which costs the same.
//!
//! `cargo bench -p backhaul-cli --bench dashboard` (`BACKHAUL_BENCH_OPERATORS` sets the count,
//! 1,000,000 by default).

use anchor_lang::prelude::Pubkey;
use anchor_lang::{AnchorDeserialize, Space};
use backhaul_audit::{Fetched, Snapshot};
use backhaul_cli::dashboard::server::{self, DashboardState};
use backhaul_cli::dashboard::Published;
use backhaul_dashboard::{guardian, network, Model};
use backhaul_protocol::dataset::{
    b58, Budget, Dataset, Parameters, RewardLeaf, RewardTree, Stats, UsageTree, DATASET_VERSION,
};
use backhaul_sdk::state::{Config, EpochRecord, EpochStatus, OperatorClaim};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn zeroed<T: AnchorDeserialize + Space>() -> T {
    T::deserialize(&mut &vec![0; T::INIT_SPACE][..]).expect("zero bytes decode as any account")
}

const GENESIS: i64 = 1_800_000_000;
const EPOCH_SECS: u64 = 86_400;

fn config() -> Config {
    let mut c: Config = zeroed();
    c.mint = Pubkey::new_from_array([3; 32]);
    c.genesis_ts = GENESIS;
    c.epoch_length_secs = EPOCH_SECS;
    c.challenge_period_secs = 3_600;
    c.threshold = 2;
    c.emission.initial_per_epoch = 1_000_000_000_000;
    c.emission.decay_bps = 5_000;
    c.emission.decay_period_epochs = 30;
    c.emission.lifetime_cap = 1_000_000_000_000_000;
    c.decimals = 6;
    c.next_epoch = 1;
    c
}

fn dataset(e: u64, leaves: Vec<RewardLeaf>) -> Dataset {
    let p: Parameters = serde_json::from_value(serde_json::json!({
        "credits_per_gib": 0, "pair_cap_bytes": 0, "max_rate_bytes_per_sec": 0,
        "initial_per_epoch": 0, "decay_bps": 0, "decay_period_epochs": 0, "floor_per_epoch": 0,
        "lifetime_cap": 0, "scheduled_minted": 0, "previous_burn_ema": 0,
        "net_emissions_cap": 0, "burn_smoothing_epochs": 0, "usage_cap_bps": 0,
        "tokens_burned": 0, "credits_per_token": 0, "decimals": 6,
        "previous_reward_total": 0, "previous_usage_total": 0,
        "previous_usage_cost_total": 0, "burns_not_reemitted": 0
    }))
    .expect("parameters");
    let total = leaves.iter().map(|l| l.cumulative).sum();
    Dataset {
        version: DATASET_VERSION,
        program_id: b58(&[1; 32]),
        config: b58(&[2; 32]),
        epoch: e,
        epoch_start: GENESIS + (e * EPOCH_SECS) as i64,
        epoch_end: GENESIS + ((e + 1) * EPOCH_SECS) as i64,
        input_hash: "00".repeat(32),
        parameters: p,
        budget: Budget {
            scheduled: 0,
            scheduled_room: 0,
            burn_ema: 0,
            net: 0,
            usage_cap: 0,
            total: 0,
        },
        allocation: 0,
        rewards: RewardTree {
            root: "00".repeat(32),
            leaf_count: leaves.len() as u64,
            total,
            leaves,
        },
        usage: UsageTree {
            root: "00".repeat(32),
            leaf_count: 0,
            total: 0,
            credits_consumed: 0,
            cost_total: 0,
            usage_cost: 0,
            leaves: vec![],
        },
        served: vec![],
        nodes: vec![],
        rejected: BTreeMap::new(),
        stats: Stats {
            sessions: 0,
            sessions_counted: 0,
            bytes_counted: 0,
            bytes_over_pair_cap: 0,
            bytes_over_credits: 0,
        },
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Median and 99th percentile of `samples`.
fn spread(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BACKHAUL_BENCH_OPERATORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("dashboard over {n} operators, two epochs");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut keys: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
    keys.sort();
    keys.dedup();

    let made = Instant::now();
    let mut fetched = BTreeMap::new();
    let mut cumulative = vec![0u64; keys.len()];
    for e in 0..2u64 {
        let leaves = keys
            .iter()
            .zip(cumulative.iter_mut())
            .map(|(k, c)| {
                let amount = rng.gen_range(1..1_000_000u64);
                *c += amount;
                RewardLeaf {
                    operator: b58(k),
                    cumulative: *c,
                    amount,
                    bytes: amount * 1_000,
                }
            })
            .collect();
        let bytes = dataset(e, leaves).to_bytes();
        println!(
            "  epoch {e}'s dataset: {:.1} MiB",
            bytes.len() as f64 / (1u64 << 20) as f64
        );
        fetched.insert(
            e,
            Fetched {
                source: format!("bench epoch {e}"),
                bytes: Ok(bytes),
            },
        );
    }
    let mut snapshot = Snapshot::new(
        Pubkey::new_from_array([1; 32]),
        Pubkey::new_from_array([2; 32]),
        config(),
    );
    for (e, status) in [(0u64, EpochStatus::Finalized), (1, EpochStatus::Proposed)] {
        let mut r: EpochRecord = zeroed();
        r.epoch = e;
        r.status = status;
        r.finalizable_at = GENESIS + ((e + 1) * EPOCH_SECS) as i64 + 3_600;
        snapshot
            .records
            .push((Pubkey::new_from_array([10 + e as u8; 32]), r));
    }
    for k in keys.iter().step_by(2) {
        let mut c: OperatorClaim = zeroed();
        c.operator = Pubkey::new_from_array(*k);
        c.claimed = 1;
        snapshot.claims.push((Pubkey::new_unique(), c));
    }
    println!("  made in {}", secs(made.elapsed()));

    // One read, as `backhaul dashboard` does it every refresh (the fetch aside).
    let t = Instant::now();
    let report = backhaul_audit::audit(&snapshot, &fetched);
    let audited = t.elapsed();
    let t = Instant::now();
    let model = Model::build(&snapshot, &fetched, report, GENESIS + 2 * EPOCH_SECS as i64);
    let built = t.elapsed();
    let t = Instant::now();
    let network = network::view(&model);
    let guardian = guardian::view(&model);
    let viewed = t.elapsed();
    println!(
        "read: audit {}, model (datasets decoded) {}, network and guardian pages {}",
        secs(audited),
        secs(built),
        secs(viewed)
    );

    let state = Arc::new(DashboardState::default());
    state.publish(Published {
        model,
        network,
        guardian,
        read_at: 0,
        took_ms: 0,
    });
    let addr = server::serve("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("the server starts");
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let t = Instant::now();
            let r = http.get(&url).send().await.expect("request");
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let body = r.bytes().await.expect("body");
            (t.elapsed(), body.len())
        }
    };

    const ROUNDS: usize = 200;
    let mut baseline = vec![];
    for _ in 0..ROUNDS {
        baseline.push(get("/style.css".into()).await.0);
    }
    let (base_med, base_p99) = spread(baseline);
    let pick = |rng: &mut rand::rngs::StdRng| b58(&keys[rng.gen_range(0..keys.len())]);

    let mut operator = vec![];
    for _ in 0..ROUNDS {
        operator.push(get(format!("/api/operators/{}", pick(&mut rng))).await.0);
    }
    let (op_med, op_p99) = spread(operator);
    let mut page = vec![];
    for i in 0..ROUNDS {
        let p = rng.gen_range(0..keys.len() / 50);
        let path = if i % 2 == 0 {
            format!("/api/operators?page={p}&per_page=50")
        } else {
            format!("/api/operators/{}/history.csv", pick(&mut rng))
        };
        page.push(get(path).await.0);
    }
    let (list_med, list_p99) = spread(page);
    // The operator page as a browser loads it: the page, its script and style, the network
    // summary, the read's status and the operator.
    let mut loads = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        for path in ["/", "/app.js", "/style.css", "/api/network", "/api/status"] {
            get(path.into()).await;
        }
        get(format!("/api/operators/{}", pick(&mut rng))).await;
        loads.push(t.elapsed());
    }
    let (load_med, load_p99) = spread(loads);
    let (cold, _) = get(format!("/api/operators/{}/proof", pick(&mut rng))).await;
    let mut proofs = vec![];
    for _ in 0..ROUNDS {
        proofs.push(
            get(format!("/api/operators/{}/proof", pick(&mut rng)))
                .await
                .0,
        );
    }
    let (proof_med, proof_p99) = spread(proofs);

    let ratio = |d: Duration| d.as_secs_f64() / base_med.as_secs_f64();
    println!("over HTTP on loopback ({ROUNDS} requests each; median, 99th percentile, median against the static asset's):");
    println!(
        "  static asset (baseline)       {:>10} {:>10}   1.0x",
        ms(base_med),
        ms(base_p99)
    );
    for (what, med, p99) in [
        ("operator (JSON)", op_med, op_p99),
        ("listing page or CSV", list_med, list_p99),
        ("operator page, all requests", load_med, load_p99),
        ("proof (tree cached)", proof_med, proof_p99),
    ] {
        println!(
            "  {what:<29} {:>10} {:>10} {:>6.1}x",
            ms(med),
            ms(p99),
            ratio(med)
        );
    }
    println!(
        "  first proof of the epoch (builds the tree of {} leaves): {}",
        keys.len(),
        secs(cold)
    );
}
