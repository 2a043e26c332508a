use backhaul::error::BackhaulError as E;
use backhaul::state::{EmissionParams, EpochProposal};
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

const TOKEN: u64 = 1_000_000;

async fn proposed(amount: u64) -> (Env, EpochProposal) {
    let mut env = Env::new().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), amount)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    (env, p)
}

async fn update(
    env: &mut Env,
    params: UpdateParamsArgs,
) -> Result<(), solana_program_test::BanksClientError> {
    let admin = env.admin.insecure_clone();
    let ix = env.update_params_ix(&admin.pubkey(), params);
    env.send_as(ix, &admin).await
}

#[tokio::test]
async fn finalize_mints_exactly_the_allocation() {
    let (mut env, p) = proposed(700 * TOKEN).await;
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    let vault = env.vault;
    assert_eq!(env.token_balance(&vault).await, 700 * TOKEN);
    assert_eq!((env.mint_supply().await - TREASURY_SUPPLY), 700 * TOKEN);
    let c = env.config_state().await;
    assert_eq!(
        (c.next_epoch, c.total_minted, c.last_reward_total),
        (1, 700 * TOKEN, 700 * TOKEN)
    );
    assert_eq!(c.last_reward_leaf_count, 1);
    assert_eq!(c.rate_limiter.level, 700 * TOKEN);
    assert_eq!(c.rate_limiter.last_ts, at);
    let r = env.epoch_state(0).await;
    assert_eq!((r.status, r.finalized_at), (EpochStatus::Finalized, at));
    assert_eq!(r.proposal, p);
    assert_program_err(env.finalize(0).await, E::AlreadyFinalized);
    assert_eq!(env.token_balance(&vault).await, 700 * TOKEN);
}

#[tokio::test]
async fn finalize_waits_for_the_challenge_period() {
    let (mut env, _) = proposed(TOKEN).await;
    let at = env.epoch_state(0).await.finalizable_at;
    assert_program_err(env.finalize(0).await, E::ChallengePeriodActive);
    env.set_time(at - 1).await;
    assert_program_err(env.finalize(0).await, E::ChallengePeriodActive);
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
}

#[tokio::test]
async fn finalize_needs_a_proposal_with_quorum() {
    let mut env = Env::new().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), TOKEN)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    // No record at all.
    assert_anchor_err(
        env.finalize(0).await,
        anchor_lang::error::ErrorCode::AccountNotInitialized,
    );
    env.vote(0, 0, p).await.unwrap();
    env.set_time(GENESIS + 10 * 86_400).await;
    assert_program_err(env.finalize(0).await, E::NoQuorum);
}

#[tokio::test]
async fn finalize_refuses_an_allocation_above_the_schedule() {
    let (mut env, _) = proposed(800 * TOKEN).await;
    // The admin lowers the schedule after quorum; finalize re-checks against the current one.
    let emission = EmissionParams {
        initial_per_epoch: 500 * TOKEN,
        floor_per_epoch: 0,
        ..default_emission()
    };
    update(
        &mut env,
        UpdateParamsArgs {
            emission: Some(emission),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    assert_program_err(env.finalize(0).await, E::ExceedsEpochEmission);
    assert_eq!((env.mint_supply().await - TREASURY_SUPPLY), 0);
    // The guardian vetoes and the oracles re-propose within budget.
    env.set_time(at - 1).await;
    env.veto(0).await.unwrap();
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 500 * TOKEN)]);
    let p = env.proposal(&tree, 0);
    env.vote(0, 0, p).await.unwrap();
    env.vote(2, 0, p).await.unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    assert_eq!((env.mint_supply().await - TREASURY_SUPPLY), 500 * TOKEN);
}

#[tokio::test]
async fn finalize_refuses_an_allocation_above_the_lifetime_cap() {
    let (mut env, _) = proposed(900 * TOKEN).await;
    let emission = EmissionParams {
        lifetime_cap: 1_000 * TOKEN,
        ..default_emission()
    };
    update(
        &mut env,
        UpdateParamsArgs {
            emission: Some(emission),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    // 100 tokens remain under the cap; epoch 1 proposes 150 more.
    let op = Pubkey::new_unique();
    let tree = env.reward_tree(1, &[(op, 1_050 * TOKEN)]);
    let p = EpochProposal {
        reward_leaf_count: 1,
        ..env.proposal(&tree, 900 * TOKEN)
    };
    env.end_epoch(1).await;
    assert_program_err(env.vote(0, 1, p).await, E::ExceedsLifetimeCap);
    // The cap cannot be lowered below what was minted, and at the cap nothing more is minted.
    let below = EmissionParams {
        lifetime_cap: 899 * TOKEN,
        initial_per_epoch: 500 * TOKEN,
        floor_per_epoch: 0,
        ..default_emission()
    };
    assert_program_err(
        update(
            &mut env,
            UpdateParamsArgs {
                emission: Some(below),
                ..Default::default()
            },
        )
        .await,
        E::InvalidEmissionSchedule,
    );
}

#[tokio::test]
async fn finalize_respects_the_mint_rate_limiter() {
    let mut env = Env::new_uninitialized().await;
    let mut params = env.default_params();
    params.rate_capacity = params.emission.initial_per_epoch;
    params.rate_window_secs = 30 * 86_400;
    env.initialize(params).await.unwrap();
    let op = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(op, 1_000 * TOKEN)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    let t1 = env.reward_tree(1, &[(op, 2_000 * TOKEN)]);
    let p1 = env.proposal(&t1, 1_000 * TOKEN);
    env.end_epoch(1).await;
    env.vote(0, 1, p1).await.unwrap();
    env.vote(1, 1, p1).await.unwrap();
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    assert_program_err(env.finalize(1).await, E::RateLimited);
    // Once the window has drained enough, the same epoch finalizes.
    let c = env.config_state().await;
    env.set_time(c.rate_limiter.last_ts + 30 * 86_400).await;
    env.finalize(1).await.unwrap();
    assert_eq!((env.mint_supply().await - TREASURY_SUPPLY), 2_000 * TOKEN);
}

#[tokio::test]
async fn finalize_refuses_a_wrong_mint_vault_or_record() {
    let (mut env, p) = proposed(TOKEN).await;
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    let first = env.mint;
    let other = env.add_deployment().await;
    // A mint that is not the config's.
    let mut ix = env.finalize_ix(0);
    ix.accounts[2].pubkey = other;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
    // A vault that is not the config's (another deployment's, and a look-alike token account).
    let mut ix = env.finalize_ix(0);
    ix.accounts[3].pubkey = vault_address(&config_address(&other));
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
    let config = env.config;
    let fake = env.create_token_account(&first, &config).await;
    let mut ix = env.finalize_ix(0);
    ix.accounts[3].pubkey = fake;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
    // Another deployment's epoch record.
    env.use_deployment(other);
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 5)]);
    let p_other = env.proposal(&tree, 0);
    assert_ne!(p_other, p);
    env.vote(0, 0, p_other).await.unwrap();
    env.use_deployment(first);
    let mut ix = env.finalize_ix(0);
    ix.accounts[1].pubkey = epoch_address(&config_address(&other), 0);
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // A token program that is not SPL Token.
    let mut ix = env.finalize_ix(0);
    ix.accounts[4].pubkey = Pubkey::new_unique();
    assert_failed(env.send(&[ix], &[]).await);
    assert_eq!((env.mint_supply().await - TREASURY_SUPPLY), 0);
    env.finalize(0).await.unwrap();
}

#[tokio::test]
async fn finalize_is_refused_while_paused() {
    let (mut env, _) = proposed(TOKEN).await;
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    let admin = env.admin.insecure_clone();
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    env.send_as(ix, &admin).await.unwrap();
    assert_program_err(env.finalize(0).await, E::Paused);
    let ix = env.set_paused_ix(&admin.pubkey(), false);
    env.send_as(ix, &admin).await.unwrap();
    env.finalize(0).await.unwrap();
}

#[tokio::test]
async fn decayed_schedule_bounds_later_epochs() {
    // A schedule that halves every epoch: epoch 1 may mint at most half of epoch 0.
    let mut env = Env::new_uninitialized().await;
    let mut params = env.default_params();
    params.emission.decay_period_epochs = 1;
    env.initialize(params).await.unwrap();
    let op = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(op, 1_000 * TOKEN)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    env.end_epoch(1).await;
    let over = env.reward_tree(1, &[(op, 1_500 * TOKEN + 1)]);
    assert_program_err(
        env.vote(0, 1, env.proposal(&over, 1_000 * TOKEN)).await,
        E::ExceedsEpochEmission,
    );
    let ok = env.reward_tree(1, &[(op, 1_500 * TOKEN)]);
    env.run_epoch(1, env.proposal(&ok, 1_000 * TOKEN)).await;
    assert_eq!((env.mint_supply().await - TREASURY_SUPPLY), 1_500 * TOKEN);
}
