//! `proposal.matches_dataset` and `proposal.quorum`.

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;

#[test]
fn a_proposal_that_differs_from_its_dataset_fails() {
    let mut f = Fixture::new();
    f.record(0).proposal.reward_leaf_count += 1;
    let evidence = failed(&f.run(), "epoch-0/proposal.matches_dataset");
    assert!(evidence.contains("reward_leaf_count"), "{evidence}");
}

#[test]
fn a_proposal_without_quorum_or_finalized_early_fails() {
    // The record's digest is not its proposal's.
    let mut f = Fixture::new();
    f.record(0).proposal_digest = [0x11; 32];
    let evidence = failed(&f.run(), "epoch-0/proposal.quorum");
    assert!(evidence.contains("hashes to"), "{evidence}");

    // Fewer votes than the threshold.
    let mut f = Fixture::new();
    f.record(1).votes.clear();
    let evidence = failed(&f.run(), "epoch-1/proposal.quorum");
    assert!(evidence.contains("threshold"), "{evidence}");

    // A vote from outside the oracle set.
    let mut f = Fixture::new();
    f.record(1).votes[0].oracle = Pubkey::new_from_array([0x99; 32]);
    let evidence = failed(&f.run(), "epoch-1/proposal.quorum");
    assert!(evidence.contains("not in the oracle set"), "{evidence}");

    // Finalized before its challenge period ended.
    let mut f = Fixture::new();
    let r = f.record(0);
    r.finalized_at = r.finalizable_at - 1;
    let evidence = failed(&f.run(), "epoch-0/proposal.quorum");
    assert!(
        evidence.contains("before the challenge period ended"),
        "{evidence}"
    );
}
