use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::ChangeQueued;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
#[instruction(id: u64)]
pub struct QueueChange<'info> {
    /// The admin; pays for the pending change and gets the rent back when it is applied or
    /// cancelled.
    #[account(mut)]
    pub admin: Signer<'info>,
    #[account(
        mut,
        has_one = admin @ BackhaulError::NotAdmin,
        constraint = id == config.next_change_id @ BackhaulError::WrongChange,
    )]
    pub config: Box<Account<'info, Config>>,
    /// The queued change, created here.
    #[account(
        init,
        payer = admin,
        space = PendingChange::SIZE,
        seeds = [CHANGE_SEED, config.key().as_ref(), &id.to_le_bytes()],
        bump,
    )]
    pub pending_change: Box<Account<'info, PendingChange>>,
    pub system_program: Program<'info, System>,
}

/// Queues a change of the parameters, the oracle set or the guardians. It takes effect when
/// someone sends `apply_change` after the governance delay; until then the admin or a guardian may
/// cancel it.
///
/// Effects: creates the pending change with `executable_at = now + governance delay`; increments
/// `next_change_id`.
///
/// Checks: the signer is the admin; `id` is the config's `next_change_id`; applied to the config
/// as it stands now, the change would be accepted (bounds, roles, raise limits).
pub fn handler(ctx: Context<QueueChange>, id: u64, change: GovernanceChange) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &mut ctx.accounts.config;
    // Checked again when applied: another change may be applied in between.
    let mut preview = (**config).clone();
    preview.apply_governance(&change, now, GovernanceStep::Queue)?;

    let delay = i64::try_from(config.governance_delay_secs).map_err(|_| BackhaulError::Overflow)?;
    let executable_at = now.checked_add(delay).ok_or(BackhaulError::Overflow)?;
    config.next_change_id = id.checked_add(1).ok_or(BackhaulError::Overflow)?;
    let pending = &mut ctx.accounts.pending_change;
    pending.config = config.key();
    pending.id = id;
    pending.bump = ctx.bumps.pending_change;
    pending.queued_by = ctx.accounts.admin.key();
    pending.queued_at = now;
    pending.executable_at = executable_at;
    pending.change = change.clone();
    emit_cpi!(ChangeQueued {
        config: config.key(),
        id,
        queued_by: ctx.accounts.admin.key(),
        executable_at,
        change,
    });
    Ok(())
}
