use crate::error::BackhaulError;
use crate::events::AdminAccepted;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct AcceptAdmin<'info> {
    pub new_admin: Signer<'info>,
    #[account(mut)]
    pub config: Box<Account<'info, Config>>,
}

/// Second step of an admin transfer: the pending admin signs and becomes the admin.
///
/// Checks: a transfer is pending; the signer is the pending admin; it is neither a guardian nor an
/// oracle (which may have changed since it was proposed).
pub fn handler(ctx: Context<AcceptAdmin>) -> Result<()> {
    let config = &mut ctx.accounts.config;
    let pending = config.pending_admin.ok_or(BackhaulError::NoPendingAdmin)?;
    require_keys_eq!(
        pending,
        ctx.accounts.new_admin.key(),
        BackhaulError::NotPendingAdmin
    );
    let old_admin = config.admin;
    config.admin = pending;
    config.pending_admin = None;
    config.invariant()?;
    emit_cpi!(AdminAccepted {
        config: config.key(),
        old_admin,
        new_admin: pending,
    });
    Ok(())
}
