//! One whole run: prepare and sign the workload, measure the verification baseline, start the
//! endpoint and the oracle (or use a running oracle), ingest, close the epoch, ask for proofs,
//! and gather the figures.

use crate::chain::{self, Chain, Child, OracleSettings};
use crate::drive::{self, IngestLoad, PhaseReport, ProofCheck, ProofLoad};
use crate::monitor::{RssMonitor, RssReport};
use crate::workload::{self, Baseline, Shape, Workload};
use anyhow::Context;
use backhaul_client::{ClientConfig, OracleClient};
use backhaul_protocol::api::ItemStatus;
use backhaul_protocol::dataset::{b58, hash_from_hex, key_from_b58, Dataset};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `backhaul-load run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// How long each phase sends requests (ingest, then proofs), e.g. `60s`, `5m`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The ingest phase's length (default: --duration; 0s skips it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ingest_duration: Option<Duration>,
    /// The proof phase's length (default: --duration; 0s skips it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub proof_duration: Option<Duration>,
    /// Simulated nodes (each with its own operator wallet, so also the reward tree's leaves).
    #[arg(long, default_value_t = 20_000)]
    pub nodes: usize,
    /// Concurrent sessions per node; every round gives each session one more receipt.
    #[arg(long, default_value_t = 5)]
    pub sessions_per_node: usize,
    /// Simulated client keys.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Buyer wallets; client c is granted by buyer c mod buyers.
    #[arg(long, default_value_t = 10)]
    pub buyers: usize,
    /// Receipts per ingest request.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Receipts to sign beforehand (default: enough for 40,000 per second for the whole ingest
    /// phase, or 5% over --ingest-rate times its length). The phase ends early if they run out.
    #[arg(long)]
    pub receipts: Option<usize>,
    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 8)]
    pub ingest_connections: usize,
    /// Offer receipts at this rate (per second) instead of as fast as they are answered.
    #[arg(long)]
    pub ingest_rate: Option<f64>,
    /// Concurrent proof connections.
    #[arg(long, default_value_t = 64)]
    pub proof_connections: usize,
    /// Decode and verify every n-th proof of each connection (1: every one).
    #[arg(long, default_value_t = 16)]
    pub verify_every: u64,
    /// Receipts verified for the raw verification baseline.
    #[arg(long, default_value_t = 200_000)]
    pub baseline_receipts: usize,
    /// How often the oracle's memory is read.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub rss_interval: Duration,
    /// How often progress is printed (stderr).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub progress_every: Duration,
    /// Longest wait for one answer.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Threads that sign the workload and run the baseline (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Items per second per signing key the oracle allows (its `per_key_items_per_sec`).
    #[arg(long, default_value_t = 2_000)]
    pub per_key_items_per_sec: u32,
    /// Whole tokens each buyer burns for credits.
    #[arg(long, default_value_t = 20_000)]
    pub tokens_per_buyer: u64,
    /// Key seed (default: random, so runs never collide).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Load an oracle that is already running at this URL instead of starting one (no epoch is
    /// closed then; proofs are asked of its latest closed epoch, if any).
    #[arg(long)]
    pub oracle: Option<String>,
    /// With --oracle: the deployment's config account (base58), to sign for.
    #[arg(long)]
    pub config: Option<String>,
    /// With --oracle: the epoch the receipts are for, and when their sessions started.
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    #[arg(long)]
    pub started_at: Option<i64>,
    /// With --oracle: its process id, to follow its memory.
    #[arg(long)]
    pub oracle_pid: Option<u32>,
    /// The oracle binary (default: backhaul-oracle next to this one).
    #[arg(long)]
    pub oracle_bin: Option<PathBuf>,
    /// The endpoint binary (default: backhaul-localnet next to this one).
    #[arg(long)]
    pub localnet_bin: Option<PathBuf>,
    /// Where the endpoint's and the oracle's logs, settings and database go (default: a
    /// temporary directory, removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
}

impl Machine {
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_gib,
        }
    }
}

/// How the simulated network was set up.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    pub shape: Shape,
    pub buyers: usize,
    pub requests: usize,
    pub signing_secs: f64,
    pub bindings_accepted: usize,
    pub grants_accepted: usize,
}

/// The epoch close between the phases.
#[derive(Clone, Debug, Serialize)]
pub struct CloseReport {
    pub epoch: u64,
    /// From the seal transaction to the oracle listing the closed epoch.
    pub secs: f64,
    pub operators: u64,
    pub reward_root: String,
}

/// The machine's load average (`/proc/loadavg`, 1 minute) when a phase started and ended: other
/// work on the machine takes cores from both the oracle and the baseline.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadAverage {
    pub phase: String,
    pub at_start: f64,
    pub at_end: f64,
}

pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Every figure of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Unix seconds at the start.
    pub started_at: u64,
    pub machine: Machine,
    pub oracle_url: String,
    pub workload: WorkloadReport,
    /// Raw verification of the same signatures, measured before the ingest phase and again
    /// right after it (the machine's other load may change in between).
    pub baseline: Option<Baseline>,
    pub baseline_after: Option<Baseline>,
    pub ingest: Option<PhaseReport>,
    /// Receipts answered per second end to end over raw verification of the same signatures
    /// (the faster of the two baselines, so the ratio is not flattered).
    pub ingest_vs_baseline: Option<f64>,
    pub load_average: Vec<LoadAverage>,
    pub close: Option<CloseReport>,
    pub proofs: Option<PhaseReport>,
    pub rss: Option<RssReport>,
    pub notes: Vec<String>,
}

/// Things that stay alive for the run: child processes and the working directory.
struct Stage {
    children: Vec<Child>,
    _tmp: Option<tempfile::TempDir>,
}

pub async fn run(a: RunArgs) -> anyhow::Result<Report> {
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let machine = Machine::here();
    let threads = a.threads.unwrap_or(machine.cores).max(1);
    let ingest_for = a.ingest_duration.unwrap_or(a.duration);
    let proofs_for = a.proof_duration.unwrap_or(a.duration);
    let seed = a.seed.unwrap_or_else(rand::random);
    let mut notes = Vec::new();

    let (tmp, dir) = match &a.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating the work directory {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("backhaul-load-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut stage = Stage {
        children: Vec::new(),
        _tmp: tmp,
    };

    // Who is who: in a run of our own, the mint's key fixes the deployment's address.
    let external = a.oracle.is_some();
    let mint = Keypair::new();
    let oracle_key = Keypair::new();
    let buyers: Vec<Keypair> = (0..a.buyers.max(1)).map(|_| Keypair::new()).collect();
    let buyer_keys: Vec<SigningKey> = buyers
        .iter()
        .map(|k| SigningKey::from_bytes(k.secret_bytes()))
        .collect();
    let config = match (&a.oracle, &a.config) {
        (Some(_), Some(c)) => Pubkey::from_str(c)
            .with_context(|| format!("--config {c:?} is not a base58 public key"))?,
        (Some(_), None) => anyhow::bail!(
            "with --oracle, pass --config (the deployment's config account the oracle serves)"
        ),
        (None, _) => backhaul_sdk::Deployment::new(mint.pubkey()).config,
    };
    let genesis = i64::try_from(started_at)? - 60;
    let deployment = backhaul_protocol::Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: config.to_bytes(),
    };
    let receipts = a.receipts.unwrap_or_else(|| match a.ingest_rate {
        Some(r) => (r * ingest_for.as_secs_f64() * 1.05).ceil() as usize,
        None => (40_000.0 * ingest_for.as_secs_f64()).ceil() as usize,
    });
    let shape = Shape {
        nodes: a.nodes,
        sessions_per_node: a.sessions_per_node,
        clients: a.clients,
        batch: a.batch,
        receipts,
        epoch: if external { a.epoch } else { 0 },
        started_at: a.started_at.unwrap_or(genesis),
        seed,
    };

    // 1. Sign everything before any process under test runs.
    tracing::info!(
        receipts,
        nodes = a.nodes,
        clients = a.clients,
        threads,
        "signing the workload"
    );
    let w: Arc<Workload> = {
        let shape = shape.clone();
        let buyer_keys = buyer_keys.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || {
                workload::prepare(&shape, deployment, &buyer_keys, threads)
            })
            .await??,
        )
    };
    tracing::info!(
        secs = format!("{:.1}", w.signing_secs),
        requests = w.bodies.len(),
        "signed"
    );

    // 2. The baseline, on an otherwise idle machine.
    let mut load_average = Vec::new();
    let sample = a.baseline_receipts;
    let measure_baseline = |w: Arc<Workload>| async move {
        let b =
            tokio::task::spawn_blocking(move || workload::baseline(&w, sample, threads)).await??;
        tracing::info!(
            one_thread = format!("{:.0}/s", b.one_thread_receipts_per_sec),
            all_threads = format!("{:.0}/s", b.receipts_per_sec),
            "raw strict batch verification"
        );
        anyhow::Ok(b)
    };
    let baseline = if ingest_for.is_zero() {
        None
    } else {
        let at_start = loadavg();
        let b = measure_baseline(w.clone()).await?;
        load_average.push(LoadAverage {
            phase: "baseline".into(),
            at_start,
            at_end: loadavg(),
        });
        Some(b)
    };

    // 3. The processes under load.
    let (url, chain, oracle_pid) = match &a.oracle {
        Some(url) => (url.trim_end_matches('/').to_string(), None, a.oracle_pid),
        None => {
            let localnet_bin = chain::binary(a.localnet_bin.as_deref(), "backhaul-localnet")?;
            let oracle_bin = chain::binary(a.oracle_bin.as_deref(), "backhaul-oracle")?;
            tracing::info!(dir = %dir.display(), "starting the endpoint");
            let (net, rpc_url, faucet) = chain::start_localnet(&localnet_bin, &dir, genesis + 60)?;
            stage.children.push(net);
            let chain = Chain::new(rpc_url.clone(), faucet)?;
            tracing::info!(%rpc_url, "initializing the deployment");
            let deployed = chain::deploy(
                &chain,
                &mint,
                &oracle_key,
                &buyers,
                genesis,
                a.tokens_per_buyer,
            )
            .await?;
            anyhow::ensure!(
                deployed.d.config == config,
                "the deployment's address moved"
            );
            let (oracle, url) = chain::start_oracle(
                &oracle_bin,
                &dir,
                &OracleSettings {
                    rpc_url,
                    config,
                    per_key_items_per_sec: a.per_key_items_per_sec,
                },
            )
            .await?;
            let pid = oracle.pid();
            tracing::info!(%url, pid, "oracle started");
            stage.children.push(oracle);
            (url, Some((chain, deployed)), Some(pid))
        }
    };
    let monitor = match oracle_pid {
        Some(pid) => Some(
            RssMonitor::start(pid, a.rss_interval)
                .with_context(|| format!("reading the memory of process {pid}"))?,
        ),
        None => {
            notes.push("no oracle process id: memory not followed (pass --oracle-pid)".into());
            None
        }
    };

    // 4. Bindings and grants, through the client library.
    let api = OracleClient::with_config(
        &url,
        ClientConfig {
            request_timeout: a.request_timeout,
            ..ClientConfig::default()
        },
    )?;
    let accepted = |r: &backhaul_protocol::api::BatchResponse| {
        r.results
            .iter()
            .filter(|x| matches!(x.status, ItemStatus::Accepted | ItemStatus::Duplicate))
            .count()
    };
    let bindings_accepted = accepted(
        &api.submit_bindings(&w.bindings)
            .await
            .map_err(|e| anyhow::anyhow!("submitting the bindings: {e}"))?,
    );
    let grants_accepted = accepted(
        &api.submit_grants(&w.grants)
            .await
            .map_err(|e| anyhow::anyhow!("submitting the grants: {e}"))?,
    );
    if bindings_accepted != w.bindings.len() || grants_accepted != w.grants.len() {
        notes.push(format!(
            "only {bindings_accepted} of {} bindings and {grants_accepted} of {} grants were accepted",
            w.bindings.len(),
            w.grants.len()
        ));
    }

    // 5. Ingest.
    let ingest = if ingest_for.is_zero() {
        None
    } else {
        let at_start = loadavg();
        let r = drive::ingest(
            IngestLoad {
                url: url.clone(),
                bodies: Arc::new(w.bodies.clone()),
                items: Arc::new(w.items.clone()),
                connections: a.ingest_connections,
                duration: ingest_for,
                rate: a.ingest_rate,
                timeout: a.request_timeout,
                progress_every: a.progress_every,
            },
            monitor.clone(),
        )
        .await?;
        load_average.push(LoadAverage {
            phase: "ingest".into(),
            at_start,
            at_end: loadavg(),
        });
        if r.exhausted {
            notes.push(format!(
                "the {} prepared receipts ran out after {:.1} s: pass a larger --receipts",
                w.receipts(),
                r.elapsed_secs
            ));
        }
        Some(r)
    };
    for c in &mut stage.children {
        c.check_running()?;
    }
    let baseline_after = match &ingest {
        Some(_) => {
            if let Some(m) = &monitor {
                m.set_phase("baseline");
            }
            Some(measure_baseline(w.clone()).await?)
        }
        None => None,
    };

    // 6. Close the epoch: warp past its end and grace, seal it; the oracle closes it.
    let close = match &chain {
        Some((chain, deployed)) if ingest.is_some() => {
            if let Some(m) = &monitor {
                m.set_phase("close");
            }
            let end = deployed.genesis + chain::EPOCH_SECS as i64;
            chain.warp_to(end + chain::GRACE_SECS as i64 + 1).await?;
            chain
                .send(
                    "seal_epoch",
                    &[backhaul_sdk::ix::seal_epoch(
                        &deployed.d,
                        &chain.faucet.pubkey(),
                        0,
                    )],
                    &chain.faucet,
                    &[],
                )
                .await?;
            let sealed = Instant::now();
            tracing::info!("epoch 0 sealed; waiting for the oracle to close it");
            let deadline = sealed + Duration::from_secs(1_800);
            let summary = loop {
                if let Ok(list) = api.epochs().await {
                    if let Some(s) = list.into_iter().find(|s| s.epoch == 0) {
                        break s;
                    }
                }
                for c in &mut stage.children {
                    c.check_running()?;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the oracle did not close epoch 0 within 30 minutes; see {}",
                    dir.join("oracle.log").display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let secs = sealed.elapsed().as_secs_f64();
            tracing::info!(
                secs = format!("{secs:.1}"),
                operators = summary.reward_leaf_count,
                "epoch 0 closed"
            );
            Some(CloseReport {
                epoch: 0,
                secs,
                operators: summary.reward_leaf_count,
                reward_root: summary.reward_root,
            })
        }
        _ => None,
    };

    // 7. Proofs of the latest closed epoch's operators.
    let proofs = if proofs_for.is_zero() {
        None
    } else {
        match proof_check(&api).await? {
            None => {
                notes.push("the oracle has no closed epoch with rewards: no proof phase".into());
                None
            }
            Some((check, keys)) => Some({
                let at_start = loadavg();
                let r = drive::proofs(
                    ProofLoad {
                        url: url.clone(),
                        check: Arc::new(check),
                        keys: Arc::new(keys),
                        connections: a.proof_connections,
                        duration: proofs_for,
                        timeout: a.request_timeout,
                        verify_every: a.verify_every,
                        progress_every: a.progress_every,
                    },
                    monitor.clone(),
                )
                .await?;
                load_average.push(LoadAverage {
                    phase: "proofs".into(),
                    at_start,
                    at_end: loadavg(),
                });
                r
            }),
        }
    };
    for c in &mut stage.children {
        c.check_running()?;
    }
    let rss = monitor.map(|m| m.finish());
    // The oracle first, then the endpoint it reads.
    while let Some(mut c) = stage.children.pop() {
        c.stop(Duration::from_secs(30));
    }

    // Against the faster of the two baselines, so the ratio is not flattered; with an offered
    // rate the phase measures latency at that rate, not the most the oracle can take.
    let best = baseline
        .iter()
        .chain(&baseline_after)
        .map(|b| b.receipts_per_sec)
        .fold(0.0, f64::max);
    let ingest_vs_baseline = match &ingest {
        Some(i) if best > 0.0 && a.ingest_rate.is_none() => Some(i.items_per_sec / best),
        _ => None,
    };
    if let (Some(rate), Some(_)) = (a.ingest_rate, &ingest) {
        notes.push(format!(
            "receipts were offered at {rate:.0}/s, so the ingest phase does not measure the most the oracle can take (no ratio to the baseline)"
        ));
    }
    if a.work_dir.is_some() {
        notes.push(format!("logs and data kept in {}", dir.display()));
    }
    Ok(Report {
        started_at,
        machine,
        oracle_url: url,
        workload: WorkloadReport {
            requests: w.bodies.len(),
            signing_secs: w.signing_secs,
            shape,
            buyers: a.buyers.max(1),
            bindings_accepted,
            grants_accepted,
        },
        baseline,
        baseline_after,
        ingest,
        ingest_vs_baseline,
        load_average,
        close,
        proofs,
        rss,
        notes,
    })
}

/// The latest closed epoch's reward leaves: what every proof must show, and the keys to ask
/// for. `None` without a closed epoch or without leaves.
pub async fn proof_check(api: &OracleClient) -> anyhow::Result<Option<(ProofCheck, Vec<String>)>> {
    let epochs = api
        .epochs()
        .await
        .map_err(|e| anyhow::anyhow!("listing the oracle's epochs: {e}"))?;
    let Some(latest) = epochs.iter().map(|e| e.epoch).max() else {
        return Ok(None);
    };
    let bytes = api
        .dataset(latest)
        .await
        .map_err(|e| anyhow::anyhow!("fetching epoch {latest}'s dataset: {e}"))?;
    let dataset = Dataset::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("epoch {latest}'s dataset does not parse: {e}"))?;
    if dataset.rewards.leaves.is_empty() {
        return Ok(None);
    }
    let config = key_from_b58(&dataset.config).context("the dataset's config is not base58")?;
    let root =
        hash_from_hex(&dataset.rewards.root).context("the dataset's reward root is not hex")?;
    let keys: Vec<String> = dataset
        .rewards
        .leaves
        .iter()
        .map(|l| l.operator.clone())
        .collect();
    // Keys round-trip through base58 exactly as the server prints them.
    anyhow::ensure!(
        keys.iter()
            .all(|k| key_from_b58(k).is_some_and(|b| b58(&b) == *k)),
        "the dataset holds an operator key that is not canonical base58"
    );
    let cumulative = dataset
        .rewards
        .leaves
        .iter()
        .map(|l| (l.operator.clone(), l.cumulative))
        .collect();
    Ok(Some((
        ProofCheck {
            config,
            epoch: dataset.epoch,
            root,
            cumulative,
        },
        keys,
    )))
}
