use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::ConfigInitialized;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_lang::solana_program::bpf_loader_upgradeable;
use anchor_spl::token::{self, Mint, Token, TokenAccount};

/// Everything a deployment starts with.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct InitializeParams {
    pub admin: Pubkey,
    pub guardians: Vec<Pubkey>,
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub challenge_period_secs: u64,
    pub governance_delay_secs: u64,
    pub emission: EmissionParams,
    pub rate_window_secs: u64,
    pub rate_capacity: u64,
    pub economics: EconomicsParams,
    /// What decides each epoch's dataset (price per GiB, pair cap, rate limit, grace period).
    pub consensus: ConsensusParams,
}

#[event_cpi]
#[derive(Accounts)]
pub struct Initialize<'info> {
    /// Pays for the accounts; must be the program's upgrade authority, so nobody can front-run
    /// the deployment with their own admin.
    #[account(mut)]
    pub initializer: Signer<'info>,
    /// The program's ProgramData account, which names the upgrade authority.
    #[account(
        seeds = [crate::ID.as_ref()],
        bump,
        seeds::program = bpf_loader_upgradeable::ID,
        constraint = program_data.upgrade_authority_address == Some(initializer.key())
            @ BackhaulError::NotUpgradeAuthority,
    )]
    pub program_data: Account<'info, ProgramData>,
    /// The deployment (`Config`), created here, also at an address someone sent lamports to
    /// first.
    /// CHECK: the address is checked by the seeds; the handler refuses an existing deployment.
    #[account(
        mut,
        seeds = [CONFIG_SEED, mint.key().as_ref()],
        bump,
    )]
    pub config: UncheckedAccount<'info>,
    /// The network token. Its mint authority must already be the config PDA, and it must have no
    /// freeze authority (which could freeze the vault).
    #[account(
        constraint = mint.mint_authority == Some(config.key()).into() @ BackhaulError::InvalidMint,
        constraint = mint.freeze_authority.is_none() @ BackhaulError::InvalidMint,
    )]
    pub mint: Box<Account<'info, Mint>>,
    /// The credit price feed (`PriceFeed`), empty until the oracles first agree on a price;
    /// created here, also at an address someone sent lamports to first.
    /// CHECK: the address is checked by the seeds; the handler creates it.
    #[account(
        mut,
        seeds = [PRICE_SEED, config.key().as_ref()],
        bump,
    )]
    pub price_feed: UncheckedAccount<'info>,
    /// The rewards vault: a token account of the mint owned by the config PDA, created here,
    /// also at an address someone sent lamports to first.
    /// CHECK: the address is checked by the seeds; the handler creates and initializes it.
    #[account(
        mut,
        seeds = [VAULT_SEED, config.key().as_ref()],
        bump,
    )]
    pub vault: UncheckedAccount<'info>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

/// Creates the deployment.
///
/// Effects: creates `config`, the empty `price_feed` and `vault`; the config PDA becomes the
/// vault's owner; the mint's current supply is recorded as the initial supply.
///
/// Checks: the signer is the upgrade authority; the mint's authority is the config PDA and it has
/// no freeze authority; 1 to 10 distinct oracles with `n/2 < m <= n`; 1 to 4 distinct guardians;
/// a non-default admin; admin, guardians and oracles all different keys; the epoch length, the
/// challenge period (at most half an epoch) and the governance delay (at least an epoch plus the
/// challenge period) within bounds; genesis within a year of the clock; a valid emission schedule;
/// a rate window within bounds and a capacity that holds and drains a full epoch budget; price
/// staleness and change bounds, smoothing and usage cap within bounds; a positive price per GiB,
/// pair cap and rate limit, and a grace period under half an epoch; at most 18 decimals.
pub fn handler(ctx: Context<Initialize>, params: InitializeParams) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    validate_oracles(&params.oracles, params.threshold)?;
    validate_guardians(&params.guardians)?;
    validate_roles(&params.admin, &params.guardians, &params.oracles)?;
    validate_timing(
        params.epoch_length_secs,
        params.challenge_period_secs,
        params.governance_delay_secs,
    )?;
    require!(
        params.genesis_ts.abs_diff(now) <= MAX_GENESIS_OFFSET_SECS.unsigned_abs(),
        BackhaulError::InvalidGenesis
    );
    validate_params(
        &EpochParams {
            emission: params.emission,
            economics: params.economics,
            rate_window_secs: params.rate_window_secs,
            rate_capacity: params.rate_capacity,
            consensus: params.consensus,
        },
        params.epoch_length_secs,
    )?;
    let mint = &ctx.accounts.mint;
    require!(
        mint.decimals <= backhaul_core::price::MAX_DECIMALS,
        BackhaulError::InvalidDecimals
    );
    let (decimals, initial_supply) = (mint.decimals, mint.supply);

    // The accounts are created by hand rather than with `init`, so that lamports sent to their
    // predictable addresses beforehand cannot block the deployment (see `state::pda`).
    let config_key = ctx.accounts.config.key();
    let mint_key = ctx.accounts.mint.key();
    let config_info = ctx.accounts.config.to_account_info();
    let payer = ctx.accounts.initializer.to_account_info();
    let system = ctx.accounts.system_program.to_account_info();
    pda::create_pda(
        &config_info,
        &payer,
        &system,
        &[CONFIG_SEED, mint_key.as_ref(), &[ctx.bumps.config]],
        Config::SIZE,
        ctx.program_id,
    )?;
    let feed_info = ctx.accounts.price_feed.to_account_info();
    pda::create_pda(
        &feed_info,
        &payer,
        &system,
        &[PRICE_SEED, config_key.as_ref(), &[ctx.bumps.price_feed]],
        PriceFeed::SIZE,
        ctx.program_id,
    )?;
    let vault_info = ctx.accounts.vault.to_account_info();
    let token_program = ctx.accounts.token_program.key();
    pda::create_pda(
        &vault_info,
        &payer,
        &system,
        &[VAULT_SEED, config_key.as_ref(), &[ctx.bumps.vault]],
        TokenAccount::LEN,
        &token_program,
    )?;
    token::initialize_account3(CpiContext::new(
        token_program,
        token::InitializeAccount3 {
            account: vault_info.clone(),
            mint: ctx.accounts.mint.to_account_info(),
            authority: config_info.clone(),
        },
    ))?;

    let config = Box::new(Config {
        version: ACCOUNT_VERSION,
        bump: ctx.bumps.config,
        vault_bump: ctx.bumps.vault,
        admin: params.admin,
        pending_admin: None,
        guardians: params.guardians.clone(),
        mint: ctx.accounts.mint.key(),
        vault: ctx.accounts.vault.key(),
        price_feed: ctx.accounts.price_feed.key(),
        oracles: params.oracles.clone(),
        threshold: params.threshold,
        genesis_ts: params.genesis_ts,
        epoch_length_secs: params.epoch_length_secs,
        challenge_period_secs: params.challenge_period_secs,
        governance_delay_secs: params.governance_delay_secs,
        next_change_id: 0,
        pending_params: None,
        emission: params.emission,
        rate_limiter: RateLimiter {
            window_secs: params.rate_window_secs,
            capacity: params.rate_capacity,
            level: 0,
            last_ts: now,
        },
        economics: params.economics,
        decimals,
        initial_supply,
        paused_until: 0,
        pause_available_at: 0,
        next_epoch: 0,
        last_reward_total: 0,
        last_reward_leaf_count: 0,
        total_minted: 0,
        scheduled_minted: 0,
        total_reemitted: 0,
        total_claimed: 0,
        burn_ema: 0,
        last_usage_total: 0,
        last_usage_leaf_count: 0,
        total_burned: 0,
        burned_finalized: 0,
        credits_issued: 0,
        credits_settled: 0,
        credits_unpaid: 0,
        last_usage_cost_total: 0,
        credits_issued_finalized: 0,
        oracle_bond_lamports: 0,
        consensus: params.consensus,
    });
    config.invariant()?;
    pda::store(&*config, &config_info)?;
    let feed = PriceFeed {
        config: config_key,
        bump: ctx.bumps.price_feed,
        credits_per_token: 0,
        posted_at: 0,
        oracle_set_changed: false,
        submissions: Vec::new(),
    };
    pda::store(&feed, &feed_info)?;

    emit_cpi!(ConfigInitialized {
        config: config_key,
        mint: ctx.accounts.mint.key(),
        vault: ctx.accounts.vault.key(),
        admin: params.admin,
        guardians: params.guardians,
        oracles: params.oracles,
        threshold: params.threshold,
        genesis_ts: params.genesis_ts,
        epoch_length_secs: params.epoch_length_secs,
        challenge_period_secs: params.challenge_period_secs,
        governance_delay_secs: params.governance_delay_secs,
        emission: params.emission,
        rate_window_secs: params.rate_window_secs,
        rate_capacity: params.rate_capacity,
        economics: params.economics,
        consensus: params.consensus,
        decimals,
        initial_supply,
    });
    Ok(())
}
