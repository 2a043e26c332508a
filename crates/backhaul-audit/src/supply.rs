//! The deployment's running totals against its accounts, as equalities where only the program
//! moves the figures and as inequalities where anyone can move them too:
//!
//! - `totals.minted`: minted = Σ finalized allocations = Σ ledgers = scheduled + re-minted, the
//!   schedule's and the re-minted shares recomputed over the epochs;
//! - `totals.latest_trees`: the config's latest trees are the last finalized epoch's;
//! - `vault.balance`: vault ≥ minted − claimed (anyone can send tokens to the vault);
//! - `mint.supply`: supply ≤ initial + minted − burned for credits (anyone can burn their own
//!   tokens directly);
//! - `totals.burned`: burns and credits issued = Σ ledgers = Σ credit accounts;
//! - `credits.balances`: credits issued − settled = Σ balances, and each account adds up.

use crate::evidence::{same, sum};
use crate::report::Checks;
use crate::run::Recomputed;
use crate::snapshot::Snapshot;
use backhaul::state::{CreditAccount, EpochLedger, EpochRecord, EpochStatus};
use std::collections::BTreeMap;

/// Every running total against the accounts; `recomputed` holds what the epochs' audits
/// recomputed.
pub(crate) fn checks(
    c: &mut Checks,
    s: &Snapshot,
    records: &BTreeMap<u64, &EpochRecord>,
    ledgers: &BTreeMap<u64, &EpochLedger>,
    recomputed: Recomputed,
) {
    let finalized: Vec<&EpochRecord> = records
        .values()
        .copied()
        .filter(|r| r.status == EpochStatus::Finalized)
        .collect();
    minted_check(c, s, &finalized, ledgers, &recomputed);
    latest_trees_check(c, s, &finalized);
    vault_check(c, s);
    mint_supply_check(c, s);
    burned_check(c, s, &finalized, ledgers, &recomputed);
    credit_balances_check(c, s, ledgers);
}

fn minted_check(
    c: &mut Checks,
    s: &Snapshot,
    finalized: &[&EpochRecord],
    ledgers: &BTreeMap<u64, &EpochLedger>,
    recomputed: &Recomputed,
) {
    let cfg = &s.config;
    let mut p = vec![];
    let allocations = sum(finalized.iter().map(|r| r.proposal.allocation));
    let ledger_minted = sum(ledgers.values().map(|l| l.tokens_minted));
    same(
        &mut p,
        "Σ finalized allocations",
        allocations,
        u128::from(cfg.total_minted),
    );
    same(
        &mut p,
        "Σ ledgers' tokens_minted",
        ledger_minted,
        u128::from(cfg.total_minted),
    );
    same(
        &mut p,
        "last_reward_total",
        cfg.last_reward_total,
        cfg.total_minted,
    );
    same(
        &mut p,
        "scheduled_minted + total_reemitted",
        u128::from(cfg.scheduled_minted) + u128::from(cfg.total_reemitted),
        u128::from(cfg.total_minted),
    );
    if cfg.total_reemitted > cfg.burned_finalized {
        p.push(format!(
            "re-minted {} exceeds what finalized epochs burned ({})",
            cfg.total_reemitted, cfg.burned_finalized
        ));
    }
    if cfg.scheduled_minted > cfg.emission.lifetime_cap {
        p.push(format!(
            "scheduled_minted {} exceeds the lifetime cap {}",
            cfg.scheduled_minted, cfg.emission.lifetime_cap
        ));
    }
    match recomputed.scheduled {
        Some(v) => same(
            &mut p,
            "scheduled_minted (recomputed over the epochs)",
            cfg.scheduled_minted,
            v,
        ),
        None => {
            p.push("scheduled_minted cannot be recomputed: an epoch could not be audited".into())
        }
    }
    match recomputed.reemitted {
        Some(v) => same(
            &mut p,
            "total_reemitted (recomputed over the epochs)",
            cfg.total_reemitted,
            v,
        ),
        None => {
            p.push("total_reemitted cannot be recomputed: an epoch could not be audited".into())
        }
    }
    c.add(
        "totals.minted",
        None,
        p,
        format!(
            "total_minted {} = Σ of {} finalized allocations = Σ ledgers = scheduled {} + re-minted {}",
            cfg.total_minted,
            finalized.len(),
            cfg.scheduled_minted,
            cfg.total_reemitted
        ),
    );
}

fn latest_trees_check(c: &mut Checks, s: &Snapshot, finalized: &[&EpochRecord]) {
    let cfg = &s.config;
    let mut p = vec![];
    let last = finalized.last();
    same(
        &mut p,
        "last_reward_total",
        cfg.last_reward_total,
        last.map_or(0, |r| r.proposal.reward_total),
    );
    same(
        &mut p,
        "last_reward_leaf_count",
        cfg.last_reward_leaf_count,
        last.map_or(0, |r| r.proposal.reward_leaf_count),
    );
    same(
        &mut p,
        "last_usage_total",
        cfg.last_usage_total,
        last.map_or(0, |r| r.proposal.usage_total),
    );
    same(
        &mut p,
        "last_usage_leaf_count",
        cfg.last_usage_leaf_count,
        last.map_or(0, |r| r.proposal.usage_leaf_count),
    );
    same(
        &mut p,
        "last_usage_cost_total",
        cfg.last_usage_cost_total,
        last.map_or(0, |r| r.proposal.usage_cost_total),
    );
    c.add(
        "totals.latest_trees",
        None,
        p,
        format!(
            "the config's latest reward tree ({} leaves, {}) and usage tree ({} leaves, {} credits costing their buyers {}) are the last finalized epoch's",
            cfg.last_reward_leaf_count, cfg.last_reward_total, cfg.last_usage_leaf_count, cfg.last_usage_total, cfg.last_usage_cost_total
        ),
    );
}

/// Vault ≥ minted − claimed: only the program takes tokens out of the vault (claims), but anyone
/// can send tokens to it.
fn vault_check(c: &mut Checks, s: &Snapshot) {
    let cfg = &s.config;
    let mut p = vec![];
    let owed = cfg.total_minted.checked_sub(cfg.total_claimed);
    let vault = s.vault.as_ref().map(|(_, v)| v.amount);
    match (vault, owed) {
        (Some(v), Some(o)) if v < o => p.push(format!(
            "the vault holds {v}, less than minted {} − claimed {} = {o}: {} of the unclaimed \
             rewards are missing",
            cfg.total_minted,
            cfg.total_claimed,
            o - v
        )),
        (Some(_), Some(_)) => {}
        (None, _) => p.push("the vault cannot be read".into()),
        (_, None) => p.push(format!(
            "claimed {} exceeds minted {}",
            cfg.total_claimed, cfg.total_minted
        )),
    }
    let donated = vault.zip(owed).map_or(0, |(v, o)| v.saturating_sub(o));
    c.add(
        "vault.balance",
        None,
        p,
        format!(
            "vault {} ≥ minted {} − claimed {}{}",
            vault.unwrap_or(0),
            cfg.total_minted,
            cfg.total_claimed,
            if donated > 0 {
                format!(
                    " ({donated} more: tokens sent to the vault directly, which anyone can do; \
                     they are not rewards and no claim pays them out)"
                )
            } else {
                " (equal: nothing was sent to the vault directly)".to_string()
            }
        ),
    );
}

/// Supply ≤ initial + minted − burned for credits: only the program mints, but any holder can
/// burn its own tokens directly (an SPL Token burn, outside `buy_credits`), lowering the supply.
fn mint_supply_check(c: &mut Checks, s: &Snapshot) {
    let cfg = &s.config;
    let mut p = vec![];
    let expected = (i128::from(cfg.initial_supply) + i128::from(cfg.total_minted))
        - i128::from(cfg.total_burned);
    let supply = s.mint.map(|m| i128::from(m.supply));
    match supply {
        Some(supply) if supply > expected => p.push(format!(
            "the mint's supply is {supply}, more than initial {} + minted {} − burned for \
             credits {} = {expected}: {} tokens were minted outside the program's rewards",
            cfg.initial_supply,
            cfg.total_minted,
            cfg.total_burned,
            supply - expected
        )),
        Some(_) => {}
        None => p.push("the mint cannot be read".into()),
    }
    let burned_directly = supply.map_or(0, |v| (expected - v).max(0));
    c.add(
        "mint.supply",
        None,
        p,
        format!(
            "supply {} ≤ initial {} + minted {} − burned for credits {}{}",
            s.mint.map_or(0, |m| m.supply),
            cfg.initial_supply,
            cfg.total_minted,
            cfg.total_burned,
            if burned_directly > 0 {
                format!(
                    " ({burned_directly} less: tokens their holders burned directly, outside \
                     buy_credits, which anyone can do with their own tokens; they bought no \
                     credits and fund no rewards)"
                )
            } else {
                " (equal: nobody burned tokens outside buy_credits)".to_string()
            }
        ),
    );
}

fn burned_check(
    c: &mut Checks,
    s: &Snapshot,
    finalized: &[&EpochRecord],
    ledgers: &BTreeMap<u64, &EpochLedger>,
    recomputed: &Recomputed,
) {
    let cfg = &s.config;
    let mut p = vec![];
    same(
        &mut p,
        "Σ ledgers' tokens_burned",
        sum(ledgers.values().map(|l| l.tokens_burned)),
        u128::from(cfg.total_burned),
    );
    same(
        &mut p,
        "Σ credit accounts' tokens_burned",
        sum(s.credits.iter().map(|(_, a)| a.tokens_burned)),
        u128::from(cfg.total_burned),
    );
    same(
        &mut p,
        "Σ ledgers' credits_issued",
        sum(ledgers.values().map(|l| l.credits_issued)),
        u128::from(cfg.credits_issued),
    );
    match recomputed.burned {
        Some(v) => same(
            &mut p,
            "burned_finalized (Σ finalized epochs' ledgers)",
            cfg.burned_finalized,
            v,
        ),
        None => {
            p.push("burned_finalized cannot be recomputed: a finalized epoch has no ledger".into())
        }
    }
    let issued_finalized: Option<u128> = finalized
        .iter()
        .map(|r| ledgers.get(&r.epoch).map(|l| u128::from(l.credits_issued)))
        .sum();
    match issued_finalized {
        Some(v) => same(
            &mut p,
            "credits_issued_finalized (Σ finalized epochs' ledgers)",
            u128::from(cfg.credits_issued_finalized),
            v,
        ),
        None => p.push(
            "credits_issued_finalized cannot be recomputed: a finalized epoch has no ledger".into(),
        ),
    }
    c.add(
        "totals.burned",
        None,
        p,
        format!(
            "total_burned {} = Σ of {} ledgers = Σ of {} credit accounts; {} of it in finalized epochs; credits_issued {} = Σ ledgers, {} of them in finalized epochs",
            cfg.total_burned,
            ledgers.len(),
            s.credits.len(),
            cfg.burned_finalized,
            cfg.credits_issued,
            cfg.credits_issued_finalized
        ),
    );
}

/// Credits: issued − settled = Σ balances, and each account's figures add up.
fn credit_balances_check(c: &mut Checks, s: &Snapshot, ledgers: &BTreeMap<u64, &EpochLedger>) {
    let cfg = &s.config;
    let mut p = vec![];
    let balances = sum(s.credits.iter().map(|(_, a)| a.balance));
    same(
        &mut p,
        "credits_issued − credits_settled",
        i128::from(cfg.credits_issued) - i128::from(cfg.credits_settled),
        i128::try_from(balances).unwrap_or(i128::MAX),
    );
    same(
        &mut p,
        "Σ accounts' issued",
        sum(s.credits.iter().map(|(_, a)| a.issued)),
        u128::from(cfg.credits_issued),
    );
    same(
        &mut p,
        "Σ accounts' settled",
        sum(s.credits.iter().map(|(_, a)| a.settled)),
        u128::from(cfg.credits_settled),
    );
    same(
        &mut p,
        "Σ accounts' unpaid",
        sum(s.credits.iter().map(|(_, a)| a.unpaid)),
        u128::from(cfg.credits_unpaid),
    );
    same(
        &mut p,
        "Σ ledgers' credits_settled",
        sum(ledgers.values().map(|l| l.credits_settled)),
        u128::from(cfg.credits_settled),
    );
    same(
        &mut p,
        "Σ ledgers' credits_unpaid",
        sum(ledgers.values().map(|l| l.credits_unpaid)),
        u128::from(cfg.credits_unpaid),
    );
    for (_, a) in &s.credits {
        if a.issued.checked_sub(a.settled) != Some(a.balance) {
            p.push(format!(
                "buyer {}: balance {} ≠ issued {} − settled {}",
                a.buyer, a.balance, a.issued, a.settled
            ));
        }
        if u128::from(a.settled) + u128::from(a.unpaid) != u128::from(a.consumed_cumulative) {
            p.push(format!(
                "buyer {}: settled {} + unpaid {} ≠ consumed {}",
                a.buyer, a.settled, a.unpaid, a.consumed_cumulative
            ));
        }
        if let Some(problem) = checkpoints_problem(a) {
            p.push(format!("buyer {}: {problem}", a.buyer));
        }
    }
    c.add(
        "credits.balances",
        None,
        p,
        format!(
            "issued {} − settled {} = Σ of {} balances {balances}; unpaid {}",
            cfg.credits_issued,
            cfg.credits_settled,
            s.credits.len(),
            cfg.credits_unpaid
        ),
    );
}

/// What is wrong with a credit account's purchase checkpoints, if anything: more in use than it
/// has, epochs that do not increase, figures before a purchase epoch that shrink from one
/// checkpoint to the next or exceed the totals, or purchases without a checkpoint.
fn checkpoints_problem(a: &CreditAccount) -> Option<String> {
    if usize::from(a.checkpoint_count) > a.checkpoints.len() {
        return Some(format!(
            "{} purchase checkpoints in use, it has {}",
            a.checkpoint_count,
            a.checkpoints.len()
        ));
    }
    let checkpoints = a.purchase_checkpoints();
    if checkpoints.is_empty() && (a.issued > 0 || a.tokens_burned > 0) {
        return Some(format!(
            "bought {} credits for {} tokens but has no purchase checkpoint",
            a.issued, a.tokens_burned
        ));
    }
    for w in checkpoints.windows(2) {
        let [c, n] = w else { continue };
        if c.epoch >= n.epoch {
            return Some(format!(
                "purchase checkpoints out of order: epoch {} before epoch {}",
                c.epoch, n.epoch
            ));
        }
        if c.issued_before > n.issued_before || c.tokens_before > n.tokens_before {
            return Some(format!(
                "before its purchase epoch {} it had bought {} credits for {} tokens, more than \
                 before epoch {} ({} for {})",
                c.epoch,
                c.issued_before,
                c.tokens_before,
                n.epoch,
                n.issued_before,
                n.tokens_before
            ));
        }
    }
    let c = checkpoints.last()?;
    if c.issued_before > a.issued || c.tokens_before > a.tokens_burned {
        return Some(format!(
            "before its purchase epoch {} it had bought {} credits for {} tokens, more than its \
             totals {} for {}",
            c.epoch, c.issued_before, c.tokens_before, a.issued, a.tokens_burned
        ));
    }
    None
}
