use crate::error::BackhaulError;
use crate::events::AdminProposed;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct ProposeAdmin<'info> {
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ BackhaulError::NotAdmin)]
    pub config: Box<Account<'info, Config>>,
}

/// First step of an admin transfer: names the key that may accept. Proposing again replaces the
/// pending key; proposing the current admin cancels the transfer.
///
/// Checks: the signer is the admin; the key is not the default key, a guardian or an oracle.
pub fn handler(ctx: Context<ProposeAdmin>, new_admin: Pubkey) -> Result<()> {
    require!(new_admin != Pubkey::default(), BackhaulError::InvalidKey);
    let config = &mut ctx.accounts.config;
    validate_roles(&new_admin, &config.guardians, &config.oracles)?;
    config.pending_admin = (new_admin != config.admin).then_some(new_admin);
    emit_cpi!(AdminProposed {
        config: config.key(),
        admin: config.admin,
        pending_admin: new_admin,
    });
    Ok(())
}
