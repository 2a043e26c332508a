//! `cost.consumption`, `cost.purchases`, `allocation.pots` and `allocation.served`.

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;
use backhaul_core::split::GIB;
use backhaul_protocol::dataset::b58;

#[test]
fn a_served_amount_out_of_proportion_fails() {
    let mut f = Fixture::new();
    // Epoch 1: buyer 2's pot paid operators 2 and 3 for 1 and 2 GiB; move one base unit from
    // operator 3 to operator 2, in their rows and their reward leaves alike.
    f.edit(1, |d| {
        row_of(d, &buyer(2), &op(2)).amount += 1;
        row_of(d, &buyer(2), &op(3)).amount -= 1;
        let l = reward_of(d, &op(2));
        l.amount += 1;
        l.cumulative += 1;
        let l = reward_of(d, &op(3));
        l.amount -= 1;
        l.cumulative -= 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/allocation.served");
    assert!(evidence.contains("its share is"), "{evidence}");
    assert!(evidence.contains(&b58(&buyer(2))), "{evidence}");
    passed(&r, "epoch-1/allocation.pots");
    passed(&r, "epoch-1/dataset.reward_leaves");
    passed(&r, "epoch-1/root.rewards");

    // A served row that disagrees with its operator's reward leaf.
    let mut f = Fixture::new();
    f.edit(0, |d| row_of(d, &buyer(1), &op(1)).amount += 1);
    let evidence = failed(&f.run(), "epoch-0/allocation.served");
    assert!(evidence.contains("its served rows pay"), "{evidence}");

    // A reward paid to an operator that did not serve the buyer.
    let mut f = Fixture::new();
    f.edit(0, |d| row_of(d, &buyer(1), &op(1)).operator = b58(&op(3)));
    let evidence = failed(&f.run(), "epoch-0/allocation.served");
    assert!(evidence.contains("no reward leaf"), "{evidence}");
}

#[test]
fn a_tampered_cost_fails() {
    // Buyer 2's cost raised by one base unit everywhere it adds up: its purchases do not give it.
    let mut f = Fixture::new();
    f.edit(1, |d| {
        let l = leaf_of(d, &buyer(2));
        l.cost += 1;
        l.cumulative_cost += 1;
        d.usage.usage_cost += 1;
        d.usage.cost_total += 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/cost.consumption");
    assert!(
        evidence.contains(&format!(
            "buyer {}: cost is 1500001, expected 1500000",
            b58(&buyer(2))
        )),
        "{evidence}"
    );
    passed(&r, "epoch-1/proposal.matches_dataset");

    // A cumulative cost that is not the previous one plus the cost.
    let mut f = Fixture::new();
    f.edit(1, |d| {
        leaf_of(d, &buyer(1)).cumulative_cost += 1;
        d.usage.cost_total += 1;
    });
    let evidence = failed(&f.run(), "epoch-1/cost.consumption");
    assert!(evidence.contains("cumulative_cost"), "{evidence}");

    // Totals that do not add up.
    let mut f = Fixture::new();
    f.edit(0, |d| d.usage.usage_cost += 1);
    let evidence = failed(&f.run(), "epoch-0/cost.consumption");
    assert!(evidence.contains("usage.usage_cost"), "{evidence}");

    // The chain's proposal carries another cost than the dataset.
    let mut f = Fixture::new();
    f.record(1).proposal.usage_cost += 1;
    let evidence = failed(&f.run(), "epoch-1/proposal.matches_dataset");
    assert!(evidence.contains("usage_cost"), "{evidence}");
    let mut f = Fixture::new();
    f.record(0).proposal.usage_cost_total += 1;
    let evidence = failed(&f.run(), "epoch-0/proposal.matches_dataset");
    assert!(evidence.contains("usage_cost_total"), "{evidence}");
}

#[test]
fn consumption_beyond_the_purchases_fails() {
    // Epoch 0 as if buyer 1 had bought only 100,000 credits (for 1 token) of the 200,000 it
    // consumed.
    let mut f = Fixture::new();
    f.edit(0, |d| {
        let l = leaf_of(d, &buyer(1));
        l.purchased_credits = 100_000;
        l.purchased_tokens = TOKEN;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/cost.consumption");
    assert!(
        evidence.contains("more than the 100000 it bought"),
        "{evidence}"
    );
    let evidence = failed(&r, "epoch-0/cost.purchases");
    assert!(evidence.contains("its credit account says"), "{evidence}");
}

#[test]
fn purchases_that_differ_from_the_credit_account_fail() {
    let mut f = Fixture::new();
    f.edit(1, |d| leaf_of(d, &buyer(1)).purchased_tokens += TOKEN);
    let r = f.run();
    let evidence = failed(&r, "epoch-1/cost.purchases");
    assert!(
        evidence.contains(
            "108000000 tokens through epoch 1, its credit account says 10700000 for 107000000"
        ),
        "{evidence}"
    );
    // The cost depends on them too.
    failed(&r, "epoch-1/cost.consumption");

    // A buyer with no credit account on-chain bought nothing.
    let mut f = Fixture::new();
    let key = f.d().credits(&Pubkey::new_from_array(buyer(2)));
    f.snapshot.credits.retain(|(k, _)| *k != key);
    let evidence = failed(&f.run(), "epoch-1/cost.purchases");
    assert!(evidence.contains("has no credit account"), "{evidence}");
}

#[test]
fn later_purchases_leave_earlier_epochs_exact_in_the_credit_account() {
    // Buyer 1 buys again in epoch 3 (not served in epoch 2): its account's checkpoints still
    // tell exactly what it had bought through epochs 0, 1 and 2.
    let mut f = Fixture::new();
    f.epoch(Activity {
        burns: vec![(buyer(2), 10 * TOKEN)],
        traffic: vec![(buyer(2), op(3), GIB)],
    });
    f.epoch(Activity {
        burns: vec![(buyer(1), 30 * TOKEN)],
        traffic: vec![(buyer(1), op(1), 2 * GIB)],
    });
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    for e in 0..4 {
        let evidence = &r
            .check(&format!("epoch-{e}/cost.purchases"))
            .unwrap()
            .evidence;
        assert!(!evidence.contains("only bound"), "epoch {e}: {evidence}");
    }
    // Buyer 1 was not charged in epoch 2: its leaf keeps its cumulative cost and shows nothing
    // else.
    let l = leaf_of(f.decoded.get_mut(&2).unwrap(), &buyer(1)).clone();
    assert_eq!(
        (
            l.credits,
            l.cost,
            l.pot,
            l.purchased_credits,
            l.cumulative_cost
        ),
        (0, 0, 0, 0, 25 * TOKEN / 10)
    );

    // Epoch 0 claiming what buyer 1 had bought by the end of epoch 1 fails: the account knows.
    let mut g = Fixture::new();
    g.epoch(Activity {
        burns: vec![(buyer(2), 10 * TOKEN)],
        traffic: vec![(buyer(2), op(3), GIB)],
    });
    g.epoch(Activity {
        burns: vec![(buyer(1), 30 * TOKEN)],
        traffic: vec![(buyer(1), op(1), 2 * GIB)],
    });
    g.edit(0, |d| leaf_of(d, &buyer(1)).purchased_credits = 10_700_000);
    let evidence = failed(&g.run(), "epoch-0/cost.purchases");
    assert!(
        evidence
            .contains("its credit account says 10000000 for 100000000 (purchase epochs 0, 1, 3)"),
        "{evidence}"
    );

    // A leaf of a buyer not charged that claims purchases.
    f.edit(2, |d| leaf_of(d, &buyer(1)).purchased_credits = 1);
    let evidence = failed(&f.run(), "epoch-2/cost.consumption");
    assert!(
        evidence.contains("no bytes of its traffic counted"),
        "{evidence}"
    );
}

#[test]
fn purchases_in_more_epochs_than_the_account_remembers_leave_old_epochs_bounded() {
    // Buyer 1 buys in each of epochs 2 to 10: its account keeps epochs 3 to 10, so it no longer
    // tells what buyer 1 had bought through epochs 0 and 1, only bounds it (what it had bought
    // before epoch 3: 10,700,000 + 100,000 credits).
    let nine_more = |f: &mut Fixture| {
        for _ in 2..=10 {
            f.epoch(Activity {
                burns: vec![(buyer(1), TOKEN)],
                traffic: vec![(buyer(1), op(1), GIB)],
            });
        }
    };
    let mut f = Fixture::new();
    nine_more(&mut f);
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    for e in 0..2 {
        let evidence = &r
            .check(&format!("epoch-{e}/cost.purchases"))
            .unwrap()
            .evidence;
        assert!(
            evidence.contains(
                "1 bought in more epochs since than their accounts remember, so their accounts \
                 only bound them"
            ),
            "epoch {e}: {evidence}"
        );
    }
    let evidence = &r.check("epoch-2/cost.purchases").unwrap().evidence;
    assert!(!evidence.contains("only bound"), "{evidence}");

    // Within the bound is all that can be checked; beyond it fails.
    let mut g = Fixture::new();
    nine_more(&mut g);
    g.edit(0, |d| leaf_of(d, &buyer(1)).purchased_credits = 10_800_001);
    let evidence = failed(&g.run(), "epoch-0/cost.purchases");
    assert!(
        evidence.contains(
            "more than the 10800000 for 108000000 its credit account held before epoch 3"
        ),
        "{evidence}"
    );
}

#[test]
fn a_tampered_pot_fails() {
    // Buyer 1's pot in epoch 0 lowered by one base unit, everything downstream adjusted: the
    // rows still split it by bytes and the operators' leaves still add up.
    let mut f = Fixture::new();
    f.edit(0, |d| {
        leaf_of(d, &buyer(1)).pot -= 1;
        row_of(d, &buyer(1), &op(2)).amount -= 1;
        let l = reward_of(d, &op(2));
        l.amount -= 1;
        l.cumulative -= 1;
        d.rewards.total -= 1;
        d.allocation -= 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/allocation.pots");
    assert!(
        evidence.contains(&format!(
            "buyer {}: pot is 1799999, expected 1800000",
            b58(&buyer(1))
        )),
        "{evidence}"
    );
    passed(&r, "epoch-0/allocation.served");
    passed(&r, "epoch-0/dataset.reward_leaves");

    // An allocation that is not the sum of the pots.
    let mut f = Fixture::new();
    f.edit(1, |d| leaf_of(d, &buyer(2)).pot += 1);
    let r = f.run();
    let evidence = failed(&r, "epoch-1/allocation.pots");
    assert!(evidence.contains("sum of the buyers' pots"), "{evidence}");
    failed(&r, "epoch-1/allocation.served");
}

#[test]
fn a_budget_below_the_pots_scales_them() {
    // One token of schedule and no net emissions: the 1.8 tokens of pots are scaled to 1.
    let f = Fixture::with(|c| c.economics.net_emissions_cap = 0);
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(r.epochs[0].tokens_minted, TOKEN);
    let d1 = &f.decoded[&1];
    let pots: Vec<u64> = d1.usage.leaves.iter().map(|l| l.pot).collect();
    assert_eq!(pots, [TOKEN / 4, 3 * TOKEN / 4]);

    // Pots paid at k × cost regardless of the budget fail (and exceed it).
    let mut f = Fixture::with(|c| c.economics.net_emissions_cap = 0);
    f.edit(0, |d| {
        let extra = 8 * TOKEN / 10;
        leaf_of(d, &buyer(1)).pot += extra;
        d.allocation += extra;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/allocation.pots");
    assert!(evidence.contains("expected 1000000"), "{evidence}");
    failed(&r, "epoch-0/budget.within");
}
