use crate::error::BackhaulError;
use crate::events::GuardianSet;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct SetGuardian<'info> {
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ BackhaulError::NotAdmin)]
    pub config: Box<Account<'info, Config>>,
}

/// Replaces the guardian. Checks: the signer is the admin; the key is not the default key.
pub fn handler(ctx: Context<SetGuardian>, guardian: Pubkey) -> Result<()> {
    require!(guardian != Pubkey::default(), BackhaulError::InvalidKey);
    let config = &mut ctx.accounts.config;
    let old_guardian = config.guardian;
    config.guardian = guardian;
    emit_cpi!(GuardianSet {
        config: config.key(),
        old_guardian,
        new_guardian: guardian,
    });
    Ok(())
}
