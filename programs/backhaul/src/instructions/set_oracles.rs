use crate::error::BackhaulError;
use crate::events::OraclesSet;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct SetOracles<'info> {
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ BackhaulError::NotAdmin)]
    pub config: Box<Account<'info, Config>>,
}

/// Replaces the oracle set and threshold.
///
/// Checks: the signer is the admin; 1 to 10 distinct non-default keys; `n/2 < m <= n`. Votes
/// already cast by removed oracles stop counting towards quorum; a proposal that already has
/// quorum keeps it.
pub fn handler(ctx: Context<SetOracles>, oracles: Vec<Pubkey>, threshold: u8) -> Result<()> {
    validate_oracles(&oracles, threshold)?;
    let config = &mut ctx.accounts.config;
    config.oracles = oracles.clone();
    config.threshold = threshold;
    config.invariant()?;
    emit_cpi!(OraclesSet {
        config: config.key(),
        oracles,
        threshold,
    });
    Ok(())
}
