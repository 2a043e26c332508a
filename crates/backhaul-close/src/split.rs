//! Step 6: the epoch's budget, each buyer's pot, and each pot split among the operators that
//! served that buyer in proportion to their bytes for it.

use crate::charges::Charged;
use crate::error::CloseError;
use crate::inputs::CloseContext;
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::cost::buyer_pots;
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::split::split_largest_remainder;
use std::ops::Range;

/// The budget and where it goes.
pub(crate) struct Split {
    pub(crate) budget: EpochBudget,
    /// The sum of the pots.
    pub(crate) allocation: u64,
    /// Each served row's part of its buyer's pot.
    pub(crate) served_amounts: Vec<u64>,
    /// Per operator id.
    pub(crate) operator_reward: Vec<u64>,
}

/// Computes the budget from the chain's inputs and `usage_cost`, sets each charged buyer's pot,
/// and splits it over that buyer's rows in `served` (`groups[i]` is `charged[i]`'s buyer and
/// rows). `operators` is how many operator ids there are.
pub(crate) fn split(
    ctx: &CloseContext,
    usage_cost: u64,
    charged: &mut [Charged],
    served: &[(u32, u32, u64)],
    groups: &[(u32, Range<usize>)],
    operators: usize,
) -> Result<Split, CloseError> {
    let epoch = ctx.epoch;
    let overflow = || CloseError::Overflow(epoch);
    let ch = ctx.chain;
    let schedule = EmissionSchedule {
        initial_per_epoch: ch.initial_per_epoch,
        decay_bps: ch.decay_bps,
        decay_period_epochs: ch.decay_period_epochs,
        floor_per_epoch: ch.floor_per_epoch,
        lifetime_cap: ch.lifetime_cap,
    };
    let net = NetEmissionParams {
        net_emissions_cap: ch.net_emissions_cap,
        smoothing_epochs: ch.burn_smoothing_epochs,
        usage_cap_bps: ch.usage_cap_bps,
    };
    let activity = EpochActivity {
        tokens_burned: ch.tokens_burned,
        usage_cost,
        burns_not_reemitted: ch.burns_not_reemitted,
    };
    let budget = EpochBudget::compute(
        &schedule,
        epoch,
        ch.scheduled_minted,
        ch.burn_ema,
        &net,
        &activity,
    )
    .map_err(|_| overflow())?;
    let costs: Vec<u64> = charged.iter().map(|c| c.cost).collect();
    let pots = buyer_pots(budget.total, ch.usage_cap_bps, &costs).map_err(|_| overflow())?;
    let mut allocation = 0u64;
    let mut served_amounts = vec![0u64; served.len()];
    let mut operator_reward = vec![0u64; operators];
    for ((c, pot), (_, range)) in charged.iter_mut().zip(pots).zip(groups) {
        c.pot = pot;
        allocation = allocation.checked_add(pot).ok_or_else(overflow)?;
        let rows = served.get(range.clone()).ok_or_else(overflow)?;
        let weights: Vec<u64> = rows.iter().map(|r| r.2).collect();
        let parts = split_largest_remainder(pot, &weights).map_err(|_| overflow())?;
        for (i, part) in range.clone().zip(parts) {
            served_amounts[i] = part;
            let op = served[i].1 as usize;
            operator_reward[op] = operator_reward[op].checked_add(part).ok_or_else(overflow)?;
        }
    }
    Ok(Split {
        budget,
        allocation,
        served_amounts,
        operator_reward,
    })
}
