use crate::error::BackhaulError;
use crate::events::PausedSet;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct SetPaused<'info> {
    /// The admin (pause or unpause) or the guardian (pause only).
    pub authority: Signer<'info>,
    #[account(mut)]
    pub config: Box<Account<'info, Config>>,
}

/// Pauses or unpauses voting, finalizing and claiming. Vetoes and admin changes still work.
///
/// Checks: pausing needs the admin or the guardian; unpausing needs the admin.
pub fn handler(ctx: Context<SetPaused>, paused: bool) -> Result<()> {
    let config = &mut ctx.accounts.config;
    let by = ctx.accounts.authority.key();
    if paused {
        require!(
            by == config.admin || by == config.guardian,
            BackhaulError::NotAdminOrGuardian
        );
    } else {
        require_keys_eq!(by, config.admin, BackhaulError::NotAdmin);
    }
    config.paused = paused;
    emit_cpi!(PausedSet {
        config: config.key(),
        by,
        paused,
    });
    Ok(())
}
