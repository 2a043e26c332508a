//! One epoch's economics, recomputed with `backhaul_core::cost` and `backhaul_core::split`:
//!
//! - `cost.consumption`: each buyer's `cost` is the average cost of its credits not consumed yet
//!   (`consumption_cost`, from its previous cumulative figures and its purchases through the
//!   epoch), its `cumulative_cost` and the tree's cost totals add up, and purchases never shrink;
//! - `cost.purchases`: each charged buyer's purchases against its credit account on-chain
//!   (`purchases_through` of its purchase checkpoints), exactly where the account still tells
//!   (`purchases_through_is_exact`), as a bound otherwise;
//!
//! A buyer is charged in an epoch when bytes of its traffic counted in it. Only charged buyers'
//! leaves carry purchases, a cost and a pot; the others' are 0 (their credit accounts played no
//! part in the close).
//! - `allocation.pots`: each buyer's `pot` is what `buyer_pots` gives for the epoch's budget, k
//!   and the costs, and the allocation is their sum;
//! - `allocation.served`: each pot is split over the operators that served the buyer in
//!   proportion to their bytes (`split_largest_remainder`), and each operator's reward is the
//!   sum of its rows.
//!
//! Together they check that an epoch paid each operator only out of what the buyers it served
//! paid for their consumption, at most k times it.

use crate::evidence::{key, same, sum};
use crate::report::Checks;
use crate::run::EpochCtx;
use backhaul::state::CreditAccount;
use backhaul_core::budget::EpochBudget;
use backhaul_core::cost::{
    buyer_pots, consumption_cost, purchases_through, purchases_through_is_exact, Consumed,
    PurchaseCheckpoint, Purchases,
};
use backhaul_core::split::split_largest_remainder;
use backhaul_protocol::dataset::{Dataset, Served, UsageLeaf};
use std::collections::BTreeMap;

/// Every economics check of epoch `x.e`; `budget` is the one recomputed by `budget.within`.
pub(crate) fn checks(c: &mut Checks, x: &EpochCtx, ds: &Dataset, budget: Option<&EpochBudget>) {
    consumption_check(c, x, ds);
    purchases_check(c, x, ds);
    pots_check(c, x.e, ds, budget);
    served_check(c, x.e, ds);
}

fn purchases_of(l: &UsageLeaf) -> Purchases {
    Purchases {
        credits: l.purchased_credits,
        tokens: l.purchased_tokens,
    }
}

/// Each buyer's cost recomputed from its previous cumulative figures and its purchases.
fn consumption_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let u = &ds.usage;
    let mut p = vec![];
    let prev_missing = e > 0 && x.prev.is_none();
    let before: BTreeMap<&str, &UsageLeaf> = x
        .prev
        .map(|d| {
            d.usage
                .leaves
                .iter()
                .map(|l| (l.buyer.as_str(), l))
                .collect()
        })
        .unwrap_or_default();
    if prev_missing {
        p.push(format!(
            "cannot recompute the buyers' costs: they start from epoch {}'s cumulative figures and \
             its dataset is unavailable (see epoch-{}/dataset.available)",
            e - 1,
            e - 1
        ));
    } else {
        for l in &u.leaves {
            let was = before.get(l.buyer.as_str()).copied();
            let consumed = Consumed {
                credits: was.map_or(0, |w| w.cumulative),
                cost: was.map_or(0, |w| w.cumulative_cost),
            };
            let purchases = purchases_of(l);
            if l.bytes == 0 {
                // Not charged: nothing consumed, nothing paid, no purchases recorded.
                if (l.credits, l.cost, l.pot) != (0, 0, 0) || purchases != Purchases::default() {
                    p.push(format!(
                        "buyer {}: no bytes of its traffic counted, yet its leaf has {} credits, \
                         cost {}, pot {} and purchases of {} credits for {} tokens (all should \
                         be 0)",
                        l.buyer, l.credits, l.cost, l.pot, purchases.credits, purchases.tokens
                    ));
                }
            } else if let Some(w) = was.filter(|w| w.bytes > 0) {
                let earlier = purchases_of(w);
                if purchases.credits < earlier.credits || purchases.tokens < earlier.tokens {
                    p.push(format!(
                        "buyer {}: its purchases through epoch {e} ({} credits for {} tokens) are \
                         fewer than through epoch {} ({} credits for {} tokens): purchases never \
                         shrink",
                        l.buyer,
                        purchases.credits,
                        purchases.tokens,
                        e - 1,
                        earlier.credits,
                        earlier.tokens
                    ));
                }
            }
            // A buyer consuming no credits costs nothing (even when not charged, with no
            // purchases recorded).
            let cost = if l.credits == 0 {
                Ok(0)
            } else {
                consumption_cost(consumed, purchases, l.credits)
            };
            match cost {
                Ok(cost) if cost == l.cost => {}
                Ok(cost) => p.push(format!(
                    "buyer {}: cost is {}, expected {cost}: {} credits at the average cost of the \
                     {} credits it had not consumed yet, bought for {} tokens not yet counted \
                     (consumption_cost)",
                    l.buyer,
                    l.cost,
                    l.credits,
                    purchases.credits.saturating_sub(consumed.credits),
                    purchases.tokens.saturating_sub(consumed.cost)
                )),
                Err(_)
                    if u128::from(consumed.credits) + u128::from(l.credits)
                        > u128::from(purchases.credits) =>
                {
                    p.push(format!(
                        "buyer {}: consumed {} credits in all ({} before and {} this epoch), more \
                         than the {} it bought through the epoch",
                        l.buyer,
                        u128::from(consumed.credits) + u128::from(l.credits),
                        consumed.credits,
                        l.credits,
                        purchases.credits
                    ))
                }
                Err(_) if consumed.cost > purchases.tokens => p.push(format!(
                    "buyer {}: its consumption before this epoch cost {} tokens, more than the {} \
                     it paid through the epoch",
                    l.buyer, consumed.cost, purchases.tokens
                )),
                Err(err) => p.push(format!(
                    "buyer {}: its cost cannot be computed: {err:?}",
                    l.buyer
                )),
            }
            same(
                &mut p,
                &format!(
                    "buyer {}'s cumulative_cost (previous {} + cost {})",
                    l.buyer, consumed.cost, l.cost
                ),
                u128::from(l.cumulative_cost),
                u128::from(consumed.cost) + u128::from(l.cost),
            );
        }
        same(
            &mut p,
            "parameters.previous_usage_cost_total (vs the previous dataset's usage.cost_total)",
            ds.parameters.previous_usage_cost_total,
            x.prev.map_or(0, |d| d.usage.cost_total),
        );
    }
    same(
        &mut p,
        "usage.cost_total (vs the sum of cumulative costs)",
        u128::from(u.cost_total),
        sum(u.leaves.iter().map(|l| l.cumulative_cost)),
    );
    same(
        &mut p,
        "usage.usage_cost (vs the sum of the buyers' costs)",
        u128::from(u.usage_cost),
        sum(u.leaves.iter().map(|l| l.cost)),
    );
    same(
        &mut p,
        "usage.cost_total (vs previous_usage_cost_total + usage_cost)",
        u128::from(u.cost_total),
        u128::from(ds.parameters.previous_usage_cost_total) + u128::from(u.usage_cost),
    );
    c.add(
        "cost.consumption",
        Some(e),
        p,
        format!(
            "{} buyers: each one's cost is the average cost of its credits not consumed yet \
             (consumption_cost from its previous cumulative figures and its purchases through \
             the epoch), purchases never shrink; this epoch's consumption cost {} (all \
             consumption so far {} = previous {} + {})",
            u.leaves.len(),
            u.usage_cost,
            u.cost_total,
            ds.parameters.previous_usage_cost_total,
            u.usage_cost
        ),
    );
}

/// A credit account's purchase checkpoints, as `backhaul_core::cost` takes them.
pub(crate) fn checkpoints_of(a: &CreditAccount) -> Vec<PurchaseCheckpoint> {
    a.purchase_checkpoints()
        .iter()
        .map(|c| PurchaseCheckpoint {
            epoch: c.epoch,
            before: Purchases {
                credits: c.issued_before,
                tokens: c.tokens_before,
            },
        })
        .collect()
}

/// The epochs of `checkpoints`, in words.
fn epochs_of(checkpoints: &[PurchaseCheckpoint]) -> String {
    if checkpoints.is_empty() {
        return "none".into();
    }
    let epochs: Vec<String> = checkpoints.iter().map(|c| c.epoch.to_string()).collect();
    epochs.join(", ")
}

/// Each buyer's purchases against its credit account: `purchases_through` is exact unless the
/// buyer bought in more purchase epochs since than the account remembers; where the account
/// cannot tell (`purchases_through_is_exact`), it only bounds them (what the buyer had bought
/// before its oldest remembered purchase epoch).
fn purchases_check(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let mut p = vec![];
    let accounts: BTreeMap<[u8; 32], &CreditAccount> =
        x.s.credits
            .iter()
            .map(|(_, a)| (a.buyer.to_bytes(), a))
            .collect();
    let (mut exact, mut bounded) = (0usize, 0usize);
    // Buyers not charged this epoch record no purchases (`cost.consumption` checks that).
    for l in ds.usage.leaves.iter().filter(|l| l.bytes > 0) {
        let Some(buyer) = key(&mut p, "usage leaf buyer", &l.buyer) else {
            continue;
        };
        let claimed = purchases_of(l);
        let Some(a) = accounts.get(&buyer) else {
            if claimed != Purchases::default() {
                p.push(format!(
                    "buyer {} has no credit account on-chain, but the dataset says it bought {} \
                     credits for {} tokens",
                    l.buyer, claimed.credits, claimed.tokens
                ));
            }
            exact += 1;
            continue;
        };
        let total = Purchases {
            credits: a.issued,
            tokens: a.tokens_burned,
        };
        let checkpoints = checkpoints_of(a);
        let through = purchases_through(total, &checkpoints, e);
        if purchases_through_is_exact(&checkpoints, e) {
            exact += 1;
            if claimed != through {
                p.push(format!(
                    "buyer {}: the dataset says it bought {} credits for {} tokens through epoch \
                     {e}, its credit account says {} for {} (purchase epochs {})",
                    l.buyer,
                    claimed.credits,
                    claimed.tokens,
                    through.credits,
                    through.tokens,
                    epochs_of(&checkpoints)
                ));
            }
        } else {
            // Bought in more epochs since than the account remembers: what it held before its
            // oldest remembered purchase epoch bounds what it held through this one.
            bounded += 1;
            if claimed.credits > through.credits || claimed.tokens > through.tokens {
                p.push(format!(
                    "buyer {}: the dataset says it bought {} credits for {} tokens through epoch \
                     {e}, more than the {} for {} its credit account held before epoch {}",
                    l.buyer,
                    claimed.credits,
                    claimed.tokens,
                    through.credits,
                    through.tokens,
                    checkpoints.first().map_or(0, |c| c.epoch)
                ));
            }
        }
    }
    // Across buyers: never more than every purchase through the epoch (its ledger and those
    // before it).
    let ledgers = x.s.ledgers.iter().filter(|(_, l)| l.epoch <= e);
    let (issued, burned) = ledgers.fold((0u128, 0u128), |(i, b), (_, l)| {
        (
            i + u128::from(l.credits_issued),
            b + u128::from(l.tokens_burned),
        )
    });
    let claimed_credits = sum(ds.usage.leaves.iter().map(|l| l.purchased_credits));
    let claimed_tokens = sum(ds.usage.leaves.iter().map(|l| l.purchased_tokens));
    if claimed_credits > issued || claimed_tokens > burned {
        p.push(format!(
            "the buyers bought {claimed_credits} credits for {claimed_tokens} tokens through \
             epoch {e} by the dataset, more than the ledgers of epochs 0..={e} issued ({issued} \
             credits for {burned} tokens)"
        ));
    }
    c.add(
        "cost.purchases",
        Some(e),
        p,
        format!(
            "{exact} charged buyers' purchases through epoch {e} equal their credit accounts' \
             figures (purchases_through){}; together {claimed_credits} credits for \
             {claimed_tokens} tokens, within the ledgers' {issued} for {burned}",
            if bounded > 0 {
                format!(
                    "; {bounded} bought in more epochs since than their accounts remember, so \
                     their accounts only bound them, and they are within"
                )
            } else {
                String::new()
            }
        ),
    );
}

/// Each buyer's pot recomputed with `buyer_pots`; the allocation is their sum.
fn pots_check(c: &mut Checks, e: u64, ds: &Dataset, budget: Option<&EpochBudget>) {
    let mut p = vec![];
    let Some(b) = budget else {
        c.add(
            "allocation.pots",
            Some(e),
            vec!["no budget to recompute the buyers' pots with (see budget.within)".into()],
            String::new(),
        );
        return;
    };
    let k = ds.parameters.usage_cap_bps;
    let costs: Vec<u64> = ds.usage.leaves.iter().map(|l| l.cost).collect();
    match buyer_pots(b.total, k, &costs) {
        Ok(pots) => {
            for (l, pot) in ds.usage.leaves.iter().zip(pots) {
                if l.pot != pot {
                    p.push(format!(
                        "buyer {}: pot is {}, expected {pot}: k {k} bps × its cost {}, or its \
                         share of the budget {} when the pots exceed it (buyer_pots)",
                        l.buyer, l.pot, l.cost, b.total
                    ));
                }
            }
        }
        Err(err) => p.push(format!("the pots cannot be computed: {err:?}")),
    }
    same(
        &mut p,
        "the allocation (vs the sum of the buyers' pots)",
        u128::from(ds.allocation),
        sum(ds.usage.leaves.iter().map(|l| l.pot)),
    );
    c.add(
        "allocation.pots",
        Some(e),
        p,
        format!(
            "allocation {} = the sum of {} buyers' pots, each k {k} bps × what its consumption \
             cost it ({} in all), scaled down to fit the budget {} when they exceed it \
             (buyer_pots)",
            ds.allocation,
            ds.usage.leaves.len(),
            ds.usage.usage_cost,
            b.total
        ),
    );
}

/// One `served` row with its keys decoded.
struct Row<'a> {
    buyer: [u8; 32],
    operator: [u8; 32],
    row: &'a Served,
}

/// Each pot split over the operators that served the buyer, by bytes; each operator's reward is
/// the sum of its rows.
fn served_check(c: &mut Checks, e: u64, ds: &Dataset) {
    let mut p = vec![];
    let rows: Vec<Row> = ds
        .served
        .iter()
        .filter_map(|r| {
            let buyer = key(&mut p, "served row buyer", &r.buyer);
            let operator = key(&mut p, "served row operator", &r.operator);
            Some(Row {
                buyer: buyer?,
                operator: operator?,
                row: r,
            })
        })
        .collect();
    if let Some(i) = rows
        .windows(2)
        .position(|w| (w[0].buyer, w[0].operator) >= (w[1].buyer, w[1].operator))
    {
        p.push(format!(
            "served rows are not sorted and unique by buyer then operator bytes (at position {})",
            i + 1
        ));
    }
    // Rows by buyer, each buyer's by operator key (the order the split breaks ties in).
    let mut by_buyer: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_buyer.entry(r.row.buyer.as_str()).or_default().push(r);
    }
    for list in by_buyer.values_mut() {
        list.sort_by_key(|r| r.operator);
    }
    for l in &ds.usage.leaves {
        let list = by_buyer.remove(l.buyer.as_str()).unwrap_or_default();
        same(
            &mut p,
            &format!("buyer {}'s bytes in its served rows", l.buyer),
            sum(list.iter().map(|r| r.row.bytes)),
            u128::from(l.bytes),
        );
        let weights: Vec<u64> = list.iter().map(|r| r.row.bytes).collect();
        match split_largest_remainder(l.pot, &weights) {
            Ok(shares) => {
                for (r, share) in list.iter().zip(shares) {
                    if r.row.amount != share {
                        p.push(format!(
                            "buyer {}'s pot {}: operator {} served {} of its {} bytes and got {}, \
                             its share is {share}",
                            l.buyer, l.pot, r.row.operator, r.row.bytes, l.bytes, r.row.amount
                        ));
                    }
                }
            }
            Err(err) => p.push(format!(
                "buyer {}'s pot {} cannot be split: {err:?}",
                l.buyer, l.pot
            )),
        }
        let paid = sum(list.iter().map(|r| r.row.amount));
        if paid != u128::from(l.pot) {
            p.push(format!(
                "buyer {}'s pot is {} but its served rows pay {paid}{}",
                l.buyer,
                l.pot,
                if list.is_empty() {
                    ": no operator served it"
                } else {
                    ""
                }
            ));
        }
    }
    for buyer in by_buyer.keys() {
        p.push(format!(
            "served rows name buyer {buyer}, which has no usage leaf"
        ));
    }
    // Each operator's reward is the sum of its rows, and its bytes those of its rows.
    let mut by_operator: BTreeMap<&str, (u128, u128)> = BTreeMap::new();
    for r in &rows {
        let o = by_operator.entry(r.row.operator.as_str()).or_default();
        o.0 += u128::from(r.row.bytes);
        o.1 += u128::from(r.row.amount);
    }
    for l in &ds.rewards.leaves {
        let (bytes, amount) = by_operator.remove(l.operator.as_str()).unwrap_or_default();
        if amount != u128::from(l.amount) {
            p.push(format!(
                "operator {}: its reward amount is {}, its served rows pay {amount}",
                l.operator, l.amount
            ));
        }
        if bytes != u128::from(l.bytes) {
            p.push(format!(
                "operator {}: {} bytes in its reward leaf, {bytes} in its served rows",
                l.operator, l.bytes
            ));
        }
    }
    for (operator, (bytes, amount)) in by_operator {
        p.push(format!(
            "served rows pay operator {operator} {amount} for {bytes} bytes, but it has no \
             reward leaf"
        ));
    }
    c.add(
        "allocation.served",
        Some(e),
        p,
        format!(
            "{} served rows: each buyer's pot split over the operators that served it in \
             proportion to their bytes (split_largest_remainder), each operator's reward the sum \
             of its rows",
            ds.served.len()
        ),
    );
}
