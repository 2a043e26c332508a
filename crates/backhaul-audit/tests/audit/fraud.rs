//! The fraud evidence finder on the fixture's deployment with a third epoch in its challenge
//! period: every kind of proof is found against a tree that breaks its rule (committed as the
//! dataset lists its leaves, as a hostile quorum would), each found proof verifies as the program
//! verifies it, an honest proposal yields nothing, and a dataset that is missing or does not
//! match the chain yields the veto (data withholding).

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;
use backhaul::state::{EpochStatus, FraudProof, Standing, Tree};
use backhaul_audit::fraud::{
    find, judge, verifies, Challenge, Decision, Evidence, Finding, FraudKind,
};
use backhaul_core::merkle::{sha256v, TreeKind};
use backhaul_core::split::GIB;
use backhaul_core::sum_tree::{Leaf, Scope, SumTree};
use backhaul_protocol::dataset::{b58, hex, key_from_b58, Dataset, RewardLeaf, UsageLeaf};
use proptest::prelude::*;

/// Epochs 0 and 1 finalized; epoch 2 proposed, in its challenge period. Its reward leaves are
/// operators 1, 2 and 3; its usage leaves buyers 1 and 2.
fn proposed() -> Fixture {
    let mut f = Fixture::new();
    f.epoch_until(
        Activity {
            burns: vec![(buyer(1), 20 * TOKEN)],
            traffic: vec![(buyer(1), op(1), GIB), (buyer(1), op(3), GIB)],
        },
        EpochStatus::Proposed,
    );
    f
}

const E: u64 = 2;

/// Commits epoch `E`'s dataset as its leaves are listed (no sorting): roots, leaf counts and
/// totals from the trees built as given, the hash, and a new quorum on the chain.
fn commit_listed(f: &mut Fixture) {
    let config = f.d().config.to_bytes();
    let ds = f.decoded.get_mut(&E).unwrap();
    let tree = |kind: TreeKind, leaves: Vec<(String, u64)>| {
        let leaves = leaves
            .into_iter()
            .map(|(k, amount)| Leaf {
                account: key_from_b58(&k).unwrap(),
                amount,
            })
            .collect();
        SumTree::as_given(
            Scope {
                kind,
                config,
                epoch: E,
            },
            leaves,
        )
        .unwrap()
    };
    let rt = tree(
        TreeKind::Reward,
        ds.rewards
            .leaves
            .iter()
            .map(|l| (l.operator.clone(), l.cumulative))
            .collect(),
    );
    let ut = tree(
        TreeKind::Usage,
        ds.usage
            .leaves
            .iter()
            .map(|l| (l.buyer.clone(), l.cumulative))
            .collect(),
    );
    ds.rewards.root = hex(&rt.root());
    ds.rewards.leaf_count = rt.leaf_count();
    ds.rewards.total = rt.total();
    ds.usage.root = hex(&ut.root());
    ds.usage.leaf_count = ut.leaf_count();
    ds.usage.total = ut.total();
    let bytes = ds.to_bytes();
    let epoch_end = ds.epoch_end;
    f.set_bytes(E, bytes);
    let challenge = f.snapshot.config.challenge_period_secs as i64;
    let oracle = f.snapshot.config.oracles[0];
    let r = f.record(E);
    r.proposal.reward_root = rt.root();
    r.proposal.reward_leaf_count = rt.leaf_count();
    r.proposal.reward_total = rt.total();
    r.proposal.usage_root = ut.root();
    r.proposal.usage_leaf_count = ut.leaf_count();
    r.proposal.usage_total = ut.total();
    f.revote(E, oracle, challenge, epoch_end);
    let r = f.record(E);
    r.finalized_at = 0;
}

/// Edits epoch `E`'s dataset and commits it as listed.
fn tamper(f: &mut Fixture, edit: impl FnOnce(&mut Dataset)) {
    edit(f.decoded.get_mut(&E).unwrap());
    commit_listed(f);
}

fn reward(operator: &[u8; 32], cumulative: u64) -> RewardLeaf {
    RewardLeaf {
        operator: b58(operator),
        cumulative,
        amount: 0,
        bytes: 0,
    }
}

fn usage(b: &[u8; 32], cumulative: u64) -> UsageLeaf {
    UsageLeaf {
        buyer: b58(b),
        cumulative,
        credits: 0,
        bytes: 0,
        purchased_credits: 0,
        purchased_tokens: 0,
        cumulative_cost: 0,
        cost: 0,
        pot: 0,
    }
}

/// The challenge of epoch `E` in `f`, with epoch 1 as the earlier epoch.
fn challenge(f: &Fixture) -> Challenge<'_> {
    let record = |e: u64| {
        &f.snapshot
            .records
            .iter()
            .find(|(_, r)| r.epoch == e)
            .unwrap()
            .1
    };
    let bytes = |e: u64| f.datasets[&e].bytes.as_ref().unwrap().as_slice();
    Challenge {
        config: f.d().config,
        record: record(E),
        dataset: Some(bytes(E)),
        earlier: Some((record(1), bytes(1))),
        credits: &f.snapshot.credits,
    }
}

/// The evidence found against `f`'s epoch `E`, checked to verify (as the program checks it),
/// and `judge`'s decision to prove it.
fn fraud(f: &Fixture) -> Evidence {
    let c = challenge(f);
    let e = match find(&c) {
        Finding::Fraud(e) => *e,
        other => panic!("no fraud found: {other:?}"),
    };
    assert!(verifies(&c, &e), "{e:?}");
    let j = judge(&f.snapshot, &f.datasets, E).expect("a proposal");
    assert_eq!(j.decision(), Decision::Prove(Box::new(e.clone())));
    e
}

fn key(b: u8) -> Pubkey {
    Pubkey::new_from_array([b; 32])
}

#[test]
fn an_honest_proposal_yields_no_proof_and_no_veto() {
    let f = proposed();
    assert_eq!(find(&challenge(&f)), Finding::NoProof { notes: vec![] });
    let j = judge(&f.snapshot, &f.datasets, E).expect("a proposal");
    assert_eq!((j.epoch, j.round), (E, 0));
    assert_eq!(j.digest, f.snapshot.records[2].1.proposal_digest);
    assert!(
        j.checks.len() >= 18 && j.checks.iter().all(|c| c.epoch == Some(E)),
        "{:?}",
        j.checks
    );
    assert_eq!(
        j.failed().count(),
        0,
        "{:?}",
        j.failed().collect::<Vec<_>>()
    );
    assert_eq!(j.decision(), Decision::Pass);
    // Committed as listed, the honest (sorted) trees are the same trees.
    let mut g = proposed();
    commit_listed(&mut g);
    assert_eq!(
        g.snapshot.records[2].1.proposal,
        f.snapshot.records[2].1.proposal
    );
    // Only a proposal in its challenge period is judged.
    assert!(judge(&f.snapshot, &f.datasets, 1).is_none());
    assert!(judge(&f.snapshot, &f.datasets, 3).is_none());
}

#[test]
fn leaves_out_of_order_or_repeated_are_disorder() {
    // Operators 1 and 2 swapped.
    let mut f = proposed();
    tamper(&mut f, |ds| ds.rewards.leaves.swap(0, 1));
    let e = fraud(&f);
    assert_eq!(e.kind, FraudKind::Disorder);
    let FraudProof::Disorder { tree, left, right } = &e.proof else {
        panic!("{e:?}")
    };
    assert_eq!(*tree, Tree::Reward);
    assert_eq!((left.index, right.index), (0, 1));
    assert_eq!((left.account, right.account), (key(2), key(1)));
    assert_eq!((e.earlier_epoch, e.buyer), (None, None));
    // The last two leaves of the usage tree are the same buyer.
    let mut f = proposed();
    tamper(&mut f, |ds| {
        let last = ds.usage.leaves.last().unwrap().clone();
        ds.usage
            .leaves
            .push(usage(&key_from_b58(&last.buyer).unwrap(), 1));
    });
    let e = fraud(&f);
    let FraudProof::Disorder { tree, left, right } = &e.proof else {
        panic!("{e:?}")
    };
    assert_eq!(*tree, Tree::Usage);
    assert_eq!((left.index, right.index), (1, 2));
    assert_eq!(left.account, right.account);
    assert!(
        e.summary.contains("the same account twice"),
        "{}",
        e.summary
    );
}

#[test]
fn a_lowered_cumulative_reward_given_to_a_thief_is_a_decrease() {
    // Operator 3 (the last key) keeps its leaf but loses 1 token to a thief; the total is
    // unchanged, so the program's totals alone cannot tell.
    let mut f = proposed();
    let was = f.decoded[&1].rewards.leaves[2].cumulative;
    tamper(&mut f, |ds| {
        ds.rewards.leaves[2].cumulative = was - 1;
        ds.rewards.leaves.insert(0, reward(&[0; 32], 1));
    });
    let e = fraud(&f);
    assert_eq!((e.kind, e.earlier_epoch), (FraudKind::Decrease, Some(1)));
    let FraudProof::Decrease {
        tree,
        earlier,
        later,
    } = &e.proof
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*tree, earlier.account, earlier.amount),
        (Tree::Reward, key(3), was)
    );
    let Standing::Present(now) = later else {
        panic!("{later:?}")
    };
    assert_eq!((now.account, now.amount, now.index), (key(3), was - 1, 3));
    assert!(
        e.summary.contains(&format!("fell from {was}")),
        "{}",
        e.summary
    );
}

#[test]
fn a_dropped_leaf_is_a_decrease_with_its_absence_first_middle_and_last() {
    // Operators 1, 2 and 3 are the first, middle and last keys. The thief's key, [0xFF; 32],
    // sorts after them all; [0; 32] before.
    // (leaf dropped, the thief's key, the absence's shape, the keys of its leaves)
    type Case = (usize, [u8; 32], &'static str, (u8, Option<u8>));
    let cases: [Case; 4] = [
        (0, [0xFF; 32], "before the first", (2, None)),
        (1, [0xFF; 32], "between", (1, Some(3))),
        (2, [0xFF; 32], "between", (2, Some(0xFF))),
        (2, [0; 32], "after the last", (2, None)),
    ];
    for (dropped, thief, shape, (near, far)) in cases {
        let mut f = proposed();
        let lost = f.decoded[&1].rewards.leaves[dropped].cumulative;
        tamper(&mut f, |ds| {
            ds.rewards.leaves.remove(dropped);
            ds.rewards.leaves.push(reward(&thief, lost));
            ds.rewards
                .leaves
                .sort_by_key(|l| key_from_b58(&l.operator).unwrap());
        });
        let e = fraud(&f);
        let FraudProof::Decrease { earlier, later, .. } = &e.proof else {
            panic!("{e:?}")
        };
        assert_eq!(earlier.account, key(dropped as u8 + 1));
        let found = match later {
            Standing::BeforeFirst(p) => {
                assert_eq!(p.index, 0);
                ("before the first", (p.account, None))
            }
            Standing::Between(l, r) => {
                assert_eq!(l.index + 1, r.index);
                ("between", (l.account, Some(r.account)))
            }
            Standing::AfterLast(p) => {
                assert_eq!(p.index, 2);
                ("after the last", (p.account, None))
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            found,
            (shape, (key(near), far.map(key))),
            "dropping leaf {dropped}"
        );
        assert!(e.summary.contains("no leaf"), "{}", e.summary);
    }
}

#[test]
fn a_one_leaf_or_empty_tree_proves_the_others_absent() {
    // One leaf: the thief holds the whole total.
    let mut f = proposed();
    tamper(&mut f, |ds| {
        let total = ds.rewards.leaves.iter().map(|l| l.cumulative).sum();
        ds.rewards.leaves = vec![reward(&[0xFF; 32], total)];
    });
    let e = fraud(&f);
    let FraudProof::Decrease { earlier, later, .. } = &e.proof else {
        panic!("{e:?}")
    };
    // Operator 1 had 0.45 tokens after epoch 1 (it earned nothing in epoch 1, but its earlier
    // reward stays in its cumulative amount).
    assert_eq!(earlier.account, key(1));
    assert!(matches!(later, Standing::BeforeFirst(p) if p.siblings.is_empty()));
    // No leaves at all: the empty tree.
    let mut f = proposed();
    tamper(&mut f, |ds| ds.usage.leaves.clear());
    let e = fraud(&f);
    let FraudProof::Decrease { tree, later, .. } = &e.proof else {
        panic!("{e:?}")
    };
    assert_eq!((*tree, later), (Tree::Usage, &Standing::Empty));
}

#[test]
fn usage_beyond_the_credits_bought_is_overspend() {
    // Buyer 2 bought 50 tokens' worth (5,000,000 credits) in epoch 1 and nothing since.
    let mut f = proposed();
    let bought = 5_000_000;
    tamper(&mut f, |ds| ds.usage.leaves[1].cumulative = bought + 1);
    let e = fraud(&f);
    assert_eq!(e.kind, FraudKind::Overspend);
    assert_eq!(e.buyer, Some(key(0xB2)));
    let FraudProof::Overspend { leaf } = &e.proof else {
        panic!("{e:?}")
    };
    assert_eq!(
        (leaf.account, leaf.amount, leaf.index),
        (key(0xB2), bought + 1, 1)
    );
    // Exactly what it bought is fine.
    let mut f = proposed();
    tamper(&mut f, |ds| ds.usage.leaves[1].cumulative = bought);
    assert_eq!(find(&challenge(&f)), Finding::NoProof { notes: vec![] });
    // A buyer with no credit account bought nothing: any usage is overspend (the last key).
    let mut f = proposed();
    tamper(&mut f, |ds| ds.usage.leaves.push(usage(&[0xFE; 32], 1)));
    let e = fraud(&f);
    assert_eq!((e.kind, e.buyer), (FraudKind::Overspend, Some(key(0xFE))));
}

#[test]
fn disorder_comes_first_then_decrease_then_overspend() {
    let mut f = proposed();
    tamper(&mut f, |ds| {
        ds.usage.leaves[1].cumulative = u64::MAX / 4;
        ds.rewards.leaves[2].cumulative = 0;
        ds.usage.leaves.swap(0, 1);
    });
    assert_eq!(fraud(&f).kind, FraudKind::Disorder);
    let mut f = proposed();
    tamper(&mut f, |ds| {
        ds.usage.leaves[1].cumulative = u64::MAX / 4;
        ds.rewards.leaves[2].cumulative = 0;
    });
    assert_eq!(fraud(&f).kind, FraudKind::Decrease);
}

#[test]
fn a_missing_or_mismatched_dataset_is_withheld_data_and_a_veto() {
    let mut f = proposed();
    let mut c = challenge(&f);
    c.dataset = None;
    assert!(matches!(find(&c), Finding::Unverifiable(why) if why.contains("no dataset")));
    c.dataset = Some(&b"not json"[..]);
    assert!(matches!(find(&c), Finding::Unverifiable(why) if why.contains("does not decode")));
    // Bytes whose trees are not the proposal's (a leaf changed after the vote): nothing built
    // from them could verify on-chain.
    let mut other = f.decoded[&E].clone();
    other.rewards.leaves[0].cumulative += 1;
    let bytes = other.to_bytes();
    c.dataset = Some(&bytes);
    match find(&c) {
        Finding::Unverifiable(why) => assert!(why.contains("reward leaves commit"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The judge: no dataset served for the epoch.
    f.datasets.remove(&E);
    let j = judge(&f.snapshot, &f.datasets, E).unwrap();
    match j.decision() {
        Decision::Veto(why) => assert!(why.starts_with("no proof fits"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn checks_that_fail_without_a_proof_are_a_veto() {
    // Consistent trees, but more sessions counted than seen: no proof, one failed check.
    let mut f = proposed();
    f.edit(E, |ds| ds.stats.sessions_counted = ds.stats.sessions + 1);
    // `edit` revotes with a finalization time; the epoch is still in its challenge period.
    f.record(E).finalized_at = 0;
    let j = judge(&f.snapshot, &f.datasets, E).unwrap();
    assert!(matches!(j.finding, Finding::NoProof { .. }));
    match j.decision() {
        Decision::Veto(why) => assert!(why.contains("dataset.nodes"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_earlier_dataset_that_is_not_the_finalized_one_proves_no_decrease() {
    let mut f = proposed();
    tamper(&mut f, |ds| ds.rewards.leaves[2].cumulative = 0);
    let mut wrong = f.decoded[&1].clone();
    wrong.rewards.leaves[0].cumulative += 7;
    let bytes = wrong.to_bytes();
    let mut c = challenge(&f);
    let (record, _) = c.earlier.unwrap();
    c.earlier = Some((record, &bytes));
    match find(&c) {
        Finding::NoProof { notes } => {
            assert!(notes[0].contains("does not match its record"), "{notes:?}")
        }
        other => panic!("{other:?}"),
    }
    // An earlier epoch that is not finalized is not used.
    let proposed_record = c.record;
    c.earlier = Some((proposed_record, f.datasets[&E].bytes.as_ref().unwrap()));
    assert!(matches!(find(&c), Finding::NoProof { notes } if notes[0].contains("not a finalized")));
}

/// The leaves a hostile reward tree of epoch `E` may list: operators 1..=3 (the earlier epoch's)
/// and others, in any order, repeated or not.
fn hostile_rewards() -> impl Strategy<Value = Vec<(u8, u64)>> {
    proptest::collection::vec(
        (prop_oneof![Just(0u8), 1u8..=3, Just(9)], 0u64..2 * TOKEN),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the reward tree lists, the finder's answer is the one the rules give, and every
    /// proof it returns verifies: disorder when two adjacent leaves are out of order, else a
    /// decrease when an operator of epoch 1 has less (or no leaf while it had a positive
    /// amount), else nothing (the usage tree is the honest one).
    #[test]
    fn the_finder_answers_what_the_rules_say(listed in hostile_rewards()) {
        let mut f = proposed();
        let before: Vec<(Pubkey, u64)> = f.decoded[&1]
            .rewards
            .leaves
            .iter()
            .map(|l| (Pubkey::new_from_array(key_from_b58(&l.operator).unwrap()), l.cumulative))
            .collect();
        tamper(&mut f, |ds| {
            ds.rewards.leaves = listed.iter().map(|(b, x)| reward(&[*b; 32], *x)).collect();
        });
        let c = challenge(&f);
        let disordered = listed.windows(2).any(|w| w[0].0 >= w[1].0);
        let decreased = before.iter().any(|(k, was)| {
            match listed.iter().find(|(b, _)| key(*b) == *k) {
                Some((_, now)) => now < was,
                None => *was > 0,
            }
        });
        match find(&c) {
            Finding::Fraud(e) => {
                prop_assert!(verifies(&c, &e));
                let expected = if disordered { FraudKind::Disorder } else { FraudKind::Decrease };
                prop_assert!(disordered || decreased);
                prop_assert_eq!(e.kind, expected);
                // Proof bytes round-trip as the buffer carries them.
                let bytes = backhaul_sdk::fraud::payload(&e.proof);
                let back: FraudProof =
                    anchor_lang::AnchorDeserialize::deserialize(&mut bytes.as_slice()).unwrap();
                prop_assert_eq!(back, e.proof.clone());
            }
            Finding::NoProof { notes } => {
                prop_assert!(!disordered && !decreased, "{:?}", listed);
                prop_assert!(notes.is_empty());
            }
            Finding::Unverifiable(why) => prop_assert!(false, "{}", why),
        }
    }
}

#[test]
fn the_dataset_hash_is_not_what_makes_evidence_count() {
    // The trees commit to the chain's proposal; the file's hash is the audit's concern
    // (`dataset.sha256`). A proof built from the same leaves in another encoding verifies.
    let mut f = proposed();
    tamper(&mut f, |ds| ds.rewards.leaves.swap(1, 2));
    let pretty = serde_json::to_vec_pretty(&f.decoded[&E]).unwrap();
    assert_ne!(
        sha256v(&[&pretty]),
        f.snapshot.records[2].1.proposal.dataset_hash
    );
    let mut c = challenge(&f);
    c.dataset = Some(&pretty);
    let Finding::Fraud(e) = find(&c) else {
        panic!("no proof")
    };
    assert!(verifies(&c, &e));
}
