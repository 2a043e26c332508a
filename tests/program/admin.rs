use backhaul::error::BackhaulError as E;
use backhaul::state::EmissionParams;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

#[tokio::test]
async fn update_params_applies_values_within_bounds() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let emission = EmissionParams {
        initial_per_epoch: 2_000_000_000,
        lifetime_cap: 90_000_000_000,
        ..default_emission()
    };
    let args = UpdateParamsArgs {
        challenge_period_secs: Some(3_600),
        emission: Some(emission),
        rate_window_secs: Some(7 * 86_400),
        rate_capacity: Some(5_000_000_000),
        economics: None,
    };
    let ix = env.update_params_ix(&admin.pubkey(), args);
    env.send_as(ix, &admin).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(c.challenge_period_secs, 3_600);
    assert_eq!(c.emission, emission);
    assert_eq!(
        (c.rate_limiter.window_secs, c.rate_limiter.capacity),
        (7 * 86_400, 5_000_000_000)
    );
    // Nothing given: nothing changes.
    let ix = env.update_params_ix(&admin.pubkey(), UpdateParamsArgs::default());
    env.send_as(ix, &admin).await.unwrap();
    assert_eq!(env.config_state().await.emission, emission);
}

#[tokio::test]
async fn update_params_refuses_other_signers_and_out_of_bounds_values() {
    let mut env = Env::new().await;
    let (admin, guardian) = (env.admin.insecure_clone(), env.guardian.insecure_clone());
    let ix = env.update_params_ix(
        &guardian.pubkey(),
        UpdateParamsArgs {
            challenge_period_secs: Some(600),
            ..Default::default()
        },
    );
    assert_program_err(env.send_as(ix, &guardian).await, E::NotAdmin);
    let e = default_emission();
    let cases = [
        (
            UpdateParamsArgs {
                challenge_period_secs: Some(59),
                ..Default::default()
            },
            E::InvalidChallengePeriod,
        ),
        (
            UpdateParamsArgs {
                challenge_period_secs: Some(u64::MAX),
                ..Default::default()
            },
            E::InvalidChallengePeriod,
        ),
        (
            UpdateParamsArgs {
                emission: Some(EmissionParams {
                    decay_bps: 10_000,
                    ..e
                }),
                ..Default::default()
            },
            E::InvalidEmissionSchedule,
        ),
        (
            UpdateParamsArgs {
                emission: Some(EmissionParams {
                    initial_per_epoch: 0,
                    ..e
                }),
                ..Default::default()
            },
            E::InvalidEmissionSchedule,
        ),
        (
            UpdateParamsArgs {
                rate_window_secs: Some(0),
                ..Default::default()
            },
            E::InvalidRateLimit,
        ),
        (
            UpdateParamsArgs {
                rate_capacity: Some(e.initial_per_epoch - 1),
                ..Default::default()
            },
            E::InvalidRateLimit,
        ),
        // A larger emission must come with a rate capacity that can hold it.
        (
            UpdateParamsArgs {
                emission: Some(EmissionParams {
                    initial_per_epoch: 3 * e.initial_per_epoch,
                    ..e
                }),
                ..Default::default()
            },
            E::InvalidRateLimit,
        ),
    ];
    for (args, expected) in cases {
        let ix = env.update_params_ix(&admin.pubkey(), args);
        assert_program_err(env.send_as(ix, &admin).await, expected);
    }
    assert_eq!(
        env.config_state().await.challenge_period_secs,
        CHALLENGE_SECS
    );
}

#[tokio::test]
async fn set_oracles_replaces_the_set_within_bounds() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let set: Vec<Pubkey> = (0..10).map(|_| Pubkey::new_unique()).collect();
    let ix = env.set_oracles_ix(&admin.pubkey(), set.clone(), 6);
    env.send_as(ix, &admin).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.oracles, c.threshold), (set.clone(), 6));
    let g = env.guardian.insecure_clone();
    let ix = env.set_oracles_ix(&g.pubkey(), set.clone(), 6);
    assert_program_err(env.send_as(ix, &g).await, E::NotAdmin);
    let mut eleven = set.clone();
    eleven.push(Pubkey::new_unique());
    for (oracles, m, expected) in [
        (eleven, 6, E::InvalidOracleSet),
        (vec![], 0, E::InvalidOracleSet),
        (vec![set[0], set[0]], 2, E::InvalidOracleSet),
        (set.clone(), 5, E::InvalidThreshold),
        (set.clone(), 11, E::InvalidThreshold),
    ] {
        let ix = env.set_oracles_ix(&admin.pubkey(), oracles, m);
        assert_program_err(env.send_as(ix, &admin).await, expected);
    }
}

#[tokio::test]
async fn set_guardian_hands_over_the_veto() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let old = env.guardian.insecure_clone();
    let new = Keypair::new();
    let ix = env.set_guardian_ix(&old.pubkey(), new.pubkey());
    assert_program_err(env.send_as(ix, &old).await, E::NotAdmin);
    let ix = env.set_guardian_ix(&admin.pubkey(), Pubkey::default());
    assert_program_err(env.send_as(ix, &admin).await, E::InvalidKey);
    let ix = env.set_guardian_ix(&admin.pubkey(), new.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    assert_eq!(env.config_state().await.guardian, new.pubkey());
    // The old guardian can no longer pause; the new one can.
    let ix = env.set_paused_ix(&old.pubkey(), true);
    assert_program_err(env.send_as(ix, &old).await, E::NotAdminOrGuardian);
    crate::util::fund(&mut env, &new.pubkey()).await;
    let ix = env.set_paused_ix(&new.pubkey(), true);
    env.send_as(ix, &new).await.unwrap();
}

#[tokio::test]
async fn admin_transfer_takes_two_steps() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let next = Keypair::new();
    crate::util::fund(&mut env, &next.pubkey()).await;
    // Nothing pending yet.
    let ix = env.accept_admin_ix(&next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NoPendingAdmin);
    // Only the admin proposes.
    let ix = env.propose_admin_ix(&next.pubkey(), next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NotAdmin);
    let ix = env.propose_admin_ix(&admin.pubkey(), Pubkey::default());
    assert_program_err(env.send_as(ix, &admin).await, E::InvalidKey);
    let ix = env.propose_admin_ix(&admin.pubkey(), next.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(
        (c.admin, c.pending_admin),
        (admin.pubkey(), Some(next.pubkey()))
    );
    // Someone else cannot accept.
    let g = env.guardian.insecure_clone();
    let ix = env.accept_admin_ix(&g.pubkey());
    assert_program_err(env.send_as(ix, &g).await, E::NotPendingAdmin);
    let ix = env.accept_admin_ix(&next.pubkey());
    env.send_as(ix, &next).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.admin, c.pending_admin), (next.pubkey(), None));
    // The old admin has lost its powers; accepting again finds nothing pending.
    let ix = env.set_guardian_ix(&admin.pubkey(), Pubkey::new_unique());
    assert_program_err(env.send_as(ix, &admin).await, E::NotAdmin);
    let ix = env.accept_admin_ix(&next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NoPendingAdmin);
}

#[tokio::test]
async fn proposing_the_current_admin_cancels_a_transfer() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let next = Keypair::new();
    let ix = env.propose_admin_ix(&admin.pubkey(), next.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    let ix = env.propose_admin_ix(&admin.pubkey(), admin.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    assert_eq!(env.config_state().await.pending_admin, None);
    crate::util::fund(&mut env, &next.pubkey()).await;
    let ix = env.accept_admin_ix(&next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NoPendingAdmin);
}

#[tokio::test]
async fn pause_by_admin_or_guardian_unpause_by_admin_only() {
    let mut env = Env::new().await;
    let (admin, guardian) = (env.admin.insecure_clone(), env.guardian.insecure_clone());
    let oracle = env.oracles[0].insecure_clone();
    let ix = env.set_paused_ix(&oracle.pubkey(), true);
    assert_program_err(env.send_as(ix, &oracle).await, E::NotAdminOrGuardian);
    let ix = env.set_paused_ix(&guardian.pubkey(), true);
    env.send_as(ix, &guardian).await.unwrap();
    assert!(env.config_state().await.paused);
    let ix = env.set_paused_ix(&guardian.pubkey(), false);
    assert_program_err(env.send_as(ix, &guardian).await, E::NotAdmin);
    let ix = env.set_paused_ix(&admin.pubkey(), false);
    env.send_as(ix, &admin).await.unwrap();
    assert!(!env.config_state().await.paused);
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    env.send_as(ix, &admin).await.unwrap();
    assert!(env.config_state().await.paused);
}

#[tokio::test]
async fn admin_instructions_need_the_signature() {
    let mut env = Env::new().await;
    // The admin's key without its signature: the runtime refuses the missing signer.
    let admin = env.admin.pubkey();
    let mut ix = env.set_guardian_ix(&admin, Pubkey::new_unique());
    ix.accounts[0].is_signer = false;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::AccountNotSigner,
    );
    // Another deployment's config cannot be changed by this deployment's admin... and a config
    // of another deployment with the same admin is still its own account: has_one binds them.
    let other = env.add_deployment().await;
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let mut ix = env.set_guardian_ix(&stranger.pubkey(), Pubkey::new_unique());
    ix.accounts[1].pubkey = config_address(&other);
    assert_program_err(env.send_as(ix, &stranger).await, E::NotAdmin);
}
