use crate::constants::{MAX_PAUSE_SECS, PAUSE_COOLDOWN_SECS};
use crate::error::BackhaulError;
use crate::events::PausedSet;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct SetPaused<'info> {
    /// The admin (pause or unpause) or a guardian (pause only).
    pub authority: Signer<'info>,
    #[account(mut)]
    pub config: Box<Account<'info, Config>>,
}

/// Pauses or unpauses voting, finalizing, claiming, buying and settling. Vetoes and governance
/// still work while paused.
///
/// A pause lasts [`MAX_PAUSE_SECS`] unless the admin lifts it earlier; once it ends, by expiry or
/// unpause, nobody can pause again for [`PAUSE_COOLDOWN_SECS`]. So however hostile, a pausing key
/// stops the network for at most half of any period.
///
/// Checks: pausing needs the admin or a guardian, no pause running and the cooldown over;
/// unpausing needs the admin and a running pause.
pub fn handler(ctx: Context<SetPaused>, paused: bool) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &mut ctx.accounts.config;
    let by = ctx.accounts.authority.key();
    if paused {
        require!(
            by == config.admin || config.is_guardian(&by),
            BackhaulError::NotAdminOrGuardian
        );
        require!(!config.is_paused(now), BackhaulError::Paused);
        require!(
            now >= config.pause_available_at,
            BackhaulError::PauseCoolingDown
        );
        config.paused_until = now
            .checked_add(MAX_PAUSE_SECS)
            .ok_or(BackhaulError::Overflow)?;
    } else {
        require_keys_eq!(by, config.admin, BackhaulError::NotAdmin);
        require!(config.is_paused(now), BackhaulError::NotPaused);
        config.paused_until = now;
    }
    config.pause_available_at = config
        .paused_until
        .checked_add(PAUSE_COOLDOWN_SECS)
        .ok_or(BackhaulError::Overflow)?;
    emit_cpi!(PausedSet {
        config: config.key(),
        by,
        paused,
        paused_until: config.paused_until,
        pause_available_at: config.pause_available_at,
    });
    Ok(())
}
