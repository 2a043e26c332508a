//! `dataset.reward_leaves`, `dataset.usage_leaves`, `root.rewards` and `root.usage`.

use crate::fixture::*;
use backhaul_protocol::dataset::hex;

#[test]
fn a_cumulative_that_is_not_previous_plus_amount_fails_the_reward_leaves() {
    let mut f = Fixture::new();
    f.edit(1, |d| {
        d.rewards.leaves[0].cumulative += 1;
        d.rewards.total += 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/dataset.reward_leaves");
    assert!(evidence.contains("previous cumulative"), "{evidence}");
    passed(&r, "epoch-1/root.rewards");
}

#[test]
fn unsorted_duplicate_or_miscounted_reward_leaves_fail() {
    let mut f = Fixture::new();
    f.decoded.get_mut(&1).unwrap().rewards.leaves.swap(0, 1);
    let bytes = f.decoded[&1].to_bytes();
    f.set_bytes(1, bytes);
    let evidence = failed(&f.run(), "epoch-1/dataset.reward_leaves");
    assert!(evidence.contains("sorted"), "{evidence}");

    let mut f = Fixture::new();
    f.edit(0, |d| d.rewards.leaf_count += 1);
    let evidence = failed(&f.run(), "epoch-0/dataset.reward_leaves");
    assert!(evidence.contains("leaf_count"), "{evidence}");

    // An operator that disappears from the tree.
    let mut f = Fixture::new();
    f.edit(1, |d| {
        let gone = d.rewards.leaves.remove(0);
        d.rewards.leaf_count -= 1;
        d.rewards.total -= gone.cumulative;
    });
    let evidence = failed(&f.run(), "epoch-1/dataset.reward_leaves");
    assert!(evidence.contains("has none now"), "{evidence}");
}

#[test]
fn overflowing_leaves_fail_the_leaves_and_the_root() {
    let mut f = Fixture::new();
    f.decoded.get_mut(&1).unwrap().rewards.leaves[0].cumulative = u64::MAX;
    f.decoded.get_mut(&1).unwrap().rewards.leaves[1].cumulative = u64::MAX;
    let bytes = f.decoded[&1].to_bytes();
    f.set_bytes(1, bytes);
    let r = f.run();
    failed(&r, "epoch-1/dataset.reward_leaves");
    let evidence = failed(&r, "epoch-1/root.rewards");
    assert!(evidence.contains("Overflow"), "{evidence}");
}

#[test]
fn mispriced_usage_fails_the_usage_leaves() {
    let mut f = Fixture::new();
    f.edit(0, |d| {
        d.usage.leaves[0].credits += 5;
        d.usage.leaves[0].cumulative += 5;
        d.usage.total += 5;
        d.usage.credits_consumed += 5;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/dataset.usage_leaves");
    assert!(evidence.contains("credits per GiB"), "{evidence}");
}

#[test]
fn roots_that_differ_from_the_leaves_or_the_chain_fail() {
    let mut f = Fixture::new();
    let d = f.decoded.get_mut(&0).unwrap();
    d.rewards.root = hex(&[0xAB; 32]);
    let bytes = d.to_bytes();
    f.set_bytes(0, bytes);
    let evidence = failed(&f.run(), "epoch-0/root.rewards");
    assert!(evidence.contains("vs the dataset"), "{evidence}");

    let mut f = Fixture::new();
    f.record(1).proposal.usage_root = [0xCD; 32];
    let evidence = failed(&f.run(), "epoch-1/root.usage");
    assert!(evidence.contains("vs the chain"), "{evidence}");
}
