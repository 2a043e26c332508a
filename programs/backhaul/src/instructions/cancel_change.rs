use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::ChangeCancelled;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
#[instruction(id: u64)]
pub struct CancelChange<'info> {
    /// The admin or a guardian.
    pub authority: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    /// The change to cancel; closed, its rent returned to the admin that queued it.
    #[account(
        mut,
        seeds = [CHANGE_SEED, config.key().as_ref(), &id.to_le_bytes()],
        bump = pending_change.bump,
        has_one = config,
        has_one = queued_by,
        close = queued_by,
    )]
    pub pending_change: Box<Account<'info, PendingChange>>,
    /// CHECK: receives the rent; must be the change's `queued_by` (checked by `has_one`).
    #[account(mut)]
    pub queued_by: UncheckedAccount<'info>,
}

/// Cancels a queued change. Works while paused and after the delay (until it is applied).
///
/// Checks: the signer is the admin or a guardian; a guardian cannot cancel a guardian set that
/// leaves it out.
pub fn handler(ctx: Context<CancelChange>, id: u64) -> Result<()> {
    let config = &ctx.accounts.config;
    let by = ctx.accounts.authority.key();
    if by != config.admin {
        require!(config.is_guardian(&by), BackhaulError::NotAdminOrGuardian);
        require!(
            ctx.accounts
                .pending_change
                .change
                .cancellable_by_guardian(&by),
            BackhaulError::CannotCancel
        );
    }
    emit_cpi!(ChangeCancelled {
        config: config.key(),
        id,
        cancelled_by: by,
    });
    Ok(())
}
