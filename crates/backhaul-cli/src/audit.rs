//! `backhaul audit`: fetches every account of the deployment and every epoch's published dataset
//! ([`fetch`]: the cluster's RPC and the oracles' HTTP, or a folder), runs the checks of the
//! `backhaul-audit` crate over them, and prints the report.

pub mod fetch;

use crate::context::{Context, OutputFormat};
use anyhow::bail;
pub use backhaul_audit::{AuditReport, Check, EpochFigures};
use clap::Args;
use fetch::DatasetSource;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug, Clone, Default)]
pub struct AuditArgs {
    /// Read each epoch's dataset from this folder (`epoch-<n>.json`, as the oracles write them)
    /// instead of from the oracles given with --oracle.
    #[arg(long, value_name = "DIR")]
    pub datasets: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also rebuild every dataset from its agreed input (the signed receipts, grants and
    /// bindings it was closed over, `epoch-<n>.input` beside the datasets or
    /// `/v1/epochs/<n>/input`) and compare the bytes.
    #[arg(long)]
    pub recompute: bool,
}

/// A progress bar on stderr (drawn only on a terminal).
fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Where the datasets come from: the folder `datasets` names, or else the context's oracles.
pub fn dataset_source(ctx: &Context, datasets: Option<PathBuf>) -> anyhow::Result<DatasetSource> {
    Ok(match datasets {
        Some(dir) => {
            if !dir.is_dir() {
                bail!(
                    "--datasets {}: no such folder (it should hold epoch-<n>.json files)",
                    dir.display()
                );
            }
            DatasetSource::Folder(dir)
        }
        None if !ctx.oracles.is_empty() => DatasetSource::Oracles(ctx.oracle_readers()?),
        None => bail!(
            "the epochs' datasets are needed: pass --oracle <URL> (an oracle serving \
             /v1/epochs/<n>/dataset) or --datasets <DIR> (a folder of epoch-<n>.json files)"
        ),
    })
}

/// The epochs whose proposal stands (proposed or finalized) and the dataset hash each committed.
pub fn committed_datasets(snapshot: &backhaul_audit::Snapshot) -> Vec<(u64, [u8; 32])> {
    snapshot
        .records
        .iter()
        .filter(|(_, r)| {
            matches!(
                r.status,
                backhaul_sdk::state::EpochStatus::Proposed
                    | backhaul_sdk::state::EpochStatus::Finalized
            )
        })
        .map(|(_, r)| (r.epoch, r.proposal.dataset_hash))
        .collect()
}

/// Fetches the deployment's accounts and its datasets (from `datasets`, or else from the
/// context's oracles), and audits them.
pub async fn audit(
    ctx: &Context,
    datasets: Option<PathBuf>,
    recompute: bool,
) -> anyhow::Result<AuditReport> {
    let source = dataset_source(ctx, datasets)?;
    let snapshot = fetch::snapshot(ctx).await?;
    let wanted = committed_datasets(&snapshot);
    let bar = progress(wanted.len() as u64, "fetching datasets");
    let fetched = fetch::datasets(&source, &wanted, |_| bar.inc(1)).await;
    bar.finish_and_clear();
    let spinner = progress(1, "checking");
    let mut report = backhaul_audit::audit(&snapshot, &fetched);
    spinner.finish_and_clear();
    if recompute {
        let epochs: Vec<u64> = fetched.keys().copied().collect();
        let bar = progress(epochs.len() as u64, "fetching agreed inputs");
        let inputs = fetch::inputs(&source, &epochs).await;
        bar.finish_and_clear();
        let spinner = progress(1, "recomputing datasets");
        report.add(backhaul_audit::recompute(&snapshot, &fetched, &inputs));
        spinner.finish_and_clear();
    }
    tracing::info!(
        passed = report.passed,
        checks = report.checks.len(),
        failed = report.failed.len(),
        "audit done"
    );
    Ok(report)
}

/// Prints the report for people: a table of checks, then the epochs' figures.
pub fn print_report(report: &AuditReport) {
    println!(
        "Audit of config {} (mint {}, program {})",
        report.config, report.mint, report.program_id
    );
    println!();
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(10);
    println!("{:<6} {:<width$}  evidence", "result", "check");
    for c in &report.checks {
        println!(
            "{:<6} {:<width$}  {}",
            if c.passed { "pass" } else { "FAIL" },
            c.id,
            c.evidence
        );
    }
    println!();
    println!(
        "{:>5} {:>10} {:>16} {:>16} {:>16} {:>16} {:>9}",
        "epoch", "status", "burned", "credits used", "their cost", "minted", "operators"
    );
    for e in &report.epochs {
        println!(
            "{:>5} {:>10} {:>16} {:>16} {:>16} {:>16} {:>9}",
            e.epoch,
            e.status,
            e.tokens_burned,
            e.credits_consumed,
            e.usage_cost,
            e.tokens_minted,
            e.operators_rewarded
        );
    }
    println!();
    if report.passed {
        println!(
            "audit passed: {} checks over {} finalized epochs",
            report.checks.len(),
            report.finalized_epochs
        );
    } else {
        println!(
            "audit FAILED: {} of {} checks failed: {}",
            report.failed.len(),
            report.checks.len(),
            report.failed.join(", ")
        );
    }
}

pub async fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let report = audit(ctx, args.datasets, args.recompute).await?;
    if let Some(path) = &args.report {
        fetch::write_report(path, &report)?;
    }
    crate::output::emit(ctx.output, &report, print_report);
    if ctx.output == OutputFormat::Display && !report.passed {
        eprintln!("the chain and the published datasets disagree: see the failed checks above");
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
