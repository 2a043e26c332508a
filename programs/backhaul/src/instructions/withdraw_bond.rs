use crate::constants::BOND_SEED;
use crate::error::BackhaulError;
use crate::events::BondWithdrawn;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct WithdrawBond<'info> {
    /// Receives every lamport of the bond account.
    #[account(mut)]
    pub oracle: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    /// The oracle's bond; closed.
    #[account(
        mut,
        seeds = [BOND_SEED, config.key().as_ref(), oracle.key().as_ref()],
        bump = bond.bump,
        has_one = config,
        has_one = oracle, close = oracle,
    )]
    pub bond: Box<Account<'info, OracleBond>>,
}

/// Withdraws the oracle's whole bond and closes its account. Works while paused.
///
/// Checks: the bond is unbonding and both `withdrawable_at` and two of the current challenge
/// periods after `unbonding_at` have passed (governance may have lengthened the period since).
pub fn handler(ctx: Context<WithdrawBond>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let bond = &ctx.accounts.bond;
    require!(bond.unbonding_at != 0, BackhaulError::BondLocked);
    let unlock =
        OracleBond::unlock_time(bond.unbonding_at, ctx.accounts.config.challenge_period_secs)?
            .max(bond.withdrawable_at);
    require!(now >= unlock, BackhaulError::BondLocked);
    let amount = bond.to_account_info().lamports();
    emit_cpi!(BondWithdrawn {
        config: ctx.accounts.config.key(),
        oracle: ctx.accounts.oracle.key(),
        amount,
    });
    Ok(())
}
