use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::BondDeposited;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_lang::system_program;

#[event_cpi]
#[derive(Accounts)]
pub struct DepositBond<'info> {
    /// The oracle whose bond this is; pays the deposit (and the account's rent the first time).
    #[account(mut)]
    pub oracle: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    /// CHECK: the PDA `["bond", config, oracle]` (checked by the seeds), created on the first
    /// deposit; an existing one is checked by its contents in the handler.
    #[account(
        mut,
        seeds = [BOND_SEED, config.key().as_ref(), oracle.key().as_ref()],
        bump,
    )]
    pub bond: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

/// Adds `amount` lamports to the oracle's bond. Anyone holding an oracle key may bond, also
/// before it joins the set. Works while paused.
///
/// Checks: `amount` is positive; the bond is not unbonding (withdraw it first, then bond anew).
pub fn handler(ctx: Context<DepositBond>, amount: u64) -> Result<()> {
    require!(amount > 0, BackhaulError::InvalidOracleBond);
    let config = ctx.accounts.config.key();
    let oracle = ctx.accounts.oracle.key();
    let info = ctx.accounts.bond.to_account_info();
    let bump = ctx.bumps.bond;
    let seeds: &[&[u8]] = &[BOND_SEED, config.as_ref(), oracle.as_ref(), &[bump]];
    let (mut bond, created) = pda::load_or_create::<OracleBond>(
        &info,
        &ctx.accounts.oracle.to_account_info(),
        &ctx.accounts.system_program.to_account_info(),
        seeds,
        OracleBond::SIZE,
        ctx.program_id,
    )?;
    if created {
        bond.config = config;
        bond.oracle = oracle;
        bond.bump = bump;
    }
    require!(
        bond.config == config && bond.oracle == oracle,
        BackhaulError::InvariantViolated
    );
    require!(bond.unbonding_at == 0, BackhaulError::AlreadyUnbonding);
    system_program::transfer(
        CpiContext::new(
            ctx.accounts.system_program.key(),
            system_program::Transfer {
                from: ctx.accounts.oracle.to_account_info(),
                to: info.clone(),
            },
        ),
        amount,
    )?;
    pda::store(&*bond, &info)?;
    let bonded = OracleBond::bonded(&info)?;
    emit_cpi!(BondDeposited {
        config,
        oracle,
        amount,
        bonded,
    });
    Ok(())
}
