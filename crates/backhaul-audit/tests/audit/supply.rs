//! `vault.balance`, `mint.supply`, `totals.*` and `credits.balances`.

use crate::fixture::*;

#[test]
fn donations_to_the_vault_and_direct_burns_pass() {
    // Anyone can send tokens to the vault, and burn its own tokens outside buy_credits.
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.amount += 5 * TOKEN;
    f.snapshot.mint.as_mut().unwrap().supply -= 3 * TOKEN;
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);
    let vault = &r.check("vault.balance").unwrap().evidence;
    assert!(
        vault.contains("5000000 more: tokens sent to the vault directly"),
        "{vault}"
    );
    let supply = &r.check("mint.supply").unwrap().evidence;
    assert!(
        supply.contains("3000000 less: tokens their holders burned directly"),
        "{supply}"
    );
    // Without either, both identities hold with equality.
    let r = Fixture::new().run();
    assert!(r.check("vault.balance").unwrap().evidence.contains("equal"));
    assert!(r.check("mint.supply").unwrap().evidence.contains("equal"));
}

#[test]
fn the_reconciliations_fail_when_a_total_is_off() {
    // A vault holding less than what was minted and not claimed yet.
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.amount -= 1;
    let evidence = failed(&f.run(), "vault.balance");
    assert!(
        evidence.contains("less than minted") && evidence.contains("1 of the unclaimed"),
        "{evidence}"
    );

    // A supply above what the program minted and buyers burned: minted elsewhere.
    let mut f = Fixture::new();
    f.snapshot.mint.as_mut().unwrap().supply += 1;
    let evidence = failed(&f.run(), "mint.supply");
    assert!(evidence.contains("minted outside"), "{evidence}");

    // Claimed more than was minted.
    let mut f = Fixture::new();
    f.cfg().total_claimed = f.snapshot.config.total_minted + 1;
    failed(&f.run(), "vault.balance");

    // What only the program moves stays exact.
    let mut f = Fixture::new();
    f.cfg().last_usage_cost_total += 1;
    let evidence = failed(&f.run(), "totals.latest_trees");
    assert!(evidence.contains("last_usage_cost_total"), "{evidence}");
    let mut f = Fixture::new();
    f.cfg().credits_issued_finalized -= 1;
    let evidence = failed(&f.run(), "totals.burned");
    assert!(evidence.contains("credits_issued_finalized"), "{evidence}");
    let mut f = Fixture::new();
    f.snapshot.credits[0].1.checkpoints[0].tokens_before = u64::MAX;
    let evidence = failed(&f.run(), "credits.balances");
    assert!(evidence.contains("before its purchase epoch"), "{evidence}");
    let mut f = Fixture::new();
    let checkpoints = &mut f.snapshot.credits[0].1.checkpoints;
    checkpoints[1] = checkpoints[0];
    f.snapshot.credits[0].1.checkpoint_count = 2;
    let evidence = failed(&f.run(), "credits.balances");
    assert!(evidence.contains("out of order"), "{evidence}");
    let mut f = Fixture::new();
    f.snapshot.credits[0].1.checkpoint_count = 9;
    let evidence = failed(&f.run(), "credits.balances");
    assert!(
        evidence.contains("9 purchase checkpoints in use"),
        "{evidence}"
    );

    let mut f = Fixture::new();
    f.cfg().total_minted += 1;
    let r = f.run();
    failed(&r, "totals.minted");

    let mut f = Fixture::new();
    f.cfg().last_usage_leaf_count += 1;
    failed(&f.run(), "totals.latest_trees");

    let mut f = Fixture::new();
    f.snapshot.credits[0].1.tokens_burned += 1;
    let evidence = failed(&f.run(), "totals.burned");
    assert!(evidence.contains("credit accounts"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.credits[0].1.balance += 1;
    let evidence = failed(&f.run(), "credits.balances");
    assert!(
        evidence.contains("balances") || evidence.contains("balance"),
        "{evidence}"
    );
}
