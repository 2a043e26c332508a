//! `credits.settled_within_usage` and `claims.within_cumulative`.

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;

#[test]
fn settling_or_claiming_beyond_the_latest_leaf_fails() {
    let mut f = Fixture::new();
    let acc = &mut f.snapshot.credits[0].1;
    acc.consumed_cumulative += 1;
    acc.unpaid += 1;
    f.cfg().credits_unpaid += 1;
    f.ledger(1).credits_unpaid += 1;
    let r = f.run();
    passed(&r, "credits.balances");
    let evidence = failed(&r, "credits.settled_within_usage");
    assert!(evidence.contains("latest usage leaf"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.claims[0].1.claimed += 1;
    f.cfg().total_claimed += 1;
    f.snapshot.vault.as_mut().unwrap().1.amount -= 1;
    let r = f.run();
    passed(&r, "vault.balance");
    let evidence = failed(&r, "claims.within_cumulative");
    assert!(evidence.contains("latest cumulative reward"), "{evidence}");

    // A claim by an operator with no leaf at all.
    let mut f = Fixture::new();
    f.snapshot.claims[0].1.operator = Pubkey::new_from_array([0x77; 32]);
    failed(&f.run(), "claims.within_cumulative");
}
