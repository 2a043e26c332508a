use backhaul::error::BackhaulError as E;
use backhaul_core::merkle::MAX_PROOF_DEPTH;
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
    let (entry, proof) = t1.proof_for(&a.to_bytes()).unwrap();
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
    let (entry, proof) = t1.proof_for(&a.to_bytes()).unwrap();
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
    let (entry, proof) = t1.proof_for(&a.to_bytes()).unwrap();
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
    // A tampered sibling.
    let mut bad = proof.clone();
    bad[0][0] ^= 1;
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, bad);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // A truncated proof and an empty one.
    let ix = env.claim_ix(
        &payer,
        1,
        &a,
        &recipient,
        entry.cumulative,
        proof[..1].to_vec(),
    );
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, vec![]);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Epoch 0's proof against epoch 1's root (and vice versa).
    let (e0, p0) = t0.proof_for(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(&payer, 1, &a, &recipient, e0.cumulative, p0);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // b's proof used for a, and a's proof for b.
    let (eb, pb) = t1.proof_for(&b.to_bytes()).unwrap();
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
        vec![[1; 32]; MAX_PROOF_DEPTH + 1],
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
    let (entry, proof) = t_other.proof_for(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // And the other deployment's vault or epoch record cannot stand in for this one's.
    let (entry, proof) = env
        .reward_tree(1, &[(a, 500)])
        .proof_for(&a.to_bytes())
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
    let (entry, proof) = t1.proof_for(&a.to_bytes()).unwrap();
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
    let (entry, proof) = t1.proof_for(&a.to_bytes()).unwrap();
    let mut ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof);
    ix.accounts[2].pubkey = epoch_address(&env.config, 1);
    assert_program_err(env.send(&[ix], &[]).await, E::WrongEpochRecord);
    assert_eq!(env.token_balance(&recipient).await, 0);
}
