//! What governance decides, as the audit sees it: the queued changes (each at its PDA, with an
//! id the config gave out; part of `accounts.decoded`), and the parameters in force for each
//! epoch (the dataset's against the chain's, including those pending for a later epoch): the
//! budget's (part of `budget.parameters`) and the consensus parameters that decide the dataset
//! (`consensus.parameters`).

use crate::evidence::same;
use crate::report::Checks;
use crate::run::EpochCtx;
use crate::snapshot::Snapshot;
use backhaul::state::Config;
use backhaul_protocol::dataset::{Dataset, Parameters};
use backhaul_sdk::Deployment;

/// Each queued change is at the PDA of its id, names this config, and has an id below the
/// config's next one.
pub(crate) fn queued_change_problems(p: &mut Vec<String>, s: &Snapshot, d: &Deployment) {
    let config = &s.config;
    for (k, a) in &s.changes {
        same(
            p,
            &format!("queued change {k}'s address"),
            *k,
            d.pending_change(a.id),
        );
        same(
            p,
            &format!("queued change {k}'s config"),
            a.config,
            d.config,
        );
        if a.id >= config.next_change_id {
            p.push(format!(
                "queued change {k} has id {}, not below the config's next change id {}",
                a.id, config.next_change_id
            ));
        }
    }
}

/// The dataset's schedule and economics against the parameters the chain holds for epoch `e`:
/// those in force and those pending for a later epoch, so that a change applied since the epoch
/// shows here, with what to check instead.
pub(crate) fn parameters_in_force_problems(
    p: &mut Vec<String>,
    cfg: &Config,
    e: u64,
    pr: &Parameters,
) {
    let params = cfg.params_for(e);
    let em = &params.emission;
    same(
        p,
        "initial_per_epoch (vs the config)",
        pr.initial_per_epoch,
        em.initial_per_epoch,
    );
    same(p, "decay_bps (vs the config)", pr.decay_bps, em.decay_bps);
    same(
        p,
        "decay_period_epochs (vs the config)",
        pr.decay_period_epochs,
        em.decay_period_epochs,
    );
    same(
        p,
        "floor_per_epoch (vs the config)",
        pr.floor_per_epoch,
        em.floor_per_epoch,
    );
    same(
        p,
        "lifetime_cap (vs the config)",
        pr.lifetime_cap,
        em.lifetime_cap,
    );
    let ec = &params.economics;
    same(
        p,
        "net_emissions_cap (vs the config)",
        pr.net_emissions_cap,
        ec.net_emissions_cap,
    );
    same(
        p,
        "burn_smoothing_epochs (vs the config)",
        pr.burn_smoothing_epochs,
        ec.burn_smoothing_epochs,
    );
    same(
        p,
        "usage_cap_bps (vs the config)",
        pr.usage_cap_bps,
        ec.usage_cap_bps,
    );
    if p.iter().any(|m| m.contains("(vs the config)")) {
        p.push(CHANGED_SINCE.into());
    }
}

/// What to check when the config no longer holds an epoch's parameters.
const CHANGED_SINCE: &str = "the config holds only the parameters in force (and those pending \
     for a later epoch): if a governance change was applied after this epoch, check the values \
     against the program's `ChangeApplied` events (their `from_epoch` is the first epoch the new \
     values decide)";

/// `consensus.parameters`: the dataset priced, capped and rate-limited bandwidth with the
/// consensus parameters the chain holds for epoch `e` (in force, or pending for a later epoch),
/// so every oracle closed it under the same rules.
pub(crate) fn consensus_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let consensus = x.s.config.params_for(e).consensus;
    let pr = &ds.parameters;
    let mut p = vec![];
    same(
        &mut p,
        "credits_per_gib (vs the config)",
        pr.credits_per_gib,
        consensus.credits_per_gib,
    );
    same(
        &mut p,
        "pair_cap_bytes (vs the config)",
        pr.pair_cap_bytes,
        consensus.pair_cap_bytes,
    );
    same(
        &mut p,
        "max_rate_bytes_per_sec (vs the config)",
        pr.max_rate_bytes_per_sec,
        consensus.max_rate_bytes_per_sec,
    );
    if !p.is_empty() {
        p.push(CHANGED_SINCE.into());
    }
    c.add(
        "consensus.parameters",
        Some(e),
        p,
        format!(
            "{} credits per GiB, pair cap {} bytes, max rate {} bytes/s, as configured for the \
             epoch",
            pr.credits_per_gib, pr.pair_cap_bytes, pr.max_rate_bytes_per_sec
        ),
    );
}
