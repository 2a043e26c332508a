//! Guardians: veto an epoch's proposal, cancel a queued governance change, pause for at most a
//! day, and `show` what a guardian watches; `watch` follows the chain and refutes (fraud proof)
//! or vetoes bad proposals, `prove` does it once.
//!
//! | module | for |
//! |---|---|
//! | [`watch`] | `guardian watch` and `guardian prove`: the loop, what was acted on, the outcomes |
//! | [`sources`] | where datasets are looked for, by the chain's hash |
//! | [`judge`] | fetching what a judgment reads, and the audit crate's judgment |
//! | [`act`] | sending a fraud proof through a proof buffer, or a veto |
//! | [`metrics`] | the watcher's Prometheus metrics and their endpoint |

pub mod act;
pub mod judge;
pub mod metrics;
pub mod sources;
pub mod watch;

use crate::admin::{self, keys, wrong_keypair, AdminOutcome, ChangeIdArg, ChangeView};
use crate::context::Context;
use crate::output::{emit, format_ts, relative, status_name};
use crate::tx;
use anyhow::bail;
use backhaul::constants::MAX_VETOES_PER_EPOCH;
use backhaul_sdk::ix;
use backhaul_sdk::state::{EpochRecord, EpochStatus};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum GuardianCommand {
    /// Veto an epoch while it is voted on or in its challenge period: the oracles vote again in a
    /// new round, and a vetoed proposal cannot be voted in that round (at most 3 vetoes per
    /// epoch).
    Veto(EpochArg),
    /// Cancel a queued governance change (except a guardian set that leaves you out).
    Cancel(ChangeIdArg),
    /// Pause voting, finalizing, claiming, buying and settling for at most a day (only the admin
    /// can unpause earlier).
    Pause,
    /// The guardians, the pause state and its cooldown, the queued changes, and the vetoes used
    /// on the epoch being voted on.
    Show,
    /// Follow the chain: check each proposal in its challenge period against the dataset it
    /// commits and refute it with a fraud proof when one fits (any key may), otherwise veto it
    /// when a check fails or its dataset is withheld (a guardian's key). Runs until Ctrl-C.
    Watch(watch::WatchArgs),
    /// Check the proposal of EPOCH once and act as `watch` would.
    Prove(watch::ProveArgs),
}

/// An epoch argument.
#[derive(Args, Debug, Clone, Copy)]
pub struct EpochArg {
    /// The epoch (`backhaul guardian show` names the one being voted on).
    pub epoch: u64,
}

/// `guardian veto EPOCH`.
pub async fn veto(ctx: &Context, epoch: u64) -> anyhow::Result<AdminOutcome> {
    let (d, c) = ctx.deployment_config().await?;
    let signer = ctx.signer_pubkey()?;
    if !c.is_guardian(&signer) {
        return Err(wrong_keypair(
            &signer,
            "guardian",
            keys(&c.guardians),
            "veto",
        ));
    }
    let Some(record) = ctx.account::<EpochRecord>(&d.epoch_record(epoch)).await? else {
        bail!(
            "epoch {epoch} has no votes yet, so there is nothing to veto (the epoch being voted \
             on next is {}); nothing was sent",
            c.next_epoch
        );
    };
    let now = ctx.chain_time().await?;
    match record.status {
        EpochStatus::Finalized => {
            bail!("epoch {epoch} is finalized: it can no longer be vetoed; nothing was sent")
        }
        EpochStatus::Vetoed => bail!(
            "epoch {epoch} is already vetoed (round {}): wait for the oracles to vote again; \
             nothing was sent",
            record.round
        ),
        EpochStatus::Proposed if now >= record.finalizable_at => bail!(
            "the challenge period of epoch {epoch} ended at {}: it can no longer be vetoed; if \
             its proposal is wrong, pause with `backhaul guardian pause` and alert the admin; \
             nothing was sent",
            format_ts(record.finalizable_at)
        ),
        EpochStatus::Voting | EpochStatus::Proposed => {}
    }
    if record.vetoes >= MAX_VETOES_PER_EPOCH {
        bail!(
            "epoch {epoch} was already vetoed {} times, the most allowed; if its proposal is \
             wrong, pause with `backhaul guardian pause` and alert the admin; nothing was sent",
            record.vetoes
        );
    }
    let vetoed = status_name(record.status);
    let sig = tx::send(ctx, "veto", &[ix::veto(&d, &signer, epoch)], &[]).await?;
    let after: Option<EpochRecord> = ctx.account(&d.epoch_record(epoch)).await?;
    let used = after.map_or(record.vetoes.saturating_add(1), |r| r.vetoes);
    let mut changes = vec![format!(
        "epoch {epoch} vetoed while {vetoed} (veto {used} of {MAX_VETOES_PER_EPOCH}): the \
         oracles vote again in round {}",
        record.round.saturating_add(1)
    )];
    if record.status == EpochStatus::Proposed {
        changes.push(
            "the vetoed proposal cannot be voted in that round; the oracles may propose it again \
             in the one after"
                .into(),
        );
    }
    Ok(AdminOutcome {
        action: "veto".into(),
        config: d.config.to_string(),
        signature: sig.to_string(),
        changes,
        change_id: None,
        executable_at: None,
        from_epoch: None,
    })
}

/// The epoch being voted on, as a guardian sees it.
#[derive(Clone, Debug, Serialize)]
pub struct VetoView {
    /// The next epoch to be proposed and finalized.
    pub epoch: u64,
    /// `none` (no vote yet), `voting`, `proposed`, `finalized` or `vetoed`.
    pub status: String,
    pub round: u32,
    pub vetoes_used: u8,
    pub vetoes_max: u8,
    /// A proposal with quorum can be vetoed until this time.
    pub veto_window_ends_at: Option<i64>,
}

/// What `guardian show` prints.
#[derive(Clone, Debug, Serialize)]
pub struct GuardianView {
    pub config: String,
    pub chain_time: i64,
    pub admin: String,
    pub guardians: Vec<String>,
    pub paused: bool,
    pub paused_until: i64,
    pub pause_available_at: i64,
    /// A guardian could pause now (not paused, no cooldown).
    pub can_pause: bool,
    pub epoch: VetoView,
    pub next_change_id: u64,
    pub changes: Vec<ChangeView>,
}

/// `guardian show`.
pub async fn show(ctx: &Context) -> anyhow::Result<GuardianView> {
    let (d, c) = ctx.deployment_config().await?;
    let now = ctx.chain_time().await?;
    let record: Option<EpochRecord> = ctx.account(&d.epoch_record(c.next_epoch)).await?;
    let changes = admin::pending_changes(ctx, &d).await?;
    let epoch = VetoView {
        epoch: c.next_epoch,
        status: record
            .as_ref()
            .map_or("none", |r| status_name(r.status))
            .into(),
        round: record.as_ref().map_or(0, |r| r.round),
        vetoes_used: record.as_ref().map_or(0, |r| r.vetoes),
        vetoes_max: MAX_VETOES_PER_EPOCH,
        veto_window_ends_at: record
            .as_ref()
            .filter(|r| r.status == EpochStatus::Proposed)
            .map(|r| r.finalizable_at),
    };
    Ok(GuardianView {
        config: d.config.to_string(),
        chain_time: now,
        admin: c.admin.to_string(),
        guardians: c.guardians.iter().map(|g| g.to_string()).collect(),
        paused: c.is_paused(now),
        paused_until: c.paused_until,
        pause_available_at: c.pause_available_at,
        can_pause: !c.is_paused(now) && now >= c.pause_available_at,
        epoch,
        next_change_id: c.next_change_id,
        changes: changes
            .iter()
            .map(|(k, p)| admin::change_view(k, p, &c, now))
            .collect(),
    })
}

fn print_show(v: &GuardianView) {
    println!(
        "Guardians of {} (the clock: {})",
        v.config,
        format_ts(v.chain_time)
    );
    println!("  admin             {}", v.admin);
    println!(
        "  guardians         {}: {}",
        v.guardians.len(),
        v.guardians.join(", ")
    );
    println!(
        "  paused            {}",
        admin::pause_state(v.paused_until, v.pause_available_at, v.chain_time)
    );
    println!(
        "  pause available   {}",
        if v.can_pause {
            "now".to_string()
        } else if v.paused {
            "after the pause and its cooldown".to_string()
        } else {
            format!("at {}", format_ts(v.pause_available_at))
        }
    );
    let e = &v.epoch;
    let window = match e.veto_window_ends_at {
        Some(at) if at > v.chain_time => format!(
            "; vetoable until {} ({})",
            format_ts(at),
            relative(at, v.chain_time)
        ),
        Some(at) => format!("; challenge period over since {}", format_ts(at)),
        None => String::new(),
    };
    println!(
        "  epoch {:<11} {} (round {}), vetoes used {} of {}{window}",
        e.epoch, e.status, e.round, e.vetoes_used, e.vetoes_max
    );
    println!(
        "  queued changes    {} (next change id {})",
        v.changes.len(),
        v.next_change_id
    );
    admin::print_change_list(&v.changes, v.chain_time);
}

pub async fn run(ctx: Context, command: GuardianCommand) -> anyhow::Result<ExitCode> {
    let out = ctx.output;
    let ctx = match command {
        GuardianCommand::Watch(args) => {
            watch::watch(ctx, args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        GuardianCommand::Prove(args) => {
            let o = watch::prove_once(ctx, args).await?;
            emit(out, &o, watch::print_outcome);
            let failed = o.action.is_failure();
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        _ => &ctx,
    };
    match command {
        GuardianCommand::Veto(a) => emit(out, &veto(ctx, a.epoch).await?, admin::print_admin),
        GuardianCommand::Cancel(a) => emit(
            out,
            &admin::cancel(ctx, a.id, true).await?,
            admin::print_admin,
        ),
        GuardianCommand::Pause => emit(
            out,
            &admin::set_paused(ctx, true).await?,
            admin::print_admin,
        ),
        GuardianCommand::Show => emit(out, &show(ctx).await?, print_show),
        GuardianCommand::Watch(_) | GuardianCommand::Prove(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}
