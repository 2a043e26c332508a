//! Adversarial tests: accounts substituted for look-alikes, PDAs at non-canonical bumps,
//! duplicated accounts, claims racing a veto, parameters at their bounds, and one test for each
//! security pitfall that comparable systems shipped (the list in the research notes on on-chain
//! anchors, section c). Each test names its pitfall and would fail if the program had that bug.

use anchor_lang::error::ErrorCode as A;
use backhaul::error::BackhaulError as E;
use backhaul::state::{EconomicsParams, EmissionParams, EpochProposal};
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{self, leaf_node, root_hash, Leaf, SumNode};
use backhaul_core::tree::EpochTree;
use backhaul_tests::*;
use solana_program_test::BanksClientError;
use solana_sdk::instruction::{AccountMeta, Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

const TOKEN: u64 = 1_000_000;
/// $1 = 100,000 credits and the token at $1.
const PRICE: u64 = 100_000;

/// An address derived from `seeds` with a valid bump other than the canonical one: the same
/// seeds, a different account.
fn off_bump_pda(seeds: &[&[u8]]) -> Pubkey {
    let (_, canonical) = Pubkey::find_program_address(seeds, &backhaul::ID);
    (0..canonical)
        .rev()
        .find_map(|b| {
            let bump = [b];
            let mut with_bump = seeds.to_vec();
            with_bump.push(&bump);
            Pubkey::create_program_address(&with_bump, &backhaul::ID).ok()
        })
        .expect("some lower bump is off the curve")
}

/// Epoch 0 finalized with a paying `a` 300 and `b` 700.
async fn finalized() -> (Env, Pubkey, Pubkey, EpochTree) {
    let mut env = Env::new().await;
    let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
    let t0 = env.reward_tree(0, &[(a, 300), (b, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    (env, a, b, t0)
}

/// Epoch 0 ended with a proposal at quorum, its challenge period running.
async fn at_quorum() -> (Env, Pubkey, EpochTree, EpochProposal) {
    let mut env = Env::new().await;
    let a = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(a, 300)]);
    let p = env.proposal(&t0, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    (env, a, t0, p)
}

// ---- the record sentinel -----------------------------------------------------------------

/// Pitfall 3 (double claims through claim records that look new again) and 17 (an off-chain
/// tree bug that becomes an on-chain loss): a claim record used "operator is the zero key" to
/// mean "not created yet", so a leaf for the zero key (an unbound node mapped to a default
/// key, say) could be claimed again and again, each time paying its whole cumulative amount
/// out of the other operators' share of the vault.
#[tokio::test]
async fn a_leaf_for_the_zero_key_pays_once() {
    let mut env = Env::new().await;
    let zero = Pubkey::default();
    let b = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(zero, 300), (b, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    let mint = env.mint;
    let recipient = env.create_token_account(&mint, &zero).await;
    let (entry, proof) = t0.leaf_proof(&zero.to_bytes()).unwrap();
    let payer = env.payer().pubkey();
    let ix = env.claim_ix(
        &payer,
        0,
        &zero,
        &recipient,
        entry.cumulative,
        proof.clone(),
    );
    env.send(&[ix], &[]).await.unwrap();
    assert_eq!(env.token_balance(&recipient).await, 300);
    let ix = env.claim_ix(&payer, 0, &zero, &recipient, entry.cumulative, proof);
    assert_program_err(env.send(&[ix], &[]).await, E::NothingToClaim);
    assert_eq!(env.token_balance(&recipient).await, 300);
    let vault = env.vault;
    assert_eq!(env.token_balance(&vault).await, 700, "b's share stays");
    let claim: OperatorClaim = env
        .account(&claim_address(&env.config, &zero))
        .await
        .unwrap();
    assert_eq!((claim.config, claim.claimed), (env.config, 300));
    env.claim_from(&t0, 0, &b).await.unwrap();
    assert_eq!(env.token_balance(&vault).await, 0);
}

// ---- look-alike accounts -----------------------------------------------------------------

/// Another deployment's config, with its own vault and mint, against this deployment's epoch
/// record: each account is genuine, only their combination is wrong.
#[tokio::test]
async fn another_deployments_accounts_do_not_combine_with_ours() {
    let (mut env, a, _, t0) = finalized().await;
    let first = env.mint;
    let other = env.add_deployment().await;
    let other_config = config_address(&other);
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    // Their config, vault and mint with our epoch record.
    let mut ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof.clone());
    ix.accounts[1].pubkey = other_config;
    ix.accounts[4].pubkey = claim_address(&other_config, &a);
    ix.accounts[5].pubkey = vault_address(&other_config);
    // Our epoch record names our config, not theirs.
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintHasOne);
    // Our config with their claim record for the same operator.
    let mut ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof.clone());
    ix.accounts[4].pubkey = claim_address(&other_config, &a);
    assert_program_err(env.send(&[ix], &[]).await, E::WrongClaimRecord);
    // Their config in settle_usage, with our epoch record and ledger.
    let ix = env.settle_ix(&payer, 0, &a, 0, Proof::default());
    let mut ix2 = ix.clone();
    ix2.accounts[1].pubkey = other_config;
    assert_anchor_err(env.send(&[ix2], &[]).await, A::ConstraintSeeds);
    // Their config in veto: the guardian of ours cannot stop theirs through ours, nor ours
    // through theirs.
    env.use_deployment(other);
    let t_other = env.reward_tree(0, &[(a, 5)]);
    env.vote(0, 0, env.proposal(&t_other, 0)).await.unwrap();
    env.use_deployment(first);
    let g = env.guardian.insecure_clone();
    let mut ix = env.veto_ix(&g.pubkey(), 0);
    ix.accounts[2].pubkey = epoch_address(&other_config, 0);
    assert_anchor_err(env.send_as(ix, &g).await, A::ConstraintSeeds);
    assert_eq!(env.token_balance(&recipient).await, 0);
    env.send(
        &[env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof)],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(env.token_balance(&recipient).await, 300);
}

/// A fake vault (right mint, owned by the config, but not the vault PDA) and a token account
/// of another mint, in every instruction that moves tokens.
#[tokio::test]
async fn fake_vaults_and_foreign_mints_are_refused_everywhere() {
    let (mut env, a, b, t0) = finalized().await;
    let (mint, config) = (env.mint, env.config);
    let fake_vault = env.create_token_account(&mint, &config).await;
    env.ctx
        .set_account(&fake_vault, &token_account(&mint, &config, 1_000).into());
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let mut ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof.clone());
    ix.accounts[5].pubkey = fake_vault;
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintHasOne);

    let other_mint = Pubkey::new_unique();
    env.ctx
        .set_account(&other_mint, &mint_account(Some(config), None, 0).into());
    let foreign = env.create_token_account(&other_mint, &a).await;
    let ix = env.claim_ix(&payer, 0, &a, &foreign, entry.cumulative, proof);
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintTokenMint);

    // Epoch 1: finalize into a fake vault, or mint another mint (whose authority is also the
    // config PDA: the look-alike the config must not be tricked into minting).
    let t1 = env.reward_tree(1, &[(a, 400), (b, 700)]);
    let p1 = env.proposal(&t1, 1_000);
    env.end_epoch(1).await;
    env.vote(0, 1, p1).await.unwrap();
    env.vote(1, 1, p1).await.unwrap();
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    let mut ix = env.finalize_ix(1);
    ix.accounts[3].pubkey = fake_vault;
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintHasOne);
    let mut ix = env.finalize_ix(1);
    ix.accounts[2].pubkey = other_mint;
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintHasOne);
    assert_eq!(env.token_balance(&fake_vault).await, 1_000);
    env.finalize(1).await.unwrap();
    let burned = env.sponsor_bought().tokens;
    assert_eq!(
        env.mint_supply().await,
        TREASURY_SUPPLY + 1_000 + 100 - burned
    );
}

// ---- PDAs at a non-canonical bump --------------------------------------------------------

/// Every PDA the program creates is checked against the canonical bump: an address from the
/// same seeds with another bump is refused (it would be a second record for the same key).
#[tokio::test]
async fn pdas_at_a_non_canonical_bump_are_refused() {
    let (mut env, a, b, t0) = finalized().await;
    let config = env.config;
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    // The operator's claim record.
    let mut ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof);
    ix.accounts[4].pubkey = off_bump_pda(&[b"claim", config.as_ref(), a.as_ref()]);
    assert_program_err(env.send(&[ix], &[]).await, E::WrongClaimRecord);
    // The next epoch's record and ledger.
    env.end_epoch(1).await;
    let p1 = env.proposal(&env.reward_tree(1, &[(a, 300), (b, 700)]), 1_000);
    let epoch1 = 1u64.to_le_bytes();
    let mut ix = env.seal_ix(&payer, 1);
    ix.accounts[3].pubkey = off_bump_pda(&[b"ledger", config.as_ref(), &epoch1]);
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintSeeds);
    env.seal(1).await.unwrap();
    let oracle = env.oracles[0].insecure_clone();
    let mut ix = env.propose_ix(&oracle.pubkey(), 1, p1);
    ix.accounts[2].pubkey = off_bump_pda(&[b"epoch", config.as_ref(), &epoch1]);
    assert_anchor_err(env.send(&[ix], &[&oracle]).await, A::ConstraintSeeds);
    // A buyer's credit account and the epoch's ledger in buy_credits.
    env.post_price(PRICE).await;
    let buyer = crate::util::buyer_with(&mut env, TOKEN).await;
    let tokens = ata(&buyer.pubkey(), &env.mint);
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &tokens, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[5].pubkey = off_bump_pda(&[b"credits", config.as_ref(), buyer.pubkey().as_ref()]);
    assert_anchor_err(env.send(&[ix], &[&buyer]).await, A::ConstraintSeeds);
    let epoch_now = env.current_epoch().await.to_le_bytes();
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &tokens, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[6].pubkey = off_bump_pda(&[b"ledger", config.as_ref(), &epoch_now]);
    assert_anchor_err(env.send(&[ix], &[&buyer]).await, A::ConstraintSeeds);
    assert_eq!(env.token_balance(&tokens).await, TOKEN);
}

// ---- duplicated accounts -----------------------------------------------------------------

/// One account passed in two slots of the same instruction.
#[tokio::test]
async fn duplicated_accounts_are_refused() {
    let (mut env, a, b, t0) = finalized().await;
    let vault = env.vault;
    let payer = env.payer().pubkey();
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    // The vault as the recipient: the tokens would never leave it, yet the claim would count.
    let ix = env.claim_ix(&payer, 0, &a, &vault, entry.cumulative, proof.clone());
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        A::ConstraintDuplicateMutableAccount,
    );
    // The config as the operator, with a token account the config owns.
    let config = env.config;
    let mint = env.mint;
    let configs = env.create_token_account(&mint, &config).await;
    let ix = env.claim_ix(
        &payer,
        0,
        &config,
        &configs,
        entry.cumulative,
        proof.clone(),
    );
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // The config as its own price feed.
    env.post_price(PRICE).await;
    let buyer = crate::util::buyer_with(&mut env, TOKEN).await;
    let tokens = ata(&buyer.pubkey(), &env.mint);
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &tokens, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[2].pubkey = config;
    assert_anchor_err(
        env.send(&[ix], &[&buyer]).await,
        A::AccountDiscriminatorMismatch,
    );
    // The ledger as the credit account.
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &tokens, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[5].pubkey = ix.accounts[6].pubkey;
    assert_anchor_err(env.send(&[ix], &[&buyer]).await, A::ConstraintSeeds);
    // The ledger as the epoch record, and the epoch record as the ledger.
    env.end_epoch(1).await;
    env.seal(1).await.unwrap();
    let p1 = env.proposal(&env.reward_tree(1, &[(a, 300), (b, 700)]), 1_000);
    let oracle = env.oracles[0].insecure_clone();
    let mut ix = env.propose_ix(&oracle.pubkey(), 1, p1);
    ix.accounts[2].pubkey = ix.accounts[3].pubkey;
    assert_anchor_err(env.send(&[ix], &[&oracle]).await, A::ConstraintSeeds);
    let mut ix = env.finalize_ix(0);
    ix.accounts[5].pubkey = ix.accounts[1].pubkey;
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountDiscriminatorMismatch);
    // The mint as the vault.
    let mut ix = env.finalize_ix(0);
    ix.accounts[3].pubkey = ix.accounts[2].pubkey;
    // (a mint does not decode as a token account)
    let err = env.send(&[ix], &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            BanksClientError::TransactionError(TransactionError::InstructionError(
                _,
                InstructionError::InvalidAccountData
            ))
        ),
        "{err:?}"
    );
    assert_eq!(env.token_balance(&vault).await, 1_000);
    assert_eq!(env.config_state().await.total_claimed, 0);
}

// ---- claims racing a veto ----------------------------------------------------------------

/// The veto window and the finalize window are disjoint to the second, claims need a finalized
/// epoch, and a claim built on a vetoed root never pays once a corrected root is finalized.
#[tokio::test]
async fn claims_racing_a_veto() {
    let (mut env, a, t0, p) = at_quorum().await;
    let at = env.epoch_state(0).await.finalizable_at;
    // During the challenge period the claim is refused, whoever sends it.
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::EpochNotFinalized);
    // One second before the end: finalize is refused and the veto lands; in one transaction
    // with a finalize, the whole transaction fails.
    env.set_time(at - 1).await;
    assert_program_err(env.finalize(0).await, E::ChallengePeriodActive);
    let g = env.guardian.insecure_clone();
    let both = [env.veto_ix(&g.pubkey(), 0), env.finalize_ix(0)];
    assert_program_err(env.send(&both, &[&g]).await, E::NoQuorum);
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Proposed);
    env.veto(0).await.unwrap();
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::EpochNotFinalized);
    // A corrected root (a earns 250) reaches quorum; the claim built on the vetoed root fails
    // against it once finalized.
    let t_fixed = env.reward_tree(0, &[(a, 250)]);
    let fixed = env.proposal(&t_fixed, 0);
    assert_ne!(fixed, p);
    env.vote(1, 0, fixed).await.unwrap();
    env.vote(2, 0, fixed).await.unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    // At the end of the period, the veto is too late and finalize plus claim land together.
    assert_program_err(env.veto(0).await, E::VetoWindowClosed);
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (old_entry, old_proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let stale = env.claim_ix(&payer, 0, &a, &recipient, old_entry.cumulative, old_proof);
    let stale_after_finalize = [env.finalize_ix(0), stale];
    assert_program_err(env.send(&stale_after_finalize, &[]).await, E::InvalidProof);
    let (entry, proof) = t_fixed.leaf_proof(&a.to_bytes()).unwrap();
    let good = [
        env.finalize_ix(0),
        env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof),
    ];
    env.send(&good, &[]).await.unwrap();
    assert_eq!(env.token_balance(&recipient).await, 250);
    assert_program_err(env.veto(0).await, E::VetoWindowClosed);
}

// ---- parameters at their bounds ----------------------------------------------------------

fn min_params(env: &Env) -> InitializeParams {
    InitializeParams {
        oracles: vec![env.oracles[0].pubkey()],
        threshold: 1,
        epoch_length_secs: 7_200,
        challenge_period_secs: 3_600,
        governance_delay_secs: 10_800,
        emission: EmissionParams {
            initial_per_epoch: 1,
            decay_bps: 0,
            decay_period_epochs: 1,
            floor_per_epoch: 1,
            lifetime_cap: 1,
        },
        rate_window_secs: 60,
        rate_capacity: 1,
        economics: EconomicsParams {
            price_max_age_secs: 60,
            price_max_change_bps: 1,
            net_emissions_cap: 0,
            burn_smoothing_epochs: 1,
            usage_cap_bps: 1,
        },
        consensus: ConsensusParams {
            credits_per_gib: 1,
            pair_cap_bytes: 1,
            max_rate_bytes_per_sec: 1,
            grace_secs: 0,
        },
        ..env.default_params()
    }
}

/// The largest values, each at its bound. The per-epoch amounts are as large as a rate limiter of
/// the largest capacity and window can still drain in one (the longest) epoch.
fn max_params(env: &Env) -> InitializeParams {
    let oracles: Vec<Pubkey> = (0..10).map(|_| Pubkey::new_unique()).collect();
    let per_epoch = u64::MAX / 25;
    InitializeParams {
        oracles,
        threshold: 6,
        guardians: (0..4).map(|_| Pubkey::new_unique()).collect(),
        genesis_ts: GENESIS + 365 * 86_400,
        epoch_length_secs: 30 * 86_400,
        challenge_period_secs: 15 * 86_400,
        governance_delay_secs: 90 * 86_400,
        emission: EmissionParams {
            initial_per_epoch: per_epoch,
            decay_bps: 9_999,
            decay_period_epochs: u64::MAX,
            floor_per_epoch: per_epoch,
            lifetime_cap: u64::MAX,
        },
        rate_window_secs: 365 * 86_400,
        rate_capacity: u64::MAX,
        economics: EconomicsParams {
            price_max_age_secs: 7 * 86_400,
            price_max_change_bps: 10_000,
            net_emissions_cap: per_epoch,
            burn_smoothing_epochs: 1_000,
            usage_cap_bps: 10_000,
        },
        // The grace period is less than half the (longest) epoch.
        consensus: ConsensusParams {
            credits_per_gib: u64::MAX,
            pair_cap_bytes: u64::MAX,
            max_rate_bytes_per_sec: u64::MAX,
            grace_secs: 15 * 86_400 - 1,
        },
        ..env.default_params()
    }
}

/// Every bound accepts its own value and refuses one step beyond it.
#[tokio::test]
async fn parameters_at_their_bounds() {
    let mut env = Env::new_uninitialized().await;
    type Edit = fn(&mut InitializeParams);
    let beyond_min: [(Edit, E); 13] = [
        (|p| p.epoch_length_secs = 7_199, E::InvalidEpochLength),
        (
            |p| p.challenge_period_secs = 3_599,
            E::InvalidChallengePeriod,
        ),
        (
            |p| p.governance_delay_secs = 10_799,
            E::InvalidGovernanceDelay,
        ),
        (|p| p.rate_window_secs = 59, E::InvalidRateLimit),
        (|p| p.rate_capacity = 0, E::InvalidRateLimit),
        (|p| p.economics.price_max_age_secs = 59, E::InvalidEconomics),
        (
            |p| p.economics.price_max_change_bps = 0,
            E::InvalidEconomics,
        ),
        (
            |p| p.economics.burn_smoothing_epochs = 0,
            E::InvalidEconomics,
        ),
        (|p| p.economics.usage_cap_bps = 0, E::InvalidEconomics),
        (
            |p| p.emission.decay_period_epochs = 0,
            E::InvalidEmissionSchedule,
        ),
        (
            |p| p.consensus.credits_per_gib = 0,
            E::InvalidConsensusParams,
        ),
        (
            |p| p.consensus.pair_cap_bytes = 0,
            E::InvalidConsensusParams,
        ),
        (
            |p| p.consensus.max_rate_bytes_per_sec = 0,
            E::InvalidConsensusParams,
        ),
    ];
    for (edit, err) in beyond_min {
        let mut p = min_params(&env);
        edit(&mut p);
        assert_program_err(env.initialize(p).await, err);
    }
    let beyond_max: [(Edit, E); 11] = [
        (|p| p.genesis_ts += 1, E::InvalidGenesis),
        (|p| p.epoch_length_secs += 1, E::InvalidEpochLength),
        (|p| p.challenge_period_secs += 1, E::InvalidChallengePeriod),
        (|p| p.governance_delay_secs += 1, E::InvalidGovernanceDelay),
        (|p| p.rate_window_secs += 1, E::InvalidRateLimit),
        (|p| p.economics.price_max_age_secs += 1, E::InvalidEconomics),
        (
            |p| p.economics.price_max_change_bps += 1,
            E::InvalidEconomics,
        ),
        (
            |p| p.economics.burn_smoothing_epochs += 1,
            E::InvalidEconomics,
        ),
        (|p| p.economics.usage_cap_bps += 1, E::InvalidEconomics),
        (|p| p.emission.decay_bps += 1, E::InvalidEmissionSchedule),
        (|p| p.consensus.grace_secs += 1, E::InvalidConsensusParams),
    ];
    for (edit, err) in beyond_max {
        let mut p = max_params(&env);
        edit(&mut p);
        assert_program_err(env.initialize(p).await, err);
    }
    let mut p = max_params(&env);
    p.threshold = 5; // 5 of 10 is not a majority
    assert_program_err(env.initialize(p).await, E::InvalidThreshold);
    let mut p = max_params(&env);
    p.oracles.push(Pubkey::new_unique());
    p.threshold = 11;
    assert_program_err(env.initialize(p).await, E::InvalidOracleSet);
    let mut p = max_params(&env);
    p.guardians.push(Pubkey::new_unique());
    assert_program_err(env.initialize(p).await, E::InvalidGuardianSet);
    // The rate limiter drains a whole budget per epoch, to the second: with the default budget
    // (1,100 tokens) and a capacity of 2,200, a window of two epochs and no longer.
    let at_edge = |env: &Env, window| InitializeParams {
        rate_capacity: 2
            * (default_emission().initial_per_epoch + default_economics().net_emissions_cap),
        rate_window_secs: window,
        ..env.default_params()
    };
    assert_program_err(
        env.initialize(at_edge(&env, 2 * EPOCH_SECS + 1)).await,
        E::InvalidRateLimit,
    );
    let edge_mint = Pubkey::new_unique();
    env.ctx.set_account(
        &edge_mint,
        &mint_account(Some(config_address(&edge_mint)), None, 0).into(),
    );
    let auth = env.upgrade_authority.insecure_clone();
    let ix = env.initialize_ix_for(&auth.pubkey(), &edge_mint, at_edge(&env, 2 * EPOCH_SECS));
    env.send(&[ix], &[&auth]).await.unwrap();
    // Both extremes initialize.
    env.initialize(max_params(&env)).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.oracles.len(), c.threshold), (10, 6));
    let mint = Pubkey::new_unique();
    env.ctx.set_account(
        &mint,
        &mint_account(Some(config_address(&mint)), None, 0).into(),
    );
    let auth = env.upgrade_authority.insecure_clone();
    let ix = env.initialize_ix_for(&auth.pubkey(), &mint, min_params(&env));
    env.send(&[ix], &[&auth]).await.unwrap();
}

/// An allocation of exactly the budget and the rate capacity lands; one more unit is refused (at
/// the vote); once the lifetime cap is reached, only empty epochs can be finalized.
#[tokio::test]
async fn allocations_at_the_budget_and_rate_bounds() {
    let mut env = Env::new_uninitialized().await;
    let e = default_emission();
    // Lifetime cap of two epochs; rate capacity of exactly one epoch, drained over one epoch; no
    // net emissions.
    let params = InitializeParams {
        emission: EmissionParams {
            lifetime_cap: 2 * e.initial_per_epoch,
            ..e
        },
        rate_window_secs: EPOCH_SECS,
        rate_capacity: e.initial_per_epoch,
        economics: EconomicsParams {
            net_emissions_cap: 0,
            ..default_economics()
        },
        ..env.default_params()
    };
    env.initialize(params).await.unwrap();
    let a = Pubkey::new_unique();
    let over = env.reward_tree(0, &[(a, e.initial_per_epoch + 1)]);
    env.end_epoch(0).await;
    assert_program_err(
        env.vote(0, 0, env.proposal(&over, 0)).await,
        E::ExceedsEpochEmission,
    );
    let t0 = env.reward_tree(0, &[(a, e.initial_per_epoch)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    // Epoch 1 ends 18 hours after epoch 0 was finalized: the bucket (a one-epoch window) has
    // drained three quarters; a full epoch's allocation waits until it is empty.
    let t1 = env.reward_tree(1, &[(a, 2 * e.initial_per_epoch)]);
    let p1 = env.proposal(&t1, e.initial_per_epoch);
    env.end_epoch(1).await;
    assert_program_err(env.vote(0, 1, p1).await, E::RateLimited);
    let last_ts = env.config_state().await.rate_limiter.last_ts;
    env.set_time(last_ts + EPOCH_SECS as i64 - 1).await;
    assert_program_err(env.vote(0, 1, p1).await, E::RateLimited);
    env.set_time(last_ts + EPOCH_SECS as i64).await;
    env.vote(0, 1, p1).await.unwrap();
    env.vote(1, 1, p1).await.unwrap();
    let at = env.epoch_state(1).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(1).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(c.scheduled_minted, c.emission.lifetime_cap);
    // The cap is reached: one more unit is refused, an empty epoch is fine.
    env.end_epoch(2).await;
    let t2 = env.reward_tree(2, &[(a, 2 * e.initial_per_epoch + 1)]);
    assert_program_err(
        env.vote(0, 2, env.proposal(&t2, 2 * e.initial_per_epoch))
            .await,
        E::ExceedsLifetimeCap,
    );
    let same = env.reward_tree(2, &[(a, 2 * e.initial_per_epoch)]);
    let p2 = env.proposal(&same, 2 * e.initial_per_epoch);
    env.vote(0, 2, p2).await.unwrap();
    env.vote(1, 2, p2).await.unwrap();
    let at = env.epoch_state(2).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(2).await.unwrap();
    assert_eq!(
        env.config_state().await.total_minted,
        2 * e.initial_per_epoch
    );
}

// ---- one test per pitfall (research notes, section c) ------------------------------------

/// Pitfall 1 (leaf/inner-node confusion, second preimage): an inner node of the tree is not a
/// leaf. The program hashes the leaf itself from `(operator, amount)` with a leaf prefix, so
/// neither the honest leaf with a truncated proof nor a key made of the inner node's bytes
/// proves anything, although the inner node does link up to the root.
#[tokio::test]
async fn pitfall_01_an_inner_node_is_not_a_leaf() {
    let mut env = Env::new().await;
    let ops: Vec<Pubkey> = (0..4).map(|_| Pubkey::new_unique()).collect();
    let amounts: Vec<(Pubkey, u64)> = ops.iter().map(|k| (*k, 100)).collect();
    let t0 = env.reward_tree(0, &amounts);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    let a = ops[0];
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    // The inner node over a's leaf and its neighbour, and the top it leads to with a's second
    // sibling: its root is the committed root.
    let scope = *t0.scope();
    let leaf = leaf_node(
        &scope,
        &Leaf {
            account: a.to_bytes(),
            amount: 100,
        },
    );
    let pair = |index: u64, node: SumNode, sibling: SumNode| {
        if index.is_multiple_of(2) {
            sum_tree::node(&node, &sibling).unwrap()
        } else {
            sum_tree::node(&sibling, &node).unwrap()
        }
    };
    let parent = pair(proof.index, leaf, proof.siblings[0]);
    let top = pair(proof.index / 2, parent, proof.siblings[1]);
    assert_eq!(
        root_hash(TreeKind::Reward, &top, 4),
        t0.root,
        "the inner node links up"
    );
    let above = Proof {
        index: proof.index / 2,
        siblings: proof.siblings[1..].to_vec(),
    };
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, above.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    let fake_operator = Pubkey::new_from_array(parent.hash);
    let mint = env.mint;
    let fake_recipient = env.create_token_account(&mint, &fake_operator).await;
    for amount in [0, 100, 200] {
        let ix = env.claim_ix(
            &payer,
            0,
            &fake_operator,
            &fake_recipient,
            amount,
            above.clone(),
        );
        assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    }
    assert_eq!(env.token_balance(&fake_recipient).await, 0);
}

/// Pitfall 2 (cross-distribution root confusion): the same tree committed to another
/// deployment, or the same root replayed for a later epoch, is not claimable there: every
/// leaf binds the deployment and the epoch.
#[tokio::test]
async fn pitfall_02_a_root_is_bound_to_its_deployment_and_epoch() {
    let (mut env, a, _, t0) = finalized().await;
    let first = env.mint;
    // Epoch 1 of this deployment replays epoch 0's root (nothing new is allocated).
    let replay = EpochProposal {
        usage_root: env.usage_tree(1, &[]).root,
        ..env.proposal(&t0, 1_000)
    };
    assert_eq!(replay.reward_root, t0.root);
    env.run_epoch(1, replay).await;
    let payer = env.payer().pubkey();
    let recipient = env.create_ata(&a).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(&payer, 1, &a, &recipient, entry.cumulative, proof.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Another deployment whose oracles commit a tree built for this one.
    let other = env.add_deployment().await;
    env.use_deployment(other);
    let foreign = EpochProposal {
        usage_root: env.usage_tree(0, &[]).root,
        dataset_hash: [9; 32],
        ..env.proposal(&env.reward_tree(0, &[(a, 300)]), 0)
    };
    let foreign = EpochProposal {
        reward_root: t0.root,
        reward_leaf_count: 2,
        reward_total: 1_000,
        allocation: 1_000,
        ..foreign
    };
    env.run_epoch(0, foreign).await;
    let their_recipient = env.create_ata(&a).await;
    let ix = env.claim_ix(
        &payer,
        0,
        &a,
        &their_recipient,
        entry.cumulative,
        proof.clone(),
    );
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    env.use_deployment(first);
    let ix = env.claim_ix(&payer, 0, &a, &recipient, entry.cumulative, proof);
    env.send(&[ix], &[]).await.unwrap();
    assert_eq!(env.token_balance(&recipient).await, 300);
}

/// Pitfall 3 (double claims via closable claim records): claim records are never closed; the
/// record survives, a replay from another payer pays nothing, and no second record for the
/// same operator can be made.
#[tokio::test]
async fn pitfall_03_a_claim_record_is_never_reset() {
    let (mut env, a, _, t0) = finalized().await;
    env.claim_from(&t0, 0, &a).await.unwrap();
    let record = claim_address(&env.config, &a);
    let before = env
        .ctx
        .banks_client
        .get_account(record)
        .await
        .unwrap()
        .unwrap();
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let recipient = ata(&a, &env.mint);
    let ix = env.claim_ix(
        &stranger.pubkey(),
        0,
        &a,
        &recipient,
        entry.cumulative,
        proof,
    );
    assert_program_err(env.send(&[ix], &[&stranger]).await, E::NothingToClaim);
    let after = env
        .ctx
        .banks_client
        .get_account(record)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.data, after.data);
    assert_eq!(after.owner, backhaul::ID);
    assert_eq!(env.token_balance(&recipient).await, 300);
}

/// Pitfall 4 (root replacement races; the timelock front-run): once a root has quorum, neither
/// a late vote for another root nor a change of the challenge period moves it or its time (here
/// two changes queued before the epoch ended, landing inside its challenge period: one to the
/// longest period, one to the shortest); a change queued at quorum cannot land before the epoch
/// is finalizable; after finalization the epoch takes no votes at all.
#[tokio::test]
async fn pitfall_04_a_root_with_quorum_cannot_be_replaced_or_delayed() {
    let mut env = Env::new().await;
    let a = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(a, 300)]);
    let p = env.proposal(&t0, 0);
    // Queued three hours before genesis, executable three hours into epoch 0's challenge period.
    env.set_time(GENESIS - 3 * 3_600).await;
    let longest = EPOCH_SECS / 2;
    let mut ids = vec![];
    for change in [
        ParamsChange {
            challenge_period_secs: Some(longest),
            governance_delay_secs: Some(EPOCH_SECS + longest),
            ..Default::default()
        },
        ParamsChange {
            challenge_period_secs: Some(3_600),
            ..Default::default()
        },
    ] {
        ids.push(env.queue(GovernanceChange::Params(change)).await.unwrap());
    }
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    let before = env.epoch_state(0).await;
    let late = env
        .queue(GovernanceChange::Params(ParamsChange {
            challenge_period_secs: Some(3_600),
            ..Default::default()
        }))
        .await
        .unwrap();
    let late_change: PendingChange = env
        .account(&env.deployment().pending_change(late))
        .await
        .unwrap();
    assert!(late_change.executable_at > before.finalizable_at);
    let other = env.proposal(&env.reward_tree(0, &[(a, 299)]), 0);
    env.vote(2, 0, other).await.unwrap();
    for (id, secs) in ids.into_iter().zip([longest, 3_600]) {
        env.wait_for_change(id).await;
        assert!(env.now().await < before.finalizable_at);
        env.apply(id).await.unwrap();
        assert_eq!(env.config_state().await.challenge_period_secs, secs);
        let r = env.epoch_state(0).await;
        let p = env.sponsored(0, p).await;
        assert_eq!(
            (r.proposal, r.finalizable_at, r.status),
            (p, before.finalizable_at, EpochStatus::Proposed)
        );
    }
    env.set_time(before.finalizable_at - 1).await;
    assert_program_err(env.finalize(0).await, E::ChallengePeriodActive);
    env.set_time(before.finalizable_at).await;
    env.finalize(0).await.unwrap();
    assert_program_err(env.vote(2, 0, p).await, E::EpochOutOfOrder);
    let p = env.sponsored(0, p).await;
    assert_eq!(env.epoch_state(0).await.proposal, p);
}

/// Pitfall 5 (front-running a permissionless initialization): only the upgrade authority
/// initializes, and a ProgramData account of the attacker's choosing is refused.
#[tokio::test]
async fn pitfall_05_initialization_cannot_be_front_run() {
    let mut env = Env::new_uninitialized().await;
    let attacker = Keypair::new();
    crate::util::fund(&mut env, &attacker.pubkey()).await;
    let mut params = env.default_params();
    params.admin = attacker.pubkey();
    params.guardians = vec![attacker.pubkey()];
    let ix = env.initialize_ix(&attacker.pubkey(), params.clone());
    assert_program_err(env.send(&[ix], &[&attacker]).await, E::NotUpgradeAuthority);
    let fake = Pubkey::new_unique();
    env.ctx
        .set_account(&fake, &program_data_account(&attacker.pubkey()).into());
    let mut ix = env.initialize_ix(&attacker.pubkey(), params);
    ix.accounts[1].pubkey = fake;
    assert_anchor_err(env.send(&[ix], &[&attacker]).await, A::ConstraintSeeds);
    let config = env.config;
    assert!(env.account::<Config>(&config).await.is_none());
    let params = env.default_params();
    env.initialize(params).await.unwrap();
    assert_eq!(env.config_state().await.admin, env.admin.pubkey());
}

/// Pitfall 6 (log-based events can be truncated or forged): events go through a self-CPI signed
/// by the event authority PDA; a top-level instruction posing as an event is refused.
#[tokio::test]
async fn pitfall_06_events_are_self_cpis_and_cannot_be_forged() {
    let (mut env, a, _, t0) = finalized().await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let recipient = env.create_ata(&a).await;
    let payer = env.payer();
    let ix = env.claim_ix(&payer.pubkey(), 0, &a, &recipient, entry.cumulative, proof);
    let tx = Transaction::new_signed_with_payer(
        &[ix],
        Some(&payer.pubkey()),
        &[&payer],
        env.ctx.last_blockhash,
    );
    let res = env
        .ctx
        .banks_client
        .process_transaction_with_metadata(tx)
        .await
        .unwrap();
    res.result.clone().unwrap();
    let logs = res.metadata.expect("metadata").log_messages;
    let self_cpi = format!("Program {} invoke [2]", backhaul::ID);
    assert!(
        logs.iter().any(|l| l == &self_cpi),
        "no event CPI in {logs:#?}"
    );
    let mut data = anchor_lang::event::EVENT_IX_TAG_LE.to_vec();
    data.extend_from_slice(&[0u8; 64]);
    let forged = Instruction {
        program_id: backhaul::ID,
        accounts: vec![AccountMeta::new_readonly(event_authority(), false)],
        data,
    };
    assert_anchor_err(env.send(&[forged], &[]).await, A::ConstraintSigner);
}

/// Pitfall 7 (wrong mint or destination in token CPIs): tokens only ever go to a token account
/// of the deployment's mint owned by the operator; the admin's own account, the vault, or an
/// account of another mint are refused, and nothing moves.
#[tokio::test]
async fn pitfall_07_claims_pay_only_the_operator_in_the_right_mint() {
    let (mut env, a, _, t0) = finalized().await;
    let mint = env.mint;
    let admin = env.admin.insecure_clone();
    let admins = env.create_token_account(&mint, &admin.pubkey()).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(
        &admin.pubkey(),
        0,
        &a,
        &admins,
        entry.cumulative,
        proof.clone(),
    );
    assert_anchor_err(env.send(&[ix], &[&admin]).await, A::ConstraintTokenOwner);
    let vault = env.vault;
    assert_eq!(env.token_balance(&vault).await, 1_000);
    assert_eq!(env.token_balance(&admins).await, 0);
    // The operator's own account works, sent by the admin.
    let mine = env.create_token_account(&mint, &a).await;
    let ix = env.claim_ix(&admin.pubkey(), 0, &a, &mine, entry.cumulative, proof);
    env.send(&[ix], &[&admin]).await.unwrap();
    assert_eq!(env.token_balance(&mine).await, 300);
    assert_eq!(env.token_balance(&vault).await, 700);
}

/// Pitfall 8 (`=` where `+=` was meant): purchases, claims and settlements accumulate in the
/// ledger, the accounts and the deployment's totals.
#[tokio::test]
async fn pitfall_08_totals_accumulate() {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let b1 = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    let b2 = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    env.buy(&b1, TOKEN, 0, b1.pubkey()).await.unwrap();
    env.buy(&b1, 2 * TOKEN, 0, b1.pubkey()).await.unwrap();
    env.buy(&b2, 3 * TOKEN, 0, b1.pubkey()).await.unwrap();
    let ledger: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    assert_eq!(
        (ledger.tokens_burned, ledger.credits_issued),
        (6 * TOKEN, 6 * PRICE)
    );
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &b1.pubkey()))
        .await
        .unwrap();
    assert_eq!(
        (credits.balance, credits.issued, credits.tokens_burned),
        (6 * PRICE, 6 * PRICE, 6 * TOKEN)
    );
    // Two epochs of rewards and usage; claims and settlements after each.
    let a = Pubkey::new_unique();
    let r0 = env.reward_tree(0, &[(a, 300)]);
    let u0 = env.usage_tree(0, &[(b1.pubkey(), 1_000)]);
    // 1,000 of b1's 600,000 credits (6 tokens) cost 10,000 base units; 2,500 more, 25,000.
    let p0 = env.proposal_with_usage(&r0, 0, &u0, 0);
    env.run_epoch(0, Env::with_cost(p0, 0, 10_000)).await;
    env.claim_from(&r0, 0, &a).await.unwrap();
    env.settle_from(&u0, &b1.pubkey()).await.unwrap();
    let r1 = env.reward_tree(1, &[(a, 500)]);
    let u1 = env.usage_tree(1, &[(b1.pubkey(), 3_500)]);
    let p1 = env.proposal_with_usage(&r1, 300, &u1, 1_000);
    env.run_epoch(1, Env::with_cost(p1, 10_000, 35_000)).await;
    env.claim_from(&r1, 1, &a).await.unwrap();
    env.settle_from(&u1, &b1.pubkey()).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.total_claimed, c.total_minted), (500, 500));
    assert_eq!((c.total_burned, c.credits_settled), (6 * TOKEN, 3_500));
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &b1.pubkey()))
        .await
        .unwrap();
    assert_eq!(
        (
            credits.settled,
            credits.balance,
            credits.consumed_cumulative
        ),
        (3_500, 6 * PRICE - 3_500, 3_500)
    );
    let claim: OperatorClaim = env.account(&claim_address(&env.config, &a)).await.unwrap();
    assert_eq!(claim.claimed, 500);
}

/// Pitfall 9 (oracle price misuse): the price is this deployment's quorum price, no older than
/// the staleness bound to the second; another deployment's feed and a removed oracle's fresh
/// submission do not count.
#[tokio::test]
async fn pitfall_09_only_a_fresh_quorum_price_of_this_deployment_counts() {
    let mut env = Env::new().await;
    let first = env.mint;
    let other = env.add_deployment().await;
    env.use_deployment(other);
    env.post_price(2 * PRICE).await;
    env.use_deployment(first);
    let buyer = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    let tokens = ata(&buyer.pubkey(), &first);
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &tokens, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[2].pubkey = price_feed_address(&config_address(&other));
    assert_anchor_err(env.send(&[ix], &[&buyer]).await, A::ConstraintHasOne);
    assert_program_err(env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await, E::NoPrice);
    env.post_price(PRICE).await;
    let posted = env.now().await;
    let max_age = default_economics().price_max_age_secs as i64;
    env.set_time(posted + max_age).await;
    env.buy(&buyer, TOKEN, PRICE, buyer.pubkey()).await.unwrap();
    env.set_time(posted + max_age + 1).await;
    assert_program_err(
        env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await,
        E::PriceStale,
    );
    // Oracle 2 is removed; its fresh submission and one current oracle's are not a quorum.
    let keep = vec![env.oracles[0].pubkey(), env.oracles[1].pubkey()];
    let id = env
        .queue(GovernanceChange::Oracles {
            oracles: keep,
            threshold: 2,
        })
        .await
        .unwrap();
    env.wait_for_change(id).await;
    env.submit_price(2, 110_000).await.unwrap();
    env.apply(id).await.unwrap();
    assert_program_err(env.submit_price(2, 110_000).await, E::NotOracle);
    env.submit_price(0, 110_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(feed.credits_per_token, PRICE, "no quorum: the price stays");
    assert_eq!(feed.posted_at, posted);
}

/// Pitfall 10 (permissionless cranks with substituted accounts): the accounts a crank names
/// are pinned: another deployment's price feed when sealing, another epoch's ledger when
/// finalizing or buying, another deployment's ledger when buying.
#[tokio::test]
async fn pitfall_10_cranks_cannot_substitute_accounts() {
    let (mut env, _, _, _) = at_quorum().await;
    let first = env.mint;
    let other = env.add_deployment().await;
    let payer = env.payer().pubkey();
    env.end_epoch(1).await;
    let mut ix = env.seal_ix(&payer, 1);
    ix.accounts[2].pubkey = price_feed_address(&config_address(&other));
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintHasOne);
    env.seal(1).await.unwrap();
    assert!(env.now().await >= env.epoch_state(0).await.finalizable_at);
    let mut ix = env.finalize_ix(0);
    ix.accounts[5].pubkey = ledger_address(&env.config, 1);
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintSeeds);
    env.use_deployment(other);
    env.seal(0).await.unwrap();
    env.use_deployment(first);
    let mut ix = env.finalize_ix(0);
    ix.accounts[5].pubkey = ledger_address(&config_address(&other), 0);
    assert_anchor_err(env.send(&[ix], &[]).await, A::ConstraintSeeds);
    env.finalize(0).await.unwrap();
    // Buying into a sealed past epoch or another deployment's ledger.
    env.post_price(PRICE).await;
    let buyer = crate::util::buyer_with(&mut env, TOKEN).await;
    let tokens = ata(&buyer.pubkey(), &first);
    for wrong in [
        ledger_address(&env.config, 1),
        ledger_address(&config_address(&other), env.current_epoch().await),
    ] {
        let mut ix = env
            .buy_credits_ix(&buyer.pubkey(), &tokens, TOKEN, 0, buyer.pubkey())
            .await;
        ix.accounts[6].pubkey = wrong;
        assert_anchor_err(env.send(&[ix], &[&buyer]).await, A::ConstraintSeeds);
    }
    let ledger1: EpochLedger = env.account(&ledger_address(&env.config, 1)).await.unwrap();
    assert_eq!(ledger1.tokens_burned, 0);
    assert_eq!(env.token_balance(&tokens).await, TOKEN);
}

/// Pitfall 11 (multi-oracle voting bugs: double votes, fake ballots, future epochs, zero roots,
/// votes after the epoch closed, unverified config accounts).
#[tokio::test]
async fn pitfall_11_voting_bugs() {
    let mut env = Env::new().await;
    let a = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(a, 300)]);
    let p = env.proposal(&t0, 0);
    // Before the epoch ends its ledger cannot be sealed, and without a sealed ledger no vote.
    assert_program_err(env.seal(0).await, E::EpochNotEnded);
    assert_anchor_err(env.vote(0, 0, p).await, A::AccountNotInitialized);
    env.end_epoch(1).await;
    let p = env.paid(0, p).await.unwrap();
    assert_program_err(env.vote(0, 1, p).await, E::EpochOutOfOrder);
    let zero = EpochProposal {
        usage_root: [0; 32],
        ..p
    };
    assert_program_err(env.vote(0, 0, zero).await, E::ZeroRoot);
    env.vote(0, 0, p).await.unwrap();
    assert_program_err(env.vote(0, 0, p).await, E::DoubleVote);
    let other_vote = EpochProposal {
        dataset_hash: [1; 32],
        ..p
    };
    assert_program_err(env.vote(0, 0, other_vote).await, E::DoubleVote);
    // Fake ballots: a stranger, and an oracle of another deployment.
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let ix = env.propose_ix(&stranger.pubkey(), 0, p);
    assert_program_err(env.send(&[ix], &[&stranger]).await, E::NotOracle);
    // A config of the attacker's making (right layout, not owned by the program).
    let mut fake = env
        .ctx
        .banks_client
        .get_account(env.config)
        .await
        .unwrap()
        .unwrap();
    fake.owner = stranger.pubkey();
    let fake_key = Pubkey::new_unique();
    env.ctx.set_account(&fake_key, &fake.into());
    let mut ix = env.propose_ix(&stranger.pubkey(), 0, p);
    ix.accounts[1].pubkey = fake_key;
    assert_anchor_err(
        env.send(&[ix], &[&stranger]).await,
        A::AccountOwnedByWrongProgram,
    );
    let r = env.epoch_state(0).await;
    assert_eq!((r.votes.len(), r.status), (1, EpochStatus::Voting));
    env.vote(1, 0, p).await.unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    assert_program_err(env.vote(2, 0, p).await, E::EpochOutOfOrder);
}

/// Pitfall 12 (quorum and median subtleties): a threshold a minority can meet is refused; one
/// inflated price among three submissions does not move the median, and among two (the mean)
/// it moves the posted price only as far as the band allows.
#[tokio::test]
async fn pitfall_12_quorum_needs_a_strict_majority() {
    let mut env = Env::new().await;
    let k = |n: usize| (0..n).map(|_| Pubkey::new_unique()).collect::<Vec<_>>();
    for (n, m) in [(2, 1), (4, 2), (10, 5), (3, 0)] {
        let change = GovernanceChange::Oracles {
            oracles: k(n),
            threshold: m,
        };
        assert_program_err(env.queue(change).await.map(|_| ()), E::InvalidThreshold);
    }
    let c = env.config_state().await;
    assert_eq!((c.threshold, c.next_change_id), (2, 0));
    let t0 = env.now().await;
    env.post_price(100_000).await;
    env.set_time(t0 + 10).await;
    env.submit_price(2, 10_000_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(
        (feed.credits_per_token, feed.posted_at),
        (100_000, t0 + 10),
        "the median of three"
    );
    // Oracle 1 expires; oracle 0's fresh submission and the inflated one make the mean of two,
    // 5,050,000: the posted price moves to the band's edge only.
    env.set_time(t0 + 3_601).await;
    env.submit_price(0, 100_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    let edge = backhaul_core::price::price_band(100_000, 3_591, 2_000)
        .unwrap()
        .upper;
    assert_eq!((feed.credits_per_token, feed.posted_at), (edge, t0 + 3_601));
    assert!(edge < 123_000, "{edge}");
    // Two oracles of three cannot reach quorum with two different proposals each.
    let t = env.reward_tree(0, &[(Pubkey::new_unique(), 5)]);
    let p = env.proposal(&t, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    let q = EpochProposal {
        dataset_hash: [3; 32],
        ..p
    };
    env.vote(1, 0, q).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Voting);
}

/// Pitfall 13 (authority taken from somewhere other than this instruction's signatures): an
/// oracle, guardian or admin key listed without its signature is refused, whatever else the
/// transaction holds.
#[tokio::test]
async fn pitfall_13_authorities_must_sign_this_instruction() {
    let (mut env, _, _, p) = at_quorum().await;
    let unsign = |mut ix: Instruction| {
        ix.accounts[0].is_signer = false;
        ix
    };
    let oracle = env.oracles[2].pubkey();
    let ix = unsign(env.propose_ix(&oracle, 0, p));
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountNotSigner);
    let ix = unsign(env.submit_price_ix(&oracle, PRICE));
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountNotSigner);
    let g = env.guardian.pubkey();
    let ix = unsign(env.veto_ix(&g, 0));
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountNotSigner);
    let ix = unsign(env.cancel_change_ix(&g, 0));
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountNotSigner);
    let admin = env.admin.pubkey();
    let ix = unsign(env.set_paused_ix(&admin, true));
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountNotSigner);
    let change = GovernanceChange::Guardians {
        guardians: vec![Pubkey::new_unique()],
    };
    let ix = unsign(env.queue_change_ix(&admin, 0, change));
    assert_anchor_err(env.send(&[ix], &[]).await, A::AccountNotSigner);
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Proposed);
    let c = env.config_state().await;
    assert!(!c.is_paused(env.now().await));
    assert_eq!((c.next_change_id, c.guardians), (0, vec![g]));
}

/// Pitfall 14 (configuration that divides by zero or contradicts itself): zero windows, zero
/// smoothing, periods out of bounds, a delay shorter than an epoch and a challenge period,
/// duplicate oracles or guardians and a cap below what was minted are refused when the change is
/// queued, and nothing is queued or changed.
#[tokio::test]
async fn pitfall_14_changes_validate_every_parameter() {
    let (mut env, _, _, _) = finalized().await;
    let before = env.config_state().await;
    let e = default_emission();
    let params = |p: ParamsChange| GovernanceChange::Params(p);
    let o = env.oracles[0].pubkey();
    let cases = [
        (
            params(ParamsChange {
                rate_window_secs: Some(0),
                ..Default::default()
            }),
            E::InvalidRateLimit,
        ),
        (
            params(ParamsChange {
                emission: Some(EmissionParams {
                    decay_period_epochs: 0,
                    ..e
                }),
                ..Default::default()
            }),
            E::InvalidEmissionSchedule,
        ),
        (
            params(ParamsChange {
                economics: Some(EconomicsParams {
                    burn_smoothing_epochs: 0,
                    ..default_economics()
                }),
                ..Default::default()
            }),
            E::InvalidEconomics,
        ),
        (
            params(ParamsChange {
                challenge_period_secs: Some(3_599),
                ..Default::default()
            }),
            E::InvalidChallengePeriod,
        ),
        (
            params(ParamsChange {
                challenge_period_secs: Some(EPOCH_SECS / 2 + 1),
                governance_delay_secs: Some(2 * EPOCH_SECS),
                ..Default::default()
            }),
            E::InvalidChallengePeriod,
        ),
        (
            params(ParamsChange {
                governance_delay_secs: Some(EPOCH_SECS + CHALLENGE_SECS - 1),
                ..Default::default()
            }),
            E::InvalidGovernanceDelay,
        ),
        (
            params(ParamsChange {
                challenge_period_secs: Some(CHALLENGE_SECS + 1),
                ..Default::default()
            }),
            E::InvalidGovernanceDelay,
        ),
        (
            params(ParamsChange {
                governance_delay_secs: Some(90 * 86_400 + 1),
                ..Default::default()
            }),
            E::InvalidGovernanceDelay,
        ),
        // The lifetime cap may not drop below what was already minted (1,000 here).
        (
            params(ParamsChange {
                emission: Some(EmissionParams {
                    initial_per_epoch: 999,
                    floor_per_epoch: 1,
                    lifetime_cap: 999,
                    ..e
                }),
                ..Default::default()
            }),
            E::LifetimeCapRaised,
        ),
        (
            GovernanceChange::Oracles {
                oracles: vec![o, o, env.oracles[1].pubkey()],
                threshold: 2,
            },
            E::InvalidOracleSet,
        ),
        (
            GovernanceChange::Oracles {
                oracles: vec![Pubkey::default()],
                threshold: 1,
            },
            E::InvalidOracleSet,
        ),
        (
            GovernanceChange::Guardians { guardians: vec![] },
            E::InvalidGuardianSet,
        ),
        (
            GovernanceChange::Guardians {
                guardians: vec![env.guardian.pubkey(), env.guardian.pubkey()],
            },
            E::InvalidGuardianSet,
        ),
        (
            GovernanceChange::Guardians {
                guardians: vec![Pubkey::default()],
            },
            E::InvalidGuardianSet,
        ),
    ];
    for (change, err) in cases {
        assert_program_err(env.queue(change).await.map(|_| ()), err);
    }
    let after = env.config_state().await;
    assert_eq!(
        (
            after.emission,
            after.rate_limiter,
            after.economics,
            after.oracles,
            after.guardians
        ),
        (
            before.emission,
            before.rate_limiter,
            before.economics,
            before.oracles,
            before.guardians
        )
    );
    assert_eq!(
        (
            after.challenge_period_secs,
            after.governance_delay_secs,
            after.next_change_id,
            after.pending_params
        ),
        (CHALLENGE_SECS, GOVERNANCE_DELAY_SECS, 0, None)
    );
}

/// Pitfall 15 (closed or pre-funded account confusion): lamports sent to a PDA before the
/// program creates it neither block its creation nor pass for an existing record.
#[tokio::test]
async fn pitfall_15_prefunded_addresses_do_not_block_creation() {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let buyer = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    let a = Pubkey::new_unique();
    let config = env.config;
    let epoch_now = env.current_epoch().await;
    for key in [
        ledger_address(&config, epoch_now),
        credits_address(&config, &buyer.pubkey()),
        epoch_address(&config, 0),
        claim_address(&config, &a),
        ledger_address(&config, 1),
    ] {
        crate::util::fund(&mut env, &key).await;
    }
    env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await.unwrap();
    let credits: CreditAccount = env
        .account(&credits_address(&config, &buyer.pubkey()))
        .await
        .unwrap();
    assert_eq!((credits.buyer, credits.balance), (buyer.pubkey(), PRICE));
    let ledger: EpochLedger = env
        .account(&ledger_address(&config, epoch_now))
        .await
        .unwrap();
    assert_eq!((ledger.epoch, ledger.tokens_burned), (epoch_now, TOKEN));
    let t0 = env.reward_tree(0, &[(a, 300)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    env.claim_from(&t0, 0, &a).await.unwrap();
    assert_eq!(env.token_balance(&ata(&a, &env.mint)).await, 300);
    env.end_epoch(1).await;
    env.seal(1).await.unwrap();
    let l1: EpochLedger = env.account(&ledger_address(&config, 1)).await.unwrap();
    assert!(l1.sealed);
}

/// Pitfall 15, at deployment: lamports sent to the config, price feed and vault addresses of a
/// mint whose authority was already handed to the config PDA do not block `initialize` (which
/// would leave the mint with an authority nobody can use); a second `initialize` still fails.
#[tokio::test]
async fn pitfall_15_prefunded_deployment_addresses_do_not_block_initialize() {
    let mut env = Env::new_uninitialized().await;
    let config = env.config;
    for key in [config, price_feed_address(&config), vault_address(&config)] {
        crate::util::fund(&mut env, &key).await;
    }
    let params = env.default_params();
    env.initialize(params.clone()).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(
        (c.mint, c.vault, c.admin),
        (env.mint, env.vault, env.admin.pubkey())
    );
    let feed: PriceFeed = env.account(&price_feed_address(&config)).await.unwrap();
    assert_eq!((feed.config, feed.credits_per_token), (config, 0));
    let vault = env.vault;
    let acc = env
        .ctx
        .banks_client
        .get_account(vault)
        .await
        .unwrap()
        .unwrap();
    let state = crate::util::unpack_token(&acc.data);
    assert_eq!(
        (state.mint, state.owner, state.amount),
        (env.mint, config, 0)
    );
    assert_anchor_err(env.initialize(params).await, A::AccountNotSystemOwned);
    // The deployment works: an epoch is finalized into the vault.
    let t0 = env.reward_tree(0, &[(Pubkey::new_unique(), 10)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    assert_eq!(env.token_balance(&vault).await, 10);
}

/// Pitfall 16 (precision): conversions round against the receiver; a purchase too small to
/// buy one credit is refused instead of burning tokens for nothing.
#[tokio::test]
async fn pitfall_16_rounding_never_favours_the_receiver() {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let buyer = crate::util::buyer_with(&mut env, TOKEN).await;
    let tokens = ata(&buyer.pubkey(), &env.mint);
    // 1 base unit = 0.1 credit.
    assert_program_err(
        env.buy(&buyer, 1, 0, buyer.pubkey()).await,
        E::SlippageExceeded,
    );
    assert_eq!(env.token_balance(&tokens).await, TOKEN);
    // 19 base units = 1.9 credits: one credit, not two.
    env.buy(&buyer, 19, 0, buyer.pubkey()).await.unwrap();
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &buyer.pubkey()))
        .await
        .unwrap();
    assert_eq!(credits.balance, 1);
    assert_program_err(
        env.buy(&buyer, 19, 2, buyer.pubkey()).await,
        E::SlippageExceeded,
    );
}

/// Pitfall 17 (off-chain tree bugs that become on-chain failures): totals that overflow or do
/// not add up are refused at the vote, before anything can be minted or claimed.
#[tokio::test]
async fn pitfall_17_totals_that_overflow_or_do_not_add_up_are_refused() {
    let (mut env, a, b, t0) = finalized().await;
    env.end_epoch(1).await;
    let base = env.proposal(&env.reward_tree(1, &[(a, 300), (b, 800)]), 1_000);
    let overflow = EpochProposal {
        allocation: u64::MAX,
        reward_total: u64::MAX,
        ..base
    };
    assert_program_err(env.vote(0, 1, overflow).await, E::Overflow);
    env.run_epoch(1, base).await;
    // Epoch 2: an allocation, or a usage increase, that is not the difference of the totals.
    env.end_epoch(2).await;
    let r2 = env.reward_tree(2, &[(a, 300), (b, 850)]);
    let p2 = env.proposal(&r2, 1_100);
    let p2 = env.paid(2, p2).await.unwrap();
    let wrong_allocation = EpochProposal {
        allocation: 49,
        ..p2
    };
    assert_program_err(
        env.vote(0, 2, wrong_allocation).await,
        E::InconsistentProposal,
    );
    let wrong_usage = EpochProposal {
        credits_consumed: 9,
        ..p2
    };
    assert_program_err(env.vote(0, 2, wrong_usage).await, E::InconsistentProposal);
    env.vote(0, 2, p2).await.unwrap();
    assert_eq!(t0.total, 1_000);
    // The tree builder refuses totals that overflow instead of wrapping.
    let big = EpochTree::build(
        TreeKind::Reward,
        &env.config.to_bytes(),
        3,
        vec![
            backhaul_core::tree::Entry {
                account: [1; 32],
                cumulative: u64::MAX,
            },
            backhaul_core::tree::Entry {
                account: [2; 32],
                cumulative: 1,
            },
        ],
    );
    assert_eq!(big.unwrap_err(), backhaul_core::CoreError::Overflow);
}

/// Pitfall 18 (clawback and redirection by an admin): no authority can move the vault's tokens
/// anywhere but to operators; pausing freezes claims without taking anything, and unpausing
/// pays the operators in full.
#[tokio::test]
async fn pitfall_18_no_authority_can_redirect_the_vault() {
    let (mut env, a, b, t0) = finalized().await;
    let (admin, guardian) = (env.admin.insecure_clone(), env.guardian.insecure_clone());
    let ix = env.set_paused_ix(&guardian.pubkey(), true);
    env.send_as(ix, &guardian).await.unwrap();
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::Paused);
    let ix = env.set_paused_ix(&guardian.pubkey(), false);
    assert_program_err(env.send_as(ix, &guardian).await, E::NotAdmin);
    // The admin, claiming a's leaf into its own account, is refused.
    let mint = env.mint;
    let admins = env.create_token_account(&mint, &admin.pubkey()).await;
    let (entry, proof) = t0.leaf_proof(&a.to_bytes()).unwrap();
    let ix = env.claim_ix(&admin.pubkey(), 0, &a, &admins, entry.cumulative, proof);
    assert_anchor_err(env.send(&[ix], &[&admin]).await, A::ConstraintTokenOwner);
    let ix = env.set_paused_ix(&admin.pubkey(), false);
    env.send_as(ix, &admin).await.unwrap();
    env.claim_from(&t0, 0, &a).await.unwrap();
    env.claim_from(&t0, 0, &b).await.unwrap();
    assert_eq!(env.token_balance(&admins).await, 0);
    assert_eq!(env.token_balance(&ata(&b, &mint)).await, 700);
    let vault = env.vault;
    assert_eq!(env.token_balance(&vault).await, 0);
}

/// Pitfall 19 (trusting what the oracles say): even a unanimous quorum cannot get a proposal
/// past the on-chain checks: the budget, the usage that buyers' credits must match, the leaf
/// count that never shrinks, the empty-tree root.
#[tokio::test]
async fn pitfall_19_a_unanimous_quorum_is_still_checked() {
    let (mut env, a, b, _) = finalized().await;
    env.end_epoch(1).await;
    let good = env.proposal(&env.reward_tree(1, &[(a, 300), (b, 800)]), 1_000);
    let e = default_emission();
    let cases = [
        (
            EpochProposal {
                allocation: e.initial_per_epoch + 1,
                reward_total: 1_000 + e.initial_per_epoch + 1,
                ..good
            },
            E::ExceedsEpochEmission,
        ),
        (
            EpochProposal {
                reward_leaf_count: 1,
                ..good
            },
            E::InconsistentProposal,
        ),
        (
            EpochProposal {
                usage_leaf_count: 1,
                ..good
            },
            E::InconsistentProposal,
        ),
    ];
    for (p, err) in cases {
        for i in 0..3 {
            assert_program_err(env.vote(i, 1, p).await, err);
        }
    }
    let record = epoch_address(&env.config, 1);
    assert!(env.account::<EpochRecord>(&record).await.is_none());
}

/// Pitfall 20 (growing vectors without room): the vote and price vectors hold the largest oracle
/// set the program allows, with every oracle voting a different root and posting a price.
#[tokio::test]
async fn pitfall_20_the_largest_oracle_set_fits() {
    let mut env = Env::new().await;
    let oracles: Vec<Keypair> = (0..10).map(|_| Keypair::new()).collect();
    for k in &oracles {
        crate::util::fund(&mut env, &k.pubkey()).await;
    }
    let keys: Vec<Pubkey> = oracles.iter().map(|k| k.pubkey()).collect();
    env.govern(GovernanceChange::Oracles {
        oracles: keys.clone(),
        threshold: 10,
    })
    .await
    .unwrap();
    env.oracles = oracles;
    let t = env.reward_tree(0, &[(Pubkey::new_unique(), 5)]);
    let p = env.proposal(&t, 0);
    // The governance delay has already carried the clock past the end of epoch 0.
    let end = backhaul_core::epoch::epoch_end(GENESIS, EPOCH_SECS, 0).unwrap();
    assert!(env.now().await >= end);
    for i in 0..10 {
        let mine = EpochProposal {
            dataset_hash: [i as u8; 32],
            ..p
        };
        env.vote(i, 0, mine).await.unwrap();
        env.submit_price(i, PRICE).await.unwrap();
    }
    let r = env.epoch_state(0).await;
    assert_eq!((r.votes.len(), r.status), (10, EpochStatus::Voting));
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(
        (feed.submissions.len(), feed.credits_per_token),
        (10, PRICE)
    );
    let mut eleven = keys;
    eleven.push(Pubkey::new_unique());
    let change = GovernanceChange::Oracles {
        oracles: eleven,
        threshold: 10,
    };
    assert_program_err(env.queue(change).await.map(|_| ()), E::InvalidOracleSet);
}

// ---- the admin alone, a hostile guardian ---------------------------------------------------

/// The admin alone cannot mint: it cannot make itself an oracle (or a guardian), nor make the
/// guardian an oracle; every role is a different key.
#[tokio::test]
async fn the_admin_cannot_make_itself_an_oracle() {
    let mut env = Env::new().await;
    let admin = env.admin.pubkey();
    let (o0, o1) = (env.oracles[0].pubkey(), env.oracles[1].pubkey());
    let g = env.guardian.pubkey();
    let cases = [
        GovernanceChange::Oracles {
            oracles: vec![admin],
            threshold: 1,
        },
        GovernanceChange::Oracles {
            oracles: vec![admin, o0, o1],
            threshold: 2,
        },
        GovernanceChange::Oracles {
            oracles: vec![g, o0, o1],
            threshold: 2,
        },
        GovernanceChange::Guardians {
            guardians: vec![admin],
        },
        GovernanceChange::Guardians {
            guardians: vec![g, o0],
        },
    ];
    for change in cases {
        assert_program_err(env.queue(change).await.map(|_| ()), E::RolesOverlap);
    }
    let c = env.config_state().await;
    assert_eq!((c.oracles.len(), c.threshold, c.next_change_id), (3, 2, 0));
    assert!(!c.oracles.contains(&admin));
}

/// Wash trading paid while the paid-usage cap could be turned off (k = 0, once the documented
/// bootstrap setting: a firm burning 90 tokens received 900 of a 1,000-token epoch) or set above
/// one (k up to 100×). Neither can be chosen any more, at initialization or through governance;
/// what remains is bounded by the oracle's per-buyer split (`docs/economics.md`).
#[tokio::test]
async fn attack_wash_trading_settings_cannot_be_chosen() {
    let mut env = Env::new_uninitialized().await;
    for k in [0u32, 10_001, 1_000_000] {
        let mut p = env.default_params();
        p.economics.usage_cap_bps = k;
        assert_program_err(env.initialize(p).await, E::InvalidEconomics);
    }
    let p = env.default_params();
    env.initialize(p).await.unwrap();
    for k in [0u32, 10_001] {
        let change = GovernanceChange::Params(ParamsChange {
            economics: Some(EconomicsParams {
                usage_cap_bps: k,
                ..default_economics()
            }),
            ..Default::default()
        });
        assert_program_err(env.queue(change).await.map(|_| ()), E::InvalidEconomics);
    }
    assert_eq!(env.config_state().await.economics.usage_cap_bps, 10_000);
}

/// The admin alone cannot raise what may be minted more than twofold per change, nor raise the
/// lifetime cap at all, nor slow the decay; a doubling waits out the delay, binds only epochs that
/// had not started, and a second one waits until the first reached its epoch.
#[tokio::test]
async fn the_admin_cannot_raise_emissions_at_will() {
    let mut env = Env::new().await;
    let e = default_emission();
    let x = default_economics();
    let capacity = env.default_params().rate_capacity;
    let change = |p: ParamsChange| GovernanceChange::Params(p);
    let emission = |f: fn(&mut EmissionParams)| {
        let mut e = default_emission();
        f(&mut e);
        change(ParamsChange {
            emission: Some(e),
            ..Default::default()
        })
    };
    let cases = [
        (
            change(ParamsChange {
                emission: Some(EmissionParams {
                    initial_per_epoch: 2 * e.initial_per_epoch + 1,
                    ..e
                }),
                rate_capacity: Some(2 * capacity),
                ..Default::default()
            }),
            E::RaiseTooLarge,
        ),
        (
            change(ParamsChange {
                rate_capacity: Some(2 * capacity + 1),
                ..Default::default()
            }),
            E::RaiseTooLarge,
        ),
        (
            change(ParamsChange {
                economics: Some(EconomicsParams {
                    net_emissions_cap: 2 * x.net_emissions_cap + 1,
                    ..x
                }),
                ..Default::default()
            }),
            E::RaiseTooLarge,
        ),
        (emission(|e| e.decay_bps -= 1), E::RaiseTooLarge),
        (emission(|e| e.decay_period_epochs += 1), E::RaiseTooLarge),
        (emission(|e| e.lifetime_cap += 1), E::LifetimeCapRaised),
        (
            emission(|e| e.lifetime_cap = u64::MAX),
            E::LifetimeCapRaised,
        ),
    ];
    for (c, err) in cases {
        assert_program_err(env.queue(c).await.map(|_| ()), err);
    }
    assert_eq!(env.next_change_id().await, 0);
    // A doubling is the most one change allows.
    let doubled = EmissionParams {
        initial_per_epoch: 2 * e.initial_per_epoch,
        ..e
    };
    let first = env
        .queue(change(ParamsChange {
            emission: Some(doubled),
            rate_capacity: Some(2 * capacity),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_program_err(env.apply(first).await, E::ChangeNotReady);
    env.wait_for_change(first).await;
    env.apply(first).await.unwrap();
    let now = env.now().await;
    let c = env.config_state().await;
    assert_eq!(c.emission, e, "the current epochs keep their schedule");
    let pending = c.pending_params.unwrap();
    assert_eq!(
        pending.from_epoch,
        backhaul_core::epoch::epoch_at(GENESIS, EPOCH_SECS, now).unwrap() + 1
    );
    assert_eq!(pending.params.emission, doubled);
    // Doubling again is measured from the pending values, and waits for them to take effect.
    let second = env
        .queue(change(ParamsChange {
            emission: Some(EmissionParams {
                initial_per_epoch: 4 * e.initial_per_epoch,
                ..e
            }),
            rate_capacity: Some(4 * capacity),
            ..Default::default()
        }))
        .await
        .unwrap();
    env.wait_for_change(second).await;
    assert_program_err(env.apply(second).await, E::BudgetChangePending);
    // Epoch 0 still mints at most the old schedule.
    let a = Pubkey::new_unique();
    let over = env.reward_tree(0, &[(a, e.initial_per_epoch + 1)]);
    assert_program_err(
        env.vote(0, 0, env.proposal(&over, 0)).await,
        E::ExceedsEpochEmission,
    );
}

/// A change the admin queues is public for the whole delay: it cannot be applied a second early,
/// and during the delay a guardian cancels it (here a new oracle set of keys the admin holds).
/// A guardian cannot cancel its own removal, but that does not stop it cancelling the rest.
#[tokio::test]
async fn a_guardian_cancels_a_hostile_change_during_the_delay() {
    let mut env = Env::new().await;
    let g = env.guardian.insecure_clone();
    let admins_keys: Vec<Pubkey> = (0..3).map(|_| Pubkey::new_unique()).collect();
    let oracles = env
        .queue(GovernanceChange::Oracles {
            oracles: admins_keys,
            threshold: 2,
        })
        .await
        .unwrap();
    let replacement = Pubkey::new_unique();
    let guardians = env
        .queue(GovernanceChange::Guardians {
            guardians: vec![replacement],
        })
        .await
        .unwrap();
    let key = env.deployment().pending_change(oracles);
    let queued: PendingChange = env.account(&key).await.unwrap();
    assert_eq!(
        queued.executable_at,
        queued.queued_at + GOVERNANCE_DELAY_SECS as i64
    );
    env.set_time(queued.executable_at - 1).await;
    assert_program_err(env.apply(oracles).await, E::ChangeNotReady);
    let ix = env.cancel_change_ix(&g.pubkey(), guardians);
    assert_program_err(env.send_as(ix, &g).await, E::CannotCancel);
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let ix = env.cancel_change_ix(&stranger.pubkey(), oracles);
    assert_program_err(env.send_as(ix, &stranger).await, E::NotAdminOrGuardian);
    let ix = env.cancel_change_ix(&g.pubkey(), oracles);
    env.send_as(ix, &g).await.unwrap();
    assert!(env.account::<PendingChange>(&key).await.is_none());
    env.set_time(queued.executable_at).await;
    assert_anchor_err(env.apply(oracles).await, A::AccountNotInitialized);
    let before: Vec<Pubkey> = env.oracles.iter().map(|k| k.pubkey()).collect();
    assert_eq!(env.config_state().await.oracles, before);
    // The guardian change is applied; the old guardian no longer vetoes.
    env.apply(guardians).await.unwrap();
    assert_eq!(env.config_state().await.guardians, vec![replacement]);
    let t0 = env.reward_tree(0, &[(Pubkey::new_unique(), 5)]);
    env.end_epoch(1).await;
    env.vote(0, 0, env.proposal(&t0, 0)).await.unwrap();
    assert_program_err(env.veto(0).await, E::NotGuardian);
}

/// A hostile guardian that vetoes the honest proposal at every quorum delays the epoch by at most
/// three rounds of two challenge periods each: the oracles, which close deterministically, vote
/// the same proposal again once its ban (one challenge period) has passed, and after the third
/// veto it is finalized.
#[tokio::test]
async fn a_hostile_guardian_vetoing_every_quorum_is_bounded() {
    let mut env = Env::new().await;
    let a = Pubkey::new_unique();
    let t0 = env.reward_tree(0, &[(a, 300)]);
    let p = env.proposal(&t0, 0);
    env.end_epoch(0).await;
    let mut vetoes = 0;
    for round in 0..4u32 {
        for i in 0..2 {
            env.vote(i, 0, p).await.unwrap_or_else(|e| {
                panic!(
                    "round {round}: oracle {i}'s honest vote refused after {vetoes} vetoes: {e:?}"
                )
            });
        }
        let r = env.epoch_state(0).await;
        assert_eq!((r.status, r.round), (EpochStatus::Proposed, round));
        match env.veto(0).await {
            Ok(()) => {
                vetoes += 1;
                let until = env.epoch_state(0).await.banned_until;
                env.set_time(until - 1).await;
                assert_program_err(env.vote(0, 0, p).await, E::ProposalVetoed);
                env.set_time(until).await;
            }
            Err(e) => {
                assert_program_err(Err(e), E::VetoLimitReached);
                break;
            }
        }
    }
    assert_eq!(vetoes, 3);
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    env.claim_from(&t0, 0, &a).await.unwrap();
    assert_eq!(env.token_balance(&ata(&a, &env.mint)).await, 300);
}

/// A pause stops the network for at most a day: it ends by itself, nobody (admin or guardian) can
/// pause again for a day after it ended, and an early unpause starts that cooldown at once.
#[tokio::test]
async fn a_pause_expires_by_itself_and_cannot_be_renewed_at_once() {
    let (mut env, a, b, t0) = finalized().await;
    let (admin, g) = (env.admin.insecure_clone(), env.guardian.insecure_clone());
    let day = backhaul::constants::MAX_PAUSE_SECS;
    assert_eq!(backhaul::constants::PAUSE_COOLDOWN_SECS, day);
    let start = env.now().await;
    env.send_as(env.set_paused_ix(&g.pubkey(), true), &g)
        .await
        .unwrap();
    let c = env.config_state().await;
    assert_eq!(
        (c.paused_until, c.pause_available_at),
        (start + day, start + 2 * day)
    );
    env.set_time(start + day - 1).await;
    assert_program_err(env.claim_from(&t0, 0, &a).await, E::Paused);
    for k in [&g, &admin] {
        let ix = env.set_paused_ix(&k.pubkey(), true);
        assert_program_err(env.send_as(ix, k).await, E::Paused);
    }
    // The pause ends by itself.
    env.set_time(start + day).await;
    env.claim_from(&t0, 0, &a).await.unwrap();
    assert_eq!(env.token_balance(&ata(&a, &env.mint)).await, 300);
    for k in [&g, &admin] {
        let ix = env.set_paused_ix(&k.pubkey(), true);
        assert_program_err(env.send_as(ix, k).await, E::PauseCoolingDown);
    }
    let ix = env.set_paused_ix(&admin.pubkey(), false);
    assert_program_err(env.send_as(ix, &admin).await, E::NotPaused);
    env.set_time(start + 2 * day - 1).await;
    let ix = env.set_paused_ix(&g.pubkey(), true);
    assert_program_err(env.send_as(ix, &g).await, E::PauseCoolingDown);
    // A day after it ended, a guardian may pause again; the admin lifts it early, and the
    // cooldown runs from then.
    let again = start + 2 * day;
    env.set_time(again).await;
    env.send_as(env.set_paused_ix(&g.pubkey(), true), &g)
        .await
        .unwrap();
    assert_program_err(env.claim_from(&t0, 0, &b).await, E::Paused);
    env.set_time(again + 60).await;
    env.send_as(env.set_paused_ix(&admin.pubkey(), false), &admin)
        .await
        .unwrap();
    let c = env.config_state().await;
    assert_eq!(
        (c.paused_until, c.pause_available_at),
        (again + 60, again + 60 + day)
    );
    env.claim_from(&t0, 0, &b).await.unwrap();
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    assert_program_err(env.send_as(ix, &admin).await, E::PauseCoolingDown);
}
