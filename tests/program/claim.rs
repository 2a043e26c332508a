use backhaul::error::BackhaulError as E;
use backhaul::state::EpochProposal;
use backhaul_core::merkle::MAX_PROOF_DEPTH;
use backhaul_core::sum_tree::SumNode;
use backhaul_core::tree::EpochTree;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

struct World {
    env: Env,
    a: Pubkey,
    b: Pubkey,
    t0: EpochTree,
    t1: EpochTree,
}

/// Two finalized epochs: a earns 300 then 200 more, b earns 700 then nothing more, c joins in 1.
async fn world() -> World {
    let mut env = Env::new().await;
    let (a, b, c) = (
        Pubkey::new_unique(),
        Pubkey::new_unique(),
        Pubkey::new_unique(),
    );
    let t0 = env.reward_tree(0, &[(a, 300), (b, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    let t1 = env.reward_tree(1, &[(a, 500), (b, 700), (c, 100)]);
    env.run_epoch(1, env.proposal(&t1, 1_000)).await;
    World { env, a, b, t0, t1 }
}

#[tokio::test]
async fn claims_pay_the_cumulative_amount_minus_what_was_claimed() {
    let World {
        mut env,
        a,
        b,
        t0,
        t1,
    } = world().await;
    let mint = env.mint;
    env.claim_from(&t0, 0, &a).await.unwrap();
    assert_eq!(env.token_balance(&ata(&a, &mint)).await, 300);
    env.claim_from(&t1, 1, &a).await.unwrap();
    assert_eq!(env.token_balance(&ata(&a, &mint)).await, 500);
    // b skipped epoch 0 and claims everything at once from epoch 1.
    env.claim_from(&t1, 1, &b).await.unwrap();
    assert_eq!(env.token_balance(&ata(&b, &mint)).await, 700);
    let claim: OperatorClaim = env.account(&claim_address(&env.config, &a)).await.unwrap();
    assert_eq!(
        (claim.operator, claim.claimed, claim.last_epoch),
        (a, 500, 1)
    );
    let c = env.config_state().await;
    assert_eq!(c.total_claimed, 1_200);
    let vault = env.vault;
    assert_eq!(
        env.token_balance(&vault).await,
        c.total_minted - c.total_claimed
    );
}

#[tokio::test]
async fn a_second_claim_pays_nothing_and_older_epochs_never_pay_twice() {
    let World {
        mut env, a, t0, t1, ..
    } = world().await;
    let mint = env.mint;
    env.claim_from(&t1, 1, &a).await.unwrap();
    assert_program_err(env.claim_from(&t1, 1, &a).await, E::NothingToClaim);
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::NothingToClaim);
    assert_eq!(env.token_balance(&ata(&a, &mint)).await, 500);
    assert_eq!(env.config_state().await.total_claimed, 500);
}

#[tokio::test]
async fn anyone_may_send_a_claim_but_tokens_go_to_the_operator() {
    let World { mut env, a, t1, .. } = world().await;
    let mint = env.mint;
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t1.leaf_proof(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(
        &stranger.pubkey(),
        1,
        &a,
        &recipient,
        entry.cumulative,
        proof.clone(),
    );
    env.send_as(ix, &stranger).await.unwrap();
    assert_eq!(env.token_balance(&recipient).await, 500);
    // The stranger's own token account cannot receive the operator's reward.
    let theirs = env.create_ata(&stranger.pubkey()).await;
    let ix = env.claim_ix(&stranger.pubkey(), 1, &a, &theirs, entry.cumulative, proof);
    assert_anchor_err(
        env.send_as(ix, &stranger).await,
        anchor_lang::error::ErrorCode::ConstraintTokenOwner,
    );
    assert_eq!(env.token_balance(&ata(&stranger.pubkey(), &mint)).await, 0);
}

#[tokio::test]
async fn any_token_account_of_the_operator_for_the_mint_works_but_no_other_mint() {
    let World { mut env, a, t1, .. } = world().await;
    let mint = env.mint;
    let (entry, proof) = t1.leaf_proof(&a.to_bytes()).unwrap();
    let payer = env.payer().pubkey();
    let other_mint = Pubkey::new_unique();
    env.ctx.set_account(
        &other_mint,
        &mint_account(Some(Pubkey::new_unique()), None, 0).into(),
    );
    let wrong = env.create_token_account(&other_mint, &a).await;
    let ix = env.claim_ix(&payer, 1, &a, &wrong, entry.cumulative, proof.clone());
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintTokenMint,
    );
    let plain = env.create_token_account(&mint, &a).await;
    let ix = env.claim_ix(&payer, 1, &a, &plain, entry.cumulative, proof);
    env.send(&[ix], &[]).await.unwrap();
    assert_eq!(env.token_balance(&plain).await, 500);
}

#[tokio::test]
async fn bad_proofs_are_refused() {
    let World {
        mut env,
        a,
        b,
        t0,
        t1,
    } = world().await;
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t1.leaf_proof(&a.to_bytes()).unwrap();
    // A larger amount than the leaf holds.
    let ix = env.claim_ix(
        &payer,
        1,
        &a,
        &recipient,
        entry.cumulative + 1,
        proof.clone(),
    );
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // A tampered sibling hash, a tampered sibling sum, another index.
    let mut bad = proof.clone();
    bad.siblings[0].hash[0] ^= 1;
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, bad);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let mut bad = proof.clone();
    bad.siblings[0].sum += 1;
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, bad);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let bad = Proof {
        index: proof.index ^ 1,
        ..proof.clone()
    };
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, bad);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // A truncated proof and an empty one.
    let truncated = Proof {
        siblings: proof.siblings[..1].to_vec(),
        ..proof.clone()
    };
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, truncated);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let ix = env.claim_ix(
        &payer,
        1,
        &a,
        &recipient,
        entry.cumulative,
        Proof::default(),
    );
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Epoch 0's proof against epoch 1's root (and vice versa).
    let (e0, p0) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(&payer, 1, &a, &recipient, e0.cumulative, p0);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // b's proof used for a, and a's proof for b.
    let (eb, pb) = t1.leaf_proof(&b.to_bytes()).unwrap();
    let ix = env.claim_ix(&payer, 1, &a, &recipient, eb.cumulative, pb);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let rb = env.create_ata(&b).await;
    let ix = env.claim_ix(&payer, 1, &b, &rb, entry.cumulative, proof.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Longer than the maximum depth.
    let ix = env.claim_ix(
        &payer,
        1,
        &a,
        &recipient,
        entry.cumulative,
        Proof {
            index: 0,
            siblings: vec![
                SumNode {
                    hash: [1; 32],
                    sum: 0
                };
                MAX_PROOF_DEPTH + 1
            ],
        },
    );
    assert_program_err(env.send(&[ix], &[]).await, E::ProofTooLong);
    // Malformed instruction data.
    let mut ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof);
    ix.data.truncate(ix.data.len() - 5);
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::InstructionDidNotDeserialize,
    );
    assert_eq!(env.token_balance(&recipient).await, 0);
}

#[tokio::test]
async fn a_proof_for_another_deployment_is_refused() {
    let World { mut env, a, .. } = world().await;
    let first = env.mint;
    let other = env.add_deployment().await;
    env.use_deployment(other);
    // The same operator and amounts, committed by the other deployment.
    let t_other = env.reward_tree(1, &[(a, 500)]);
    env.use_deployment(first);
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t_other.leaf_proof(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // And the other deployment's vault or epoch record cannot stand in for this one's.
    let (entry, proof) = env
        .reward_tree(1, &[(a, 500)])
        .leaf_proof(&a.to_bytes())
        .unwrap();
    let mut ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof.clone());
    ix.accounts[5].pubkey = vault_address(&config_address(&other));
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
    let config = env.config;
    let fake_vault = env.create_token_account(&first, &config).await;
    let mut ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof);
    ix.accounts[5].pubkey = fake_vault;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
}

#[tokio::test]
async fn claims_need_a_finalized_epoch() {
    let mut env = Env::new().await;
    let a = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(a, 300)]);
    let p = env.proposal(&t0, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::EpochNotFinalized);
    env.vote(1, 0, p).await.unwrap();
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::EpochNotFinalized);
    env.veto(0).await.unwrap();
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::EpochNotFinalized);
    // A record that does not exist.
    assert_anchor_err(
        env.claim_from(&t0, 5, &a).await,
        anchor_lang::error::ErrorCode::AccountNotInitialized,
    );
}

#[tokio::test]
async fn claims_are_refused_while_paused() {
    let World { mut env, a, t1, .. } = world().await;
    let g = env.guardian.insecure_clone();
    let ix = env.set_paused_ix(&g.pubkey(), true);
    env.send_as(ix, &g).await.unwrap();
    assert_program_err(env.claim_from(&t1, 1, &a).await, E::Paused);
}

#[tokio::test]
async fn a_claim_record_at_a_wrong_address_is_refused() {
    let World {
        mut env, a, b, t1, ..
    } = world().await;
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t1.leaf_proof(&a.to_bytes()).unwrap();
    let mut ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof);
    ix.accounts[4].pubkey = claim_address(&env.config, &b);
    assert_program_err(env.send(&[ix], &[]).await, E::WrongClaimRecord);
}

/// The epoch argument names the record: another finalized epoch's record is refused with a
/// clear error, though its proof would be valid for it.
#[tokio::test]
async fn an_epoch_record_of_another_epoch_than_the_argument_is_refused() {
    let World { mut env, a, t1, .. } = world().await;
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t1.leaf_proof(&a.to_bytes()).unwrap();
    let mut ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof);
    ix.accounts[2].pubkey = epoch_address(&env.config, 1);
    assert_program_err(env.send(&[ix], &[]).await, E::WrongEpochRecord);
    assert_eq!(env.token_balance(&recipient).await, 0);
}

/// Issue 15: a colluding oracle majority votes epoch 1 with `reward_total` equal to epoch 0's
/// (allocation 0) over a tree holding `a: 300, b: 700, thief: 1000`, although a and b earned 300
/// and 700 in epoch 0 and have not claimed. The program checks the declared totals and leaf
/// counts but never sees the leaves. In format v1 the root committed to nothing but the leaves,
/// so the thief's proof (which does link its leaf to the voted root's tree) paid 1,000 and emptied
/// the vault. In format v2 the root commits to its top's sum, and every proof is checked against
/// the declared total: the forged tree sums to 2,000, so none of its proofs pays, and a and b
/// still claim theirs from epoch 0.
///
/// Not caught by this: a tree whose leaves sum to the declared total but reassign a's 300 to the
/// thief (`b: 700, thief: 300`). Its proofs verify; telling it apart needs the epoch's inputs,
/// which is what the fraud proof (a later step) is for.
#[tokio::test]
async fn a_tree_summing_above_the_voted_total_pays_nobody() {
    let mut env = Env::new().await;
    let (a, b, thief) = (
        Pubkey::new_unique(),
        Pubkey::new_unique(),
        Pubkey::new_unique(),
    );
    let t0 = env.reward_tree(0, &[(a, 300), (b, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    assert_eq!(env.token_balance(&vault_address(&env.config)).await, 1_000);

    let forged = env.reward_tree(1, &[(a, 300), (b, 700), (thief, 1_000)]);
    assert_eq!(forged.total, 2_000);
    let voted = EpochProposal {
        reward_total: 1_000,
        allocation: 0,
        ..env.proposal(&forged, 1_000)
    };
    env.run_epoch(1, voted).await;
    let record = env.epoch_state(1).await;
    assert_eq!(record.status, EpochStatus::Finalized);
    assert_eq!(record.proposal.reward_root, forged.root);

    let payer = env.payer().pubkey();
    let (entry, proof) = forged.leaf_proof(&thief.to_bytes()).unwrap();
    // The proof links the thief's leaf to the voted root hash's tree: all v1 checked.
    let p = forged.proof_for(&thief.to_bytes()).unwrap();
    assert!(backhaul_core::sum_tree::verify(
        forged.scope(),
        forged.commitment(),
        &p
    ));
    let stolen = env.create_ata(&thief).await;
    let ix = env.claim_ix(&payer, 1, &thief, &stolen, entry.cumulative, proof);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    assert_eq!(env.token_balance(&stolen).await, 0);

    for (op, amount) in [(a, 300), (b, 700)] {
        let recipient = env.create_ata(&op).await;
        // The forged epoch proves nothing for them either...
        let (entry, proof) = forged.leaf_proof(&op.to_bytes()).unwrap();
        let ix = env.claim_ix(&payer, 1, &op, &recipient, entry.cumulative, proof);
        assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
        // ...and epoch 0's honest tree pays them what they earned.
        env.claim_from(&t0, 0, &op).await.expect("honest claim");
        assert_eq!(env.token_balance(&recipient).await, amount);
    }
    assert_eq!(env.token_balance(&vault_address(&env.config)).await, 0);
}
