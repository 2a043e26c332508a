//! What the previous epoch left: every account's cumulative amounts and the trees' totals, read
//! from its dataset and checked against the totals the chain finalized.

use crate::error::CloseError;
use crate::inputs::ChainInputs;
use backhaul_core::cost::Consumed;
use backhaul_protocol::dataset::{key_from_b58, Dataset};
use backhaul_protocol::Key;
use std::collections::BTreeMap;

/// The previous dataset's cumulative state (empty before the first epoch).
pub(crate) struct Previous {
    /// Each operator's cumulative reward.
    pub(crate) reward_cum: BTreeMap<Key, u64>,
    /// Each buyer's cumulative consumption and its cost.
    pub(crate) usage_cum: BTreeMap<Key, Consumed>,
    pub(crate) reward_total: u64,
    pub(crate) usage_total: u64,
    pub(crate) usage_cost_total: u64,
}

impl Previous {
    /// Reads `previous`, which must be the dataset of the epoch before `epoch` and agree with the
    /// chain's totals.
    pub(crate) fn read(
        epoch: u64,
        previous: Option<&Dataset>,
        chain: &ChainInputs,
    ) -> Result<Self, CloseError> {
        let mut reward_cum = BTreeMap::new();
        let mut usage_cum = BTreeMap::new();
        if let Some(prev) = previous {
            if prev.epoch.checked_add(1) != Some(epoch) {
                return Err(CloseError::WrongPrevious {
                    expected: epoch.saturating_sub(1),
                    found: prev.epoch,
                });
            }
            for l in &prev.rewards.leaves {
                let k = key_from_b58(&l.operator)
                    .ok_or_else(|| CloseError::BadPrevious(l.operator.clone()))?;
                reward_cum.insert(k, l.cumulative);
            }
            let mut cost_sum = 0u64;
            for l in &prev.usage.leaves {
                let k = key_from_b58(&l.buyer)
                    .ok_or_else(|| CloseError::BadPrevious(l.buyer.clone()))?;
                usage_cum.insert(
                    k,
                    Consumed {
                        credits: l.cumulative,
                        cost: l.cumulative_cost,
                    },
                );
                cost_sum = cost_sum
                    .checked_add(l.cumulative_cost)
                    .ok_or(CloseError::Overflow(epoch))?;
            }
            // The usage root commits to the credits, not to their cost: the leaves' costs must
            // add up to the total the chain checks.
            if cost_sum != prev.usage.cost_total {
                return Err(CloseError::InconsistentPrevious(format!(
                    "its buyers' cumulative costs add up to {cost_sum}, not to its cost total {}",
                    prev.usage.cost_total
                )));
            }
        }
        let reward_total = previous.map_or(0, |d| d.rewards.total);
        let usage_total = previous.map_or(0, |d| d.usage.total);
        let usage_cost_total = previous.map_or(0, |d| d.usage.cost_total);
        if reward_total != chain.last_reward_total
            || usage_total != chain.last_usage_total
            || usage_cost_total != chain.last_usage_cost_total
        {
            return Err(CloseError::PreviousMismatch {
                reward: reward_total,
                usage: usage_total,
                cost: usage_cost_total,
                chain_reward: chain.last_reward_total,
                chain_usage: chain.last_usage_total,
                chain_cost: chain.last_usage_cost_total,
            });
        }
        Ok(Previous {
            reward_cum,
            usage_cum,
            reward_total,
            usage_total,
            usage_cost_total,
        })
    }
}
