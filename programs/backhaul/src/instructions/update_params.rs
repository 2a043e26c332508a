use crate::error::BackhaulError;
use crate::events::ParamsUpdated;
use crate::state::*;
use anchor_lang::prelude::*;

/// Parameters the admin may change; `None` keeps the current value. The epoch length and genesis
/// cannot change: they define which epoch every receipt belongs to.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default)]
pub struct UpdateParamsArgs {
    pub challenge_period_secs: Option<u64>,
    pub emission: Option<EmissionParams>,
    pub rate_window_secs: Option<u64>,
    pub rate_capacity: Option<u64>,
    pub economics: Option<EconomicsParams>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct UpdateParams<'info> {
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ BackhaulError::NotAdmin)]
    pub config: Box<Account<'info, Config>>,
}

/// Changes the challenge period, the emission schedule, the rate limiter or the economics
/// (price bounds, net emissions, paid-usage cap).
///
/// Checks: the signer is the admin; every new value is within the bounds `initialize` enforces;
/// the lifetime cap is not below what the schedule already minted. A changed challenge period applies to
/// proposals that reach quorum afterwards (each stores its own `finalizable_at`). A changed rate
/// limiter keeps its current level.
pub fn handler(ctx: Context<UpdateParams>, params: UpdateParamsArgs) -> Result<()> {
    let config = &mut ctx.accounts.config;
    if let Some(secs) = params.challenge_period_secs {
        validate_challenge_period(secs)?;
        config.challenge_period_secs = secs;
    }
    if let Some(emission) = params.emission {
        validate_emission(&emission)?;
        require!(
            emission.lifetime_cap >= config.scheduled_minted,
            BackhaulError::InvalidEmissionSchedule
        );
        config.emission = emission;
    }
    let window = params
        .rate_window_secs
        .unwrap_or(config.rate_limiter.window_secs);
    let capacity = params.rate_capacity.unwrap_or(config.rate_limiter.capacity);
    validate_rate_limit(window, capacity, &config.emission)?;
    config.rate_limiter.window_secs = window;
    config.rate_limiter.capacity = capacity;
    if let Some(economics) = params.economics {
        validate_economics(&economics)?;
        config.economics = economics;
    }
    config.invariant()?;

    emit_cpi!(ParamsUpdated {
        config: config.key(),
        challenge_period_secs: config.challenge_period_secs,
        emission: config.emission,
        rate_window_secs: window,
        rate_capacity: capacity,
        economics: config.economics,
    });
    Ok(())
}
