//! Budgets and allocations: each allocation is the sum of its leaves' increases on the chain
//! too, the dataset's parameters are the chain's, and the allocation fits the budget recomputed
//! with `backhaul_core::budget` from those parameters.

use crate::evidence::{same, sum};
use crate::governance;
use crate::report::Checks;
use crate::run::EpochCtx;
use backhaul::state::EpochStatus;
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::emission::EmissionSchedule;
use backhaul_protocol::dataset::Dataset;

/// `allocation.sum_of_increases`: the allocation is the sum of the operators' increases, on the
/// chain too.
pub(crate) fn sum_of_increases_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let at = Some(e);
    let proposal = &x.record.proposal;
    let mut p = vec![];
    let increases = sum(ds.rewards.leaves.iter().map(|l| l.amount));
    same(
        &mut p,
        "the sum of the leaves' increases",
        increases,
        u128::from(proposal.allocation),
    );
    let chain_prev_total = x.prev_record.map_or(0, |r| r.proposal.reward_total);
    if e > 0 && x.prev_record.is_none() {
        p.push(format!(
            "epoch {} has no record to take the previous total from",
            e - 1
        ));
    }
    same(
        &mut p,
        "the chain's reward_total minus the previous epoch's",
        i128::from(proposal.reward_total) - i128::from(chain_prev_total),
        i128::from(proposal.allocation),
    );
    if let Some(l) = x
        .ledger
        .filter(|_| x.record.status == EpochStatus::Finalized)
    {
        same(
            &mut p,
            "the ledger's tokens_minted",
            l.tokens_minted,
            proposal.allocation,
        );
    }
    c.add(
        "allocation.sum_of_increases",
        at,
        p,
        format!(
            "allocation {} = the sum of {} leaves' increases = reward_total {} − previous {}",
            proposal.allocation,
            ds.rewards.leaves.len(),
            proposal.reward_total,
            chain_prev_total
        ),
    );
}

/// `budget.parameters` and `budget.within`; returns the budget recomputed from the dataset's
/// parameters, when they give one.
pub(crate) fn checks(c: &mut Checks, x: &EpochCtx, ds: &Dataset) -> Option<EpochBudget> {
    parameters_check(c, x, ds);
    within_check(c, x, ds)
}

/// The dataset's parameters against the chain: its ledgers, the epochs before, and the parameters
/// in force for the epoch.
fn parameters_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let at = Some(e);
    let cfg = &x.s.config;
    let pr = &ds.parameters;
    let mut p = vec![];
    same(&mut p, "decimals", pr.decimals, cfg.decimals);
    match x.ledger {
        Some(l) => {
            if !l.sealed {
                p.push("the epoch's ledger is not sealed".into());
            }
            same(
                &mut p,
                "tokens_burned (vs the ledger)",
                pr.tokens_burned,
                l.tokens_burned,
            );
            same(
                &mut p,
                "credits_per_token (vs the ledger)",
                pr.credits_per_token,
                l.credits_per_token,
            );
        }
        None => p.push("the epoch has no ledger on the chain".into()),
    }
    let prev_ema = if e == 0 {
        Some(0)
    } else {
        x.prev_ledger.map(|l| l.burn_ema)
    };
    match prev_ema {
        Some(ema) => same(
            &mut p,
            "previous_burn_ema (vs the previous ledger)",
            pr.previous_burn_ema,
            ema,
        ),
        None => p.push(format!(
            "epoch {} has no ledger to take the moving average of burns from",
            e - 1
        )),
    }
    match x.scheduled_before {
        Some(s) => same(
            &mut p,
            "scheduled_minted (vs the epochs before)",
            pr.scheduled_minted,
            s,
        ),
        None => p.push(
            "scheduled_minted cannot be recomputed: an earlier epoch could not be audited".into(),
        ),
    }
    // Every finalized epoch's burns and this epoch's, less what the epochs before re-minted.
    let burns_not_reemitted = x
        .burned_before
        .zip(x.ledger.map(|l| l.tokens_burned))
        .and_then(|(before, now)| before.checked_add(now))
        .zip(x.reemitted_before)
        .map(|(burned, reemitted)| burned.checked_sub(reemitted));
    match burns_not_reemitted {
        Some(Some(b)) => same(
            &mut p,
            "burns_not_reemitted (vs the epochs before and this epoch's ledger)",
            pr.burns_not_reemitted,
            b,
        ),
        Some(None) => p.push(format!(
            "the epochs before epoch {e} re-minted more than was burned through it"
        )),
        None => p.push(
            "burns_not_reemitted cannot be recomputed: an earlier epoch could not be audited or \
             a ledger is missing"
                .into(),
        ),
    }
    let prev_reward = x.prev_record.map_or(0, |r| r.proposal.reward_total);
    let prev_usage = x.prev_record.map_or(0, |r| r.proposal.usage_total);
    same(
        &mut p,
        "previous_reward_total (vs the chain)",
        pr.previous_reward_total,
        prev_reward,
    );
    same(
        &mut p,
        "previous_usage_total (vs the chain)",
        pr.previous_usage_total,
        prev_usage,
    );
    same(
        &mut p,
        "previous_usage_cost_total (vs the chain's previous usage_cost_total)",
        pr.previous_usage_cost_total,
        x.prev_record.map_or(0, |r| r.proposal.usage_cost_total),
    );
    governance::parameters_in_force_problems(&mut p, cfg, e, pr);
    c.add(
        "budget.parameters",
        at,
        p,
        format!(
            "burned {}, price {} credits/token, previous moving average {}, schedule minted {} before, burns not re-minted {}, previous totals {}/{}/{} (rewards, credits consumed, their cost), schedule and economics (k = {} bps) as configured",
            pr.tokens_burned,
            pr.credits_per_token,
            pr.previous_burn_ema,
            pr.scheduled_minted,
            pr.burns_not_reemitted,
            pr.previous_reward_total,
            pr.previous_usage_total,
            pr.previous_usage_cost_total,
            pr.usage_cap_bps
        ),
    );
}

/// The budget, recomputed with the shared crate from the dataset's parameters, and the allocation
/// in it.
fn within_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) -> Option<EpochBudget> {
    let e = x.e;
    let at = Some(e);
    let pr = &ds.parameters;
    let schedule = EmissionSchedule {
        initial_per_epoch: pr.initial_per_epoch,
        decay_bps: pr.decay_bps,
        decay_period_epochs: pr.decay_period_epochs,
        floor_per_epoch: pr.floor_per_epoch,
        lifetime_cap: pr.lifetime_cap,
    };
    let net = NetEmissionParams {
        net_emissions_cap: pr.net_emissions_cap,
        smoothing_epochs: pr.burn_smoothing_epochs,
        usage_cap_bps: pr.usage_cap_bps,
    };
    // The paid-usage cap reads what the epoch's consumption cost its buyers (recomputed buyer by
    // buyer in `cost.consumption`).
    let activity = EpochActivity {
        tokens_burned: pr.tokens_burned,
        usage_cost: ds.usage.usage_cost,
        burns_not_reemitted: pr.burns_not_reemitted,
    };
    let mut p = vec![];
    let budget = match EpochBudget::compute(
        &schedule,
        e,
        pr.scheduled_minted,
        pr.previous_burn_ema,
        &net,
        &activity,
    ) {
        Ok(b) => Some(b),
        Err(err) => {
            p.push(format!(
                "the budget cannot be computed from the dataset's parameters: {err:?}"
            ));
            None
        }
    };
    let allocation = x.record.proposal.allocation;
    if let Some(b) = &budget {
        let db = &ds.budget;
        same(&mut p, "budget.scheduled", db.scheduled, b.scheduled);
        same(
            &mut p,
            "budget.scheduled_room",
            db.scheduled_room,
            b.scheduled_room,
        );
        same(&mut p, "budget.burn_ema", db.burn_ema, b.burn_ema);
        same(&mut p, "budget.net", db.net, b.net);
        same(&mut p, "budget.usage_cap", db.usage_cap, b.usage_cap);
        same(&mut p, "budget.total", db.total, b.total);
        if let Err(which) = b.split(allocation) {
            p.push(format!(
                "allocation {allocation} exceeds the budget {} ({which:?}: scheduled {} (room {}) + net {}, usage cap {} = k {} bps × usage cost {})",
                b.total, b.scheduled, b.scheduled_room, b.net, b.usage_cap, pr.usage_cap_bps, ds.usage.usage_cost
            ));
        }
        if x.record.status == EpochStatus::Finalized {
            if let Some(l) = x.ledger {
                same(&mut p, "the ledger's budget", l.budget, b.total);
                same(
                    &mut p,
                    "the ledger's moving average of burns",
                    l.burn_ema,
                    b.burn_ema,
                );
            }
        }
    }
    c.add(
        "budget.within",
        at,
        p,
        budget.map_or(String::new(), |b| {
            format!(
                "allocation {allocation} ≤ budget {} = min(scheduled room {} + net {}, usage cap {} = k {} bps × what buyers paid for this epoch's consumption {}), as the dataset and the ledger say",
                b.total,
                b.scheduled_room,
                b.net,
                b.usage_cap,
                pr.usage_cap_bps,
                ds.usage.usage_cost
            )
        }),
    );
    budget
}
