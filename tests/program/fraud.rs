//! Permissionless fraud proofs (`prove_fraud`): each kind accepted against a bad proposal and
//! refused against an honest one, the attack that motivated them, and the edge cases (first and
//! last key, a one-leaf tree, an empty tree, the deepest tree).

use backhaul::error::BackhaulError as E;
use backhaul::state::{EpochProposal, FraudProof, ProvenLeaf, Standing, Tree};
use backhaul_core::merkle::{TreeKind, MAX_PROOF_DEPTH};
use backhaul_core::sum_tree::{
    leaf_node, node, Commitment, Leaf, Scope, SumNode, SumTree, EMPTY_NODE,
};
use backhaul_core::tree::EpochTree;
use backhaul_sdk::fraud::{absent, proven};
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

/// Keys whose order is known: `LO < A < B < HI`.
const LO: Pubkey = Pubkey::new_from_array([0x10; 32]);
const A: Pubkey = Pubkey::new_from_array([0x40; 32]);
const B: Pubkey = Pubkey::new_from_array([0x80; 32]);
const HI: Pubkey = Pubkey::new_from_array([0xf0; 32]);

/// Epoch 0 finalized, paying A 300 and B 700; nobody has claimed.
async fn world() -> (Env, EpochTree) {
    let mut env = Env::new().await;
    let t0 = env.reward_tree(0, &[(A, 300), (B, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    (env, t0)
}

/// A funded key that is neither an oracle nor a guardian.
async fn stranger(env: &mut Env) -> Keypair {
    let k = Keypair::new();
    crate::util::fund(env, &k.pubkey()).await;
    k
}

/// Oracles 0 and 1 vote `proposal` for `epoch`, which reaches quorum; returns what they voted
/// (the fixture may add the sponsor's usage to it).
async fn collude(env: &mut Env, epoch: u64, proposal: EpochProposal) -> EpochProposal {
    env.end_epoch(epoch).await;
    env.vote(0, epoch, proposal).await.expect("vote 0");
    env.vote(1, epoch, proposal).await.expect("vote 1");
    let r = env.epoch_state(epoch).await;
    assert_eq!(r.status, EpochStatus::Proposed);
    r.proposal
}

/// [`collude`] on epoch 1 with the proposal of reward tree `t` (after epoch 0's total of 1,000).
async fn collude_tree(env: &mut Env, t: &EpochTree) -> EpochProposal {
    let p = env.proposal(t, 1_000);
    collude(env, 1, p).await
}

fn leaf_of(t: &EpochTree, k: &Pubkey) -> ProvenLeaf {
    proven(&t.proof_for(&k.to_bytes()).expect("a leaf"))
}

fn absence_in(t: &EpochTree, k: &Pubkey) -> Standing {
    let tree = SumTree::build(
        *t.scope(),
        t.entries
            .iter()
            .map(|e| Leaf {
                account: e.account,
                amount: e.cumulative,
            })
            .collect(),
    )
    .expect("tree");
    absent(&tree.absence(&k.to_bytes()).expect("absent"))
}

fn decrease(earlier: ProvenLeaf, later: Standing) -> FraudProof {
    FraudProof::Decrease {
        tree: Tree::Reward,
        earlier,
        later,
    }
}

/// A tree over `leaves` exactly as given, in that order, sorted or not (what a dishonest oracle
/// can commit to): its commitment and every leaf's proof.
fn tree_as_given(scope: &Scope, leaves: &[Leaf]) -> (Commitment, Vec<ProvenLeaf>) {
    let mut levels: Vec<Vec<SumNode>> = vec![leaves.iter().map(|l| leaf_node(scope, l)).collect()];
    while levels.last().expect("a level").len() > 1 {
        let next = levels
            .last()
            .expect("a level")
            .chunks(2)
            .map(|pair| node(&pair[0], pair.get(1).unwrap_or(&EMPTY_NODE)).expect("sum"))
            .collect();
        levels.push(next);
    }
    let top = levels.last().expect("a level")[0];
    let proofs = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut position = i;
            let siblings = levels[..levels.len() - 1]
                .iter()
                .map(|level| {
                    let s = *level.get(position ^ 1).unwrap_or(&EMPTY_NODE);
                    position /= 2;
                    s
                })
                .collect::<Vec<_>>();
            proven(&backhaul_core::sum_tree::LeafProof {
                leaf: *l,
                index: i as u64,
                siblings,
            })
        })
        .collect();
    (
        Commitment::new(scope.kind, &top, leaves.len() as u64),
        proofs,
    )
}

fn reward_proposal(c: &Commitment, previous_total: u64) -> EpochProposal {
    EpochProposal {
        reward_root: c.root,
        reward_leaf_count: c.leaf_count,
        reward_total: c.total,
        allocation: c.total - previous_total,
        dataset_hash: [7; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        ..EpochProposal::default()
    }
}

#[tokio::test]
async fn attack_two_oracles_redirect_unclaimed_rewards_and_a_fraud_proof_stops_them() {
    // Epoch 0 owes A 300 and B 700, unclaimed. In epoch 1 two oracles of three vote the same
    // total with a tree that gives it all to a thief: the totals, the budget and the leaf count
    // all check out, so only the leaves show the theft.
    let (mut env, t0) = world().await;
    let thief = HI;
    let bad = env.reward_tree(1, &[(A, 0), (B, 0), (thief, 1_000)]);
    let voted = collude_tree(&mut env, &bad).await;
    let digest = env.epoch_state(1).await.proposal_digest;

    let prover = stranger(&mut env).await;
    let proof = decrease(leaf_of(&t0, &A), Standing::Present(leaf_of(&bad, &A)));
    env.prove_fraud(&prover, 1, &proof, Some(0), None)
        .await
        .expect("the proof refutes the proposal");
    let r = env.epoch_state(1).await;
    assert_eq!(r.status, EpochStatus::Vetoed);
    assert!(r.is_refuted(&digest));
    assert_eq!(r.vetoes, 0, "no guardian veto was used up");

    // After the challenge period nothing can be finalized, and the thief's claim pays nothing.
    let later = env.now().await + CHALLENGE_SECS as i64 + 1;
    env.set_time(later).await;
    assert_program_err(env.finalize(1).await, E::NoQuorum);
    assert_program_err(env.claim_from(&bad, 1, &thief).await, E::EpochNotFinalized);
    // The refuted digest is refused for good, unlike a vetoed one.
    assert_program_err(env.vote(0, 1, voted).await, E::ProposalVetoed);

    // The honest proposal finalizes in the next round; A and B are paid in full.
    let honest = env.reward_tree(1, &[(A, 300), (B, 700)]);
    env.vote(2, 1, env.proposal(&honest, 1_000)).await.unwrap();
    env.vote(0, 1, env.proposal(&honest, 1_000)).await.unwrap();
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(1).await.unwrap();
    let mint = env.mint;
    env.claim_from(&honest, 1, &A).await.unwrap();
    env.claim_from(&honest, 1, &B).await.unwrap();
    assert_eq!(env.token_balance(&ata(&A, &mint)).await, 300);
    assert_eq!(env.token_balance(&ata(&B, &mint)).await, 700);
    assert_failed(env.claim_from(&bad, 1, &thief).await);
    assert_eq!(env.token_balance(&ata(&thief, &mint)).await, 0);
}

#[tokio::test]
async fn a_decrease_is_proven_by_the_lower_leaf_or_by_each_kind_of_absence() {
    // (bad tree of epoch 1, the account whose earlier leaf is missing or lower)
    let cases: [(&[(Pubkey, u64)], Pubkey); 4] = [
        // A lowered to 100 (the rest moved to a newcomer).
        (&[(A, 100), (B, 700), (HI, 200)], A),
        // A absent before the first leaf.
        (&[(B, 700), (HI, 300)], A),
        // A absent between two adjacent leaves.
        (&[(LO, 300), (B, 700)], A),
        // B absent after the last leaf.
        (&[(LO, 700), (A, 300)], B),
    ];
    for (i, (leaves, victim)) in cases.into_iter().enumerate() {
        let (mut env, t0) = world().await;
        let bad = env.reward_tree(1, leaves);
        collude_tree(&mut env, &bad).await;
        let later = match bad.proof_for(&victim.to_bytes()) {
            Some(p) => Standing::Present(proven(&p)),
            None => absence_in(&bad, &victim),
        };
        let prover = stranger(&mut env).await;
        env.prove_fraud(
            &prover,
            1,
            &decrease(leaf_of(&t0, &victim), later),
            Some(0),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("case {i}: {e:?}"));
        assert_eq!(
            env.epoch_state(1).await.status,
            EpochStatus::Vetoed,
            "case {i}"
        );
    }
}

#[tokio::test]
async fn decrease_proofs_against_an_honest_proposal_are_refused() {
    let (mut env, t0) = world().await;
    let honest = env.reward_tree(1, &[(A, 500), (B, 700), (HI, 100)]);
    collude_tree(&mut env, &honest).await;
    let prover = stranger(&mut env).await;
    // A rose: its leaf is no decrease.
    let rose = decrease(leaf_of(&t0, &A), Standing::Present(leaf_of(&honest, &A)));
    assert_program_err(
        env.prove_fraud(&prover, 1, &rose, Some(0), None).await,
        E::NotFraud,
    );
    // Another account's leaf does not stand for A.
    let other = decrease(leaf_of(&t0, &A), Standing::Present(leaf_of(&honest, &HI)));
    assert_program_err(
        env.prove_fraud(&prover, 1, &other, Some(0), None).await,
        E::NotFraud,
    );
    // "A is absent" with two leaves that are not adjacent (A and HI bracket B, not A).
    let skip = decrease(
        leaf_of(&t0, &B),
        Standing::Between(leaf_of(&honest, &A), leaf_of(&honest, &HI)),
    );
    assert_program_err(
        env.prove_fraud(&prover, 1, &skip, Some(0), None).await,
        E::NotFraud,
    );
    // "A is before the first leaf" with a leaf that is not the first.
    let first = decrease(
        leaf_of(&t0, &A),
        Standing::BeforeFirst(leaf_of(&honest, &B)),
    );
    assert_program_err(
        env.prove_fraud(&prover, 1, &first, Some(0), None).await,
        E::NotFraud,
    );
    // "The tree is empty" about a tree with leaves.
    let empty = decrease(leaf_of(&t0, &A), Standing::Empty);
    assert_program_err(
        env.prove_fraud(&prover, 1, &empty, Some(0), None).await,
        E::NotFraud,
    );
    // A made-up earlier leaf (A at 900 in epoch 0) proves nothing.
    let mut forged = leaf_of(&t0, &A);
    forged.amount = 900;
    let forged = decrease(forged, Standing::Present(leaf_of(&honest, &A)));
    assert_program_err(
        env.prove_fraud(&prover, 1, &forged, Some(0), None).await,
        E::NotFraud,
    );
    // The earlier epoch must be a finalized epoch before the challenged one.
    let real = decrease(leaf_of(&t0, &A), Standing::Present(leaf_of(&honest, &A)));
    assert_program_err(
        env.prove_fraud(&prover, 1, &real, Some(1), None).await,
        E::WrongEarlierEpoch,
    );
    assert_program_err(
        env.prove_fraud(&prover, 1, &real, None, None).await,
        E::WrongEarlierEpoch,
    );
    let r = env.epoch_state(1).await;
    assert_eq!(r.status, EpochStatus::Proposed);
    // The honest proposal still finalizes.
    env.set_time(r.finalizable_at).await;
    env.finalize(1).await.unwrap();
}

#[tokio::test]
async fn a_one_leaf_tree_and_the_deepest_tree_are_proven_against() {
    // One leaf: B absent after the only leaf (a proof with no siblings).
    let mut env = Env::new().await;
    let t0_one = env.reward_tree(0, &[(B, 1_000)]);
    env.run_epoch(0, env.proposal(&t0_one, 0)).await;
    let bad = env.reward_tree(1, &[(A, 1_000)]);
    collude_tree(&mut env, &bad).await;
    let prover = stranger(&mut env).await;
    let proof = decrease(leaf_of(&t0_one, &B), absence_in(&bad, &B));
    assert!(
        matches!(proof, FraudProof::Decrease { later: Standing::AfterLast(ref p), .. } if p.siblings.is_empty())
    );
    env.prove_fraud(&prover, 1, &proof, Some(0), None)
        .await
        .unwrap();

    // The deepest tree the program accepts (2^32 leaves, 32 siblings): A absent before the
    // first leaf, the thief's.
    let (mut env, t0) = world().await;
    let scope = Scope {
        kind: TreeKind::Reward,
        config: env.config.to_bytes(),
        epoch: 1,
    };
    let thief = Leaf {
        account: HI.to_bytes(),
        amount: 1_000,
    };
    let (commitment, deep) = deep_proof(&scope, &thief, MAX_PROOF_DEPTH as u8);
    collude(&mut env, 1, reward_proposal(&commitment, 1_000)).await;
    let first = proven(&backhaul_core::sum_tree::LeafProof {
        leaf: thief,
        index: deep.index,
        siblings: deep.siblings,
    });
    assert_eq!(first.siblings.len(), MAX_PROOF_DEPTH);
    let prover = stranger(&mut env).await;
    env.prove_fraud(
        &prover,
        1,
        &decrease(leaf_of(&t0, &A), Standing::BeforeFirst(first)),
        Some(0),
        None,
    )
    .await
    .unwrap();
    assert_eq!(env.epoch_state(1).await.status, EpochStatus::Vetoed);
}

#[tokio::test]
async fn leaves_out_of_order_or_repeated_are_proven_and_sorted_neighbours_are_not() {
    for (name, leaves) in [
        ("descending", [(B, 700u64), (A, 300u64)]),
        ("repeated", [(A, 300), (A, 700)]),
    ] {
        let (mut env, _) = world().await;
        let scope = Scope {
            kind: TreeKind::Reward,
            config: env.config.to_bytes(),
            epoch: 1,
        };
        let leaves: Vec<Leaf> = leaves
            .iter()
            .map(|(k, a)| Leaf {
                account: k.to_bytes(),
                amount: *a,
            })
            .collect();
        let (commitment, proofs) = tree_as_given(&scope, &leaves);
        collude(&mut env, 1, reward_proposal(&commitment, 1_000)).await;
        let prover = stranger(&mut env).await;
        // Not adjacent in the right order (right, left) proves nothing.
        let swapped = FraudProof::Disorder {
            tree: Tree::Reward,
            left: proofs[1].clone(),
            right: proofs[0].clone(),
        };
        assert_program_err(
            env.prove_fraud(&prover, 1, &swapped, None, None).await,
            E::NotFraud,
        );
        let proof = FraudProof::Disorder {
            tree: Tree::Reward,
            left: proofs[0].clone(),
            right: proofs[1].clone(),
        };
        env.prove_fraud(&prover, 1, &proof, None, None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // Sorted neighbours of an honest tree.
    let (mut env, _) = world().await;
    let honest = env.reward_tree(1, &[(A, 300), (B, 700)]);
    collude_tree(&mut env, &honest).await;
    let prover = stranger(&mut env).await;
    let proof = FraudProof::Disorder {
        tree: Tree::Reward,
        left: leaf_of(&honest, &A),
        right: leaf_of(&honest, &B),
    };
    assert_program_err(
        env.prove_fraud(&prover, 1, &proof, None, None).await,
        E::NotFraud,
    );
}

/// Epoch 1 with the reward tree unchanged and a usage tree of the sponsor's consumption so far
/// plus `extra` credits consumed by `buyer`.
async fn usage_proposal(env: &mut Env, buyer: Pubkey, extra: u64) -> (EpochTree, EpochProposal) {
    let c = env.config_state().await;
    let rewards = env.reward_tree(1, &[(A, 300), (B, 700)]);
    let sponsor = env.sponsor.pubkey();
    let usage = env.usage_tree(1, &[(sponsor, c.last_usage_total), (buyer, extra)]);
    let p = env.proposal_with_usage(&rewards, 1_000, &usage, c.last_usage_total);
    (
        usage,
        Env::with_cost(p, c.last_usage_cost_total, c.last_usage_cost_total),
    )
}

#[tokio::test]
async fn usage_beyond_the_credits_a_buyer_bought_is_proven() {
    let (mut env, _) = world().await;
    // A buyer without a credit account consumed 5 credits (the sponsor's unconsumed credits
    // cover the total, so the vote's global checks pass).
    let ghost = Pubkey::new_unique();
    let (usage, p) = usage_proposal(&mut env, ghost, 5).await;
    collude(&mut env, 1, p).await;
    let prover = stranger(&mut env).await;
    let sponsor = env.sponsor.pubkey();
    // The sponsor's leaf is within what it bought.
    let within = FraudProof::Overspend {
        leaf: leaf_of(&usage, &sponsor),
    };
    assert_program_err(
        env.prove_fraud(&prover, 1, &within, None, Some(&sponsor))
            .await,
        E::NotFraud,
    );
    // The ghost's leaf with the sponsor's credit account instead of its own.
    let ghost_leaf = FraudProof::Overspend {
        leaf: leaf_of(&usage, &ghost),
    };
    assert_program_err(
        env.prove_fraud(&prover, 1, &ghost_leaf, None, Some(&sponsor))
            .await,
        E::InvalidCreditAccount,
    );
    env.prove_fraud(&prover, 1, &ghost_leaf, None, Some(&ghost))
        .await
        .unwrap();
    assert_eq!(env.epoch_state(1).await.status, EpochStatus::Vetoed);
}

#[tokio::test]
async fn a_buyer_whose_usage_went_down_is_proven_in_the_usage_tree() {
    let (mut env, _) = world().await;
    let c = env.config_state().await;
    let sponsor = env.sponsor.pubkey();
    let t0_usage = env.usage_tree(0, &[(sponsor, c.last_usage_total)]);
    assert_eq!(t0_usage.root, env.epoch_state(0).await.proposal.usage_root);
    // The sponsor's consumption moved to another buyer: the same total, one credit lower.
    let rewards = env.reward_tree(1, &[(A, 300), (B, 700)]);
    let other = Pubkey::new_unique();
    let usage = env.usage_tree(1, &[(sponsor, c.last_usage_total - 1), (other, 1)]);
    let p = env.proposal_with_usage(&rewards, 1_000, &usage, c.last_usage_total);
    collude(
        &mut env,
        1,
        Env::with_cost(p, c.last_usage_cost_total, c.last_usage_cost_total),
    )
    .await;
    let prover = stranger(&mut env).await;
    let proof = FraudProof::Decrease {
        tree: Tree::Usage,
        earlier: leaf_of(&t0_usage, &sponsor),
        later: Standing::Present(leaf_of(&usage, &sponsor)),
    };
    // The earlier leaf belongs to the usage tree: read as a reward leaf it proves nothing.
    let as_reward = FraudProof::Decrease {
        tree: Tree::Reward,
        earlier: leaf_of(&t0_usage, &sponsor),
        later: Standing::Present(leaf_of(&usage, &sponsor)),
    };
    assert_program_err(
        env.prove_fraud(&prover, 1, &as_reward, Some(0), None).await,
        E::NotFraud,
    );
    env.prove_fraud(&prover, 1, &proof, Some(0), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_proof_comes_only_during_the_challenge_period_once_and_also_while_paused() {
    let (mut env, t0) = world().await;
    let bad = env.reward_tree(1, &[(A, 0), (B, 0), (HI, 1_000)]);
    collude_tree(&mut env, &bad).await;
    let proof = decrease(leaf_of(&t0, &A), Standing::Present(leaf_of(&bad, &A)));
    let prover = stranger(&mut env).await;

    // Paused: proofs still work (the challenge period runs on).
    let g = env.guardian.insecure_clone();
    let ix = backhaul_sdk::ix::set_paused(&env.deployment(), &g.pubkey(), true);
    env.send(&[ix], &[&g]).await.unwrap();
    env.prove_fraud(&prover, 1, &proof, Some(0), None)
        .await
        .unwrap();
    // Replaying it: the epoch is no longer under challenge.
    assert_program_err(
        env.prove_fraud(&prover, 1, &proof, Some(0), None).await,
        E::NoProposalToChallenge,
    );

    // A proposal whose challenge period is over cannot be refuted any more.
    let (mut env, t0) = world().await;
    let bad = env.reward_tree(1, &[(A, 0), (B, 0), (HI, 1_000)]);
    collude_tree(&mut env, &bad).await;
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    let prover = stranger(&mut env).await;
    let proof = decrease(leaf_of(&t0, &A), Standing::Present(leaf_of(&bad, &A)));
    assert_program_err(
        env.prove_fraud(&prover, 1, &proof, Some(0), None).await,
        E::NoProposalToChallenge,
    );
    // Nor a finalized epoch.
    assert_program_err(
        env.prove_fraud(&prover, 0, &proof, Some(0), None).await,
        E::NoProposalToChallenge,
    );
}
