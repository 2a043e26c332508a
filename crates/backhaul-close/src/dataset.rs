//! Step 7: cumulative amounts, both trees, and the epoch's dataset.

use crate::attribution::Attribution;
use crate::charges::{Charged, Charges};
use crate::error::CloseError;
use crate::inputs::CloseContext;
use crate::previous::Previous;
use crate::split::Split;
use backhaul_core::merkle::TreeKind;
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{
    b58, hex, Budget, Dataset, NodeUsage, Parameters, RewardLeaf, RewardTree, Served, Stats,
    UsageLeaf, UsageTree, DATASET_VERSION,
};
use backhaul_protocol::Key;
use std::collections::BTreeMap;

/// What the earlier steps decided.
pub(crate) struct Outcome {
    pub(crate) previous: Previous,
    pub(crate) attribution: Attribution,
    pub(crate) charges: Charges,
    pub(crate) split: Split,
    /// Sessions that did not count, by reason.
    pub(crate) rejected: BTreeMap<String, u64>,
    pub(crate) stats: Stats,
}

/// Builds the dataset. `buyers` and `operators` are the keys by id.
pub(crate) fn build(
    ctx: &CloseContext,
    buyers: &[Key],
    operators: &[Key],
    outcome: Outcome,
) -> Result<Dataset, CloseError> {
    let epoch = ctx.epoch;
    let overflow = || CloseError::Overflow(epoch);
    let Outcome {
        attribution,
        charges,
        split,
        ..
    } = outcome;
    let Previous {
        mut reward_cum,
        mut usage_cum,
        reward_total: prev_reward_total,
        usage_total: prev_usage_total,
        usage_cost_total: prev_usage_cost_total,
    } = outcome.previous;

    // Every operator with counted bytes: (this epoch's reward, its bytes).
    let epoch_reward: BTreeMap<Key, (u64, u64)> = attribution
        .operator_bytes
        .iter()
        .zip(&split.operator_reward)
        .enumerate()
        .filter(|(_, (bytes, _))| **bytes > 0)
        .map(|(i, (bytes, reward))| (operators[i], (*reward, *bytes)))
        .collect();
    let charged: BTreeMap<Key, Charged> = charges.buyers.into_iter().map(|c| (c.key, c)).collect();

    for (k, (share, _)) in &epoch_reward {
        let c = reward_cum.entry(*k).or_default();
        *c = c.checked_add(*share).ok_or_else(overflow)?;
    }
    for (k, b) in &charged {
        let u = usage_cum.entry(*k).or_default();
        u.credits = u.credits.checked_add(b.credits).ok_or_else(overflow)?;
        u.cost = u.cost.checked_add(b.cost).ok_or_else(overflow)?;
    }
    let cost_total = prev_usage_cost_total
        .checked_add(charges.usage_cost)
        .ok_or_else(overflow)?;
    let config = ctx.deployment.config;
    let reward_entries = reward_cum
        .iter()
        .map(|(k, v)| Entry {
            account: *k,
            cumulative: *v,
        })
        .collect();
    let usage_entries = usage_cum
        .iter()
        .map(|(k, u)| Entry {
            account: *k,
            cumulative: u.credits,
        })
        .collect();
    let reward_tree = EpochTree::build(TreeKind::Reward, &config, epoch, reward_entries)
        .map_err(CloseError::Tree)?;
    let usage_tree = EpochTree::build(TreeKind::Usage, &config, epoch, usage_entries)
        .map_err(CloseError::Tree)?;

    // Each key is encoded once, however many rows name it.
    let mut buyer_names: Vec<Option<String>> = vec![None; buyers.len()];
    let mut operator_names: Vec<Option<String>> = vec![None; operators.len()];
    let served = attribution
        .served
        .into_iter()
        .zip(split.served_amounts)
        .map(|((b, o, bytes), amount)| Served {
            buyer: buyer_names[b as usize]
                .get_or_insert_with(|| b58(&buyers[b as usize]))
                .clone(),
            operator: operator_names[o as usize]
                .get_or_insert_with(|| b58(&operators[o as usize]))
                .clone(),
            bytes,
            amount,
        })
        .collect();
    drop((buyer_names, operator_names));

    let p = ctx.params;
    let ch = ctx.chain;
    let budget = split.budget;
    Ok(Dataset {
        version: DATASET_VERSION,
        program_id: b58(&ctx.deployment.program_id),
        config: b58(&config),
        epoch,
        epoch_start: ctx.epoch_start,
        epoch_end: ctx.epoch_end,
        input_hash: hex(&ctx.input_hash),
        parameters: Parameters {
            credits_per_gib: p.credits_per_gib,
            pair_cap_bytes: p.pair_cap_bytes,
            max_rate_bytes_per_sec: p.max_rate_bytes_per_sec,
            initial_per_epoch: ch.initial_per_epoch,
            decay_bps: ch.decay_bps,
            decay_period_epochs: ch.decay_period_epochs,
            floor_per_epoch: ch.floor_per_epoch,
            lifetime_cap: ch.lifetime_cap,
            scheduled_minted: ch.scheduled_minted,
            previous_burn_ema: ch.burn_ema,
            net_emissions_cap: ch.net_emissions_cap,
            burn_smoothing_epochs: ch.burn_smoothing_epochs,
            usage_cap_bps: ch.usage_cap_bps,
            tokens_burned: ch.tokens_burned,
            credits_per_token: ch.credits_per_token,
            decimals: ch.decimals,
            previous_reward_total: prev_reward_total,
            previous_usage_total: prev_usage_total,
            previous_usage_cost_total: prev_usage_cost_total,
            burns_not_reemitted: ch.burns_not_reemitted,
        },
        budget: Budget {
            scheduled: budget.scheduled,
            scheduled_room: budget.scheduled_room,
            burn_ema: budget.burn_ema,
            net: budget.net,
            usage_cap: budget.usage_cap,
            total: budget.total,
        },
        allocation: split.allocation,
        rewards: RewardTree {
            root: hex(&reward_tree.root),
            leaf_count: reward_tree.leaf_count(),
            total: reward_tree.total,
            leaves: reward_tree
                .entries
                .iter()
                .map(|e| {
                    let (amount, bytes) = epoch_reward.get(&e.account).copied().unwrap_or((0, 0));
                    RewardLeaf {
                        operator: b58(&e.account),
                        cumulative: e.cumulative,
                        amount,
                        bytes,
                    }
                })
                .collect(),
        },
        usage: UsageTree {
            root: hex(&usage_tree.root),
            leaf_count: usage_tree.leaf_count(),
            total: usage_tree.total,
            credits_consumed: charges.credits_consumed,
            cost_total,
            usage_cost: charges.usage_cost,
            leaves: usage_tree
                .entries
                .iter()
                .map(|e| {
                    let cumulative_cost = usage_cum.get(&e.account).map_or(0, |u| u.cost);
                    let c = charged.get(&e.account);
                    UsageLeaf {
                        buyer: b58(&e.account),
                        cumulative: e.cumulative,
                        credits: c.map_or(0, |c| c.credits),
                        bytes: c.map_or(0, |c| c.bytes),
                        purchased_credits: c.map_or(0, |c| c.purchases.credits),
                        purchased_tokens: c.map_or(0, |c| c.purchases.tokens),
                        cumulative_cost,
                        cost: c.map_or(0, |c| c.cost),
                        pot: c.map_or(0, |c| c.pot),
                    }
                })
                .collect(),
        },
        served,
        nodes: attribution
            .nodes
            .iter()
            .map(|(node, (operator, bytes))| NodeUsage {
                node: b58(node),
                operator: b58(operator),
                bytes: *bytes,
            })
            .collect(),
        rejected: outcome.rejected,
        stats: outcome.stats,
    })
}
