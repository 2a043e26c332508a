//! The measurement core: a fixed number of connections send requests until a deadline, each
//! request's latency goes into a histogram, and every answer is checked.
//!
//! Each connection is its own HTTP client holding one keep-alive TCP connection, and sends its
//! next request as soon as the previous one is answered (a closed loop): latency is therefore
//! measured at the offered concurrency, not at a fixed arrival rate, unless the ingest phase is
//! given a rate, in which case requests are released on schedule and a late one counts its
//! delay from when it was due.

use crate::monitor::RssMonitor;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{verify_leaf, Commitment, Leaf, Scope, SumNode};
use backhaul_protocol::api::{BatchResponse, ItemStatus, ProofResponse};
use backhaul_protocol::dataset::{hash_from_hex, key_from_b58};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Latency percentiles of the successful requests, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        if h.is_empty() {
            return Self::default();
        }
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Throughput over one progress interval.
#[derive(Clone, Debug, Serialize)]
pub struct Tick {
    pub t_secs: f64,
    pub requests_per_sec: f64,
    pub items_per_sec: f64,
    pub errors: u64,
}

/// The figures of one phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub connections: usize,
    /// How long requests were started for.
    pub planned_secs: f64,
    /// From the first request to the last answer.
    pub elapsed_secs: f64,
    /// Requests answered with a success status and a well-formed body.
    pub requests: u64,
    /// Items in those requests (receipts, or proofs).
    pub items: u64,
    pub requests_per_sec: f64,
    pub items_per_sec: f64,
    pub latency: LatencySummary,
    /// What the items' answers said (`accepted`, `superseded`, `rejected:<reason>`, ...), or
    /// for proofs `served` and `verified`.
    pub outcomes: BTreeMap<String, u64>,
    /// Failed requests by kind (`http_503`, `connect`, `timeout`, `body`, `decode`,
    /// `result_count`, `proof_mismatch`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The prepared work ran out before the deadline.
    pub exhausted: bool,
    /// CPU seconds (user + system) the oracle process and this process used during the phase,
    /// and the oracle's CPU microseconds per item: a figure that other load on the machine
    /// changes much less than throughput.
    pub oracle_cpu_secs: Option<f64>,
    pub generator_cpu_secs: Option<f64>,
    pub oracle_cpu_us_per_item: Option<f64>,
    pub timeline: Vec<Tick>,
}

impl PhaseReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What one connection saw.
struct Tally {
    hist: Histogram<u64>,
    requests: u64,
    items: u64,
    outcomes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            // 1 µs to 10 minutes, 3 significant figures.
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
                Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures"))
            }),
            requests: 0,
            items: 0,
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    fn error(&mut self, live: &Live, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
        live.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn ok(&mut self, live: &Live, since: Instant, items: u64) {
        let us = since.elapsed().as_micros().clamp(1, 600_000_000) as u64;
        let _ = self.hist.record(us);
        self.requests += 1;
        self.items += items;
        live.requests.fetch_add(1, Ordering::Relaxed);
        live.items.fetch_add(items, Ordering::Relaxed);
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.hist.add(&other.hist);
        self.requests += other.requests;
        self.items += other.items;
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// Counters the progress reporter reads while the phase runs.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    items: AtomicU64,
    errors: AtomicU64,
}

fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(timeout)
        .build()?)
}

fn send_error(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// Logs progress every `every` and records the timeline, until `done` is set.
async fn progress(
    phase: String,
    live: Arc<Live>,
    mut done: tokio::sync::watch::Receiver<bool>,
    every: Duration,
    monitor: Option<Arc<RssMonitor>>,
    unit: &'static str,
) -> Vec<Tick> {
    let started = Instant::now();
    let mut last = (started, 0u64, 0u64);
    let mut ticks = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.wait_for(|d| *d) => return ticks,
        }
        let now = Instant::now();
        let (requests, items) = (
            live.requests.load(Ordering::Relaxed),
            live.items.load(Ordering::Relaxed),
        );
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
        let tick = Tick {
            t_secs: now.duration_since(started).as_secs_f64(),
            requests_per_sec: (requests - last.1) as f64 / dt,
            items_per_sec: (items - last.2) as f64 / dt,
            errors: live.errors.load(Ordering::Relaxed),
        };
        let rss = monitor
            .as_ref()
            .and_then(|m| m.last_kib())
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "-".into());
        tracing::info!(
            "[{phase} {:>5.0}s] {items} {unit} ({:.0}/s), {requests} requests ({:.0}/s), {} errors, oracle RSS {rss}",
            tick.t_secs,
            tick.items_per_sec,
            tick.requests_per_sec,
            tick.errors
        );
        ticks.push(tick);
        last = (now, requests, items);
    }
}

/// Runs `connections` workers to completion and assembles the report.
#[allow(clippy::too_many_arguments)]
async fn run_phase<F, Fut>(
    phase: &str,
    connections: usize,
    duration: Duration,
    progress_every: Duration,
    monitor: Option<Arc<RssMonitor>>,
    unit: &'static str,
    exhausted: Arc<AtomicBool>,
    worker: F,
) -> anyhow::Result<PhaseReport>
where
    F: Fn(usize, Arc<Live>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Tally>> + Send + 'static,
{
    if let Some(m) = &monitor {
        m.set_phase(phase);
    }
    let oracle_pid = monitor.as_ref().map(|m| m.pid());
    let live = Arc::new(Live::default());
    let (done, done_rx) = tokio::sync::watch::channel(false);
    let reporter = tokio::spawn(progress(
        phase.to_string(),
        live.clone(),
        done_rx,
        progress_every,
        monitor,
        unit,
    ));
    let cpu = |pid: Option<u32>| pid.and_then(|p| crate::monitor::cpu_secs(p).ok());
    let me = Some(std::process::id());
    let cpu_at_start = (cpu(oracle_pid), cpu(me));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|c| tokio::spawn(worker(c, live.clone())))
        .collect();
    let mut total = Tally::new();
    for t in tasks {
        total.merge(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let oracle_cpu_secs = used(cpu_at_start.0, cpu(oracle_pid));
    let generator_cpu_secs = used(cpu_at_start.1, cpu(me));
    let _ = done.send(true);
    let timeline = reporter.await.unwrap_or_default();
    Ok(PhaseReport {
        phase: phase.to_string(),
        connections: connections.max(1),
        planned_secs: duration.as_secs_f64(),
        elapsed_secs: elapsed,
        requests: total.requests,
        items: total.items,
        requests_per_sec: total.requests as f64 / elapsed,
        items_per_sec: total.items as f64 / elapsed,
        latency: LatencySummary::of(&total.hist),
        outcomes: total.outcomes,
        errors: total.errors,
        exhausted: exhausted.load(Ordering::Relaxed),
        oracle_cpu_secs,
        generator_cpu_secs,
        oracle_cpu_us_per_item: oracle_cpu_secs
            .filter(|_| total.items > 0)
            .map(|c| c * 1e6 / total.items as f64),
        timeline,
    })
}

/// The ingest phase: prepared `Vec<SignedReceipt>` bodies posted to `/v1/receipts`.
#[derive(Clone)]
pub struct IngestLoad {
    /// The oracle's base URL, without a trailing slash.
    pub url: String,
    pub bodies: Arc<Vec<Bytes>>,
    /// Receipts in each body.
    pub items: Arc<Vec<usize>>,
    pub connections: usize,
    pub duration: Duration,
    /// Receipts per second to offer; `None`: as fast as answers come back.
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub progress_every: Duration,
}

pub async fn ingest(
    load: IngestLoad,
    monitor: Option<Arc<RssMonitor>>,
) -> anyhow::Result<PhaseReport> {
    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    // When each body is due at the offered rate: receipts before it / rate.
    let offsets: Arc<Vec<f64>> = Arc::new(
        load.items
            .iter()
            .scan(0usize, |acc, n| {
                let at = *acc;
                *acc += n;
                Some(at as f64)
            })
            .collect(),
    );
    let url = format!("{}/v1/receipts", load.url);
    let started = Instant::now();
    let deadline = started + load.duration;
    let ex = exhausted.clone();
    let phase_load = load.clone();
    run_phase(
        "ingest",
        load.connections,
        load.duration,
        load.progress_every,
        monitor,
        "receipts",
        exhausted,
        move |_, live| {
            let (load, next, exhausted, offsets, url) = (
                phase_load.clone(),
                next.clone(),
                ex.clone(),
                offsets.clone(),
                url.clone(),
            );
            async move {
                let http = client(load.timeout)?;
                let mut tally = Tally::new();
                loop {
                    let mut sent_at = Instant::now();
                    if sent_at >= deadline {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = load.bodies.get(i) else {
                        exhausted.store(true, Ordering::Relaxed);
                        break;
                    };
                    if let Some(rate) = load.rate {
                        let due = started + Duration::from_secs_f64(offsets[i] / rate.max(1e-9));
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due).await;
                        // A late request's latency counts from when it was due.
                        sent_at = due;
                    }
                    let expected = load.items[i];
                    let resp = match http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => {
                            tally.error(&live, send_error(&e));
                            continue;
                        }
                    };
                    let status = resp.status();
                    let bytes = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            tally.error(&live, send_error(&e));
                            continue;
                        }
                    };
                    if !status.is_success() {
                        tally.error(&live, format!("http_{}", status.as_u16()));
                        continue;
                    }
                    let Ok(answer) = serde_json::from_slice::<BatchResponse>(&bytes) else {
                        tally.error(&live, "decode");
                        continue;
                    };
                    if answer.results.len() != expected {
                        tally.error(&live, "result_count");
                        continue;
                    }
                    for r in &answer.results {
                        let name = match (r.status, r.reason) {
                            (ItemStatus::Rejected, Some(reason)) => {
                                format!("rejected:{}", reason.as_str())
                            }
                            (s, _) => serde_json::to_value(s)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_else(|| format!("{s:?}")),
                        };
                        *tally.outcomes.entry(name).or_default() += 1;
                    }
                    tally.ok(&live, sent_at, expected as u64);
                }
                Ok(tally)
            }
        },
    )
    .await
}

/// What a served proof must show: the epoch's reward root and each operator's cumulative.
#[derive(Clone, Debug)]
pub struct ProofCheck {
    pub config: [u8; 32],
    pub epoch: u64,
    pub root: [u8; 32],
    /// base58 operator → cumulative reward.
    pub cumulative: HashMap<String, u64>,
}

impl ProofCheck {
    /// Whether `p` is a valid proof of `account`'s leaf under the expected root.
    pub fn holds(&self, account: &str, p: &ProofResponse) -> bool {
        let Some(expected) = self.cumulative.get(account) else {
            return false;
        };
        let (Some(key), Some(root)) = (key_from_b58(&p.account), hash_from_hex(&p.root)) else {
            return false;
        };
        let Some(siblings) = p
            .proof
            .iter()
            .map(|s| hash_from_hex(&s.hash).map(|hash| SumNode { hash, sum: s.sum }))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        let scope = Scope {
            kind: TreeKind::Reward,
            config: self.config,
            epoch: self.epoch,
        };
        // The root commits to the total and leaf count, so the served ones are checked by it.
        let commitment = Commitment {
            root,
            total: p.total,
            leaf_count: p.leaf_count,
        };
        let leaf = Leaf {
            account: key,
            amount: p.cumulative,
        };
        p.account == account
            && p.epoch == self.epoch
            && p.cumulative == *expected
            && root == self.root
            && verify_leaf(&scope, &commitment, &leaf, p.index, &siblings)
    }
}

/// The proof phase: `GET /v1/proofs/operator/{key}` over `keys`, round robin.
#[derive(Clone)]
pub struct ProofLoad {
    pub url: String,
    pub check: Arc<ProofCheck>,
    /// base58 operator keys to ask for.
    pub keys: Arc<Vec<String>>,
    pub connections: usize,
    pub duration: Duration,
    pub timeout: Duration,
    /// Every n-th answer of each connection is decoded and its Merkle proof verified (1:
    /// all); the others are checked for status 200 and a non-empty body.
    pub verify_every: u64,
    pub progress_every: Duration,
}

pub async fn proofs(
    load: ProofLoad,
    monitor: Option<Arc<RssMonitor>>,
) -> anyhow::Result<PhaseReport> {
    anyhow::ensure!(!load.keys.is_empty(), "no operator keys to ask proofs for");
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + load.duration;
    let phase_load = load.clone();
    run_phase(
        "proofs",
        load.connections,
        load.duration,
        load.progress_every,
        monitor,
        "proofs",
        Arc::new(AtomicBool::new(false)),
        move |c, live| {
            let (load, next) = (phase_load.clone(), next.clone());
            async move {
                let http = client(load.timeout)?;
                let mut tally = Tally::new();
                let mut n: u64 = c as u64;
                let urls: Vec<String> = load
                    .keys
                    .iter()
                    .map(|k| format!("{}/v1/proofs/operator/{k}", load.url))
                    .collect();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) % urls.len();
                    let sent_at = Instant::now();
                    let resp = match http.get(&urls[i]).send().await {
                        Ok(r) => r,
                        Err(e) => {
                            tally.error(&live, send_error(&e));
                            continue;
                        }
                    };
                    let status = resp.status();
                    let bytes = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            tally.error(&live, send_error(&e));
                            continue;
                        }
                    };
                    if !status.is_success() {
                        tally.error(&live, format!("http_{}", status.as_u16()));
                        continue;
                    }
                    if bytes.is_empty() {
                        tally.error(&live, "body");
                        continue;
                    }
                    n += 1;
                    if n.is_multiple_of(load.verify_every.max(1)) {
                        let good = serde_json::from_slice::<ProofResponse>(&bytes)
                            .is_ok_and(|p| load.check.holds(&load.keys[i], &p));
                        if !good {
                            tally.error(&live, "proof_mismatch");
                            continue;
                        }
                        *tally.outcomes.entry("verified".into()).or_default() += 1;
                    }
                    *tally.outcomes.entry("served".into()).or_default() += 1;
                    tally.ok(&live, sent_at, 1);
                }
                Ok(tally)
            }
        },
    )
    .await
}
