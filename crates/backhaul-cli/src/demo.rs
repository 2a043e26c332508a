//! `backhaul demo`: the network's main job on this machine, with no setup.
//!
//! It starts the local endpoint and three oracles (threshold two, embedded SQLite in a temporary
//! folder), creates a deployment, runs the guardian's `guardian watch` beside them (live, with
//! the guardian's key: each proposal is checked against its dataset during its challenge
//! period, and would be refuted or vetoed), and for several epochs has firms buy credits, their
//! clients exchange signed receipts with a few dozen nodes over HTTP, the oracles close, vote
//! and finalize, operators claim and firms settle; then it audits everything and reports.
//! Rewards come only from what the firms paid for the credits they consumed (at most k = 0.9
//! times it), so firms buy credits before their traffic every epoch. Every step goes through the
//! command functions a user runs, each actor with its own [`Context`].

pub mod network;
pub mod real;
mod stdout;
pub mod traffic;

use crate::audit::{AuditReport, EpochFigures};
use crate::context::{Context, GlobalArgs, OutputFormat};
use crate::guardian::watch::Action;
use crate::output::emit;
use anyhow::Context as _;
use backhaul_sdk::state::Config;
use clap::Args;
pub use network::{DemoOptions, EpochRun, Network};
use serde::Serialize;
use solana_sdk::program_pack::Pack;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Epochs to run.
    #[arg(long, default_value_t = 3)]
    pub epochs: u64,
    /// Nodes to simulate (three per operator).
    #[arg(long, default_value_t = 36)]
    pub nodes: usize,
    /// AI firms, each with three clients.
    #[arg(long, default_value_t = 3)]
    pub firms: usize,
    /// Seed of the simulation: the same seed gives the same keys, traffic and datasets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the data folder (oracles' databases and datasets, keys, report.json) here instead
    /// of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Carry real bytes (the default): the first node runs as `node serve` does and the first
    /// client as `firm gateway`, over loopback, and each epoch a 4 MiB fetch from a local origin
    /// goes through them; its receipts are counted and paid with the simulated traffic of the
    /// other nodes, and the report compares what that node metered with what its epoch counted.
    /// Session ids and ages then depend on the run.
    #[arg(long, hide = true, conflicts_with = "simulated_only")]
    pub real_traffic: bool,
    /// Only simulated receipts, no real bytes: the same seed then gives the same datasets byte
    /// for byte.
    #[arg(long)]
    pub simulated_only: bool,
    /// Serve `backhaul dashboard` over the demo's network while it runs (at ADDR, by default
    /// 127.0.0.1:8090), and keep the network and the page up after the last epoch until Ctrl-C.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8090")]
    pub dashboard: Option<std::net::SocketAddr>,
}

/// One epoch as the demo reports it.
#[derive(Clone, Debug, Serialize)]
pub struct DemoEpoch {
    pub epoch: u64,
    pub status: String,
    pub sessions: usize,
    pub receipts: usize,
    pub bytes_signed: u64,
    pub bytes_counted: u64,
    /// Tokens burned for credits in the epoch and the credits issued.
    pub tokens_burned: u64,
    pub credits_issued: u64,
    /// Credits consumed (the usage tree's increase) and settled against the epoch.
    pub credits_consumed: u64,
    /// What the firms paid for the credits consumed (tokens, base units): the epoch mints at most
    /// k = 0.9 times it.
    pub usage_cost: u64,
    pub credits_settled: u64,
    pub credits_unpaid: u64,
    /// Tokens minted as the epoch's rewards, and its budget.
    pub tokens_minted: u64,
    pub budget: u64,
    pub operators_rewarded: u64,
    /// Claims made after the epoch was finalized, and what they paid.
    pub claims: usize,
    pub claimed: u64,
    /// The largest rewards: (operator, tokens in base units).
    pub top_earners: Vec<(String, u64)>,
    /// Wall seconds from the epoch's end to its finalization.
    pub close_to_finalize_secs: f64,
    /// The real fetch through a gateway and a node (`--real-traffic`), also counted in
    /// `sessions`, `receipts` and `bytes_signed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real: Option<real::RealRun>,
}

/// The deployment's totals at the end.
#[derive(Clone, Debug, Serialize)]
pub struct DemoTotals {
    pub initial_supply: u64,
    pub supply: u64,
    pub minted: u64,
    pub claimed: u64,
    pub vault: u64,
    pub burned: u64,
    pub credits_issued: u64,
    pub credits_settled: u64,
    pub credits_unpaid: u64,
}

/// The audit's outcome, short.
#[derive(Clone, Debug, Serialize)]
pub struct DemoAudit {
    pub passed: bool,
    pub checks: usize,
    pub failed: Vec<String>,
}

/// What the guardian's watcher checked: one line per proposal.
#[derive(Clone, Debug, Serialize)]
pub struct DemoGuardianCheck {
    pub epoch: u64,
    pub round: u32,
    /// `passed`, or what it sent (`proved`, `vetoed`).
    pub action: Action,
    /// The audit's checks of the epoch it ran, and those that failed.
    pub checks: usize,
    pub failed: Vec<String>,
    /// A fraud proof's kind, if one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraud: Option<String>,
}

/// The guardian's watcher (`guardian watch`, live, with the guardian's key).
#[derive(Clone, Debug, Serialize)]
pub struct DemoGuardian {
    pub key: String,
    pub checked: Vec<DemoGuardianCheck>,
    pub proofs_sent: usize,
    pub vetoes_sent: usize,
}

impl DemoGuardian {
    /// Every proposal it checked passed.
    pub fn all_passed(&self) -> bool {
        self.checked.iter().all(|c| c.action == Action::Passed)
    }
}

/// What `backhaul demo` prints.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub seed: u64,
    pub nodes: usize,
    pub operators: usize,
    pub firms: usize,
    pub clients: usize,
    pub oracles: usize,
    pub threshold: u8,
    pub config: String,
    pub mint: String,
    pub decimals: u8,
    pub epochs: Vec<DemoEpoch>,
    pub totals: DemoTotals,
    pub guardian: DemoGuardian,
    pub audit: DemoAudit,
    /// Where the data was kept (`--keep`), if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    pub elapsed_secs: f64,
}

impl DemoReport {
    /// Every epoch finalized, minted = claimed + vault (nobody else sends tokens to the demo's
    /// vault), the guardian found nothing wrong, and the audit passed.
    pub fn succeeded(&self) -> bool {
        self.epochs.iter().all(|e| e.status == "finalized")
            && self
                .epochs
                .iter()
                .filter_map(|e| e.real.as_ref())
                .all(|r| r.counted == r.bytes)
            && self.totals.minted.checked_sub(self.totals.claimed) == Some(self.totals.vault)
            && self.guardian.all_passed()
            && self.audit.passed
    }
}

/// Runs the demo and returns its report (the network is stopped before returning).
pub async fn run_demo(opts: &DemoOptions) -> anyhow::Result<DemoReport> {
    run_demo_with(opts, false).await
}

/// [`run_demo`], with real traffic through a node and a gateway when `real_traffic` is set.
pub async fn run_demo_with(opts: &DemoOptions, real_traffic: bool) -> anyhow::Result<DemoReport> {
    run_demo_serving(opts, real_traffic, None, &|_| {}).await
}

/// [`run_demo_with`], serving the dashboard on `dashboard` while the network runs; then, when the
/// demo succeeded, `on_report` is called and the network and the page stay up until Ctrl-C.
pub async fn run_demo_serving(
    opts: &DemoOptions,
    real_traffic: bool,
    dashboard: Option<std::net::SocketAddr>,
    on_report: &(dyn Fn(&DemoReport) + Sync),
) -> anyhow::Result<DemoReport> {
    let mut net = Network::start(opts).await?;
    if real_traffic {
        if let Err(e) = net.carry_real_traffic().await {
            net.stop().await;
            return Err(e);
        }
    }
    let page = match dashboard {
        None => None,
        Some(addr) => {
            let started = async {
                crate::dashboard::start(
                    Context::new(&net.global)?,
                    None,
                    addr,
                    std::time::Duration::from_secs(2),
                )
                .await
            }
            .await;
            match started {
                Ok(bound) => {
                    net.progress
                        .step(format!("the dashboard is on http://{bound}/"));
                    Some(bound)
                }
                Err(e) => {
                    net.stop().await;
                    return Err(e);
                }
            }
        }
    };
    let result = drive(&mut net, opts).await;
    if let (Ok(report), Some(dir)) = (&result, &opts.keep) {
        let path = dir.join("report.json");
        crate::audit::fetch::write_report(&path, report)?;
    }
    if let (Ok(report), Some(bound)) = (&result, page) {
        on_report(report);
        let g = &net.global;
        eprintln!(
            "\nThe network stays up for the dashboard at http://{bound}/ until Ctrl-C.\n\
             Other commands reach it with: --url {} --mint {} --oracle {}",
            g.url,
            g.mint.as_deref().unwrap_or("?"),
            g.oracles.join(",")
        );
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::debug!(error = %e, "cannot wait for Ctrl-C; stopping now");
        }
    }
    net.progress.step("stopping the oracles and the endpoint");
    net.stop().await;
    result
}

async fn drive(net: &mut Network, opts: &DemoOptions) -> anyhow::Result<DemoReport> {
    let mut runs = vec![];
    for e in 0..opts.epochs {
        runs.push(net.run_epoch(e).await?);
    }
    net.progress
        .step("auditing the chain against the published datasets");
    let auditor = Context::new(&net.global)?;
    let audit = crate::audit::audit(&auditor, None, true).await?;
    net.progress.step(if audit.passed {
        format!("audit passed: {} checks", audit.checks.len())
    } else {
        format!("audit FAILED: {}", audit.failed.join(", "))
    });
    let totals = totals(net).await?;
    Ok(report(net, opts, &runs, &audit, totals))
}

async fn totals(net: &Network) -> anyhow::Result<DemoTotals> {
    let d = net.deployment;
    let c: Config = net
        .admin
        .account(&d.config)
        .await?
        .context("the config account is gone")?;
    let vault = crate::firm::token_balance(&net.admin, &d.vault()).await?;
    let mint = net
        .admin
        .raw_account(&d.mint)
        .await?
        .context("the mint is gone")?;
    let supply = spl_token_interface::state::Mint::unpack(&mint.data)
        .map_err(|e| anyhow::anyhow!("the mint does not decode: {e}"))?
        .supply;
    Ok(DemoTotals {
        initial_supply: c.initial_supply,
        supply,
        minted: c.total_minted,
        claimed: c.total_claimed,
        vault,
        burned: c.total_burned,
        credits_issued: c.credits_issued,
        credits_settled: c.credits_settled,
        credits_unpaid: c.credits_unpaid,
    })
}

fn report(
    net: &Network,
    opts: &DemoOptions,
    runs: &[EpochRun],
    audit: &AuditReport,
    totals: DemoTotals,
) -> DemoReport {
    let figures = |e: u64| -> Option<&EpochFigures> { audit.epochs.iter().find(|f| f.epoch == e) };
    let epochs = runs
        .iter()
        .map(|r| {
            let f = figures(r.epoch);
            DemoEpoch {
                epoch: r.epoch,
                status: f.map_or("unknown".into(), |f| f.status.clone()),
                sessions: r.sessions,
                receipts: r.receipts,
                bytes_signed: r.bytes_signed,
                bytes_counted: f.map_or(0, |f| f.bytes_counted),
                tokens_burned: f.map_or(0, |f| f.tokens_burned),
                credits_issued: f.map_or(0, |f| f.credits_issued),
                credits_consumed: f.map_or(0, |f| f.credits_consumed),
                usage_cost: f.map_or(0, |f| f.usage_cost),
                credits_settled: f.map_or(0, |f| f.credits_settled),
                credits_unpaid: f.map_or(0, |f| f.credits_unpaid),
                tokens_minted: f.map_or(0, |f| f.tokens_minted),
                budget: f.map_or(0, |f| f.budget),
                operators_rewarded: f.map_or(0, |f| f.operators_rewarded),
                claims: r.claims,
                claimed: r.claimed,
                top_earners: f.map_or(vec![], |f| f.top_earners.iter().take(3).cloned().collect()),
                close_to_finalize_secs: r.close_to_finalize_secs,
                real: r.real.clone(),
            }
        })
        .collect();
    let outcomes = net.guardian.log.outcomes();
    let decided: Vec<_> = outcomes
        .iter()
        .filter(|o| o.action != Action::Waiting)
        .collect();
    let guardian = DemoGuardian {
        key: net.guardian.key.to_string(),
        checked: decided
            .iter()
            .map(|o| DemoGuardianCheck {
                epoch: o.epoch,
                round: o.round,
                action: o.action,
                checks: o.checks,
                failed: o.failed.clone(),
                fraud: o.fraud.clone(),
            })
            .collect(),
        proofs_sent: decided
            .iter()
            .filter(|o| o.action == Action::Proved)
            .count(),
        vetoes_sent: decided
            .iter()
            .filter(|o| o.action == Action::Vetoed)
            .count(),
    };
    DemoReport {
        seed: opts.seed,
        nodes: net.nodes.len(),
        operators: net.operators.len(),
        firms: net.firms.len(),
        clients: net.firms.iter().map(|f| f.clients.len()).sum(),
        oracles: net.urls.len(),
        threshold: 2,
        config: net.deployment.config.to_string(),
        mint: net.deployment.mint.to_string(),
        decimals: network::DECIMALS,
        epochs,
        totals,
        guardian,
        audit: DemoAudit {
            passed: audit.passed,
            checks: audit.checks.len(),
            failed: audit.failed.clone(),
        },
        data_dir: opts.keep.as_ref().map(|p| p.display().to_string()),
        elapsed_secs: net.progress.elapsed().as_secs_f64(),
    }
}

fn short(key: &str) -> String {
    if key.len() > 8 {
        format!("{}…", &key[..8])
    } else {
        key.to_string()
    }
}

/// Prints the report for people.
pub fn print_report(r: &DemoReport) {
    let tokens = |v: u64| crate::amount::format_tokens(v, r.decimals);
    println!(
        "Backhaul demo (seed {}): {} nodes of {} operators, {} firms with {} clients, {} oracles (threshold {})",
        r.seed, r.nodes, r.operators, r.firms, r.clients, r.oracles, r.threshold
    );
    println!("deployment: mint {}, config {}", r.mint, r.config);
    println!();
    println!(
        "{:>5}  {:<9}  {:>9}  {:>12}  {:>14}  {:>12}  {:>12}  {:>12}  top earners",
        "epoch", "status", "receipts", "burned", "credits used", "their cost", "minted", "claimed"
    );
    for e in &r.epochs {
        let top: Vec<String> = e
            .top_earners
            .iter()
            .map(|(k, v)| format!("{} {}", short(k), tokens(*v)))
            .collect();
        println!(
            "{:>5}  {:<9}  {:>9}  {:>12}  {:>14}  {:>12}  {:>12}  {:>12}  {}",
            e.epoch,
            e.status,
            e.receipts,
            tokens(e.tokens_burned),
            e.credits_consumed,
            tokens(e.usage_cost),
            tokens(e.tokens_minted),
            tokens(e.claimed),
            top.join(", ")
        );
    }
    println!(
        "(their cost: what the firms paid for the credits consumed; an epoch mints at most {}% of \
         it, only to the operators that served them)",
        network::USAGE_CAP_BPS / 100
    );
    for e in &r.epochs {
        if let Some(real) = &e.real {
            println!(
                "epoch {}: real traffic: {} bytes fetched through a gateway and node {} over \
                 loopback in {:.1} s; the node metered and countersigned {} bytes in {} \
                 receipts, and the epoch's dataset counts {} bytes for it{}",
                e.epoch,
                real.body_bytes,
                real.node,
                real.secs,
                real.bytes,
                real.receipts,
                real.counted,
                if real.counted == real.bytes {
                    " (equal)"
                } else {
                    " (THEY DIFFER)"
                }
            );
        }
    }
    let t = &r.totals;
    println!();
    println!(
        "minted {} = claimed {} + vault {}",
        tokens(t.minted),
        tokens(t.claimed),
        tokens(t.vault)
    );
    println!(
        "supply {} = initial {} + minted {} − burned {}",
        tokens(t.supply),
        tokens(t.initial_supply),
        tokens(t.minted),
        tokens(t.burned)
    );
    println!(
        "credits: issued {}, settled {}, unpaid {}",
        t.credits_issued, t.credits_settled, t.credits_unpaid
    );
    let g = &r.guardian;
    let checks: usize = g.checked.iter().map(|c| c.checks).sum();
    if g.all_passed() {
        println!(
            "guardian: checked {} proposals in their challenge periods ({checks} checks against \
             their datasets and the chain, and the fraud proofs: leaves out of order, a \
             cumulative amount that fell, usage beyond the credits bought): none fits, no veto",
            g.checked.len()
        );
    } else {
        for c in g.checked.iter().filter(|c| c.action != Action::Passed) {
            println!(
                "guardian: epoch {} round {}: {}{} (failed: {})",
                c.epoch,
                c.round,
                c.action,
                c.fraud
                    .as_deref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default(),
                c.failed.join(", ")
            );
        }
    }
    if r.audit.passed {
        println!("audit: passed ({} checks)", r.audit.checks);
    } else {
        println!(
            "audit: FAILED ({} of {} checks): {}",
            r.audit.failed.len(),
            r.audit.checks,
            r.audit.failed.join(", ")
        );
    }
    if let Some(dir) = &r.data_dir {
        println!("data kept in {dir}");
    }
    println!("finished in {:.1} s", r.elapsed_secs);
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let opts = DemoOptions {
        epochs: args.epochs,
        nodes: args.nodes,
        firms: args.firms,
        seed: args.seed,
        keep: args.keep,
        progress: true,
    };
    let quiet = std::sync::Mutex::new(Some(stdout::QuietStdout::new(global.verbose > 0)));
    let output = global.output;
    let printed = std::sync::atomic::AtomicBool::new(false);
    // With --dashboard the report is printed while the network stays up: stdout is restored
    // first (the network's own output no longer matters).
    let print = |r: &DemoReport| {
        if let Ok(mut q) = quiet.lock() {
            q.take();
        }
        emit(output, r, print_report);
        printed.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let report = run_demo_serving(&opts, !args.simulated_only, args.dashboard, &print).await;
    if let Ok(mut q) = quiet.lock() {
        q.take();
    }
    let report = report?;
    if !printed.load(std::sync::atomic::Ordering::Relaxed) {
        emit(global.output, &report, print_report);
    }
    if global.output == OutputFormat::Display && !report.succeeded() {
        eprintln!("the demo did not reconcile: see the audit above");
    }
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
