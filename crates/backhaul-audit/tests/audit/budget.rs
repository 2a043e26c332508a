//! `allocation.sum_of_increases`, `budget.parameters` and `budget.within`.

use crate::fixture::*;

#[test]
fn an_allocation_that_is_not_the_sum_of_increases_fails() {
    let mut f = Fixture::new();
    f.ledger(1).tokens_minted += 1;
    let evidence = failed(&f.run(), "epoch-1/allocation.sum_of_increases");
    assert!(evidence.contains("tokens_minted"), "{evidence}");

    let mut f = Fixture::new();
    f.record(1).proposal.allocation -= 1;
    let r = f.run();
    failed(&r, "epoch-1/allocation.sum_of_increases");
    failed(&r, "epoch-1/proposal.matches_dataset");
}

#[test]
fn parameters_that_differ_from_the_chain_fail() {
    let mut f = Fixture::new();
    f.edit(1, |d| d.parameters.tokens_burned += 1);
    let evidence = failed(&f.run(), "epoch-1/budget.parameters");
    assert!(evidence.contains("tokens_burned"), "{evidence}");

    let mut f = Fixture::new();
    f.edit(1, |d| d.parameters.scheduled_minted = 0);
    let evidence = failed(&f.run(), "epoch-1/budget.parameters");
    assert!(evidence.contains("scheduled_minted"), "{evidence}");

    let mut f = Fixture::new();
    f.ledger(0).burn_ema += 1;
    let r = f.run();
    let evidence = failed(&r, "epoch-1/budget.parameters");
    assert!(evidence.contains("previous_burn_ema"), "{evidence}");
    failed(&r, "epoch-0/budget.within");
}

#[test]
fn an_allocation_over_the_budget_fails() {
    let mut f = Fixture::new();
    let over = f.decoded[&0].budget.total + 1;
    f.edit(0, |d| {
        let extra = over - d.allocation;
        d.allocation = over;
        d.rewards.leaves[0].amount += extra;
        d.rewards.leaves[0].cumulative += extra;
        d.rewards.total += extra;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/budget.within");
    assert!(evidence.contains("exceeds the budget"), "{evidence}");

    let mut f = Fixture::new();
    f.ledger(1).budget += 1;
    let evidence = failed(&f.run(), "epoch-1/budget.within");
    assert!(evidence.contains("ledger's budget"), "{evidence}");

    // A dataset whose published budget is not what its parameters give.
    let mut f = Fixture::new();
    f.edit(0, |d| d.budget.net += 1);
    let evidence = failed(&f.run(), "epoch-0/budget.within");
    assert!(evidence.contains("budget.net"), "{evidence}");
}

#[test]
fn burns_not_reemitted_is_recomputed_from_the_epochs() {
    // Epoch 0 re-minted part of its burns (what its allocation took beyond the schedule's one
    // token): epoch 1 may re-mint what is left of both epochs' burns.
    let f = Fixture::new();
    let d0 = &f.decoded[&0];
    let reminted = d0.allocation - d0.budget.scheduled_room;
    assert_eq!(reminted, 8 * TOKEN / 10, "the fixture re-mints from burns");
    assert_eq!(
        f.decoded[&1].parameters.burns_not_reemitted,
        157 * TOKEN - reminted
    );
    passed(&f.run(), "epoch-1/budget.parameters");

    let mut f = Fixture::new();
    f.edit(1, |d| d.parameters.burns_not_reemitted += 1);
    let evidence = failed(&f.run(), "epoch-1/budget.parameters");
    assert!(
        evidence.contains("burns_not_reemitted (vs the epochs before"),
        "{evidence}"
    );

    // The config's running totals of finalized burns and re-mints are reconciled too.
    let mut f = Fixture::new();
    f.cfg().burned_finalized += 1;
    let evidence = failed(&f.run(), "totals.burned");
    assert!(evidence.contains("burned_finalized"), "{evidence}");
    let mut f = Fixture::new();
    f.cfg().total_reemitted += 1;
    f.cfg().scheduled_minted -= 1;
    let evidence = failed(&f.run(), "totals.minted");
    assert!(
        evidence.contains("total_reemitted (recomputed"),
        "{evidence}"
    );
}
