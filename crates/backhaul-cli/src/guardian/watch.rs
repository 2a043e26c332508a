//! `backhaul guardian watch` and `guardian prove EPOCH`: follow the chain, and for each proposal
//! in its challenge period fetch the dataset the chain committed, judge it (the audit's checks of
//! its epoch and the fraud evidence finder) and act: a fraud proof when one fits (anyone may send
//! it), otherwise a veto when the checks failed or the dataset could not be found by a margin
//! before the challenge period ends (a guardian's key only), otherwise nothing.
//!
//! Each (epoch, round, digest) is acted on at most once; errors (the cluster, an oracle, a
//! transaction) are logged, counted and retried at the next poll, a few times.

use super::judge::{judge, Judged};
use super::sources::Sources;
use super::{act, metrics as m};
use crate::context::Context;
use crate::output::format_ts;
use backhaul::constants::MAX_VETOES_PER_EPOCH;
use backhaul_audit::fraud::Decision;
use backhaul_protocol::dataset::hex;
use backhaul_sdk::state::{EpochRecord, EpochStatus};
use clap::Args;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a failing action is tried for one proposal before it is given up on.
const MAX_ATTEMPTS: u32 = 3;

/// Options of `guardian watch` and `guardian prove`.
#[derive(Args, Debug, Clone)]
pub struct JudgeArgs {
    /// Also look for datasets here: an http(s):// URL serving `epoch-<n>.json` (or an oracle's
    /// API), or a folder of dataset files; repeat for several. Only bytes hashing to the chain's
    /// dataset_hash are used.
    #[arg(long = "datasets-from", value_name = "URL|DIR")]
    pub datasets_from: Vec<String>,
    /// Veto a proposal whose dataset cannot be found this many seconds before its challenge
    /// period ends (data withholding); until then, keep looking.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub withhold_margin_secs: u64,
    /// Log what would be sent and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Default for JudgeArgs {
    fn default() -> Self {
        JudgeArgs {
            datasets_from: vec![],
            withhold_margin_secs: 600,
            dry_run: false,
        }
    }
}

/// `guardian watch`'s options.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// Seconds between two looks at the chain.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub poll_secs: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `guardian prove EPOCH`'s options.
#[derive(Args, Debug, Clone)]
pub struct ProveArgs {
    /// The epoch whose proposal to judge (the one being voted on: `backhaul guardian show`).
    pub epoch: u64,
    #[command(flatten)]
    pub judge: JudgeArgs,
}

/// What the watcher did about a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Its dataset is not found yet; still looking.
    Waiting,
    /// Every check passed and no fraud proof fits: nothing to do.
    Passed,
    /// A fraud proof landed.
    Proved,
    /// A veto landed.
    Vetoed,
    /// `--dry-run`: a fraud proof would have been sent.
    WouldProve,
    /// `--dry-run`: a veto would have been sent.
    WouldVeto,
    /// A veto was due, but the key is not a guardian's or the epoch's vetoes are used up.
    CannotVeto,
    /// Sending the fraud proof, or the veto, failed every attempt.
    FailedProof,
    FailedVeto,
}

impl Action {
    /// Its name, as JSON has it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Waiting => "waiting",
            Action::Passed => "passed",
            Action::Proved => "proved",
            Action::Vetoed => "vetoed",
            Action::WouldProve => "would-prove",
            Action::WouldVeto => "would-veto",
            Action::CannotVeto => "cannot-veto",
            Action::FailedProof => "failed-proof",
            Action::FailedVeto => "failed-veto",
        }
    }

    /// Whether something that had to be done could not be.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Action::CannotVeto | Action::FailedProof | Action::FailedVeto
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the watcher did about one proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub epoch: u64,
    pub round: u32,
    /// The proposal's digest, hex.
    pub digest: String,
    pub action: Action,
    /// The audit's checks of the epoch that ran, and those that failed.
    pub checks: usize,
    pub failed: Vec<String>,
    /// A fraud proof's kind (`disorder`, `decrease`, `overspend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraud: Option<String>,
    /// Why it acted (the evidence, or what failed), in words.
    pub reason: String,
    /// Where the dataset was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The outcomes so far, shared with whoever started the watcher (the demo waits on them).
#[derive(Clone, Debug, Default)]
pub struct WatchLog(Arc<Mutex<Vec<Outcome>>>);

impl WatchLog {
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The outcome for `epoch`'s round `round`, if it was decided.
    pub fn of(&self, epoch: u64, round: u32) -> Option<Outcome> {
        self.outcomes()
            .into_iter()
            .rev()
            .find(|o| o.epoch == epoch && o.round == round && o.action != Action::Waiting)
    }

    fn push(&self, o: Outcome) {
        if let Ok(mut v) = self.0.lock() {
            v.push(o);
        }
    }
}

type ProposalKey = (u64, u32, [u8; 32]);

/// One watcher: its sources, what it has acted on, and how often each action failed.
pub struct Watcher {
    ctx: Context,
    sources: Sources,
    args: JudgeArgs,
    log: WatchLog,
    seen: HashSet<ProposalKey>,
    done: HashSet<ProposalKey>,
    waiting: HashSet<ProposalKey>,
    failures: HashMap<ProposalKey, u32>,
}

impl Watcher {
    pub fn new(ctx: Context, args: JudgeArgs, log: WatchLog) -> anyhow::Result<Watcher> {
        let sources = Sources::new(&ctx, &args.datasets_from)?;
        Ok(Watcher {
            ctx,
            sources,
            args,
            log,
            seen: HashSet::new(),
            done: HashSet::new(),
            waiting: HashSet::new(),
            failures: HashMap::new(),
        })
    }

    /// Looks at the chain once and acts on the epoch being voted on, if it has a proposal in its
    /// challenge period. Returns the outcome when one was decided now.
    pub async fn tick(&mut self) -> anyhow::Result<Option<Outcome>> {
        let (d, c) = self.ctx.deployment_config().await?;
        self.look(&d, c.next_epoch).await
    }

    /// Judges and acts on `epoch`'s proposal if it is in its challenge period and was not acted
    /// on yet.
    pub async fn look(
        &mut self,
        d: &backhaul_sdk::Deployment,
        epoch: u64,
    ) -> anyhow::Result<Option<Outcome>> {
        let Some(record) = self
            .ctx
            .account::<EpochRecord>(&d.epoch_record(epoch))
            .await?
        else {
            return Ok(None);
        };
        if record.status != EpochStatus::Proposed {
            return Ok(None);
        }
        let now = self.ctx.chain_time().await?;
        let key = (epoch, record.round, record.proposal_digest);
        if now >= record.finalizable_at || self.done.contains(&key) {
            return Ok(None);
        }
        if self.seen.insert(key) {
            m::watched(epoch);
            tracing::info!(
                epoch,
                round = record.round,
                digest = %hex(&record.proposal_digest),
                finalizable_at = %format_ts(record.finalizable_at),
                "a proposal in its challenge period: checking it"
            );
        }
        let margin = i64::try_from(self.args.withhold_margin_secs).unwrap_or(i64::MAX);
        let deadline = record.finalizable_at.saturating_sub(margin);
        if now < deadline
            && self
                .sources
                .find(epoch, &record.proposal.dataset_hash)
                .await
                .is_none()
        {
            if self.waiting.insert(key) {
                tracing::info!(
                    epoch,
                    dataset_hash = %hex(&record.proposal.dataset_hash),
                    veto_at = %format_ts(deadline),
                    "its dataset is not found yet; still looking (it is withheld data, and \
                     vetoed, if it is still missing then)"
                );
                self.log
                    .push(self.outcome(&record, Action::Waiting, "dataset not found yet"));
            }
            return Ok(None);
        }
        let judged = match judge(&self.ctx, &self.sources, epoch).await {
            Ok(Some(j)) => j,
            Ok(None) => return Ok(None),
            Err(e) => {
                m::error("judge");
                return Err(e.context(format!("judging epoch {epoch}'s proposal")));
            }
        };
        let j = &judged.judgment;
        if (j.epoch, j.round, j.digest) != key {
            // The chain moved between the two reads: look again at the next poll.
            return Ok(None);
        }
        let outcome = self.act(&record, &judged).await?;
        self.done.insert(key);
        self.log.push(outcome.clone());
        Ok(Some(outcome))
    }

    fn outcome(&self, record: &EpochRecord, action: Action, reason: &str) -> Outcome {
        Outcome {
            epoch: record.epoch,
            round: record.round,
            digest: hex(&record.proposal_digest),
            action,
            checks: 0,
            failed: vec![],
            fraud: None,
            reason: reason.into(),
            dataset_source: None,
            signature: None,
        }
    }

    /// Acts on a judgment; an error leaves the proposal to the next poll, unless it failed
    /// [`MAX_ATTEMPTS`] times.
    async fn act(&mut self, record: &EpochRecord, judged: &Judged) -> anyhow::Result<Outcome> {
        let j = &judged.judgment;
        let key = (j.epoch, j.round, j.digest);
        let mut out = Outcome {
            checks: j.checks.len(),
            failed: j.failed().map(|c| c.id.clone()).collect(),
            dataset_source: judged.source.clone(),
            ..self.outcome(record, Action::Passed, "")
        };
        let epoch = j.epoch;
        let (d, c) = self.ctx.deployment_config().await?;
        let attempt = match j.decision() {
            Decision::Pass => {
                out.reason = format!("{} checks passed and no fraud proof fits", out.checks);
                tracing::info!(
                    epoch,
                    round = j.round,
                    checks = out.checks,
                    "the proposal passed every check; no fraud proof fits"
                );
                return Ok(out);
            }
            Decision::Prove(e) => {
                m::checks_failed();
                out.fraud = Some(e.kind.name().into());
                out.reason = e.summary.clone();
                if self.args.dry_run {
                    tracing::warn!(epoch, kind = e.kind.name(), evidence = %e.summary, "fraud: would send a fraud proof (dry run: nothing sent)");
                    out.action = Action::WouldProve;
                    return Ok(out);
                }
                tracing::warn!(epoch, kind = e.kind.name(), evidence = %e.summary, "fraud: sending a fraud proof");
                act::send_proof(&self.ctx, &d, record, &e)
                    .await
                    .map(|sig| (sig, Action::Proved, Some(e.kind.name())))
            }
            Decision::Veto(why) => {
                m::checks_failed();
                out.reason = why.clone();
                let signer = self.ctx.signer_pubkey()?;
                if !c.is_guardian(&signer) {
                    tracing::error!(epoch, reason = %why, %signer, "the proposal must be vetoed, but this key is not a guardian: alert a guardian");
                    out.action = Action::CannotVeto;
                    return Ok(out);
                }
                if record.vetoes >= MAX_VETOES_PER_EPOCH {
                    tracing::error!(epoch, reason = %why, "the proposal must be vetoed, but the epoch's vetoes are used up: pause and alert the admin");
                    out.action = Action::CannotVeto;
                    return Ok(out);
                }
                if self.args.dry_run {
                    tracing::warn!(epoch, reason = %why, "would veto (dry run: nothing sent)");
                    out.action = Action::WouldVeto;
                    return Ok(out);
                }
                tracing::warn!(epoch, reason = %why, "vetoing the proposal");
                act::send_veto(&self.ctx, epoch)
                    .await
                    .map(|sig| (sig, Action::Vetoed, None))
            }
        };
        match attempt {
            Ok((sig, action, kind)) => {
                match kind {
                    Some(kind) => m::proof_sent(kind),
                    None => m::veto_sent(),
                }
                tracing::warn!(epoch, round = j.round, %sig, "{action} the proposal");
                out.action = action;
                out.signature = Some(sig.to_string());
                self.failures.remove(&key);
                Ok(out)
            }
            Err(e) => {
                let kind = if out.fraud.is_some() { "proof" } else { "veto" };
                m::error(kind);
                let n = self.failures.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                if *n >= MAX_ATTEMPTS {
                    tracing::error!(epoch, error = %format!("{e:#}"), attempts = *n, "giving up on this proposal");
                    out.action = if out.fraud.is_some() {
                        Action::FailedProof
                    } else {
                        Action::FailedVeto
                    };
                    out.reason = format!("{}; {:#}", out.reason, e);
                    return Ok(out);
                }
                Err(e.context(format!(
                    "sending the {kind} against epoch {epoch} (attempt {n})"
                )))
            }
        }
    }
}

/// Runs a watcher until `stop` resolves, looking every `poll`.
pub async fn watch_until(
    ctx: Context,
    args: JudgeArgs,
    poll: Duration,
    log: WatchLog,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut w = Watcher::new(ctx, args, log)?;
    tracing::info!(sources = ?w.sources.describe(), dry_run = w.args.dry_run, "watching the proposals");
    tokio::pin!(stop);
    loop {
        if let Err(e) = w.tick().await {
            m::error("chain");
            tracing::warn!(error = %format!("{e:#}"), "the watcher's look at the chain failed; retrying");
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// `guardian watch`: until Ctrl-C.
pub async fn watch(ctx: Context, args: WatchArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_listen {
        m::serve(addr).await?;
    }
    let poll = Duration::from_secs(args.poll_secs.max(1));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping");
    };
    watch_until(ctx, args.judge, poll, WatchLog::default(), stop).await
}

/// `guardian prove EPOCH`: judges `epoch`'s proposal once and acts as the watcher would.
pub async fn prove_once(ctx: Context, args: ProveArgs) -> anyhow::Result<Outcome> {
    let log = WatchLog::default();
    let mut w = Watcher::new(ctx, args.judge, log.clone())?;
    let (d, _) = w.ctx.deployment_config().await?;
    let record: Option<EpochRecord> = w.ctx.account(&d.epoch_record(args.epoch)).await?;
    let epoch = args.epoch;
    let Some(record) = record.filter(|r| r.status == EpochStatus::Proposed) else {
        anyhow::bail!(
            "epoch {epoch} has no proposal in its challenge period (none yet, or it was \
             finalized, vetoed or refuted): nothing to judge; nothing was sent"
        );
    };
    let now = w.ctx.chain_time().await?;
    if now >= record.finalizable_at {
        anyhow::bail!(
            "the challenge period of epoch {epoch} ended at {}: it can no longer be refuted or \
             vetoed; nothing was sent",
            format_ts(record.finalizable_at)
        );
    }
    match w.look(&d, epoch).await? {
        Some(o) => Ok(o),
        None => Ok(log.outcomes().pop().unwrap_or_else(|| {
            w.outcome(
                &record,
                Action::Waiting,
                "the proposal changed while it was judged: run again",
            )
        })),
    }
}

/// Prints an outcome for people.
pub fn print_outcome(o: &Outcome) {
    println!(
        "epoch {} round {} (digest {}…): {}",
        o.epoch,
        o.round,
        o.digest.get(..16).unwrap_or(&o.digest),
        o.action
    );
    if !o.reason.is_empty() {
        println!("  {}", o.reason);
    }
    if o.checks > 0 {
        println!(
            "  {} checks, {} failed{}",
            o.checks,
            o.failed.len(),
            if o.failed.is_empty() {
                String::new()
            } else {
                format!(": {}", o.failed.join(", "))
            }
        );
    }
    if let Some(s) = &o.dataset_source {
        println!("  dataset from {s}");
    }
    if let Some(s) = &o.signature {
        println!("  signature {s}");
    }
}
