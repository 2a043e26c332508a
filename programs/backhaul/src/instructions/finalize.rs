use crate::error::{core_error, BackhaulError};
use crate::events::EpochFinalized;
use crate::instructions::propose_root::check_budget;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Mint, MintTo, Token, TokenAccount};
use backhaul_core::rate_limit::MintBucket;

#[event_cpi]
#[derive(Accounts)]
pub struct Finalize<'info> {
    #[account(mut, has_one = mint, has_one = vault)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, has_one = config)]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    #[account(mut)]
    pub mint: Box<Account<'info, Mint>>,
    #[account(mut)]
    pub vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

/// Finalizes the next epoch once its challenge period has passed. Anyone may send it.
///
/// Effects: mints exactly the proposal's allocation into the vault (signed by the config PDA);
/// advances `next_epoch`; records the reward tree's total and leaf count and the minted total;
/// marks the epoch `Finalized`.
///
/// Checks: not paused; the epoch is `Proposed` and is the next epoch; the challenge period has
/// ended; the allocation fits the schedule's emission for this epoch, what remains under the
/// lifetime cap, and the mint rate limiter.
pub fn handler(ctx: Context<Finalize>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let record = &ctx.accounts.epoch_record;
    require!(!config.paused, BackhaulError::Paused);
    match record.status {
        EpochStatus::Proposed => {}
        EpochStatus::Finalized => return err!(BackhaulError::AlreadyFinalized),
        EpochStatus::Voting | EpochStatus::Vetoed => return err!(BackhaulError::NoQuorum),
    }
    require!(
        record.epoch == config.next_epoch,
        BackhaulError::EpochOutOfOrder
    );
    require!(
        now >= record.finalizable_at,
        BackhaulError::ChallengePeriodActive
    );

    let epoch = record.epoch;
    let proposal = record.proposal;
    let allocation = proposal.allocation;
    let budget = check_budget(config, epoch, allocation)?;
    let bucket = MintBucket::from(config.rate_limiter)
        .consume(now, allocation)
        .map_err(core_error)?;

    if allocation > 0 {
        let seeds = config.signer_seeds();
        token::mint_to(
            CpiContext::new_with_signer(
                ctx.accounts.token_program.key(),
                MintTo {
                    mint: ctx.accounts.mint.to_account_info(),
                    to: ctx.accounts.vault.to_account_info(),
                    authority: config.to_account_info(),
                },
                &[&seeds],
            ),
            allocation,
        )?;
    }

    let config = &mut ctx.accounts.config;
    config.rate_limiter = bucket.into();
    config.total_minted = config
        .total_minted
        .checked_add(allocation)
        .ok_or(BackhaulError::Overflow)?;
    config.last_reward_total = proposal.reward_total;
    config.last_reward_leaf_count = proposal.reward_leaf_count;
    config.next_epoch = epoch.checked_add(1).ok_or(BackhaulError::Overflow)?;
    config.invariant()?;
    let total_minted = config.total_minted;

    let record = &mut ctx.accounts.epoch_record;
    record.status = EpochStatus::Finalized;
    record.finalized_at = now;
    let digest = record.proposal_digest;

    emit_cpi!(EpochFinalized {
        config: ctx.accounts.config.key(),
        epoch,
        digest,
        proposal,
        minted: allocation,
        budget,
        total_minted,
        finalized_at: now,
    });
    Ok(())
}
