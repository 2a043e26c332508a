//! A consistent deployment audits clean, with every figure as computed by hand; so does an epoch
//! still in its challenge period or still collecting votes.

use crate::fixture::*;
use backhaul::state::EpochStatus;
use backhaul_core::split::GIB;
use backhaul_protocol::dataset::b58;

#[test]
fn every_check_passes_on_consistent_data() {
    let f = Fixture::new();
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(r.passed && r.failed.is_empty());
    assert_eq!(r.finalized_epochs, 2);
    // 18 per epoch and 13 for the deployment.
    assert_eq!(
        r.checks.len(),
        2 * PER_EPOCH + DEPLOYMENT,
        "{:#?}",
        r.checks
    );
    for id in [
        "epoch-0/dataset.sha256",
        "epoch-1/root.rewards",
        "epoch-1/root.usage",
        "epoch-1/budget.within",
        "epoch-1/consensus.parameters",
        "epoch-1/cost.consumption",
        "epoch-1/cost.purchases",
        "epoch-1/allocation.pots",
        "epoch-1/allocation.served",
        "vault.balance",
        "mint.supply",
        "credits.balances",
        "claims.within_cumulative",
    ] {
        passed(&r, id);
    }
    // The figures: epoch 0 burned 100 tokens for 10,000,000 credits; 200,000 of them were
    // consumed, which cost 2 tokens, and 0.9 of that was minted: 1 token of new supply and 0.8
    // re-minted from the burns.
    let e0 = &r.epochs[0];
    assert_eq!(e0.tokens_burned, 100 * TOKEN);
    assert_eq!(e0.credits_consumed, 200_000);
    assert_eq!(e0.usage_cost, 2 * TOKEN);
    assert_eq!(e0.tokens_minted, 18 * TOKEN / 10);
    assert_eq!(e0.operators_rewarded, 2);
    assert_eq!(
        e0.top_earners[0],
        (b58(&op(2)), 135 * TOKEN / 100),
        "operator 2 served 3 of buyer 1's 4 GiB"
    );
    // Epoch 1: buyer 1's 50,000 credits cost the average of what it had left (10,500,000
    // credits for 105 tokens), buyer 2's 150,000 cost 1.5 tokens; operator 2 served both.
    let d1 = &f.decoded[&1];
    let costs: Vec<(u64, u64)> = d1.usage.leaves.iter().map(|l| (l.cost, l.pot)).collect();
    assert_eq!(
        costs,
        [
            (TOKEN / 2, 45 * TOKEN / 100),
            (15 * TOKEN / 10, 135 * TOKEN / 100)
        ]
    );
    let amounts: Vec<u64> = d1.rewards.leaves.iter().map(|l| l.amount).collect();
    assert_eq!(amounts, [0, 9 * TOKEN / 10, 9 * TOKEN / 10]);
    assert_eq!(r.epochs[1].operators_rewarded, 2);
    assert_eq!(r.epochs[1].usage_cost, 2 * TOKEN);
}

/// Checks per epoch with a dataset, and for the deployment.
const PER_EPOCH: usize = 18;
const DEPLOYMENT: usize = 13;

#[test]
fn an_epoch_in_its_challenge_period_or_still_voting_audits_clean() {
    let activity = || Activity {
        burns: vec![(buyer(1), 20 * TOKEN)],
        traffic: vec![(buyer(1), op(1), GIB), (buyer(1), op(3), GIB)],
    };
    // Epoch 2 has a quorum and waits out its challenge period.
    let mut f = Fixture::new();
    f.epoch_until(activity(), EpochStatus::Proposed);
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(r.finalized_epochs, 2);
    assert_eq!(r.epochs[2].status, "proposed");
    assert_eq!(r.checks.len(), 3 * PER_EPOCH + DEPLOYMENT);
    passed(&r, "epoch-2/budget.within");
    // Its dataset is checked like the others: a changed byte fails.
    let Ok(bytes) = &mut f.datasets.get_mut(&2).unwrap().bytes else {
        panic!()
    };
    let last = bytes.len() - 2;
    bytes[last] = b' ';
    failed(&f.run(), "epoch-2/dataset.sha256");

    // Epoch 2 still collects votes: it has no proposal and no dataset to check yet.
    let mut f = Fixture::new();
    f.epoch_until(activity(), EpochStatus::Voting);
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);
    assert_eq!(r.checks.len(), 2 * PER_EPOCH + DEPLOYMENT);
    assert_eq!(r.epochs[2].status, "voting");
}
