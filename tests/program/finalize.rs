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

/// A deployment initialized with `edit` applied to the default parameters.
async fn deployed_with(edit: impl FnOnce(&mut InitializeParams)) -> Env {
    let mut env = Env::new_uninitialized().await;
    let mut params = env.default_params();
    edit(&mut params);
    env.initialize(params).await.unwrap();
    env
}

#[tokio::test]
async fn finalize_mints_exactly_the_allocation() {
    let (mut env, p) = proposed(700 * TOKEN).await;
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    let vault = env.vault;
    assert_eq!(env.token_balance(&vault).await, 700 * TOKEN);
    // The supply grew by the allocation and shrank by what the sponsor burned to pay for it.
    let burned = env.sponsor_bought().tokens;
    assert_eq!(
        env.mint_supply().await + burned - TREASURY_SUPPLY,
        700 * TOKEN
    );
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
    assert_eq!(r.proposal, env.sponsored(0, p).await);
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

/// A lowered schedule never reaches back: the change applied while epoch 0 waits at quorum and
/// epoch 1 runs leaves both at the old schedule; it binds from epoch 2, the first that had not
/// started when it was applied, and a proposal above it is refused at the vote. A second budget
/// change is refused while the first waits for its epoch.
#[tokio::test]
async fn a_lowered_schedule_binds_from_the_first_epoch_not_yet_started() {
    let mut env = Env::new().await;
    let lowered = EmissionParams {
        initial_per_epoch: 500 * TOKEN,
        floor_per_epoch: 0,
        ..default_emission()
    };
    let lower = env
        .queue(GovernanceChange::Params(ParamsChange {
            emission: Some(lowered),
            ..Default::default()
        }))
        .await
        .unwrap();
    let further = env
        .queue(GovernanceChange::Params(ParamsChange {
            emission: Some(EmissionParams {
                initial_per_epoch: 400 * TOKEN,
                ..lowered
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    let op = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(op, 800 * TOKEN)]);
    let p0 = env.proposal(&t0, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p0).await.unwrap();
    env.vote(1, 0, p0).await.unwrap();
    assert_program_err(env.apply(lower).await, E::ChangeNotReady);
    // The change becomes executable when epoch 0 becomes finalizable, during epoch 1.
    let at = env.epoch_state(0).await.finalizable_at;
    env.wait_for_change(lower).await;
    assert_eq!(env.now().await, at);
    env.apply(lower).await.unwrap();
    let c = env.config_state().await;
    let pending = c.pending_params.expect("pending parameters");
    assert_eq!((pending.from_epoch, pending.params.emission), (2, lowered));
    assert_eq!(c.emission, default_emission());
    assert_program_err(env.apply(further).await, E::BudgetChangePending);
    env.finalize(0).await.unwrap();
    assert_eq!(env.supply_minted().await, 800 * TOKEN);
    // Epoch 1 had started when the change was applied: the old schedule still holds.
    let t1 = env.reward_tree(1, &[(op, 1_600 * TOKEN)]);
    env.run_epoch(1, env.proposal(&t1, 800 * TOKEN)).await;
    let c = env.config_state().await;
    assert_eq!((c.emission, c.pending_params), (lowered, None));
    // Epoch 2: the lowered schedule, at the vote.
    env.end_epoch(2).await;
    let over = env.reward_tree(2, &[(op, 2_100 * TOKEN + 1)]);
    assert_program_err(
        env.vote(0, 2, env.proposal(&over, 1_600 * TOKEN)).await,
        E::ExceedsEpochEmission,
    );
    let t2 = env.reward_tree(2, &[(op, 2_100 * TOKEN)]);
    env.run_epoch(2, env.proposal(&t2, 1_600 * TOKEN)).await;
    assert_eq!(env.supply_minted().await, 2_100 * TOKEN);
    // The second change applies now, from the first epoch that has not started.
    env.apply(further).await.unwrap();
    let now = env.now().await;
    let clock_epoch = backhaul_core::epoch::epoch_at(GENESIS, EPOCH_SECS, now).unwrap();
    let pending = env.config_state().await.pending_params.unwrap();
    assert_eq!(pending.from_epoch, clock_epoch + 1);
    assert_eq!(pending.params.emission.initial_per_epoch, 400 * TOKEN);
}

/// The lifetime cap binds at the vote; it can be lowered but never raised, nor lowered below what
/// the schedule already minted; at the cap, only what remains under it can be minted.
#[tokio::test]
async fn the_lifetime_cap_binds_at_the_vote_and_never_rises() {
    let mut env = deployed_with(|p| p.emission.lifetime_cap = 1_000 * TOKEN).await;
    let op = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(Pubkey::new_unique(), 900 * TOKEN)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    // 100 tokens remain under the cap; epoch 1 proposes 150 more.
    let tree = env.reward_tree(1, &[(op, 1_050 * TOKEN)]);
    let p = EpochProposal {
        reward_leaf_count: 1,
        ..env.proposal(&tree, 900 * TOKEN)
    };
    env.end_epoch(1).await;
    assert_program_err(env.vote(0, 1, p).await, E::ExceedsLifetimeCap);
    let cap = |lifetime_cap| {
        GovernanceChange::Params(ParamsChange {
            emission: Some(EmissionParams {
                lifetime_cap,
                initial_per_epoch: 500 * TOKEN,
                floor_per_epoch: 0,
                ..default_emission()
            }),
            ..Default::default()
        })
    };
    for refused in [899 * TOKEN, 1_000 * TOKEN + 1] {
        assert_program_err(
            env.queue(cap(refused)).await.map(|_| ()),
            E::LifetimeCapRaised,
        );
    }
    assert_eq!(env.next_change_id().await, 0, "nothing was queued");
    // Exactly what remains lands.
    let rest = env.reward_tree(1, &[(op, 1_000 * TOKEN)]);
    let p = EpochProposal {
        reward_leaf_count: 1,
        ..env.proposal(&rest, 900 * TOKEN)
    };
    env.vote(0, 1, p).await.unwrap();
    env.vote(1, 1, p).await.unwrap();
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(1).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(
        (c.scheduled_minted, c.emission.lifetime_cap),
        (1_000 * TOKEN, 1_000 * TOKEN)
    );
}

/// The mint rate limiter is checked at every vote: a proposal the bucket cannot take yet is
/// refused before it can reach quorum, and the same proposal lands once the window has drained.
/// (The bucket drains a full budget per epoch at most: `capacity · epoch ≥ budget · window`.)
#[tokio::test]
async fn the_mint_rate_limiter_refuses_at_the_vote_until_it_drains() {
    let mut env = deployed_with(|p| {
        p.rate_capacity = p.emission.initial_per_epoch;
        p.rate_window_secs = EPOCH_SECS;
        p.economics.net_emissions_cap = 0;
    })
    .await;
    let op = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(op, 1_000 * TOKEN)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    let t1 = env.reward_tree(1, &[(op, 2_000 * TOKEN)]);
    let p1 = env.proposal(&t1, 1_000 * TOKEN);
    // Epoch 1 ends 18 hours after epoch 0 was finalized: a quarter of the bucket is still full.
    env.end_epoch(1).await;
    for i in 0..3 {
        assert_program_err(env.vote(i, 1, p1).await, E::RateLimited);
    }
    let last_ts = env.config_state().await.rate_limiter.last_ts;
    env.set_time(last_ts + EPOCH_SECS as i64 - 1).await;
    assert_program_err(env.vote(0, 1, p1).await, E::RateLimited);
    assert!(env
        .account::<EpochRecord>(&epoch_address(&env.config, 1))
        .await
        .is_none());
    env.set_time(last_ts + EPOCH_SECS as i64).await;
    env.vote(0, 1, p1).await.unwrap();
    env.vote(1, 1, p1).await.unwrap();
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(1).await.unwrap();
    assert_eq!(env.supply_minted().await, 2_000 * TOKEN);
    let c = env.config_state().await;
    assert_eq!(
        (c.rate_limiter.level, c.rate_limiter.last_ts),
        (1_000 * TOKEN, at)
    );
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
    assert_eq!(env.supply_minted().await, 0);
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
    assert_eq!(env.supply_minted().await, 1_500 * TOKEN);
}
