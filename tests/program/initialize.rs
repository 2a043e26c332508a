use crate::util::*;
use backhaul::error::BackhaulError as E;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

#[tokio::test]
async fn initializes_every_field_and_the_vault() {
    let mut env = Env::new().await;
    let c = env.config_state().await;
    let p = env.default_params();
    assert_eq!(c.admin, env.admin.pubkey());
    assert_eq!(c.version, backhaul::constants::ACCOUNT_VERSION);
    assert_eq!(c.guardians, vec![env.guardian.pubkey()]);
    assert_eq!(c.pending_admin, None);
    assert_eq!(c.mint, env.mint);
    assert_eq!(c.vault, env.vault);
    assert_eq!(c.oracles, p.oracles);
    assert_eq!(c.threshold, 2);
    assert_eq!(c.genesis_ts, GENESIS);
    assert_eq!(c.epoch_length_secs, EPOCH_SECS);
    assert_eq!(c.challenge_period_secs, CHALLENGE_SECS);
    assert_eq!(c.governance_delay_secs, GOVERNANCE_DELAY_SECS);
    assert_eq!((c.next_change_id, c.pending_params), (0, None));
    assert_eq!(c.emission, default_emission());
    assert_eq!(c.consensus, default_consensus());
    assert_eq!(c.params_for(0).consensus, p.consensus);
    assert_eq!(c.rate_limiter.capacity, p.rate_capacity);
    assert_eq!(c.rate_limiter.level, 0);
    assert_eq!((c.paused_until, c.pause_available_at), (0, 0));
    assert!(!c.is_paused(env.now().await));
    assert_eq!((c.burned_finalized, c.total_reemitted), (0, 0));
    assert_eq!((c.next_epoch, c.total_minted, c.total_claimed), (0, 0, 0));
    let vault = env.vault;
    let acc = env
        .ctx
        .banks_client
        .get_account(vault)
        .await
        .unwrap()
        .unwrap();
    let token = unpack_token(&acc.data);
    assert_eq!(token.mint, env.mint);
    assert_eq!(token.owner, env.config);
    assert_eq!(token.amount, 0);
}

#[tokio::test]
async fn only_the_upgrade_authority_can_initialize() {
    let mut env = Env::new_uninitialized().await;
    let stranger = Keypair::new();
    fund(&mut env, &stranger.pubkey()).await;
    let params = env.default_params();
    let ix = env.initialize_ix(&stranger.pubkey(), params);
    assert_program_err(env.send(&[ix], &[&stranger]).await, E::NotUpgradeAuthority);
    // The admin named in the parameters is not the upgrade authority either.
    let admin = env.admin.insecure_clone();
    let ix = env.initialize_ix(&admin.pubkey(), env.default_params());
    assert_program_err(env.send(&[ix], &[&admin]).await, E::NotUpgradeAuthority);
    assert!(env.account::<Config>(&env.config.clone()).await.is_none());
}

#[tokio::test]
async fn a_fake_program_data_account_is_refused() {
    let mut env = Env::new_uninitialized().await;
    let stranger = Keypair::new();
    fund(&mut env, &stranger.pubkey()).await;
    // A look-alike ProgramData at another address naming the stranger as upgrade authority.
    let fake = Pubkey::new_unique();
    env.ctx
        .set_account(&fake, &program_data_account(&stranger.pubkey()).into());
    let mut ix = env.initialize_ix(&stranger.pubkey(), env.default_params());
    ix.accounts[1].pubkey = fake;
    assert_anchor_err(
        env.send(&[ix], &[&stranger]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
}

#[tokio::test]
async fn initializing_twice_fails_and_changes_nothing() {
    let mut env = Env::new().await;
    let before = env.config_state().await;
    let mut params = env.default_params();
    params.threshold = 3;
    assert_failed(env.initialize(params).await);
    let after = env.config_state().await;
    assert_eq!(before.threshold, after.threshold);
    assert_eq!(before.admin, after.admin);
}

#[tokio::test]
async fn the_mint_must_belong_to_the_config_without_freeze_authority() {
    let mut env = Env::new_uninitialized().await;
    let config = env.config;
    let mint = env.mint;
    for account in [
        mint_account(Some(Pubkey::new_unique()), None, 0),
        mint_account(None, None, 0),
        mint_account(Some(config), Some(Pubkey::new_unique()), 0),
    ] {
        env.ctx.set_account(&mint, &account.into());
        assert_program_err(env.initialize(env.default_params()).await, E::InvalidMint);
    }
    // A token account passed as the mint is refused by its type.
    let not_a_mint = env.create_token_account(&mint, &Pubkey::new_unique()).await;
    let auth = env.upgrade_authority.insecure_clone();
    let mut ix = env.initialize_ix(&auth.pubkey(), env.default_params());
    ix.accounts[3].pubkey = not_a_mint;
    assert_failed(env.send(&[ix], &[&auth]).await);
}

#[tokio::test]
async fn every_parameter_is_bounded() {
    let mut env = Env::new_uninitialized().await;
    let mut base = env.default_params();
    // Net emissions of 100 tokens per epoch, so the rate limiter's bounds cover them.
    base.economics.net_emissions_cap = 100 * 10u64.pow(DECIMALS as u32);
    base.rate_capacity = base.emission.initial_per_epoch + base.economics.net_emissions_cap;
    let o = base.oracles.clone();
    let emission = default_emission();
    type Case = (Box<dyn Fn(&mut InitializeParams)>, E);
    let cases: Vec<Case> = vec![
        (Box::new(|p| p.admin = Pubkey::default()), E::InvalidKey),
        (
            Box::new(|p| p.guardians = vec![Pubkey::default()]),
            E::InvalidGuardianSet,
        ),
        (Box::new(|p| p.guardians = vec![]), E::InvalidGuardianSet),
        (
            Box::new(|p| p.guardians = (0..5).map(|_| Pubkey::new_unique()).collect()),
            E::InvalidGuardianSet,
        ),
        (
            Box::new(|p| p.guardians = vec![p.guardians[0], p.guardians[0]]),
            E::InvalidGuardianSet,
        ),
        (Box::new(|p| p.guardians = vec![p.admin]), E::RolesOverlap),
        (
            Box::new({
                let o = o.clone();
                move |p| p.guardians.push(o[1])
            }),
            E::RolesOverlap,
        ),
        (Box::new(|p| p.oracles[2] = p.admin), E::RolesOverlap),
        (Box::new(|p| p.oracles = vec![]), E::InvalidOracleSet),
        (
            Box::new(|p| p.oracles = (0..11).map(|_| Pubkey::new_unique()).collect()),
            E::InvalidOracleSet,
        ),
        (
            Box::new({
                let o = o.clone();
                move |p| p.oracles = vec![o[0], o[1], o[0]]
            }),
            E::InvalidOracleSet,
        ),
        (
            Box::new({
                let o = o.clone();
                move |p| p.oracles = vec![o[0], Pubkey::default(), o[1]]
            }),
            E::InvalidOracleSet,
        ),
        (Box::new(|p| p.threshold = 0), E::InvalidThreshold),
        (Box::new(|p| p.threshold = 4), E::InvalidThreshold),
        (Box::new(|p| p.threshold = 1), E::InvalidThreshold), // 1 of 3 is a minority
        (
            Box::new(|p| p.epoch_length_secs = 7_199),
            E::InvalidEpochLength,
        ),
        (
            Box::new(|p| p.epoch_length_secs = 30 * 86_400 + 1),
            E::InvalidEpochLength,
        ),
        (
            Box::new(|p| p.challenge_period_secs = 3_599),
            E::InvalidChallengePeriod,
        ),
        // At most half an epoch.
        (
            Box::new(|p| p.challenge_period_secs = EPOCH_SECS / 2 + 1),
            E::InvalidChallengePeriod,
        ),
        (
            Box::new(|p| p.governance_delay_secs = EPOCH_SECS + CHALLENGE_SECS - 1),
            E::InvalidGovernanceDelay,
        ),
        (
            Box::new(|p| p.governance_delay_secs = 90 * 86_400 + 1),
            E::InvalidGovernanceDelay,
        ),
        (
            Box::new(|p| p.genesis_ts = GENESIS + 366 * 86_400),
            E::InvalidGenesis,
        ),
        (
            Box::new(|p| p.genesis_ts = GENESIS - 366 * 86_400),
            E::InvalidGenesis,
        ),
        (Box::new(|p| p.genesis_ts = i64::MIN), E::InvalidGenesis),
        (
            Box::new(move |p| p.emission.initial_per_epoch = 0),
            E::InvalidEmissionSchedule,
        ),
        (
            Box::new(|p| p.emission.decay_bps = 10_000),
            E::InvalidEmissionSchedule,
        ),
        (
            Box::new(|p| p.emission.decay_period_epochs = 0),
            E::InvalidEmissionSchedule,
        ),
        (
            Box::new(move |p| p.emission.floor_per_epoch = emission.initial_per_epoch + 1),
            E::InvalidEmissionSchedule,
        ),
        (
            Box::new(move |p| p.emission.lifetime_cap = emission.initial_per_epoch - 1),
            E::InvalidEmissionSchedule,
        ),
        (Box::new(|p| p.rate_window_secs = 59), E::InvalidRateLimit),
        (
            Box::new(|p| p.rate_window_secs = 365 * 86_400 + 1),
            E::InvalidRateLimit,
        ),
        (
            Box::new(move |p| p.rate_capacity = emission.initial_per_epoch - 1),
            E::InvalidRateLimit,
        ),
        // The capacity holds a whole budget: the initial emission plus the net emissions cap.
        (
            Box::new(move |p| {
                p.rate_capacity = emission.initial_per_epoch + p.economics.net_emissions_cap - 1
            }),
            E::InvalidRateLimit,
        ),
        // And drains at least a whole budget per epoch: 2,000 tokens over two epochs is less
        // than 1,100 per epoch.
        (
            Box::new(|p| p.rate_window_secs = 2 * EPOCH_SECS),
            E::InvalidRateLimit,
        ),
        // The consensus parameters: a price, a pair cap and a rate limit of zero would count no
        // bandwidth or charge nothing for it; the grace period is less than half an epoch.
        (
            Box::new(|p| p.consensus.credits_per_gib = 0),
            E::InvalidConsensusParams,
        ),
        (
            Box::new(|p| p.consensus.pair_cap_bytes = 0),
            E::InvalidConsensusParams,
        ),
        (
            Box::new(|p| p.consensus.max_rate_bytes_per_sec = 0),
            E::InvalidConsensusParams,
        ),
        (
            Box::new(|p| p.consensus.grace_secs = EPOCH_SECS / 2),
            E::InvalidConsensusParams,
        ),
        (
            Box::new(|p| p.consensus.grace_secs = u64::MAX),
            E::InvalidConsensusParams,
        ),
    ];
    for (i, (mutate, expected)) in cases.into_iter().enumerate() {
        let mut p = base.clone();
        mutate(&mut p);
        let res = env.initialize(p).await;
        assert!(res.is_err(), "case {i} should fail");
        assert_program_err(res, expected);
    }
    // The bounds themselves are accepted, and a single oracle with threshold 1 is a valid set.
    let mut p = base.clone();
    p.oracles = vec![o[0]];
    p.threshold = 1;
    p.guardians = (0..4).map(|_| Pubkey::new_unique()).collect();
    p.epoch_length_secs = 7_200;
    p.challenge_period_secs = 3_600;
    p.governance_delay_secs = 10_800;
    p.rate_window_secs = 60;
    p.rate_capacity = p.emission.initial_per_epoch + p.economics.net_emissions_cap;
    p.emission.decay_bps = 9_999;
    p.emission.lifetime_cap = p.emission.initial_per_epoch;
    p.genesis_ts = GENESIS - 365 * 86_400;
    p.consensus = ConsensusParams {
        credits_per_gib: 1,
        pair_cap_bytes: 1,
        max_rate_bytes_per_sec: 1,
        grace_secs: 7_200 / 2 - 1,
    };
    env.initialize(p).await.expect("bounds are inclusive");
    let c = env.config_state().await;
    assert_eq!(
        (
            c.guardians.len(),
            c.challenge_period_secs,
            c.governance_delay_secs
        ),
        (4, 3_600, 10_800)
    );
    assert_eq!(c.consensus.grace_secs, 3_599);
}

#[tokio::test]
async fn malformed_instruction_data_is_refused() {
    let mut env = Env::new_uninitialized().await;
    let auth = env.upgrade_authority.insecure_clone();
    let mut ix = env.initialize_ix(&auth.pubkey(), env.default_params());
    ix.data.truncate(20);
    assert_anchor_err(
        env.send(&[ix.clone()], &[&auth]).await,
        anchor_lang::error::ErrorCode::InstructionDidNotDeserialize,
    );
    ix.data = vec![1, 2, 3, 4, 5, 6, 7, 8];
    assert_anchor_err(
        env.send(&[ix.clone()], &[&auth]).await,
        anchor_lang::error::ErrorCode::InstructionFallbackNotFound,
    );
    ix.data = vec![];
    assert_failed(env.send(&[ix], &[&auth]).await);
}
