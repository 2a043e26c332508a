//! Settlements and claims against the latest finalized dataset: no buyer settled more than its
//! latest cumulative usage, no operator claimed more than its latest cumulative reward, and the
//! claim records add up to the config's total.

use crate::evidence::{same, sum};
use crate::report::Checks;
use crate::snapshot::Snapshot;
use backhaul_protocol::dataset::Dataset;
use std::collections::BTreeMap;

/// `credits.settled_within_usage` and `claims.within_cumulative`; `latest` is the latest
/// finalized epoch's dataset, when it could be audited.
pub(crate) fn checks(c: &mut Checks, s: &Snapshot, latest: Option<&Dataset>) {
    settled_within_usage_check(c, s, latest);
    claims_within_cumulative_check(c, s, latest);
}

/// The problem noted when the latest finalized epoch has a dataset that could not be audited.
fn latest_missing(p: &mut Vec<String>, s: &Snapshot, latest: Option<&Dataset>) {
    if latest.is_none() && s.config.next_epoch > 0 {
        p.push("the latest finalized epoch's dataset could not be audited".into());
    }
}

fn settled_within_usage_check(c: &mut Checks, s: &Snapshot, latest: Option<&Dataset>) {
    let mut p = vec![];
    let usage: BTreeMap<&str, u64> = latest
        .map(|d| {
            d.usage
                .leaves
                .iter()
                .map(|l| (l.buyer.as_str(), l.cumulative))
                .collect()
        })
        .unwrap_or_default();
    latest_missing(&mut p, s, latest);
    for (_, a) in &s.credits {
        let leaf = usage
            .get(a.buyer.to_string().as_str())
            .copied()
            .unwrap_or(0);
        if a.consumed_cumulative > leaf {
            p.push(format!(
                "buyer {} settled consumption {} but its latest usage leaf is {leaf}",
                a.buyer, a.consumed_cumulative
            ));
        }
    }
    c.add(
        "credits.settled_within_usage",
        None,
        p,
        format!(
            "no buyer settled more than its latest cumulative usage ({} credit accounts)",
            s.credits.len()
        ),
    );
}

fn claims_within_cumulative_check(c: &mut Checks, s: &Snapshot, latest: Option<&Dataset>) {
    let cfg = &s.config;
    let mut p = vec![];
    let rewards: BTreeMap<&str, u64> = latest
        .map(|d| {
            d.rewards
                .leaves
                .iter()
                .map(|l| (l.operator.as_str(), l.cumulative))
                .collect()
        })
        .unwrap_or_default();
    latest_missing(&mut p, s, latest);
    let claimed = sum(s.claims.iter().map(|(_, a)| a.claimed));
    same(
        &mut p,
        "Σ claim records",
        claimed,
        u128::from(cfg.total_claimed),
    );
    for (_, a) in &s.claims {
        let leaf = rewards
            .get(a.operator.to_string().as_str())
            .copied()
            .unwrap_or(0);
        if a.claimed > leaf {
            p.push(format!(
                "operator {} claimed {} but its latest cumulative reward is {leaf}",
                a.operator, a.claimed
            ));
        }
        if a.last_epoch >= cfg.next_epoch {
            p.push(format!(
                "operator {} claimed with a proof of epoch {}, which is not finalized",
                a.operator, a.last_epoch
            ));
        }
    }
    c.add(
        "claims.within_cumulative",
        None,
        p,
        format!(
            "{} operators claimed {} in all, none more than its latest cumulative reward",
            s.claims.len(),
            cfg.total_claimed
        ),
    );
}
