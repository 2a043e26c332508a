use crate::constants::BOND_SEED;
use crate::error::BackhaulError;
use crate::events::BondUnbonding;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct Unbond<'info> {
    pub oracle: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    /// The oracle's bond (its contents name the deployment and the oracle).
    #[account(
        mut,
        seeds = [BOND_SEED, config.key().as_ref(), oracle.key().as_ref()],
        bump = bond.bump,
        has_one = config,
        has_one = oracle,
    )]
    pub bond: Box<Account<'info, OracleBond>>,
}

/// Starts withdrawing the oracle's bond: from now on it cannot vote, and it may withdraw two
/// challenge periods later, once every vote it cast could have been proven fraudulent. Works
/// while paused.
///
/// Checks: the oracle signs; the bond is not unbonding already.
pub fn handler(ctx: Context<Unbond>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let challenge = ctx.accounts.config.challenge_period_secs;
    let bonded = OracleBond::bonded(&ctx.accounts.bond.to_account_info())?;
    let bond = &mut ctx.accounts.bond;
    require!(bond.unbonding_at == 0, BackhaulError::AlreadyUnbonding);
    bond.unbonding_at = now;
    bond.withdrawable_at = OracleBond::unlock_time(now, challenge)?;
    let withdrawable_at = bond.withdrawable_at;
    emit_cpi!(BondUnbonding {
        config: ctx.accounts.config.key(),
        oracle: ctx.accounts.oracle.key(),
        bonded,
        withdrawable_at,
    });
    Ok(())
}
