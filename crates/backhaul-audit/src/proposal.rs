//! The chain's proposal: the one a quorum of oracles voted for, finalized only after its challenge
//! period, and carrying the dataset's figures.

use crate::evidence::same;
use crate::report::Checks;
use crate::run::EpochCtx;
use anchor_lang::prelude::Pubkey;
use backhaul::state::EpochStatus;
use backhaul_protocol::dataset::{hex, Dataset};
use std::collections::BTreeSet;

/// The proposal is the one the oracles voted for, by a quorum, and was finalized only after its
/// challenge period.
pub(crate) fn quorum_check(c: &mut Checks, x: &EpochCtx) {
    let r = x.record;
    let cfg = &x.s.config;
    let mut p = vec![];
    match anchor_lang::prelude::borsh::to_vec(&r.proposal) {
        Ok(bytes) => {
            let digest = backhaul_core::merkle::proposal_digest(&x.config_bytes, x.e, &bytes);
            if digest != r.proposal_digest {
                p.push(format!(
                    "the proposal hashes to {}, but the record's digest is {}",
                    hex(&digest),
                    hex(&r.proposal_digest)
                ));
            }
        }
        Err(err) => p.push(format!("the proposal does not encode: {err}")),
    }
    let voters: BTreeSet<Pubkey> = r
        .votes
        .iter()
        .filter(|v| v.digest == r.proposal_digest)
        .map(|v| v.oracle)
        .collect();
    if voters.len() < usize::from(cfg.threshold) {
        p.push(format!(
            "{} distinct oracle(s) voted for the proposal; the threshold is {}",
            voters.len(),
            cfg.threshold
        ));
    }
    for v in voters.iter().filter(|v| !cfg.oracles.contains(v)) {
        p.push(format!(
            "{v} voted but is not in the oracle set (if the set changed since, this is expected)"
        ));
    }
    let challenge = i64::try_from(cfg.challenge_period_secs).unwrap_or(i64::MAX);
    if r.finalizable_at != r.quorum_at.saturating_add(challenge) {
        p.push(format!(
            "finalizable at {} but quorum at {} plus the challenge period {} is {}",
            r.finalizable_at,
            r.quorum_at,
            cfg.challenge_period_secs,
            r.quorum_at.saturating_add(challenge)
        ));
    }
    if r.status == EpochStatus::Finalized && r.finalized_at < r.finalizable_at {
        p.push(format!(
            "finalized at {}, before the challenge period ended at {}",
            r.finalized_at, r.finalizable_at
        ));
    }
    c.add(
        "proposal.quorum",
        Some(x.e),
        p,
        format!(
            "{} of {} oracles voted digest {} (threshold {}); quorum at {}, finalizable at {}{}",
            voters.len(),
            cfg.oracles.len(),
            hex(&r.proposal_digest),
            cfg.threshold,
            r.quorum_at,
            r.finalizable_at,
            if r.status == EpochStatus::Finalized {
                format!(", finalized at {}", r.finalized_at)
            } else {
                String::new()
            }
        ),
    );
}

/// `proposal.matches_dataset`: the chain's proposal carries the dataset's figures.
pub(crate) fn matches_dataset_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let at = Some(x.e);
    let proposal = &x.record.proposal;
    let mut p = vec![];
    same(
        &mut p,
        "reward_leaf_count",
        proposal.reward_leaf_count,
        ds.rewards.leaf_count,
    );
    same(
        &mut p,
        "reward_total",
        proposal.reward_total,
        ds.rewards.total,
    );
    same(&mut p, "allocation", proposal.allocation, ds.allocation);
    same(
        &mut p,
        "usage_leaf_count",
        proposal.usage_leaf_count,
        ds.usage.leaf_count,
    );
    same(&mut p, "usage_total", proposal.usage_total, ds.usage.total);
    same(
        &mut p,
        "credits_consumed",
        proposal.credits_consumed,
        ds.usage.credits_consumed,
    );
    same(
        &mut p,
        "usage_cost_total (vs the dataset's usage.cost_total)",
        proposal.usage_cost_total,
        ds.usage.cost_total,
    );
    same(
        &mut p,
        "usage_cost (vs the dataset's usage.usage_cost)",
        proposal.usage_cost,
        ds.usage.usage_cost,
    );
    c.add(
        "proposal.matches_dataset",
        at,
        p,
        format!(
            "the chain's proposal has the dataset's {} reward leaves totalling {}, allocation {}, {} usage leaves totalling {}, {} credits consumed costing their buyers {} (all consumption so far: {})",
            ds.rewards.leaf_count, ds.rewards.total, ds.allocation, ds.usage.leaf_count,
            ds.usage.total, ds.usage.credits_consumed, ds.usage.usage_cost, ds.usage.cost_total
        ),
    );
}
