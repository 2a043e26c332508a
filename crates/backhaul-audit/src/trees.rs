//! Both trees of each dataset: leaves sorted and unique, counts and totals that add up, each
//! cumulative the previous epoch's plus what this epoch adds, usage priced as the parameters say,
//! and both roots rebuilt from the leaves with `backhaul_core`'s Merkle code against the dataset's
//! and the chain's.

use crate::evidence::{ascending, key, same, sum};
use crate::report::Checks;
use crate::run::EpochCtx;
use backhaul_core::merkle::TreeKind;
use backhaul_core::split::credits_for_bytes;
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{hex, key_from_b58, Dataset};
use std::collections::{BTreeMap, BTreeSet};

/// One leaf of either tree, as the checks read it: the account, what this epoch adds to it and
/// its running total.
struct LeafFigures<'a> {
    account: &'a str,
    added: u64,
    cumulative: u64,
}

/// One tree of a dataset, as the checks read it.
struct TreeFigures<'a> {
    leaf_count: u64,
    total: u64,
    /// What the epoch adds over all leaves (the allocation, or the credits consumed).
    added: u64,
    /// The previous epoch's total, as the dataset's parameters state it.
    previous_total: u64,
    leaves: Vec<LeafFigures<'a>>,
}

/// What differs between the reward tree and the usage tree: the names used in problems and how
/// to read the tree out of a dataset.
struct TreeSide {
    /// Check id.
    id: &'static str,
    /// Field prefix in the dataset ("rewards", "usage").
    section: &'static str,
    /// Leaf name ("reward", "usage").
    leaf: &'static str,
    /// Who a leaf belongs to ("operator", "buyer").
    who: &'static str,
    /// What a leaf adds this epoch ("amount", "credits").
    added: &'static str,
    /// What the sum of the leaves' additions is called.
    added_sum: &'static str,
    /// The parameter holding the previous epoch's total.
    previous_field: &'static str,
    figures: for<'a> fn(&'a Dataset) -> TreeFigures<'a>,
}

fn reward_figures(ds: &Dataset) -> TreeFigures<'_> {
    TreeFigures {
        leaf_count: ds.rewards.leaf_count,
        total: ds.rewards.total,
        added: ds.allocation,
        previous_total: ds.parameters.previous_reward_total,
        leaves: ds
            .rewards
            .leaves
            .iter()
            .map(|l| LeafFigures {
                account: &l.operator,
                added: l.amount,
                cumulative: l.cumulative,
            })
            .collect(),
    }
}

fn usage_figures(ds: &Dataset) -> TreeFigures<'_> {
    TreeFigures {
        leaf_count: ds.usage.leaf_count,
        total: ds.usage.total,
        added: ds.usage.credits_consumed,
        previous_total: ds.parameters.previous_usage_total,
        leaves: ds
            .usage
            .leaves
            .iter()
            .map(|l| LeafFigures {
                account: &l.buyer,
                added: l.credits,
                cumulative: l.cumulative,
            })
            .collect(),
    }
}

const REWARD_TREE: TreeSide = TreeSide {
    id: "dataset.reward_leaves",
    section: "rewards",
    leaf: "reward",
    who: "operator",
    added: "amount",
    added_sum: "the sum of reward amounts",
    previous_field: "parameters.previous_reward_total",
    figures: reward_figures,
};

const USAGE_TREE: TreeSide = TreeSide {
    id: "dataset.usage_leaves",
    section: "usage",
    leaf: "usage",
    who: "buyer",
    added: "credits",
    added_sum: "the sum of usage credits",
    previous_field: "parameters.previous_usage_total",
    figures: usage_figures,
};

/// The checks both trees share: keys sorted and unique, counts and totals, the previous total,
/// and each leaf's cumulative against the previous epoch's. `more` adds the tree's own checks
/// before the comparison with the previous epoch.
fn tree_leaf_problems(
    side: &TreeSide,
    e: u64,
    ds: &Dataset,
    prev: Option<&Dataset>,
    prev_missing: bool,
    more: impl FnOnce(&mut Vec<String>),
) -> Vec<String> {
    let t = (side.figures)(ds);
    let mut p = vec![];
    let keys: Vec<Option<[u8; 32]>> = t
        .leaves
        .iter()
        .map(|l| {
            key(
                &mut p,
                &format!("{} leaf {}", side.leaf, side.who),
                l.account,
            )
        })
        .collect();
    ascending(&mut p, &format!("{} leaves", side.leaf), &keys);
    same(
        &mut p,
        &format!("{}.leaf_count", side.section),
        u128::from(t.leaf_count),
        t.leaves.len() as u128,
    );
    let total = format!("{}.total", side.section);
    same(
        &mut p,
        &total,
        u128::from(t.total),
        sum(t.leaves.iter().map(|l| l.cumulative)),
    );
    same(
        &mut p,
        side.added_sum,
        sum(t.leaves.iter().map(|l| l.added)),
        u128::from(t.added),
    );
    let prev_figures = prev.map(side.figures);
    same(
        &mut p,
        side.previous_field,
        t.previous_total,
        prev_figures.as_ref().map_or(0, |f| f.total),
    );
    same(
        &mut p,
        &total,
        u128::from(t.total),
        u128::from(t.previous_total) + u128::from(t.added),
    );
    more(&mut p);
    if prev_missing {
        p.push(format!(
            "cannot check cumulative = previous cumulative + {}: epoch {}'s dataset is unavailable",
            side.added,
            e - 1
        ));
    } else {
        let before: BTreeMap<&str, u64> = prev_figures
            .map(|f| f.leaves.iter().map(|l| (l.account, l.cumulative)).collect())
            .unwrap_or_default();
        for l in &t.leaves {
            let was = before.get(l.account).copied().unwrap_or(0);
            if u128::from(l.cumulative) != u128::from(was) + u128::from(l.added) {
                p.push(format!(
                    "{} {}: cumulative {} ≠ previous cumulative {was} + {} {}",
                    side.who, l.account, l.cumulative, side.added, l.added
                ));
            }
        }
        let now: BTreeSet<&str> = t.leaves.iter().map(|l| l.account).collect();
        for gone in before.keys().filter(|k| !now.contains(*k)) {
            p.push(format!(
                "{} {gone} had a leaf in epoch {} and has none now",
                side.who,
                e - 1
            ));
        }
    }
    p
}

pub(crate) fn reward_leaf_checks(
    c: &mut Checks,
    e: u64,
    ds: &Dataset,
    prev: Option<&Dataset>,
    prev_missing: bool,
) {
    let p = tree_leaf_problems(&REWARD_TREE, e, ds, prev, prev_missing, |_| {});
    c.add(
        REWARD_TREE.id,
        Some(e),
        p,
        format!(
            "{} leaves sorted and unique, total {} = previous {} + allocation {}, each cumulative = previous + amount",
            ds.rewards.leaves.len(),
            ds.rewards.total,
            ds.parameters.previous_reward_total,
            ds.allocation
        ),
    );
}

pub(crate) fn usage_leaf_checks(
    c: &mut Checks,
    e: u64,
    ds: &Dataset,
    prev: Option<&Dataset>,
    prev_missing: bool,
) {
    let u = &ds.usage;
    let priced = |p: &mut Vec<String>| {
        for l in &u.leaves {
            match credits_for_bytes(l.bytes, ds.parameters.credits_per_gib) {
                Ok(credits) if credits == l.credits => {}
                Ok(credits) => p.push(format!(
                    "buyer {}: charged {} credits for {} bytes, {} at {} credits per GiB",
                    l.buyer, l.credits, l.bytes, credits, ds.parameters.credits_per_gib
                )),
                Err(_) => p.push(format!(
                    "buyer {}: the price of {} bytes overflows",
                    l.buyer, l.bytes
                )),
            }
        }
    };
    let p = tree_leaf_problems(&USAGE_TREE, e, ds, prev, prev_missing, priced);
    c.add(
        USAGE_TREE.id,
        Some(e),
        p,
        format!(
            "{} leaves sorted and unique, total {} = previous {} + consumed {}, each cumulative = previous + credits, credits priced at {} per GiB",
            u.leaves.len(),
            u.total,
            ds.parameters.previous_usage_total,
            u.credits_consumed,
            ds.parameters.credits_per_gib
        ),
    );
}

/// Both roots rebuilt from the leaves with the shared Merkle code.
pub(crate) fn root_checks(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let rebuild = |kind: TreeKind, side: &TreeSide| -> Result<EpochTree, String> {
        let entries = (side.figures)(ds)
            .leaves
            .into_iter()
            .map(|l| {
                key_from_b58(l.account)
                    .map(|account| Entry {
                        account,
                        cumulative: l.cumulative,
                    })
                    .ok_or_else(|| format!("{:?} is not a key", l.account))
            })
            .collect::<Result<Vec<_>, _>>()?;
        EpochTree::build(kind, &x.config_bytes, e, entries).map_err(|err| format!("{err:?}"))
    };
    let trees = [
        (
            "root.rewards",
            rebuild(TreeKind::Reward, &REWARD_TREE),
            &ds.rewards.root,
            x.record.proposal.reward_root,
        ),
        (
            "root.usage",
            rebuild(TreeKind::Usage, &USAGE_TREE),
            &ds.usage.root,
            x.record.proposal.usage_root,
        ),
    ];
    for (name, tree, published, chain) in trees {
        let mut p = vec![];
        let root = match tree {
            Ok(t) => hex(&t.root),
            Err(err) => {
                p.push(format!("the leaves do not make a tree: {err}"));
                String::new()
            }
        };
        if p.is_empty() {
            same(
                &mut p,
                "the rebuilt root (vs the dataset's)",
                root.as_str(),
                published.as_str(),
            );
            same(
                &mut p,
                "the rebuilt root (vs the chain's)",
                root.as_str(),
                hex(&chain).as_str(),
            );
        }
        c.add(
            name,
            Some(e),
            p,
            format!("rebuilt from the leaves: {root}, as in the dataset and on the chain"),
        );
    }
}
